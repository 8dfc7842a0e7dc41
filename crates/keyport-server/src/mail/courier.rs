//! The courier: takes due messages from the outbox and sends them over
//! SMTP, retrying with backoff.
//!
//! Every replica runs one, sending up to `mail.max_connections` messages at
//! once over as many pooled SMTP connections. A claim hides a message from the other couriers
//! for [`LEASE`], longer than an SMTP exchange may take, so on a clean path
//! each message is sent exactly once; a replica that dies mid-send leaves it
//! to be retried when the lease ends (at-least-once, never lost). Between
//! messages the courier checks for shutdown, so a stopping replica finishes
//! the message in hand and claims no more.

use std::time::Duration;

use futures::StreamExt as _;
use keyport_core::{Accounts, mail::QueuedMail};
use lettre::{
    AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor,
    message::{Mailbox, MultiPart},
    transport::smtp::{
        PoolConfig,
        authentication::Credentials,
        client::{Certificate, Tls, TlsParameters},
    },
};
use tokio::sync::watch;

use super::{MailConfig, MailConfigError, SmtpSecurity};

/// How long a claimed message stays hidden from other couriers.
const LEASE: Duration = Duration::from_secs(300);
/// Messages claimed at once.
const BATCH: u32 = 16;
/// Longest wait between two attempts of one message.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);

/// Sends the outbox of `accounts` over SMTP.
pub(crate) struct Courier {
    accounts: Accounts,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    max_attempts: u32,
    connections: usize,
    retry_base: Duration,
    poll_interval: Duration,
}

impl Courier {
    /// A courier for `config`; fails on a malformed sender or CA file.
    pub(crate) fn new(accounts: Accounts, config: &MailConfig) -> Result<Self, MailConfigError> {
        Ok(Self {
            transport: transport(config)?,
            from: config.sender()?,
            max_attempts: config.max_attempts.max(1),
            connections: usize::try_from(config.max_connections.max(1)).unwrap_or(1),
            retry_base: Duration::from_millis(config.retry_base_ms.max(1)),
            poll_interval: Duration::from_millis(config.poll_interval_ms.max(10)),
            accounts,
        })
    }

    /// Sends until `stop` turns true.
    pub(crate) async fn run(self, mut stop: watch::Receiver<bool>) {
        loop {
            if *stop.borrow() {
                return;
            }
            let now = self.accounts.now();
            let claimed = self.accounts.outbox().claim_mail(now, now.saturating_add(LEASE), BATCH).await;
            let batch = match claimed {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::warn!(%error, "reading the mail outbox failed");
                    Vec::new()
                }
            };
            if batch.is_empty() {
                tokio::select! {
                    () = self.accounts.mail_queued() => {}
                    () = tokio::time::sleep(self.poll_interval) => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            // Several at once, each on a pooled connection of its own: one
            // SMTP exchange is mostly waiting on the network.
            let (courier, stopping) = (&self, stop.clone());
            futures::stream::iter(batch)
                .for_each_concurrent(self.connections, |mail| {
                    let stopping = stopping.clone();
                    async move {
                        // Claimed but not sent: retried when the lease ends.
                        if !*stopping.borrow() {
                            courier.deliver(mail).await;
                        }
                    }
                })
                .await;
        }
    }

    async fn deliver(&self, mail: QueuedMail) {
        let outcome = match self.message(&mail) {
            Ok(message) => self.transport.send(message).await.map(drop).map_err(|e| (e.is_permanent(), e.to_string())),
            Err(error) => Err((true, error)),
        };
        let now = self.accounts.now();
        let recorded = match outcome {
            Ok(()) => {
                tracing::debug!(mail = %mail.id, "mail sent");
                self.accounts.outbox().mark_mail_sent(mail.id, now).await
            }
            Err((permanent, error)) => {
                let attempts = mail.attempts + 1;
                let retry_at = (!permanent && attempts < self.max_attempts)
                    .then(|| now.saturating_add(self.backoff(mail.attempts)));
                tracing::warn!(mail = %mail.id, attempts, permanent, retrying = retry_at.is_some(), %error, "mail delivery failed");
                self.accounts.outbox().mark_mail_failed(mail.id, &error, retry_at).await
            }
        };
        if let Err(error) = recorded {
            tracing::warn!(mail = %mail.id, %error, "recording a mail delivery failed; it will be retried after its lease");
        }
    }

    /// `retry_base`, doubled per earlier attempt, capped at [`MAX_BACKOFF`].
    fn backoff(&self, earlier_attempts: u32) -> Duration {
        self.retry_base.saturating_mul(2u32.saturating_pow(earlier_attempts.min(20))).min(MAX_BACKOFF)
    }

    fn message(&self, mail: &QueuedMail) -> Result<Message, String> {
        let to: Mailbox = mail.to.parse().map_err(|e| format!("recipient: {e}"))?;
        Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(&mail.subject)
            .multipart(MultiPart::alternative_plain_html(mail.text.clone(), mail.html.clone()))
            .map_err(|e| format!("message: {e}"))
    }
}

fn transport(config: &MailConfig) -> Result<AsyncSmtpTransport<Tokio1Executor>, MailConfigError> {
    let host = config.smtp_host.clone();
    let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&host)
        .port(config.port())
        .timeout(Some(Duration::from_millis(config.timeout_ms.max(1))))
        .pool_config(PoolConfig::new().max_size(config.max_connections.max(1)));
    if config.security != SmtpSecurity::None {
        let mut tls = TlsParameters::builder(host);
        if !config.ca_file.as_os_str().is_empty() {
            let pem = std::fs::read(&config.ca_file)
                .map_err(|e| MailConfigError::Tls(format!("{}: {e}", config.ca_file.display())))?;
            let ca = Certificate::from_pem(&pem).map_err(|e| MailConfigError::Tls(e.to_string()))?;
            tls = tls.add_root_certificate(ca);
        }
        let tls = tls.build_rustls().map_err(|e| MailConfigError::Tls(e.to_string()))?;
        builder = builder.tls(match config.security {
            SmtpSecurity::Tls => Tls::Wrapper(tls),
            _ => Tls::Required(tls),
        });
    }
    if !config.username.is_empty() {
        builder = builder.credentials(Credentials::new(config.username.clone(), config.password.clone()));
    }
    Ok(builder.build())
}
