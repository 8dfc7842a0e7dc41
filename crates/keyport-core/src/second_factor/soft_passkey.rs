//! A software passkey for tests (feature `soft-passkey`, and this crate's
//! own tests): webauthn-authenticator-rs's `SoftPasskey` (a real P-256 key
//! that signs real assertions) behind the JSON that Keyport's options and
//! a browser's answers are made of. Never for production: it holds its
//! keys in memory and claims user verification without asking anyone.
//!
//! `SoftPasskey` keeps no discoverable credentials, so the discoverable
//! sign-in is played the way a browser would: it picks this key's
//! credential itself and returns the user handle it was registered with.

use webauthn_authenticator_rs::{
    WebauthnAuthenticator,
    prelude::{CreationChallengeResponse, PublicKeyCredential, RequestChallengeResponse, Url},
    softpasskey::SoftPasskey,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One authenticator, holding the credentials it registered.
pub struct SoftKey {
    key: SoftPasskey,
    origin: Url,
    /// The credential id and user handle of the last registration.
    registered: Option<(Vec<u8>, Vec<u8>)>,
}

impl SoftKey {
    /// A new authenticator whose client (the "browser") runs ceremonies
    /// for the page at `origin`.
    pub fn at(origin: &str) -> Result<Self, BoxError> {
        // `true`: claims user verification, as a platform authenticator does.
        Ok(Self { key: SoftPasskey::new(true), origin: Url::parse(origin)?, registered: None })
    }

    /// Answers `StartPasskeyRegistration`'s options: the credential JSON.
    pub fn register(&mut self, options: &str) -> Result<String, BoxError> {
        let mut creation: CreationChallengeResponse = serde_json::from_str(&format!("{{\"publicKey\":{options}}}"))?;
        let user = creation.public_key.user.id.to_vec();
        // SoftPasskey cannot keep a discoverable credential; the server
        // asked for one, and the discoverable sign-in is played below.
        let selection = creation.public_key.authenticator_selection.as_mut();
        let selection = selection.filter(|selection| selection.require_resident_key);
        let selection = selection.ok_or("the registration does not ask for a discoverable passkey")?;
        selection.require_resident_key = false;
        selection.resident_key = None;
        let credential = self.key.do_registration(self.origin.clone(), creation)?;
        self.registered = Some((credential.raw_id.to_vec(), user));
        Ok(serde_json::to_string(&credential)?)
    }

    /// Answers request options that list this key's credential (a second
    /// factor, a step-up): the assertion JSON.
    pub fn sign(&mut self, options: &str) -> Result<String, BoxError> {
        let request: RequestChallengeResponse = serde_json::from_str(&format!("{{\"publicKey\":{options}}}"))?;
        let assertion = self.key.do_authentication(self.origin.clone(), request)?;
        Ok(serde_json::to_string(&assertion)?)
    }

    /// Answers discoverable request options (no credentials listed) as a
    /// browser would: with this key's last credential and its user handle.
    pub fn sign_discoverable(&mut self, options: &str) -> Result<String, BoxError> {
        let mut request: RequestChallengeResponse = serde_json::from_str(&format!("{{\"publicKey\":{options}}}"))?;
        if !request.public_key.allow_credentials.is_empty() {
            return Err("a discoverable request lists no credentials".into());
        }
        let (id, user) = self.registered.clone().ok_or("nothing registered")?;
        request.public_key.allow_credentials =
            vec![webauthn_rs_proto::AllowCredentials { type_: "public-key".into(), id, transports: None }];
        let mut assertion: PublicKeyCredential = self.key.do_authentication(self.origin.clone(), request)?;
        assertion.response.user_handle = Some(user);
        Ok(serde_json::to_string(&assertion)?)
    }

    /// Makes the key's client claim `origin` from now on.
    pub fn set_origin(&mut self, origin: &str) -> Result<(), BoxError> {
        self.origin = Url::parse(origin)?;
        Ok(())
    }

    /// This key's last registered credential id.
    pub fn credential_id(&self) -> Option<&[u8]> {
        self.registered.as_ref().map(|(id, _)| id.as_slice())
    }
}
