//! The mail area: one-time email tokens, and the outbox the courier sends
//! from.
//!
//! Couriers on several replicas share one outbox. A claim selects due rows
//! `FOR UPDATE SKIP LOCKED` (PostgreSQL; SQLite has one writer at a time)
//! and pushes their next attempt past a lease in the same transaction, so
//! each message goes to exactly one courier; one that dies mid-send leaves
//! the row to be retried when the lease ends.

use async_trait::async_trait;
use keyport_core::{
    Timestamp,
    audit::AuditEvent,
    email::Email,
    events::SessionEvent,
    mail::{EmailToken, Mail, QueuedMail, TokenPurpose, sign_in::EmailSignIn},
    store::{EmailChange, EmailSignInStore, EmailTokenStore, MailStore, StoreError, StoreResult},
    user::{User, UserId},
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
    sea_query::{Expr, ExprTrait, LockBehavior, LockType},
};
use uuid::Uuid;

use crate::{
    SeaStore,
    db_error::classify,
    entity::{email_sign_in, email_token, mail_outbox, password, session, user},
    rows::{MAIL_PENDING, insert_audit, insert_email_token, insert_mail, parse_user_id, user_from_row},
    write::{begin, delete_challenges, delete_email_tokens, lock_user, notify},
};

const MAIL_SENT: &str = "sent";
const MAIL_FAILED: &str = "failed";

#[async_trait]
impl EmailTokenStore for SeaStore {
    async fn issue_email_tokens(&self, tokens: &[EmailToken], mails: &[Mail], audit: &AuditEvent) -> StoreResult<()> {
        let Some(owner) = tokens.first().map(|token| token.user_id) else { return Ok(()) };
        if tokens.iter().any(|token| token.user_id != owner) {
            return Err(StoreError::Other("email tokens of several users in one call".into()));
        }
        let txn = begin(&self.db).await?;
        // The lock orders this after a concurrent deletion or password change.
        if !lock_user(&txn, owner).await? {
            return Err(StoreError::NotFound);
        }
        for token in tokens {
            delete_email_tokens(&txn, owner, token.purpose).await?;
        }
        for token in tokens {
            insert_email_token(&txn, token).await?;
        }
        for mail in mails {
            insert_mail(&txn, mail).await?;
        }
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(classify)
    }

    async fn change_email(
        &self,
        hash: &[u8; 32],
        user_id: UserId,
        now: Timestamp,
        end_sessions: bool,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<EmailChange> {
        let txn = begin(&self.db).await?;
        if !lock_user(&txn, user_id).await? {
            return Ok(EmailChange::TokenInvalid);
        }
        let taken = email_token::Entity::delete_many()
            .filter(email_token::Column::TokenHash.eq(hash.to_vec()))
            .filter(email_token::Column::Purpose.eq(TokenPurpose::ChangeEmail.as_str()))
            .filter(email_token::Column::UserId.eq(user_id.to_string()))
            .filter(email_token::Column::ExpiresAt.gt(now.unix_millis()))
            .exec_with_returning(&txn)
            .await
            .map_err(classify)?;
        let Some(token) = taken.into_iter().next() else { return Ok(EmailChange::TokenInvalid) };
        let id = user_id.to_string();
        let moved = user::Entity::update_many()
            .col_expr(user::Column::Email, Expr::value(token.email.clone()))
            .col_expr(user::Column::EmailVerified, Expr::value(true))
            .col_expr(user::Column::UpdatedAt, Expr::value(now.unix_millis()))
            .filter(user::Column::Id.eq(&id))
            .exec(&txn)
            .await;
        match moved.map_err(classify) {
            Ok(_) => {}
            // The unique index: another account has the address now.
            Err(StoreError::Conflict(_)) => return Ok(EmailChange::EmailTaken),
            Err(other) => return Err(other),
        }
        let ended = if end_sessions {
            delete_challenges(&txn, user_id).await?;
            session::Entity::delete_many()
                .filter(session::Column::UserId.eq(&id))
                .exec(&txn)
                .await
                .map_err(classify)?
                .rows_affected
        } else {
            0
        };
        let row = user::Entity::find_by_id(id).one(&txn).await.map_err(classify)?;
        let Some(row) = row else { return Ok(EmailChange::TokenInvalid) };
        insert_audit(&txn, &audit.clone().revoked(ended)).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)?;
        Ok(EmailChange::Changed { user: user_from_row(row)?, ended })
    }

