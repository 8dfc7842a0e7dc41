//! The one authorization call: a credential and the permissions a request
//! needs, answered with a decision per permission and who is asking.

use uuid::Uuid;

use super::{Accounts, user_changed};
use crate::{
    audit::{AuditEvent, AuditKind},
    authorization::USER_ROLE,
    error::{Error, FieldViolation, Result},
    events::UserChange,
    session::{ClientInfo, Principal},
    user::{User, UserId},
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
    /// everywhere drop at once ([`UserChange::Roles`]), so the next check
    /// sees the new roles.
    pub async fn set_user_roles(
        &self,
        caller: &Principal,
        user_id: &str,
        roles: &[String],
        client: &ClientInfo,
    ) -> Result<User> {
        if !self.config.roles.grants(&caller.user.roles, "users:write") {
            return Err(Error::PermissionDenied);
        }
        let no_such_user = || Error::InvalidArgument(vec![FieldViolation::new("user_id", "no such user")]);
        let target = Uuid::try_parse(user_id).map(UserId).map_err(|_| no_such_user())?;
        if let Some(unknown) = roles.iter().find(|role| !self.config.roles.has_role(role)) {
            let violation = FieldViolation::new("roles", format!("{unknown:?} is not a role of the configuration"));
            return Err(Error::InvalidArgument(vec![violation]));
        }
        let mut wanted: Vec<String> = roles.iter().cloned().chain([USER_ROLE.to_owned()]).collect();
        wanted.sort();
        wanted.dedup();
        let now = self.clock.now();
        let audit = AuditEvent::new(AuditKind::RolesChanged, now, client)
            .user(caller.user.id)
            .session(&caller.session.id)
            .detail(format!("{target}:{}", wanted.join(" ")));
        let event = user_changed(target, UserChange::Roles);
        let updated = self
            .write_and_publish(event, move |accounts, event| async move {
                Ok(accounts.user_store().set_roles(target, &wanted, now, &audit, &event).await?)
            })
            .await?;
        updated.ok_or_else(no_such_user)
    }
}
