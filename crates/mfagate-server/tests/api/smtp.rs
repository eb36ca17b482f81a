//! A small SMTP server for the tests: it accepts every message over a real TCP connection and
//! keeps it, so tests read codes and keys out of what the server really sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub to: Vec<String>,
    /// Headers and body, with quoted-printable soft breaks and `=3D` undone.
    pub data: String,
}

#[derive(Clone, Default)]
pub struct MailBox {
    messages: Arc<Mutex<Vec<ReceivedMail>>>,
}

impl MailBox {
    /// Starts a listener on `port` (0 for any) and serves it in the background.
    pub async fn listen(&self, port: u16) -> u16 {
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("SMTP port");
        let port = listener.local_addr().unwrap().port();
        let messages = self.messages.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, messages.clone()));
            }
        });
        port
    }

    pub fn all(&self) -> Vec<ReceivedMail> {
        self.messages.lock().unwrap().clone()
    }

    pub fn to(&self, address: &str) -> Vec<ReceivedMail> {
        self.all()
            .into_iter()
            .filter(|m| m.to.iter().any(|t| t == address))
            .collect()
    }

    /// Waits (up to 5 s) until `address` has received `count` messages; returns the last.
    pub async fn wait_for(&self, address: &str, count: usize) -> ReceivedMail {
        for _ in 0..100 {
            let received = self.to(address);
            if received.len() >= count {
                return received[count - 1].clone();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{address} did not receive {count} message(s); got {:?}",
            self.to(address)
        );
    }
}

impl ReceivedMail {
    /// The e-mailed code: the line that is only digits.
    pub fn code(&self) -> String {
        self.data
            .lines()
            .map(str::trim)
            .find(|line| line.len() >= 4 && line.bytes().all(|b| b.is_ascii_digit()))
            .unwrap_or_else(|| panic!("no code in {}", self.data))
            .to_string()
    }

    /// The key from the first `key=` link.
    pub fn key(&self) -> String {
        let start = self
            .data
            .find("key=")
            .unwrap_or_else(|| panic!("no key in {}", self.data))
            + 4;
        self.data[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect()
    }

    pub fn subject(&self) -> String {
        self.data
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or_default()
            .to_string()
    }
}

async fn serve(socket: tokio::net::TcpStream, messages: Arc<Mutex<Vec<ReceivedMail>>>) {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    let _ = write.write_all(b"220 test-smtp ESMTP ready\r\n").await;
    let mut to = Vec::new();
    while let Ok(Some(line)) = lines.next_line().await {
        let upper = line.to_ascii_uppercase();
        let reply: &[u8] = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
            b"250-test-smtp\r\n250 8BITMIME\r\n"
        } else if upper.starts_with("RCPT TO:") {
            let address = line[8..]
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string();
            to.push(address);
            b"250 OK\r\n"
        } else if upper.starts_with("DATA") {
            let _ = write.write_all(b"354 go ahead\r\n").await;
            let mut data = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if line == "." {
                    break;
                }
                data.push_str(&line);
                data.push('\n');
            }
            let data = data.replace("=\n", "").replace("=3D", "=");
            messages.lock().unwrap().push(ReceivedMail {
                to: std::mem::take(&mut to),
                data,
            });
            b"250 queued\r\n"
        } else if upper.starts_with("QUIT") {
            let _ = write.write_all(b"221 bye\r\n").await;
            return;
        } else {
            b"250 OK\r\n"
        };
        if write.write_all(reply).await.is_err() {
            return;
        }
    }
}
