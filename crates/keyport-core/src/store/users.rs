//! Storage of users, their passwords and profile.

use async_trait::async_trait;

use super::StoreResult;
use crate::{
    audit::AuditEvent,
    clock::Timestamp,
    email::Email,
    events::SessionEvent,
    mail::{EmailToken, Mail},
    session::Session,
    token::SessionId,
    user::{Ban, User, UserId},
};

/// A user together with their password hash.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The user.
    pub user: User,
    /// Argon2id PHC string.
    pub password_hash: String,
}

/// Which users [`UserStore::list_users`] returns: every set filter must
/// match. Pages run newest first, so a page continues below `before`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserQuery {
    /// Users whose normalised email starts with this; empty for all.
    pub email_prefix: String,
    /// Users created at or after this time.
    pub created_after: Option<Timestamp>,
    /// Users created before this time.
    pub created_before: Option<Timestamp>,
    /// Users with this role.
    pub role: Option<String>,
    /// Users with (`true`) or without (`false`) a ban in force.
    pub banned: Option<bool>,
    /// Users whose id sorts below this one: the last of the previous page.
    pub before: Option<UserId>,
}

/// Users and their passwords.
#[async_trait]
pub trait UserStore: Send + Sync + 'static {
    /// Creates a user with a password and a first session.
    /// [`StoreError::Conflict`](super::StoreError::Conflict) when the email is taken.
    async fn create_user(
        &self,
        user: &User,
        password_hash: &str,
        session: &Session,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Creates a user with a password and no session, the token that
    /// verifies their address, and its mail, atomically: what sign-up does
    /// when the address must be verified first.
    /// [`StoreError::Conflict`](super::StoreError::Conflict) when the email is taken.
    async fn create_unverified_user(
        &self,
        user: &User,
        password_hash: &str,
        token: &EmailToken,
        mail: &Mail,
        audit: &AuditEvent,
    ) -> StoreResult<()>;

    /// Creates a user, with a password when given, and no session: what an
    /// admin's `create_user` does.
    /// [`StoreError::Conflict`](super::StoreError::Conflict) when the email is taken.
    async fn insert_user(&self, user: &User, password_hash: Option<&str>, audit: &AuditEvent) -> StoreResult<()>;

    /// Creates a user without a password, whose address a mail proved, with
    /// a first session. [`StoreError::Conflict`](super::StoreError::Conflict)
    /// when the email is taken.
    async fn create_mailbox_user(&self, user: &User, session: &Session, audit: &AuditEvent) -> StoreResult<()>;

    /// The user with this email and their password hash; `None` for a user
    /// without a password (signed up through a provider).
    async fn find_credentials_by_email(&self, email: &Email) -> StoreResult<Option<Credentials>>;

    /// The user with this email, whether or not they have a password.
    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<User>>;

    /// The user with this id.
    async fn find_user(&self, user_id: UserId) -> StoreResult<Option<User>>;

    /// Up to `limit` users matching `query` at `now` (for bans in force),
    /// newest first (ids are time-ordered).
    async fn list_users(&self, query: &UserQuery, now: Timestamp, limit: u64) -> StoreResult<Vec<User>>;

    /// The password hash of a user.
    async fn find_password_hash(&self, user_id: UserId) -> StoreResult<Option<String>>;

    /// Sets a user's display name and emits `event`.
    async fn update_user_name(
        &self,
        user_id: UserId,
        name: &str,
        now: Timestamp,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<User>;

    /// Replaces a user's roles (sorted, unique) and emits `event`, in one
    /// transaction; `None` (nothing written) when the user is gone.
    async fn set_roles(
        &self,
        user_id: UserId,
        roles: &[String],
        now: Timestamp,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Option<User>>;

    /// Sets a user's ban, or lifts it (`None`), and emits `event`, in one
    /// transaction that holds the user's lock (as session creation does).
    /// A ban also deletes every session and sign-in challenge of the user.
    /// Returns the user and how many sessions ended; `None` (nothing
    /// written) when the user is gone.
    async fn set_ban(
        &self,
        user_id: UserId,
        ban: Option<&Ban>,
        now: Timestamp,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Option<(User, u64)>>;

    /// Replaces the password, deletes every session but `keep` and every
    /// password-reset token, queues `notice` when given, atomically, and
    /// emits `event`; returns how many sessions ended.
    #[allow(clippy::too_many_arguments)]
    async fn change_password(
        &self,
        user_id: UserId,
        password_hash: &str,
        keep: &SessionId,
        now: Timestamp,
        notice: Option<&Mail>,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<u64>;

    /// Deletes a user with everything that is theirs (password, sessions,
    /// linked accounts), and emits `event`. The audit trail keeps its
    /// entries about them.
    async fn delete_user(&self, user_id: UserId, audit: &AuditEvent, event: &SessionEvent) -> StoreResult<()>;
}
