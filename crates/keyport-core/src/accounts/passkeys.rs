//! A user's passkeys: register, list, rename, delete; signing in with a
//! passkey alone; and the ceremonies they run. (A passkey as the second
//! factor of a sign-in or step-up is in `challenge.rs` and `factors.rs`.)

use super::{Accounts, user_changed};
use crate::{
    audit::{AuditEvent, AuditKind},
    clock::Timestamp,
    error::{Error, FieldViolation, Result},
    events::UserChange,
    second_factor::{
        Assertion, Assurance, Ceremony, CeremonyPurpose, CeremonyToken, FactorUse, MAX_PASSKEY_NAME, PasskeyId,
        PasskeyUse, RelyingParty, Started, StoredPasskey,
    },
    session::{ClientInfo, Principal, Session, SessionGrant},
    store::SessionBasis,
    throttle::budget::PublicAction,
    user::UserId,
};

/// A started ceremony as handed to the client.
#[derive(Debug)]
pub struct StartedCeremony {
    /// The ceremony token (`kpk_...`); shown once.
    pub ceremony: String,
    /// The WebAuthn options for the browser, as JSON.
    pub options: String,
    /// When the ceremony stops working.
    pub expires_at: Timestamp,
}

impl Accounts {
    /// The caller's passkeys, oldest first.
    pub async fn list_passkeys(&self, caller: &Principal) -> Result<Vec<StoredPasskey>> {
        self.relying_party()?;
        Ok(self.passkey_store().list_passkeys(caller.user.id).await?)
    }

    /// Starts registering a passkey for the caller. Needs a recent sign-in,
    /// and a recent second factor when they have one: a stolen session
    /// cannot add the thief's passkey.
    pub async fn start_passkey_registration(&self, caller: &Principal) -> Result<StartedCeremony> {
        let party = self.relying_party()?;
        let now = self.clock.now();
        if now.duration_since(caller.session.authenticated_at) > self.config.second_factors.fresh_for {
            return Err(Error::ReauthenticationRequired);
        }
        self.require_step_up(caller)?;
        let existing = self.passkey_store().list_passkeys(caller.user.id).await?;
        let started = party.start_registration(&caller.user, &existing)?;
        self.store_ceremony(CeremonyPurpose::Registration, Some(caller), started).await
    }

    /// Finishes a registration: stores the passkey, raises the calling
    /// session to AAL2 and ends the user's other sessions.
    pub async fn finish_passkey_registration(
        &self,
        caller: &Principal,
        ceremony: &str,
        credential: &str,
        name: &str,
        client: &ClientInfo,
    ) -> Result<(StoredPasskey, Session)> {
        let party = self.relying_party()?;
        let name = passkey_name(name)?;
        let ceremony = self.take_ceremony(ceremony, CeremonyPurpose::Registration, Some(caller)).await?;
        let registered = party.finish_registration(&ceremony.state, credential)?;
        let now = self.clock.now();
        let passkey = StoredPasskey {
            id: PasskeyId::generate(now),
            user_id: caller.user.id,
            credential_id: registered.credential_id,
            name,
            credential: registered.credential,
            sign_count: registered.sign_count,
            backed_up: registered.backed_up,
            created_at: now,
            last_used_at: None,
        };
        let audit = AuditEvent::new(AuditKind::PasskeyAdded, now, client)
            .user(caller.user.id)
            .session(&caller.session.id)
            .detail(passkey.id.to_string());
        let event = user_changed(caller.user.id, UserChange::SecondFactor);
        let (stored, session_id) = (passkey.clone(), caller.session.id.clone());
        let added = self
            .write_and_publish(event, move |accounts, event| async move {
                Ok(accounts.passkey_store().add_passkey(&stored, &session_id, &audit, &event).await?)
            })
            .await?;
        // The credential is registered already (to anyone), or the session ended.
        added.ok_or(Error::PasskeyInvalid)?;
        let session = Session { assurance: Assurance::Aal2, authenticated_at: now, ..caller.session.clone() };
        Ok((passkey, session))
    }

