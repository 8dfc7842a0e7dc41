//! Passkeys (WebAuthn, through webauthn-rs): the relying party's
//! ceremonies, the credentials as stored, and the ceremony tokens.
//!
//! Every ceremony's state stays on the server (as webauthn-rs demands, or
//! challenges could be replayed): `start_*` hands the browser its options
//! and the caller stores the state under a single-use [`CeremonyToken`], or
//! on the sign-in challenge it belongs to. Registration asks for a
//! discoverable credential with user verification, so one passkey serves as
//! a first factor (signing in with no email typed) and as a second one.

use std::{fmt, time::Duration};

use webauthn_rs::prelude::{
    Credential, DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration, PublicKeyCredential,
    RegisterPublicKeyCredential, RequestChallengeResponse, Url, Uuid, Webauthn, WebauthnBuilder,
};
use webauthn_rs_proto::ResidentKeyRequirement;

use super::one_time::OneTime;
use crate::{
    clock::Timestamp,
    error::{Error, Result},
    token::SessionId,
    user::{User, UserId},
};

/// Prefix of every passkey ceremony.
pub const CEREMONY_PREFIX: &str = "kpk_";
/// Longest passkey name, in characters.
pub const MAX_PASSKEY_NAME: usize = 64;
/// Largest authenticator answer read, in bytes: real ones are 1-5 KiB
/// (an attestation certificate chain is the largest part).
const MAX_CREDENTIAL_JSON: usize = 16 * 1024;

/// Who the relying party is: what `[passkeys]` configures.
#[derive(Debug, Clone)]
pub struct PasskeySettings {
    /// The relying-party id: the site's registrable domain (`example.com`),
    /// which passkeys are bound to.
    pub rp_id: String,
    /// The name authenticators show.
    pub rp_name: String,
    /// The origins allowed to run ceremonies (`https://app.example.com`);
    /// each must be the id or under it.
    pub origins: Vec<String>,
}

/// The relying party: runs the ceremonies of [`PasskeySettings`].
pub struct RelyingParty {
    webauthn: Webauthn,
}

impl fmt::Debug for RelyingParty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RelyingParty").field("origins", &self.webauthn.get_allowed_origins()).finish()
    }
}

/// A started ceremony: options for the browser, state for storage.
#[derive(Debug)]
pub struct Started {
    /// The WebAuthn options as JSON (`PublicKeyCredential*OptionsJSON`).
    pub options: String,
    /// The ceremony's state as JSON, kept server-side.
    pub state: String,
}

/// A passkey as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPasskey {
    /// Keyport's id of it.
    pub id: PasskeyId,
    /// Whose it is.
    pub user_id: UserId,
    /// The authenticator's credential id (unique over all users).
    pub credential_id: Vec<u8>,
    /// The name the user gave it.
    pub name: String,
    /// The webauthn-rs credential (public key, counter, flags) as JSON.
    pub credential: String,
    /// The signature counter last seen (0 for most synced passkeys).
    pub sign_count: u32,
    /// Whether the authenticator syncs it (WebAuthn backup state).
    pub backed_up: bool,
    /// When it was registered.
    pub created_at: Timestamp,
    /// When it last passed a ceremony.
    pub last_used_at: Option<Timestamp>,
}

/// Keyport's id of a passkey.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PasskeyId(pub Uuid);

impl PasskeyId {
    /// A fresh id for a passkey registered at `at`.
    pub fn generate(at: Timestamp) -> Self {
        Self(at.uuid_v7())
    }

    /// Parses an id sent by a client; anything else is not found.
    pub fn parse(raw: &str) -> Result<Self> {
        Uuid::try_parse(raw).map(Self).map_err(|_| Error::PasskeyNotFound)
    }
}

