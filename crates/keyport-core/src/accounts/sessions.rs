//! Sign-in and sessions: validate, list, revoke, sign out.

use super::{Accounts, SignedIn, user_changed};
use crate::{
    api_key::is_api_key,
    audit::{AuditEvent, AuditKind},
    email::Email,
    error::{Error, Result},
    events::{SessionEvent, UserChange},
    password::Verification,
    session::{ClientInfo, Freshness, Principal, Session, SessionGrant},
    store::SessionBasis,
    throttle::budget::PublicAction,
    token::{SessionId, SessionToken},
};

impl Accounts {
    /// Signs in with email and password. Unknown email and wrong password are
    /// indistinguishable: same error, same work.
    /// A user with a second factor gets a challenge instead of a session.
    pub async fn sign_in(&self, email: &str, password: &str, client: &ClientInfo) -> Result<SignedIn> {
        self.admit(PublicAction::SignIn, client).await?;
        let email = Email::parse("email", email)?;
        let password = self.config.passwords.presented_password("password", password)?;
        let now = self.clock.now();
        let attempt = self.reserve_attempt(email.as_str(), None, client).await?;

        let credentials = self.user_store().find_credentials_by_email(&email).await?;
        let (user, stored_hash) = match credentials {
            Some(c) => (Some(c.user), Some(c.password_hash)),
            None => (None, None),
        };
        let verification = self.hasher.verify(password, stored_hash.clone()).await?;
        let (user, verified_hash, rehash) = match (user, stored_hash, verification) {
            (Some(user), Some(hash), Verification::Match { rehash }) => (user, hash, rehash),
            (user, _, _) => {
                let audit = AuditEvent::new(AuditKind::SignInFailed, now, client);
                let audit = match user {
                    Some(user) => audit.user(user.id).detail("wrong_password"),
                    None => audit.detail(format!("unknown_email:{email}")),
                };
                self.audit_store().record_audit(&audit).await?;
                return Err(Error::InvalidCredentials);
            }
        };

        if self.config.require_email_verification && !user.email_verified {
            // Only after the right password: a wrong one says nothing more.
            self.throttle.refund(attempt).await;
            let audit =
                AuditEvent::new(AuditKind::SignInFailed, now, client).user(user.id).detail("email_not_verified");
            self.audit_store().record_audit(&audit).await?;
            return Err(Error::EmailNotVerified);
        }
        let basis = SessionBasis::Password { verified_hash: &verified_hash, rehash: rehash.as_deref() };
        // The password changed meanwhile: refused as for a session.
        if let Some(challenge) = self.challenge_for(&user, "password", basis, Error::InvalidCredentials, client).await?
        {
            self.throttle.refund(attempt).await;
            return Ok(SignedIn::Challenge(challenge));
        }
        let (token, session) = self.new_session(&user, client)?;
        let audit = AuditEvent::new(AuditKind::SignIn, now, client).user(user.id).session(&session.id);
        // On its own task, as `complete_sign_in`'s: a caller that goes away
        // cannot leave the transaction open with the user's row locked.
        let created = {
            let (accounts, session) = (self.clone(), session.clone());
            self.to_completion(async move {
                let basis = SessionBasis::Password { verified_hash: &verified_hash, rehash: rehash.as_deref() };
                Ok(accounts.session_store().create_session(&session, basis, &audit).await?)
            })
            .await?
        };
        // The password changed (or the user went, or was banned) while it
        // was being verified: the old password no longer signs in.
        if !created {
            return Err(self.refused_sign_in(user.id, Error::InvalidCredentials).await?);
        }
        self.throttle.refund(attempt).await;
        Ok(SignedIn::Session(SessionGrant { token: token.expose(), session, user }))
    }