    /// Renames one of the caller's passkeys.
    pub async fn rename_passkey(
        &self,
        caller: &Principal,
        id: &str,
        name: &str,
        client: &ClientInfo,
    ) -> Result<StoredPasskey> {
        self.relying_party()?;
        let id = PasskeyId::parse(id)?;
        if name.trim().is_empty() {
            return Err(Error::InvalidArgument(vec![name_violation("must not be empty")]));
        }
        let name = passkey_name(name)?;
        let renamed = self.passkey_store().rename_passkey(caller.user.id, id, &name).await?;
        let renamed = renamed.ok_or(Error::PasskeyNotFound)?;
        let audit = AuditEvent::new(AuditKind::PasskeyRenamed, self.clock.now(), client)
            .user(caller.user.id)
            .session(&caller.session.id)
            .detail(id.to_string());
        self.audit_store().record_audit(&audit).await?;
        Ok(renamed)
    }

    /// Deletes one of the caller's passkeys; the other sessions end. Needs
    /// a recent second factor.
    pub async fn delete_passkey(&self, caller: &Principal, id: &str, client: &ClientInfo) -> Result<u64> {
        self.relying_party()?;
        self.require_step_up(caller)?;
        let id = PasskeyId::parse(id)?;
        let audit = AuditEvent::new(AuditKind::PasskeyDeleted, self.clock.now(), client)
            .user(caller.user.id)
            .session(&caller.session.id)
            .detail(id.to_string());
        let event = user_changed(caller.user.id, UserChange::SecondFactor);
        let (user_id, session_id) = (caller.user.id, caller.session.id.clone());
        let ended = self
            .write_and_publish(event, move |accounts, event| async move {
                Ok(accounts.passkey_store().delete_passkey(user_id, id, &session_id, &audit, &event).await?)
            })
            .await?;
        ended.ok_or(Error::PasskeyNotFound)
    }

    /// Starts a sign-in with a passkey alone: the browser offers the
    /// site's discoverable passkeys. The ceremony is the browser's binding.
    pub async fn start_passkey_sign_in(&self, client: &ClientInfo) -> Result<StartedCeremony> {
        self.admit(PublicAction::SignIn, client).await?;
        let started = self.relying_party()?.start_discoverable()?;
        self.store_ceremony(CeremonyPurpose::SignIn, None, started).await
    }

    /// Finishes a passkey sign-in: an AAL2 session, as the passkey verified
    /// the user itself. The ceremony is used up, right answer or wrong.
    pub async fn finish_passkey_sign_in(
        &self,
        ceremony: &str,
        credential: &str,
        client: &ClientInfo,
    ) -> Result<SessionGrant> {
        self.admit(PublicAction::SignIn, client).await?;
        let party = self.relying_party()?;
        let ceremony = self.take_ceremony(ceremony, CeremonyPurpose::SignIn, None).await?;
        let now = self.clock.now();
        let assertion = Assertion::parse(credential)?;
        let found = self.passkey_store().find_passkey_by_credential(assertion.credential_id()).await?;
        // The user handle must name the passkey's owner: a credential id
        // does not sign in someone else.
        let found = found.filter(|(passkey, _)| assertion.user_id() == Some(passkey.user_id));
        let checked = found.ok_or(Error::PasskeyInvalid).and_then(|(passkey, user)| {
            Ok((party.finish_discoverable(&ceremony.state, &assertion, &passkey, now)?, user))
        });
        let (used, user) = match checked {
            Ok(checked) => checked,
            Err(Error::PasskeyInvalid) => {
                let mut audit = AuditEvent::new(AuditKind::SignInFailed, now, client).detail("passkey");
                if let Some(user_id) = assertion.user_id() {
                    audit = audit.user(user_id);
                }
                self.audit_store().record_audit(&audit).await?;
                return Err(Error::PasskeyInvalid);
            }
            Err(other) => return Err(other),
        };
        if self.config.require_email_verification && !user.email_verified {
            return Err(Error::EmailNotVerified);
        }
        let (token, session) = self.new_session_at(&user, client, Assurance::Aal2)?;
        let audit =
            AuditEvent::new(AuditKind::SignIn, now, client).user(user.id).session(&session.id).detail("passkey");
        let created = {
            let (accounts, session) = (self.clone(), session.clone());
            // The counter moves with the insert; on its own task, as for
            // `complete_sign_in`.
            self.to_completion(async move {
                let basis = SessionBasis::Passkey { factor: &used };
                Ok(accounts.session_store().create_session(&session, basis, &audit).await?)
            })
            .await?
        };
        // A racing answer moved the counter first, or the passkey went (or
        // the user was banned meanwhile).
        if !created {
            return Err(self.refused_sign_in(user.id, Error::PasskeyInvalid).await?);
        }
        Ok(SessionGrant { token: token.expose(), session, user })
    }

