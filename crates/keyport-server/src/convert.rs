//! Domain types to their `keyport.v1` messages. Generated types stop here.

use keyport_core::{
    Error, SessionGrant, Timestamp,
    accounts::IssuedChallenge,
    api_key::{ApiKey, KeyOwner, ServiceAccount},
    events::{SessionEvent, UserChange},
    oauth::{LinkedAccount, ProviderInfo, ProviderKind},
    organization::{Invitation, Membership, Organization},
    second_factor::{Assurance, FactorKind, StoredPasskey},
    session::Session,
    store::StoredAudit,
    user::User,
};
use keyport_proto::v1::{self, watch_session_events_response::Event};

pub(crate) fn timestamp(at: Timestamp) -> prost_types::Timestamp {
    let millis = at.unix_millis();
    prost_types::Timestamp {
        seconds: millis.div_euclid(1000),
        // Always in 0..1_000_000_000, so the cast cannot truncate.
        nanos: (millis.rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub(crate) fn user(user: &User) -> v1::User {
    v1::User {
        id: user.id.to_string(),
        email: user.email.to_string(),
        name: user.name.clone(),
        email_verified: user.email_verified,
        roles: user.roles.clone(),
        created_at: Some(timestamp(user.created_at)),
        updated_at: Some(timestamp(user.updated_at)),
        two_factor_enabled: user.two_factor_enabled,
    }
}

/// A user as admins see them: with the ban in force at `now`, if any.
pub(crate) fn managed_user(user: &User, now: Timestamp) -> v1::ManagedUser {
    let ban = user.ban_at(now).map(|ban| v1::Ban {
        reason: ban.reason.clone(),
        banned_at: Some(timestamp(ban.banned_at)),
        expires_at: ban.expires_at.map(timestamp),
    });
    v1::ManagedUser { user: Some(self::user(user)), ban }
}

pub(crate) fn role(role: keyport_core::accounts::RoleInfo) -> v1::Role {
    v1::Role {
        name: role.name,
        grants: role.grants,
        configured: role.configured,
        updated_at: role.updated_at.map(timestamp),
    }
}

pub(crate) fn audit_event(event: StoredAudit) -> v1::AuditEvent {
    v1::AuditEvent {
        id: event.id.to_string(),
        at: Some(timestamp(event.at)),
        kind: event.kind,
        user_id: event.user_id.unwrap_or_default(),
        session_id: event.session_id.unwrap_or_default(),
        ip_address: event.ip_address.unwrap_or_default(),
        user_agent: event.user_agent.unwrap_or_default(),
        detail: event.detail.unwrap_or_default(),
        target_user_id: event.target_user_id.unwrap_or_default(),
    }
}

/// A request's time, to the millisecond Keyport keeps; an out-of-range one
/// (nanos outside 0-999,999,999, or beyond what milliseconds hold) is
/// invalid input of `field`.
pub(crate) fn instant(field: &'static str, at: &prost_types::Timestamp) -> Result<Timestamp, Error> {
    let nanos = u32::try_from(at.nanos).ok().filter(|nanos| *nanos < 1_000_000_000);
    let millis = nanos.and_then(|nanos| at.seconds.checked_mul(1000)?.checked_add(i64::from(nanos / 1_000_000)));
    millis.map(Timestamp::from_unix_millis).ok_or_else(|| Error::invalid(field, "must be a valid time"))
}

pub(crate) fn session(session: &Session, current: bool) -> v1::Session {
    v1::Session {
        id: session.id.to_string(),
        user_id: session.user_id.to_string(),
        created_at: Some(timestamp(session.created_at)),
        expires_at: Some(timestamp(session.expires_at)),
        absolute_expires_at: Some(timestamp(session.absolute_expires_at)),
        refreshed_at: Some(timestamp(session.refreshed_at)),
        ip_address: session.client.ip_address.clone().unwrap_or_default(),
        user_agent: session.client.user_agent.clone().unwrap_or_default(),
        current,
        assurance_level: assurance(session.assurance).into(),
        authenticated_at: Some(timestamp(session.authenticated_at)),
        impersonator_id: session.impersonator.map(|id| id.to_string()).unwrap_or_default(),
        active_organization_id: session.active_organization.map(|id| id.to_string()).unwrap_or_default(),
    }
}

pub(crate) fn organization(organization: &Organization) -> v1::Organization {
    v1::Organization {
        id: organization.id.to_string(),
        name: organization.name.clone(),
        slug: organization.slug.clone(),
        created_at: Some(timestamp(organization.created_at)),
    }
}

/// A membership as its member sees it (`user` unset) or as the members
/// list shows it (`organization` unset).
pub(crate) fn membership(membership: &Membership, with_organization: bool) -> v1::Membership {
    v1::Membership {
        organization: with_organization.then(|| organization(&membership.organization)),
        user: (!with_organization).then(|| user(&membership.user)),
        role: membership.role.clone(),
        joined_at: Some(timestamp(membership.joined_at)),
    }
}

pub(crate) fn invitation(invitation: &Invitation) -> v1::Invitation {
    v1::Invitation {
        id: invitation.id.to_string(),
        organization_id: invitation.organization_id.to_string(),
        email: invitation.email.as_str().to_owned(),
        role: invitation.role.clone(),
        invited_by_user_id: invitation.invited_by.to_string(),
        created_at: Some(timestamp(invitation.created_at)),
        expires_at: Some(timestamp(invitation.expires_at)),
    }
}

fn assurance(assurance: Assurance) -> v1::AssuranceLevel {
    match assurance {
        Assurance::Aal1 => v1::AssuranceLevel::Aal1,
        Assurance::Aal2 => v1::AssuranceLevel::Aal2,
    }
}

pub(crate) fn challenge(challenge: IssuedChallenge) -> v1::SignInChallenge {
    let factor = |kind: FactorKind| match kind {
        FactorKind::Totp => v1::SecondFactor::Totp,
        FactorKind::BackupCode => v1::SecondFactor::BackupCode,
        FactorKind::Passkey => v1::SecondFactor::Passkey,
    };
    v1::SignInChallenge {
        challenge: challenge.challenge,
        factors: challenge.factors.into_iter().map(|kind| factor(kind).into()).collect(),
        expires_at: Some(timestamp(challenge.expires_at)),
        passkey_options: challenge.passkey_options.unwrap_or_default(),
    }
}

pub(crate) fn passkey(passkey: &StoredPasskey) -> v1::Passkey {
    v1::Passkey {
        id: passkey.id.to_string(),
        name: passkey.name.clone(),
        created_at: Some(timestamp(passkey.created_at)),
        last_used_at: passkey.last_used_at.map(timestamp),
        backed_up: passkey.backed_up,
    }
}

pub(crate) fn grant(grant: SessionGrant) -> v1::SessionGrant {
    v1::SessionGrant { session: Some(session(&grant.session, true)), user: Some(user(&grant.user)), token: grant.token }
}

pub(crate) fn provider(provider: ProviderInfo) -> v1::OAuthProvider {
    let kind = match provider.kind {
        ProviderKind::Oidc => v1::ProviderKind::Oidc,
        ProviderKind::GitHub => v1::ProviderKind::Github,
    };
    v1::OAuthProvider { id: provider.id, display_name: provider.display_name, kind: kind.into() }
}

pub(crate) fn linked_account(account: &LinkedAccount) -> v1::LinkedAccount {
    v1::LinkedAccount {
        provider_id: account.provider_id.clone(),
        subject: account.subject.clone(),
        email: account.email.clone(),
        linked_at: Some(timestamp(account.linked_at)),
    }
}

pub(crate) fn api_key(key: &ApiKey) -> v1::ApiKey {
    let (owner_user_id, service_account_id) = match key.owner {
        KeyOwner::User(id) => (id.to_string(), String::new()),
        KeyOwner::ServiceAccount(id) => (String::new(), id.to_string()),
    };
    v1::ApiKey {
        id: key.id.to_string(),
        name: key.name.clone(),
        owner_user_id,
        service_account_id,
        scopes: key.scopes.clone(),
        created_at: Some(timestamp(key.created_at)),
        expires_at: key.expires_at.map(timestamp),
        last_used_at: key.last_used_at.map(timestamp),
        rate_limit_per_minute: key.rate_limit_per_minute,
        replaced_by_id: key.replaced_by.as_ref().map(ToString::to_string).unwrap_or_default(),
    }
}

pub(crate) fn service_account(account: &ServiceAccount) -> v1::ServiceAccount {
    v1::ServiceAccount {
        id: account.id.to_string(),
        name: account.name.clone(),
        description: account.description.clone(),
        roles: account.roles.clone(),
        created_at: Some(timestamp(account.created_at)),
    }
}

pub(crate) fn session_event(event: SessionEvent) -> Event {
    match event {
        SessionEvent::SessionRevoked { session_id, user_id } => Event::SessionRevoked(v1::SessionRevoked {
            session_id: session_id.to_string(),
            user_id: user_id.to_string(),
        }),
        SessionEvent::UserChanged { user_id, change } => {
            Event::UserChanged(v1::UserChanged { user_id: user_id.to_string(), change: user_change(change).into() })
        }
        SessionEvent::RolesChanged => Event::RolesChanged(v1::RolesChanged {}),
        SessionEvent::ApiKeysChanged { owner_id, key_id } => Event::ApiKeysChanged(v1::ApiKeysChanged {
            owner_id: owner_id.to_string(),
            api_key_id: key_id.map(|id| id.to_string()).unwrap_or_default(),
        }),
    }
}

fn user_change(change: UserChange) -> v1::UserChange {
    match change {
        UserChange::Profile => v1::UserChange::Profile,
        UserChange::Password => v1::UserChange::Password,
        UserChange::Roles => v1::UserChange::Roles,
        UserChange::Banned => v1::UserChange::Banned,
        UserChange::Unbanned => v1::UserChange::Unbanned,
        UserChange::Deleted => v1::UserChange::Deleted,
        UserChange::SessionsRevoked => v1::UserChange::SessionsRevoked,
        UserChange::SecondFactor => v1::UserChange::SecondFactor,
        UserChange::Organizations => v1::UserChange::Organizations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_split_into_seconds_and_nanos() {
        let t = timestamp(Timestamp::from_unix_millis(1_700_000_000_123));
        assert_eq!((t.seconds, t.nanos), (1_700_000_000, 123_000_000));
        let before_epoch = timestamp(Timestamp::from_unix_millis(-1));
        assert_eq!((before_epoch.seconds, before_epoch.nanos), (-1, 999_000_000));
    }
}
