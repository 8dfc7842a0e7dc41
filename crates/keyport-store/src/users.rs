//! The users area: users, their passwords and profile.

use async_trait::async_trait;
use keyport_core::{
    Timestamp,
    audit::AuditEvent,
    email::Email,
    events::SessionEvent,
    mail::{EmailToken, Mail, TokenPurpose},
    session::Session,
    store::{Credentials, StoreError, StoreResult, UserQuery, UserStore},
    token::SessionId,
    user::{Ban, User, UserId},
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Condition, Expr, ExprTrait, LikeExpr},
};

use crate::{
    SeaStore,
    db_error::classify,
    entity::{account, backup_code, email_token, password, session, totp_factor, user},
    rows::{encode_roles, insert_audit, insert_email_token, insert_mail, insert_session, user_from_row, user_to_row},
    write::{
        begin, delete_challenges, delete_email_tokens, delete_sessions, delete_sessions_except, lock_user, notify,
    },
};

#[async_trait]
impl UserStore for SeaStore {
    async fn create_user(
        &self,
        user: &User,
        password_hash: &str,
        session: &Session,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let txn = begin(&self.db).await?;
        insert_user_with_password(&txn, user, password_hash).await?;
        insert_session(&txn, session).await?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(classify)
    }

    async fn create_unverified_user(
        &self,
        user: &User,
        password_hash: &str,
        token: &EmailToken,
        mail: &Mail,
        audit: &AuditEvent,
    ) -> StoreResult<()> {
        let txn = begin(&self.db).await?;
        insert_user_with_password(&txn, user, password_hash).await?;
        insert_email_token(&txn, token).await?;
        insert_mail(&txn, mail).await?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(classify)
    }

    async fn insert_user(&self, user: &User, password_hash: Option<&str>, audit: &AuditEvent) -> StoreResult<()> {
        let txn = begin(&self.db).await?;
        match password_hash {
            Some(hash) => insert_user_with_password(&txn, user, hash).await?,
            None => {
                user::Entity::insert(user_to_row(user)).exec_without_returning(&txn).await.map_err(classify)?;
            }
        }
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(classify)
    }

    async fn create_mailbox_user(&self, user: &User, session: &Session, audit: &AuditEvent) -> StoreResult<()> {
        let txn = begin(&self.db).await?;
        user::Entity::insert(user_to_row(user)).exec_without_returning(&txn).await.map_err(classify)?;
        insert_session(&txn, session).await?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(classify)
    }

    async fn find_credentials_by_email(&self, email: &Email) -> StoreResult<Option<Credentials>> {
        let Some(row) = user::Entity::find()
            .filter(user::Column::Email.eq(email.as_str()))
            .all(&self.db)
            .await
            .map_err(classify)?
            .pop()
        else {
            return Ok(None);
        };
        let user = user_from_row(row)?;
        let Some(password_hash) = self.find_password_hash(user.id).await? else {
            return Ok(None);
        };
        Ok(Some(Credentials { user, password_hash }))
    }

    async fn find_user_by_email(&self, email: &Email) -> StoreResult<Option<User>> {
        let row = user::Entity::find()
            .filter(user::Column::Email.eq(email.as_str()))
            .all(&self.db)
            .await
            .map_err(classify)?
            .pop();
        row.map(user_from_row).transpose()
    }

    async fn find_user(&self, user_id: UserId) -> StoreResult<Option<User>> {
        let row = user::Entity::find_by_id(user_id.to_string()).all(&self.db).await.map_err(classify)?.pop();
        row.map(user_from_row).transpose()
    }