impl fmt::Display for PasskeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A checked passkey answer, to be applied in the transaction of what it
/// grants: the stored counter moves up to `sign_count` only if it is still
/// below it (or both are 0, a passkey without a counter), so an answer
/// that a racing one overtook is refused as a counter that went back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyUse {
    /// The passkey that answered.
    pub id: PasskeyId,
    /// The counter the answer carried.
    pub sign_count: u32,
    /// The credential with the answer's counter and flags, as JSON.
    pub credential: String,
    /// The answer's backup state.
    pub backed_up: bool,
    /// When it answered.
    pub at: Timestamp,
}

impl PasskeyUse {
    /// Whether the answer may move a stored counter of `stored`.
    pub fn moves(&self, stored: u32) -> bool {
        stored < self.sign_count || (stored == 0 && self.sign_count == 0)
    }
}

/// What a ceremony is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CeremonyPurpose {
    /// Registering a passkey for the session's user.
    Registration,
    /// Signing in with a passkey alone.
    SignIn,
    /// Stepping the session up with a passkey.
    StepUp,
}

impl CeremonyPurpose {
    /// The name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Registration => "registration",
            Self::SignIn => "sign_in",
            Self::StepUp => "step_up",
        }
    }
}

/// A started ceremony, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ceremony {
    /// SHA-256 of the ceremony token's secret.
    pub hash: [u8; 32],
    /// What it is for.
    pub purpose: CeremonyPurpose,
    /// The session it is bound to (registration and step-up).
    pub session_id: Option<SessionId>,
    /// The ceremony's WebAuthn state, as JSON.
    pub state: String,
    /// When it started.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// A ceremony token as handed to the client (`kpk_...`).
pub struct CeremonyToken(OneTime);

impl CeremonyToken {
    /// A fresh token from the operating system's CSPRNG.
    pub fn generate() -> Result<Self> {
        OneTime::generate(CEREMONY_PREFIX).map(Self)
    }

    /// Parses a token sent by a client; anything malformed is
    /// [`Error::PasskeyInvalid`], like an unknown one.
    pub fn parse(raw: &str) -> Result<Self> {
        OneTime::parse(CEREMONY_PREFIX, raw).map(Self).ok_or(Error::PasskeyInvalid)
    }

    /// SHA-256 of the secret, as stored.
    pub fn hash(&self) -> [u8; 32] {
        self.0.hash()
    }

    /// The wire form.
    pub fn expose(&self) -> String {
        self.0.expose()
    }
}

impl fmt::Debug for CeremonyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CeremonyToken(..)")
    }
}

/// A new passkey out of a registration ceremony.
#[derive(Debug)]
pub struct Registered {
    /// The authenticator's credential id.
    pub credential_id: Vec<u8>,
    /// The credential as JSON.
    pub credential: String,
    /// Whether the authenticator syncs it.
    pub backed_up: bool,
    /// Its signature counter at registration.
    pub sign_count: u32,
}

/// An authenticator's answer to a request, parsed.
pub struct Assertion(PublicKeyCredential);

impl Assertion {
    /// Parses `navigator.credentials.get`'s answer (its `toJSON()`).
    pub fn parse(json: &str) -> Result<Self> {
        parse_json(json).map(Self)
    }

    /// The credential id it claims.
    pub fn credential_id(&self) -> &[u8] {
        self.0.get_credential_id()
    }

    /// The user handle a discoverable credential returns: Keyport's user id.
    pub fn user_id(&self) -> Option<UserId> {
        self.0.get_user_unique_id().and_then(|handle| Uuid::from_slice(handle).ok()).map(UserId)
    }
}

