//! `keyport.v1.AuthorizationService`.

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
        Ok(Response::new(v1::AuthorizeResponse {
            allowed: decided.allowed(),
            decisions,
            session: Some(convert::session(&decided.principal.session, true)),
            user: Some(convert::user(&decided.principal.user)),
            granted: decided.granted,
            refreshed: decided.principal.refreshed,
            cache_ttl: prost_types::Duration::try_from(decided.principal.cache_ttl).ok(),
        }))
    }
}
