//! Rows to domain types and back, and database errors to [`StoreError`].

use keyport_core::{
    Timestamp,
    email::Email,
    session::{ClientInfo, Session},
    store::StoreError,
    token::{SecretHash, SessionId},
    user::{User, UserId, decode_roles, encode_roles},
};
use sea_orm::{ActiveValue::Set, DbErr, RuntimeErr, SqlErr, sqlx};
use uuid::Uuid;

use crate::entity::{session, user};

pub(crate) fn user_from_row(row: user::Model) -> Result<User, StoreError> {
    Ok(User {
        id: parse_user_id(&row.id)?,
        email: Email::from_trusted(row.email),
        name: row.name,
        email_verified: row.email_verified,
        roles: decode_roles(&row.roles),
        created_at: Timestamp::from_unix_millis(row.created_at),
        updated_at: Timestamp::from_unix_millis(row.updated_at),
    })
}

pub(crate) fn user_to_row(user: &User) -> user::ActiveModel {
    user::ActiveModel {
        id: Set(user.id.to_string()),
        email: Set(user.email.as_str().to_owned()),
        name: Set(user.name.clone()),
        email_verified: Set(user.email_verified),
        roles: Set(encode_roles(&user.roles)),
        created_at: Set(user.created_at.unix_millis()),
        updated_at: Set(user.updated_at.unix_millis()),
    }
}

pub(crate) fn session_from_row(row: session::Model) -> Result<Session, StoreError> {
    let secret_hash: [u8; 32] = row
        .secret_hash
        .as_slice()
        .try_into()
        .map_err(|_| StoreError::Other(format!("session {} has a malformed secret hash", row.id)))?;
    Ok(Session {
        user_id: parse_user_id(&row.user_id)?,
        id: SessionId::from_trusted(row.id),
        secret_hash: SecretHash(secret_hash),
        created_at: Timestamp::from_unix_millis(row.created_at),
        expires_at: Timestamp::from_unix_millis(row.expires_at),
        absolute_expires_at: Timestamp::from_unix_millis(row.absolute_expires_at),
        refreshed_at: Timestamp::from_unix_millis(row.refreshed_at),
        client: ClientInfo { ip_address: row.ip_address, user_agent: row.user_agent },
    })
}

pub(crate) fn session_to_row(session: &Session) -> session::ActiveModel {
    session::ActiveModel {
        id: Set(session.id.as_str().to_owned()),
        user_id: Set(session.user_id.to_string()),
        secret_hash: Set(session.secret_hash.0.to_vec()),
        created_at: Set(session.created_at.unix_millis()),
        expires_at: Set(session.expires_at.unix_millis()),
        absolute_expires_at: Set(session.absolute_expires_at.unix_millis()),
        refreshed_at: Set(session.refreshed_at.unix_millis()),
        ip_address: Set(session.client.ip_address.clone()),
        user_agent: Set(session.client.user_agent.clone()),
    }
}

pub(crate) fn parse_user_id(raw: &str) -> Result<UserId, StoreError> {
    Uuid::parse_str(raw).map(UserId).map_err(|e| StoreError::Other(format!("malformed user id {raw:?}: {e}")))
}

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
    if unavailable { StoreError::Unavailable(error.to_string()) } else { StoreError::Other(error.to_string()) }
}

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