    async fn list_users(&self, query: &UserQuery, now: Timestamp, limit: u64) -> StoreResult<Vec<User>> {
        let mut select = user::Entity::find().order_by_desc(user::Column::Id).limit(limit);
        if !query.email_prefix.is_empty() {
            select = select.filter(user::Column::Email.like(starts_with(&query.email_prefix)));
        }
        if let Some(after) = query.created_after {
            select = select.filter(user::Column::CreatedAt.gte(after.unix_millis()));
        }
        if let Some(before) = query.created_before {
            select = select.filter(user::Column::CreatedAt.lt(before.unix_millis()));
        }
        if let Some(role) = &query.role {
            // Roles are one space-separated column: match a whole word.
            let padded = Expr::cust("' ' || roles || ' '");
            select = select.filter(padded.like(contains(&format!(" {role} "))));
        }
        if let Some(banned) = query.banned {
            let in_force = Condition::all().add(user::Column::BannedAt.is_not_null()).add(
                Condition::any()
                    .add(user::Column::BanExpiresAt.is_null())
                    .add(user::Column::BanExpiresAt.gt(now.unix_millis())),
            );
            select = select.filter(if banned { in_force } else { in_force.not() });
        }
        if let Some(before) = query.before {
            select = select.filter(user::Column::Id.lt(before.to_string()));
        }
        select.all(&self.db).await.map_err(classify)?.into_iter().map(user_from_row).collect()
    }

    async fn find_password_hash(&self, user_id: UserId) -> StoreResult<Option<String>> {
        // `.all()` rather than `.one()`: `.one()` binds its LIMIT, which makes
        // SQLite re-prepare the statement on every call.
        let rows = password::Entity::find_by_id(user_id.to_string()).all(&self.db).await.map_err(classify)?;
        Ok(rows.into_iter().next().map(|row| row.hash))
    }

    async fn update_user_name(
        &self,
        user_id: UserId,
        name: &str,
        now: Timestamp,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<User> {
        let txn = begin(&self.db).await?;
        user::Entity::update_many()
            .col_expr(user::Column::Name, Expr::value(name))
            .col_expr(user::Column::UpdatedAt, Expr::value(now.unix_millis()))
            .filter(user::Column::Id.eq(user_id.to_string()))
            .exec(&txn)
            .await
            .map_err(classify)?;
        let row = user::Entity::find_by_id(user_id.to_string()).all(&txn).await.map_err(classify)?.pop();
        // Deleted meanwhile: the caller's session went with the user.
        let Some(row) = row else { return Err(StoreError::NotFound) };
        insert_audit(&txn, audit).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)?;
        user_from_row(row)
    }

    async fn set_roles(
        &self,
        user_id: UserId,
        roles: &[String],
        now: Timestamp,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Option<User>> {
        let txn = begin(&self.db).await?;
        if !lock_user(&txn, user_id).await? {
            return Ok(None);
        }
        user::Entity::update_many()
            .col_expr(user::Column::Roles, Expr::value(encode_roles(roles)))
            .col_expr(user::Column::UpdatedAt, Expr::value(now.unix_millis()))
            .filter(user::Column::Id.eq(user_id.to_string()))
            .exec(&txn)
            .await
            .map_err(classify)?;
        let row = user::Entity::find_by_id(user_id.to_string()).all(&txn).await.map_err(classify)?.pop();
        let Some(row) = row else { return Ok(None) };
        insert_audit(&txn, audit).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)?;
        user_from_row(row).map(Some)
    }

    async fn set_ban(
        &self,
        user_id: UserId,
        ban: Option<&Ban>,
        now: Timestamp,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Option<(User, u64)>> {
        let txn = begin(&self.db).await?;
        if !lock_user(&txn, user_id).await? {
            return Ok(None);
        }
        user::Entity::update_many()
            .col_expr(user::Column::BannedAt, Expr::value(ban.map(|ban| ban.banned_at.unix_millis())))
            .col_expr(user::Column::BanReason, Expr::value(ban.map(|ban| ban.reason.clone())))
            .col_expr(
                user::Column::BanExpiresAt,
                Expr::value(ban.and_then(|ban| ban.expires_at.map(Timestamp::unix_millis))),
            )
            .col_expr(user::Column::UpdatedAt, Expr::value(now.unix_millis()))
            .filter(user::Column::Id.eq(user_id.to_string()))
            .exec(&txn)
            .await
            .map_err(classify)?;
        let ended = match ban {
            Some(_) => {
                delete_challenges(&txn, user_id).await?;
                delete_sessions(&txn, user_id, None).await?
            }
            None => 0,
        };
        let row = user::Entity::find_by_id(user_id.to_string()).all(&txn).await.map_err(classify)?.pop();
        let Some(row) = row else { return Ok(None) };
        insert_audit(&txn, &audit.clone().revoked(ended)).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)?;
        Ok(Some((user_from_row(row)?, ended)))
    }

