//! `keyport.v1.ApiKeyService`.

use std::time::Duration;

use keyport_core::{
    Error,
    accounts::{Keyring, NewApiKey},
};
use keyport_proto::v1::{self, api_key_service_server::ApiKeyService};
use tonic::{Request, Response, Status};

use super::{AdminCaller, Shared};
use crate::{convert, status::to_status};

/// Implements `ApiKeyService` over [`Shared`].
#[derive(Clone)]
pub struct ApiKeyApi(pub Shared);

/// Who a call's keyring belongs to: the caller's own session, or an admin
/// (session or key) acting on a service account.
enum Asker {
    Own(keyport_core::Principal),
    Admin(AdminCaller),
}

impl Asker {
    fn keyring<'a>(&'a self, service_account_id: &'a str) -> Keyring<'a> {
        match self {
            Self::Own(principal) => Keyring::Own(principal),
            Self::Admin(caller) => Keyring::ServiceAccount { admin: caller.admin(), id: service_account_id },
        }
    }
}

impl ApiKeyApi {
    /// A service account's keys are managed by admins (a session or a
    /// key); one's own only with a session.
    async fn asker<T>(&self, request: &Request<T>, service_account_id: &str) -> Result<Asker, Status> {
        if service_account_id.is_empty() {
            Ok(Asker::Own(self.0.caller(request).await?))
        } else {
            Ok(Asker::Admin(self.0.admin_caller(request).await?))
        }
    }
}

/// An optional duration field: unset is `None`; negative or out of range
/// is invalid.
fn duration(field: &'static str, value: Option<&prost_types::Duration>) -> Result<Option<Duration>, Status> {
    value
        .map(|value| {
            Duration::try_from(*value).map_err(|_| to_status(Error::invalid(field, "must be a positive duration")))
        })
        .transpose()
}

#[tonic::async_trait]
impl ApiKeyService for ApiKeyApi {
    async fn create_api_key(
        &self,
        request: Request<v1::CreateApiKeyRequest>,
    ) -> Result<Response<v1::CreateApiKeyResponse>, Status> {
        let asker = self.asker(&request, &request.get_ref().service_account_id).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.into_inner();
        let new = NewApiKey {
            name: body.name,
            scopes: body.scopes,
            expires_in: duration("expires_in", body.expires_in.as_ref())?,
            rate_limit_per_minute: body.rate_limit_per_minute,
        };
        let created = self
            .0
            .accounts
            .create_api_key(asker.keyring(&body.service_account_id), new, &client)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::CreateApiKeyResponse {
            api_key: Some(convert::api_key(&created.key)),
            secret: created.secret,
        }))
    }

    async fn list_api_keys(
        &self,
        request: Request<v1::ListApiKeysRequest>,
    ) -> Result<Response<v1::ListApiKeysResponse>, Status> {
        let id = &request.get_ref().service_account_id;
        let asker = self.asker(&request, id).await?;
        let keys = self.0.accounts.list_api_keys(asker.keyring(id)).await.map_err(to_status)?;
        Ok(Response::new(v1::ListApiKeysResponse { api_keys: keys.iter().map(convert::api_key).collect() }))
    }

    async fn revoke_api_key(
        &self,
        request: Request<v1::RevokeApiKeyRequest>,
    ) -> Result<Response<v1::RevokeApiKeyResponse>, Status> {
        let body = request.get_ref();
        let asker = self.asker(&request, &body.service_account_id).await?;
        let client = self.0.clients.resolve(&request);
        self.0
            .accounts
            .revoke_api_key(asker.keyring(&body.service_account_id), &body.api_key_id, &client)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::RevokeApiKeyResponse {}))
    }

    async fn rotate_api_key(
        &self,
        request: Request<v1::RotateApiKeyRequest>,
    ) -> Result<Response<v1::RotateApiKeyResponse>, Status> {
        let body = request.get_ref();
        let asker = self.asker(&request, &body.service_account_id).await?;
        let client = self.0.clients.resolve(&request);
        let grace = duration("grace", body.grace.as_ref())?.unwrap_or_default();
        let (created, replaced) = self
            .0
            .accounts
            .rotate_api_key(asker.keyring(&body.service_account_id), &body.api_key_id, grace, &client)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::RotateApiKeyResponse {
            api_key: Some(convert::api_key(&created.key)),
            secret: created.secret,
            replaced: Some(convert::api_key(&replaced)),
        }))
    }
}
