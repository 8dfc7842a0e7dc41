//! Signing in past a second factor: a first factor passed by a user with a
//! second factor gets a challenge, not a session, and only
//! [`Accounts::complete_sign_in`] with the second factor turns it into one.
//! Every path that creates a session for an existing user goes through
//! [`Accounts::session_or_challenge`], so none skips the factor.

use super::Accounts;
use crate::{
    audit::{AuditEvent, AuditKind},
    clock::Timestamp,
    error::{Error, Result},
    events::SessionEvent,
    second_factor::{
        Assurance, ChallengeToken, FactorAnswer, FactorKind, FactorUse, MAX_CHALLENGE_ANSWERS, SignInChallenge,
        Started, TotpStep, backup_code_hash,
    },
    session::{ClientInfo, SessionGrant},
    store::SessionBasis,
    throttle::{budget::PublicAction, failures::Attempt},
    user::{User, UserId},
};

/// What passing a first factor gives.
#[derive(Debug)]
// Made once per sign-in and moved once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum SignedIn {
    /// A session: the user has no second factor.
    Session(SessionGrant),
    /// A challenge: the user has a second factor.
    Challenge(IssuedChallenge),
}

impl SignedIn {
    /// The session, when no second factor was needed.
    pub fn into_grant(self) -> Option<SessionGrant> {
        match self {
            Self::Session(grant) => Some(grant),
            Self::Challenge(_) => None,
        }
    }
}

/// A sign-in challenge as handed to the client.
#[derive(Debug)]
pub struct IssuedChallenge {
    /// The challenge (`kpc_...`); shown once.
    pub challenge: String,
    /// The factors it can be answered with.
    pub factors: Vec<FactorKind>,
    /// When it stops working.
    pub expires_at: Timestamp,
    /// The WebAuthn request options for the user's passkeys, when they
    /// have any (and passkeys are on).
    pub passkey_options: Option<String>,
}

/// A sign-in finished with a second factor.
#[derive(Debug)]
pub struct CompletedSignIn {
    /// The new AAL2 session.
    pub grant: SessionGrant,
    /// Unused backup codes left.
    pub backup_codes_left: u32,
}

impl Accounts {
    /// A challenge for `user` if they have a second factor, else `None`: the
    /// caller creates the session itself. The challenge is stored only if
    /// `basis` (what the first factor was checked against) still holds;
    /// otherwise the answer is `refused`, as the session would have been.
    pub(super) async fn challenge_for(
        &self,
        user: &User,
        first_factor: &str,
        basis: SessionBasis<'_>,
        refused: Error,
        client: &ClientInfo,
    ) -> Result<Option<IssuedChallenge>> {
        let now = self.clock.now();
        if user.ban_at(now).is_some() {
            return Err(Error::UserBanned);
        }
        if !user.two_factor_enabled {
            return Ok(None);
        }
        let token = ChallengeToken::generate()?;
        let expires_at = now.saturating_add(self.config.second_factors.challenge_ttl);
        let (factors, passkey) = self.factors_of(user.id).await?;
        let challenge = SignInChallenge {
            hash: token.hash(),
            user_id: user.id,
            first_factor: first_factor.to_owned(),
            attempts: 0,
            client: client.clone(),
            created_at: now,
            expires_at,
            passkey_state: passkey.as_ref().map(|started| started.state.clone()),
        };
        if !self.factor_store().create_challenge(&challenge, basis).await? {
            return Err(self.refused_sign_in(user.id, refused).await?);
        }
        let audit = AuditEvent::new(AuditKind::SignInChallenged, now, client).user(user.id).detail(first_factor);
        self.audit_store().record_audit(&audit).await?;
        Ok(Some(IssuedChallenge {
            challenge: token.expose(),
            factors,
            expires_at,
            passkey_options: passkey.map(|started| started.options),
        }))
    }

    /// The second factors `user_id` can answer with, and a passkey request
    /// when passkeys are among them.
    async fn factors_of(&self, user_id: UserId) -> Result<(Vec<FactorKind>, Option<Started>)> {
        let mut factors = Vec::new();
        let totp = self.factor_store().find_totp(user_id).await?;
        if totp.is_some_and(|totp| totp.enabled_at.is_some()) {
            factors.extend([FactorKind::Totp, FactorKind::BackupCode]);
        }
        let Some(party) = self.config.second_factors.passkeys.as_deref() else { return Ok((factors, None)) };
        let passkeys = self.passkey_store().list_passkeys(user_id).await?;
        if passkeys.is_empty() {
            return Ok((factors, None));
        }
        factors.push(FactorKind::Passkey);
        Ok((factors, Some(party.start_authentication(&passkeys)?)))
    }

