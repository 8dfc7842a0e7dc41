//! Organizations: created by any user (who becomes the owner), managed by
//! their owner and admins, joined by invitation, left by members.
//!
//! An organization the caller is not a member of answers
//! [`Error::OrganizationNotFound`], exactly as an unknown one. The one
//! owner changes only by a transfer, which the store makes atomic; every
//! change to a user's memberships publishes `UserChanged { Organizations }`
//! for that user.

use super::{Accounts, user_changed};
use crate::{
    audit::{AuditEvent, AuditKind},
    email::Email,
    error::{Error, Result},
    events::{SessionEvent, UserChange},
    mail::{MailKind, templates::MailContext},
    organization::{
        ADMIN, Invitation, InvitationId, MEMBER, Membership, OWNER, Organization, OrganizationId, manages,
        parse_organization_name, parse_slug,
    },
    session::{ClientInfo, Principal},
    store::{Acceptance, CreateRefusal, MemberChange, OrganizationStore},
    user::UserId,
};

/// The caller's place in an organization, checked.
struct Seat {
    organization: Organization,
    role: String,
}

impl Accounts {
    /// Creates an organization owned by the caller.
    pub async fn create_organization(
        &self,
        caller: &Principal,
        name: &str,
        slug: &str,
        client: &ClientInfo,
    ) -> Result<Organization> {
        self.refuse_impersonated(caller)?;
        let (name, slug) = super::collect_violations(parse_organization_name(name), parse_slug(slug))?;
        let now = self.clock.now();
        let organization = Organization { id: OrganizationId::generate(now), name, slug, created_at: now };
        let audit = self.member_audit(caller, AuditKind::OrganizationCreated, client, &organization, "");
        let event = user_changed(caller.user.id, UserChange::Organizations);
        let (stored, owner, max) = (organization.clone(), caller.user.id, self.config.organizations.max_owned);
        let refused = self
            .write_and_publish(event, move |accounts, event| async move {
                let store = accounts.organization_store();
                Ok(Created(store.insert_organization(&stored, owner, max, &audit, &event).await?))
            })
            .await?;
        match refused.0 {
            Ok(()) => Ok(organization),
            Err(CreateRefusal::SlugTaken) => Err(Error::SlugTaken),
            Err(CreateRefusal::TooMany) => {
                Err(Error::invalid("organization", "you own the most organizations allowed"))
            }
            Err(CreateRefusal::OwnerGone) => Err(Error::Unauthenticated),
        }
    }

    /// The caller's memberships, by organization name.
    pub async fn list_my_organizations(&self, caller: &Principal) -> Result<Vec<Membership>> {
        Ok(self.organization_store().list_memberships(&caller.user).await?)
    }

    /// Renames an organization, for its owner or an admin.
    pub async fn rename_organization(
        &self,
        caller: &Principal,
        id: &str,
        name: &str,
        client: &ClientInfo,
    ) -> Result<Organization> {
        let seat = self.managing(caller, id).await?;
        let name = parse_organization_name(name)?;
        let audit = self.member_audit(caller, AuditKind::OrganizationRenamed, client, &seat.organization, &name);
        if !self.organization_store().rename_organization(seat.organization.id, &name, &audit).await? {
            return Err(Error::OrganizationNotFound);
        }
        Ok(Organization { name, ..seat.organization })
    }

    /// Deletes an organization, for its owner; every member's decisions drop.
    pub async fn delete_organization(&self, caller: &Principal, id: &str, client: &ClientInfo) -> Result<()> {
        let seat = self.seat(caller, id).await?;
        if seat.role != OWNER {
            return Err(Error::PermissionDenied);
        }
        let audit = self.member_audit(caller, AuditKind::OrganizationDeleted, client, &seat.organization, "");
        let accounts = self.clone();
        let members = self
            .to_completion(async move {
                Ok(accounts.organization_store().delete_organization(seat.organization.id, &audit).await?)
            })
            .await?
            .ok_or(Error::OrganizationNotFound)?;
        for member in members {
            self.publish(user_changed(member, UserChange::Organizations));
        }
        Ok(())
    }

    /// The members of an organization, for a member.
    pub async fn list_members(&self, caller: &Principal, id: &str) -> Result<Vec<Membership>> {
        let seat = self.seat(caller, id).await?;
        Ok(self.organization_store().list_members(&seat.organization).await?)
    }

