//! Mail delivery: the `[mail]` settings and the courier that sends the
//! outbox over SMTP.
//!
//! Mail is off until `mail.smtp_host` is set. Then `mail.public_base_url`
//! and `mail.from` are required: the links in mails are built from the
//! former only, never from anything a request carries.

mod courier;

use std::{path::PathBuf, time::Duration};

use keyport_core::mail::{MailSettings, MailTemplates, RecipientLimits};
use lettre::message::Mailbox;
use serde::{Deserialize, Serialize};

pub(crate) use courier::Courier;

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// Plain connection upgraded with `STARTTLS`, which must succeed
    /// (default port 587).
    Starttls,
    /// TLS from the first byte, "implicit TLS" (default port 465).
    Tls,
    /// No encryption (default port 25): only for a relay on the same host
    /// or a test server.
    None,
}

/// `[mail]`: the SMTP server, the sender, and the links and templates of
/// the mails Keyport sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MailConfig {
    /// SMTP server host name; empty turns mail off.
    pub smtp_host: String,
    /// SMTP port; 0 picks the default of `security`.
    pub smtp_port: u16,
    /// `starttls`, `tls` or `none`.
    pub security: SmtpSecurity,
    /// SMTP AUTH user; empty sends no credentials.
    pub username: String,
    /// SMTP AUTH password (prefer `KEYPORT_MAIL__PASSWORD` to a file).
    pub password: String,
    /// PEM CA certificates to trust besides the public roots, for a private
    /// SMTP server.
    pub ca_file: PathBuf,
    /// The sender, e.g. `Acme <no-reply@acme.example>`.
    pub from: String,
    /// The web app's origin (and base path) the links in mails point to,
    /// e.g. `https://app.acme.example`.
    pub public_base_url: String,
    /// Path of the page that takes a verification link's token.
    pub verify_email_path: String,
    /// Path of the page that takes a reset link's token.
    pub reset_password_path: String,
    /// Path of the page that takes a change-of-address link's token and
    /// calls `ConfirmEmailChange`.
    pub change_email_path: String,
    /// Path of the page that asks for a reset link (linked from the notice
    /// to the owner of an address someone tried to sign up with).
    pub forgot_password_path: String,
    /// Path of the page that takes a sign-in link's token (and the
    /// browser's binding cookie) and calls `FinishEmailSignIn`.
    pub sign_in_path: String,
    /// Seconds an email sign-in's link and code work (at most 600).
    pub sign_in_ttl_secs: u64,
    /// Seconds a verification link works (at most 86400).
    pub verify_email_ttl_secs: u64,
    /// Seconds a password-reset link works (at most 3600).
    pub reset_password_ttl_secs: u64,
    /// Link mails (verification, reset) an address may get at once; 0
    /// turns the cap off.
    pub per_recipient_burst: u32,
    /// Link mails per hour an address may keep getting after its burst.
    pub per_recipient_per_hour: u32,
    /// What mails call the product.
    pub app_name: String,
    /// Directory of template files that replace the built-in ones of the
    /// same name (`verify_email.html`, ...); empty: built-in only.
    pub templates_dir: PathBuf,
    /// Delivery attempts of a message before it is marked failed.
    pub max_attempts: u32,
    /// SMTP connections (and messages in flight) per replica.
    pub max_connections: u32,
    /// Milliseconds before the first retry; each next one waits twice as
    /// long, up to an hour.
    pub retry_base_ms: u64,
    /// Milliseconds between looks at the outbox (for mail queued by other
    /// replicas, and retries); mail queued here is sent at once.
    pub poll_interval_ms: u64,
    /// Milliseconds an SMTP command may take.
    pub timeout_ms: u64,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            smtp_host: String::new(),
            smtp_port: 0,
            security: SmtpSecurity::Starttls,
            username: String::new(),
            password: String::new(),
            ca_file: PathBuf::new(),
            from: String::new(),
            public_base_url: String::new(),
            verify_email_path: "/verify-email".into(),
            reset_password_path: "/reset-password".into(),
            forgot_password_path: "/forgot-password".into(),
            change_email_path: "/change-email".into(),
            sign_in_path: "/sign-in/email".into(),
            sign_in_ttl_secs: 600,
            verify_email_ttl_secs: 86_400,
            reset_password_ttl_secs: 3_600,
            per_recipient_burst: RecipientLimits::default().burst,
            per_recipient_per_hour: RecipientLimits::default().per_hour,
            app_name: "Keyport".into(),
            templates_dir: PathBuf::new(),
            max_attempts: 10,
            max_connections: 4,
            retry_base_ms: 5_000,
            poll_interval_ms: 1_000,
            timeout_ms: 30_000,
        }
    }
}

