//! `keyport.v1.AdminService`.

use keyport_core::accounts::{AuditFilter, NewUser, UserFilter};
use keyport_proto::v1::{self, admin_service_server::AdminService};
use tonic::{Request, Response, Status};

use super::Shared;
use crate::{convert, status::to_status};

/// Implements `AdminService` over [`Shared`].
#[derive(Clone)]
pub struct AdminApi(pub Shared);

impl AdminApi {
    fn managed(&self, user: &keyport_core::user::User) -> v1::ManagedUser {
        convert::managed_user(user, self.0.accounts.now())
    }
}

#[tonic::async_trait]
impl AdminService for AdminApi {
    async fn list_users(
        &self,
        request: Request<v1::ListUsersRequest>,
    ) -> Result<Response<v1::ListUsersResponse>, Status> {
        let caller = self.0.admin_caller(&request).await?;
        let body = request.get_ref();
        let filter = user_filter(body).map_err(to_status)?;
        // A negative size is out of range like one over the maximum.
        let page_size = u32::try_from(body.page_size).unwrap_or(u32::MAX);
        let page =
            self.0.accounts.list_users(caller.admin(), filter, page_size, &body.page_token).await.map_err(to_status)?;
        Ok(Response::new(v1::ListUsersResponse {
            users: page.users.iter().map(|user| self.managed(user)).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn get_user(&self, request: Request<v1::GetUserRequest>) -> Result<Response<v1::GetUserResponse>, Status> {
        let caller = self.0.admin_caller(&request).await?;
        let details = self.0.accounts.get_user(caller.admin(), &request.get_ref().user_id).await.map_err(to_status)?;
        Ok(Response::new(v1::GetUserResponse {
            user: Some(self.managed(&details.user)),
            sessions: details.sessions.iter().map(|session| convert::session(session, false)).collect(),
            linked_accounts: details.linked_accounts.iter().map(convert::linked_account).collect(),
        }))
    }

    async fn list_roles(
        &self,
        request: Request<v1::ListRolesRequest>,
    ) -> Result<Response<v1::ListRolesResponse>, Status> {
        let caller = self.0.admin_caller(&request).await?;
        let roles = self.0.accounts.list_roles(caller.admin()).await.map_err(to_status)?;
        Ok(Response::new(v1::ListRolesResponse { roles: roles.into_iter().map(convert::role).collect() }))
    }

    async fn put_role(&self, request: Request<v1::PutRoleRequest>) -> Result<Response<v1::PutRoleResponse>, Status> {
        let caller = self.0.admin_caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.get_ref();
        let role =
            self.0.accounts.put_role(caller.admin(), &body.name, &body.grants, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::PutRoleResponse { role: Some(convert::role(role)) }))
    }

    async fn delete_role(
        &self,
        request: Request<v1::DeleteRoleRequest>,
    ) -> Result<Response<v1::DeleteRoleResponse>, Status> {
        let caller = self.0.admin_caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        self.0.accounts.delete_role(caller.admin(), &request.get_ref().name, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::DeleteRoleResponse {}))
    }

    async fn create_user(
        &self,
        request: Request<v1::CreateUserRequest>,
    ) -> Result<Response<v1::CreateUserResponse>, Status> {
        let caller = self.0.admin_caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.into_inner();
        let new = NewUser {
            email: body.email,
            name: body.name,
            password: Some(body.password).filter(|password| !password.is_empty()),
            email_verified: body.email_verified,
            roles: body.roles,
        };
        let user = self.0.accounts.create_user(caller.admin(), new, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::CreateUserResponse { user: Some(self.managed(&user)) }))
    }

    async fn set_user_roles(
        &self,
        request: Request<v1::SetUserRolesRequest>,
    ) -> Result<Response<v1::SetUserRolesResponse>, Status> {
        let caller = self.0.admin_caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.get_ref();
        let user = self
            .0
            .accounts
            .set_user_roles(caller.admin(), &body.user_id, &body.roles, &client)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::SetUserRolesResponse { user: Some(convert::user(&user)) }))
    }

    async fn ban_user(&self, request: Request<v1::BanUserRequest>) -> Result<Response<v1::BanUserResponse>, Status> {
        let caller = self.0.admin_caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.get_ref();
        let expires_at =
            body.expires_at.as_ref().map(|at| convert::instant("expires_at", at)).transpose().map_err(to_status)?;
        let user = self
            .0
            .accounts
            .ban_user(caller.admin(), &body.user_id, &body.reason, expires_at, &client)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::BanUserResponse { user: Some(self.managed(&user)) }))
    }

    async fn unban_user(
        &self,
        request: Request<v1::UnbanUserRequest>,
    ) -> Result<Response<v1::UnbanUserResponse>, Status> {
        let caller = self.0.admin_caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let user =
            self.0.accounts.unban_user(caller.admin(), &request.get_ref().user_id, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::UnbanUserResponse { user: Some(self.managed(&user)) }))
    }

    async fn revoke_user_sessions(
        &self,
        request: Request<v1::RevokeUserSessionsRequest>,
    ) -> Result<Response<v1::RevokeUserSessionsResponse>, Status> {
        let caller = self.0.admin_caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let revoked = self
            .0
            .accounts
            .revoke_user_sessions(caller.admin(), &request.get_ref().user_id, &client)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::RevokeUserSessionsResponse { revoked: u32::try_from(revoked).unwrap_or(u32::MAX) }))
    }

    async fn impersonate_user(
        &self,
        request: Request<v1::ImpersonateUserRequest>,
    ) -> Result<Response<v1::ImpersonateUserResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let grant =
            self.0.accounts.impersonate(&caller, &request.get_ref().user_id, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::ImpersonateUserResponse { session: Some(convert::grant(grant)) }))
    }

    async fn list_audit_events(
        &self,
        request: Request<v1::ListAuditEventsRequest>,
    ) -> Result<Response<v1::ListAuditEventsResponse>, Status> {
        let caller = self.0.admin_caller(&request).await?;
        let body = request.into_inner();
        let instant = |field, at: Option<prost_types::Timestamp>| {
            at.as_ref().map(|at| convert::instant(field, at)).transpose().map_err(to_status)
        };
        let filter = AuditFilter {
            user_id: body.user_id,
            kind: body.kind,
            after: instant("after", body.after)?,
            before: instant("before", body.before)?,
        };
        let page_size = u32::try_from(body.page_size).unwrap_or(u32::MAX);
        let page = self
            .0
            .accounts
            .list_audit_events(caller.admin(), filter, page_size, &body.page_token)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::ListAuditEventsResponse {
            events: page.events.into_iter().map(convert::audit_event).collect(),
            next_page_token: page.next_page_token.unwrap_or_default(),
        }))
    }

    async fn delete_user(
        &self,
        request: Request<v1::DeleteUserRequest>,
    ) -> Result<Response<v1::DeleteUserResponse>, Status> {
        let caller = self.0.admin_caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        self.0.accounts.delete_user(caller.admin(), &request.get_ref().user_id, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::DeleteUserResponse {}))
    }

    async fn create_service_account(
        &self,
        request: Request<v1::CreateServiceAccountRequest>,
    ) -> Result<Response<v1::CreateServiceAccountResponse>, Status> {
        let caller = self.0.admin_caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.get_ref();
        let account = self
            .0
            .accounts
            .create_service_account(caller.admin(), &body.name, &body.description, &body.roles, &client)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::CreateServiceAccountResponse {
            service_account: Some(convert::service_account(&account)),
        }))
    }

    async fn list_service_accounts(
        &self,
        request: Request<v1::ListServiceAccountsRequest>,
    ) -> Result<Response<v1::ListServiceAccountsResponse>, Status> {
        let caller = self.0.admin_caller(&request).await?;
        let accounts = self.0.accounts.list_service_accounts(caller.admin()).await.map_err(to_status)?;
        Ok(Response::new(v1::ListServiceAccountsResponse {
            service_accounts: accounts.iter().map(convert::service_account).collect(),
        }))
    }

    async fn set_service_account_roles(
        &self,
        request: Request<v1::SetServiceAccountRolesRequest>,
    ) -> Result<Response<v1::SetServiceAccountRolesResponse>, Status> {
        let caller = self.0.admin_caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.get_ref();
        let account = self
            .0
            .accounts
            .set_service_account_roles(caller.admin(), &body.service_account_id, &body.roles, &client)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::SetServiceAccountRolesResponse {
            service_account: Some(convert::service_account(&account)),
        }))
    }

    async fn delete_service_account(
        &self,
        request: Request<v1::DeleteServiceAccountRequest>,
    ) -> Result<Response<v1::DeleteServiceAccountResponse>, Status> {
        let caller = self.0.admin_caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let revoked = self
            .0
            .accounts
            .delete_service_account(caller.admin(), &request.get_ref().service_account_id, &client)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::DeleteServiceAccountResponse {
            api_keys_revoked: u32::try_from(revoked).unwrap_or(u32::MAX),
        }))
    }
}

/// The filters of a `ListUsers` request.
fn user_filter(body: &v1::ListUsersRequest) -> Result<UserFilter, keyport_core::Error> {
    let banned = match v1::BanFilter::try_from(body.ban) {
        Ok(v1::BanFilter::Unspecified) => None,
        Ok(v1::BanFilter::Banned) => Some(true),
        Ok(v1::BanFilter::NotBanned) => Some(false),
        Err(_) => return Err(keyport_core::Error::invalid("ban", "not a BanFilter value")),
    };
    Ok(UserFilter {
        email_prefix: body.email_prefix.clone(),
        created_after: body.created_after.as_ref().map(|at| convert::instant("created_after", at)).transpose()?,
        created_before: body.created_before.as_ref().map(|at| convert::instant("created_before", at)).transpose()?,
        role: body.role.clone(),
        banned,
    })
}