    async fn find_email_token(
        &self,
        hash: &[u8; 32],
        purpose: TokenPurpose,
        now: Timestamp,
    ) -> StoreResult<Option<EmailToken>> {
        let row = email_token::Entity::find_by_id(hash.to_vec()).one(&self.db).await.map_err(classify)?;
        let token = row.map(token_from_row).transpose()?;
        Ok(token.filter(|token| token.purpose == purpose && token.expires_at > now))
    }

    async fn verify_email(
        &self,
        hash: &[u8; 32],
        purpose: TokenPurpose,
        user_id: UserId,
        now: Timestamp,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Option<User>> {
        let txn = begin(&self.db).await?;
        let Some(mut owner) = take_token(&txn, hash, purpose, user_id, now).await? else {
            return Ok(None);
        };
        user::Entity::update_many()
            .col_expr(user::Column::EmailVerified, Expr::value(true))
            .col_expr(user::Column::UpdatedAt, Expr::value(now.unix_millis()))
            .filter(user::Column::Id.eq(user_id.to_string()))
            .exec(&txn)
            .await
            .map_err(classify)?;
        insert_audit(&txn, audit).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)?;
        owner.email_verified = true;
        owner.updated_at = now;
        Ok(Some(owner))
    }

    async fn reset_password(
        &self,
        hash: &[u8; 32],
        user_id: UserId,
        password_hash: &str,
        now: Timestamp,
        notice: &Mail,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Option<u64>> {
        let txn = begin(&self.db).await?;
        if take_token(&txn, hash, TokenPurpose::ResetPassword, user_id, now).await?.is_none() {
            return Ok(None);
        }
        let id = user_id.to_string();
        user::Entity::update_many()
            .col_expr(user::Column::EmailVerified, Expr::value(true))
            .col_expr(user::Column::UpdatedAt, Expr::value(now.unix_millis()))
            .filter(user::Column::Id.eq(&id))
            .exec(&txn)
            .await
            .map_err(classify)?;
        // Only accounts with a password are sent reset links; `update`
        // rather than upsert keeps it that way if one was removed meanwhile.
        let updated = password::Entity::update_many()
            .col_expr(password::Column::Hash, Expr::value(password_hash))
            .col_expr(password::Column::UpdatedAt, Expr::value(now.unix_millis()))
            .filter(password::Column::UserId.eq(&id))
            .exec(&txn)
            .await
            .map_err(classify)?;
        if updated.rows_affected == 0 {
            return Ok(None);
        }
        let ended = session::Entity::delete_many()
            .filter(session::Column::UserId.eq(&id))
            .exec(&txn)
            .await
            .map_err(classify)?
            .rows_affected;
        delete_challenges(&txn, user_id).await?;
        delete_email_tokens(&txn, user_id, TokenPurpose::ResetPassword).await?;
        insert_mail(&txn, notice).await?;
        insert_audit(&txn, &audit.clone().revoked(ended)).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)?;
        Ok(Some(ended))
    }

    async fn set_first_password(
        &self,
        hash: &[u8; 32],
        user_id: UserId,
        password_hash: &str,
        now: Timestamp,
        notice: &Mail,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<bool> {
        let txn = begin(&self.db).await?;
        if take_token(&txn, hash, TokenPurpose::SetPassword, user_id, now).await?.is_none() {
            return Ok(false);
        }
        let row = password::ActiveModel {
            user_id: Set(user_id.to_string()),
            hash: Set(password_hash.to_owned()),
            updated_at: Set(now.unix_millis()),
        };
        // The primary key refuses a second password (set meanwhile).
        match password::Entity::insert(row).exec_without_returning(&txn).await.map_err(classify) {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => return Ok(false),
            Err(other) => return Err(other),
        }
        insert_mail(&txn, notice).await?;
        insert_audit(&txn, audit).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)?;
        Ok(true)
    }

    async fn delete_expired_email_tokens(&self, now: Timestamp) -> StoreResult<u64> {
        let deleted = email_token::Entity::delete_many()
            .filter(email_token::Column::ExpiresAt.lte(now.unix_millis()))
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(deleted.rows_affected)
    }
}

