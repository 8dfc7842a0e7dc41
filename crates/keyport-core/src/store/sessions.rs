//! Storage of sessions.

use async_trait::async_trait;

use super::StoreResult;
use crate::{
    audit::AuditEvent,
    clock::Timestamp,
    email::Email,
    events::SessionEvent,
    second_factor::{FactorUse, PasskeyUse},
    session::Session,
    token::SessionId,
    user::{User, UserId},
};

/// Sessions: created on sign-in, read on every request, ended by
/// revocation and expiry.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    /// Stores a new session if what it was granted on still holds, in the
    /// same transaction that inserts it; returns false (and writes nothing)
    /// when the user is gone or banned, or the verified password was
    /// replaced meanwhile.
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

    /// Deletes a user's sessions, all or all but `keep`; returns how many,
    /// and emits `event` when there were any.
    async fn delete_other_sessions(
        &self,
        user_id: UserId,
        keep: Option<&SessionId>,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<u64>;

    /// Deletes the sessions past their idle or absolute expiry at `now`;
    /// returns how many.
    async fn delete_expired_sessions(&self, now: Timestamp) -> StoreResult<u64>;
}

/// What a new session was granted on, re-checked by
/// [`SessionStore::create_session`] inside the transaction that inserts it: a
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
    /// A passed second factor: the sign-in challenge with this hash must
    /// still exist, and is deleted with the session's insert, and `factor`
    /// is used up there too, so of racing completions one creates a
    /// session, and a cancelled one uses up nothing.
    Challenge {
        /// SHA-256 of the challenge.
        hash: &'a [u8; 32],
        /// The checked second factor.
        factor: &'a FactorUse,
    },
    /// A passkey alone (a discoverable credential): the user must still
    /// have it, and its counter moves forward with the insert, so of
    /// racing answers with one counter value one creates a session.
    Passkey {
        /// The checked answer.
        factor: &'a PasskeyUse,
    },
    /// Proof of the mailbox (an email sign-in): the user must still have
    /// this address, which from then on counts as verified.
    Mailbox {
        /// The address the link or code was sent to.
        email: &'a Email,
    },
}