    /// Starts a step-up with one of the caller's passkeys.
    pub async fn start_passkey_step_up(&self, caller: &Principal) -> Result<StartedCeremony> {
        self.refuse_impersonated(caller)?;
        let party = self.relying_party()?;
        let passkeys = self.passkey_store().list_passkeys(caller.user.id).await?;
        if passkeys.is_empty() {
            return Err(Error::SecondFactorNotEnrolled);
        }
        let started = party.start_authentication(&passkeys)?;
        self.store_ceremony(CeremonyPurpose::StepUp, Some(caller), started).await
    }

    /// The step-up ceremony's state, taken: it works once.
    pub(super) async fn take_step_up(&self, caller: &Principal, ceremony: &str) -> Result<String> {
        self.relying_party()?;
        Ok(self.take_ceremony(ceremony, CeremonyPurpose::StepUp, Some(caller)).await?.state)
    }

    /// Checks a passkey's answer to `state` (a request for `user_id`'s
    /// passkeys): `None` for any answer that does not verify.
    pub(super) async fn passkey_answer(
        &self,
        user_id: UserId,
        state: &str,
        credential: &str,
        now: Timestamp,
    ) -> Result<Option<FactorUse>> {
        let party = self.relying_party()?;
        let Ok(assertion) = Assertion::parse(credential) else { return Ok(None) };
        let found = self.passkey_store().find_passkey_by_credential(assertion.credential_id()).await?;
        let Some((passkey, _)) = found.filter(|(passkey, _)| passkey.user_id == user_id) else { return Ok(None) };
        match party.finish_authentication(state, &assertion, &passkey, now) {
            Ok(used) => Ok(Some(FactorUse::Passkey(Box::new(used)))),
            Err(Error::PasskeyInvalid) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// Whether a checked passkey answer was overtaken: its passkey is gone
    /// or a racing answer moved its counter past this one's.
    pub(super) async fn passkey_overtaken(&self, user_id: UserId, answer: &PasskeyUse) -> Result<bool> {
        let passkeys = self.passkey_store().list_passkeys(user_id).await?;
        Ok(passkeys
            .iter()
            .find(|passkey| passkey.id == answer.id)
            .is_none_or(|passkey| !answer.moves(passkey.sign_count)))
    }

    pub(super) fn relying_party(&self) -> Result<&RelyingParty> {
        self.config.second_factors.passkeys.as_deref().ok_or(Error::PasskeysDisabled)
    }

    async fn store_ceremony(
        &self,
        purpose: CeremonyPurpose,
        caller: Option<&Principal>,
        started: Started,
    ) -> Result<StartedCeremony> {
        let token = CeremonyToken::generate()?;
        let now = self.clock.now();
        let expires_at = now.saturating_add(self.config.second_factors.challenge_ttl);
        let ceremony = Ceremony {
            hash: token.hash(),
            purpose,
            session_id: caller.map(|caller| caller.session.id.clone()),
            state: started.state,
            created_at: now,
            expires_at,
        };
        self.passkey_store().create_ceremony(&ceremony).await?;
        Ok(StartedCeremony { ceremony: token.expose(), options: started.options, expires_at })
    }

    async fn take_ceremony(
        &self,
        ceremony: &str,
        purpose: CeremonyPurpose,
        caller: Option<&Principal>,
    ) -> Result<Ceremony> {
        let token = CeremonyToken::parse(ceremony)?;
        let session = caller.map(|caller| &caller.session.id);
        let taken = self.passkey_store().take_ceremony(&token.hash(), purpose, session, self.clock.now()).await?;
        taken.ok_or(Error::PasskeyInvalid)
    }
}

/// A passkey's name as given: trimmed, at most [`MAX_PASSKEY_NAME`]
/// characters, no control characters; empty is named "Passkey".
fn passkey_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.chars().count() > MAX_PASSKEY_NAME {
        return Err(Error::InvalidArgument(vec![name_violation("must have at most 64 characters")]));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::InvalidArgument(vec![name_violation("must not contain control characters")]));
    }
    Ok(if name.is_empty() { "Passkey".to_owned() } else { name.to_owned() })
}

fn name_violation(description: &str) -> FieldViolation {
    FieldViolation::new("name", description)
}
