//! Storage of second factors and sign-in challenges.

use async_trait::async_trait;

use super::{SessionBasis, StoreResult};
use crate::{
    audit::AuditEvent,
    clock::Timestamp,
    events::SessionEvent,
    second_factor::{FactorUse, SealedSecret, SignInChallenge, TotpStep},
    token::SessionId,
    user::{User, UserId},
};

/// A user's authenticator app, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpFactor {
    /// The shared secret, sealed.
    pub sealed: SealedSecret,
    /// When the enrolment started.
    pub created_at: Timestamp,
    /// When it was turned on; `None` while it waits for its first code.
    pub enabled_at: Option<Timestamp>,
    /// The latest step whose code was accepted: no code of it or of an
    /// earlier step is accepted again.
    pub last_used_step: Option<TotpStep>,
}

/// Second factors and the challenges of sign-ins waiting for one.
///
/// Every store method that ends all of a user's sessions (password change
/// or reset, deletion) also deletes the user's pending challenges, in the
/// same transaction: a first factor passed before the change is void.
#[async_trait]
pub trait FactorStore: Send + Sync + 'static {
    /// Stores a pending enrolment in place of an earlier pending one; false
    /// (and nothing written) when the user's app is already on.
    async fn put_pending_totp(&self, user_id: UserId, sealed: &SealedSecret, now: Timestamp) -> StoreResult<bool>;

    /// The user's authenticator app, pending or on.
    async fn find_totp(&self, user_id: UserId) -> StoreResult<Option<TotpFactor>>;

    /// Replaces the user's sealed secret `old` with `new` (the same secret
    /// under the current key); false when it changed meanwhile.
    async fn reseal_totp(&self, user_id: UserId, old: &SealedSecret, new: &SealedSecret) -> StoreResult<bool>;

    /// Turns on the pending app that was enrolled at `enrolled_at`, in one
    /// transaction: marks `step` used, stores the `backup_codes` hashes in
    /// place of any, sets the user's second-factor flag, raises `session` to
    /// AAL2 as of `now`, ends the user's other sessions, records `audit` and
    /// emits `event`. Returns how many sessions ended; `None` (nothing
    /// written) when that enrolment is no longer pending.
    #[allow(clippy::too_many_arguments)]
    async fn enable_totp(
        &self,
        user_id: UserId,
        enrolled_at: Timestamp,
        step: TotpStep,
        backup_codes: &[[u8; 32]],
        session: &SessionId,
        now: Timestamp,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Option<u64>>;

    /// Turns the app off in one transaction: deletes it and the backup
    /// codes, clears the flag, lowers `session` to AAL1, ends the user's
    /// other sessions, records `audit` and emits `event`. Returns how many
    /// sessions ended; `None` (nothing written) when the app was not on.
    async fn disable_totp(
        &self,
        user_id: UserId,
        session: &SessionId,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Option<u64>>;

    /// Whether the user has an unused backup code with this hash (a read:
    /// it is used up with what it grants, through [`FactorUse`]).
    async fn has_backup_code(&self, user_id: UserId, hash: &[u8; 32]) -> StoreResult<bool>;

    /// How many unused backup codes the user has.
    async fn count_backup_codes(&self, user_id: UserId) -> StoreResult<u32>;

    /// Replaces the user's backup codes with these hashes and records
    /// `audit`, if the app is on; false (nothing written) otherwise.
    async fn replace_backup_codes(&self, user_id: UserId, hashes: &[[u8; 32]], audit: &AuditEvent)
    -> StoreResult<bool>;

    /// Uses up `factor` and raises the user's `session` to AAL2 with
    /// `authenticated_at` = `now`, records `audit` and emits `event`, in one
    /// transaction; false (nothing written) when the session is gone or the
    /// factor was used up meanwhile.
    async fn step_up_session(
        &self,
        user_id: UserId,
        session: &SessionId,
        factor: &FactorUse,
        now: Timestamp,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<bool>;

    /// Stores a new sign-in challenge if what its first factor was checked
    /// against still holds (as [`SessionStore::create_session`] re-checks
    /// it, with the same side effects), in one transaction; false (nothing
    /// written) otherwise. A challenge is never [`SessionBasis::Challenge`].
    ///
    /// [`SessionStore::create_session`]: super::SessionStore::create_session
    async fn create_challenge(&self, challenge: &SignInChallenge, basis: SessionBasis<'_>) -> StoreResult<bool>;

    /// Counts one answer against the unexpired challenge with this hash and
    /// returns it with its user, if it has answers left (fewer than
    /// `max_answers`); `None` otherwise. Atomic: N parallel answers take N.
    async fn reserve_challenge_answer(
        &self,
        hash: &[u8; 32],
        max_answers: u32,
        now: Timestamp,
    ) -> StoreResult<Option<(SignInChallenge, User)>>;

    /// Deletes the challenges past their expiry at `now`; returns how many.
    async fn delete_expired_challenges(&self, now: Timestamp) -> StoreResult<u64>;
}
