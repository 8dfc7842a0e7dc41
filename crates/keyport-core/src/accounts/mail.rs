//! The flows that go through the user's mailbox: verifying an address and
//! resetting a forgotten password.
//!
//! Each sends a single-use link ([`MailToken`], stored hashed) that only the
//! mailbox's owner sees. The link is built from the configured public base
//! URL, never from anything in the request. A token works for its purpose
//! only, for the address it was sent to, until it expires, is used, or a
//! newer one replaces it. Each address gets a capped number of link mails
//! (`MailSettings::recipient_limits`), whoever asks for them.

use std::{sync::Arc, time::Duration};

use super::{Accounts, user_changed};
use crate::{
    audit::{AuditEvent, AuditKind},
    email::Email,
    error::{Error, Result},
    events::UserChange,
    mail::{
        EmailToken, Mail, MailKind, MailSettings, MailToken, TokenPurpose,
        sign_in::{new_code, session_code_hash},
        templates::{MailContext, Rendered},
    },
    session::{ClientInfo, Principal},
    throttle::budget::PublicAction,
    user::User,
};

/// Requests (password reset, verification by address) being handled after
/// their answer went out. A new request waits for one of them to finish, up
/// to [`DETACHED_WAIT`], then is refused as overloaded (for known and
/// unknown addresses alike).
pub(crate) const MAX_DETACHED: usize = 256;
const DETACHED_WAIT: Duration = Duration::from_secs(1);

impl Accounts {
    /// Mails the caller a link that verifies their address. Does nothing
    /// when the address is verified already.
    pub async fn request_email_verification(&self, caller: &Principal, client: &ClientInfo) -> Result<()> {
        let settings = self.mail_settings()?;
        self.admit(PublicAction::RequestEmailVerification, client).await?;
        if caller.user.email_verified {
            return Ok(());
        }
        self.throttle.admit_mail_to(&caller.user.email).await?;
        // A link for any browser, and a code for this session.
        let code = new_code()?;
        let (token, mail) = self.verification_for(settings, &caller.user, &code)?;
        let code_token = EmailToken {
            hash: session_code_hash(caller.session.id.as_str(), &code),
            purpose: TokenPurpose::VerifyEmailCode,
            ..token.clone()
        };
        let audit = AuditEvent::new(AuditKind::EmailVerificationRequested, token.created_at, client)
            .user(caller.user.id)
            .session(&caller.session.id);
        self.email_token_store().issue_email_tokens(&[token, code_token], std::slice::from_ref(&mail), &audit).await?;
        self.mail_queued.notify_one();
        Ok(())
    }

    /// Marks the caller's address verified with the code mailed to this
    /// session by [`Accounts::request_email_verification`]. Wrong codes
    /// count like failed sign-ins.
    pub async fn verify_email_with_code(&self, caller: &Principal, code: &str, client: &ClientInfo) -> Result<User> {
        let attempt = self.reserve_attempt(caller.user.email.as_str(), Some(caller), client).await?;
        let hash = session_code_hash(caller.session.id.as_str(), code);
        let now = self.clock.now();
        let audit = AuditEvent::new(AuditKind::EmailVerified, now, client)
            .user(caller.user.id)
            .session(&caller.session.id)
            .detail(caller.user.email.to_string());
        let event = user_changed(caller.user.id, UserChange::Profile);
        let verified = self
            .email_token_store()
            .verify_email(&hash, TokenPurpose::VerifyEmailCode, caller.user.id, now, &audit, &event)
            .await?;
        let Some(user) = verified else {
            return Err(self.wrong_code(caller, "verify_email_code", client).await);
        };
        self.throttle.refund(attempt).await;
        self.publish(event);
        Ok(user)
    }

    /// Mails a new verification link to `email`, for someone who cannot sign
    /// in yet because their address is unverified. Answers the same, in the
    /// same time, whether or not an unverified account has the address: the
    /// lookup and the mail happen after the answer.
    pub async fn request_email_verification_for(&self, email: &str, client: &ClientInfo) -> Result<()> {
        self.mail_settings()?;
        self.admit(PublicAction::RequestEmailVerification, client).await?;
        let email = Email::parse("email", email)?;
        self.detached(client, move |accounts, client| async move {
            let Some(user) = accounts.user_store().find_user_by_email(&email).await? else { return Ok(()) };
            if user.email_verified || accounts.throttle.admit_mail_to(&email).await.is_err() {
                return Ok(());
            }
            let settings = accounts.mail_settings()?;
            let (token, mail) = accounts.verification_for(settings, &user, "")?;
            let audit = AuditEvent::new(AuditKind::EmailVerificationRequested, token.created_at, &client).user(user.id);
            accounts
                .email_token_store()
                .issue_email_tokens(std::slice::from_ref(&token), std::slice::from_ref(&mail), &audit)
                .await?;
            accounts.mail_queued.notify_one();
            Ok(())
        })
        .await
    }

