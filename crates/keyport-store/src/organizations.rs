//! The organizations area: organizations, memberships and invitations.

use async_trait::async_trait;
use keyport_core::{
    Timestamp,
    audit::AuditEvent,
    email::Email,
    events::{SessionEvent, UserChange},
    mail::Mail,
    organization::{ADMIN, Invitation, InvitationId, Membership, OWNER, Organization, OrganizationId},
    store::{Acceptance, CreateRefusal, MemberChange, OrganizationStore, StoreError, StoreResult},
    token::SessionId,
    user::{User, UserId},
};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, QuerySelect, sea_query::Expr,
};
use uuid::Uuid;

use crate::{
    SeaStore,
    db_error::classify,
    entity::{invitation, membership, organization, session, user},
    rows::{insert_audit, insert_mail, parse_user_id, user_from_row},
    write::{begin, lock_user, notify},
};

#[async_trait]
impl OrganizationStore for SeaStore {
    async fn insert_organization(
        &self,
        created: &Organization,
        owner: UserId,
        max_owned: u64,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Result<(), CreateRefusal>> {
        let txn = begin(&self.db).await?;
        // The owner's lock makes parallel creations take turns on the count.
        if !lock_user(&txn, owner).await? {
            return Ok(Err(CreateRefusal::OwnerGone));
        }
        let owned = membership::Entity::find()
            .filter(membership::Column::UserId.eq(owner.to_string()))
            .filter(membership::Column::Role.eq(OWNER))
            .count(&txn)
            .await
            .map_err(classify)?;
        if owned >= max_owned {
            return Ok(Err(CreateRefusal::TooMany));
        }
        let row = organization::ActiveModel {
            id: Set(created.id.to_string()),
            name: Set(created.name.clone()),
            slug: Set(created.slug.clone()),
            created_at: Set(created.created_at.unix_millis()),
        };
        match organization::Entity::insert(row).exec_without_returning(&txn).await.map_err(classify) {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => return Ok(Err(CreateRefusal::SlugTaken)),
            Err(other) => return Err(other),
        }
        insert_membership(&txn, created.id, owner, OWNER, created.created_at).await?;
        insert_audit(&txn, audit).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)?;
        Ok(Ok(()))
    }

    async fn find_membership(
        &self,
        id: OrganizationId,
        user: UserId,
    ) -> StoreResult<Option<(Organization, String, Timestamp)>> {
        let Some(row) = membership::Entity::find_by_id((id.to_string(), user.to_string()))
            .all(&self.db)
            .await
            .map_err(classify)?
            .pop()
        else {
            return Ok(None);
        };
        let Some(organization) = find_organization(&self.db, id).await? else { return Ok(None) };
        Ok(Some((organization, row.role, Timestamp::from_unix_millis(row.joined_at))))
    }

    async fn list_memberships(&self, member: &User) -> StoreResult<Vec<Membership>> {
        let rows = membership::Entity::find()
            .filter(membership::Column::UserId.eq(member.id.to_string()))
            .all(&self.db)
            .await
            .map_err(classify)?;
        let ids: Vec<String> = rows.iter().map(|row| row.organization_id.clone()).collect();
        let organizations = organization::Entity::find()
            .filter(organization::Column::Id.is_in(ids))
            .all(&self.db)
            .await
            .map_err(classify)?;
        let mut memberships = Vec::with_capacity(rows.len());
        for row in rows {
            let Some(found) = organizations.iter().find(|o| o.id == row.organization_id) else { continue };
            memberships.push(Membership {
                organization: organization_from_row(found.clone())?,
                user: member.clone(),
                role: row.role,
                joined_at: Timestamp::from_unix_millis(row.joined_at),
            });
        }
        memberships.sort_by(|a, b| a.organization.name.cmp(&b.organization.name));
        Ok(memberships)
    }

