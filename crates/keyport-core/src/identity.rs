//! The use cases: sign-up, sign-in, session checks and a user's own account.
//!
//! [`Identity`] ties the rules of this crate to a [`Store`] and a [`Clock`].
//! The gRPC layer calls it and only translates types.

use std::{sync::Arc, time::Duration};

use crate::{
    audit::{AuditEvent, AuditKind},
    clock::Clock,
    email::Email,
    error::{Error, FieldViolation, Result},
    events::{EventPublisher, NoEvents, SessionEvent, UserChange},
    oauth::{IdentityProvider, OAuthConfig},
    password::{HashParams, HashingLimits, PasswordHasher, PasswordPolicy, Verification},
    rate_limit::{Attempt, Refusal, SignInLimiter, SignInLimits},
    session::{ClientInfo, Freshness, Session, SessionPolicy},
    store::{Expired, SessionBasis, Store, StoreError},
    token::{SessionId, SessionToken},
    user::{DEFAULT_ROLE, User, UserId, parse_name},
    validated_cache::ValidatedCache,
};

/// Tunable rules of an [`Identity`].
#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// Session lifetimes.
    pub sessions: SessionPolicy,
    /// Password length rules.
    pub passwords: PasswordPolicy,
    /// Argon2id cost.
    pub hashing: HashParams,
    /// Admission to the hashing pool.
    pub hashing_limits: HashingLimits,
    /// Failed sign-in throttling.
    pub sign_in_limits: SignInLimits,
    /// How long a cache subscribed to session events may reuse a validated
    /// session before asking again.
    pub session_cache_ttl: Duration,
    /// Social sign-in rules.
    pub oauth: OAuthConfig,
    /// How long this process reuses a session it read from storage; zero
    /// turns the cache off. Revocations drop entries at once.
    pub validated_cache_ttl: Duration,
    /// How long audit events are kept before the sweeper deletes them.
    pub audit_retention: Duration,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            sessions: SessionPolicy::default(),
            passwords: PasswordPolicy::default(),
            hashing: HashParams::default(),
            hashing_limits: HashingLimits::default(),
            sign_in_limits: SignInLimits::default(),
            session_cache_ttl: Duration::from_secs(60),
            oauth: OAuthConfig::default(),
            validated_cache_ttl: Duration::from_secs(5),
            audit_retention: Duration::from_secs(90 * 24 * 3600),
        }
    }
}

/// A new session as handed to its user.
#[derive(Debug)]
pub struct SessionGrant {
    /// The bearer token; shown once.
    pub token: String,
    /// The session.
    pub session: Session,
    /// Its user.
    pub user: User,
}

/// A validated session and its user: who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The caller's session.
    pub session: Session,
    /// The caller.
    pub user: User,
    /// True when validating pushed the session's expiry forward.
    pub refreshed: bool,
    /// How long a subscribed cache may reuse this answer.
    pub cache_ttl: Duration,
}

/// Keyport's use cases over a store and a clock.
#[derive(Clone)]
pub struct Identity {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) clock: Arc<dyn Clock>,
    hasher: PasswordHasher,
    limiter: SignInLimiter,
    events: Arc<dyn EventPublisher>,
    pub(crate) providers: Arc<Vec<Arc<dyn IdentityProvider>>>,
    cache: Arc<ValidatedCache>,
    pub(crate) config: IdentityConfig,
}

