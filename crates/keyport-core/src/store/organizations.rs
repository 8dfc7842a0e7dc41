//! Storage of organizations, their memberships and invitations.

use async_trait::async_trait;

use super::StoreResult;
use crate::{
    audit::AuditEvent,
    clock::Timestamp,
    email::Email,
    events::SessionEvent,
    mail::Mail,
    organization::{Invitation, InvitationId, Membership, Organization, OrganizationId},
    token::SessionId,
    user::{User, UserId},
};

/// Why an organization was not created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreateRefusal {
    /// Another organization has the slug.
    SlugTaken,
    /// The owner already owns the most allowed.
    TooMany,
    /// The owner is gone.
    OwnerGone,
}

/// What a change to one member did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    /// Done.
    Changed,
    /// The user is not a member.
    NotMember,
    /// The member is the owner, whom only a transfer changes.
    Owner,
}

/// What accepting an invitation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acceptance {
    /// The user is a member now.
    Joined(Box<Membership>),
    /// No pending, unexpired invitation with this id for this address.
    Invalid,
    /// The user already was a member (the invitation stays).
    AlreadyMember,
}

/// Organizations. A change to a user's memberships emits
/// `UserChanged { change: Organizations }` for that user in its
/// transaction, as the other areas' changes emit theirs; deleting an
/// organization emits one for each of its members.
#[async_trait]
pub trait OrganizationStore: Send + Sync + 'static {
    /// Stores `organization` with `owner` as its owner, unless the slug is
    /// taken or the owner already owns `max_owned` (checked under the
    /// owner's lock).
    async fn insert_organization(
        &self,
        organization: &Organization,
        owner: UserId,
        max_owned: u64,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Result<(), CreateRefusal>>;

    /// The organization `id` and `user`'s role and join time in it, if
    /// `user` is a member.
    async fn find_membership(
        &self,
        id: OrganizationId,
        user: UserId,
    ) -> StoreResult<Option<(Organization, String, Timestamp)>>;

    /// `user`'s memberships (their `user` is the one given), by
    /// organization name.
    async fn list_memberships(&self, user: &User) -> StoreResult<Vec<Membership>>;

    /// The members of `organization`, by email.
    async fn list_members(&self, organization: &Organization) -> StoreResult<Vec<Membership>>;

    /// Renames `id`; false when it does not exist.
    async fn rename_organization(&self, id: OrganizationId, name: &str, audit: &AuditEvent) -> StoreResult<bool>;

    /// Deletes `id` with its memberships and invitations; false when it
    /// does not exist.
    async fn delete_organization(&self, id: OrganizationId, audit: &AuditEvent) -> StoreResult<Option<Vec<UserId>>>;

    /// Gives member `user` of `id` the role `role`, unless they are the
    /// owner.
    async fn set_member_role(
        &self,
        id: OrganizationId,
        user: UserId,
        role: &str,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<MemberChange>;

    /// Removes member `user` of `id`, unless they are the owner; their
    /// sessions active in it are active in none from then on.
    async fn remove_member(
        &self,
        id: OrganizationId,
        user: UserId,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<MemberChange>;

    /// Makes member `to` the owner of `id` and the owner `from` an admin,
    /// in one transaction: false (nothing written) unless `from` is the
    /// owner and `to` a member at that moment.
    async fn transfer_ownership(
        &self,
        id: OrganizationId,
        from: UserId,
        to: UserId,
        audit: &AuditEvent,
        events: &[SessionEvent; 2],
    ) -> StoreResult<bool>;

    /// Stores `invitation`, and queues its `mail` in the same transaction,
    /// unless its organization already has `max_pending` pending ones at
    /// `now`; false then.
    async fn insert_invitation(
        &self,
        invitation: &Invitation,
        mail: Option<&Mail>,
        max_pending: u64,
        now: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;

    /// The pending invitations of `id` at `now`, newest first.
    async fn list_invitations(&self, id: OrganizationId, now: Timestamp) -> StoreResult<Vec<Invitation>>;

    /// Withdraws invitation `invitation` of `id`; false when there is none.
    async fn delete_invitation(
        &self,
        id: OrganizationId,
        invitation: InvitationId,
        audit: &AuditEvent,
    ) -> StoreResult<bool>;

    /// Takes invitation `id` for `user` (whose verified address is
    /// `email`) at `now`, once: the invitation goes and the membership is
    /// made in one transaction, so parallel accepts make exactly one.
    async fn accept_invitation(
        &self,
        id: InvitationId,
        user: &User,
        email: &Email,
        now: Timestamp,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Acceptance>;

    /// Makes `organization` (or none) the active organization of session
    /// `session` of `user`; false when the session is gone.
    async fn set_active_organization(
        &self,
        session: &SessionId,
        user: UserId,
        organization: Option<OrganizationId>,
        event: &SessionEvent,
    ) -> StoreResult<bool>;

    /// Deletes the invitations expired before `before`; how many.
    async fn delete_invitations_expired_before(&self, before: Timestamp) -> StoreResult<u64>;
}