    async fn list_members(&self, of: &Organization) -> StoreResult<Vec<Membership>> {
        let rows = membership::Entity::find()
            .filter(membership::Column::OrganizationId.eq(of.id.to_string()))
            .all(&self.db)
            .await
            .map_err(classify)?;
        let ids: Vec<String> = rows.iter().map(|row| row.user_id.clone()).collect();
        let users = user::Entity::find()
            .filter(user::Column::Id.is_in(ids))
            .order_by_asc(user::Column::Email)
            .all(&self.db)
            .await
            .map_err(classify)?;
        let mut members = Vec::with_capacity(users.len());
        for found in users {
            let Some(row) = rows.iter().find(|row| row.user_id == found.id) else { continue };
            members.push(Membership {
                organization: of.clone(),
                role: row.role.clone(),
                joined_at: Timestamp::from_unix_millis(row.joined_at),
                user: user_from_row(found)?,
            });
        }
        Ok(members)
    }

    async fn rename_organization(&self, id: OrganizationId, name: &str, audit: &AuditEvent) -> StoreResult<bool> {
        let txn = begin(&self.db).await?;
        let renamed = organization::Entity::update_many()
            .col_expr(organization::Column::Name, name.into())
            .filter(organization::Column::Id.eq(id.to_string()))
            .exec(&txn)
            .await
            .map_err(classify)?;
        if renamed.rows_affected == 0 {
            return Ok(false);
        }
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(classify)?;
        Ok(true)
    }

    async fn delete_organization(&self, id: OrganizationId, audit: &AuditEvent) -> StoreResult<Option<Vec<UserId>>> {
        let txn = begin(&self.db).await?;
        let members: Vec<UserId> = membership::Entity::find()
            .filter(membership::Column::OrganizationId.eq(id.to_string()))
            .lock_exclusive()
            .all(&txn)
            .await
            .map_err(classify)?
            .iter()
            .map(|row| parse_user_id(&row.user_id))
            .collect::<StoreResult<_>>()?;
        let deleted = organization::Entity::delete_by_id(id.to_string()).exec(&txn).await.map_err(classify)?;
        if deleted.rows_affected == 0 {
            return Ok(None);
        }
        // Memberships and invitations go by the cascade.
        clear_active(&txn, id, None).await?;
        insert_audit(&txn, audit).await?;
        for member in &members {
            let event = SessionEvent::UserChanged { user_id: *member, change: UserChange::Organizations };
            notify(&txn, &self.origin, &event).await?;
        }
        txn.commit().await.map_err(classify)?;
        Ok(Some(members))
    }

    async fn set_member_role(
        &self,
        id: OrganizationId,
        member: UserId,
        role: &str,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<MemberChange> {
        let txn = begin(&self.db).await?;
        let change = match locked_role(&txn, id, member).await? {
            None => return Ok(MemberChange::NotMember),
            Some(current) if current == OWNER => return Ok(MemberChange::Owner),
            Some(_) => {
                set_role(&txn, id, member, role).await?;
                MemberChange::Changed
            }
        };
        insert_audit(&txn, audit).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)?;
        Ok(change)
    }

    async fn remove_member(
        &self,
        id: OrganizationId,
        member: UserId,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<MemberChange> {
        let txn = begin(&self.db).await?;
        match locked_role(&txn, id, member).await? {
            None => return Ok(MemberChange::NotMember),
            Some(current) if current == OWNER => return Ok(MemberChange::Owner),
            Some(_) => {}
        }
        membership::Entity::delete_by_id((id.to_string(), member.to_string())).exec(&txn).await.map_err(classify)?;
        clear_active(&txn, id, Some(member)).await?;
        insert_audit(&txn, audit).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)?;
        Ok(MemberChange::Changed)
    }

    async fn transfer_ownership(
        &self,
        id: OrganizationId,
        from: UserId,
        to: UserId,
        audit: &AuditEvent,
        events: &[SessionEvent; 2],
    ) -> StoreResult<bool> {
        let txn = begin(&self.db).await?;
        let owner = locked_role(&txn, id, from).await?;
        let next = locked_role(&txn, id, to).await?;
        if owner.as_deref() != Some(OWNER) || next.is_none() {
            return Ok(false);
        }
        for (member, role) in [(from, ADMIN), (to, OWNER)] {
            set_role(&txn, id, member, role).await?;
        }
        insert_audit(&txn, audit).await?;
        for event in events {
            notify(&txn, &self.origin, event).await?;
        }
        txn.commit().await.map_err(classify)?;
        Ok(true)
    }

