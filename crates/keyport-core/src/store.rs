//! The storage contract: what the domain needs from a database.
//!
//! Each method is one atomic unit of work; where an operation touches several
//! rows (sign-up, password change, deletion) the implementation runs it in a
//! transaction, so a failure leaves nothing half-written.

use async_trait::async_trait;

use crate::{
    audit::AuditEvent,
    clock::Timestamp,
    email::Email,
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
    /// The database cannot be reached.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error("database error: {0}")]
    Other(String),
}

impl From<StoreError> for crate::Error {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Unavailable(cause) => Self::Unavailable(cause),
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

    /// Replaces a user's password hash without other effects (re-hash on sign-in).
    async fn replace_password_hash(&self, user_id: UserId, password_hash: &str) -> StoreResult<()>;

    /// Stores a new session.
    async fn create_session(&self, session: &Session, audit: &AuditEvent) -> StoreResult<()>;

    /// A session and its user, by session id. The hot path.
    async fn find_session(&self, id: &SessionId) -> StoreResult<Option<(Session, User)>>;

    /// Pushes a session's idle expiry forward.
    async fn refresh_session(&self, id: &SessionId, expires_at: Timestamp, refreshed_at: Timestamp) -> StoreResult<()>;

    /// A user's sessions that have not expired at `now`, newest first.
    async fn list_sessions(&self, user_id: UserId, now: Timestamp) -> StoreResult<Vec<Session>>;

    /// Deletes one of a user's sessions; false when the user has no such session.
    async fn delete_session(&self, user_id: UserId, id: &SessionId, audit: &AuditEvent) -> StoreResult<bool>;

    /// Deletes all of a user's sessions except `keep`; returns how many.
    async fn delete_other_sessions(&self, user_id: UserId, keep: &SessionId, audit: &AuditEvent) -> StoreResult<u64>;

    /// Sets a user's display name.
    async fn update_user_name(
        &self,
        user_id: UserId,
        name: &str,
        now: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<User>;

    /// Replaces the password and deletes every session but `keep`, atomically;
    /// returns how many sessions ended.
    async fn change_password(
        &self,
        user_id: UserId,
        password_hash: &str,
        keep: &SessionId,
        now: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<u64>;

    /// Deletes a user with their password and sessions.
    async fn delete_user(&self, user_id: UserId, audit: &AuditEvent) -> StoreResult<()>;

    /// Appends to the audit trail.
    async fn record_audit(&self, event: &AuditEvent) -> StoreResult<()>;

    /// Deletes sessions past their expiry, and OAuth flows past theirs;
    /// returns how many sessions.
    async fn delete_expired_sessions(&self, now: Timestamp) -> StoreResult<u64>;

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