    /// A fresh verification token for `user`'s address, and its mail (with
    /// `code` too, unless empty).
    pub(super) fn verification_for(
        &self,
        settings: &MailSettings,
        user: &User,
        code: &str,
    ) -> Result<(EmailToken, Mail)> {
        let now = self.clock.now();
        let token = MailToken::generate()?;
        let ttl = settings.verify_email_ttl;
        let link = settings.link(&settings.verify_email_path, &token);
        let context = MailContext {
            organization: "",
            email: user.email.as_str(),
            name: &user.name,
            link: &link,
            code,
            expires_in: ttl,
        };
        let mail = self.render(settings, MailKind::VerifyEmail, &user.email, &context)?;
        let stored = EmailToken {
            hash: token.hash(),
            purpose: TokenPurpose::VerifyEmail,
            user_id: user.id,
            email: user.email.clone(),
            created_at: now,
            expires_at: now.saturating_add(ttl),
        };
        Ok((stored, mail))
    }

    /// Tells the owner of `email` that someone tried to sign up with it
    /// (within the recipient's cap; past it, nothing is sent).
    pub(super) async fn notify_existing_account(&self, settings: &MailSettings, email: &Email) -> Result<()> {
        let Some(owner) = self.user_store().find_user_by_email(email).await? else { return Ok(()) };
        if self.throttle.admit_mail_to(email).await.is_err() {
            return Ok(());
        }
        let link = settings.page(&settings.forgot_password_path);
        let mail = self.compose(settings, MailKind::AccountExists, &owner, &link, Duration::ZERO)?;
        self.mail_store().queue_mail(&mail).await?;
        Ok(())
    }

    /// Marks the address a verification link was sent to as verified, and
    /// returns the user. Anyone holding the link may use it, once.
    pub async fn verify_email(&self, token: &str, client: &ClientInfo) -> Result<User> {
        self.admit(PublicAction::UseEmailToken, client).await?;
        let token = MailToken::parse(token)?;
        let now = self.clock.now();
        let found = self.email_token_store().find_email_token(&token.hash(), TokenPurpose::VerifyEmail, now).await?;
        let found = found.ok_or(Error::EmailTokenInvalid)?;
        let audit =
            AuditEvent::new(AuditKind::EmailVerified, now, client).user(found.user_id).detail(found.email.to_string());
        let event = user_changed(found.user_id, UserChange::Profile);
        let user = self
            .email_token_store()
            .verify_email(&token.hash(), TokenPurpose::VerifyEmail, found.user_id, now, &audit, &event)
            .await?;
        let user = user.ok_or(Error::EmailTokenInvalid)?;
        self.publish(event);
        Ok(user)
    }

    /// Mails a password-reset link to `email` if it is the address of an
    /// account with a password. Answers the same, in the same time, whether
    /// or not it is: the lookup and the mail happen after the answer.
    pub async fn request_password_reset(&self, email: &str, client: &ClientInfo) -> Result<()> {
        self.mail_settings()?;
        self.admit(PublicAction::RequestPasswordReset, client).await?;
        let email = Email::parse("email", email)?;
        self.detached(client, move |accounts, client| async move { accounts.issue_reset(&email, &client).await }).await
    }

    /// Runs `work` after the answer, on its own task: what the enumeration-
    /// safe requests do with the address they were given. A permit bounds
    /// the work in flight; it is taken before the answer, whatever the
    /// address, so a wait or a refusal says nothing about it either.
    pub(super) async fn detached<F, Fut>(&self, client: &ClientInfo, work: F) -> Result<()>
    where
        F: FnOnce(Accounts, ClientInfo) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<()>> + Send + 'static,
    {
        let permit = tokio::time::timeout(DETACHED_WAIT, Arc::clone(&self.detached).acquire_owned())
            .await
            .map_err(|_| Error::Overloaded)?
            .map_err(|_| Error::Overloaded)?;
        let (accounts, client) = (self.clone(), client.clone());
        tokio::spawn(async move {
            let _permit = permit;
            if let Err(error) = work(accounts, client).await {
                tracing::warn!(%error, "mailing a link after the answer failed");
            }
        });
        Ok(())
    }

