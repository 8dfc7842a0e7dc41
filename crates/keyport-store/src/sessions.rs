//! The sessions area.

use async_trait::async_trait;
use keyport_core::{
    Timestamp,
    audit::AuditEvent,
    events::SessionEvent,
    session::Session,
    store::{SessionBasis, SessionStore, StoreResult},
    token::SessionId,
    user::{User, UserId},
};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Condition, Expr},
};

use crate::{
    SeaStore,
    db_error::classify,
    entity::{password, session, sign_in_challenge, user},
    rows::{insert_audit, insert_session, session_from_row},
    write::{begin, delete_sessions, lock_user_signing_in, notify},
};

#[async_trait]
impl SessionStore for SeaStore {
    async fn create_session(
        &self,
        session: &Session,
        basis: SessionBasis<'_>,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let txn = begin(&self.db).await?;
        // The user's row lock orders this against a concurrent password
        // change, ban or deletion: either they see this session and end it,
        // or this sees their change and refuses.
        if !lock_user_signing_in(&txn, session.user_id, session.created_at).await? {
            return Ok(false);
        }
        if !holds(&txn, session.user_id, basis).await? {
            return Ok(false);
        }
        insert_session(&txn, session).await?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(classify)?;
        Ok(true)
    }

    async fn find_session(&self, id: &SessionId) -> StoreResult<Option<(Session, User)>> {
        self.sessions.find(id).await
    }

    async fn refresh_session(
        &self,
        id: &SessionId,
        expires_at: Timestamp,
        refreshed_at: Timestamp,
    ) -> StoreResult<bool> {
        let updated = session::Entity::update_many()
            .col_expr(session::Column::ExpiresAt, Expr::value(expires_at.unix_millis()))
            .col_expr(session::Column::RefreshedAt, Expr::value(refreshed_at.unix_millis()))
            .filter(session::Column::Id.eq(id.as_str()))
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(updated.rows_affected > 0)
    }

    async fn list_sessions(&self, user_id: UserId, now: Timestamp) -> StoreResult<Vec<Session>> {
        let rows = session::Entity::find()
            .filter(session::Column::UserId.eq(user_id.to_string()))
            .filter(session::Column::ExpiresAt.gt(now.unix_millis()))
            .filter(session::Column::AbsoluteExpiresAt.gt(now.unix_millis()))
            .order_by_desc(session::Column::CreatedAt)
            .limit(1000)
            .all(&self.db)
            .await
            .map_err(classify)?;
        rows.into_iter().map(session_from_row).collect()
    }

    async fn delete_session(
        &self,
        user_id: UserId,
        id: &SessionId,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<bool> {
        let txn = begin(&self.db).await?;
        let deleted = session::Entity::delete_many()
            .filter(session::Column::Id.eq(id.as_str()))
            .filter(session::Column::UserId.eq(user_id.to_string()))
            .exec(&txn)
            .await
            .map_err(classify)?
            .rows_affected;
        if deleted > 0 {
            insert_audit(&txn, audit).await?;
            notify(&txn, &self.origin, event).await?;
        }
        txn.commit().await.map_err(classify)?;
        Ok(deleted > 0)
    }

    async fn delete_other_sessions(
        &self,
        user_id: UserId,
        keep: Option<&SessionId>,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<u64> {
        let txn = begin(&self.db).await?;
        let deleted = delete_sessions(&txn, user_id, keep).await?;
        insert_audit(&txn, &audit.clone().detail(format!("revoked:{deleted}"))).await?;
        if deleted > 0 {
            notify(&txn, &self.origin, event).await?;
        }
        txn.commit().await.map_err(classify)?;
        Ok(deleted)
    }

    async fn delete_expired_sessions(&self, now: Timestamp) -> StoreResult<u64> {
        let deleted = session::Entity::delete_many()
            .filter(
                Condition::any()
                    .add(session::Column::ExpiresAt.lte(now.unix_millis()))
                    .add(session::Column::AbsoluteExpiresAt.lte(now.unix_millis())),
            )
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(deleted.rows_affected)
    }
}

/// Whether what a new session (or sign-in challenge) is granted on still
/// holds, inside the transaction that writes it; applies its side effects
/// (a rehash, a verified address, a taken challenge).
pub(crate) async fn holds(txn: &DatabaseTransaction, user_id: UserId, basis: SessionBasis<'_>) -> StoreResult<bool> {
    if let SessionBasis::Password { verified_hash, rehash } = basis {
        let owner = user_id.to_string();
        let current = password::Entity::find_by_id(owner.clone()).all(txn).await.map_err(classify)?.pop();
        if current.is_none_or(|row| row.hash != verified_hash) {
            return Ok(false);
        }
        if let Some(rehash) = rehash {
            password::Entity::update_many()
                .col_expr(password::Column::Hash, Expr::value(rehash))
                .filter(password::Column::UserId.eq(owner))
                .exec(txn)
                .await
                .map_err(classify)?;
        }
    }
    if let SessionBasis::Mailbox { email } = basis {
        let verified = user::Entity::update_many()
            .col_expr(user::Column::EmailVerified, Expr::value(true))
            .filter(user::Column::Id.eq(user_id.to_string()))
            .filter(user::Column::Email.eq(email.as_str()))
            .exec(txn)
            .await
            .map_err(classify)?;
        // The address changed meanwhile: the mailbox proves nothing now.
        if verified.rows_affected == 0 {
            return Ok(false);
        }
    }
    if let SessionBasis::Passkey { factor } = basis
        && !crate::passkeys::use_passkey(txn, user_id, factor).await?
    {
        return Ok(false);
    }
    if let SessionBasis::Challenge { hash, factor } = basis {
        // One statement takes the challenge: of racing completions, the
        // one whose delete removed the row creates the session.
        let taken = sign_in_challenge::Entity::delete_many()
            .filter(sign_in_challenge::Column::Hash.eq(hash.to_vec()))
            .filter(sign_in_challenge::Column::UserId.eq(user_id.to_string()))
            .exec(txn)
            .await
            .map_err(classify)?;
        if taken.rows_affected == 0 {
            return Ok(false);
        }
        // Used up with the challenge, or not at all (the caller drops
        // the transaction uncommitted on false).
        if !crate::factors::use_factor(txn, user_id, factor).await? {
            return Ok(false);
        }
    }
    Ok(true)
}
