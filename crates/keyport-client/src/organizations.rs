//! Organizations ([`KeyportClient`] methods over
//! `keyport.v1.OrganizationService`): a signed-in user's organizations,
//! their members and invitations, and the session's active organization.
//! Deciding in one is [`KeyportClient::authorize_in`] (or the middleware's
//! organization rules).

use std::time::SystemTime;

use keyport_proto::v1::{self, organization_service_client::OrganizationServiceClient};
use tonic::Status;

use crate::{
    client::{ClientInfo, KeyportClient},
    error::Error,
    principal::system_time,
};

/// An organization, with the caller's or a member's role in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrganizationInfo {
    /// Its id.
    pub id: String,
    /// Its display name.
    pub name: String,
    /// Its unique handle.
    pub slug: String,
    /// The caller's role in it (`owner`, `admin`, `member` or a custom one).
    pub role: String,
}

/// A member of an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The member's user id.
    pub user_id: String,
    /// Their email.
    pub email: String,
    /// Their display name.
    pub name: String,
    /// Their role in the organization.
    pub role: String,
}

/// A pending invitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvitationInfo {
    /// Its id: what [`KeyportClient::accept_invitation`] takes.
    pub id: String,
    /// The invited address.
    pub email: String,
    /// The role it gives.
    pub role: String,
    /// When it stops working.
    pub expires_at: SystemTime,
}

impl KeyportClient {
    /// Creates an organization owned by `token`'s user.
    pub async fn create_organization(
        &self,
        token: &str,
        name: &str,
        slug: &str,
        client: &ClientInfo,
    ) -> Result<OrganizationInfo, Error> {
        let message = v1::CreateOrganizationRequest { name: name.to_owned(), slug: slug.to_owned() };
        let response = self
            .once(|channel| {
                let request = self.request(message.clone(), Some(token), client);
                async move { OrganizationServiceClient::new(channel).create_organization(request).await }
            })
            .await?;
        let created = response.organization.ok_or_else(|| Error::from(Status::internal("no organization")))?;
        Ok(organization(created, "owner".to_owned()))
    }

    /// The organizations of `token`'s user, by name, with their role in each.
    pub async fn list_my_organizations(
        &self,
        token: &str,
        client: &ClientInfo,
    ) -> Result<Vec<OrganizationInfo>, Error> {
        let response = self
            .idempotent(|channel| {
                let request = self.request(v1::ListMyOrganizationsRequest {}, Some(token), client);
                async move { OrganizationServiceClient::new(channel).list_my_organizations(request).await }
            })
            .await?;
        Ok(response
            .memberships
            .into_iter()
            .filter_map(|membership| Some(organization(membership.organization?, membership.role)))
            .collect())
    }

    /// The members of an organization of `token`'s user, by email.
    pub async fn list_members(
        &self,
        token: &str,
        organization_id: &str,
        client: &ClientInfo,
    ) -> Result<Vec<Member>, Error> {
        let message = v1::ListMembersRequest { organization_id: organization_id.to_owned() };
        let response = self
            .idempotent(|channel| {
                let request = self.request(message.clone(), Some(token), client);
                async move { OrganizationServiceClient::new(channel).list_members(request).await }
            })
            .await?;
        Ok(response
            .members
            .into_iter()
            .filter_map(|member| {
                let user = member.user?;
                Some(Member { user_id: user.id, email: user.email, name: user.name, role: member.role })
            })
            .collect())
    }

    /// Invites `email` to an organization with `role` (owner or admin only).
    pub async fn create_invitation(
        &self,
        token: &str,
        organization_id: &str,
        email: &str,
        role: &str,
        client: &ClientInfo,
    ) -> Result<InvitationInfo, Error> {
        let message = v1::CreateInvitationRequest {
            organization_id: organization_id.to_owned(),
            email: email.to_owned(),
            role: role.to_owned(),
        };
        let response = self
            .once(|channel| {
                let request = self.request(message.clone(), Some(token), client);
                async move { OrganizationServiceClient::new(channel).create_invitation(request).await }
            })
            .await?;
        let made = response.invitation.ok_or_else(|| Error::from(Status::internal("no invitation")))?;
        Ok(invitation(made))
    }

    /// The pending invitations of an organization (owner or admin only).
    pub async fn list_invitations(
        &self,
        token: &str,
        organization_id: &str,
        client: &ClientInfo,
    ) -> Result<Vec<InvitationInfo>, Error> {
        let message = v1::ListInvitationsRequest { organization_id: organization_id.to_owned() };
        let response = self
            .idempotent(|channel| {
                let request = self.request(message.clone(), Some(token), client);
                async move { OrganizationServiceClient::new(channel).list_invitations(request).await }
            })
            .await?;
        Ok(response.invitations.into_iter().map(invitation).collect())
    }

    /// Accepts an invitation for `token`'s user, whose verified email must
    /// be the invited address.
    pub async fn accept_invitation(
        &self,
        token: &str,
        id: &str,
        client: &ClientInfo,
    ) -> Result<OrganizationInfo, Error> {
        let message = v1::AcceptInvitationRequest { invitation_id: id.to_owned() };
        let response = self
            .once(|channel| {
                let request = self.request(message.clone(), Some(token), client);
                async move { OrganizationServiceClient::new(channel).accept_invitation(request).await }
            })
            .await?;
        let membership = response.membership.ok_or_else(|| Error::from(Status::internal("no membership")))?;
        let joined = membership.organization.ok_or_else(|| Error::from(Status::internal("no organization")))?;
        Ok(organization(joined, membership.role))
    }

    /// Makes `organization_id` (empty: none) the active organization of
    /// `token`'s session.
    pub async fn set_active_organization(
        &self,
        token: &str,
        organization_id: &str,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let message = v1::SetActiveOrganizationRequest { organization_id: organization_id.to_owned() };
        self.idempotent(|channel| {
            let request = self.request(message.clone(), Some(token), client);
            async move { OrganizationServiceClient::new(channel).set_active_organization(request).await }
        })
        .await?;
        Ok(())
    }

    /// Removes a member (owner, or admin for plain members).
    pub async fn remove_member(
        &self,
        token: &str,
        organization_id: &str,
        user_id: &str,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let message =
            v1::RemoveMemberRequest { organization_id: organization_id.to_owned(), user_id: user_id.to_owned() };
        self.once(|channel| {
            let request = self.request(message.clone(), Some(token), client);
            async move { OrganizationServiceClient::new(channel).remove_member(request).await }
        })
        .await?;
        Ok(())
    }
}

fn organization(organization: v1::Organization, role: String) -> OrganizationInfo {
    OrganizationInfo { id: organization.id, name: organization.name, slug: organization.slug, role }
}

fn invitation(invitation: v1::Invitation) -> InvitationInfo {
    InvitationInfo {
        id: invitation.id,
        email: invitation.email,
        role: invitation.role,
        expires_at: system_time(invitation.expires_at.as_ref()),
    }
}
