//! Storage of API keys and the service accounts that own them.

use async_trait::async_trait;

use super::StoreResult;
use crate::{
    api_key::{ApiKey, ApiKeyId, KeyHolder, KeyOwner, ServiceAccount, ServiceAccountId},
    audit::AuditEvent,
    clock::Timestamp,
    events::SessionEvent,
};

/// Why a key was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyRefusal {
    /// The owner is gone (or, for a user, banned).
    OwnerGone,
    /// The owner already has the most keys allowed.
    TooMany,
}

/// API keys and service accounts. Each change emits its event in its
/// transaction, as the other areas' changes do.
#[async_trait]
pub trait ApiKeyStore: Send + Sync + 'static {
    /// Stores `key` with its audit entry, unless its owner is gone or
    /// banned at `key.created_at`, or already has `max_per_owner` keys:
    /// checked under the owner's lock, so parallel creations cannot pass
    /// the limit together.
    async fn insert_api_key(
        &self,
        key: &ApiKey,
        max_per_owner: u64,
        audit: &AuditEvent,
    ) -> StoreResult<Result<(), KeyRefusal>>;

    /// The key `id` and its owner (a user with their roles and ban, or a
    /// service account), if the key and the owner exist.
    async fn find_api_key(&self, id: &ApiKeyId) -> StoreResult<Option<(ApiKey, KeyHolder)>>;

    /// The keys of `owner`, newest first.
    async fn list_api_keys(&self, owner: KeyOwner) -> StoreResult<Vec<ApiKey>>;

    /// Deletes `owner`'s key `id`; false (nothing written) when `owner` has
    /// no such key.
    async fn delete_api_key(
        &self,
        owner: KeyOwner,
        id: &ApiKeyId,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<bool>;

    /// Replaces `owner`'s key `old` with `new`, in one transaction: `old`
    /// expires at `old_expires_at`, or is deleted (and `event` emitted)
    /// when that is `None`. `None` (nothing written) when `owner` has no
    /// such key; else the old key as it is now.
    async fn rotate_api_key(
        &self,
        owner: KeyOwner,
        old: &ApiKeyId,
        old_expires_at: Option<Timestamp>,
        new: &ApiKey,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Option<ApiKey>>;

    /// Records a use of key `id` at `now`, unless one was recorded after
    /// `since`: at most one write per interval however many checks.
    async fn touch_api_key(&self, id: &ApiKeyId, now: Timestamp, since: Timestamp) -> StoreResult<()>;

    /// Deletes the keys that expired before `before`; how many.
    async fn delete_api_keys_expired_before(&self, before: Timestamp) -> StoreResult<u64>;

    /// Stores a new service account; false (nothing written) when its name
    /// is taken.
    async fn insert_service_account(&self, account: &ServiceAccount, audit: &AuditEvent) -> StoreResult<bool>;

    /// The service account `id`, if it exists.
    async fn find_service_account(&self, id: ServiceAccountId) -> StoreResult<Option<ServiceAccount>>;

    /// Every service account, by name.
    async fn list_service_accounts(&self) -> StoreResult<Vec<ServiceAccount>>;

    /// Replaces the roles of service account `id`; false (nothing written)
    /// when it does not exist.
    async fn set_service_account_roles(
        &self,
        id: ServiceAccountId,
        roles: &[String],
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<bool>;

    /// Deletes service account `id` and its keys; how many keys went, or
    /// `None` (nothing written) when it does not exist.
    async fn delete_service_account(
        &self,
        id: ServiceAccountId,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Option<u64>>;
}
