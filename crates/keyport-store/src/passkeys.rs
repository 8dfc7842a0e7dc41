//! The passkey area: users' WebAuthn credentials and the ceremonies under
//! way.
//!
//! What callers race on is decided by one conditional statement each:
//! taking a ceremony is a `DELETE ... RETURNING`, whose row only one caller
//! gets, and using a passkey moves its counter with an
//! `UPDATE ... WHERE sign_count <` the answer's, so a counter never goes
//! back, whatever the races. Adding and deleting a passkey change the
//! user's factors and sessions in one transaction that first locks the
//! user's row, as every other write about a user does.

use async_trait::async_trait;
use keyport_core::{
    Timestamp,
    audit::AuditEvent,
    events::SessionEvent,
    second_factor::{Assurance, Ceremony, CeremonyPurpose, PasskeyId, PasskeyUse, StoredPasskey},
    store::{PasskeyStore, StoreError, StoreResult},
    token::SessionId,
    user::{User, UserId},
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, sea_query::Expr,
};
use uuid::Uuid;

use crate::{
    SeaStore,
    db_error::classify,
    entity::{passkey, passkey_ceremony, user},
    factors::{lower_if_no_factor, set_assurance, set_two_factor},
    rows::{parse_user_id, user_from_row},
    write::{begin, end_others_and_commit, lock_user},
};

#[async_trait]
impl PasskeyStore for SeaStore {
    async fn list_passkeys(&self, user_id: UserId) -> StoreResult<Vec<StoredPasskey>> {
        let rows = passkey::Entity::find()
            .filter(passkey::Column::UserId.eq(user_id.to_string()))
            .order_by_asc(passkey::Column::CreatedAt)
            .order_by_asc(passkey::Column::Id)
            .all(&self.db)
            .await
            .map_err(classify)?;
        rows.into_iter().map(passkey_from_row).collect()
    }

    async fn find_passkey_by_credential(&self, credential_id: &[u8]) -> StoreResult<Option<(StoredPasskey, User)>> {
        let rows = passkey::Entity::find()
            .filter(passkey::Column::CredentialId.eq(credential_id.to_vec()))
            .all(&self.db)
            .await
            .map_err(classify)?;
        let Some(row) = rows.into_iter().next() else { return Ok(None) };
        let owner = user::Entity::find_by_id(row.user_id.clone()).all(&self.db).await.map_err(classify)?;
        let Some(owner) = owner.into_iter().next() else { return Ok(None) };
        Ok(Some((passkey_from_row(row)?, user_from_row(owner)?)))
    }

    async fn create_ceremony(&self, ceremony: &Ceremony) -> StoreResult<()> {
        let row = passkey_ceremony::ActiveModel {
            hash: Set(ceremony.hash.to_vec()),
            purpose: Set(ceremony.purpose.as_str().to_owned()),
            session_id: Set(ceremony.session_id.as_ref().map(|id| id.as_str().to_owned())),
            state: Set(ceremony.state.clone()),
            created_at: Set(ceremony.created_at.unix_millis()),
            expires_at: Set(ceremony.expires_at.unix_millis()),
        };
        passkey_ceremony::Entity::insert(row).exec_without_returning(&self.db).await.map_err(classify)?;
        Ok(())
    }

    /// One `DELETE ... RETURNING`: of racing takers, the one whose delete
    /// removed the row has it.
    async fn take_ceremony(
        &self,
        hash: &[u8; 32],
        purpose: CeremonyPurpose,
        session: Option<&SessionId>,
        now: Timestamp,
    ) -> StoreResult<Option<Ceremony>> {
        let bound = match session {
            Some(id) => passkey_ceremony::Column::SessionId.eq(id.as_str()),
            None => passkey_ceremony::Column::SessionId.is_null(),
        };
        let taken = passkey_ceremony::Entity::delete_many()
            .filter(passkey_ceremony::Column::Hash.eq(hash.to_vec()))
            .filter(passkey_ceremony::Column::Purpose.eq(purpose.as_str()))
            .filter(passkey_ceremony::Column::ExpiresAt.gt(now.unix_millis()))
            .filter(bound)
            .exec_with_returning(&self.db)
            .await
            .map_err(classify)?;
        Ok(taken.into_iter().next().map(|row| Ceremony {
            hash: *hash,
            purpose,
            session_id: session.cloned(),
            state: row.state,
            created_at: Timestamp::from_unix_millis(row.created_at),
            expires_at: Timestamp::from_unix_millis(row.expires_at),
        }))
    }

