//! The API keys area: keys and the service accounts that own them.

use async_trait::async_trait;
use keyport_core::{
    Timestamp,
    api_key::{ApiKey, ApiKeyId, KeyHolder, KeyOwner, ServiceAccount, ServiceAccountId},
    audit::AuditEvent,
    events::SessionEvent,
    store::{ApiKeyStore, KeyRefusal, StoreError, StoreResult},
    token::SecretHash,
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect,
};
use uuid::Uuid;

use crate::{
    SeaStore,
    db_error::classify,
    entity::{api_key, service_account, user},
    rows::{decode_roles, encode_roles, insert_audit, parse_user_id, user_from_row},
    write::{begin, lock_user_signing_in, notify},
};

#[async_trait]
impl ApiKeyStore for SeaStore {
    async fn insert_api_key(
        &self,
        key: &ApiKey,
        max_per_owner: u64,
        audit: &AuditEvent,
    ) -> StoreResult<Result<(), KeyRefusal>> {
        let txn = begin(&self.db).await?;
        // The owner's lock makes parallel creations take turns, so the
        // count below cannot be passed by several at once.
        if !lock_owner(&txn, key.owner, key.created_at).await? {
            return Ok(Err(KeyRefusal::OwnerGone));
        }
        let owned = api_key::Entity::find().filter(owned_by(key.owner)).count(&txn).await.map_err(classify)?;
        if owned >= max_per_owner {
            return Ok(Err(KeyRefusal::TooMany));
        }
        api_key::Entity::insert(key_to_row(key)).exec_without_returning(&txn).await.map_err(classify)?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(classify)?;
        Ok(Ok(()))
    }

    async fn find_api_key(&self, id: &ApiKeyId) -> StoreResult<Option<(ApiKey, KeyHolder)>> {
        let Some(row) = api_key::Entity::find_by_id(id.as_str()).all(&self.db).await.map_err(classify)?.pop() else {
            return Ok(None);
        };
        let key = key_from_row(row)?;
        let holder = match key.owner {
            KeyOwner::User(owner) => user::Entity::find_by_id(owner.to_string())
                .all(&self.db)
                .await
                .map_err(classify)?
                .pop()
                .map(user_from_row)
                .transpose()?
                .map(KeyHolder::User),
            KeyOwner::ServiceAccount(owner) => find_account(&self.db, owner).await?.map(KeyHolder::ServiceAccount),
        };
        Ok(holder.map(|holder| (key, holder)))
    }

    async fn list_api_keys(&self, owner: KeyOwner) -> StoreResult<Vec<ApiKey>> {
        let rows = api_key::Entity::find()
            .filter(owned_by(owner))
            .order_by_desc(api_key::Column::CreatedAt)
            .order_by_desc(api_key::Column::Id)
            .all(&self.db)
            .await
            .map_err(classify)?;
        rows.into_iter().map(key_from_row).collect()
    }

    async fn delete_api_key(
        &self,
        owner: KeyOwner,
        id: &ApiKeyId,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<bool> {
        let txn = begin(&self.db).await?;
        let deleted = api_key::Entity::delete_many()
            .filter(api_key::Column::Id.eq(id.as_str()))
            .filter(owned_by(owner))
            .exec(&txn)
            .await
            .map_err(classify)?;
        if deleted.rows_affected == 0 {
            return Ok(false);
        }
        insert_audit(&txn, audit).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)?;
        Ok(true)
    }

