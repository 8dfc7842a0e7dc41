//! Building blocks of write transactions, shared by every area of the store.
//!
//! Every write transaction starts with [`begin`]: on SQLite that is
//! `BEGIN IMMEDIATE`. A deferred transaction that reads and then writes
//! fails at once with "database is locked" when another connection wrote in
//! between, and the busy timeout does not help; an immediate one takes the
//! write lock up front and waits its turn under the busy timeout.

use keyport_core::{audit::AuditEvent, events::SessionEvent, session::Session, store::StoreResult, user::UserId};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait, QuerySelect,
    SqliteTransactionMode, Statement, TransactionOptions, TransactionTrait,
};

use crate::{
    convert::{classify, session_to_row},
    entity::{audit_event, session, user},
    events::{CHANNEL, encode},
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

/// Appends to the audit trail.
pub(crate) async fn insert_audit(db: &impl ConnectionTrait, event: &AuditEvent) -> StoreResult<()> {
    let row = audit_event::ActiveModel {
        id: Set(event.id.to_string()),
        at: Set(event.at.unix_millis()),
        kind: Set(event.kind.as_str().to_owned()),
        user_id: Set(event.user_id.map(|id| id.to_string())),
        session_id: Set(event.session_id.as_ref().map(|id| id.as_str().to_owned())),
        ip_address: Set(event.client.ip_address.clone()),
        user_agent: Set(event.client.user_agent.clone()),
        detail: Set(event.detail.clone()),
    };
    audit_event::Entity::insert(row).exec_without_returning(db).await.map_err(classify)?;
    Ok(())
}

/// Inserts a session row.
pub(crate) async fn insert_session(db: &impl ConnectionTrait, session: &Session) -> StoreResult<()> {
    session::Entity::insert(session_to_row(session)).exec_without_returning(db).await.map_err(classify)?;
    Ok(())
}
