//! Passkeys ([`KeyportClient`] methods over `keyport.v1.PasskeyService`,
//! and the passkey calls of the session and second-factor services):
//! register, list, rename and delete; sign in with a passkey alone; step
//! up with one.
//!
//! Every ceremony is two calls: `start_*` answers the WebAuthn options (JSON
//! for the browser's `navigator.credentials.create` or `.get`) and a
//! ceremony token; the finishing call takes the token back with the
//! browser's answer (its `PublicKeyCredential.toJSON()`).

use std::time::SystemTime;

use keyport_proto::v1::{
    self, passkey_service_client::PasskeyServiceClient, session_service_client::SessionServiceClient,
    two_factor_service_client::TwoFactorServiceClient,
};
use tonic::Status;

use crate::{
    client::{ClientInfo, KeyportClient, SignedIn, signed_in},
    error::Error,
    principal::system_time,
};

/// A registered passkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passkey {
    /// Keyport's id of it.
    pub id: String,
    /// The name the user gave it.
    pub name: String,
    /// When it was registered.
    pub created_at: SystemTime,
    /// When it last signed in or stepped up.
    pub last_used_at: Option<SystemTime>,
    /// Whether the authenticator syncs it to the user's other devices.
    pub backed_up: bool,
}

/// A started ceremony.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasskeyCeremony {
    /// The ceremony token (`kpk_...`), single-use. For a passkey sign-in,
    /// keep it in an `HttpOnly` cookie of the browser that asked.
    pub ceremony: String,
    /// The WebAuthn options, JSON for the browser.
    pub options: String,
    /// When the ceremony stops working.
    pub expires_at: SystemTime,
}

impl KeyportClient {
    /// Starts registering a passkey for `token`'s user (needs a recent
    /// sign-in, and a recent second factor if they have one).
    pub async fn start_passkey_registration(&self, token: &str, client: &ClientInfo) -> Result<PasskeyCeremony, Error> {
        let response = self
            .once(|channel| {
                let request = self.request(v1::StartPasskeyRegistrationRequest {}, Some(token), client);
                async move { PasskeyServiceClient::new(channel).start_passkey_registration(request).await }
            })
            .await?;
        Ok(ceremony(response.ceremony, response.options, response.expires_at))
    }

    /// Finishes a registration with the browser's answer; the session
    /// becomes AAL2 and the user's other sessions end.
    pub async fn finish_passkey_registration(
        &self,
        token: &str,
        ceremony: &str,
        credential: &str,
        name: &str,
        client: &ClientInfo,
    ) -> Result<Passkey, Error> {
        let message = v1::FinishPasskeyRegistrationRequest {
            ceremony: ceremony.to_owned(),
            credential: credential.to_owned(),
            name: name.to_owned(),
        };
        let response = self
            .once(|channel| {
                let request = self.request(message.clone(), Some(token), client);
                async move { PasskeyServiceClient::new(channel).finish_passkey_registration(request).await }
            })
            .await?;
        passkey_of(response.passkey)
    }

    /// The passkeys of `token`'s user, oldest first.
    pub async fn list_passkeys(&self, token: &str, client: &ClientInfo) -> Result<Vec<Passkey>, Error> {
        let response = self
            .idempotent(|channel| {
                let request = self.request(v1::ListPasskeysRequest {}, Some(token), client);
                async move { PasskeyServiceClient::new(channel).list_passkeys(request).await }
            })
            .await?;
        response.passkeys.into_iter().map(|passkey| passkey_of(Some(passkey))).collect()
    }

    /// Renames one of the user's passkeys.
    pub async fn rename_passkey(
        &self,
        token: &str,
        id: &str,
        name: &str,
        client: &ClientInfo,
    ) -> Result<Passkey, Error> {
        let message = v1::RenamePasskeyRequest { id: id.to_owned(), name: name.to_owned() };
        let response = self
            .idempotent(|channel| {
                let request = self.request(message.clone(), Some(token), client);
                async move { PasskeyServiceClient::new(channel).rename_passkey(request).await }
            })
            .await?;
        passkey_of(response.passkey)
    }

