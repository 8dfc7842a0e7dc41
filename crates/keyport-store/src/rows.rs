//! Rows shared by the areas: users and sessions to rows and back (with the
//! roles column format), and the inserts several areas' transactions make.

use keyport_core::{
    Timestamp,
    audit::AuditEvent,
    email::Email,
    mail::{EmailToken, Mail},
    organization::OrganizationId,
    second_factor::Assurance,
    session::{ClientInfo, Session},
    store::{StoreError, StoreResult},
    token::{SecretHash, SessionId},
    user::{Ban, User, UserId, is_valid_role},
};
use sea_orm::{ActiveValue::Set, ConnectionTrait, EntityTrait};
use uuid::Uuid;

use crate::{
    db_error::classify,
    entity::{audit_event, email_token, mail_outbox, session, user},
};

pub(crate) fn user_from_row(row: user::Model) -> Result<User, StoreError> {
    let ban = ban_from_row(&row);
    Ok(User {
        id: parse_user_id(&row.id)?,
        email: Email::from_trusted(row.email),
        name: row.name,
        email_verified: row.email_verified,
        roles: decode_roles(&row.roles),
        created_at: Timestamp::from_unix_millis(row.created_at),
        updated_at: Timestamp::from_unix_millis(row.updated_at),
        two_factor_enabled: row.two_factor_enabled,
        ban,
    })
}

/// The user's ban, from its three columns (set together or not at all).
pub(crate) fn ban_from_row(row: &user::Model) -> Option<Ban> {
    let banned_at = row.banned_at?;
    Some(Ban {
        reason: row.ban_reason.clone().unwrap_or_default(),
        banned_at: Timestamp::from_unix_millis(banned_at),
        expires_at: row.ban_expires_at.map(Timestamp::from_unix_millis),
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
        two_factor_enabled: Set(user.two_factor_enabled),
        banned_at: Set(user.ban.as_ref().map(|ban| ban.banned_at.unix_millis())),
        ban_reason: Set(user.ban.as_ref().map(|ban| ban.reason.clone())),
        ban_expires_at: Set(user.ban.as_ref().and_then(|ban| ban.expires_at.map(Timestamp::unix_millis))),
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
        assurance: Assurance::from_level(row.assurance_level),
        authenticated_at: Timestamp::from_unix_millis(row.authenticated_at),
        impersonator: row.impersonator_id.as_deref().map(parse_user_id).transpose()?,
        active_organization: row
            .active_organization_id
            .as_deref()
            .map(|id| {
                Uuid::parse_str(id)
                    .map(OrganizationId)
                    .map_err(|e| StoreError::Other(format!("malformed organization id {id:?}: {e}")))
            })
            .transpose()?,
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
        assurance_level: Set(session.assurance.level()),
        authenticated_at: Set(session.authenticated_at.unix_millis()),
        impersonator_id: Set(session.impersonator.map(|id| id.to_string())),
        active_organization_id: Set(session.active_organization.map(|id| id.to_string())),
    }
}

pub(crate) fn parse_user_id(raw: &str) -> Result<UserId, StoreError> {
    Uuid::parse_str(raw).map(UserId).map_err(|e| StoreError::Other(format!("malformed user id {raw:?}: {e}")))
}

/// Roles stored as one space-separated column: joins them.
pub(crate) fn encode_roles(roles: &[String]) -> String {
    roles.join(" ")
}

/// Reads roles written by [`encode_roles`], dropping anything malformed.
pub(crate) fn decode_roles(encoded: &str) -> Vec<String> {
    let mut roles: Vec<String> =
        encoded.split_ascii_whitespace().filter(|role| is_valid_role(role)).map(str::to_owned).collect();
    roles.sort();
    roles.dedup();
    roles
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
        target_user_id: Set(event.target.map(|id| id.to_string())),
    };
    audit_event::Entity::insert(row).exec_without_returning(db).await.map_err(classify)?;
    Ok(())
}

/// Inserts a session row.
pub(crate) async fn insert_session(db: &impl ConnectionTrait, session: &Session) -> StoreResult<()> {
    session::Entity::insert(session_to_row(session)).exec_without_returning(db).await.map_err(classify)?;
    Ok(())
}

/// Queues a mail in the outbox, pending from its creation.
pub(crate) async fn insert_mail(db: &impl ConnectionTrait, mail: &Mail) -> StoreResult<()> {
    let row = mail_outbox::ActiveModel {
        id: Set(mail.id.to_string()),
        kind: Set(mail.kind.as_str().to_owned()),
        recipient: Set(mail.to.as_str().to_owned()),
        subject: Set(mail.subject.clone()),
        text_body: Set(mail.text.clone()),
        html_body: Set(mail.html.clone()),
        status: Set(MAIL_PENDING.to_owned()),
        attempts: Set(0),
        next_attempt_at: Set(mail.created_at.unix_millis()),
        created_at: Set(mail.created_at.unix_millis()),
        sent_at: Set(None),
        last_error: Set(None),
    };
    mail_outbox::Entity::insert(row).exec_without_returning(db).await.map_err(classify)?;
    Ok(())
}

/// Stores an email token (its hash only).
pub(crate) async fn insert_email_token(db: &impl ConnectionTrait, token: &EmailToken) -> StoreResult<()> {
    let row = email_token::ActiveModel {
        token_hash: Set(token.hash.to_vec()),
        purpose: Set(token.purpose.as_str().to_owned()),
        user_id: Set(token.user_id.to_string()),
        email: Set(token.email.as_str().to_owned()),
        created_at: Set(token.created_at.unix_millis()),
        expires_at: Set(token.expires_at.unix_millis()),
    };
    email_token::Entity::insert(row).exec_without_returning(db).await.map_err(classify)?;
    Ok(())
}

/// `mail_outbox.status` of a message waiting for (another) attempt.
pub(crate) const MAIL_PENDING: &str = "pending";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_round_trip_sorted_and_unique() {
        let roles = vec!["user".to_owned(), "admin".to_owned()];
        assert_eq!(decode_roles(&encode_roles(&roles)), vec!["admin", "user"]);
        assert_eq!(decode_roles("user user  Bad! admin"), vec!["admin", "user"]);
    }
}
