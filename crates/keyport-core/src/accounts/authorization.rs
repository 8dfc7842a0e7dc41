//! The one authorization call: a credential and the permissions a request
//! needs, answered with a decision per permission and who is asking.

use super::Accounts;
use crate::{
    error::{Error, FieldViolation, Result},
    session::Principal,
};

/// A decided check.
#[derive(Debug, Clone)]
pub struct Authorization {
    /// Who is asking: the session and its user (roles included).
    pub principal: Principal,
    /// Per asked permission, in order: allowed or not.
    pub decisions: Vec<bool>,
    /// Every permission the principal's roles grant, sorted.
    pub granted: Vec<String>,
}

impl Authorization {
    /// Whether every asked permission is allowed.
    pub fn allowed(&self) -> bool {
        self.decisions.iter().all(|allowed| *allowed)
    }
}

impl Accounts {
    /// Decides `permissions` for the holder of the session `token`. The
    /// names are checked before the token, so a typo fails the same for
    /// everyone; the session is read as `authenticate` reads it (through
    /// the validated cache, sliding its expiry when due).
    pub async fn authorize(&self, token: &str, permissions: &[String], organization: &str) -> Result<Authorization> {
        if !organization.is_empty() {
            let violation = FieldViolation::new("organization_id", "organizations are not built yet: leave it empty");
            return Err(Error::InvalidArgument(vec![violation]));
        }
        let roles = &self.config.roles;
        roles.check(permissions)?;
        let principal = self.authenticate(token).await?;
        let decisions = roles.decisions(&principal.user.roles, permissions);
        let granted = roles.granted(&principal.user.roles).into_iter().map(str::to_owned).collect();
        Ok(Authorization { principal, decisions, granted })
    }
}

impl Accounts {
    /// Replaces the roles of the user `user_id` (`user` is always kept), for
    /// a caller whose roles grant `users:write`. The user's cached sessions
    /// everywhere drop at once (`UserChange::Roles`), so the next check sees
    /// the new roles.
    pub async fn set_user_roles(
        &self,
        caller: &Principal,
        user_id: &str,
        roles: &[String],
        client: &crate::session::ClientInfo,
    ) -> Result<crate::user::User> {
        self.require_permission(caller, "users:write")?;
        let target = uuid::Uuid::try_parse(user_id)
            .map(crate::user::UserId)
            .map_err(|_| Error::InvalidArgument(vec![FieldViolation::new("user_id", "no such user")]))?;
        let mut wanted: Vec<String> = roles.iter().map(|role| role.trim().to_owned()).collect();
        if let Some(unknown) = wanted.iter().find(|role| !self.config.roles.has_role(role)) {
            let violation = FieldViolation::new("roles", format!("{unknown:?} is not a role of the configuration"));
            return Err(Error::InvalidArgument(vec![violation]));
        }
        wanted.push(crate::authorization::USER_ROLE.to_owned());
        wanted.sort();
        wanted.dedup();
        let audit = crate::audit::AuditEvent::new(crate::audit::AuditKind::RolesChanged, self.clock.now(), client)
            .user(caller.user.id)
            .session(&caller.session.id)
            .detail(format!("{target}:{}", wanted.join(" ")));
        let event = super::user_changed(target, crate::events::UserChange::Roles);
        let (accounts, now) = (self.clone(), self.clock.now());
        // To its end with its event: caches must not keep the old roles.
        let updated = self
            .to_completion(async move {
                let updated = accounts.user_store().set_roles(target, &wanted, now, &audit, &event).await?;
                if updated.is_some() {
                    accounts.publish(event);
                }
                Ok(updated)
            })
            .await?;
        updated.ok_or_else(|| Error::InvalidArgument(vec![FieldViolation::new("user_id", "no such user")]))
    }

    /// Refuses a caller whose roles do not grant `permission` (one of the
    /// catalogue's).
    pub(super) fn require_permission(&self, caller: &Principal, permission: &str) -> Result<()> {
        let allowed = self.config.roles.decisions(&caller.user.roles, &[permission.to_owned()]);
        if allowed.first() == Some(&true) { Ok(()) } else { Err(Error::PermissionDenied) }
    }
}