impl Identity {
    /// Builds the use cases. Fails only on invalid hashing parameters.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: IdentityConfig) -> Result<Self> {
        Ok(Self {
            hasher: PasswordHasher::new(config.hashing, config.hashing_limits)?,
            limiter: SignInLimiter::new(config.sign_in_limits, clock.clone()),
            events: Arc::new(NoEvents),
            providers: Arc::default(),
            cache: Arc::new(ValidatedCache::new(config.validated_cache_ttl)),
            store,
            clock,
            config,
        })
    }

    /// Offers sign-in with `providers`.
    pub fn with_providers(mut self, providers: Vec<Arc<dyn IdentityProvider>>) -> Self {
        self.providers = Arc::new(providers);
        self
    }

    /// Sends session events to `events` instead of dropping them.
    pub fn with_events(mut self, events: Arc<dyn EventPublisher>) -> Self {
        self.events = events;
        self
    }

    /// The rules in force.
    pub fn config(&self) -> &IdentityConfig {
        &self.config
    }

    /// Password hashes and verifications running right now (of at most
    /// `hashing_limits.workers`).
    pub fn hashes_running(&self) -> usize {
        self.hasher.running()
    }

    /// Checks that storage answers.
    pub async fn ping(&self) -> Result<()> {
        Ok(self.store.ping().await?)
    }

    /// Creates an account and signs it in.
    pub async fn sign_up(&self, email: &str, password: &str, name: &str, client: &ClientInfo) -> Result<SessionGrant> {
        let (email, name) = collect_violations(Email::parse("email", email), parse_name(name))?;
        let password = self.config.passwords.new_password("password", password)?;
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
        };
        let (token, session) = self.new_session(&user, client)?;
        let audit = AuditEvent::new(AuditKind::SignUp, now, client).user(user.id).session(&session.id);
        match self.store.create_user(&user, &password_hash, &session, &audit).await {
            Ok(()) => Ok(SessionGrant { token: token.expose(), session, user }),
            Err(StoreError::Conflict(_)) => Err(Error::EmailTaken),
            Err(other) => Err(other.into()),
        }
    }

    /// Signs in with email and password. Unknown email and wrong password are
    /// indistinguishable: same error, same work.
    pub async fn sign_in(&self, email: &str, password: &str, client: &ClientInfo) -> Result<SessionGrant> {
        let email = Email::parse("email", email)?;
        let password = self.config.passwords.presented_password("password", password)?;
        let now = self.clock.now();
        let attempt = self.reserve_attempt(email.as_str(), None, client).await?;

        let credentials = self.store.find_credentials_by_email(&email).await?;
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
                self.store.record_audit(&audit).await?;
                return Err(Error::InvalidCredentials);
            }
        };

        let (token, session) = self.new_session(&user, client)?;
        let audit = AuditEvent::new(AuditKind::SignIn, now, client).user(user.id).session(&session.id);
        let basis = SessionBasis::Password { verified_hash: &verified_hash, rehash: rehash.as_deref() };
        // The password changed (or the user went) while it was being
        // verified: the old password no longer signs in.
        if !self.store.create_session(&session, basis, &audit).await? {
            return Err(Error::InvalidCredentials);
        }
        self.limiter.succeeded(attempt);
        Ok(SessionGrant { token: token.expose(), session, user })
    }

    /// Validates a session token, sliding its expiry when due.
    pub async fn authenticate(&self, token: &str) -> Result<Principal> {
        let token = SessionToken::parse(token)?;
        let now = self.clock.now();
        // Taken before any read or write: whatever this call caches must not
        // predate an event that came in meanwhile.
        let ticket = self.cache.ticket();
        let (mut session, user) = match self.cache.get(token.id(), now) {
            Some(cached) => cached,
            None => {
                let found = self.store.find_session(token.id()).await?.ok_or(Error::Unauthenticated)?;
                self.cache.insert(&found.0, &found.1, now, ticket);
                found
            }
        };
        if !session.secret_hash.verify(&token.secret_hash()) {
            return Err(Error::Unauthenticated);
        }
        let refreshed = match self.config.sessions.freshness(&session, now) {
            Freshness::Expired => return Err(Error::SessionExpired),
            Freshness::Valid => false,
            Freshness::Refresh { expires_at } => {
                // No row refreshed: revoked meanwhile, so not valid either.
                if !self.store.refresh_session(&session.id, expires_at, now).await? {
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
        Ok(self.store.list_sessions(caller.user.id, self.clock.now()).await?)
    }

    /// Ends one of the caller's sessions. Another user's session id is
    /// [`Error::SessionNotFound`], exactly like an unknown one.
    pub async fn revoke_session(&self, caller: &Principal, session_id: &str, client: &ClientInfo) -> Result<()> {
        let id = SessionId::parse(session_id)?;
        let audit =
            AuditEvent::new(AuditKind::SessionRevoked, self.clock.now(), client).user(caller.user.id).session(&id);
        let event = SessionEvent::SessionRevoked { session_id: id.clone(), user_id: caller.user.id };
        if !self.store.delete_session(caller.user.id, &id, &audit, &event).await? {
            return Err(Error::SessionNotFound);
        }
        self.publish(event);
        Ok(())
    }

    /// Ends all the caller's sessions but the calling one.
    pub async fn revoke_other_sessions(&self, caller: &Principal, client: &ClientInfo) -> Result<u64> {
        let audit = AuditEvent::new(AuditKind::OtherSessionsRevoked, self.clock.now(), client)
            .user(caller.user.id)
            .session(&caller.session.id);
        let event = user_changed(caller.user.id, UserChange::SessionsRevoked);
        let revoked = self.store.delete_other_sessions(caller.user.id, &caller.session.id, &audit, &event).await?;
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
        self.store.delete_session(caller.user.id, &caller.session.id, &audit, &event).await?;
        self.publish(event);
        Ok(())
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
        let user = self.store.update_user_name(caller.user.id, &name, now, &audit, &event).await?;
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
        let new = self.config.passwords.new_password("new_password", new)?;
        self.confirm_password(caller, "current_password", current, client).await?;
        let new_hash = self.hasher.hash(new).await?;
        let now = self.clock.now();
        let audit =
            AuditEvent::new(AuditKind::PasswordChanged, now, client).user(caller.user.id).session(&caller.session.id);
        let event = user_changed(caller.user.id, UserChange::Password);
        let revoked =
            self.store.change_password(caller.user.id, &new_hash, &caller.session.id, now, &audit, &event).await?;
        self.publish(event);
        Ok(revoked)
    }

    /// Deletes the caller's account after checking their password.
    pub async fn delete_current_user(&self, caller: &Principal, password: &str, client: &ClientInfo) -> Result<()> {
        self.confirm_password(caller, "password", password, client).await?;
        let audit = AuditEvent::new(AuditKind::UserDeleted, self.clock.now(), client)
            .user(caller.user.id)
            .detail(caller.user.email.to_string());
        let event = user_changed(caller.user.id, UserChange::Deleted);
        self.store.delete_user(caller.user.id, &audit, &event).await?;
        self.publish(event);
        Ok(())
    }

    /// Deletes what has outlived its use: expired sessions and OAuth flows,
    /// and audit events older than the retention period.
    pub async fn sweep_expired(&self) -> Result<Expired> {
        let now = self.clock.now();
        let audit_before = now.saturating_sub(self.config.audit_retention);
        Ok(self.store.delete_expired(now, audit_before).await?)
    }

    /// Re-checks the caller's password for a sensitive change. Failures count
    /// towards the sign-in limits, so a stolen session cannot brute-force it.
    async fn confirm_password(
        &self,
        caller: &Principal,
        field: &'static str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let password = self.config.passwords.presented_password(field, password)?;
        let attempt = self.reserve_attempt(caller.user.email.as_str(), Some(caller), client).await?;
        let stored = self.store.find_password_hash(caller.user.id).await?;
        match self.hasher.verify(password, stored).await? {
            Verification::Match { .. } => {
                self.limiter.succeeded(attempt);
                Ok(())
            }
            Verification::Mismatch => {
                let audit = AuditEvent::new(AuditKind::PasswordConfirmationFailed, self.clock.now(), client)
                    .user(caller.user.id)
                    .session(&caller.session.id)
                    .detail(field);
                self.store.record_audit(&audit).await?;
                Err(Error::InvalidCredentials)
            }
        }
    }

    /// Reserves a password attempt against the limits. A refusal is audited
    /// only at its milestones (1st, 10th, 100th, ... of the window), so a
    /// flood of refused attempts costs a handful of rows, not one each.
    async fn reserve_attempt(&self, account: &str, caller: Option<&Principal>, client: &ClientInfo) -> Result<Attempt> {
        let refusal: Refusal = match self.limiter.reserve(account, client.ip_address.as_deref()) {
            Ok(attempt) => return Ok(attempt),
            Err(refusal) => refusal,
        };
        if refusal.is_milestone() {
            let kind = if caller.is_some() { AuditKind::PasswordConfirmationFailed } else { AuditKind::SignInFailed };
            let mut audit = AuditEvent::new(kind, self.clock.now(), client)
                .detail(format!("rate_limited:refused={}", refusal.refused));
            if let Some(caller) = caller {
                audit = audit.user(caller.user.id).session(&caller.session.id);
            }
            self.store.record_audit(&audit).await?;
        }
        Err(refusal.into())
    }

    /// Drops what `event` makes stale here, before anyone else hears of it,
    /// then publishes it.
    fn publish(&self, event: SessionEvent) {
        self.cache.apply(&event);
        self.events.publish(event);
    }

    /// Applies another replica's event to this process's session cache.
    pub fn apply_remote_event(&self, event: &SessionEvent) {
        self.cache.apply(event);
    }

    /// Empties this process's session cache, and serves from it again only
    /// when `healthy` (storage and the event relay reachable).
    pub fn reset_session_cache(&self, healthy: bool) {
        self.cache.reset(healthy);
    }

    pub(crate) fn new_session(&self, user: &User, client: &ClientInfo) -> Result<(SessionToken, Session)> {
        let token = SessionToken::generate()?;
        let now = self.clock.now();
        let (expires_at, absolute_expires_at) = self.config.sessions.expiries_from(now);
        let session = Session {
            id: token.id().clone(),
            user_id: user.id,
            secret_hash: token.secret_hash(),
            created_at: now,
            expires_at,
            absolute_expires_at,
            refreshed_at: now,
            client: client.clone(),
        };
        Ok((token, session))
    }
}

fn user_changed(user_id: UserId, change: UserChange) -> SessionEvent {
    SessionEvent::UserChanged { user_id, change }
}

/// Combines two validations, reporting every violated field at once.
fn collect_violations<A, B>(a: Result<A>, b: Result<B>) -> Result<(A, B)> {
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (a, b) => {
            let mut violations: Vec<FieldViolation> = Vec::new();
            for error in [a.err(), b.err()].into_iter().flatten() {
                match error {
                    Error::InvalidArgument(v) => violations.extend(v),
                    other => return Err(other),
                }
            }
            Err(Error::InvalidArgument(violations))
        }
    }
}
