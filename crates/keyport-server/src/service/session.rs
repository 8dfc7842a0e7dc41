//! `keyport.v1.SessionService`.

use keyport_core::{accounts::SignedIn, mail::sign_in::SignInProof, second_factor::FactorAnswer};
use keyport_proto::v1::{self, session_service_server::SessionService};
use tonic::{Request, Response, Status};

use super::Shared;
use crate::{convert, status::to_status};

/// Implements `SessionService` over [`Shared`].
#[derive(Clone)]
pub struct SessionApi(pub Shared);

#[tonic::async_trait]
impl SessionService for SessionApi {
    type WatchSessionEventsStream = super::watch_events::EventStream;

    async fn watch_session_events(
        &self,
        request: Request<v1::WatchSessionEventsRequest>,
    ) -> Result<Response<Self::WatchSessionEventsStream>, Status> {
        if !self.0.clients.is_trusted(&request) {
            return Err(to_status(keyport_core::Error::PermissionDenied));
        }
        // A cache fed by this stream would miss other replicas' revocations.
        if !self.0.events.is_live() {
            let cause = "the relay of other replicas' session events is stalled".to_owned();
            return Err(to_status(keyport_core::Error::Unavailable(cause)));
        }
        Ok(Response::new(super::watch_events::stream(&self.0)))
    }

    async fn sign_in(&self, request: Request<v1::SignInRequest>) -> Result<Response<v1::SignInResponse>, Status> {
        let client = self.0.clients.resolve(&request);
        let body = request.into_inner();
        use v1::sign_in_response::Outcome;
        let signed_in = self.0.accounts.sign_in(&body.email, &body.password, &client).await.map_err(to_status)?;
        let outcome = match signed_in {
            SignedIn::Session(grant) => Outcome::Session(convert::grant(grant)),
            SignedIn::Challenge(challenge) => Outcome::Challenge(convert::challenge(challenge)),
        };
        Ok(Response::new(v1::SignInResponse { outcome: Some(outcome) }))
    }

