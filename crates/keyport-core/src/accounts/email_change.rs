//! Moving an account to another address: re-authenticate, confirm the new
//! address through a link sent to it, and tell the old one.

use std::time::Duration;

use super::{Accounts, user_changed};
use crate::{
    audit::{AuditEvent, AuditKind},
    email::Email,
    error::{Error, Result},
    events::UserChange,
    mail::{EmailToken, MailKind, MailToken, TokenPurpose, templates::MailContext},
    session::{ClientInfo, Principal},
    store::EmailChange,
    throttle::budget::PublicAction,
    user::User,
};

/// How recent a sign-in must be for an account without a password to make
/// a sensitive change without giving anything more.
pub(crate) const FRESH_SESSION: Duration = Duration::from_secs(600);

impl Accounts {
    /// Asks to move the caller's account to `new_email`. The caller proves
    /// who they are again (their password, or for an account without one, a
    /// session from the last 10 minutes). The new address gets a link that
    /// confirms the change; the old one a notice. Until the link is used
    /// nothing changes. An address that another account has gets nothing,
    /// and the answer does not say so.
    pub async fn request_email_change(
        &self,
        caller: &Principal,
        new_email: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let settings = self.mail_settings()?;
        self.admit(PublicAction::RequestEmailChange, client).await?;
        let new_email = Email::parse("new_email", new_email)?;
        if new_email == caller.user.email {
            return Err(Error::invalid("new_email", "is the account's address already"));
        }
        self.reauthenticate(caller, password, client).await?;
        self.throttle.admit_mail_to(&new_email).await?;
        if self.user_store().find_user_by_email(&new_email).await?.is_some() {
            return Ok(());
        }
        let now = self.clock.now();
        let ttl = settings.verify_email_ttl;
        let token = MailToken::generate()?;
        let link = settings.link(&settings.change_email_path, &token);
        let context = MailContext {
            organization: "",
            email: new_email.as_str(),
            name: &caller.user.name,
            link: &link,
            code: "",
            expires_in: ttl,
        };
        let confirm = self.render(settings, MailKind::ChangeEmail, &new_email, &context)?;
        let reset = settings.page(&settings.forgot_password_path);
        let notice = self.compose(settings, MailKind::EmailChangeRequested, &caller.user, &reset, Duration::ZERO)?;
        let stored = EmailToken {
            hash: token.hash(),
            purpose: TokenPurpose::ChangeEmail,
            user_id: caller.user.id,
            email: new_email,
            created_at: now,
            expires_at: now.saturating_add(ttl),
        };
        let audit = AuditEvent::new(AuditKind::EmailChangeRequested, now, client)
            .user(caller.user.id)
            .session(&caller.session.id)
            .detail(stored.email.to_string());
        self.email_token_store().issue_email_tokens(std::slice::from_ref(&stored), &[confirm, notice], &audit).await?;
        self.mail_queued.notify_one();
        Ok(())
    }

    /// Moves the account to the address a change-of-address link was sent
    /// to, which counts as verified; with `end_sessions`, every session of
    /// the user ends (sign in again with the new address). Returns the user
    /// and how many sessions ended.
    pub async fn confirm_email_change(
        &self,
        token: &str,
        end_sessions: bool,
        client: &ClientInfo,
    ) -> Result<(User, u64)> {
        self.admit(PublicAction::UseEmailToken, client).await?;
        let token = MailToken::parse(token)?;
        let now = self.clock.now();
        let found = self.email_token_store().find_email_token(&token.hash(), TokenPurpose::ChangeEmail, now).await?;
        let found = found.ok_or(Error::EmailTokenInvalid)?;
        let audit = AuditEvent::new(AuditKind::EmailChanged, now, client).user(found.user_id);
        let event =
            user_changed(found.user_id, if end_sessions { UserChange::SessionsRevoked } else { UserChange::Profile });
        let outcome = self
            .email_token_store()
            .change_email(&token.hash(), found.user_id, now, end_sessions, &audit, &event)
            .await?;
        match outcome {
            EmailChange::Changed { user, ended } => {
                self.publish(event);
                Ok((user, ended))
            }
            EmailChange::TokenInvalid => Err(Error::EmailTokenInvalid),
            EmailChange::EmailTaken => Err(Error::EmailTaken),
        }
    }

    /// Proof of who the caller is, for a sensitive change: the password of a
    /// password account (counted like a sign-in), else a fresh session.
    /// A user with a second factor also needs a session that passed it
    /// recently.
    pub(super) async fn reauthenticate(&self, caller: &Principal, password: &str, client: &ClientInfo) -> Result<()> {
        self.require_step_up(caller)?;
        if self.user_store().find_password_hash(caller.user.id).await?.is_some() {
            return self.confirm_password(caller, "password", password, client).await;
        }
        let age = self.clock.now().duration_since(caller.session.authenticated_at);
        if age > FRESH_SESSION {
            return Err(Error::ReauthenticationRequired);
        }
        Ok(())
    }
}
