//! `keyport.v1.PasskeyService`.

use keyport_proto::v1::{self, passkey_service_server::PasskeyService};
use tonic::{Request, Response, Status};

use super::Shared;
use crate::{convert, status::to_status};

/// Implements `PasskeyService` over [`Shared`].
#[derive(Clone)]
pub struct PasskeyApi(pub Shared);

#[tonic::async_trait]
impl PasskeyService for PasskeyApi {
    async fn start_passkey_registration(
        &self,
        request: Request<v1::StartPasskeyRegistrationRequest>,
    ) -> Result<Response<v1::StartPasskeyRegistrationResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let started = self.0.accounts.start_passkey_registration(&caller).await.map_err(to_status)?;
        Ok(Response::new(v1::StartPasskeyRegistrationResponse {
            ceremony: started.ceremony,
            options: started.options,
            expires_at: Some(convert::timestamp(started.expires_at)),
        }))
    }

    async fn finish_passkey_registration(
        &self,
        request: Request<v1::FinishPasskeyRegistrationRequest>,
    ) -> Result<Response<v1::FinishPasskeyRegistrationResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.get_ref();
        let (passkey, session) = self
            .0
            .accounts
            .finish_passkey_registration(&caller, &body.ceremony, &body.credential, &body.name, &client)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::FinishPasskeyRegistrationResponse {
            passkey: Some(convert::passkey(&passkey)),
            session: Some(convert::session(&session, true)),
        }))
    }

    async fn list_passkeys(
        &self,
        request: Request<v1::ListPasskeysRequest>,
    ) -> Result<Response<v1::ListPasskeysResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let passkeys = self.0.accounts.list_passkeys(&caller).await.map_err(to_status)?;
        Ok(Response::new(v1::ListPasskeysResponse { passkeys: passkeys.iter().map(convert::passkey).collect() }))
    }

    async fn rename_passkey(
        &self,
        request: Request<v1::RenamePasskeyRequest>,
    ) -> Result<Response<v1::RenamePasskeyResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.get_ref();
        let renamed =
            self.0.accounts.rename_passkey(&caller, &body.id, &body.name, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::RenamePasskeyResponse { passkey: Some(convert::passkey(&renamed)) }))
    }

    async fn delete_passkey(
        &self,
        request: Request<v1::DeletePasskeyRequest>,
    ) -> Result<Response<v1::DeletePasskeyResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let ended = self.0.accounts.delete_passkey(&caller, &request.get_ref().id, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::DeletePasskeyResponse { revoked_sessions: u32::try_from(ended).unwrap_or(u32::MAX) }))
    }
}