/// Why the mail settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum MailConfigError {
    /// A setting is missing or malformed.
    #[error("mail.{field}: {problem}")]
    Invalid {
        /// The `[mail]` key.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// The templates do not load.
    #[error(transparent)]
    Templates(#[from] keyport_core::mail::TemplateError),
    /// The CA file cannot be read, or TLS cannot be set up.
    #[error("mail TLS: {0}")]
    Tls(String),
}

fn invalid(field: &'static str, problem: impl Into<String>) -> MailConfigError {
    MailConfigError::Invalid { field, problem: problem.into() }
}

impl MailConfig {
    /// Whether mail is configured.
    pub fn enabled(&self) -> bool {
        !self.smtp_host.is_empty()
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        match (self.smtp_port, self.security) {
            (0, SmtpSecurity::Starttls) => 587,
            (0, SmtpSecurity::Tls) => 465,
            (0, SmtpSecurity::None) => 25,
            (port, _) => port,
        }
    }

    /// The sender, parsed.
    pub fn sender(&self) -> Result<Mailbox, MailConfigError> {
        self.from.parse().map_err(|e| invalid("from", format!("not an address ({e})")))
    }

    /// What the use cases need: checked links, lifetimes and loaded templates.
    pub fn settings(&self) -> Result<MailSettings, MailConfigError> {
        self.sender()?;
        let base = self.public_base_url.trim_end_matches('/');
        let scheme_ok = base.starts_with("https://") || base.starts_with("http://");
        let host = base.split_once("://").map_or("", |(_, rest)| rest);
        if !scheme_ok || host.is_empty() || base.contains(['?', '#', ' ']) {
            return Err(invalid("public_base_url", "must be an absolute http(s) URL without query or fragment"));
        }
        let paths = [
            ("verify_email_path", &self.verify_email_path),
            ("reset_password_path", &self.reset_password_path),
            ("forgot_password_path", &self.forgot_password_path),
            ("sign_in_path", &self.sign_in_path),
            ("change_email_path", &self.change_email_path),
        ];
        for (field, path) in paths {
            if !path.starts_with('/') || path.contains(['?', '#', ' ']) {
                return Err(invalid(field, "must be a path starting with /"));
            }
        }
        let dir = (!self.templates_dir.as_os_str().is_empty()).then_some(self.templates_dir.as_path());
        Ok(MailSettings {
            templates: MailTemplates::load(dir, &self.app_name)?,
            public_base_url: base.to_owned(),
            verify_email_path: self.verify_email_path.clone(),
            reset_password_path: self.reset_password_path.clone(),
            forgot_password_path: self.forgot_password_path.clone(),
            change_email_path: self.change_email_path.clone(),
            verify_email_ttl: Duration::from_secs(self.verify_email_ttl_secs),
            reset_password_ttl: Duration::from_secs(self.reset_password_ttl_secs),
            sign_in_path: self.sign_in_path.clone(),
            sign_in_ttl: Duration::from_secs(self.sign_in_ttl_secs),
            recipient_limits: RecipientLimits {
                burst: self.per_recipient_burst,
                per_hour: self.per_recipient_per_hour,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configured() -> MailConfig {
        MailConfig {
            smtp_host: "smtp.example.com".into(),
            from: "Acme <no-reply@acme.example>".into(),
            public_base_url: "https://app.acme.example/".into(),
            ..MailConfig::default()
        }
    }

    #[test]
    fn a_complete_config_gives_settings_with_a_clean_base_url() {
        let settings = configured().settings().unwrap();
        assert_eq!(settings.public_base_url, "https://app.acme.example");
    }

    #[test]
    fn missing_or_malformed_settings_are_refused_by_name() {
        type Breakage = fn(&mut MailConfig);
        let cases: [(&str, Breakage); 5] = [
            ("from", |c| c.from = String::new()),
            ("public_base_url", |c| c.public_base_url = String::new()),
            ("public_base_url", |c| c.public_base_url = "app.acme.example".into()),
            ("public_base_url", |c| c.public_base_url = "https://app.acme.example/?next=x".into()),
            ("reset_password_path", |c| c.reset_password_path = "reset".into()),
        ];
        for (field, break_it) in cases {
            let mut config = configured();
            break_it(&mut config);
            let error = config.settings().unwrap_err().to_string();
            assert!(error.starts_with(&format!("mail.{field}")), "{error}");
        }
    }

    #[test]
    fn ports_default_by_security() {
        let mut config = configured();
        assert_eq!(config.port(), 587);
        config.security = SmtpSecurity::Tls;
        assert_eq!(config.port(), 465);
        config.smtp_port = 2525;
        assert_eq!(config.port(), 2525);
    }
}
