//! What the server writes to its log, read from the log file of a real `mfagate serve`.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

struct Served {
    child: std::process::Child,
    base: String,
    log: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mfagate serve` as a newcomer starts it: no RUST_LOG, no SMTP URL, its standard error
/// redirected to a file.
async fn serve_logging_to_a_file(extra: &[(&str, &str)]) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("server.log");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_mfagate"))
        .arg("serve")
        .env_remove("RUST_LOG")
        .env_remove("MFAGATE_SMTP_URL")
        .env("MFAGATE_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "MFAGATE_DATABASE_URL",
            format!("sqlite://{}", dir.path().join("m.db").display()),
        )
        .env("MFAGATE_ARGON2_PROFILE", "low-cost")
        .envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("mfagate serve starts");
    let served = Served {
        child,
        base: format!("http://127.0.0.1:{port}"),
        log,
        _dir: dir,
    };
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{}/healthz", served.base)).send().await {
            if r.status() == 200 {
                return served;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("mfagate did not become healthy");
}

/// The log's lines once `wanted` appears in it (the server writes as it answers).
async fn log_lines_once(served: &Served, wanted: &str) -> Vec<String> {
    for _ in 0..50 {
        let text = std::fs::read_to_string(&served.log).unwrap_or_default();
        if text.contains(wanted) {
            return text.lines().map(str::to_string).collect();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "'{wanted}' never appeared in the log:\n{}",
        std::fs::read_to_string(&served.log).unwrap_or_default()
    );
}

#[tokio::test]
async fn every_answer_leaves_one_info_line_with_method_path_status_time_and_request_id() {
    let served = serve_logging_to_a_file(&[("MFAGATE_LOGIN_THROTTLE", "1/300")]).await;
    let client = reqwest::Client::new();
    let login = format!("{}/auth/login", served.base);
    let wrong = json!({"username": "ann", "password": "a wrong password"});
    let requests = [
        (
            "test-400",
            400,
            client
                .post(&login)
                .header("content-type", "application/json")
                .body("{not json"),
        ),
        ("test-415", 415, client.post(&login).body("username=ann")),
        ("test-401", 401, client.post(&login).json(&wrong)),
        ("test-429", 429, client.post(&login).json(&wrong)),
    ];
    for (id, status, request) in requests {
        let answer = request.header("x-request-id", id).send().await.unwrap();
        assert_eq!(answer.status(), status, "{id}");
    }

    let lines = log_lines_once(&served, "request_id=test-429").await;
    for (id, status) in [
        ("test-400", 400),
        ("test-415", 415),
        ("test-401", 401),
        ("test-429", 429),
    ] {
        let answered: Vec<&String> = lines
            .iter()
            .filter(|l| l.contains(&format!("request_id={id}")) && l.contains("answered"))
            .collect();
        assert_eq!(answered.len(), 1, "one line for {id}: {lines:#?}");
        let line = answered[0];
        assert!(line.contains(" INFO "), "{line}");
        assert!(
            line.contains("method=POST") && line.contains("path=/auth/login"),
            "{line}"
        );
        assert!(line.contains(&format!("status={status}")), "{line}");
        assert!(line.contains("ms="), "{line}");
    }
    let text = lines.join("\n");
    assert!(
        !text.contains('\u{1b}'),
        "no colour codes in a file: {text}"
    );
    assert!(!text.contains("a wrong password"), "no password in the log");
    assert!(
        text.contains("development only") && text.contains("MFAGATE_SMTP_URL"),
        "the log mailer says what it is: {text}"
    );
}
