//! Storage of the mail area: one-time email tokens, and the outbox.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreResult;
use crate::{
    audit::AuditEvent,
    clock::Timestamp,
    events::SessionEvent,
    mail::{EmailToken, Mail, QueuedMail, TokenPurpose, sign_in::EmailSignIn},
    user::{User, UserId},
};

/// One-time tokens sent by mail, and the changes they unlock.
#[async_trait]
pub trait EmailTokenStore: Send + Sync + 'static {
    /// Stores `tokens` (all of one user) in place of the user's earlier
    /// tokens of their purposes (a newer link voids the older), queues
    /// `mails` and records `audit`, atomically.
    /// [`StoreError::NotFound`](super::StoreError::NotFound) when the user is gone.
    async fn issue_email_tokens(&self, tokens: &[EmailToken], mails: &[Mail], audit: &AuditEvent) -> StoreResult<()>;

    /// Uses up `user_id`'s change-of-address token and moves the account to
    /// the token's address (verified), ending every session of the user
    /// when `end_sessions`; records `audit` and emits `event`, atomically.
    #[allow(clippy::too_many_arguments)]
    async fn change_email(
        &self,
        hash: &[u8; 32],
        user_id: UserId,
        now: Timestamp,
        end_sessions: bool,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<EmailChange>;

    /// The unexpired token with this hash and purpose, without using it up.
    async fn find_email_token(
        &self,
        hash: &[u8; 32],
        purpose: TokenPurpose,
        now: Timestamp,
    ) -> StoreResult<Option<EmailToken>>;

    /// Uses up `user_id`'s verification token (of `purpose`: a link or a
    /// code) and marks the address verified, when the token is unexpired
    /// and the user's email is still the one it was sent to; emits `event`.
    /// `None` (and nothing changed) otherwise.
    #[allow(clippy::too_many_arguments)]
    async fn verify_email(
        &self,
        hash: &[u8; 32],
        purpose: TokenPurpose,
        user_id: UserId,
        now: Timestamp,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Option<User>>;

    /// Uses up `user_id`'s reset token and, in the same transaction, sets
    /// the new password, marks the address verified (the mail reached it),
    /// deletes every session and reset token of the user, queues `notice`,
    /// records `audit` and emits `event`. `None` (and nothing changed) when
    /// the token is gone, expired, or for an address the user no longer
    /// has; else how many sessions ended. Of racing calls with one token,
    /// exactly one succeeds.
    #[allow(clippy::too_many_arguments)]
    async fn reset_password(
        &self,
        hash: &[u8; 32],
        user_id: UserId,
        password_hash: &str,
        now: Timestamp,
        notice: &Mail,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Option<u64>>;

    /// Uses up `user_id`'s set-password token and gives the account its
    /// first password, queuing `notice`, recording `audit` and emitting
    /// `event`, atomically; false (and nothing changed) when the token is
    /// gone or expired, or the account has a password meanwhile.
    #[allow(clippy::too_many_arguments)]
    async fn set_first_password(
        &self,
        hash: &[u8; 32],
        user_id: UserId,
        password_hash: &str,
        now: Timestamp,
        notice: &Mail,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<bool>;

    /// Deletes the tokens past their expiry at `now`; returns how many.
    async fn delete_expired_email_tokens(&self, now: Timestamp) -> StoreResult<u64>;
}

/// What [`EmailTokenStore::change_email`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailChange {
    /// The account has its new address; `ended` sessions were ended.
    Changed {
        /// The user, as changed.
        user: User,
        /// Sessions ended.
        ended: u64,
    },
    /// The token is gone, expired, of another kind or another user's.
    TokenInvalid,
    /// Another account took the address meanwhile; nothing changed.
    EmailTaken,
}

/// Started email sign-ins.
#[async_trait]
pub trait EmailSignInStore: Send + Sync + 'static {
    /// Stores a started sign-in in place of the earlier ones of its address
    /// (a newer mail voids the older) and queues its `mail`, atomically.
    async fn create_email_sign_in(&self, sign_in: &EmailSignIn, mail: &Mail) -> StoreResult<()>;

    /// Counts one proof against the unexpired sign-in with this binding and
    /// returns it, if it has attempts left (fewer than `max_attempts`);
    /// `None` otherwise. Atomic: N parallel guesses take N attempts.
    async fn reserve_email_sign_in_attempt(
        &self,
        binding_hash: &[u8; 32],
        max_attempts: u32,
        now: Timestamp,
    ) -> StoreResult<Option<EmailSignIn>>;

    /// Removes and returns the sign-in with this binding: of racing callers
    /// with the right proof, one gets it.
    async fn take_email_sign_in(&self, binding_hash: &[u8; 32]) -> StoreResult<Option<EmailSignIn>>;

    /// Deletes the sign-ins past their expiry at `now`; returns how many.
    async fn delete_expired_email_sign_ins(&self, now: Timestamp) -> StoreResult<u64>;
}

/// The outbox, as the courier sees it.
#[async_trait]
pub trait MailStore: Send + Sync + 'static {
    /// Queues a message on its own (a notice that goes with no other write).
    async fn queue_mail(&self, mail: &Mail) -> StoreResult<()>;

    /// Claims up to `limit` pending messages due at `now`, oldest first,
    /// and hides them from every courier until `lease_until`: each message
    /// goes to one courier, and one that dies mid-send is retried after
    /// the lease.
    async fn claim_mail(&self, now: Timestamp, lease_until: Timestamp, limit: u32) -> StoreResult<Vec<QueuedMail>>;

    /// Records a delivery, and forgets the bodies (they held live links).
    async fn mark_mail_sent(&self, id: Uuid, at: Timestamp) -> StoreResult<()>;

    /// Records a failed attempt: pending again from `retry_at`, or failed
    /// for good when `retry_at` is `None` (bodies forgotten).
    async fn mark_mail_failed(&self, id: Uuid, error: &str, retry_at: Option<Timestamp>) -> StoreResult<()>;

    /// Messages not yet sent nor failed for good.
    async fn count_pending_mail(&self) -> StoreResult<u64>;

    /// Deletes sent and failed messages queued before `before`; returns how many.
    async fn delete_mail_before(&self, before: Timestamp) -> StoreResult<u64>;
}