    async fn change_password(
        &self,
        user_id: UserId,
        password_hash: &str,
        keep: &SessionId,
        now: Timestamp,
        notice: Option<&Mail>,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<u64> {
        let txn = begin(&self.db).await?;
        if !lock_user(&txn, user_id).await? {
            return Err(StoreError::NotFound);
        }
        password::Entity::update_many()
            .col_expr(password::Column::Hash, Expr::value(password_hash))
            .col_expr(password::Column::UpdatedAt, Expr::value(now.unix_millis()))
            .filter(password::Column::UserId.eq(user_id.to_string()))
            .exec(&txn)
            .await
            .map_err(classify)?;
        let deleted = delete_sessions_except(&txn, user_id, keep).await?;
        delete_challenges(&txn, user_id).await?;
        delete_email_tokens(&txn, user_id, TokenPurpose::ResetPassword).await?;
        if let Some(notice) = notice {
            insert_mail(&txn, notice).await?;
        }
        insert_audit(&txn, &audit.clone().detail(format!("revoked:{deleted}"))).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)?;
        Ok(deleted)
    }

    async fn delete_user(&self, user_id: UserId, audit: &AuditEvent, event: &SessionEvent) -> StoreResult<()> {
        let id = user_id.to_string();
        let txn = begin(&self.db).await?;
        if !lock_user(&txn, user_id).await? {
            return Err(StoreError::NotFound);
        }
        // Explicit deletes rather than relying on ON DELETE CASCADE, which
        // SQLite honours only when foreign keys are switched on.
        session::Entity::delete_many().filter(session::Column::UserId.eq(&id)).exec(&txn).await.map_err(classify)?;
        account::Entity::delete_many().filter(account::Column::UserId.eq(&id)).exec(&txn).await.map_err(classify)?;
        email_token::Entity::delete_many()
            .filter(email_token::Column::UserId.eq(&id))
            .exec(&txn)
            .await
            .map_err(classify)?;
        password::Entity::delete_many().filter(password::Column::UserId.eq(&id)).exec(&txn).await.map_err(classify)?;
        delete_challenges(&txn, user_id).await?;
        backup_code::Entity::delete_many()
            .filter(backup_code::Column::UserId.eq(&id))
            .exec(&txn)
            .await
            .map_err(classify)?;
        totp_factor::Entity::delete_many()
            .filter(totp_factor::Column::UserId.eq(&id))
            .exec(&txn)
            .await
            .map_err(classify)?;
        user::Entity::delete_many().filter(user::Column::Id.eq(&id)).exec(&txn).await.map_err(classify)?;
        insert_audit(&txn, audit).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)
    }
}

/// A `LIKE` pattern for text starting with `prefix`, its wildcards escaped.
fn starts_with(prefix: &str) -> LikeExpr {
    LikeExpr::new(format!("{}%", escape_like(prefix))).escape('\\')
}

/// A `LIKE` pattern for text containing `part`, its wildcards escaped.
fn contains(part: &str) -> LikeExpr {
    LikeExpr::new(format!("%{}%", escape_like(part))).escape('\\')
}

fn escape_like(text: &str) -> String {
    text.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Inserts a new user and their password: how both sign-up paths begin.
async fn insert_user_with_password(db: &impl ConnectionTrait, user: &User, password_hash: &str) -> StoreResult<()> {
    user::Entity::insert(user_to_row(user)).exec_without_returning(db).await.map_err(classify)?;
    let password = password::ActiveModel {
        user_id: Set(user.id.to_string()),
        hash: Set(password_hash.to_owned()),
        updated_at: Set(user.created_at.unix_millis()),
    };
    password::Entity::insert(password).exec_without_returning(db).await.map_err(classify)?;
    Ok(())
}
