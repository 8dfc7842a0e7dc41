//! `keyport.v1.OAuthService`.

use keyport_core::oauth::{Callback, OAuthOutcome};
use keyport_proto::v1::{self, o_auth_service_server::OAuthService};
use tonic::{Request, Response, Status};

use super::Shared;
use crate::{caller::bearer_token, convert, status::to_status};

/// Implements `OAuthService` over [`Shared`].
#[derive(Clone)]
pub struct OAuthApi(pub Shared);

#[tonic::async_trait]
impl OAuthService for OAuthApi {
    async fn list_providers(
        &self,
        _request: Request<v1::ListProvidersRequest>,
    ) -> Result<Response<v1::ListProvidersResponse>, Status> {
        let providers = self.0.accounts.oauth_providers().into_iter().map(convert::provider).collect();
        Ok(Response::new(v1::ListProvidersResponse { providers }))
    }

    async fn start_o_auth(
        &self,
        request: Request<v1::StartOAuthRequest>,
    ) -> Result<Response<v1::StartOAuthResponse>, Status> {
        let client = self.0.clients.resolve(&request);
        // Only a link needs (and checks) a session; a sign-in ignores one.
        let link_to = if request.get_ref().link {
            let token = bearer_token(request.metadata()).map_err(to_status)?;
            Some(self.0.accounts.authenticate(token).await.map_err(to_status)?)
        } else {
            None
        };
        let body = request.get_ref();
        let started = self
            .0
            .accounts
            .start_oauth(&body.provider_id, &body.redirect_uri, link_to.as_ref(), &client)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::StartOAuthResponse {
            authorization_url: started.authorization_url,
            state: started.state,
            binding: started.binding,
            expires_at: Some(convert::timestamp(started.expires_at)),
        }))
    }

    async fn finish_o_auth(
        &self,
        request: Request<v1::FinishOAuthRequest>,
    ) -> Result<Response<v1::FinishOAuthResponse>, Status> {
        let client = self.0.clients.resolve(&request);
        let body = request.into_inner();
        let callback = Callback {
            state: body.state,
            code: body.code,
            redirect_uri: body.redirect_uri,
            binding: body.binding,
            error: body.error,
        };
        let outcome = self.0.accounts.finish_oauth(&callback, &client).await.map_err(to_status)?;
        let response = match outcome {
            OAuthOutcome::SignedIn { grant, new_user } => v1::FinishOAuthResponse {
                outcome: Some(v1::finish_o_auth_response::Outcome::Session(convert::grant(grant))),
                new_user,
            },
            OAuthOutcome::Challenged(challenge) => v1::FinishOAuthResponse {
                outcome: Some(v1::finish_o_auth_response::Outcome::Challenge(convert::challenge(challenge))),
                new_user: false,
            },
            OAuthOutcome::Linked(account) => v1::FinishOAuthResponse {
                outcome: Some(v1::finish_o_auth_response::Outcome::Linked(convert::linked_account(&account))),
                new_user: false,
            },
        };
        Ok(Response::new(response))
    }

    async fn list_linked_accounts(
        &self,
        request: Request<v1::ListLinkedAccountsRequest>,
    ) -> Result<Response<v1::ListLinkedAccountsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let accounts = self.0.accounts.list_linked_accounts(&caller).await.map_err(to_status)?;
        Ok(Response::new(v1::ListLinkedAccountsResponse {
            accounts: accounts.iter().map(convert::linked_account).collect(),
        }))
    }

    async fn unlink_account(
        &self,
        request: Request<v1::UnlinkAccountRequest>,
    ) -> Result<Response<v1::UnlinkAccountResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.get_ref();
        self.0.accounts.unlink_account(&caller, &body.provider_id, &body.subject, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::UnlinkAccountResponse {}))
    }
}