    /// Sets a new password with a reset link, ends every session of the
    /// user (this one signs in nobody), and mails them a notice. Returns
    /// how many sessions ended.
    pub async fn reset_password(&self, token: &str, new_password: &str, client: &ClientInfo) -> Result<u64> {
        self.admit(PublicAction::UseEmailToken, client).await?;
        let token = MailToken::parse(token)?;
        let now = self.clock.now();
        // Checked before the costly hash, so a flood of bad links costs
        // lookups only; used up below, in the transaction that sets the password.
        let found = self.email_token_store().find_email_token(&token.hash(), TokenPurpose::ResetPassword, now).await?;
        let found = found.ok_or(Error::EmailTokenInvalid)?;
        let user = self.user_store().find_user_by_email(&found.email).await?;
        let user = user.filter(|user| user.id == found.user_id).ok_or(Error::EmailTokenInvalid)?;
        let password = self.config.passwords.new_password("new_password", new_password, &user.email)?;
        let password_hash = self.hasher.hash(password).await?;

        let now = self.clock.now();
        let settings = self.mail_settings()?;
        let notice = self.compose(settings, MailKind::PasswordChanged, &user, "", Duration::ZERO)?;
        let audit = AuditEvent::new(AuditKind::PasswordReset, now, client).user(user.id);
        let event = user_changed(user.id, UserChange::Password);
        let ended = self
            .email_token_store()
            .reset_password(&token.hash(), user.id, &password_hash, now, &notice, &audit, &event)
            .await?
            .ok_or(Error::EmailTokenInvalid)?;
        self.publish(event);
        self.mail_queued.notify_one();
        Ok(ended)
    }

    /// The part of [`Accounts::request_password_reset`] that runs after the
    /// answer: for an account with a password, a fresh token (voiding the
    /// older) and its mail.
    async fn issue_reset(&self, email: &Email, client: &ClientInfo) -> Result<()> {
        let settings = self.mail_settings()?;
        let Some(credentials) = self.user_store().find_credentials_by_email(email).await? else {
            return Ok(());
        };
        if let Err(refused) = self.throttle.admit_mail_to(email).await {
            // The caller got its answer already; the mailbox is spared.
            tracing::info!(%refused, "password-reset mail skipped: the address had enough for now");
            return Ok(());
        }
        let user = credentials.user;
        let now = self.clock.now();
        let token = MailToken::generate()?;
        let ttl = settings.reset_password_ttl;
        let link = settings.link(&settings.reset_password_path, &token);
        let mail = self.compose(settings, MailKind::ResetPassword, &user, &link, ttl)?;
        let stored = EmailToken {
            hash: token.hash(),
            purpose: TokenPurpose::ResetPassword,
            user_id: user.id,
            email: user.email.clone(),
            created_at: now,
            expires_at: now.saturating_add(ttl),
        };
        let audit = AuditEvent::new(AuditKind::PasswordResetRequested, now, client).user(user.id);
        self.email_token_store()
            .issue_email_tokens(std::slice::from_ref(&stored), std::slice::from_ref(&mail), &audit)
            .await?;
        self.mail_queued.notify_one();
        Ok(())
    }

    /// Audits a wrong mailed code presented by `caller` (`what` names the
    /// flow) and returns the error to answer with.
    pub(super) async fn wrong_code(&self, caller: &Principal, what: &'static str, client: &ClientInfo) -> Error {
        let audit = AuditEvent::new(AuditKind::PasswordConfirmationFailed, self.clock.now(), client)
            .user(caller.user.id)
            .session(&caller.session.id)
            .detail(what);
        match self.audit_store().record_audit(&audit).await {
            Ok(()) => Error::EmailTokenInvalid,
            Err(error) => error.into(),
        }
    }

    /// The mail settings, or [`Error::MailDisabled`] without them.
    pub(super) fn mail_settings(&self) -> Result<&MailSettings> {
        self.mail.as_deref().ok_or(Error::MailDisabled)
    }

    /// Renders a `kind` message to `user`.
    pub(super) fn compose(
        &self,
        settings: &MailSettings,
        kind: MailKind,
        user: &User,
        link: &str,
        expires_in: Duration,
    ) -> Result<Mail> {
        let context =
            MailContext { organization: "", email: user.email.as_str(), name: &user.name, link, code: "", expires_in };
        self.render(settings, kind, &user.email, &context)
    }

    /// Renders a `kind` message to `to` with `context`.
    pub(super) fn render(
        &self,
        settings: &MailSettings,
        kind: MailKind,
        to: &Email,
        context: &MailContext<'_>,
    ) -> Result<Mail> {
        let Rendered { subject, text, html } =
            settings.templates.render(kind, context).map_err(|e| Error::Internal(e.to_string()))?;
        let now = self.clock.now();
        Ok(Mail { id: now.uuid_v7(), kind, to: to.clone(), subject, text, html, created_at: now })
    }
}