    /// Gives a member another role (not `owner`), for the owner, or for an
    /// admin on a member who is neither an admin nor the owner.
    pub async fn set_member_role(
        &self,
        caller: &Principal,
        id: &str,
        user_id: &str,
        role: &str,
        client: &ClientInfo,
    ) -> Result<Membership> {
        let seat = self.managing(caller, id).await?;
        let target = super::admin::parse_user_id(user_id)?;
        let role = self.organization_role(role)?;
        if role == ADMIN && seat.role != OWNER {
            return Err(Error::PermissionDenied);
        }
        let (_, current, joined_at) = self.member(seat.organization.id, target).await?;
        self.may_manage(&seat, &current, target == caller.user.id)?;
        let detail = format!("{target}:{role}");
        let audit = self.member_audit(caller, AuditKind::MemberRoleChanged, client, &seat.organization, &detail);
        let (organization, written) = (seat.organization.id, role.clone());
        self.member_change::<(), _>(target, move |accounts, event| async move {
            Ok(accounts.organization_store().set_member_role(organization, target, &written, &audit, &event).await?)
        })
        .await?;
        let user = self.user_store().find_user(target).await?.ok_or(Error::MemberNotFound)?;
        Ok(Membership { organization: seat.organization, user, role, joined_at })
    }

    /// Removes a member, for the owner, or for an admin on a member who is
    /// neither an admin nor the owner.
    pub async fn remove_member(&self, caller: &Principal, id: &str, user_id: &str, client: &ClientInfo) -> Result<()> {
        let seat = self.managing(caller, id).await?;
        let target = super::admin::parse_user_id(user_id)?;
        let (_, current, _) = self.member(seat.organization.id, target).await?;
        self.may_manage(&seat, &current, target == caller.user.id)?;
        let audit =
            self.member_audit(caller, AuditKind::MemberRemoved, client, &seat.organization, &target.to_string());
        let organization = seat.organization.id;
        self.member_change::<(), _>(target, move |accounts, event| async move {
            Ok(accounts.organization_store().remove_member(organization, target, &audit, &event).await?)
        })
        .await?;
        Ok(())
    }

    /// The caller leaves an organization; its owner cannot.
    pub async fn leave_organization(&self, caller: &Principal, id: &str, client: &ClientInfo) -> Result<()> {
        let seat = self.seat(caller, id).await?;
        if seat.role == OWNER {
            return Err(Error::LastOwner);
        }
        let audit = self.member_audit(caller, AuditKind::MemberLeft, client, &seat.organization, "");
        let (organization, me) = (seat.organization.id, caller.user.id);
        self.member_change::<(), _>(me, move |accounts, event| async move {
            Ok(accounts.organization_store().remove_member(organization, me, &audit, &event).await?)
        })
        .await?;
        Ok(())
    }

    /// Makes another member the owner, for the owner, who becomes an admin.
    pub async fn transfer_ownership(
        &self,
        caller: &Principal,
        id: &str,
        user_id: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let seat = self.seat(caller, id).await?;
        if seat.role != OWNER {
            return Err(Error::PermissionDenied);
        }
        let target = super::admin::parse_user_id(user_id)?;
        if target == caller.user.id {
            return Err(Error::invalid("user_id", "is already the owner"));
        }
        self.member(seat.organization.id, target).await?;
        let audit =
            self.member_audit(caller, AuditKind::OwnershipTransferred, client, &seat.organization, &target.to_string());
        let events =
            [user_changed(caller.user.id, UserChange::Organizations), user_changed(target, UserChange::Organizations)];
        let (accounts, organization, from, published) =
            (self.clone(), seat.organization.id, caller.user.id, events.clone());
        let moved = self
            .to_completion(async move {
                let store = accounts.organization_store();
                let moved = store.transfer_ownership(organization, from, target, &audit, &published).await?;
                if moved {
                    published.into_iter().for_each(|event| accounts.publish(event));
                }
                Ok(moved)
            })
            .await?;
        // Not moved: the caller stopped being the owner, or the target a
        // member, meanwhile.
        if moved { Ok(()) } else { Err(Error::MemberNotFound) }
    }

