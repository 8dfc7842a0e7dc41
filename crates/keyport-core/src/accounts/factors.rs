//! A user's own second factors: enrol and confirm an authenticator app,
//! turn it off, replace the backup codes, step a session up to AAL2, and the
//! rule that sensitive calls need a recent second factor.

use super::{Accounts, user_changed};
use crate::{
    audit::{AuditEvent, AuditKind},
    clock::Timestamp,
    error::{Error, Result},
    events::UserChange,
    second_factor::{Assurance, BackupCode, FactorAnswer, FactorKeys, TotpSecret},
    session::{ClientInfo, Principal, Session},
};

/// What a user has on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactorSummary {
    /// When the authenticator app was turned on; `None` when it is off.
    pub totp_enabled_at: Option<Timestamp>,
    /// Unused backup codes.
    pub backup_codes_left: u32,
    /// How many passkeys the user has.
    pub passkeys: u32,
}

/// A started enrolment, to show the user once.
#[derive(Debug)]
pub struct TotpEnrollment {
    /// The secret in base32.
    pub secret: String,
    /// The `otpauth://` URI.
    pub otpauth_uri: String,
    /// The URI's QR code, an SVG document.
    pub qr_code_svg: String,
    /// When the enrolment lapses unless confirmed.
    pub expires_at: Timestamp,
}

impl Accounts {
    /// The caller's second factors.
    pub async fn list_factors(&self, caller: &Principal) -> Result<FactorSummary> {
        let totp = self.factor_store().find_totp(caller.user.id).await?;
        Ok(FactorSummary {
            totp_enabled_at: totp.and_then(|totp| totp.enabled_at),
            backup_codes_left: self.factor_store().count_backup_codes(caller.user.id).await?,
            passkeys: u32::try_from(self.passkey_store().list_passkeys(caller.user.id).await?.len())
                .unwrap_or(u32::MAX),
        })
    }

    /// Starts enrolling an authenticator app for the caller, replacing a
    /// pending enrolment. Needs a recent sign-in: a session stolen long ago
    /// cannot tie the account to the thief's app.
    pub async fn enroll_totp(&self, caller: &Principal) -> Result<TotpEnrollment> {
        self.refuse_impersonated(caller)?;
        let settings = &self.config.second_factors;
        let now = self.clock.now();
        if now.duration_since(caller.session.authenticated_at) > settings.fresh_for {
            return Err(Error::ReauthenticationRequired);
        }
        let secret = TotpSecret::generate()?;
        let sealed = self.factor_keys()?.seal(&secret, caller.user.id)?;
        if !self.factor_store().put_pending_totp(caller.user.id, &sealed, now).await? {
            return Err(Error::SecondFactorAlreadyEnrolled);
        }
        let otpauth_uri = secret.otpauth_uri(&settings.issuer, caller.user.email.as_str())?;
        let qr_code_svg = qrcode::QrCode::new(otpauth_uri.as_bytes())
            .map_err(|e| Error::Internal(format!("QR code: {e}")))?
            .render::<qrcode::render::svg::Color<'_>>()
            .min_dimensions(200, 200)
            .build();
        Ok(TotpEnrollment {
            secret: secret.base32(),
            otpauth_uri,
            qr_code_svg,
            expires_at: now.saturating_add(settings.enrollment_ttl),
        })
    }

    /// Turns the caller's pending app on with its first code; returns the
    /// backup codes (shown once) and the calling session, now AAL2. The
    /// user's other sessions end.
    pub async fn confirm_totp(
        &self,
        caller: &Principal,
        code: &str,
        client: &ClientInfo,
    ) -> Result<(Vec<String>, Session)> {
        let now = self.clock.now();
        let pending = self.factor_store().find_totp(caller.user.id).await?.filter(|totp| {
            totp.enabled_at.is_none()
                && now.duration_since(totp.created_at) <= self.config.second_factors.enrollment_ttl
        });
        let pending = pending.ok_or(Error::SecondFactorNotEnrolled)?;
        let attempt = self.reserve_factor_attempt(caller.user.id, client).await?;
        let secret = self.factor_keys()?.open(&pending.sealed, caller.user.id)?;
        let Some(step) = secret.matching_step(code, now) else {
            let audit = AuditEvent::new(AuditKind::SecondFactorFailed, now, client)
                .user(caller.user.id)
                .session(&caller.session.id)
                .detail("totp_confirmation");
            self.audit_store().record_audit(&audit).await?;
            return Err(Error::SecondFactorInvalid);
        };
        let codes = BackupCode::generate_set()?;
        let hashes: Vec<[u8; 32]> = codes.iter().map(BackupCode::hash).collect();
        let audit =
            AuditEvent::new(AuditKind::TotpEnabled, now, client).user(caller.user.id).session(&caller.session.id);
        let event = user_changed(caller.user.id, UserChange::SecondFactor);
        let (user_id, session_id, enrolled_at) = (caller.user.id, caller.session.id.clone(), pending.created_at);
        let enabled = self
            .write_and_publish(event, move |accounts, event| async move {
                let store = accounts.factor_store();
                Ok(store.enable_totp(user_id, enrolled_at, step, &hashes, &session_id, now, &audit, &event).await?)
            })
            .await?;
        // Another confirmation, or a new enrolment, won meanwhile.
        enabled.ok_or(Error::SecondFactorNotEnrolled)?;
        self.throttle.refund(attempt).await;
        let session = Session { assurance: Assurance::Aal2, authenticated_at: now, ..caller.session.clone() };
        Ok((codes.iter().map(BackupCode::display).collect(), session))
    }

