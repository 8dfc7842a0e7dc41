//! `keyport.v1.AuthorizationService`.

use keyport_core::{accounts::Caller, api_key::KeyHolder};
use keyport_proto::v1::{self, authorization_service_server::AuthorizationService};
use tonic::{Request, Response, Status};

use super::Shared;
use crate::{convert, status::to_status};

/// Implements `AuthorizationService` over [`Shared`].
#[derive(Clone)]
pub struct AuthorizationApi(pub Shared);

#[tonic::async_trait]
impl AuthorizationService for AuthorizationApi {
    async fn authorize(
        &self,
        request: Request<v1::AuthorizeRequest>,
    ) -> Result<Response<v1::AuthorizeResponse>, Status> {
        let body = request.get_ref();
        let decided = self
            .0
            .accounts
            .authorize(&body.token, &body.permissions, &body.organization_id)
            .await
            .map_err(to_status)?;
        let decisions = body
            .permissions
            .iter()
            .zip(&decided.decisions)
            .map(|(permission, allowed)| v1::PermissionDecision { permission: permission.clone(), allowed: *allowed })
            .collect();
        let allowed = decided.allowed();
        let (organization_id, organization_role) = match decided.organization {
            Some((id, role)) => (id.to_string(), role.unwrap_or_default()),
            None => (String::new(), String::new()),
        };
        let mut response = v1::AuthorizeResponse {
            allowed,
            decisions,
            granted: decided.granted,
            organization_id,
            organization_role,
            ..Default::default()
        };
        match decided.caller {
            Caller::Session(principal) => {
                response.session = Some(convert::session(&principal.session, true));
                response.user = Some(convert::user(&principal.user));
                response.refreshed = principal.refreshed;
                response.cache_ttl = prost_types::Duration::try_from(principal.cache_ttl).ok();
            }
            Caller::Key(key) => {
                response.api_key = Some(convert::api_key(&key.key));
                response.cache_ttl = prost_types::Duration::try_from(key.cache_ttl).ok();
                match &key.holder {
                    KeyHolder::User(user) => response.user = Some(convert::user(user)),
                    KeyHolder::ServiceAccount(account) => {
                        response.service_account = Some(convert::service_account(account));
                    }
                }
            }
        }
        Ok(Response::new(response))
    }
}
