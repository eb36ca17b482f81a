//! Sending mail over SMTP (lettre): plain, STARTTLS or implicit TLS, with credentials in the URL.
//!
//! - `smtp://host:port` plain (local relays, test servers)
//! - `smtp://user:pass@host:587?tls=required` STARTTLS
//! - `smtps://user:pass@host` implicit TLS (port 465)
//!
//! Every send has a deadline, so a slow mail server cannot hold a request for long.

use std::time::Duration;

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use mfagate_core::email::{Email, MailError, Mailer};

pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    timeout: Duration,
}

impl std::fmt::Debug for SmtpMailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpMailer")
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

impl SmtpMailer {
    /// `from` is an address, optionally with a name: `mfagate <noreply@example.com>`.
    pub fn new(url: &str, from: &str, timeout: Duration) -> Result<Self, String> {
        let from: Mailbox = from
            .parse()
            .map_err(|e| format!("the from address '{from}' is not valid: {e}"))?;
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| format!("the SMTP URL is not valid ({e}); write smtp://host:port, smtp://user:pass@host:587?tls=required or smtps://user:pass@host"))?
            .timeout(Some(timeout))
            .build();
        Ok(Self {
            transport,
            from,
            timeout,
        })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, email: &Email) -> Result<(), MailError> {
        // The bare address, never parsed as a mailbox: a mailbox parser would read a display
        // name, angle brackets or an encoded word and deliver somewhere else.
        let to = Mailbox::new(
            None,
            email
                .to
                .parse::<lettre::Address>()
                .map_err(|e| MailError(format!("recipient address not valid: {e}")))?,
        );
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(email.subject.clone())
            .multipart(MultiPart::alternative_plain_html(
                email.text.clone(),
                email.html.clone(),
            ))
            .map_err(|e| MailError(format!("cannot build the message: {e}")))?;
        match tokio::time::timeout(self.timeout, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(MailError(format!(
                "the mail server refused or could not be reached: {error}"
            ))),
            Err(_) => Err(MailError(format!(
                "the mail server did not answer within {} s",
                self.timeout.as_secs()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use mfagate_core::account::EmailAddress;

    #[test]
    fn every_address_we_accept_is_one_address_to_the_mail_library() {
        for good in [
            "ann@example.com",
            "ann.smith+tag@mail.example.co.uk",
            "o'brien@example.ie",
            "x_y-z@sub-domain.example.com",
        ] {
            let parsed = EmailAddress::parse(good).expect(good);
            let address: lettre::Address = parsed.as_str().parse().expect(good);
            assert_eq!(address.to_string(), good);
        }
        for bad in [
            "=?utf-8?q?ceo?=@victim.com",
            "a,b@example.com",
            "a<b>@example.com",
            "\"ann\"@example.com",
            "x@-evil-.com",
            "x@evil-.com",
            ".ann@example.com",
            "ann.@example.com",
            "ann@example..com",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad} was accepted");
        }
    }
}