impl RelyingParty {
    /// The relying party of `settings`; ceremonies time out after `timeout`.
    pub fn new(settings: &PasskeySettings, timeout: Duration) -> std::result::Result<Self, String> {
        let mut origins = settings
            .origins
            .iter()
            .map(|origin| Url::parse(origin).map_err(|e| format!("passkeys.origins: {origin:?} is not a URL: {e}")));
        let first = origins.next().ok_or("passkeys.origins: at least one origin is needed")??;
        let mut builder = WebauthnBuilder::new(&settings.rp_id, &first)
            .map_err(|e| format!("passkeys: rp_id {:?} does not fit {first}: {e}", settings.rp_id))?
            .rp_name(&settings.rp_name)
            .timeout(timeout);
        for origin in origins {
            builder = builder.append_allowed_origin(&origin?);
        }
        let webauthn = builder.build().map_err(|e| format!("passkeys: {e}"))?;
        Ok(Self { webauthn })
    }

    /// Starts registering a passkey for `user`, excluding the ones they have.
    pub fn start_registration(&self, user: &User, existing: &[StoredPasskey]) -> Result<Started> {
        let exclude = existing.iter().map(|passkey| passkey.credential_id.clone()).collect::<Vec<_>>();
        // The authenticator shows these when the user picks a passkey.
        let email = user.email.as_str();
        let display_name = if user.name.trim().is_empty() { email } else { user.name.as_str() };
        let (mut options, state) = self
            .webauthn
            .start_passkey_registration(user.id.0, email, display_name, Some(exclude).filter(|ids| !ids.is_empty()))
            .map_err(internal)?;
        // Discoverable, so the passkey also signs in with no email typed
        // (webauthn-rs asks for none by default; the state does not care).
        if let Some(selection) = options.public_key.authenticator_selection.as_mut() {
            selection.resident_key = Some(ResidentKeyRequirement::Required);
            selection.require_resident_key = true;
        }
        Ok(Started { options: to_json(&options.public_key)?, state: to_json(&state)? })
    }

    /// Checks the authenticator's answer to a registration.
    pub fn finish_registration(&self, state: &str, credential: &str) -> Result<Registered> {
        let state: PasskeyRegistration = serde_json::from_str(state).map_err(internal)?;
        let answer: RegisterPublicKeyCredential = parse_json(credential)?;
        let passkey = self.webauthn.finish_passkey_registration(&answer, &state).map_err(refused)?;
        let internals = Credential::from(passkey.clone());
        Ok(Registered {
            credential_id: passkey.cred_id().clone(),
            credential: to_json(&passkey)?,
            backed_up: internals.backup_state,
            sign_count: internals.counter,
        })
    }

    /// Starts a request that any of `passkeys` (one user's) can answer.
    pub fn start_authentication(&self, passkeys: &[StoredPasskey]) -> Result<Started> {
        let credentials = passkeys.iter().map(credential_of).collect::<Result<Vec<_>>>()?;
        let (options, state) = self.webauthn.start_passkey_authentication(&credentials).map_err(internal)?;
        Ok(Started { options: to_json(&options.public_key)?, state: to_json(&state)? })
    }

    /// Starts a request for any discoverable passkey of this site.
    pub fn start_discoverable(&self) -> Result<Started> {
        let (options, state): (RequestChallengeResponse, DiscoverableAuthentication) =
            self.webauthn.start_discoverable_authentication().map_err(internal)?;
        // Only the public-key options go out: the app picks the mediation
        // (a button press by default, or `conditional` autofill).
        Ok(Started { options: to_json(&options.public_key)?, state: to_json(&state)? })
    }

    /// Checks `assertion` against the state of a request for `passkey`'s
    /// user (a second factor, a step-up).
    pub fn finish_authentication(
        &self,
        state: &str,
        assertion: &Assertion,
        passkey: &StoredPasskey,
        now: Timestamp,
    ) -> Result<PasskeyUse> {
        let state: PasskeyAuthentication = serde_json::from_str(state).map_err(internal)?;
        let result = self.webauthn.finish_passkey_authentication(&assertion.0, &state).map_err(refused)?;
        used(passkey, credential_of(passkey)?, &result, now)
    }