    async fn insert_invitation(
        &self,
        made: &Invitation,
        mail: Option<&Mail>,
        max_pending: u64,
        now: Timestamp,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let txn = begin(&self.db).await?;
        // The organization's row is the lock the count takes turns on.
        let organization = organization::Entity::find_by_id(made.organization_id.to_string())
            .lock_exclusive()
            .all(&txn)
            .await
            .map_err(classify)?;
        if organization.is_empty() {
            return Ok(false);
        }
        let pending = invitation::Entity::find()
            .filter(invitation::Column::OrganizationId.eq(made.organization_id.to_string()))
            .filter(invitation::Column::ExpiresAt.gt(now.unix_millis()))
            .count(&txn)
            .await
            .map_err(classify)?;
        if pending >= max_pending {
            return Ok(false);
        }
        let row = invitation::ActiveModel {
            id: Set(made.id.to_string()),
            organization_id: Set(made.organization_id.to_string()),
            email: Set(made.email.as_str().to_owned()),
            role: Set(made.role.clone()),
            invited_by: Set(made.invited_by.to_string()),
            created_at: Set(made.created_at.unix_millis()),
            expires_at: Set(made.expires_at.unix_millis()),
        };
        invitation::Entity::insert(row).exec_without_returning(&txn).await.map_err(classify)?;
        if let Some(mail) = mail {
            insert_mail(&txn, mail).await?;
        }
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(classify)?;
        Ok(true)
    }

    async fn list_invitations(&self, id: OrganizationId, now: Timestamp) -> StoreResult<Vec<Invitation>> {
        let rows = invitation::Entity::find()
            .filter(invitation::Column::OrganizationId.eq(id.to_string()))
            .filter(invitation::Column::ExpiresAt.gt(now.unix_millis()))
            .order_by_desc(invitation::Column::Id)
            .all(&self.db)
            .await
            .map_err(classify)?;
        rows.into_iter().map(invitation_from_row).collect()
    }

    async fn delete_invitation(
        &self,
        id: OrganizationId,
        withdrawn: InvitationId,
        audit: &AuditEvent,
    ) -> StoreResult<bool> {
        let txn = begin(&self.db).await?;
        let deleted = invitation::Entity::delete_many()
            .filter(invitation::Column::Id.eq(withdrawn.to_string()))
            .filter(invitation::Column::OrganizationId.eq(id.to_string()))
            .exec(&txn)
            .await
            .map_err(classify)?;
        if deleted.rows_affected == 0 {
            return Ok(false);
        }
        insert_audit(&txn, audit).await?;
        txn.commit().await.map_err(classify)?;
        Ok(true)
    }

    async fn accept_invitation(
        &self,
        id: InvitationId,
        member: &User,
        email: &Email,
        now: Timestamp,
        audit: &AuditEvent,
        event: &SessionEvent,
    ) -> StoreResult<Acceptance> {
        let txn = begin(&self.db).await?;
        // Taken by one statement: of parallel accepts, one gets the row.
        let taken = invitation::Entity::delete_many()
            .filter(invitation::Column::Id.eq(id.to_string()))
            .filter(invitation::Column::Email.eq(email.as_str()))
            .filter(invitation::Column::ExpiresAt.gt(now.unix_millis()))
            .exec_with_returning(&txn)
            .await
            .map_err(classify)?
            .pop();
        let Some(taken) = taken else { return Ok(Acceptance::Invalid) };
        let made = invitation_from_row(taken)?;
        if !lock_user(&txn, member.id).await? {
            return Ok(Acceptance::Invalid);
        }
        if locked_role(&txn, made.organization_id, member.id).await?.is_some() {
            // Rolled back: the invitation stays.
            return Ok(Acceptance::AlreadyMember);
        }
        let Some(organization) = find_organization(&txn, made.organization_id).await? else {
            return Ok(Acceptance::Invalid);
        };
        match insert_membership(&txn, made.organization_id, member.id, &made.role, now).await {
            Ok(()) => {}
            // Another invitation to the same organization won the race.
            Err(StoreError::Conflict(_)) => return Ok(Acceptance::AlreadyMember),
            Err(other) => return Err(other),
        }
        insert_audit(&txn, audit).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)?;
        let membership = Membership { organization, user: member.clone(), role: made.role, joined_at: now };
        Ok(Acceptance::Joined(Box::new(membership)))
    }

    async fn set_active_organization(
        &self,
        id: &SessionId,
        member: UserId,
        chosen: Option<OrganizationId>,
        event: &SessionEvent,
    ) -> StoreResult<bool> {
        let txn = begin(&self.db).await?;
        let updated = session::Entity::update_many()
            .col_expr(session::Column::ActiveOrganizationId, chosen.map(|id| id.to_string()).into())
            .filter(session::Column::Id.eq(id.as_str()))
            .filter(session::Column::UserId.eq(member.to_string()))
            .exec(&txn)
            .await
            .map_err(classify)?;
        if updated.rows_affected == 0 {
            return Ok(false);
        }
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)?;
        Ok(true)
    }

    async fn delete_invitations_expired_before(&self, before: Timestamp) -> StoreResult<u64> {
        let deleted = invitation::Entity::delete_many()
            .filter(invitation::Column::ExpiresAt.lt(before.unix_millis()))
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(deleted.rows_affected)
    }
}