/// Locks the user, then deletes and returns them if they hold this
/// unexpired token of `purpose`, still for their current address. `None`
/// leaves the token alone (the caller's transaction rolls back).
async fn take_token(
    txn: &DatabaseTransaction,
    hash: &[u8; 32],
    purpose: TokenPurpose,
    user_id: UserId,
    now: Timestamp,
) -> StoreResult<Option<User>> {
    // User first, as every other write about a user does: no lock cycles.
    if !lock_user(txn, user_id).await? {
        return Ok(None);
    }
    let taken = email_token::Entity::delete_many()
        .filter(email_token::Column::TokenHash.eq(hash.to_vec()))
        .filter(email_token::Column::Purpose.eq(purpose.as_str()))
        .filter(email_token::Column::UserId.eq(user_id.to_string()))
        .filter(email_token::Column::ExpiresAt.gt(now.unix_millis()))
        .exec_with_returning(txn)
        .await
        .map_err(classify)?;
    let Some(token) = taken.into_iter().next() else { return Ok(None) };
    let owner = user::Entity::find_by_id(user_id.to_string()).one(txn).await.map_err(classify)?;
    let owner = owner.map(user_from_row).transpose()?;
    Ok(owner.filter(|owner| owner.email.as_str() == token.email))
}

fn token_from_row(row: email_token::Model) -> StoreResult<EmailToken> {
    let hash = row.token_hash.try_into().map_err(|_| StoreError::Other("malformed email token hash".into()))?;
    let purpose = TokenPurpose::parse(&row.purpose)
        .ok_or_else(|| StoreError::Other(format!("unknown email token purpose {:?}", row.purpose)))?;
    Ok(EmailToken {
        hash,
        purpose,
        user_id: parse_user_id(&row.user_id)?,
        email: Email::from_trusted(row.email),
        created_at: Timestamp::from_unix_millis(row.created_at),
        expires_at: Timestamp::from_unix_millis(row.expires_at),
    })
}

#[async_trait]
impl EmailSignInStore for SeaStore {
    async fn create_email_sign_in(&self, sign_in: &EmailSignIn, mail: &Mail) -> StoreResult<()> {
        let txn = begin(&self.db).await?;
        email_sign_in::Entity::delete_many()
            .filter(email_sign_in::Column::Email.eq(sign_in.email.as_str()))
            .exec(&txn)
            .await
            .map_err(classify)?;
        let row = email_sign_in::ActiveModel {
            binding_hash: Set(sign_in.binding_hash.to_vec()),
            email: Set(sign_in.email.as_str().to_owned()),
            link_hash: Set(sign_in.link_hash.to_vec()),
            code_hash: Set(sign_in.code_hash.to_vec()),
            attempts: Set(0),
            created_at: Set(sign_in.created_at.unix_millis()),
            expires_at: Set(sign_in.expires_at.unix_millis()),
        };
        email_sign_in::Entity::insert(row).exec_without_returning(&txn).await.map_err(classify)?;
        insert_mail(&txn, mail).await?;
        txn.commit().await.map_err(classify)
    }

    /// One `UPDATE ... RETURNING`: the attempt is counted in the statement
    /// that checks the limit, so parallel guesses cannot share one.
    async fn reserve_email_sign_in_attempt(
        &self,
        binding_hash: &[u8; 32],
        max_attempts: u32,
        now: Timestamp,
    ) -> StoreResult<Option<EmailSignIn>> {
        let max = i32::try_from(max_attempts).unwrap_or(i32::MAX);
        let updated = email_sign_in::Entity::update_many()
            .col_expr(email_sign_in::Column::Attempts, Expr::col(email_sign_in::Column::Attempts).add(1))
            .filter(email_sign_in::Column::BindingHash.eq(binding_hash.to_vec()))
            .filter(email_sign_in::Column::Attempts.lt(max))
            .filter(email_sign_in::Column::ExpiresAt.gt(now.unix_millis()))
            .exec_with_returning(&self.db)
            .await
            .map_err(classify)?;
        updated.into_iter().next().map(sign_in_from_row).transpose()
    }

    async fn take_email_sign_in(&self, binding_hash: &[u8; 32]) -> StoreResult<Option<EmailSignIn>> {
        let taken = email_sign_in::Entity::delete_by_id(binding_hash.to_vec())
            .exec_with_returning(&self.db)
            .await
            .map_err(classify)?;
        taken.map(sign_in_from_row).transpose()
    }

    async fn delete_expired_email_sign_ins(&self, now: Timestamp) -> StoreResult<u64> {
        let deleted = email_sign_in::Entity::delete_many()
            .filter(email_sign_in::Column::ExpiresAt.lte(now.unix_millis()))
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(deleted.rows_affected)
    }
}

