//! Storage of the keys that sign access tokens.

use async_trait::async_trait;

use super::StoreResult;
use crate::access_token::StoredSigningKey;

/// Signing keys, shared by every replica.
#[async_trait]
pub trait SigningKeyStore: Send + Sync + 'static {
    /// Every stored key, oldest generation first.
    async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>>;

    /// Adds `key`; false (nothing written) when its generation is taken: a
    /// replica rotating at the same time won, and its key is the one.
    async fn insert_signing_key(&self, key: &StoredSigningKey) -> StoreResult<bool>;

    /// Deletes the keys of a generation below `generation`; how many went.
    async fn delete_signing_keys_below(&self, generation: i64) -> StoreResult<u64>;
}