    async fn add_passkey(
        &self,
        passkey: &StoredPasskey,
        session: &SessionId,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Option<u64>> {
        let txn = begin(&self.db).await?;
        if !lock_user(&txn, passkey.user_id).await? {
            return Ok(None);
        }
        let taken = passkey::Entity::find()
            .filter(passkey::Column::CredentialId.eq(passkey.credential_id.clone()))
            .all(&txn)
            .await
            .map_err(classify)?;
        if !taken.is_empty()
            || !set_assurance(&txn, passkey.user_id, session, Assurance::Aal2, Some(passkey.created_at)).await?
        {
            return Ok(None);
        }
        let row = passkey::ActiveModel {
            id: Set(passkey.id.to_string()),
            user_id: Set(passkey.user_id.to_string()),
            credential_id: Set(passkey.credential_id.clone()),
            name: Set(passkey.name.clone()),
            credential: Set(passkey.credential.clone()),
            sign_count: Set(i64::from(passkey.sign_count)),
            backed_up: Set(passkey.backed_up),
            created_at: Set(passkey.created_at.unix_millis()),
            last_used_at: Set(passkey.last_used_at.map(Timestamp::unix_millis)),
        };
        // The unique index settles two users racing with one credential id.
        match passkey::Entity::insert(row).exec_without_returning(&txn).await.map_err(classify) {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => return Ok(None),
            Err(other) => return Err(other),
        }
        set_two_factor(&txn, passkey.user_id, true).await?;
        let ended = end_others_and_commit(txn, &self.origin, passkey.user_id, session, audit, event).await?;
        Ok(Some(ended))
    }

    async fn rename_passkey(&self, user_id: UserId, id: PasskeyId, name: &str) -> StoreResult<Option<StoredPasskey>> {
        let renamed = passkey::Entity::update_many()
            .col_expr(passkey::Column::Name, Expr::value(name))
            .filter(passkey::Column::Id.eq(id.to_string()))
            .filter(passkey::Column::UserId.eq(user_id.to_string()))
            .exec_with_returning(&self.db)
            .await
            .map_err(classify)?;
        renamed.into_iter().next().map(passkey_from_row).transpose()
    }

    async fn delete_passkey(
        &self,
        user_id: UserId,
        id: PasskeyId,
        session: &SessionId,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Option<u64>> {
        let txn = begin(&self.db).await?;
        if !lock_user(&txn, user_id).await? {
            return Ok(None);
        }
        let deleted = passkey::Entity::delete_many()
            .filter(passkey::Column::Id.eq(id.to_string()))
            .filter(passkey::Column::UserId.eq(user_id.to_string()))
            .exec(&txn)
            .await
            .map_err(classify)?;
        if deleted.rows_affected == 0 {
            return Ok(None);
        }
        lower_if_no_factor(&txn, user_id, session).await?;
        let ended = end_others_and_commit(txn, &self.origin, user_id, session, audit, event).await?;
        Ok(Some(ended))
    }

    async fn delete_expired_ceremonies(&self, now: Timestamp) -> StoreResult<u64> {
        let deleted = passkey_ceremony::Entity::delete_many()
            .filter(passkey_ceremony::Column::ExpiresAt.lte(now.unix_millis()))
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(deleted.rows_affected)
    }
}

/// Moves `user_id`'s passkey to `answer`'s counter and flags, if its counter
/// is still below the answer's (or both are 0: [`PasskeyUse::moves`]).
pub(crate) async fn use_passkey(txn: &DatabaseTransaction, user_id: UserId, answer: &PasskeyUse) -> StoreResult<bool> {
    let count = i64::from(answer.sign_count);
    let counter_moves =
        if count == 0 { passkey::Column::SignCount.eq(0) } else { passkey::Column::SignCount.lt(count) };
    let used = passkey::Entity::update_many()
        .col_expr(passkey::Column::SignCount, Expr::value(i64::from(answer.sign_count)))
        .col_expr(passkey::Column::Credential, Expr::value(answer.credential.clone()))
        .col_expr(passkey::Column::BackedUp, Expr::value(answer.backed_up))
        .col_expr(passkey::Column::LastUsedAt, Expr::value(answer.at.unix_millis()))
        .filter(passkey::Column::Id.eq(answer.id.to_string()))
        .filter(passkey::Column::UserId.eq(user_id.to_string()))
        .filter(counter_moves)
        .exec(txn)
        .await
        .map_err(classify)?;
    Ok(used.rows_affected == 1)
}

fn passkey_from_row(row: passkey::Model) -> StoreResult<StoredPasskey> {
    let id = Uuid::try_parse(&row.id).map_err(|_| StoreError::Other(format!("malformed passkey id {}", row.id)))?;
    Ok(StoredPasskey {
        id: PasskeyId(id),
        user_id: parse_user_id(&row.user_id)?,
        credential_id: row.credential_id,
        name: row.name,
        credential: row.credential,
        // Unreadable counts as the highest: no answer can move past it.
        sign_count: u32::try_from(row.sign_count).unwrap_or(u32::MAX),
        backed_up: row.backed_up,
        created_at: Timestamp::from_unix_millis(row.created_at),
        last_used_at: row.last_used_at.map(Timestamp::from_unix_millis),
    })
}
