//! E-mail: new leads to their channel's `notify_email`, transcripts to
//! visitors who ask. Mail is written to a durable outbox (a table of the
//! archive, committed before the request is answered, and for a lead in the
//! same transaction as the lead itself) and a sender task delivers it over
//! SMTP with `lettre`, retrying with back-off while the server is down.
//!
//! At-least-once: a mail is deleted from the outbox only after the SMTP server
//! accepted it, so a crash between the two sends it again after the restart;
//! a mail is never sent again once its deletion committed.

use std::sync::Arc;
use std::time::Duration;

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use tokio::sync::watch;

use crate::archive::{Archive, Mail, QueuedMail};
use crate::domain::time::Timestamp;
use crate::metrics::Metrics;

/// Mails sent per look at the outbox.
const BATCH: usize = 32;
/// The first retry's wait; it doubles up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// One SMTP conversation at most this long: a hung server must not hold the sender forever.
const SMTP_TIMEOUT: Duration = Duration::from_secs(30);

/// How the server sends mail (`--smtp-url`, `--smtp-from`).
#[derive(Clone, Debug)]
pub struct MailConfig {
    /// `smtp://[user:password@]host[:port][?tls=required|opportunistic]`, or `smtps://…` for TLS from the start.
    pub url: String,
    /// `Name <address>` or a bare address (checked by `check_from`).
    pub from: String,
}

/// Checks an `--smtp-url` the way the sender will read it, so a bad one refuses to start.
///
/// # Errors
/// What is wrong with it, in lettre's words.
pub fn check_url(url: &str) -> Result<String, String> {
    AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map(|_| url.to_owned()).map_err(|e| format!("not an SMTP URL: {e}"))
}

/// The back-off after `attempts` failed tries: 1 s, 2 s, 4 s, … up to five minutes.
fn backoff(attempts: u32) -> Duration {
    FIRST_BACKOFF.saturating_mul(1 << attempts.saturating_sub(1).min(16)).min(MAX_BACKOFF)
}

/// Checks an `--smtp-from`.
///
/// # Errors
/// When it is not an address, with or without a display name.
pub fn check_from(from: &str) -> Result<String, String> {
    from.parse::<Mailbox>().map(|_| from.to_owned()).map_err(|e| format!("not a sender address: {e}"))
}

/// Sends what the outbox holds until `stopping` says so.
pub async fn run(config: MailConfig, archive: Arc<Archive>, metrics: Arc<Metrics>, mut stopping: watch::Receiver<bool>) {
    // Both checked at start-up (`check_url`, `check_from`): they cannot fail here.
    let (Ok(builder), Ok(from)) = (AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.url), config.from.parse::<Mailbox>()) else {
        return;
    };
    let transport = builder.timeout(Some(SMTP_TIMEOUT)).build();
    loop {
        let wait = match send_due(&transport, &from, &archive, &metrics).await {
            Ok(()) => match archive.next_mail_at().await {
                Ok(Some(at)) => Duration::from_millis(at.millis_since(Timestamp::now())),
                Ok(None) => Duration::from_secs(3600),
                Err(_) => MAX_BACKOFF,
            },
            Err(error) => {
                tracing::error!(%error, "mail outbox unreadable; trying again later");
                MAX_BACKOFF
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = archive.mail_queued() => {}
            _ = stopping.changed() => return,
        }
    }
}

/// Sends every mail that is due; each sent one leaves the outbox, each failed one waits longer.
async fn send_due(
    transport: &AsyncSmtpTransport<Tokio1Executor>,
    from: &Mailbox,
    archive: &Archive,
    metrics: &Metrics,
) -> Result<(), crate::archive::ArchiveError> {
    loop {
        let due = archive.due_mail(Timestamp::now(), BATCH).await?;
        if due.is_empty() {
            return Ok(());
        }
        for QueuedMail { id, mail, attempts } in due {
            match deliver(transport, from, &mail).await {
                Ok(()) => {
                    metrics.mail_sent.inc();
                    archive.mail_sent(id).await?;
                }
                Err((error, permanent)) if permanent => {
                    metrics.mail_failures.inc();
                    tracing::error!(to = %mail.to, %error, "the SMTP server refused this mail for good; dropped");
                    archive.mail_sent(id).await?;
                }
                Err((error, _)) => {
                    metrics.mail_failures.inc();
                    let wait = backoff(attempts + 1);
                    tracing::warn!(to = %mail.to, %error, ?wait, "mail not sent; retrying");
                    archive.mail_retry(id, Timestamp::now().plus(wait), error).await?;
                }
            }
        }
    }
}

/// One mail over SMTP; on failure, why and whether retrying is pointless.
async fn deliver(transport: &AsyncSmtpTransport<Tokio1Executor>, from: &Mailbox, mail: &Mail) -> Result<(), (String, bool)> {
    let to: Mailbox = mail.to.parse().map_err(|e| (format!("bad recipient {}: {e}", mail.to), true))?;
    let message = Message::builder()
        .from(from.clone())
        .to(to)
        .subject(&mail.subject)
        .header(ContentType::TEXT_PLAIN)
        .body(mail.body.clone())
        .map_err(|e| (e.to_string(), true))?;
    transport.send(message).await.map(|_| ()).map_err(|e| (e.to_string(), e.is_permanent()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn back_off_doubles_from_a_second_to_five_minutes() {
        let waits: Vec<u64> = (1..=10).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300]);
        assert_eq!(backoff(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn smtp_urls_are_checked_at_start() {
        assert!(check_url("smtp://127.0.0.1:2525").is_ok());
        assert!(check_url("smtp://user:secret@mail.example.com:587?tls=required").is_ok());
        assert!(check_url("smtps://mail.example.com").is_ok());
        assert!(check_url("http://mail.example.com").is_err());
        assert!(check_url("not a url").is_err());
    }
}
