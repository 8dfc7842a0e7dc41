//! A real SMTP server for the mail tests: [Mailpit](https://mailpit.axllent.org),
//! started per test on free ports, read back through its HTTP API.
//!
//! The binary is `KEYPORT_MAILPIT` when set, else
//! `~/.cache/keyport/bin/mailpit` (where `scripts/test.sh` installs it with
//! `go install github.com/axllent/mailpit@v1.33.1`), else `mailpit` on the
//! `PATH`. Messages are kept in a database file in a temporary directory, so
//! a test can [`stop`](Mailpit::stop) the server and
//! [`start_again`](Mailpit::start_again) it on the same ports with the
//! messages it had.

use std::{
    io,
    net::{Ipv4Addr, TcpListener},
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::Duration,
};

use keyport_server::mail::{MailConfig, SmtpSecurity};
use serde::Deserialize;
use tempfile::TempDir;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where the links in test mails point.
pub const PUBLIC_BASE_URL: &str = "https://app.keyport.test";
/// The sender of test mails.
pub const FROM: &str = "Keyport Test <no-reply@keyport.test>";

/// How long [`Mailpit::wait_for`] waits by default.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running Mailpit.
#[derive(Debug)]
pub struct Mailpit {
    smtp_port: u16,
    http_port: u16,
    child: Option<Child>,
    http: reqwest::Client,
    dir: TempDir,
}

/// A delivered message, as Mailpit parsed it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Delivered {
    /// Mailpit's id.
    #[serde(rename = "ID")]
    pub id: String,
    /// Subject line.
    pub subject: String,
    /// The sender.
    pub from: Address,
    /// The recipients.
    pub to: Vec<Address>,
    /// The plain-text part.
    pub text: String,
    /// The HTML part.
    #[serde(rename = "HTML")]
    pub html: String,
}

/// An address of a delivered message.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Address {
    /// The address.
    pub address: String,
}

#[derive(Deserialize)]
struct Listing {
    messages: Vec<Summary>,
}

#[derive(Deserialize)]
struct Summary {
    #[serde(rename = "ID")]
    id: String,
}

impl Delivered {
    /// The token of the first link to `path` in the text part.
    pub fn token(&self, path: &str) -> Option<String> {
        let prefix = format!("{PUBLIC_BASE_URL}{path}?token=");
        let start = self.text.find(&prefix)? + prefix.len();
        let token: String =
            self.text[start..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect();
        Some(token)
    }
}

impl Mailpit {
    /// Starts Mailpit on free ports, plain SMTP, any or no credentials.
    pub async fn start() -> Result<Self, BoxError> {
        let mut mailpit = Self {
            smtp_port: free_port()?,
            http_port: free_port()?,
            child: None,
            http: reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?,
            dir: tempfile::tempdir()?,
        };
        mailpit.start_again().await?;
        Ok(mailpit)
    }

    /// Points `mail` at this server (plain SMTP on 127.0.0.1), with the test
    /// sender and public base URL, and fast retries.
    pub fn configure(&self, mail: &mut MailConfig) {
        mail.smtp_host = "127.0.0.1".into();
        mail.smtp_port = self.smtp_port;
        mail.security = SmtpSecurity::None;
        mail.from = FROM.into();
        mail.public_base_url = PUBLIC_BASE_URL.into();
        mail.retry_base_ms = 1_000;
        mail.poll_interval_ms = 100;
        mail.timeout_ms = 5_000;
    }

    /// The SMTP port.
    pub fn smtp_port(&self) -> u16 {
        self.smtp_port
    }

    /// Stops the server, as a crash would; messages stay in its database.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same ports and database, and waits
    /// until it answers.
    pub async fn start_again(&mut self) -> Result<(), BoxError> {
        self.stop();
        let binary = binary();
        let child = Command::new(&binary)
            .arg("--smtp")
            .arg(format!("127.0.0.1:{}", self.smtp_port))
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.http_port))
            .arg("--database")
            .arg(self.dir.path().join("mailpit.db"))
            // `--max 0`: keep every message (the default prunes past 500).
            .args([
                "--max",
                "0",
                "--smtp-auth-accept-any",
                "--smtp-auth-allow-insecure",
                "--smtp-disable-rdns",
                "--quiet",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!(
                        "cannot run {binary:?}: {error} (install it with `GOBIN=~/.cache/keyport/bin go install \
                         github.com/axllent/mailpit@v1.33.1`, or set KEYPORT_MAILPIT)"
                    ),
                )
            })?;
        self.child = Some(child);
        let ready = format!("http://127.0.0.1:{}/readyz", self.http_port);
        for _ in 0..200 {
            let smtp_up = std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, self.smtp_port)).is_ok();
            if smtp_up && self.http.get(&ready).send().await.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err("mailpit did not answer within 10 s".into())
    }

    /// How many messages were delivered, to anyone.
    pub async fn total(&self) -> Result<u64, BoxError> {
        #[derive(Deserialize)]
        struct Count {
            total: u64,
        }
        let url = format!("http://127.0.0.1:{}/api/v1/messages?limit=1", self.http_port);
        let count: Count = self.http.get(&url).send().await?.error_for_status()?.json().await?;
        Ok(count.total)
    }

    /// Every message delivered to `to`, newest first.
    pub async fn messages_to(&self, to: &str) -> Result<Vec<Delivered>, BoxError> {
        let url = format!("http://127.0.0.1:{}/api/v1/search", self.http_port);
        let query = format!("to:\"{to}\"");
        let listing: Listing =
            self.http.get(&url).query(&[("query", query.as_str())]).send().await?.error_for_status()?.json().await?;
        let mut messages = Vec::with_capacity(listing.messages.len());
        for summary in listing.messages {
            let url = format!("http://127.0.0.1:{}/api/v1/message/{}", self.http_port, summary.id);
            messages.push(self.http.get(&url).send().await?.error_for_status()?.json().await?);
        }
        Ok(messages)
    }

    /// Waits until `count` messages were delivered to `to`, then returns
    /// them newest first; fails after [`DELIVERY_TIMEOUT`].
    pub async fn wait_for(&self, to: &str, count: usize) -> Result<Vec<Delivered>, BoxError> {
        let deadline = tokio::time::Instant::now() + DELIVERY_TIMEOUT;
        loop {
            let messages = self.messages_to(to).await?;
            if messages.len() >= count {
                return Ok(messages);
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("{} of {count} messages to {to} after {DELIVERY_TIMEOUT:?}", messages.len()).into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Mailpit {
    fn drop(&mut self) {
        self.stop();
    }
}

fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("KEYPORT_MAILPIT") {
        return path.into();
    }
    let cached = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/keyport/bin/mailpit"));
    cached.filter(|path| path.is_file()).unwrap_or_else(|| "mailpit".into())
}

/// A port that was free on 127.0.0.1 a moment ago.
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port())
}