    async fn rotate_api_key(
        &self,
        owner: KeyOwner,
        old: &ApiKeyId,
        old_expires_at: Option<Timestamp>,
        new: &ApiKey,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Option<ApiKey>> {
        let txn = begin(&self.db).await?;
        let found = api_key::Entity::find_by_id(old.as_str())
            .filter(owned_by(owner))
            .lock_exclusive()
            .all(&txn)
            .await
            .map_err(classify)?
            .pop();
        let Some(row) = found else { return Ok(None) };
        let mut replaced = key_from_row(row)?;
        match old_expires_at {
            Some(expires_at) => {
                api_key::Entity::update_many()
                    .col_expr(api_key::Column::ExpiresAt, expires_at.unix_millis().into())
                    .col_expr(api_key::Column::ReplacedBy, new.id.to_string().into())
                    .filter(api_key::Column::Id.eq(old.as_str()))
                    .exec(&txn)
                    .await
                    .map_err(classify)?;
                replaced.expires_at = Some(expires_at);
                replaced.replaced_by = Some(new.id.clone());
            }
            None => {
                api_key::Entity::delete_by_id(old.as_str()).exec(&txn).await.map_err(classify)?;
            }
        }
        api_key::Entity::insert(key_to_row(new)).exec_without_returning(&txn).await.map_err(classify)?;
        insert_audit(&txn, audit).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)?;
        Ok(Some(replaced))
    }

