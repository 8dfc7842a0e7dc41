//! The storage contract: what the domain needs from a database.
//!
//! Each method is one atomic unit of work; where an operation touches several
//! rows (sign-up, password change, deletion) the implementation runs it in a
//! transaction, so a failure leaves nothing half-written.
//!
//! Methods that end sessions or change a user take the [`SessionEvent`] that
//! other replicas must hear of, and emit it in the same transaction as the
//! change (PostgreSQL `NOTIFY` is transactional): a change is never committed
//! without its event, and the event is out before the call returns.

use async_trait::async_trait;

use crate::{
    audit::AuditEvent,
    clock::Timestamp,
    email::Email,
    events::SessionEvent,
    oauth::{LinkedAccount, OAuthFlow},
    session::Session,
    token::SessionId,
    user::{User, UserId},
};

/// Why a storage call failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique constraint refused the write (e.g. the email is taken).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The database cannot be reached, or stayed busy too long.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The user the call is about is gone (deleted by a concurrent call).
    #[error("the user no longer exists")]
    NotFound,
    /// Anything else.
    #[error("database error: {0}")]
    Other(String),
}

impl From<StoreError> for crate::Error {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(cause) => Self::Unavailable(cause),
            // The caller's session went with the user.
            StoreError::NotFound => Self::Unauthenticated,
            StoreError::Conflict(cause) | StoreError::Other(cause) => Self::Internal(cause),
        }
    }
}

/// Result of a storage call.
pub type StoreResult<T> = Result<T, StoreError>;

/// A user together with their password hash.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The user.
    pub user: User,
    /// Argon2id PHC string.
    pub password_hash: String,
}

/// Persistence for users, passwords, sessions and the audit trail.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks that the database answers.
    async fn ping(&self) -> StoreResult<()>;

    /// Creates a user with a password and a first session.
    /// [`StoreError::Conflict`] when the email is taken.
    async fn create_user(
        &self,
        user: &User,
        password_hash: &str,
        session: &Session,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// The user with this email and their password hash.
    async fn find_credentials_by_email(&self, email: &Email) -> StoreResult<Option<Credentials>>;

    /// The password hash of a user.
    async fn find_password_hash(&self, user_id: UserId) -> StoreResult<Option<String>>;

    /// Stores a new session if what it was granted on still holds, in the
    /// same transaction that inserts it; returns false (and writes nothing)
    /// when the user is gone or the verified password was replaced meanwhile.
    async fn create_session(&self, session: &Session, basis: SessionBasis<'_>, audit: &AuditEvent)
    -> StoreResult<bool>;

    /// A session and its user, by session id. The hot path.
    async fn find_session(&self, id: &SessionId) -> StoreResult<Option<(Session, User)>>;

    /// Pushes a session's idle expiry forward; false when the session is
    /// gone (revoked meanwhile), so nothing may treat it as valid.
    async fn refresh_session(
        &self,
        id: &SessionId,
        expires_at: Timestamp,
        refreshed_at: Timestamp,
    ) -> StoreResult<bool>;

    /// A user's sessions that have not expired at `now`, newest first.
    async fn list_sessions(&self, user_id: UserId, now: Timestamp) -> StoreResult<Vec<Session>>;

    /// Deletes one of a user's sessions and emits `event`; false (and no
    /// event) when the user has no such session.
    async fn delete_session(
        &self,
        user_id: UserId,
        id: &SessionId,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<bool>;

    /// Deletes all of a user's sessions except `keep`; returns how many, and
    /// emits `event` when there were any.
    async fn delete_other_sessions(
        &self,
        user_id: UserId,
        keep: &SessionId,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<u64>;

    /// Sets a user's display name and emits `event`.
    async fn update_user_name(
        &self,
        user_id: UserId,
        name: &str,
        now: Timestamp,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<User>;

    /// Replaces the password and deletes every session but `keep`, atomically,
    /// and emits `event`; returns how many sessions ended.
    async fn change_password(
        &self,
        user_id: UserId,
        password_hash: &str,
        keep: &SessionId,
        now: Timestamp,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<u64>;

    /// Deletes a user with their password and sessions, and emits `event`.
    async fn delete_user(&self, user_id: UserId, audit: &AuditEvent, event: &SessionEvent) -> StoreResult<()>;

    /// Appends to the audit trail.
    async fn record_audit(&self, event: &AuditEvent) -> StoreResult<()>;

    /// Deletes what has outlived its use at `now`: expired sessions, expired
    /// OAuth flows, and audit events older than `audit_before`.
    async fn delete_expired(&self, now: Timestamp, audit_before: Timestamp) -> StoreResult<Expired>;

    /// Stores a started OAuth flow.
    async fn create_oauth_flow(&self, flow: &OAuthFlow) -> StoreResult<()>;

    /// Removes and returns the flow with this state hash: a flow can be
    /// taken once, however many callers race for it.
    async fn take_oauth_flow(&self, state_hash: &[u8; 32]) -> StoreResult<Option<OAuthFlow>>;

    /// The linked account for an external identity, with its user.
    async fn find_linked_account(&self, provider_id: &str, subject: &str)
    -> StoreResult<Option<(LinkedAccount, User)>>;

    /// The user with this email, whether or not they have a password.
    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<User>>;

    /// Creates a user without a password, their linked account and a first
    /// session. [`StoreError::Conflict`] when the email or identity is taken.
    async fn create_oauth_user(
        &self,
        user: &User,
        account: &LinkedAccount,
        session: &Session,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Links an external identity to an existing user.
    /// [`StoreError::Conflict`] when the identity is linked already.
    async fn link_account(&self, account: &LinkedAccount, audit: &AuditEvent) -> StoreResult<()>;

    /// The accounts linked to a user, oldest first.
    async fn list_linked_accounts(&self, user_id: UserId) -> StoreResult<Vec<LinkedAccount>>;

    /// Unlinks an account unless it is the user's last way to sign in (no
    /// password and no other account).
    async fn unlink_account(
        &self,
        user_id: UserId,
        provider_id: &str,
        subject: &str,
        audit: &AuditEvent,
    ) -> StoreResult<UnlinkOutcome>;
}

/// What a new session was granted on, re-checked by
/// [`Store::create_session`] inside the transaction that inserts it: a
/// credential check and the session it creates are one decision.
#[derive(Debug, Clone, Copy)]
pub enum SessionBasis<'a> {
    /// A password sign-in.
    Password {
        /// The stored hash the presented password matched; if it changed
        /// meanwhile (password change, reset) the session is refused.
        verified_hash: &'a str,
        /// A replacement hash at the current parameters, stored with the
        /// session only if `verified_hash` is still current.
        rehash: Option<&'a str>,
    },
    /// Proof from elsewhere (an identity provider): the user must still exist.
    User,
}

/// What [`Store::delete_expired`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Expired {
    /// Sessions past their expiry.
    pub sessions: u64,
    /// OAuth flows past theirs.
    pub oauth_flows: u64,
    /// Audit events past the retention period.
    pub audit_events: u64,
}

/// What [`Store::unlink_account`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnlinkOutcome {
    /// The account was unlinked.
    Unlinked,
    /// The user has no such account.
    NotFound,
    /// It is the user's last way to sign in; nothing changed.
    LastSignInMethod,
}
