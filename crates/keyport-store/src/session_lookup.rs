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
    sqlx::{self, ColumnIndex, Decode, PgPool, Row, SqlitePool, Type},
};

use crate::{
    backend::Backend,
    db_error::classify,
    entity::{session, user},
    rows::{session_from_row, user_from_row},
};

/// A session joined with its user, columns in the order [`models`] reads
/// them, up to the placeholder of the session id (which differs by backend).
macro_rules! select_session {
    ($placeholder:literal) => {
        concat!(
            "SELECT s.user_id, s.secret_hash, s.created_at, s.expires_at, s.absolute_expires_at, s.refreshed_at, ",
            "s.ip_address, s.user_agent, s.assurance_level, s.authenticated_at, ",
            "u.email, u.name, u.email_verified, u.roles, u.created_at, u.updated_at, u.two_factor_enabled, ",
            "u.banned_at, u.ban_reason, u.ban_expires_at, s.impersonator_id, s.active_organization_id ",
            "FROM sessions s JOIN users u ON u.id = s.user_id WHERE s.id = ",
            $placeholder
        )
    };
}

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
        let found = match self {
            Self::Sqlite(pool) => sqlx::query(select_session!("?1"))
                .bind(id.as_str())
                .fetch_optional(pool)
                .await
                .and_then(|row| row.map(|row| models(id, &row)).transpose()),
            Self::Postgres(pool) => sqlx::query(select_session!("$1"))
                .bind(id.as_str())
                .fetch_optional(pool)
                .await
                .and_then(|row| row.map(|row| models(id, &row)).transpose()),
        };
        let found = found.map_err(|e| classify(DbErr::Query(RuntimeErr::SqlxError(e.into()))))?;
        found.map(|(session, user)| Ok((session_from_row(session)?, user_from_row(user)?))).transpose()
    }
}

/// The row as the two entity models, so the one conversion of each
/// (`rows.rs`) applies here too. (Twenty-two columns: more than sqlx's tuple
/// rows take, hence by index.)
fn models<'r, R>(id: &SessionId, row: &'r R) -> Result<(session::Model, user::Model), sqlx::Error>
where
    R: Row,
    usize: ColumnIndex<R>,
    String: Decode<'r, R::Database> + Type<R::Database>,
    Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
    i64: Decode<'r, R::Database> + Type<R::Database>,
    i16: Decode<'r, R::Database> + Type<R::Database>,
    bool: Decode<'r, R::Database> + Type<R::Database>,
{
    let user_id: String = row.try_get(0)?;
    let session = session::Model {
        id: id.as_str().to_owned(),
        user_id: user_id.clone(),
        secret_hash: row.try_get(1)?,
        created_at: row.try_get(2)?,
        expires_at: row.try_get(3)?,
        absolute_expires_at: row.try_get(4)?,
        refreshed_at: row.try_get(5)?,
        ip_address: row.try_get(6)?,
        user_agent: row.try_get(7)?,
        assurance_level: row.try_get(8)?,
        authenticated_at: row.try_get(9)?,
        impersonator_id: row.try_get(20)?,
        active_organization_id: row.try_get(21)?,
    };
    let user = user::Model {
        id: user_id,
        email: row.try_get(10)?,
        name: row.try_get(11)?,
        email_verified: row.try_get(12)?,
        roles: row.try_get(13)?,
        created_at: row.try_get(14)?,
        updated_at: row.try_get(15)?,
        two_factor_enabled: row.try_get(16)?,
        banned_at: row.try_get(17)?,
        ban_reason: row.try_get(18)?,
        ban_expires_at: row.try_get(19)?,
    };
    Ok((session, user))
}
