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
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => means_unavailable(e),
        _ => false,
    };
    // Constraint outcomes above are answers; these are failures.
    let kind = if unavailable { "unavailable" } else { "other" };
    metrics::counter!(DB_ERRORS, "kind" => kind).increment(1);
    if unavailable { StoreError::Unavailable(error.to_string()) } else { StoreError::Other(error.to_string()) }
}

/// Database calls that failed, by `kind`: `unavailable` (connection lost,
/// pool exhausted, SQLite busy, storage full) or `other`.
pub const DB_ERRORS: &str = "keyport_db_errors_total";

/// PostgreSQL's SQLSTATEs, always five characters, that mean the server
/// cannot take the call now.
fn is_pg_unavailable(code: &str) -> bool {
    code.len() == 5 && (code.starts_with("08") || code.starts_with("53") || code.starts_with("57P"))
}

/// SQLite's busy (5), locked (6), I/O error (10) and full (13) codes, with
/// their extended codes: the database cannot take the call now, but may
/// once the load drops or the operator frees disk space.
fn is_sqlite_unavailable(code: &str) -> bool {
    // SQLite's codes are short numbers whose low byte is the primary code;
    // PostgreSQL's SQLSTATEs are always five characters.
    code.len() < 5 && code.parse::<u32>().is_ok_and(|code| matches!(code & 0xff, 5 | 6 | 10 | 13))
}

/// Whether `error` means the database cannot serve the call now (and may
/// later), rather than that the call itself failed.
fn means_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        // PostgreSQL: 08xxx connection exceptions, 53xxx insufficient
        // resources (disk full, out of memory, too many connections), 57P0x
        // shutdown in progress. SQLite: busy, locked, I/O error, full.
        sqlx::Error::Database(e) => {
            e.code().is_some_and(|code| is_pg_unavailable(&code) || is_sqlite_unavailable(&code))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::{is_pg_unavailable, is_sqlite_unavailable};

    #[test]
    fn full_busy_and_lost_are_unavailable_and_constraints_are_not() {
        // PostgreSQL: connection failure, disk full, too many connections, admin shutdown.
        for code in ["08006", "53100", "53300", "57P01"] {
            assert!(is_pg_unavailable(code), "{code}");
        }
        // Unique violation, syntax error; and SQLite numbers are never SQLSTATEs.
        for code in ["23505", "42601", "531", "2067"] {
            assert!(!is_pg_unavailable(code), "{code}");
        }
        // SQLite: BUSY, LOCKED, IOERR_WRITE (778), FULL, BUSY_SNAPSHOT (517).
        for code in ["5", "6", "778", "13", "517"] {
            assert!(is_sqlite_unavailable(code), "{code}");
        }
        // CONSTRAINT_UNIQUE (2067), CONSTRAINT_COMMITHOOK (531), CORRUPT (11), a SQLSTATE.
        for code in ["2067", "531", "11", "53100"] {
            assert!(!is_sqlite_unavailable(code), "{code}");
        }
    }
}
