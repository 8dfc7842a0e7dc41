//! The OAuth area: started flows and linked accounts.

use async_trait::async_trait;
use keyport_core::{
    Timestamp,
    audit::AuditEvent,
    oauth::{LinkedAccount, OAuthFlow},
    session::Session,
    store::{OAuthStore, StoreError, StoreResult, UnlinkOutcome},
    user::{User, UserId},
};
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};

use crate::{
    SeaStore,
    db_error::classify,
    entity::{account, oauth_flow, password, user},
    rows::{insert_audit, insert_session, parse_user_id, user_from_row, user_to_row},
    write::{begin, lock_user},
};

#[async_trait]
impl OAuthStore for SeaStore {
    async fn create_oauth_flow(&self, flow: &OAuthFlow) -> StoreResult<()> {
        let row = oauth_flow::ActiveModel {
            state_hash: Set(flow.state_hash.to_vec()),
            binding_hash: Set(flow.binding_hash.to_vec()),
            provider_id: Set(flow.provider_id.clone()),
            redirect_uri: Set(flow.redirect_uri.clone()),
            pkce_verifier: Set(flow.pkce_verifier.clone()),
            nonce: Set(flow.nonce.clone()),
            link_user_id: Set(flow.link_user.map(|id| id.to_string())),
            created_at: Set(flow.created_at.unix_millis()),
            expires_at: Set(flow.expires_at.unix_millis()),
        };
        oauth_flow::Entity::insert(row).exec_without_returning(&self.db).await.map_err(classify)?;
        Ok(())
    }

    /// Deletes the flow and returns what it held, in one statement
    /// (`DELETE ... RETURNING`): of racing callers only the one whose delete
    /// removed the row gets it, and nobody upgrades a read lock to a write.
    async fn take_oauth_flow(&self, state_hash: &[u8; 32]) -> StoreResult<Option<OAuthFlow>> {
        let taken = oauth_flow::Entity::delete_by_id(state_hash.to_vec())
            .exec_with_returning(&self.db)
            .await
            .map_err(classify)?;
        taken.map(flow_from_row).transpose()
    }

    async fn delete_expired_oauth_flows(&self, now: Timestamp) -> StoreResult<u64> {
        let deleted = oauth_flow::Entity::delete_many()
            .filter(oauth_flow::Column::ExpiresAt.lte(now.unix_millis()))
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(deleted.rows_affected)
    }

    async fn find_linked_account(
        &self,
        provider_id: &str,
        subject: &str,
    ) -> StoreResult<Option<(LinkedAccount, User)>> {
        let row = account::Entity::find()
            .filter(account::Column::ProviderId.eq(provider_id))
            .filter(account::Column::Subject.eq(subject))
            .all(&self.db)
            .await
            .map_err(classify)?
            .pop();
        let Some(row) = row else { return Ok(None) };
        let owner = user::Entity::find_by_id(row.user_id.clone()).all(&self.db).await.map_err(classify)?.pop();
        let Some(owner) = owner else { return Ok(None) };
        Ok(Some((account_from_row(row)?, user_from_row(owner)?)))
    }

    async fn create_oauth_user(
        &self,
        new_user: &User,
        linked: &LinkedAccount,
        session: &Session,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let txn = begin(&self.db).await?;
        user::Entity::insert(user_to_row(new_user)).exec_without_returning(&txn).await.map_err(classify)?;
        insert_account(&txn, linked).await?;
        insert_session(&txn, session).await?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(classify)
    }

    async fn link_account(&self, linked: &LinkedAccount, audit: &AuditEvent) -> StoreResult<()> {
        let txn = begin(&self.db).await?;
        // The owner may have been deleted meanwhile; linking to nobody is a
        // foreign-key error, not a link.
        if !lock_user(&txn, linked.user_id).await? {
            return Err(StoreError::NotFound);
        }
        insert_account(&txn, linked).await?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(classify)
    }

    async fn list_linked_accounts(&self, user_id: UserId) -> StoreResult<Vec<LinkedAccount>> {
        let rows = account::Entity::find()
            .filter(account::Column::UserId.eq(user_id.to_string()))
            .order_by_asc(account::Column::LinkedAt)
            .all(&self.db)
            .await
            .map_err(classify)?;
        rows.into_iter().map(account_from_row).collect()
    }

    async fn unlink_account(
        &self,
        user_id: UserId,
        provider_id: &str,
        subject: &str,
        audit: &AuditEvent,
    ) -> StoreResult<UnlinkOutcome> {
        let owner = user_id.to_string();
        let txn = begin(&self.db).await?;
        // The owner's row lock serialises unlinks: two cannot both see the
        // other account remaining.
        if !lock_user(&txn, user_id).await? {
            return Ok(UnlinkOutcome::NotFound);
        }
        let accounts =
            account::Entity::find().filter(account::Column::UserId.eq(&owner)).all(&txn).await.map_err(classify)?;
        let Some(target) = accounts.iter().find(|a| a.provider_id == provider_id && a.subject == subject) else {
            return Ok(UnlinkOutcome::NotFound);
        };
        let has_password =
            password::Entity::find().filter(password::Column::UserId.eq(&owner)).count(&txn).await.map_err(classify)?
                > 0;
        if !has_password && accounts.len() <= 1 {
            return Ok(UnlinkOutcome::LastSignInMethod);
        }
        account::Entity::delete_by_id(target.id.clone()).exec(&txn).await.map_err(classify)?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(classify)?;
        Ok(UnlinkOutcome::Unlinked)
    }
}

async fn insert_account(db: &impl ConnectionTrait, linked: &LinkedAccount) -> StoreResult<()> {
    let row = account::ActiveModel {
        id: Set(linked.linked_at.uuid_v7().to_string()),
        user_id: Set(linked.user_id.to_string()),
        provider_id: Set(linked.provider_id.clone()),
        subject: Set(linked.subject.clone()),
        email: Set(linked.email.clone()),
        linked_at: Set(linked.linked_at.unix_millis()),
    };
    account::Entity::insert(row).exec_without_returning(db).await.map_err(classify)?;
    Ok(())
}

fn account_from_row(row: account::Model) -> StoreResult<LinkedAccount> {
    Ok(LinkedAccount {
        user_id: parse_user_id(&row.user_id)?,
        provider_id: row.provider_id,
        subject: row.subject,
        email: row.email,
        linked_at: Timestamp::from_unix_millis(row.linked_at),
    })
}

fn flow_from_row(row: oauth_flow::Model) -> StoreResult<OAuthFlow> {
    let hash = |bytes: Vec<u8>| -> StoreResult<[u8; 32]> {
        bytes.try_into().map_err(|_| StoreError::Other("malformed OAuth flow hash".into()))
    };
    let link_user = row.link_user_id.as_deref().map(parse_user_id).transpose()?;
    Ok(OAuthFlow {
        state_hash: hash(row.state_hash)?,
        binding_hash: hash(row.binding_hash)?,
        provider_id: row.provider_id,
        redirect_uri: row.redirect_uri,
        pkce_verifier: row.pkce_verifier,
        nonce: row.nonce,
        link_user,
        created_at: Timestamp::from_unix_millis(row.created_at),
        expires_at: Timestamp::from_unix_millis(row.expires_at),
    })
}