    /// Finishes a sign-in that answered a challenge, with the second factor.
    pub async fn complete_sign_in(
        &self,
        challenge: &str,
        answer: FactorAnswer<'_>,
        client: &ClientInfo,
    ) -> Result<CompletedSignIn> {
        self.admit(PublicAction::SignIn, client).await?;
        let token = ChallengeToken::parse(challenge)?;
        let now = self.clock.now();
        let reserved = self.factor_store().reserve_challenge_answer(&token.hash(), MAX_CHALLENGE_ANSWERS, now).await?;
        let (challenge, user) = reserved.ok_or(Error::SignInChallengeInvalid)?;
        let factor = self.check_factor(&user, None, answer, challenge.passkey_state.as_deref(), client).await?;

        let (session_token, session) = self.new_session_at(&user, client, Assurance::Aal2)?;
        let audit = AuditEvent::new(AuditKind::SignIn, now, client).user(user.id).session(&session.id).detail(format!(
            "{}+{}",
            challenge.first_factor,
            factor_name(answer)
        ));
        // The challenge is taken and the factor used up with the insert: of
        // racing completions one wins. On its own task, so a caller that
        // goes away cannot leave the transaction open (and its locks held).
        let created = {
            let (accounts, session, hash, factor) = (self.clone(), session.clone(), challenge.hash, factor.clone());
            self.to_completion(async move {
                let basis = SessionBasis::Challenge { hash: &hash, factor: &factor };
                Ok(accounts.session_store().create_session(&session, basis, &audit).await?)
            })
            .await?
        };
        if !created {
            let spent = self.spent(user.id, &factor).await?;
            return Err(self.refused_sign_in(user.id, spent).await?);
        }
        let backup_codes_left = self.factor_store().count_backup_codes(user.id).await?;
        Ok(CompletedSignIn { grant: SessionGrant { token: session_token.expose(), session, user }, backup_codes_left })
    }