/// `member`'s role in `id`, their membership row locked until the
/// transaction ends; `None` when they are not a member.
async fn locked_role(txn: &DatabaseTransaction, id: OrganizationId, member: UserId) -> StoreResult<Option<String>> {
    let rows = membership::Entity::find_by_id((id.to_string(), member.to_string()))
        .lock_exclusive()
        .all(txn)
        .await
        .map_err(classify)?;
    Ok(rows.into_iter().next().map(|row| row.role))
}

async fn set_role(txn: &DatabaseTransaction, id: OrganizationId, member: UserId, role: &str) -> StoreResult<()> {
    membership::Entity::update_many()
        .col_expr(membership::Column::Role, role.into())
        .filter(membership::Column::OrganizationId.eq(id.to_string()))
        .filter(membership::Column::UserId.eq(member.to_string()))
        .exec(txn)
        .await
        .map_err(classify)?;
    Ok(())
}

async fn insert_membership(
    txn: &DatabaseTransaction,
    id: OrganizationId,
    member: UserId,
    role: &str,
    at: Timestamp,
) -> StoreResult<()> {
    let row = membership::ActiveModel {
        organization_id: Set(id.to_string()),
        user_id: Set(member.to_string()),
        role: Set(role.to_owned()),
        joined_at: Set(at.unix_millis()),
    };
    membership::Entity::insert(row).exec_without_returning(txn).await.map_err(classify)?;
    Ok(())
}

/// Makes the sessions active in `id` (of `member` only, if given) active
/// in none.
async fn clear_active(txn: &DatabaseTransaction, id: OrganizationId, member: Option<UserId>) -> StoreResult<()> {
    let mut update = session::Entity::update_many()
        .col_expr(session::Column::ActiveOrganizationId, Expr::value(None::<String>))
        .filter(session::Column::ActiveOrganizationId.eq(id.to_string()));
    if let Some(member) = member {
        update = update.filter(session::Column::UserId.eq(member.to_string()));
    }
    update.exec(txn).await.map_err(classify)?;
    Ok(())
}

async fn find_organization(db: &impl ConnectionTrait, id: OrganizationId) -> StoreResult<Option<Organization>> {
    let row = organization::Entity::find_by_id(id.to_string()).all(db).await.map_err(classify)?.pop();
    row.map(organization_from_row).transpose()
}

fn organization_from_row(row: organization::Model) -> StoreResult<Organization> {
    Ok(Organization {
        id: OrganizationId(parse_uuid(&row.id)?),
        name: row.name,
        slug: row.slug,
        created_at: Timestamp::from_unix_millis(row.created_at),
    })
}

fn invitation_from_row(row: invitation::Model) -> StoreResult<Invitation> {
    Ok(Invitation {
        id: InvitationId(parse_uuid(&row.id)?),
        organization_id: OrganizationId(parse_uuid(&row.organization_id)?),
        email: Email::from_trusted(row.email),
        role: row.role,
        invited_by: parse_user_id(&row.invited_by)?,
        created_at: Timestamp::from_unix_millis(row.created_at),
        expires_at: Timestamp::from_unix_millis(row.expires_at),
    })
}

fn parse_uuid(raw: &str) -> StoreResult<Uuid> {
    Uuid::parse_str(raw).map_err(|e| StoreError::Other(format!("malformed id {raw:?}: {e}")))
}
