//! The use cases, by area: sign-up and a user's own account
//! (`users.rs`), sign-in and sessions (`sessions.rs`), sign-in with a
//! provider and linked accounts (`oauth.rs`), and the flows through the
//! user's mailbox (`mail.rs`, and signing in through it: `email_sign_in.rs`),
//! second factors (`factors.rs`) and signing in past them (`challenge.rs`).
//!
//! [`Accounts`] ties the rules of this crate to a [`Store`] and a [`Clock`].
//! The gRPC layer calls it and only translates types. Use cases reach
//! storage through one accessor per area (`self.session_store()`, ...), so
//! each call names the area it touches.

use std::{sync::Arc, time::Duration};

use tokio::sync::{Notify, Semaphore};

use crate::{
    access_token::AccessTokenPolicy,
    api_key::ApiKeyPolicy,
    audit::{AuditEvent, AuditKind},
    authorization::RoleBook,
    clock::Clock,
    error::{Error, FieldViolation, Result},
    events::{EventPublisher, NoEvents, SessionEvent, UserChange},
    mail::{MAX_RESET_PASSWORD_TTL, MAX_SIGN_IN_TTL, MAX_VERIFY_EMAIL_TTL, MailSettings},
    oauth::{IdentityProvider, OAuthConfig},
    organization::OrganizationPolicy,
    password::{HashParams, HashingLimits, PasswordHasher, PasswordPolicy},
    second_factor::{Assurance, FactorSettings},
    session::{ClientInfo, Principal, Session, SessionPolicy},
    store::{
        AuditStore, CounterStore, EmailSignInStore, EmailTokenStore, Expired, FactorStore, MailStore, OAuthStore,
        PasskeyStore, RoleStore, SessionStore, Store, UserStore,
    },
    throttle::{
        Throttle,
        budget::{PublicAction, RequestLimits},
        failures::{Attempt, Refusal, SignInLimits},
    },
    token::SessionToken,
    user::{User, UserId},
    validated_cache::ValidatedCache,
};

mod access_tokens;
mod admin;
mod api_keys;
mod authorization;
mod challenge;
mod email_change;
mod email_sign_in;
mod factors;
mod first_password;
mod mail;
mod oauth;
mod organizations;
mod passkeys;
mod roles;
mod service_accounts;
mod sessions;
#[cfg(test)]
mod tests;

pub use access_tokens::{IssuedAccessToken, Jwks};
pub use admin::{
    Admin, AuditFilter, AuditPage, DEFAULT_PAGE_SIZE, MAX_BAN_REASON_CHARS, MAX_PAGE_SIZE, NewUser, UserDetails,
    UserFilter, UserPage,
};
pub use api_keys::{CreatedApiKey, Keyring, MAX_KEY_RATE_PER_MINUTE, NewApiKey};
pub use authorization::{Authorization, Caller};
pub use challenge::{CompletedSignIn, IssuedChallenge, SignedIn};
pub use email_sign_in::{EmailSignedIn, StartedEmailSignIn};
pub use factors::{FactorSummary, TotpEnrollment};
pub use passkeys::StartedCeremony;
pub use roles::{MAX_ROLE_GRANTS, RoleInfo};
pub use service_accounts::MAX_SERVICE_ACCOUNT_ROLES;
mod users;

/// How long an expired API key is kept before the sweeper deletes it.
const KEEP_EXPIRED_KEYS: Duration = Duration::from_secs(30 * 24 * 3600);

