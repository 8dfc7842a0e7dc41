//! Roles defined at run time: listed, defined and deleted by admins, kept
//! in the database, and put in force on every replica before any cache
//! hears that they changed.

use super::{Accounts, admin::Admin};
use crate::{
    audit::AuditKind,
    clock::Timestamp,
    error::{Error, Result},
    events::SessionEvent,
    session::ClientInfo,
    store::StoredRole,
    user::is_valid_role,
};

/// A role as admins see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleInfo {
    /// Its name.
    pub name: String,
    /// What it grants: permissions, `resource:*` or `*`.
    pub grants: Vec<String>,
    /// Whether the configuration defines it (and only the configuration
    /// can change it); else it was defined at run time.
    pub configured: bool,
    /// When a run-time role's grants were last set.
    pub updated_at: Option<Timestamp>,
}

/// Most grants one run-time role may have.
pub const MAX_ROLE_GRANTS: usize = 64;

impl Accounts {
    /// Every role: the configuration's, then those defined at run time, for
    /// a caller whose roles grant `users:read`.
    pub async fn list_roles(&self, admin: Admin<'_>) -> Result<Vec<RoleInfo>> {
        self.require(admin, "users:read")?;
        let book = &self.config.roles;
        let configured = book.configured().map(|(name, grants)| RoleInfo {
            name: name.to_owned(),
            grants: grants.to_vec(),
            configured: true,
            updated_at: None,
        });
        let runtime = self.role_store().list_roles().await?.into_iter().filter(|role| !book.is_configured(&role.name));
        Ok(configured
            .chain(runtime.map(|role| RoleInfo {
                name: role.name,
                grants: role.grants,
                configured: false,
                updated_at: Some(role.updated_at),
            }))
            .collect())
    }

    /// Defines the run-time role `name`, or replaces its grants, for a
    /// caller whose roles grant `users:write`. Every replica puts it in
    /// force, and every cache drops its decisions
    /// ([`SessionEvent::RolesChanged`](crate::events::SessionEvent::RolesChanged)),
    /// before the next check. A role of the configuration cannot be changed
    /// here.
    pub async fn put_role(
        &self,
        admin: Admin<'_>,
        name: &str,
        grants: &[String],
        client: &ClientInfo,
    ) -> Result<RoleInfo> {
        self.require(admin, "users:write")?;
        let name = self.runtime_role_name(name)?;
        if grants.len() > MAX_ROLE_GRANTS {
            return Err(Error::invalid("grants", "must be at most 64"));
        }
        let mut grants = grants.to_vec();
        grants.sort();
        grants.dedup();
        let conferred = self.config.roles.granted_by(&grants).map_err(|problem| Error::invalid("grants", problem))?;
        self.within_reach(admin, conferred.iter().map(String::as_str))?;
        // Replacing a role changes what its holders have: the old grants
        // must be within reach too.
        self.roles_within_reach(admin, std::slice::from_ref(&name))?;
        let now = self.clock.now();
        let role = StoredRole { name, grants, updated_at: now };
        let detail = format!("{}:{}", role.name, role.grants.join(" "));
        let audit = self.admin_audit(admin, AuditKind::RoleDefined, client, detail);
        let written = role.clone();
        self.write_roles(move |accounts, event| async move {
            accounts.role_store().put_role(&written, &audit, &event).await?;
            Ok(true)
        })
        .await?;
        Ok(RoleInfo { name: role.name, grants: role.grants, configured: false, updated_at: Some(now) })
    }

    /// Deletes the run-time role `name`, for a caller whose roles grant
    /// `users:write`. Users who hold it keep the name, which grants nothing
    /// from then on.
    pub async fn delete_role(&self, admin: Admin<'_>, name: &str, client: &ClientInfo) -> Result<()> {
        self.require(admin, "users:write")?;
        let name = self.runtime_role_name(name)?;
        self.roles_within_reach(admin, std::slice::from_ref(&name))?;
        let audit = self.admin_audit(admin, AuditKind::RoleDeleted, client, name.clone());
        let deleted = self
            .write_roles(move |accounts, event| async move {
                Ok(accounts.role_store().delete_role(&name, &audit, &event).await?)
            })
            .await?;
        if deleted { Ok(()) } else { Err(Error::invalid("name", "no run-time role has this name")) }
    }

    /// `name` as the name of a run-time role: well-formed, and not one the
    /// configuration defines.
    fn runtime_role_name(&self, name: &str) -> Result<String> {
        if !is_valid_role(name) || name.contains(':') {
            return Err(Error::invalid("name", "must be 1-64 of a-z 0-9 _ -"));
        }
        if self.config.roles.is_configured(name) {
            return Err(Error::invalid("name", "is defined in the configuration; change it there"));
        }
        Ok(name.to_owned())
    }

    /// Runs `write` (a run-time role change that emits
    /// [`SessionEvent::RolesChanged`] in its transaction; true when it
    /// changed something) on its own task to its end, then puts the roles
    /// in force here and publishes the event: in force on this replica
    /// before anyone hears of it.
    async fn write_roles<Fut>(&self, write: impl FnOnce(Accounts, SessionEvent) -> Fut) -> Result<bool>
    where
        Fut: std::future::Future<Output = Result<bool>> + Send + 'static,
    {
        let (accounts, written) = (self.clone(), write(self.clone(), SessionEvent::RolesChanged));
        self.to_completion(async move {
            let changed = written.await?;
            if changed {
                accounts.reload_roles().await?;
                accounts.publish(SessionEvent::RolesChanged);
            }
            Ok(changed)
        })
        .await
    }
}
