//! A first password for an account that has none (created by social or
//! email sign-in): a fresh session asks for a code by mail, and the same
//! session sets the password with it.
//!
//! The code is six digits, stored as SHA-256 of the session's id and the
//! code, so it works only in the session that asked for it. Wrong codes
//! count towards the account's failed sign-in limit.

use std::time::Duration;

use super::{Accounts, user_changed};
use crate::{
    audit::{AuditEvent, AuditKind},
    error::{Error, Result},
    events::UserChange,
    mail::{
        EmailToken, MailKind, TokenPurpose,
        sign_in::{new_code, session_code_hash},
        templates::MailContext,
    },
    session::{ClientInfo, Principal},
    throttle::budget::PublicAction,
};

/// How long a set-password code works.
const CODE_TTL: Duration = Duration::from_secs(600);

impl Accounts {
    /// Mails the caller a code to set a first password. Needs an account
    /// without a password and a session from the last 10 minutes.
    pub async fn request_password_setup(&self, caller: &Principal, client: &ClientInfo) -> Result<()> {
        let settings = self.mail_settings()?;
        self.admit(PublicAction::RequestPasswordSetup, client).await?;
        self.ensure_no_password(caller).await?;
        self.reauthenticate(caller, "", client).await?;
        self.throttle.admit_mail_to(&caller.user.email).await?;
        let now = self.clock.now();
        let code = new_code()?;
        let context = MailContext {
            organization: "",
            email: caller.user.email.as_str(),
            name: &caller.user.name,
            link: "",
            code: &code,
            expires_in: CODE_TTL,
        };
        let mail = self.render(settings, MailKind::PasswordSetup, &caller.user.email, &context)?;
        let token = EmailToken {
            hash: setup_hash(caller, &code),
            purpose: TokenPurpose::SetPassword,
            user_id: caller.user.id,
            email: caller.user.email.clone(),
            created_at: now,
            expires_at: now.saturating_add(CODE_TTL),
        };
        let audit = AuditEvent::new(AuditKind::PasswordSetupRequested, now, client)
            .user(caller.user.id)
            .session(&caller.session.id);
        self.email_token_store()
            .issue_email_tokens(std::slice::from_ref(&token), std::slice::from_ref(&mail), &audit)
            .await?;
        self.mail_queued.notify_one();
        Ok(())
    }

    /// Sets the caller's first password with the code mailed to this
    /// session. Sessions stay as they are; the owner gets a notice.
    pub async fn set_password(
        &self,
        caller: &Principal,
        code: &str,
        new_password: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        self.ensure_no_password(caller).await?;
        self.require_step_up(caller)?;
        let password = self.config.passwords.new_password("new_password", new_password, &caller.user.email)?;
        let attempt = self.reserve_attempt(caller.user.email.as_str(), Some(caller), client).await?;
        let hash = setup_hash(caller, code);
        let now = self.clock.now();
        let found = self.email_token_store().find_email_token(&hash, TokenPurpose::SetPassword, now).await?;
        if found.is_none_or(|token| token.user_id != caller.user.id) {
            return Err(self.wrong_code(caller, "set_password_code", client).await);
        }
        let password_hash = self.hasher.hash(password).await?;
        let settings = self.mail_settings()?;
        let notice = self.compose(settings, MailKind::PasswordChanged, &caller.user, "", Duration::ZERO)?;
        let now = self.clock.now();
        let audit = AuditEvent::new(AuditKind::PasswordChanged, now, client)
            .user(caller.user.id)
            .session(&caller.session.id)
            .detail("first_password");
        let event = user_changed(caller.user.id, UserChange::Password);
        let set = self
            .email_token_store()
            .set_first_password(&hash, caller.user.id, &password_hash, now, &notice, &audit, &event)
            .await?;
        if !set {
            return Err(Error::EmailTokenInvalid);
        }
        self.throttle.refund(attempt).await;
        self.publish(event);
        self.mail_queued.notify_one();
        Ok(())
    }

    async fn ensure_no_password(&self, caller: &Principal) -> Result<()> {
        if self.user_store().find_password_hash(caller.user.id).await?.is_some() {
            return Err(Error::invalid("password", "the account has a password already: use ChangePassword"));
        }
        Ok(())
    }
}

/// The stored hash of `code` for `caller`'s session.
fn setup_hash(caller: &Principal, code: &str) -> [u8; 32] {
    session_code_hash(caller.session.id.as_str(), code)
}