    /// Invites `email` with `role`, for the owner or an admin (an admin
    /// may not invite admins).
    pub async fn create_invitation(
        &self,
        caller: &Principal,
        id: &str,
        email: &str,
        role: &str,
        client: &ClientInfo,
    ) -> Result<Invitation> {
        let seat = self.managing(caller, id).await?;
        let email = Email::parse("email", email)?;
        let role = self.organization_role(role)?;
        if role == ADMIN && seat.role != OWNER {
            return Err(Error::PermissionDenied);
        }
        let now = self.clock.now();
        let invitation = Invitation {
            id: InvitationId::generate(now),
            organization_id: seat.organization.id,
            email,
            role,
            invited_by: caller.user.id,
            created_at: now,
            expires_at: now.saturating_add(self.config.organizations.invitation_ttl),
        };
        let detail = format!("{}:{}:{}", invitation.id, invitation.email, invitation.role);
        let audit = self.member_audit(caller, AuditKind::InvitationCreated, client, &seat.organization, &detail);
        let mail = match &self.mail {
            Some(settings) => {
                // The recipient's cap: invitations cannot flood a mailbox.
                self.throttle.admit_mail_to(&invitation.email).await?;
                let link = settings.page(&format!("/organizations?invitation={}", invitation.id));
                let context = MailContext {
                    email: invitation.email.as_str(),
                    name: "",
                    link: &link,
                    code: "",
                    expires_in: self.config.organizations.invitation_ttl,
                    organization: &seat.organization.name,
                };
                Some(self.render(settings, MailKind::Invitation, &invitation.email, &context)?)
            }
            None => None,
        };
        let max = self.config.organizations.max_pending_invitations;
        let stored = self.organization_store().insert_invitation(&invitation, mail.as_ref(), max, now, &audit).await?;
        if !stored {
            return Err(Error::invalid("email", "the organization has the most pending invitations allowed"));
        }
        if mail.is_some() {
            self.mail_queued.notify_one();
        }
        Ok(invitation)
    }

    /// The pending invitations of an organization, for the owner or an admin.
    pub async fn list_invitations(&self, caller: &Principal, id: &str) -> Result<Vec<Invitation>> {
        let seat = self.managing(caller, id).await?;
        Ok(self.organization_store().list_invitations(seat.organization.id, self.clock.now()).await?)
    }

    /// Withdraws a pending invitation, for the owner or an admin.
    pub async fn revoke_invitation(
        &self,
        caller: &Principal,
        id: &str,
        invitation: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        let seat = self.managing(caller, id).await?;
        let invitation = InvitationId::parse(invitation)?;
        let detail = invitation.to_string();
        let audit = self.member_audit(caller, AuditKind::InvitationRevoked, client, &seat.organization, &detail);
        if self.organization_store().delete_invitation(seat.organization.id, invitation, &audit).await? {
            Ok(())
        } else {
            Err(Error::InvitationInvalid)
        }
    }

    /// Accepts an invitation for the caller, whose verified email must be
    /// the invited address: once, before it expires.
    pub async fn accept_invitation(&self, caller: &Principal, id: &str, client: &ClientInfo) -> Result<Membership> {
        self.refuse_impersonated(caller)?;
        let id = InvitationId::parse(id)?;
        if !caller.user.email_verified {
            return Err(Error::InvitationInvalid);
        }
        let now = self.clock.now();
        let audit = AuditEvent::new(AuditKind::InvitationAccepted, now, client)
            .user(caller.user.id)
            .session(&caller.session.id)
            .detail(id.to_string());
        let (user, accepted_by) = (caller.user.clone(), caller.user.id);
        let accepted = self
            .member_change(accepted_by, move |accounts, event| async move {
                let store = accounts.organization_store();
                Ok(store.accept_invitation(id, &user, &user.email, now, &audit, &event).await?)
            })
            .await?;
        Ok(accepted)
    }

    /// Makes `id` (a member's organization, or none when empty) the active
    /// organization of the calling session.
    pub async fn set_active_organization(&self, caller: &Principal, id: &str) -> Result<()> {
        let organization = match id {
            "" => None,
            id => Some(self.seat(caller, id).await?.organization.id),
        };
        let event = user_changed(caller.user.id, UserChange::Organizations);
        let (session, user) = (caller.session.id.clone(), caller.user.id);
        let set = self
            .write_and_publish(event, move |accounts, event| async move {
                let store = accounts.organization_store();
                Ok(store.set_active_organization(&session, user, organization, &event).await?)
            })
            .await?;
        if set { Ok(()) } else { Err(Error::Unauthenticated) }
    }

    /// The caller's role in the organization `id` names: what the
    /// organization calls check first. Not a member: as unknown.
    async fn seat(&self, caller: &Principal, id: &str) -> Result<Seat> {
        let id = OrganizationId::parse(id)?;
        let (organization, role, _) = self.member(id, caller.user.id).await.map_err(|_| Error::OrganizationNotFound)?;
        Ok(Seat { organization, role })
    }