fn sign_in_from_row(row: email_sign_in::Model) -> StoreResult<EmailSignIn> {
    let hash = |bytes: Vec<u8>| -> StoreResult<[u8; 32]> {
        bytes.try_into().map_err(|_| StoreError::Other("malformed email sign-in hash".into()))
    };
    Ok(EmailSignIn {
        binding_hash: hash(row.binding_hash)?,
        email: Email::from_trusted(row.email),
        link_hash: hash(row.link_hash)?,
        code_hash: hash(row.code_hash)?,
        attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
        created_at: Timestamp::from_unix_millis(row.created_at),
        expires_at: Timestamp::from_unix_millis(row.expires_at),
    })
}

#[async_trait]
impl MailStore for SeaStore {
    async fn queue_mail(&self, mail: &Mail) -> StoreResult<()> {
        insert_mail(&self.db, mail).await
    }

    async fn claim_mail(&self, now: Timestamp, lease_until: Timestamp, limit: u32) -> StoreResult<Vec<QueuedMail>> {
        let txn = begin(&self.db).await?;
        let due = mail_outbox::Entity::find()
            .filter(mail_outbox::Column::Status.eq(MAIL_PENDING))
            .filter(mail_outbox::Column::NextAttemptAt.lte(now.unix_millis()))
            .order_by_asc(mail_outbox::Column::NextAttemptAt)
            .order_by_asc(mail_outbox::Column::Id)
            .limit(u64::from(limit))
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .all(&txn)
            .await
            .map_err(classify)?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        mail_outbox::Entity::update_many()
            .col_expr(mail_outbox::Column::NextAttemptAt, Expr::value(lease_until.unix_millis()))
            .col_expr(mail_outbox::Column::Attempts, Expr::col(mail_outbox::Column::Attempts).add(1))
            .filter(mail_outbox::Column::Id.is_in(due.iter().map(|row| row.id.clone())))
            .exec(&txn)
            .await
            .map_err(classify)?;
        txn.commit().await.map_err(classify)?;
        due.into_iter().map(queued_from_row).collect()
    }

    async fn mark_mail_sent(&self, id: Uuid, at: Timestamp) -> StoreResult<()> {
        mail_outbox::Entity::update_many()
            .col_expr(mail_outbox::Column::Status, Expr::value(MAIL_SENT))
            .col_expr(mail_outbox::Column::SentAt, Expr::value(at.unix_millis()))
            .col_expr(mail_outbox::Column::TextBody, Expr::value(""))
            .col_expr(mail_outbox::Column::HtmlBody, Expr::value(""))
            .col_expr(mail_outbox::Column::LastError, Expr::value(Option::<String>::None))
            .filter(mail_outbox::Column::Id.eq(id.to_string()))
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn mark_mail_failed(&self, id: Uuid, error: &str, retry_at: Option<Timestamp>) -> StoreResult<()> {
        let mut update = mail_outbox::Entity::update_many()
            .col_expr(mail_outbox::Column::LastError, Expr::value(error.chars().take(500).collect::<String>()));
        update = match retry_at {
            Some(at) => update.col_expr(mail_outbox::Column::NextAttemptAt, Expr::value(at.unix_millis())),
            None => update
                .col_expr(mail_outbox::Column::Status, Expr::value(MAIL_FAILED))
                .col_expr(mail_outbox::Column::TextBody, Expr::value(""))
                .col_expr(mail_outbox::Column::HtmlBody, Expr::value("")),
        };
        update.filter(mail_outbox::Column::Id.eq(id.to_string())).exec(&self.db).await.map_err(classify)?;
        Ok(())
    }

    async fn count_pending_mail(&self) -> StoreResult<u64> {
        mail_outbox::Entity::find()
            .filter(mail_outbox::Column::Status.eq(MAIL_PENDING))
            .count(&self.db)
            .await
            .map_err(classify)
    }

    async fn delete_mail_before(&self, before: Timestamp) -> StoreResult<u64> {
        let deleted = mail_outbox::Entity::delete_many()
            .filter(mail_outbox::Column::Status.ne(MAIL_PENDING))
            .filter(mail_outbox::Column::CreatedAt.lt(before.unix_millis()))
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(deleted.rows_affected)
    }
}

fn queued_from_row(row: mail_outbox::Model) -> StoreResult<QueuedMail> {
    let id = Uuid::parse_str(&row.id).map_err(|e| StoreError::Other(format!("malformed mail id: {e}")))?;
    Ok(QueuedMail {
        id,
        to: row.recipient,
        subject: row.subject,
        text: row.text_body,
        html: row.html_body,
        attempts: u32::try_from(row.attempts).unwrap_or(0),
    })
}
