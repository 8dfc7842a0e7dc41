//! The `GetSession` read: one static statement, prepared once per pooled
//! connection and reused.
//!
//! A cache miss on the hot path is one primary-key join. Through SeaORM each
//! call builds its SQL text anew and maps rows through its model layer,
//! which costs more than the lookup itself; the same query as a static
//! `sqlx` statement runs from each connection's statement cache. Measured
//! by `keyport-bench` (docs/benchmarks.md, "GetSession, server cache off").

use keyport_core::{session::Session, store::StoreResult, token::SessionId, user::User};
use sea_orm::{
    DatabaseConnection, DbErr, RuntimeErr,
    sqlx::{self, PgPool, SqlitePool},
};

use crate::{
    backend::Backend,
    db_error::classify,
    entity::{session, user},
    rows::{session_from_row, user_from_row},
};

/// A session joined with its user, columns in [`Row`] order, up to the
/// placeholder of the session id (which differs by backend).
macro_rules! select_session {
    ($placeholder:literal) => {
        concat!(
            "SELECT s.user_id, s.secret_hash, s.created_at, s.expires_at, s.absolute_expires_at, s.refreshed_at, ",
            "s.ip_address, s.user_agent, u.email, u.name, u.email_verified, u.roles, u.created_at, u.updated_at ",
            "FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ",
            $placeholder
        )
    };
}

type Row =
    (String, Vec<u8>, i64, i64, i64, i64, Option<String>, Option<String>, String, String, bool, String, i64, i64);

/// Reads sessions with their users straight through the pool of the backend.
#[derive(Debug, Clone)]
pub(crate) enum SessionLookup {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

impl SessionLookup {
    /// A lookup over `db`, which is a `backend` connection.
    pub(crate) fn new(db: &DatabaseConnection, backend: Backend) -> Self {
        match backend {
            Backend::Sqlite => Self::Sqlite(db.get_sqlite_connection_pool().clone()),
            Backend::Postgres => Self::Postgres(db.get_postgres_connection_pool().clone()),
        }
    }

    /// The session with this id and its user.
    pub(crate) async fn find(&self, id: &SessionId) -> StoreResult<Option<(Session, User)>> {
        let row = match self {
            Self::Sqlite(pool) => {
                sqlx::query_as::<_, Row>(select_session!("?1")).bind(id.as_str()).fetch_optional(pool).await
            }
            Self::Postgres(pool) => {
                sqlx::query_as::<_, Row>(select_session!("$1")).bind(id.as_str()).fetch_optional(pool).await
            }
        };
        let row = row.map_err(|e| classify(DbErr::Query(RuntimeErr::SqlxError(e.into()))))?;
        row.map(|row| from_row(id, row)).transpose()
    }
}

/// The row as the two entity models, so the one conversion of each
/// (`rows.rs`) applies here too.
fn from_row(id: &SessionId, row: Row) -> StoreResult<(Session, User)> {
    let session = session::Model {
        id: id.as_str().to_owned(),
        user_id: row.0.clone(),
        secret_hash: row.1,
        created_at: row.2,
        expires_at: row.3,
        absolute_expires_at: row.4,
        refreshed_at: row.5,
        ip_address: row.6,
        user_agent: row.7,
    };
    let user = user::Model {
        id: row.0,
        email: row.8,
        name: row.9,
        email_verified: row.10,
        roles: row.11,
        created_at: row.12,
        updated_at: row.13,
    };
    Ok((session_from_row(session)?, user_from_row(user)?))
}
