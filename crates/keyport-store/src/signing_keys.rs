//! The access-token area: the keys that sign access tokens.

use async_trait::async_trait;
use keyport_core::{
    Timestamp,
    access_token::{SigningAlgorithm, StoredSigningKey},
    store::{SigningKeyStore, StoreError, StoreResult},
};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder};

use crate::{SeaStore, db_error::classify, entity::signing_key};

#[async_trait]
impl SigningKeyStore for SeaStore {
    async fn signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        let rows = signing_key::Entity::find()
            .order_by_asc(signing_key::Column::Generation)
            .all(&self.db)
            .await
            .map_err(classify)?;
        rows.into_iter().map(stored).collect()
    }

    async fn insert_signing_key(&self, key: &StoredSigningKey) -> StoreResult<bool> {
        let row = signing_key::ActiveModel {
            kid: Set(key.kid.clone()),
            generation: Set(key.generation),
            algorithm: Set(key.algorithm.name().to_owned()),
            sealed_private_key: Set(key.sealed_private_key.clone()),
            public_jwk: Set(key.public_jwk.clone()),
            created_at: Set(key.created_at.unix_millis()),
            activates_at: Set(key.activates_at.unix_millis()),
        };
        match signing_key::Entity::insert(row).exec_without_returning(&self.db).await.map_err(classify) {
            Ok(_) => Ok(true),
            // Another replica stored this generation first.
            Err(StoreError::Conflict(_)) => Ok(false),
            Err(error) => Err(error),
        }
    }

    async fn delete_signing_keys_below(&self, generation: i64) -> StoreResult<u64> {
        let deleted = signing_key::Entity::delete_many()
            .filter(signing_key::Column::Generation.lt(generation))
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(deleted.rows_affected)
    }
}

fn stored(row: signing_key::Model) -> StoreResult<StoredSigningKey> {
    let algorithm = SigningAlgorithm::parse(&row.algorithm)
        .ok_or_else(|| StoreError::Other(format!("signing key {}: unknown algorithm {:?}", row.kid, row.algorithm)))?;
    Ok(StoredSigningKey {
        kid: row.kid,
        generation: row.generation,
        algorithm,
        sealed_private_key: row.sealed_private_key,
        public_jwk: row.public_jwk,
        created_at: Timestamp::from_unix_millis(row.created_at),
        activates_at: Timestamp::from_unix_millis(row.activates_at),
    })
}