    async fn complete_sign_in(
        &self,
        request: Request<v1::CompleteSignInRequest>,
    ) -> Result<Response<v1::CompleteSignInResponse>, Status> {
        let client = self.0.clients.resolve(&request);
        let body = request.into_inner();
        use v1::complete_sign_in_request::Answer;
        let answer = match &body.answer {
            Some(Answer::TotpCode(code)) => FactorAnswer::Totp(code),
            Some(Answer::BackupCode(code)) => FactorAnswer::BackupCode(code),
            Some(Answer::PasskeyCredential(credential)) => FactorAnswer::Passkey { ceremony: None, credential },
            // Nothing to check: a wrong answer, counted like one.
            None => FactorAnswer::Totp(""),
        };
        let completed = self.0.accounts.complete_sign_in(&body.challenge, answer, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::CompleteSignInResponse {
            session: Some(convert::grant(completed.grant)),
            backup_codes_left: completed.backup_codes_left,
        }))
    }

    async fn start_passkey_sign_in(
        &self,
        request: Request<v1::StartPasskeySignInRequest>,
    ) -> Result<Response<v1::StartPasskeySignInResponse>, Status> {
        let client = self.0.clients.resolve(&request);
        let started = self.0.accounts.start_passkey_sign_in(&client).await.map_err(to_status)?;
        Ok(Response::new(v1::StartPasskeySignInResponse {
            ceremony: started.ceremony,
            options: started.options,
            expires_at: Some(convert::timestamp(started.expires_at)),
        }))
    }

    async fn finish_passkey_sign_in(
        &self,
        request: Request<v1::FinishPasskeySignInRequest>,
    ) -> Result<Response<v1::FinishPasskeySignInResponse>, Status> {
        let client = self.0.clients.resolve(&request);
        let body = request.into_inner();
        let grant = self
            .0
            .accounts
            .finish_passkey_sign_in(&body.ceremony, &body.credential, &client)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::FinishPasskeySignInResponse { session: Some(convert::grant(grant)) }))
    }

    async fn start_email_sign_in(
        &self,
        request: Request<v1::StartEmailSignInRequest>,
    ) -> Result<Response<v1::StartEmailSignInResponse>, Status> {
        let client = self.0.clients.resolve(&request);
        let started =
            self.0.accounts.start_email_sign_in(&request.get_ref().email, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::StartEmailSignInResponse {
            binding: started.binding,
            expires_at: Some(convert::timestamp(started.expires_at)),
        }))
    }

    async fn finish_email_sign_in(
        &self,
        request: Request<v1::FinishEmailSignInRequest>,
    ) -> Result<Response<v1::FinishEmailSignInResponse>, Status> {
        use v1::finish_email_sign_in_request::Proof;
        let client = self.0.clients.resolve(&request);
        let body = request.into_inner();
        let proof = match &body.proof {
            Some(Proof::Token(token)) => SignInProof::Link(token),
            Some(Proof::Code(code)) => SignInProof::Code(code),
            None => return Err(to_status(keyport_core::Error::EmailTokenInvalid)),
        };
        let signed_in = self.0.accounts.finish_email_sign_in(&body.binding, proof, &client).await.map_err(to_status)?;
        let response = match signed_in.signed_in {
            SignedIn::Session(grant) => v1::FinishEmailSignInResponse {
                user: Some(convert::user(&grant.user)),
                session: Some(convert::grant(grant)),
                new_user: signed_in.new_user,
                challenge: None,
            },
            SignedIn::Challenge(challenge) => v1::FinishEmailSignInResponse {
                challenge: Some(convert::challenge(challenge)),
                ..v1::FinishEmailSignInResponse::default()
            },
        };
        Ok(Response::new(response))
    }

    async fn get_session(
        &self,
        request: Request<v1::GetSessionRequest>,
    ) -> Result<Response<v1::GetSessionResponse>, Status> {
        let principal = self.0.accounts.authenticate(&request.get_ref().token).await.map_err(to_status)?;
        Ok(Response::new(v1::GetSessionResponse {
            session: Some(convert::session(&principal.session, true)),
            user: Some(convert::user(&principal.user)),
            refreshed: principal.refreshed,
            cache_ttl: prost_types::Duration::try_from(principal.cache_ttl).ok(),
        }))
    }

    async fn issue_access_token(
        &self,
        request: Request<v1::IssueAccessTokenRequest>,
    ) -> Result<Response<v1::IssueAccessTokenResponse>, Status> {
        let body = request.get_ref();
        let issued = self.0.accounts.issue_access_token(&body.token, &body.audience).await.map_err(to_status)?;
        Ok(Response::new(v1::IssueAccessTokenResponse {
            access_token: issued.token,
            expires_at: Some(convert::timestamp(issued.expires_at)),
        }))
    }

    async fn get_jwks(&self, _request: Request<v1::GetJwksRequest>) -> Result<Response<v1::GetJwksResponse>, Status> {
        let jwks = self.0.accounts.jwks().await.map_err(to_status)?;
        Ok(Response::new(v1::GetJwksResponse {
            jwks: jwks.json,
            max_age: prost_types::Duration::try_from(jwks.max_age).ok(),
        }))
    }

    async fn list_sessions(
        &self,
        request: Request<v1::ListSessionsRequest>,
    ) -> Result<Response<v1::ListSessionsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let sessions = self.0.accounts.list_sessions(&caller).await.map_err(to_status)?;
        Ok(Response::new(v1::ListSessionsResponse {
            sessions: sessions.iter().map(|s| convert::session(s, s.id == caller.session.id)).collect(),
        }))
    }

    async fn revoke_session(
        &self,
        request: Request<v1::RevokeSessionRequest>,
    ) -> Result<Response<v1::RevokeSessionResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        self.0.accounts.revoke_session(&caller, &request.get_ref().session_id, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::RevokeSessionResponse {}))
    }

    async fn revoke_other_sessions(
        &self,
        request: Request<v1::RevokeOtherSessionsRequest>,
    ) -> Result<Response<v1::RevokeOtherSessionsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let revoked = self.0.accounts.revoke_other_sessions(&caller, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::RevokeOtherSessionsResponse {
            revoked_sessions: u32::try_from(revoked).unwrap_or(u32::MAX),
        }))
    }

    async fn sign_out(&self, request: Request<v1::SignOutRequest>) -> Result<Response<v1::SignOutResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        self.0.accounts.sign_out(&caller, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::SignOutResponse {}))
    }
}