    /// Checks `assertion` against the state of a discoverable request; the
    /// caller found `passkey` by the assertion's credential id and user.
    pub fn finish_discoverable(
        &self,
        state: &str,
        assertion: &Assertion,
        passkey: &StoredPasskey,
        now: Timestamp,
    ) -> Result<PasskeyUse> {
        let state: DiscoverableAuthentication = serde_json::from_str(state).map_err(internal)?;
        let credential = credential_of(passkey)?;
        let result =
            self.webauthn.finish_discoverable_authentication_v2(&assertion.0, state, &credential).map_err(refused)?;
        used(passkey, credential, &result, now)
    }
}

/// The passkey after `result`: its counter and flags moved forward.
fn used(
    passkey: &StoredPasskey,
    mut credential: Passkey,
    result: &webauthn_rs::prelude::AuthenticationResult,
    now: Timestamp,
) -> Result<PasskeyUse> {
    if credential.update_credential(result).is_none() {
        return Err(Error::PasskeyInvalid);
    }
    Ok(PasskeyUse {
        id: passkey.id,
        sign_count: result.counter(),
        credential: to_json(&credential)?,
        backed_up: result.backup_state(),
        at: now,
    })
}

fn credential_of(passkey: &StoredPasskey) -> Result<Passkey> {
    serde_json::from_str(&passkey.credential).map_err(internal)
}

/// A client's JSON: too large or malformed is a failed ceremony.
fn parse_json<T: serde::de::DeserializeOwned>(json: &str) -> Result<T> {
    if json.len() > MAX_CREDENTIAL_JSON {
        return Err(Error::PasskeyInvalid);
    }
    serde_json::from_str(json).map_err(|_| Error::PasskeyInvalid)
}

fn to_json(value: &impl serde::Serialize) -> Result<String> {
    serde_json::to_string(value).map_err(internal)
}

fn internal(error: impl fmt::Display) -> Error {
    Error::Internal(format!("passkeys: {error}"))
}

/// An answer that does not verify (wrong challenge, origin, signature,
/// counter, missing user verification): the ceremony failed.
fn refused(error: webauthn_rs::prelude::WebauthnError) -> Error {
    tracing::debug!(%error, "passkey answer refused");
    Error::PasskeyInvalid
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceremony_tokens_round_trip_and_refuse_anything_else() {
        let token = CeremonyToken::generate().unwrap();
        let wire = token.expose();
        assert!(wire.starts_with(CEREMONY_PREFIX));
        assert_eq!(CeremonyToken::parse(&wire).unwrap().hash(), token.hash());
        for bad in [String::new(), CEREMONY_PREFIX.into(), wire.replace("kpk_", "kpc_"), format!("{wire}A")] {
            assert!(matches!(CeremonyToken::parse(&bad), Err(Error::PasskeyInvalid)), "{bad:?}");
        }
    }

    #[test]
    fn malformed_and_oversized_answers_are_failed_ceremonies() {
        let huge = format!("{{\"id\":\"{}\"}}", "A".repeat(MAX_CREDENTIAL_JSON));
        for bad in ["", "{", "[]", "{\"id\":1}", huge.as_str()] {
            assert!(matches!(Assertion::parse(bad), Err(Error::PasskeyInvalid)), "{bad:.20}");
        }
    }

    #[test]
    fn settings_need_an_origin_under_the_id() {
        let settings = |rp_id: &str, origins: &[&str]| PasskeySettings {
            rp_id: rp_id.into(),
            rp_name: "Keyport".into(),
            origins: origins.iter().map(|origin| (*origin).to_owned()).collect(),
        };
        let timeout = Duration::from_secs(300);
        assert!(RelyingParty::new(&settings("example.com", &["https://app.example.com"]), timeout).is_ok());
        assert!(RelyingParty::new(&settings("example.com", &[]), timeout).is_err());
        assert!(RelyingParty::new(&settings("example.com", &["not a url"]), timeout).is_err());
        assert!(RelyingParty::new(&settings("example.com", &["https://evil.test"]), timeout).is_err());
    }
}
