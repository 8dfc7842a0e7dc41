//! `keyport.v1.OrganizationService`.

use keyport_proto::v1::{self, organization_service_server::OrganizationService};
use tonic::{Request, Response, Status};

use super::Shared;
use crate::{convert, status::to_status};

/// Implements `OrganizationService` over [`Shared`].
#[derive(Clone)]
pub struct OrganizationApi(pub Shared);

#[tonic::async_trait]
impl OrganizationService for OrganizationApi {
    async fn create_organization(
        &self,
        request: Request<v1::CreateOrganizationRequest>,
    ) -> Result<Response<v1::CreateOrganizationResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.get_ref();
        let created =
            self.0.accounts.create_organization(&caller, &body.name, &body.slug, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::CreateOrganizationResponse { organization: Some(convert::organization(&created)) }))
    }

    async fn list_my_organizations(
        &self,
        request: Request<v1::ListMyOrganizationsRequest>,
    ) -> Result<Response<v1::ListMyOrganizationsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let memberships = self.0.accounts.list_my_organizations(&caller).await.map_err(to_status)?;
        Ok(Response::new(v1::ListMyOrganizationsResponse {
            memberships: memberships.iter().map(|membership| convert::membership(membership, true)).collect(),
        }))
    }

    async fn rename_organization(
        &self,
        request: Request<v1::RenameOrganizationRequest>,
    ) -> Result<Response<v1::RenameOrganizationResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.get_ref();
        let renamed = self
            .0
            .accounts
            .rename_organization(&caller, &body.organization_id, &body.name, &client)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::RenameOrganizationResponse { organization: Some(convert::organization(&renamed)) }))
    }

    async fn delete_organization(
        &self,
        request: Request<v1::DeleteOrganizationRequest>,
    ) -> Result<Response<v1::DeleteOrganizationResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let id = &request.get_ref().organization_id;
        self.0.accounts.delete_organization(&caller, id, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::DeleteOrganizationResponse {}))
    }

    async fn list_members(
        &self,
        request: Request<v1::ListMembersRequest>,
    ) -> Result<Response<v1::ListMembersResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let members =
            self.0.accounts.list_members(&caller, &request.get_ref().organization_id).await.map_err(to_status)?;
        Ok(Response::new(v1::ListMembersResponse {
            members: members.iter().map(|member| convert::membership(member, false)).collect(),
        }))
    }

    async fn set_member_role(
        &self,
        request: Request<v1::SetMemberRoleRequest>,
    ) -> Result<Response<v1::SetMemberRoleResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.get_ref();
        let member = self
            .0
            .accounts
            .set_member_role(&caller, &body.organization_id, &body.user_id, &body.role, &client)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::SetMemberRoleResponse { member: Some(convert::membership(&member, false)) }))
    }

    async fn remove_member(
        &self,
        request: Request<v1::RemoveMemberRequest>,
    ) -> Result<Response<v1::RemoveMemberResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.get_ref();
        self.0
            .accounts
            .remove_member(&caller, &body.organization_id, &body.user_id, &client)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::RemoveMemberResponse {}))
    }

    async fn leave_organization(
        &self,
        request: Request<v1::LeaveOrganizationRequest>,
    ) -> Result<Response<v1::LeaveOrganizationResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let id = &request.get_ref().organization_id;
        self.0.accounts.leave_organization(&caller, id, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::LeaveOrganizationResponse {}))
    }

    async fn transfer_ownership(
        &self,
        request: Request<v1::TransferOwnershipRequest>,
    ) -> Result<Response<v1::TransferOwnershipResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.get_ref();
        self.0
            .accounts
            .transfer_ownership(&caller, &body.organization_id, &body.user_id, &client)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::TransferOwnershipResponse {}))
    }

    async fn create_invitation(
        &self,
        request: Request<v1::CreateInvitationRequest>,
    ) -> Result<Response<v1::CreateInvitationResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.get_ref();
        let invitation = self
            .0
            .accounts
            .create_invitation(&caller, &body.organization_id, &body.email, &body.role, &client)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::CreateInvitationResponse { invitation: Some(convert::invitation(&invitation)) }))
    }

    async fn list_invitations(
        &self,
        request: Request<v1::ListInvitationsRequest>,
    ) -> Result<Response<v1::ListInvitationsResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let invitations =
            self.0.accounts.list_invitations(&caller, &request.get_ref().organization_id).await.map_err(to_status)?;
        Ok(Response::new(v1::ListInvitationsResponse {
            invitations: invitations.iter().map(convert::invitation).collect(),
        }))
    }

    async fn revoke_invitation(
        &self,
        request: Request<v1::RevokeInvitationRequest>,
    ) -> Result<Response<v1::RevokeInvitationResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let body = request.get_ref();
        self.0
            .accounts
            .revoke_invitation(&caller, &body.organization_id, &body.invitation_id, &client)
            .await
            .map_err(to_status)?;
        Ok(Response::new(v1::RevokeInvitationResponse {}))
    }

    async fn accept_invitation(
        &self,
        request: Request<v1::AcceptInvitationRequest>,
    ) -> Result<Response<v1::AcceptInvitationResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let client = self.0.clients.resolve(&request);
        let id = &request.get_ref().invitation_id;
        let membership = self.0.accounts.accept_invitation(&caller, id, &client).await.map_err(to_status)?;
        Ok(Response::new(v1::AcceptInvitationResponse { membership: Some(convert::membership(&membership, true)) }))
    }

    async fn set_active_organization(
        &self,
        request: Request<v1::SetActiveOrganizationRequest>,
    ) -> Result<Response<v1::SetActiveOrganizationResponse>, Status> {
        let caller = self.0.caller(&request).await?;
        let id = &request.get_ref().organization_id;
        self.0.accounts.set_active_organization(&caller, id).await.map_err(to_status)?;
        Ok(Response::new(v1::SetActiveOrganizationResponse {}))
    }
}