    /// Turns the caller's app off and voids the backup codes; the other
    /// sessions end. Needs a recent second factor.
    pub async fn disable_totp(&self, caller: &Principal, client: &ClientInfo) -> Result<u64> {
        self.require_step_up(caller)?;
        let now = self.clock.now();
        let audit =
            AuditEvent::new(AuditKind::TotpDisabled, now, client).user(caller.user.id).session(&caller.session.id);
        let event = user_changed(caller.user.id, UserChange::SecondFactor);
        let (user_id, session_id) = (caller.user.id, caller.session.id.clone());
        let ended = self
            .write_and_publish(event, move |accounts, event| async move {
                Ok(accounts.factor_store().disable_totp(user_id, &session_id, &audit, &event).await?)
            })
            .await?;
        ended.ok_or(Error::SecondFactorNotEnrolled)
    }

    /// Replaces the caller's backup codes; returns the new ones (shown
    /// once). Needs a recent second factor.
    pub async fn regenerate_backup_codes(&self, caller: &Principal, client: &ClientInfo) -> Result<Vec<String>> {
        if !caller.user.two_factor_enabled {
            return Err(Error::SecondFactorNotEnrolled);
        }
        self.require_step_up(caller)?;
        let codes = BackupCode::generate_set()?;
        let hashes: Vec<[u8; 32]> = codes.iter().map(BackupCode::hash).collect();
        let audit = AuditEvent::new(AuditKind::BackupCodesRegenerated, self.clock.now(), client)
            .user(caller.user.id)
            .session(&caller.session.id);
        if !self.factor_store().replace_backup_codes(caller.user.id, &hashes, &audit).await? {
            return Err(Error::SecondFactorNotEnrolled);
        }
        Ok(codes.iter().map(BackupCode::display).collect())
    }

    /// Passes a second factor again on the calling session: it becomes AAL2
    /// as of now.
    pub async fn step_up(&self, caller: &Principal, answer: FactorAnswer<'_>, client: &ClientInfo) -> Result<Session> {
        self.refuse_impersonated(caller)?;
        if !caller.user.two_factor_enabled {
            return Err(Error::SecondFactorNotEnrolled);
        }
        // A passkey answers the step-up ceremony it was started with, which
        // works once whatever the answer.
        let passkey_state = match answer {
            FactorAnswer::Passkey { ceremony, .. } => Some(self.take_step_up(caller, ceremony.unwrap_or("")).await?),
            _ => None,
        };
        let factor = self.check_factor(&caller.user, Some(caller), answer, passkey_state.as_deref(), client).await?;
        let now = self.clock.now();
        let audit = AuditEvent::new(AuditKind::SteppedUp, now, client).user(caller.user.id).session(&caller.session.id);
        // Caches hold the session at its old level: they must read it again.
        let event = user_changed(caller.user.id, UserChange::SecondFactor);
        let (user_id, session_id, used) = (caller.user.id, caller.session.id.clone(), factor.clone());
        let stepped = self
            .write_and_publish(event, move |accounts, event| async move {
                let store = accounts.factor_store();
                Ok(store.step_up_session(user_id, &session_id, &used, now, &audit, &event).await?)
            })
            .await?;
        if !stepped {
            // The code was used meanwhile, or the session ended.
            return Err(match self.spent(caller.user.id, &factor).await? {
                Error::SecondFactorInvalid => Error::SecondFactorInvalid,
                _ => Error::Unauthenticated,
            });
        }
        Ok(Session { assurance: Assurance::Aal2, authenticated_at: now, ..caller.session.clone() })
    }

    /// Refuses a sensitive call from a user with a second factor unless the
    /// session passed one within `second_factors.fresh_for`. (Kratos
    /// CVE-2024-45042 let `highest_available` pass on the first factor.)
    pub(super) fn require_step_up(&self, caller: &Principal) -> Result<()> {
        self.refuse_impersonated(caller)?;
        if !caller.user.two_factor_enabled {
            return Ok(());
        }
        let age = self.clock.now().duration_since(caller.session.authenticated_at);
        if caller.session.assurance != Assurance::Aal2 || age > self.config.second_factors.fresh_for {
            return Err(Error::StepUpRequired);
        }
        Ok(())
    }

    /// Refuses an impersonation session: an admin acting as a user sees
    /// what they see, and changes none of their credentials, factors or
    /// sessions.
    pub(super) fn refuse_impersonated(&self, caller: &Principal) -> Result<()> {
        if caller.session.impersonator.is_some() { Err(Error::PermissionDenied) } else { Ok(()) }
    }

    pub(super) fn factor_keys(&self) -> Result<&FactorKeys> {
        self.config
            .second_factors
            .keys
            .as_ref()
            .ok_or_else(|| Error::Internal("second factors need `second_factors.encryption_key`".into()))
    }
}
