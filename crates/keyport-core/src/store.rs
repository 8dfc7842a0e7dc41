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

    /// Deletes sessions past their expiry; returns how many.
    async fn delete_expired_sessions(&self, now: Timestamp) -> StoreResult<u64>;
}