    async fn touch_api_key(&self, id: &ApiKeyId, now: Timestamp, since: Timestamp) -> StoreResult<()> {
        // One statement: parallel checks of one key write it once.
        api_key::Entity::update_many()
            .col_expr(api_key::Column::LastUsedAt, now.unix_millis().into())
            .filter(api_key::Column::Id.eq(id.as_str()))
            .filter(
                Condition::any()
                    .add(api_key::Column::LastUsedAt.is_null())
                    .add(api_key::Column::LastUsedAt.lte(since.unix_millis())),
            )
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn delete_api_keys_expired_before(&self, before: Timestamp) -> StoreResult<u64> {
        let deleted = api_key::Entity::delete_many()
            .filter(api_key::Column::ExpiresAt.lt(before.unix_millis()))
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(deleted.rows_affected)
    }

    async fn insert_service_account(&self, account: &ServiceAccount, audit: &AuditEvent) -> StoreResult<bool> {
        let row = service_account::ActiveModel {
            id: Set(account.id.to_string()),
            name: Set(account.name.clone()),
            description: Set(account.description.clone()),
            roles: Set(encode_roles(&account.roles)),
            created_at: Set(account.created_at.unix_millis()),
        };
        let txn = begin(&self.db).await?;
        match service_account::Entity::insert(row).exec_without_returning(&txn).await.map_err(classify) {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => return Ok(false),
            Err(other) => return Err(other),
        }
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(classify)?;
        Ok(true)
    }

    async fn find_service_account(&self, id: ServiceAccountId) -> StoreResult<Option<ServiceAccount>> {
        find_account(&self.db, id).await
    }

    async fn list_service_accounts(&self) -> StoreResult<Vec<ServiceAccount>> {
        let rows = service_account::Entity::find()
            .order_by_asc(service_account::Column::Name)
            .all(&self.db)
            .await
            .map_err(classify)?;
        rows.into_iter().map(account_from_row).collect()
    }

    async fn set_service_account_roles(
        &self,
        id: ServiceAccountId,
        roles: &[String],
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<bool> {
        let txn = begin(&self.db).await?;
        let updated = service_account::Entity::update_many()
            .col_expr(service_account::Column::Roles, encode_roles(roles).into())
            .filter(service_account::Column::Id.eq(id.to_string()))
            .exec(&txn)
            .await
            .map_err(classify)?;
        if updated.rows_affected == 0 {
            return Ok(false);
        }
        insert_audit(&txn, audit).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)?;
        Ok(true)
    }

    async fn delete_service_account(
        &self,
        id: ServiceAccountId,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Option<u64>> {
        let txn = begin(&self.db).await?;
        // Deleted here rather than by the cascade, to count them.
        let keys = api_key::Entity::delete_many()
            .filter(api_key::Column::ServiceAccountId.eq(id.to_string()))
            .exec(&txn)
            .await
            .map_err(classify)?;
        let deleted = service_account::Entity::delete_by_id(id.to_string()).exec(&txn).await.map_err(classify)?;
        if deleted.rows_affected == 0 {
            return Ok(None);
        }
        insert_audit(&txn, audit).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)?;
        Ok(Some(keys.rows_affected))
    }
}

/// Locks the owner's row; false when the owner is gone (or a user banned
/// at `now`).
async fn lock_owner(txn: &DatabaseTransaction, owner: KeyOwner, now: Timestamp) -> StoreResult<bool> {
    match owner {
        KeyOwner::User(id) => lock_user_signing_in(txn, id, now).await,
        KeyOwner::ServiceAccount(id) => {
            let rows = service_account::Entity::find_by_id(id.to_string())
                .lock_exclusive()
                .all(txn)
                .await
                .map_err(classify)?;
            Ok(!rows.is_empty())
        }
    }
}

async fn find_account(db: &impl sea_orm::ConnectionTrait, id: ServiceAccountId) -> StoreResult<Option<ServiceAccount>> {
    let row = service_account::Entity::find_by_id(id.to_string()).all(db).await.map_err(classify)?.pop();
    row.map(account_from_row).transpose()
}

fn owned_by(owner: KeyOwner) -> Condition {
    match owner {
        KeyOwner::User(id) => Condition::all().add(api_key::Column::OwnerUserId.eq(id.to_string())),
        KeyOwner::ServiceAccount(id) => Condition::all().add(api_key::Column::ServiceAccountId.eq(id.to_string())),
    }
}

fn key_to_row(key: &ApiKey) -> api_key::ActiveModel {
    let (user, account) = match key.owner {
        KeyOwner::User(id) => (Some(id.to_string()), None),
        KeyOwner::ServiceAccount(id) => (None, Some(id.to_string())),
    };
    api_key::ActiveModel {
        id: Set(key.id.to_string()),
        name: Set(key.name.clone()),
        secret_hash: Set(key.secret_hash.0.to_vec()),
        owner_user_id: Set(user),
        service_account_id: Set(account),
        scopes: Set(key.scopes.join(" ")),
        created_at: Set(key.created_at.unix_millis()),
        expires_at: Set(key.expires_at.map(Timestamp::unix_millis)),
        last_used_at: Set(key.last_used_at.map(Timestamp::unix_millis)),
        rate_limit_per_minute: Set(i64::from(key.rate_limit_per_minute)),
        replaced_by: Set(key.replaced_by.as_ref().map(ApiKeyId::to_string)),
    }
}

fn key_from_row(row: api_key::Model) -> StoreResult<ApiKey> {
    let owner = match (row.owner_user_id, row.service_account_id) {
        (Some(user), None) => KeyOwner::User(parse_user_id(&user)?),
        (None, Some(account)) => KeyOwner::ServiceAccount(parse_account_id(&account)?),
        _ => return Err(StoreError::Other(format!("API key {} has not exactly one owner", row.id))),
    };
    let secret_hash = <[u8; 32]>::try_from(row.secret_hash.as_slice())
        .map_err(|_| StoreError::Other(format!("API key {} has a malformed hash", row.id)))?;
    Ok(ApiKey {
        id: ApiKeyId::from_trusted(row.id),
        name: row.name,
        secret_hash: SecretHash(secret_hash),
        owner,
        scopes: row.scopes.split_ascii_whitespace().map(str::to_owned).collect(),
        created_at: Timestamp::from_unix_millis(row.created_at),
        expires_at: row.expires_at.map(Timestamp::from_unix_millis),
        last_used_at: row.last_used_at.map(Timestamp::from_unix_millis),
        rate_limit_per_minute: u32::try_from(row.rate_limit_per_minute).unwrap_or(u32::MAX),
        replaced_by: row.replaced_by.map(ApiKeyId::from_trusted),
    })
}

fn account_from_row(row: service_account::Model) -> StoreResult<ServiceAccount> {
    Ok(ServiceAccount {
        id: parse_account_id(&row.id)?,
        name: row.name,
        description: row.description,
        roles: decode_roles(&row.roles),
        created_at: Timestamp::from_unix_millis(row.created_at),
    })
}

fn parse_account_id(raw: &str) -> StoreResult<ServiceAccountId> {
    Uuid::parse_str(raw)
        .map(ServiceAccountId)
        .map_err(|e| StoreError::Other(format!("malformed service account id {raw:?}: {e}")))
}
