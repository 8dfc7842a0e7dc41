//! The one authorization call: a credential and the permissions a request
//! needs, answered with a decision per permission and who is asking.

use super::{Accounts, admin::key_allows};
use crate::{
    api_key::{KeyPrincipal, is_api_key},
    error::{Error, FieldViolation, Result},
    organization::OrganizationId,
    session::Principal,
    user::UserId,
};

/// Who a credential belongs to.
#[derive(Debug, Clone)]
pub enum Caller {
    /// A session and its user (roles included).
    Session(Principal),
    /// An API key and its owner.
    Key(KeyPrincipal),
}

/// A decided check.
#[derive(Debug, Clone)]
pub struct Authorization {
    /// Who is asking.
    pub caller: Caller,
    /// Per asked permission, in order: allowed or not.
    pub decisions: Vec<bool>,
    /// Every permission the caller is allowed, sorted: what the user's
    /// roles grant, or for a key what its scopes and its owner's roles
    /// both grant.
    pub granted: Vec<String>,
    /// The organization decided in, and the user's role in it (`None`
    /// when they are not a member).
    pub organization: Option<(OrganizationId, Option<String>)>,
}

impl Authorization {
    /// Whether every asked permission is allowed.
    pub fn allowed(&self) -> bool {
        self.decisions.iter().all(|allowed| *allowed)
    }
}

impl Accounts {
    /// Decides `permissions` for the holder of `token`, a session token or
    /// an API key. The names are checked before the credential, so a typo
    /// fails the same for everyone; a session is read as `authenticate`
    /// reads it (through the validated cache, sliding its expiry when due),
    /// a key as `authenticate_key` checks it.
    ///
    /// In an organization (`organization`, or else the session's active
    /// one) a user is also allowed what their role there grants; not a
    /// member, nothing more than their own roles.
    pub async fn authorize(&self, token: &str, permissions: &[String], organization: &str) -> Result<Authorization> {
        let named = match organization {
            "" => None,
            id => Some(OrganizationId::parse(id)?),
        };
        let roles = self.config.roles.current();
        roles.check(permissions)?;
        if is_api_key(token) {
            if named.is_some() {
                let violation = FieldViolation::new("organization_id", "API keys are not scoped to organizations");
                return Err(Error::InvalidArgument(vec![violation]));
            }
            let key = self.authenticate_key(token).await?;
            let decisions = permissions.iter().map(|permission| key_allows(&roles, &key, permission)).collect();
            // Scopes are sorted, so this is too.
            let granted = key.key.scopes.iter().filter(|scope| key_allows(&roles, &key, scope)).cloned().collect();
            return Ok(Authorization { caller: Caller::Key(key), decisions, granted, organization: None });
        }
        let principal = self.authenticate(token).await?;
        let user_roles = &principal.user.roles;
        let Some(organization) = named.or(principal.session.active_organization) else {
            let decisions = roles.decisions(user_roles, permissions);
            let granted = roles.granted(user_roles).into_iter().map(str::to_owned).collect();
            return Ok(Authorization { caller: Caller::Session(principal), decisions, granted, organization: None });
        };
        let role = self.membership_role(organization, principal.user.id).await?;
        let policy = &self.config.organizations;
        let allows = |permission: &str| {
            roles.grants(user_roles, permission) || role.as_deref().is_some_and(|role| policy.grants(role, permission))
        };
        let decisions = permissions.iter().map(|permission| allows(permission)).collect();
        let granted = roles.permissions().filter(|permission| allows(permission)).map(str::to_owned).collect();
        Ok(Authorization {
            caller: Caller::Session(principal),
            decisions,
            granted,
            organization: Some((organization, role)),
        })
    }

    /// `user`'s role in `organization` (`None`: not a member), through the
    /// validated cache, which their next membership change empties.
    async fn membership_role(&self, organization: OrganizationId, user: UserId) -> Result<Option<String>> {
        let now = self.clock.now();
        if let Some(role) = self.cache.get_membership(organization, user, now) {
            return Ok(role);
        }
        // Taken before the read: an answer that raced an event is not kept.
        let ticket = self.cache.ticket();
        let role = self.organization_store().find_membership(organization, user).await?.map(|(_, role, _)| role);
        self.cache.insert_membership(organization, user, role.clone(), now, ticket);
        Ok(role)
    }
}
