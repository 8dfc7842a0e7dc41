//! `keyport.v1.AdminService`.

use keyport_proto::v1::{self, admin_service_server::AdminService};
use tonic::{Request, Response, Status};

use super::Shared;
use crate::{convert, status::to_status};

/// Implements `AdminService` over [`Shared`].
#[derive(Clone)]
pub struct AdminApi(pub Shared);

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn set_user_roles(
        &self,
        request: Request<v1::SetUserRolesRequest>,
    ) -> Result<Response<v1::SetUserRolesResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.get_ref();
        let user =
            self.0.accounts.set_user_roles(&caller, &body.user_id, &body.roles, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::SetUserRolesResponse { user: Some(convert::user(&user)) }))
    }
}
