//! The second-factor area: authenticator apps, backup codes, and the
//! challenges of sign-ins waiting for a second factor.
//!
//! What callers race on is decided by one conditional statement each, whose
//! rows affected say who won: using a TOTP step or a backup code, and
//! counting an answer against a challenge. (Taking the challenge when the
//! session is created is in `sessions.rs`.) Turning the app on or off
//! touches several tables and runs in one transaction that first locks the
//! user's row, as every other write about a user does.

use async_trait::async_trait;
use keyport_core::{
    Timestamp,
    audit::AuditEvent,
    events::SessionEvent,
    second_factor::{Assurance, FactorUse, SealedSecret, SignInChallenge, TotpStep},
    session::ClientInfo,
    store::{FactorStore, SessionBasis, StoreError, StoreResult, TotpFactor},
    token::SessionId,
    user::{User, UserId},
};
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    sea_query::{Condition, Expr, ExprTrait},
};

use crate::{
    SeaStore,
    db_error::classify,
    entity::{backup_code, passkey, session, sign_in_challenge, totp_factor, user},
    rows::{insert_audit, parse_user_id, user_from_row},
    sessions::holds,
    write::{begin, end_others_and_commit, lock_user, lock_user_signing_in, notify},
};

#[async_trait]
impl FactorStore for SeaStore {
    async fn put_pending_totp(&self, user_id: UserId, sealed: &SealedSecret, now: Timestamp) -> StoreResult<bool> {
        let txn = begin(&self.db).await?;
        if !lock_user(&txn, user_id).await? {
            return Err(StoreError::NotFound);
        }
        let id = user_id.to_string();
        // A pending enrolment gives way to the new one; an app that is on stays.
        totp_factor::Entity::delete_many()
            .filter(totp_factor::Column::UserId.eq(&id))
            .filter(totp_factor::Column::EnabledAt.is_null())
            .exec(&txn)
            .await
            .map_err(classify)?;
        let enabled = totp_factor::Entity::find_by_id(id.clone()).all(&txn).await.map_err(classify)?;
        if !enabled.is_empty() {
            return Ok(false);
        }
        let row = totp_factor::ActiveModel {
            user_id: Set(id),
            sealed_secret: Set(sealed.0.clone()),
            created_at: Set(now.unix_millis()),
            enabled_at: Set(None),
            last_used_step: Set(None),
        };
        totp_factor::Entity::insert(row).exec_without_returning(&txn).await.map_err(classify)?;
        txn.commit().await.map_err(classify)?;
        Ok(true)
    }

    async fn find_totp(&self, user_id: UserId) -> StoreResult<Option<TotpFactor>> {
        // `.all()` rather than `.one()`: see `find_password_hash`.
        let rows = totp_factor::Entity::find_by_id(user_id.to_string()).all(&self.db).await.map_err(classify)?;
        Ok(rows.into_iter().next().map(totp_from_row))
    }

