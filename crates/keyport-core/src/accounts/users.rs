//! Sign-up and a user's own account: profile, password, deletion.

use std::time::Duration;

use super::{Accounts, collect_violations, user_changed};
use crate::{
    audit::{AuditEvent, AuditKind},
    email::Email,
    error::{Error, Result},
    events::UserChange,
    mail::MailKind,
    password::Verification,
    session::{ClientInfo, Principal, SessionGrant, SignUpOutcome},
    store::StoreError,
    throttle::budget::PublicAction,
    user::{DEFAULT_ROLE, User, UserId, parse_name},
};

impl Accounts {
    /// Creates an account and signs it in; or, when the address must be
    /// verified first, answers [`SignUpOutcome::VerificationSent`] whether
    /// or not the address was free, and mails its owner either a
    /// verification link (a new account) or a notice (an existing one).
    pub async fn sign_up(&self, email: &str, password: &str, name: &str, client: &ClientInfo) -> Result<SignUpOutcome> {
        self.admit(PublicAction::SignUp, client).await?;
        let (email, name) = collect_violations(Email::parse("email", email), parse_name(name))?;
        let password = self.config.passwords.new_password("password", password, &email)?;
        // Hashed whether or not the address is free: both answers cost the same.
        let password_hash = self.hasher.hash(password).await?;

        let now = self.clock.now();
        let user = User {
            id: UserId::generate(now),
            email,
            name,
            email_verified: false,
            roles: vec![DEFAULT_ROLE.to_owned()],
            created_at: now,
            updated_at: now,
            two_factor_enabled: false,
            ban: None,
        };
        if self.config.require_email_verification {
            return self.sign_up_unverified(user, &password_hash, client).await;
        }
        let (token, session) = self.new_session(&user, client)?;
        let audit = AuditEvent::new(AuditKind::SignUp, now, client).user(user.id).session(&session.id);
        match self.user_store().create_user(&user, &password_hash, &session, &audit).await {
            Ok(()) => Ok(SignUpOutcome::SignedIn(Box::new(SessionGrant { token: token.expose(), session, user }))),
            Err(StoreError::Conflict(_)) => Err(Error::EmailTaken),
            Err(other) => Err(other.into()),
        }
    }

    /// Sign-up when addresses must be verified: the account without a
    /// session and its verification link, or, for a taken address, a notice
    /// to its owner. The caller cannot tell which.
    async fn sign_up_unverified(&self, user: User, password_hash: &str, client: &ClientInfo) -> Result<SignUpOutcome> {
        let settings = self.mail_settings()?;
        // A new account's link always goes out (nothing was sent to the
        // address before), but it counts towards the recipient's cap, which
        // then limits the notices a flood of sign-ups could send.
        let _ = self.throttle.admit_mail_to(&user.email).await;
        let (token, mail) = self.verification_for(settings, &user, "")?;
        let audit = AuditEvent::new(AuditKind::SignUp, user.created_at, client).user(user.id);
        match self.user_store().create_unverified_user(&user, password_hash, &token, &mail, &audit).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => self.notify_existing_account(settings, &user.email).await?,
            Err(other) => return Err(other.into()),
        }
        self.mail_queued.notify_one();
        Ok(SignUpOutcome::VerificationSent)
    }

    /// Changes the caller's profile; `None` keeps a field as it is.
    pub async fn update_current_user(
        &self,
        caller: &Principal,
        name: Option<&str>,
        client: &ClientInfo,
    ) -> Result<User> {
        let Some(name) = name else {
            return Ok(caller.user.clone());
        };
        let name = parse_name(name)?;
        let now = self.clock.now();
        let audit = AuditEvent::new(AuditKind::ProfileUpdated, now, client).user(caller.user.id);
        let event = user_changed(caller.user.id, UserChange::Profile);
        let user = self.user_store().update_user_name(caller.user.id, &name, now, &audit, &event).await?;
        self.publish(event);
        Ok(user)
    }

    /// Changes the caller's password after checking the current one, and ends
    /// their other sessions. Returns how many ended.
    pub async fn change_password(
        &self,
        caller: &Principal,
        current: &str,
        new: &str,
        client: &ClientInfo,
    ) -> Result<u64> {
        let new = self.config.passwords.new_password("new_password", new, &caller.user.email)?;
        self.require_step_up(caller)?;
        self.confirm_password(caller, "current_password", current, client).await?;
        let new_hash = self.hasher.hash(new).await?;
        let now = self.clock.now();
        let audit =
            AuditEvent::new(AuditKind::PasswordChanged, now, client).user(caller.user.id).session(&caller.session.id);
        let event = user_changed(caller.user.id, UserChange::Password);
        // Tell the mailbox, so a change by someone else does not go unseen.
        let notice = match self.mail_settings() {
            Ok(settings) => {
                Some(self.compose(settings, MailKind::PasswordChanged, &caller.user, "", Duration::ZERO)?)
            }
            Err(_) => None,
        };
        let revoked = self
            .user_store()
            .change_password(caller.user.id, &new_hash, &caller.session.id, now, notice.as_ref(), &audit, &event)
            .await?;
        self.publish(event);
        if notice.is_some() {
            self.mail_queued.notify_one();
        }
        Ok(revoked)
    }

    /// Deletes the caller's account after checking their password.
    pub async fn delete_current_user(&self, caller: &Principal, password: &str, client: &ClientInfo) -> Result<()> {
        self.require_step_up(caller)?;
        // An organization is never left without its one owner.
        let owned = self.organization_store().list_memberships(&caller.user).await?;
        if owned.iter().any(|membership| membership.role == crate::organization::OWNER) {
            return Err(Error::LastOwner);
        }
        self.confirm_password(caller, "password", password, client).await?;
        let audit = AuditEvent::new(AuditKind::UserDeleted, self.clock.now(), client)
            .user(caller.user.id)
            .detail(caller.user.email.to_string());
        let event = user_changed(caller.user.id, UserChange::Deleted);
        self.user_store().delete_user(caller.user.id, &audit, &event).await?;
        self.publish(event);
        Ok(())
    }

    /// Re-checks the caller's password for a sensitive change. Failures count
    /// towards the sign-in limits, so a stolen session cannot brute-force it.
    pub(super) async fn confirm_password(
        &self,
        caller: &Principal,
        field: &'static str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let password = self.config.passwords.presented_password(field, password)?;
        let attempt = self.reserve_attempt(caller.user.email.as_str(), Some(caller), client).await?;
        let stored = self.user_store().find_password_hash(caller.user.id).await?;
        match self.hasher.verify(password, stored).await? {
            Verification::Match { .. } => {
                self.throttle.refund(attempt).await;
                Ok(())
            }
            Verification::Mismatch => {
                let audit = AuditEvent::new(AuditKind::PasswordConfirmationFailed, self.clock.now(), client)
                    .user(caller.user.id)
                    .session(&caller.session.id)
                    .detail(field);
                self.audit_store().record_audit(&audit).await?;
                Err(Error::InvalidCredentials)
            }
        }
    }
}