    /// Deletes one of the user's passkeys (needs a recent second factor);
    /// returns how many other sessions ended.
    pub async fn delete_passkey(&self, token: &str, id: &str, client: &ClientInfo) -> Result<u32, Error> {
        let message = v1::DeletePasskeyRequest { id: id.to_owned() };
        let response = self
            .once(|channel| {
                let request = self.request(message.clone(), Some(token), client);
                async move { PasskeyServiceClient::new(channel).delete_passkey(request).await }
            })
            .await?;
        Ok(response.revoked_sessions)
    }

    /// Starts a sign-in with a passkey alone (no email asked).
    pub async fn start_passkey_sign_in(&self, client: &ClientInfo) -> Result<PasskeyCeremony, Error> {
        let response = self
            .once(|channel| {
                let request = self.request(v1::StartPasskeySignInRequest {}, None, client);
                async move { SessionServiceClient::new(channel).start_passkey_sign_in(request).await }
            })
            .await?;
        Ok(ceremony(response.ceremony, response.options, response.expires_at))
    }

    /// Finishes a passkey sign-in: the new session, at [`crate::Assurance::Aal2`].
    pub async fn finish_passkey_sign_in(
        &self,
        ceremony: &str,
        credential: &str,
        client: &ClientInfo,
    ) -> Result<SignedIn, Error> {
        let message =
            v1::FinishPasskeySignInRequest { ceremony: ceremony.to_owned(), credential: credential.to_owned() };
        let response = self
            .once(|channel| {
                let request = self.request(message.clone(), None, client);
                async move { SessionServiceClient::new(channel).finish_passkey_sign_in(request).await }
            })
            .await?;
        signed_in(response.session.ok_or_else(|| Status::internal("FinishPasskeySignIn answered without a session"))?)
    }

    /// Starts a step-up with one of the user's passkeys.
    pub async fn start_passkey_step_up(&self, token: &str, client: &ClientInfo) -> Result<PasskeyCeremony, Error> {
        let response = self
            .once(|channel| {
                let request = self.request(v1::StartPasskeyStepUpRequest {}, Some(token), client);
                async move { TwoFactorServiceClient::new(channel).start_passkey_step_up(request).await }
            })
            .await?;
        Ok(ceremony(response.ceremony, response.options, response.expires_at))
    }

    /// Steps `token`'s session up to AAL2 with a passkey's answer to the
    /// options of [`Self::start_passkey_step_up`].
    pub async fn step_up_with_passkey(
        &self,
        token: &str,
        ceremony: &str,
        credential: &str,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let assertion = v1::PasskeyAssertion { ceremony: ceremony.to_owned(), credential: credential.to_owned() };
        let message = v1::StepUpRequest { answer: Some(v1::step_up_request::Answer::Passkey(assertion)) };
        self.once(|channel| {
            let request = self.request(message.clone(), Some(token), client);
            async move { TwoFactorServiceClient::new(channel).step_up(request).await }
        })
        .await?;
        Ok(())
    }
}

fn ceremony(ceremony: String, options: String, expires_at: Option<prost_types::Timestamp>) -> PasskeyCeremony {
    PasskeyCeremony { ceremony, options, expires_at: system_time(expires_at.as_ref()) }
}

fn passkey_of(passkey: Option<v1::Passkey>) -> Result<Passkey, Error> {
    let passkey = passkey.ok_or_else(|| Status::internal("answered without the passkey"))?;
    Ok(Passkey {
        created_at: system_time(passkey.created_at.as_ref()),
        last_used_at: passkey.last_used_at.as_ref().map(|at| system_time(Some(at))),
        id: passkey.id,
        name: passkey.name,
        backed_up: passkey.backed_up,
    })
}