    /// Runs `work` (a storage write) on its own task to its end, whether or
    /// not the caller still waits: sqlx rolls a dropped transaction back
    /// only when its connection is next used, so a call cancelled mid-write
    /// would hold the user's row lock until then.
    pub(super) async fn to_completion<T: Send + 'static>(
        &self,
        work: impl std::future::Future<Output = Result<T>> + Send + 'static,
    ) -> Result<T> {
        tokio::spawn(work).await.map_err(|error| Error::Internal(format!("a storage task failed: {error}")))?
    }

    /// Runs `write` (a storage write that emits `event` in its
    /// transaction) on its own task to its end, as [`Self::to_completion`],
    /// and publishes `event` here once it wrote: a cancelled call leaves
    /// neither its transaction open nor this replica's caches behind the
    /// change it made.
    pub(super) async fn write_and_publish<T, Fut>(
        &self,
        event: SessionEvent,
        write: impl FnOnce(Accounts, SessionEvent) -> Fut,
    ) -> Result<T>
    where
        T: Wrote + Send + 'static,
        Fut: std::future::Future<Output = Result<T>> + Send + 'static,
    {
        let (accounts, published) = (self.clone(), event.clone());
        let written = write(self.clone(), event);
        self.to_completion(async move {
            let written = written.await?;
            if written.wrote() {
                accounts.publish(published);
            }
            Ok(written)
        })
        .await
    }

    /// Reserves one second-factor answer of `user_id` against the sign-in
    /// limits (per user and per client address); refunded when right.
    pub(super) async fn reserve_factor_attempt(&self, user_id: UserId, client: &ClientInfo) -> Result<Attempt> {
        let attempt = self.throttle.reserve_sign_in(&factor_key(user_id), client.ip_address.as_deref()).await?;
        attempt.map_err(Error::from)
    }

    /// Why a checked factor could not be used: it was used meanwhile (by a
    /// racing call with the same code), or the challenge was.
    pub(super) async fn spent(&self, user_id: UserId, factor: &FactorUse) -> Result<Error> {
        let used = match *factor {
            FactorUse::TotpStep(step) => {
                let totp = self.factor_store().find_totp(user_id).await?;
                totp.and_then(|totp| totp.last_used_step).is_some_and(|last| last >= step)
            }
            FactorUse::BackupCode { hash, .. } => !self.factor_store().has_backup_code(user_id, &hash).await?,
            FactorUse::Passkey(ref answer) => self.passkey_overtaken(user_id, answer).await?,
        };
        Ok(if used { Error::SecondFactorInvalid } else { Error::SignInChallengeInvalid })
    }

    /// Checks `answer` against `user`'s second factors, without using it up:
    /// the caller's transaction does that, with what the factor grants. A
    /// passkey answers `passkey_state`, the request it was shown.
    /// Wrong answers count like failed sign-ins (per user, and per client
    /// address), so a stolen first factor cannot brute-force the codes.
    pub(super) async fn check_factor(
        &self,
        user: &User,
        session: Option<&crate::session::Principal>,
        answer: FactorAnswer<'_>,
        passkey_state: Option<&str>,
        client: &ClientInfo,
    ) -> Result<FactorUse> {
        let attempt = self.reserve_factor_attempt(user.id, client).await?;
        let now = self.clock.now();
        let checked = match answer {
            FactorAnswer::Totp(code) => self.totp_step(user.id, code, now).await?.map(FactorUse::TotpStep),
            FactorAnswer::BackupCode(code) => match backup_code_hash(code) {
                Some(hash) if self.factor_store().has_backup_code(user.id, &hash).await? => {
                    Some(FactorUse::BackupCode { hash, at: now })
                }
                _ => None,
            },
            FactorAnswer::Passkey { credential, .. } => match passkey_state {
                Some(state) => self.passkey_answer(user.id, state, credential, now).await?,
                None => None,
            },
        };
        let Some(factor) = checked else {
            let mut audit =
                AuditEvent::new(AuditKind::SecondFactorFailed, now, client).user(user.id).detail(factor_name(answer));
            if let Some(caller) = session {
                audit = audit.session(&caller.session.id);
            }
            self.audit_store().record_audit(&audit).await?;
            return Err(Error::SecondFactorInvalid);
        };
        self.throttle.refund(attempt).await;
        Ok(factor)
    }

    /// The step of `code`, if it is the user's app's code of a step later
    /// than the last one used.
    async fn totp_step(&self, user_id: UserId, code: &str, now: Timestamp) -> Result<Option<TotpStep>> {
        let Some(totp) = self.factor_store().find_totp(user_id).await? else { return Ok(None) };
        if totp.enabled_at.is_none() {
            return Ok(None);
        }
        let keys = self.factor_keys()?;
        let secret = keys.open(&totp.sealed, user_id)?;
        let Some(step) = secret.matching_step(code, now) else { return Ok(None) };
        // Sealed with a key since rotated out of `encryption_key`: seal it
        // with the current one, so the old key can be retired.
        if !keys.is_current(&totp.sealed) {
            let resealed = keys.seal(&secret, user_id)?;
            self.factor_store().reseal_totp(user_id, &totp.sealed, &resealed).await?;
        }
        Ok(totp.last_used_step.is_none_or(|last| last < step).then_some(step))
    }
}
/// What a write answers, telling whether it wrote (and so whether its
/// event is to be published).
pub(super) trait Wrote {
    /// True when the write changed something.
    fn wrote(&self) -> bool;
}

impl Wrote for bool {
    fn wrote(&self) -> bool {
        *self
    }
}

/// A count of rows ended: wrote when any.
impl Wrote for u64 {
    fn wrote(&self) -> bool {
        *self > 0
    }
}

impl<T> Wrote for Option<T> {
    fn wrote(&self) -> bool {
        self.is_some()
    }
}

/// The throttling key of a user's second-factor answers: apart from their
/// password's, so that the two budgets do not mix.
fn factor_key(user_id: UserId) -> String {
    format!("second-factor:{user_id}")
}

fn factor_name(answer: FactorAnswer<'_>) -> &'static str {
    match answer {
        FactorAnswer::Totp(_) => "totp",
        FactorAnswer::BackupCode(_) => "backup_code",
        FactorAnswer::Passkey { .. } => "passkey",
    }
}
