//! Mail: the messages Keyport sends, the one-time tokens they carry, and the
//! templates that render them.
//!
//! A use case that needs a mail renders it ([`templates`]) and hands it to
//! storage together with its change, in one transaction: the outbox row
//! exists exactly when the change does. A courier (in `keyport-server`)
//! sends what the outbox holds. Tokens ([`token`]) are random, shown only in
//! the mail, and stored as SHA-256.

pub mod sign_in;
pub mod templates;
pub mod token;

use std::time::Duration;

use uuid::Uuid;

use crate::{clock::Timestamp, email::Email};

pub use templates::{MailTemplates, TemplateError};
pub use token::{EmailToken, MailToken, TokenPurpose};

/// What a message is about; each kind has its own templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailKind {
    /// A link that proves the user owns their address.
    VerifyEmail,
    /// A link that sets a new password.
    ResetPassword,
    /// A notice that the password changed (by the user, or by a reset).
    PasswordChanged,
    /// A notice that someone tried to sign up with an address that has an
    /// account already (sent instead of telling the caller).
    AccountExists,
    /// A link and a code that sign in.
    SignIn,
    /// A link, to the new address, that confirms a change of address.
    ChangeEmail,
    /// A notice, to the old address, that a change of address was asked for.
    EmailChangeRequested,
    /// A code that lets an account without a password set one.
    PasswordSetup,
    /// An invitation to join an organization.
    Invitation,
}

impl MailKind {
    /// Every kind, for template loading and checks.
    pub const ALL: [Self; 9] = [
        Self::VerifyEmail,
        Self::ResetPassword,
        Self::PasswordChanged,
        Self::AccountExists,
        Self::SignIn,
        Self::ChangeEmail,
        Self::EmailChangeRequested,
        Self::PasswordSetup,
        Self::Invitation,
    ];

    /// Stable name: in the outbox, and the stem of the template files.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::PasswordChanged => "password_changed",
            Self::AccountExists => "account_exists",
            Self::SignIn => "sign_in",
            Self::ChangeEmail => "change_email",
            Self::EmailChangeRequested => "email_change_requested",
            Self::PasswordSetup => "password_setup",
            Self::Invitation => "invitation",
        }
    }

    /// Reads a name written by [`MailKind::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

/// A rendered message, ready for the outbox.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    /// Unique, time-ordered id.
    pub id: Uuid,
    /// What it is about.
    pub kind: MailKind,
    /// The recipient.
    pub to: Email,
    /// Subject line (one line).
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
    /// When it was queued.
    pub created_at: Timestamp,
}

impl std::fmt::Debug for Mail {
    // Bodies carry live tokens: keep them out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail").field("id", &self.id).field("kind", &self.kind).finish_non_exhaustive()
    }
}

/// A message a courier claimed from the outbox.
#[derive(Clone, PartialEq, Eq)]
pub struct QueuedMail {
    /// The outbox id.
    pub id: Uuid,
    /// The recipient, as queued.
    pub to: String,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body.
    pub html: String,
    /// Delivery attempts before this one.
    pub attempts: u32,
}

impl std::fmt::Debug for QueuedMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueuedMail").field("id", &self.id).field("attempts", &self.attempts).finish_non_exhaustive()
    }
}

/// How the flows that send mail build their links and time their tokens.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// The rendered templates.
    pub templates: MailTemplates,
    /// Where the links in mails point: the web app's origin (and base
    /// path), from configuration only, never from a request.
    pub public_base_url: String,
    /// Path of the web app's verify-email page, which calls `VerifyEmail`.
    pub verify_email_path: String,
    /// Path of the web app's reset-password page, which calls `ResetPassword`.
    pub reset_password_path: String,
    /// Path of the web app's page that takes a change-of-address link's
    /// token and calls `ConfirmEmailChange`.
    pub change_email_path: String,
    /// Path of the web app's forgot-password page, which calls
    /// `RequestPasswordReset` (linked from the `account_exists` notice).
    pub forgot_password_path: String,
    /// Lifetime of a verification link (at most 24 h).
    pub verify_email_ttl: Duration,
    /// Lifetime of a password-reset link (at most 1 h).
    pub reset_password_ttl: Duration,
    /// Path of the web app's page that takes a sign-in link's token and
    /// calls `FinishEmailSignIn`.
    pub sign_in_path: String,
    /// Lifetime of an email sign-in's link and code (at most 10 min).
    pub sign_in_ttl: Duration,
    /// How many link mails (verification, reset) one address may get.
    pub recipient_limits: RecipientLimits,
}

/// The cap on link mails per recipient address, whoever asks: a burst, then
/// a steady rate. Shared by the replicas on PostgreSQL, like every throttling
/// counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipientLimits {
    /// Mails an address may get at once, after a quiet spell; 0 turns the
    /// cap off.
    pub burst: u32,
    /// Mails per hour an address may keep getting after its burst.
    pub per_hour: u32,
}

impl Default for RecipientLimits {
    fn default() -> Self {
        Self { burst: 3, per_hour: 6 }
    }
}

impl RecipientLimits {
    /// The bucket rule of each address: the burst, then one mail per
    /// `1 / per_hour`; zero in either turns the cap off.
    pub fn rate(self) -> crate::throttle::budget::Rate {
        let interval = match self.per_hour {
            0 => Duration::ZERO,
            per_hour => Duration::from_secs(3600) / per_hour,
        };
        crate::throttle::budget::Rate { burst: self.burst, interval }
    }
}

/// Longest lifetime of a verification link (ASVS 5.0 V6.4).
pub const MAX_VERIFY_EMAIL_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest lifetime of an email sign-in's link and code.
pub const MAX_SIGN_IN_TTL: Duration = Duration::from_secs(600);
/// Longest lifetime of a password-reset link (OWASP Forgot Password).
pub const MAX_RESET_PASSWORD_TTL: Duration = Duration::from_secs(3600);

impl MailSettings {
    /// The link to a page of the web app, without a token.
    pub(crate) fn page(&self, path: &str) -> String {
        format!("{}{path}", self.public_base_url.trim_end_matches('/'))
    }

    /// The link to `path` on the web app carrying `token`.
    pub(crate) fn link(&self, path: &str, token: &MailToken) -> String {
        let base = self.public_base_url.trim_end_matches('/');
        // Tokens are base64url: safe in a query string as they are.
        format!("{base}{path}?token={}", token.expose())
    }
}