/// Tunable rules of [`Accounts`].
#[derive(Debug, Clone)]
pub struct AccountsConfig {
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
    /// Budgets of the public RPCs per client address.
    pub request_limits: RequestLimits,
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
    /// Password accounts sign in only once their address is verified, and
    /// sign-up answers the same for new and taken addresses. Needs mail.
    pub require_email_verification: bool,
    /// An email sign-in for an address without an account creates one.
    pub sign_up_by_email: bool,
    /// Second factors: freshness, challenge lifetime, sealing keys.
    pub second_factors: FactorSettings,
    /// The permission catalogue and the roles that grant them (the
    /// configuration's and the run-time ones).
    pub roles: Arc<RoleBook>,
    /// How admins may act as other users.
    pub impersonation: ImpersonationPolicy,
    /// How API keys live.
    pub api_keys: ApiKeyPolicy,
    /// Organization roles and limits.
    pub organizations: OrganizationPolicy,
    /// Access tokens (JWTs): issuer, audiences, lifetime, key rotation.
    pub access_tokens: AccessTokenPolicy,
}

/// How admins may act as other users ([`Accounts::impersonate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImpersonationPolicy {
    /// Longest an impersonation session lasts, however it is used.
    pub ttl: Duration,
    /// Whether an admin may impersonate a user whose roles grant any
    /// administration permission (off: only plain users).
    pub admins: bool,
}

impl Default for ImpersonationPolicy {
    fn default() -> Self {
        Self { ttl: Duration::from_secs(3600), admins: false }
    }
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            sessions: SessionPolicy::default(),
            passwords: PasswordPolicy::default(),
            hashing: HashParams::default(),
            hashing_limits: HashingLimits::default(),
            sign_in_limits: SignInLimits::default(),
            request_limits: RequestLimits::default(),
            session_cache_ttl: Duration::from_secs(60),
            oauth: OAuthConfig::default(),
            validated_cache_ttl: Duration::from_secs(5),
            audit_retention: Duration::from_secs(90 * 24 * 3600),
            require_email_verification: false,
            sign_up_by_email: false,
            second_factors: FactorSettings::default(),
            roles: Arc::new(RoleBook::default()),
            impersonation: ImpersonationPolicy::default(),
            api_keys: ApiKeyPolicy::default(),
            organizations: OrganizationPolicy::default(),
            access_tokens: AccessTokenPolicy::default(),
        }
    }
}

/// Keyport's use cases over a store and a clock: the accounts of users,
/// how they sign in, and their sessions.
#[derive(Clone)]
pub struct Accounts {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    hasher: PasswordHasher,
    /// Request budgets, mail caps and failed sign-ins.
    throttle: Throttle,
    events: Arc<dyn EventPublisher>,
    providers: Arc<Vec<Arc<dyn IdentityProvider>>>,
    cache: Arc<ValidatedCache>,
    mail: Option<Arc<MailSettings>>,
    /// Woken whenever a use case queues a mail, so the courier sends it now.
    mail_queued: Arc<Notify>,
    /// Permits of the work enumeration-safe requests do after answering.
    detached: Arc<Semaphore>,
    /// The access-token signing keys as last read.
    signing_keys: Arc<access_tokens::SigningKeys>,
    config: AccountsConfig,
}

