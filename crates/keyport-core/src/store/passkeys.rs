//! Storage of passkeys and of the passkey ceremonies under way.

use async_trait::async_trait;

use super::StoreResult;
use crate::{
    audit::AuditEvent,
    clock::Timestamp,
    events::SessionEvent,
    second_factor::{Ceremony, CeremonyPurpose, PasskeyId, StoredPasskey},
    token::SessionId,
    user::{User, UserId},
};

/// Passkeys, and the ceremonies that register them or sign in with them.
///
/// Deleting a user deletes their passkeys (a foreign key in SQL).
#[async_trait]
pub trait PasskeyStore: Send + Sync + 'static {
    /// A user's passkeys, oldest first.
    async fn list_passkeys(&self, user_id: UserId) -> StoreResult<Vec<StoredPasskey>>;

    /// The passkey with this credential id and its user, whoever's it is.
    async fn find_passkey_by_credential(&self, credential_id: &[u8]) -> StoreResult<Option<(StoredPasskey, User)>>;

    /// Stores a started ceremony.
    async fn create_ceremony(&self, ceremony: &Ceremony) -> StoreResult<()>;

    /// Takes (deletes and returns) the unexpired ceremony with this hash,
    /// purpose and session: of racing takers one gets it, and a ceremony
    /// of another session is not touched.
    async fn take_ceremony(
        &self,
        hash: &[u8; 32],
        purpose: CeremonyPurpose,
        session: Option<&SessionId>,
        now: Timestamp,
    ) -> StoreResult<Option<Ceremony>>;

    /// Stores a new passkey in one transaction: sets the user's
    /// second-factor flag, raises `session` to AAL2 as of the passkey's
    /// `created_at`, ends the user's other sessions, records `audit` and
    /// emits `event`. Returns how many sessions ended; `None` (nothing
    /// written) when the credential id is registered already or the
    /// session is gone.
    async fn add_passkey(
        &self,
        passkey: &StoredPasskey,
        session: &SessionId,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Option<u64>>;

    /// Renames one of the user's passkeys; `None` when they have no such.
    async fn rename_passkey(&self, user_id: UserId, id: PasskeyId, name: &str) -> StoreResult<Option<StoredPasskey>>;

    /// Deletes one of the user's passkeys in one transaction: clears the
    /// second-factor flag and lowers `session` to AAL1 if it was their last
    /// second factor, ends the other sessions, records `audit` and emits
    /// `event`. Returns how many sessions ended; `None` (nothing written)
    /// when they have no such passkey.
    async fn delete_passkey(
        &self,
        user_id: UserId,
        id: PasskeyId,
        session: &SessionId,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Option<u64>>;

    /// Deletes the ceremonies past their expiry at `now`; returns how many.
    async fn delete_expired_ceremonies(&self, now: Timestamp) -> StoreResult<u64>;
}
