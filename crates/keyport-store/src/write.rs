//! Building blocks of write transactions, shared by every area of the store
//! (the row inserts they share are in [`crate::rows`]).
//!
//! Every write transaction starts with [`begin`]: on SQLite that is
//! `BEGIN IMMEDIATE`. A deferred transaction that reads and then writes
//! fails at once with "database is locked" when another connection wrote in
//! between, and the busy timeout does not help; an immediate one takes the
//! write lock up front and waits its turn under the busy timeout.

use keyport_core::{
    Timestamp, audit::AuditEvent, events::SessionEvent, mail::TokenPurpose, store::StoreResult, token::SessionId,
    user::UserId,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait, QueryFilter,
    QuerySelect, SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

use crate::{
    db_error::classify,
    entity::{email_token, session, sign_in_challenge, user},
    events::{CHANNEL, encode},
    rows::ban_from_row,
};

/// Starts a write transaction (`BEGIN IMMEDIATE` on SQLite).
pub(crate) async fn begin(db: &DatabaseConnection) -> StoreResult<DatabaseTransaction> {
    let options =
        TransactionOptions { sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate), ..Default::default() };
    db.begin_with_options(options).await.map_err(classify)
}

/// Locks a user's row until the transaction ends, so that writes about one
/// user (sign-in, password change, deletion) take turns; false when the
/// user does not exist. SQLite needs no row lock: `BEGIN IMMEDIATE` already
/// serialises writers.
pub(crate) async fn lock_user(txn: &DatabaseTransaction, user_id: UserId) -> StoreResult<bool> {
    let rows = user::Entity::find_by_id(user_id.to_string()).lock_exclusive().all(txn).await.map_err(classify)?;
    Ok(!rows.is_empty())
}

/// Locks a user's row as [`lock_user`] does, for a new session or sign-in
/// challenge: false when the user is gone or banned at `now`. A ban takes
/// the same lock, so a sign-in racing it either sees the ban or is ended by
/// it: no session outlives a ban.
pub(crate) async fn lock_user_signing_in(
    txn: &DatabaseTransaction,
    user_id: UserId,
    now: Timestamp,
) -> StoreResult<bool> {
    let rows = user::Entity::find_by_id(user_id.to_string()).lock_exclusive().all(txn).await.map_err(classify)?;
    Ok(rows.first().is_some_and(|row| ban_from_row(row).is_none_or(|ban| !ban.is_active(now))))
}

/// Tells the other replicas about `event` when `txn` commits (PostgreSQL's
/// `NOTIFY` is transactional); nothing on SQLite, whose file belongs to one
/// process. A failure fails the transaction: no change without its event.
pub(crate) async fn notify(txn: &DatabaseTransaction, origin: &str, event: &SessionEvent) -> StoreResult<()> {
    if txn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let statement = Statement::from_sql_and_values(
        DbBackend::Postgres,
        "SELECT pg_notify($1, $2)",
        [CHANNEL.into(), encode(origin, event).into()],
    );
    txn.execute_raw(statement).await.map_err(classify)?;
    Ok(())
}

/// Deletes a user's sessions except `keep`; returns how many. Revoking the
/// other sessions and changing the password both end them.
pub(crate) async fn delete_sessions_except(
    db: &impl ConnectionTrait,
    user_id: UserId,
    keep: &SessionId,
) -> StoreResult<u64> {
    delete_sessions(db, user_id, Some(keep)).await
}

/// Deletes a user's sessions (all of them, or all but `keep`); returns how
/// many.
pub(crate) async fn delete_sessions(
    db: &impl ConnectionTrait,
    user_id: UserId,
    keep: Option<&SessionId>,
) -> StoreResult<u64> {
    let mut delete = session::Entity::delete_many().filter(session::Column::UserId.eq(user_id.to_string()));
    if let Some(keep) = keep {
        delete = delete.filter(session::Column::Id.ne(keep.as_str()));
    }
    let result = delete.exec(db).await.map_err(classify)?;
    Ok(result.rows_affected)
}

/// The end of every change to a user's second factors: ends their sessions
/// but `keep`, records `audit` with how many ended, emits `event` and
/// commits. Returns how many ended.
pub(crate) async fn end_others_and_commit(
    txn: DatabaseTransaction,
    origin: &str,
    user_id: UserId,
    keep: &SessionId,
    audit: &AuditEvent,
    event: &SessionEvent,
) -> StoreResult<u64> {
    let ended = delete_sessions_except(&txn, user_id, keep).await?;
    crate::rows::insert_audit(&txn, &audit.clone().revoked(ended)).await?;
    notify(&txn, origin, event).await?;
    txn.commit().await.map_err(classify)?;
    Ok(ended)
}

/// Deletes a user's email tokens of `purpose`: a newer link, a password
/// change or a reset voids the older ones.
pub(crate) async fn delete_email_tokens(
    db: &impl ConnectionTrait,
    user_id: UserId,
    purpose: TokenPurpose,
) -> StoreResult<()> {
    email_token::Entity::delete_many()
        .filter(email_token::Column::UserId.eq(user_id.to_string()))
        .filter(email_token::Column::Purpose.eq(purpose.as_str()))
        .exec(db)
        .await
        .map_err(classify)?;
    Ok(())
}

/// Deletes a user's pending sign-in challenges: whatever ends all of their
/// sessions (a password change or reset, deletion) voids a first factor
/// passed before it too.
pub(crate) async fn delete_challenges(db: &impl ConnectionTrait, user_id: UserId) -> StoreResult<()> {
    sign_in_challenge::Entity::delete_many()
        .filter(sign_in_challenge::Column::UserId.eq(user_id.to_string()))
        .exec(db)
        .await
        .map_err(classify)?;
    Ok(())
}