impl Accounts {
    /// Builds the use cases. Fails only on invalid hashing parameters.
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, config: AccountsConfig) -> Result<Self> {
        Ok(Self {
            hasher: PasswordHasher::new(config.hashing, config.hashing_limits)?,
            throttle: Throttle::new(clock.clone(), config.request_limits.rate(), config.sign_in_limits),
            events: Arc::new(NoEvents),
            providers: Arc::default(),
            cache: Arc::new(ValidatedCache::new(config.validated_cache_ttl)),
            mail: None,
            mail_queued: Arc::new(Notify::new()),
            detached: Arc::new(Semaphore::new(mail::MAX_DETACHED)),
            signing_keys: Arc::default(),
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

    /// Keeps the throttling counters in `counters` (shared by every
    /// replica) instead of this process's memory.
    pub fn with_counters(mut self, counters: Arc<dyn CounterStore>) -> Self {
        self.throttle = self.throttle.counted_in(counters);
        self
    }

    /// Sends session events to `events` instead of dropping them.
    pub fn with_events(mut self, events: Arc<dyn EventPublisher>) -> Self {
        self.events = events;
        self
    }

    /// Sends mail with `settings` (the flows that need mail answer
    /// [`Error::MailDisabled`] without). Token lifetimes are capped at
    /// their maximum.
    pub fn with_mail(mut self, mut settings: MailSettings) -> Self {
        settings.verify_email_ttl = settings.verify_email_ttl.min(MAX_VERIFY_EMAIL_TTL);
        settings.reset_password_ttl = settings.reset_password_ttl.min(MAX_RESET_PASSWORD_TTL);
        settings.sign_in_ttl = settings.sign_in_ttl.min(MAX_SIGN_IN_TTL);
        self.throttle = self.throttle.capping_mail(settings.recipient_limits.rate());
        self.mail = Some(Arc::new(settings));
        self
    }

    /// Whether mail is configured.
    pub fn sends_mail(&self) -> bool {
        self.mail.is_some()
    }

    /// Resolves after a use case queued a mail (at once if one did since
    /// the last call): what the courier waits on between polls.
    pub async fn mail_queued(&self) {
        self.mail_queued.notified().await;
    }

    /// The outbox, for the courier.
    pub fn outbox(&self) -> &dyn MailStore {
        self.mail_store()
    }

    /// The time now, by this instance's clock.
    pub fn now(&self) -> crate::clock::Timestamp {
        self.clock.now()
    }

    /// The rules in force.
    pub fn config(&self) -> &AccountsConfig {
        &self.config
    }

    /// Password hashes and verifications running right now (of at most
    /// `hashing_limits.workers`).
    pub fn hashes_running(&self) -> usize {
        self.hasher.running()
    }

    /// The levels a metrics scrape samples: hashing threads busy and callers
    /// waiting for one, and entries in the session cache.
    pub fn gauges(&self) -> Gauges {
        Gauges {
            hashes_running: self.hasher.running(),
            hashes_queued: self.hasher.queued(),
            cached_entries: self.cache.len(),
        }
    }

    /// Mails in the outbox not yet sent nor failed for good.
    pub async fn pending_mail(&self) -> Result<u64> {
        Ok(self.mail_store().count_pending_mail().await?)
    }

    /// Checks that storage answers.
    pub async fn ping(&self) -> Result<()> {
        Ok(self.store.ping().await?)
    }

    /// Takes one request of a public RPC from the client address's budget.
    async fn admit(&self, action: PublicAction, client: &ClientInfo) -> Result<()> {
        self.throttle.admit(action, client.ip_address.as_deref()).await
    }

    /// Deletes what has outlived its use: expired sessions, OAuth flows,
    /// email tokens and sign-ins, idle throttling counters, and mails and
    /// audit events older than the retention period.
    pub async fn sweep_expired(&self) -> Result<Expired> {
        let now = self.clock.now();
        let audit_before = now.saturating_sub(self.config.audit_retention);
        Ok(Expired {
            sessions: self.session_store().delete_expired_sessions(now).await?,
            oauth_flows: self.oauth_store().delete_expired_oauth_flows(now).await?,
            email_tokens: self.email_token_store().delete_expired_email_tokens(now).await?,
            email_sign_ins: self.email_sign_in_store().delete_expired_email_sign_ins(now).await?,
            challenges: self.factor_store().delete_expired_challenges(now).await?,
            ceremonies: self.passkey_store().delete_expired_ceremonies(now).await?,
            mails: self.mail_store().delete_mail_before(audit_before).await?,
            counters: self.throttle.sweep().await?,
            audit_events: self.audit_store().delete_audit_events_before(audit_before).await?,
            // Kept a while past their expiry, to say "expired" rather than
            // "unknown" to a caller still using one.
            api_keys: self
                .api_key_store()
                .delete_api_keys_expired_before(now.saturating_sub(KEEP_EXPIRED_KEYS))
                .await?,
            invitations: self.organization_store().delete_invitations_expired_before(now).await?,
            signing_keys: self.sweep_signing_keys().await?,
        })
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

    // Each area's storage on its own, so that a use case names the areas it
    // touches at every call (and a new area's use cases get their own).

    fn role_store(&self) -> &dyn RoleStore {
        self.store.as_ref()
    }

    fn user_store(&self) -> &dyn UserStore {
        self.store.as_ref()
    }

    fn session_store(&self) -> &dyn SessionStore {
        self.store.as_ref()
    }

    fn oauth_store(&self) -> &dyn OAuthStore {
        self.store.as_ref()
    }

    fn audit_store(&self) -> &dyn AuditStore {
        self.store.as_ref()
    }

    fn email_token_store(&self) -> &dyn EmailTokenStore {
        self.store.as_ref()
    }

    fn email_sign_in_store(&self) -> &dyn EmailSignInStore {
        self.store.as_ref()
    }

    fn mail_store(&self) -> &dyn MailStore {
        self.store.as_ref()
    }

    fn factor_store(&self) -> &dyn FactorStore {
        self.store.as_ref()
    }

    fn passkey_store(&self) -> &dyn PasskeyStore {
        self.store.as_ref()
    }

    /// Reserves a password attempt against the limits. A refusal is audited
    /// only at its milestones (1st, 10th, 100th, ... of the window), so a
    /// flood of refused attempts costs a handful of rows, not one each.
    async fn reserve_attempt(&self, account: &str, caller: Option<&Principal>, client: &ClientInfo) -> Result<Attempt> {
        let refusal: Refusal = match self.throttle.reserve_sign_in(account, client.ip_address.as_deref()).await? {
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
            self.audit_store().record_audit(&audit).await?;
        }
        Err(refusal.into())
    }

    /// Drops what `event` makes stale here, before anyone else hears of it,
    /// then publishes it.
    fn publish(&self, event: SessionEvent) {
        self.cache.apply(&event);
        self.events.publish(event);
    }

    /// Reads the run-time roles and puts them in force with the
    /// configuration's: at start, after this replica changed them, and
    /// when another replica says it did ([`SessionEvent::RolesChanged`]).
    pub async fn reload_roles(&self) -> Result<()> {
        let runtime = self.role_store().list_roles().await?;
        self.config.roles.replace_runtime(&runtime);
        Ok(())
    }

    /// Why a sign-in failed whose session (or challenge) the store refused
    /// to write: a ban that landed meanwhile, with its own reason; else
    /// `otherwise`, what else changed meanwhile (the password, the factor,
    /// the user).
    async fn refused_sign_in(&self, user_id: UserId, otherwise: Error) -> Result<Error> {
        let now = self.clock.now();
        let banned = self.user_store().find_user(user_id).await?.is_some_and(|user| user.ban_at(now).is_some());
        Ok(if banned { Error::UserBanned } else { otherwise })
    }

    fn new_session(&self, user: &User, client: &ClientInfo) -> Result<(SessionToken, Session)> {
        self.new_session_at(user, client, Assurance::Aal1)
    }

    fn new_session_at(
        &self,
        user: &User,
        client: &ClientInfo,
        assurance: Assurance,
    ) -> Result<(SessionToken, Session)> {
        let now = self.clock.now();
        // Every sign-in path creates its session here; the store re-checks
        // the ban under the user's lock, for a ban that lands meanwhile.
        if user.ban_at(now).is_some() {
            return Err(Error::UserBanned);
        }
        let token = SessionToken::generate()?;
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
            assurance,
            authenticated_at: now,
            impersonator: None,
            active_organization: None,
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

/// Levels sampled by a metrics scrape ([`Accounts::gauges`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gauges {
    /// Password hashes and verifications running on the hashing threads.
    pub hashes_running: usize,
    /// Callers waiting for a hashing thread.
    pub hashes_queued: usize,
    /// Sessions, API keys and memberships in the server's cache.
    pub cached_entries: usize,
}