    async fn enable_totp(
        &self,
        user_id: UserId,
        enrolled_at: Timestamp,
        step: TotpStep,
        backup_codes: &[[u8; 32]],
        session: &SessionId,
        now: Timestamp,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Option<u64>> {
        let txn = begin(&self.db).await?;
        if !lock_user(&txn, user_id).await? {
            return Ok(None);
        }
        // Only the enrolment the caller checked the code against: a newer
        // one (another secret) or a confirmation that won meanwhile leaves
        // nothing to turn on.
        let enabled = totp_factor::Entity::update_many()
            .col_expr(totp_factor::Column::EnabledAt, Expr::value(now.unix_millis()))
            .col_expr(totp_factor::Column::LastUsedStep, Expr::value(step.0))
            .filter(totp_factor::Column::UserId.eq(user_id.to_string()))
            .filter(totp_factor::Column::EnabledAt.is_null())
            .filter(totp_factor::Column::CreatedAt.eq(enrolled_at.unix_millis()))
            .exec(&txn)
            .await
            .map_err(classify)?;
        if enabled.rows_affected == 0 {
            return Ok(None);
        }
        replace_codes(&txn, user_id, backup_codes).await?;
        set_two_factor(&txn, user_id, true).await?;
        set_assurance(&txn, user_id, session, Assurance::Aal2, Some(now)).await?;
        let ended = end_others_and_commit(txn, &self.origin, user_id, session, audit, event).await?;
        Ok(Some(ended))
    }

    async fn disable_totp(
        &self,
        user_id: UserId,
        session: &SessionId,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Option<u64>> {
        let txn = begin(&self.db).await?;
        if !lock_user(&txn, user_id).await? {
            return Ok(None);
        }
        let removed = totp_factor::Entity::delete_many()
            .filter(totp_factor::Column::UserId.eq(user_id.to_string()))
            .filter(totp_factor::Column::EnabledAt.is_not_null())
            .exec(&txn)
            .await
            .map_err(classify)?;
        if removed.rows_affected == 0 {
            return Ok(None);
        }
        replace_codes(&txn, user_id, &[]).await?;
        lower_if_no_factor(&txn, user_id, session).await?;
        let ended = end_others_and_commit(txn, &self.origin, user_id, session, audit, event).await?;
        Ok(Some(ended))
    }

    async fn reseal_totp(&self, user_id: UserId, old: &SealedSecret, new: &SealedSecret) -> StoreResult<bool> {
        let resealed = totp_factor::Entity::update_many()
            .col_expr(totp_factor::Column::SealedSecret, Expr::value(new.0.clone()))
            .filter(totp_factor::Column::UserId.eq(user_id.to_string()))
            .filter(totp_factor::Column::SealedSecret.eq(old.0.clone()))
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(resealed.rows_affected == 1)
    }

    async fn has_backup_code(&self, user_id: UserId, hash: &[u8; 32]) -> StoreResult<bool> {
        let unused = backup_code::Entity::find()
            .filter(backup_code::Column::UserId.eq(user_id.to_string()))
            .filter(backup_code::Column::CodeHash.eq(hash.to_vec()))
            .filter(backup_code::Column::UsedAt.is_null())
            .count(&self.db)
            .await
            .map_err(classify)?;
        Ok(unused > 0)
    }

    async fn count_backup_codes(&self, user_id: UserId) -> StoreResult<u32> {
        let unused = backup_code::Entity::find()
            .filter(backup_code::Column::UserId.eq(user_id.to_string()))
            .filter(backup_code::Column::UsedAt.is_null())
            .count(&self.db)
            .await
            .map_err(classify)?;
        Ok(u32::try_from(unused).unwrap_or(u32::MAX))
    }

    async fn replace_backup_codes(
        &self,
        user_id: UserId,
        hashes: &[[u8; 32]],
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let txn = begin(&self.db).await?;
        if !lock_user(&txn, user_id).await? {
            return Ok(false);
        }
        let on = totp_factor::Entity::find()
            .filter(totp_factor::Column::UserId.eq(user_id.to_string()))
            .filter(totp_factor::Column::EnabledAt.is_not_null())
            .all(&txn)
            .await
            .map_err(classify)?;
        if on.is_empty() {
            return Ok(false);
        }
        replace_codes(&txn, user_id, hashes).await?;
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(classify)?;
        Ok(true)
    }

    async fn step_up_session(
        &self,
        user_id: UserId,
        session: &SessionId,
        factor: &FactorUse,
        now: Timestamp,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<bool> {
        let txn = begin(&self.db).await?;
        // Dropped without a commit on either refusal: nothing is used up.
        if !use_factor(&txn, user_id, factor).await?
            || !set_assurance(&txn, user_id, session, Assurance::Aal2, Some(now)).await?
        {
            return Ok(false);
        }
        insert_audit(&txn, audit).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)?;
        Ok(true)
    }

    async fn create_challenge(&self, challenge: &SignInChallenge, basis: SessionBasis<'_>) -> StoreResult<bool> {
        let row = sign_in_challenge::ActiveModel {
            hash: Set(challenge.hash.to_vec()),
            user_id: Set(challenge.user_id.to_string()),
            first_factor: Set(challenge.first_factor.clone()),
            attempts: Set(i32::try_from(challenge.attempts).unwrap_or(i32::MAX)),
            ip_address: Set(challenge.client.ip_address.clone()),
            user_agent: Set(challenge.client.user_agent.clone()),
            created_at: Set(challenge.created_at.unix_millis()),
            expires_at: Set(challenge.expires_at.unix_millis()),
            passkey_state: Set(challenge.passkey_state.clone()),
        };
        let txn = begin(&self.db).await?;
        // As for a session: the user's row lock orders this against a
        // password change or ban, which delete the user's challenges.
        if !lock_user_signing_in(&txn, challenge.user_id, challenge.created_at).await?
            || !holds(&txn, challenge.user_id, basis).await?
        {
            return Ok(false);
        }
        sign_in_challenge::Entity::insert(row).exec_without_returning(&txn).await.map_err(classify)?;
        txn.commit().await.map_err(classify)?;
        Ok(true)
    }

    /// One `UPDATE ... RETURNING`: the answer is counted in the statement
    /// that checks the limit, so parallel answers cannot share one.
    async fn reserve_challenge_answer(
        &self,
        hash: &[u8; 32],
        max_answers: u32,
        now: Timestamp,
    ) -> StoreResult<Option<(SignInChallenge, User)>> {
        let max = i32::try_from(max_answers).unwrap_or(i32::MAX);
        let updated = sign_in_challenge::Entity::update_many()
            .col_expr(sign_in_challenge::Column::Attempts, Expr::col(sign_in_challenge::Column::Attempts).add(1))
            .filter(sign_in_challenge::Column::Hash.eq(hash.to_vec()))
            .filter(sign_in_challenge::Column::ExpiresAt.gt(now.unix_millis()))
            .filter(sign_in_challenge::Column::Attempts.lt(max))
            .exec_with_returning(&self.db)
            .await
            .map_err(classify)?;
        let Some(row) = updated.into_iter().next() else { return Ok(None) };
        let challenge = challenge_from_row(row)?;
        let owner = user::Entity::find_by_id(challenge.user_id.to_string()).all(&self.db).await.map_err(classify)?;
        let Some(owner) = owner.into_iter().next() else { return Ok(None) };
        Ok(Some((challenge, user_from_row(owner)?)))
    }

    async fn delete_expired_challenges(&self, now: Timestamp) -> StoreResult<u64> {
        let deleted = sign_in_challenge::Entity::delete_many()
            .filter(sign_in_challenge::Column::ExpiresAt.lte(now.unix_millis()))
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(deleted.rows_affected)
    }
}

/// Replaces a user's backup codes, used or not, with these hashes.
async fn replace_codes(db: &impl ConnectionTrait, user_id: UserId, hashes: &[[u8; 32]]) -> StoreResult<()> {
    let id = user_id.to_string();
    backup_code::Entity::delete_many().filter(backup_code::Column::UserId.eq(&id)).exec(db).await.map_err(classify)?;
    if hashes.is_empty() {
        return Ok(());
    }
    let rows = hashes.iter().map(|hash| backup_code::ActiveModel {
        user_id: Set(id.clone()),
        code_hash: Set(hash.to_vec()),
        used_at: Set(None),
    });
    backup_code::Entity::insert_many(rows).exec_without_returning(db).await.map_err(classify)?;
    Ok(())
}

/// After a factor went: clears the user's flag and lowers `session` to
/// AAL1 if it was their last one.
pub(crate) async fn lower_if_no_factor(
    txn: &DatabaseTransaction,
    user_id: UserId,
    session: &SessionId,
) -> StoreResult<()> {
    let id = user_id.to_string();
    let totp = totp_factor::Entity::find()
        .filter(totp_factor::Column::UserId.eq(&id))
        .filter(totp_factor::Column::EnabledAt.is_not_null())
        .count(txn)
        .await
        .map_err(classify)?;
    let passkeys =
        passkey::Entity::find().filter(passkey::Column::UserId.eq(&id)).count(txn).await.map_err(classify)?;
    if totp + passkeys == 0 {
        set_two_factor(txn, user_id, false).await?;
        set_assurance(txn, user_id, session, Assurance::Aal1, None).await?;
    }
    Ok(())
}

/// Sets the user's second-factor flag, which sign-in reads.
pub(crate) async fn set_two_factor(db: &impl ConnectionTrait, user_id: UserId, on: bool) -> StoreResult<()> {
    user::Entity::update_many()
        .col_expr(user::Column::TwoFactorEnabled, Expr::value(on))
        .filter(user::Column::Id.eq(user_id.to_string()))
        .exec(db)
        .await
        .map_err(classify)?;
    Ok(())
}

/// Sets the assurance level of one of the user's sessions, and when given
/// the time the user proved it; false when they have no such session.
pub(crate) async fn set_assurance(
    db: &impl ConnectionTrait,
    user_id: UserId,
    id: &SessionId,
    assurance: Assurance,
    authenticated_at: Option<Timestamp>,
) -> StoreResult<bool> {
    let mut update =
        session::Entity::update_many().col_expr(session::Column::AssuranceLevel, Expr::value(assurance.level()));
    if let Some(at) = authenticated_at {
        update = update.col_expr(session::Column::AuthenticatedAt, Expr::value(at.unix_millis()));
    }
    let updated = update
        .filter(session::Column::Id.eq(id.as_str()))
        .filter(session::Column::UserId.eq(user_id.to_string()))
        .exec(db)
        .await
        .map_err(classify)?;
    Ok(updated.rows_affected > 0)
}

fn totp_from_row(row: totp_factor::Model) -> TotpFactor {
    TotpFactor {
        sealed: SealedSecret(row.sealed_secret),
        created_at: Timestamp::from_unix_millis(row.created_at),
        enabled_at: row.enabled_at.map(Timestamp::from_unix_millis),
        last_used_step: row.last_used_step.map(TotpStep),
    }
}

fn challenge_from_row(row: sign_in_challenge::Model) -> StoreResult<SignInChallenge> {
    let hash = row.hash.try_into().map_err(|_| StoreError::Other("malformed sign-in challenge hash".into()))?;
    Ok(SignInChallenge {
        hash,
        user_id: parse_user_id(&row.user_id)?,
        first_factor: row.first_factor,
        // Unreadable counts as used up.
        attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
        client: ClientInfo { ip_address: row.ip_address, user_agent: row.user_agent },
        created_at: Timestamp::from_unix_millis(row.created_at),
        expires_at: Timestamp::from_unix_millis(row.expires_at),
        passkey_state: row.passkey_state,
    })
}

/// Uses up `factor` of `user_id` if it is still unused: one conditional
/// `UPDATE`, so of racing callers with one code, one gets true.
pub(crate) async fn use_factor(txn: &DatabaseTransaction, user_id: UserId, factor: &FactorUse) -> StoreResult<bool> {
    let used = match *factor {
        FactorUse::TotpStep(step) => totp_factor::Entity::update_many()
            .col_expr(totp_factor::Column::LastUsedStep, Expr::value(step.0))
            .filter(totp_factor::Column::UserId.eq(user_id.to_string()))
            .filter(totp_factor::Column::EnabledAt.is_not_null())
            .filter(
                Condition::any()
                    .add(totp_factor::Column::LastUsedStep.is_null())
                    .add(totp_factor::Column::LastUsedStep.lt(step.0)),
            )
            .exec(txn)
            .await
            .map_err(classify)?,
        FactorUse::BackupCode { hash, at } => backup_code::Entity::update_many()
            .col_expr(backup_code::Column::UsedAt, Expr::value(at.unix_millis()))
            .filter(backup_code::Column::UserId.eq(user_id.to_string()))
            .filter(backup_code::Column::CodeHash.eq(hash.to_vec()))
            .filter(backup_code::Column::UsedAt.is_null())
            .exec(txn)
            .await
            .map_err(classify)?,
        FactorUse::Passkey(ref answer) => return crate::passkeys::use_passkey(txn, user_id, answer).await,
    };
    Ok(used.rows_affected == 1)
}
