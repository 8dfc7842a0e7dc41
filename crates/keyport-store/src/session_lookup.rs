//! The `GetSession` read: one static statement, prepared once per pooled
//! connection and reused.
//!
//! A cache miss on the hot path is one primary-key join. Through SeaORM each
//! call builds its SQL text anew and maps rows through its model layer,
//! which costs more than the lookup itself; the same query as a static
//! `sqlx` statement runs from each connection's statement cache. Measured
//! by `keyport-bench` (docs/benchmarks.md, "GetSession, server cache off").

use keyport_core::{
    Timestamp,
    email::Email,
    session::{ClientInfo, Session},
    store::{StoreError, StoreResult},
    token::{SecretHash, SessionId},
    user::User,
};
use sea_orm::{
    DatabaseConnection, DbErr, RuntimeErr,
    sqlx::{self, PgPool, SqlitePool},
};

use crate::{
    backend::Backend,
    db_error::classify,
    rows::{decode_roles, parse_user_id},
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

fn from_row(id: &SessionId, row: Row) -> StoreResult<(Session, User)> {
    let (user_id, secret_hash, created_at, expires_at, absolute_expires_at, refreshed_at, ip_address, user_agent) =
        (row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7);
    let (email, name, email_verified, roles, user_created_at, user_updated_at) =
        (row.8, row.9, row.10, row.11, row.12, row.13);
    let user_id = parse_user_id(&user_id)?;
    let secret_hash: [u8; 32] = secret_hash
        .as_slice()
        .try_into()
        .map_err(|_| StoreError::Other(format!("session {id} has a malformed secret hash")))?;
    let session = Session {
        id: id.clone(),
        user_id,
        secret_hash: SecretHash(secret_hash),
        created_at: Timestamp::from_unix_millis(created_at),
        expires_at: Timestamp::from_unix_millis(expires_at),
        absolute_expires_at: Timestamp::from_unix_millis(absolute_expires_at),
        refreshed_at: Timestamp::from_unix_millis(refreshed_at),
        client: ClientInfo { ip_address, user_agent },
    };
    let user = User {
        id: user_id,
        email: Email::from_trusted(email),
        name,
        email_verified,
        roles: decode_roles(&roles),
        created_at: Timestamp::from_unix_millis(user_created_at),
        updated_at: Timestamp::from_unix_millis(user_updated_at),
    };
    Ok((session, user))
}