    /// [`Accounts::seat`] for a call that changes the organization: its
    /// owner or an admin, and not from an impersonation session.
    async fn managing(&self, caller: &Principal, id: &str) -> Result<Seat> {
        self.refuse_impersonated(caller)?;
        let seat = self.seat(caller, id).await?;
        if manages(&seat.role) { Ok(seat) } else { Err(Error::PermissionDenied) }
    }

    /// Member `user` of organization `id`.
    async fn member(
        &self,
        id: OrganizationId,
        user: UserId,
    ) -> Result<(Organization, String, crate::clock::Timestamp)> {
        self.organization_store().find_membership(id, user).await?.ok_or(Error::MemberNotFound)
    }

    /// Refuses a change to a member whose role is `current` by `seat`: the
    /// owner changes only by a transfer, and an admin manages members only
    /// (not admins, not themselves).
    fn may_manage(&self, seat: &Seat, current: &str, oneself: bool) -> Result<()> {
        if current == OWNER {
            return Err(Error::LastOwner);
        }
        if seat.role != OWNER && (current == ADMIN || oneself) {
            return Err(Error::PermissionDenied);
        }
        Ok(())
    }

    /// `role` as a role a member may be given: defined, and not `owner`.
    fn organization_role(&self, role: &str) -> Result<String> {
        let role = if role.is_empty() { MEMBER } else { role };
        if role == OWNER {
            return Err(Error::invalid("role", "the owner changes only by TransferOwnership"));
        }
        if !self.config.organizations.has_role(role) {
            return Err(Error::invalid("role", "is not an organization role"));
        }
        Ok(role.to_owned())
    }

    /// Runs a change to `member`'s memberships on its own task to its end
    /// and publishes their `UserChanged { Organizations }` once it wrote.
    async fn member_change<T, Fut>(
        &self,
        member: UserId,
        write: impl FnOnce(Accounts, SessionEvent) -> Fut,
    ) -> Result<T>
    where
        T: MembershipOutcome + Send + 'static,
        Fut: std::future::Future<Output = Result<T::Stored>> + Send + 'static,
    {
        let event = user_changed(member, UserChange::Organizations);
        let (accounts, published) = (self.clone(), event.clone());
        let written = write(self.clone(), event);
        self.to_completion(async move {
            let outcome = T::from_stored(written.await?)?;
            accounts.publish(published);
            Ok(outcome)
        })
        .await
    }

    /// The audit entry of a member's call about `organization`.
    fn member_audit(
        &self,
        caller: &Principal,
        kind: AuditKind,
        client: &ClientInfo,
        organization: &Organization,
        detail: &str,
    ) -> AuditEvent {
        let detail = match detail {
            "" => organization.id.to_string(),
            detail => format!("{}:{detail}", organization.id),
        };
        AuditEvent::new(kind, self.clock.now(), client).user(caller.user.id).session(&caller.session.id).detail(detail)
    }

    pub(super) fn organization_store(&self) -> &dyn OrganizationStore {
        self.store.as_ref()
    }
}

/// A created organization, or why not: wrote when created.
struct Created(std::result::Result<(), CreateRefusal>);

impl super::challenge::Wrote for Created {
    fn wrote(&self) -> bool {
        self.0.is_ok()
    }
}

/// What a store's answer about one member means for the caller; an answer
/// that wrote nothing is an error, and publishes nothing.
trait MembershipOutcome: Sized {
    type Stored: Send + 'static;
    fn from_stored(stored: Self::Stored) -> Result<Self>;
}

impl MembershipOutcome for () {
    type Stored = MemberChange;
    fn from_stored(stored: MemberChange) -> Result<()> {
        match stored {
            MemberChange::Changed => Ok(()),
            MemberChange::NotMember => Err(Error::MemberNotFound),
            MemberChange::Owner => Err(Error::LastOwner),
        }
    }
}

impl MembershipOutcome for Membership {
    type Stored = Acceptance;
    fn from_stored(stored: Acceptance) -> Result<Membership> {
        match stored {
            Acceptance::Joined(membership) => Ok(*membership),
            Acceptance::Invalid => Err(Error::InvitationInvalid),
            Acceptance::AlreadyMember => Err(Error::invalid("invitation_id", "you are already a member")),
        }
    }
}