    /// Validates a session token, sliding its expiry when due.
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        if is_api_key(token) {
            return Err(Error::ApiKeyNotAccepted);
        }
        let token = SessionToken::parse(token)?;
        let now = self.clock.now();
        // Taken before any read or write: whatever this call caches must not
        // predate an event that came in meanwhile.
        let ticket = self.cache.ticket();
        let (mut session, user) = match self.cache.get(token.id(), now) {
            Some(cached) => cached,
            None => {
                let found = self.session_store().find_session(token.id()).await?.ok_or(Error::Unauthenticated)?;
                self.cache.insert(&found.0, &found.1, now, ticket);
                found
            }
        };
        if !session.secret_hash.verify(&token.secret_hash()) {
            return Err(Error::Unauthenticated);
        }
        // A ban deletes the user's sessions; this covers a stale read.
        if user.ban_at(now).is_some() {
            return Err(Error::Unauthenticated);
        }
        let refreshed = match self.config.sessions.freshness(&session, now) {
            Freshness::Expired => return Err(Error::SessionExpired),
            Freshness::Valid => false,
            Freshness::Refresh { expires_at } => {
                // No row refreshed: revoked meanwhile, so not valid either.
                if !self.session_store().refresh_session(&session.id, expires_at, now).await? {
                    self.cache.apply(&SessionEvent::SessionRevoked { session_id: session.id, user_id: user.id });
                    return Err(Error::Unauthenticated);
                }
                session.expires_at = expires_at;
                session.refreshed_at = now;
                self.cache.insert(&session, &user, now, ticket);
                true
            }
        };
        let until_expiry = session.expires_at.min(session.absolute_expires_at).duration_since(now);
        Ok(Principal { session, user, refreshed, cache_ttl: self.config.session_cache_ttl.min(until_expiry) })
    }

    /// The caller's live sessions, newest first.
    pub async fn list_sessions(&self, caller: &Principal) -> Result<Vec<Session>> {
        Ok(self.session_store().list_sessions(caller.user.id, self.clock.now()).await?)
    }

    /// Ends one of the caller's sessions. Another user's session id is
    /// [`Error::SessionNotFound`], exactly like an unknown one.
    pub async fn revoke_session(&self, caller: &Principal, session_id: &str, client: &ClientInfo) -> Result<()> {
        let id = SessionId::parse(session_id)?;
        let audit =
            AuditEvent::new(AuditKind::SessionRevoked, self.clock.now(), client).user(caller.user.id).session(&id);
        let event = SessionEvent::SessionRevoked { session_id: id.clone(), user_id: caller.user.id };
        if !self.session_store().delete_session(caller.user.id, &id, &audit, &event).await? {
            return Err(Error::SessionNotFound);
        }
        self.publish(event);
        Ok(())
    }

    /// Ends all the caller's sessions but the calling one.
    pub async fn revoke_other_sessions(&self, caller: &Principal, client: &ClientInfo) -> Result<u64> {
        self.refuse_impersonated(caller)?;
        let audit = AuditEvent::new(AuditKind::OtherSessionsRevoked, self.clock.now(), client)
            .user(caller.user.id)
            .session(&caller.session.id);
        let event = user_changed(caller.user.id, UserChange::SessionsRevoked);
        let revoked = self
            .session_store()
            .delete_other_sessions(caller.user.id, Some(&caller.session.id), &audit, &event)
            .await?;
        if revoked > 0 {
            self.publish(event);
        }
        Ok(revoked)
    }

    /// Ends the calling session.
    pub async fn sign_out(&self, caller: &Principal, client: &ClientInfo) -> Result<()> {
        let audit = AuditEvent::new(AuditKind::SignOut, self.clock.now(), client)
            .user(caller.user.id)
            .session(&caller.session.id);
        let event = SessionEvent::SessionRevoked { session_id: caller.session.id.clone(), user_id: caller.user.id };
        self.session_store().delete_session(caller.user.id, &caller.session.id, &audit, &event).await?;
        self.publish(event);
        Ok(())
    }
}
