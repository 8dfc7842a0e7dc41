//! Database errors to what the domain cares about: [`StoreError`].

use keyport_core::store::StoreError;
use sea_orm::{DbErr, RuntimeErr, SqlErr, sqlx};

/// Sorts a database error into what the domain cares about: a conflict, an
/// unreachable database, or anything else.
pub(crate) fn classify(error: DbErr) -> StoreError {
    match error.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(detail)) => return StoreError::Conflict(detail),
        // A row referred to was deleted by a concurrent call.
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => return StoreError::NotFound,
        _ => {}
    }
    let unavailable = match &error {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => is_connection_loss(e),
        _ => false,
    };
    // Constraint outcomes above are answers; these are failures.
    let kind = if unavailable { "unavailable" } else { "other" };
    metrics::counter!(DB_ERRORS, "kind" => kind).increment(1);
    if unavailable { StoreError::Unavailable(error.to_string()) } else { StoreError::Other(error.to_string()) }
}

/// Database calls that failed, by `kind`: `unavailable` (connection lost,
/// pool exhausted, SQLite busy) or `other`.
pub const DB_ERRORS: &str = "keyport_db_errors_total";

fn is_sqlite_busy(code: &str) -> bool {
    // SQLite's codes are short numbers whose low byte is the primary code;
    // PostgreSQL's SQLSTATEs are always five characters.
    code.len() < 5 && code.parse::<u32>().is_ok_and(|code| matches!(code & 0xff, 5 | 6))
}

fn is_connection_loss(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // PostgreSQL: 08xxx connection exceptions, 57P0x shutdown in progress.
        // SQLite: SQLITE_BUSY (5) and SQLITE_LOCKED (6) with their extended
        // codes, left after the busy timeout: the database is overloaded.
        sqlx::Error::Database(e) => {
            e.code().is_some_and(|code| code.starts_with("08") || code.starts_with("57P") || is_sqlite_busy(&code))
        }
        _ => false,
    }
}
