//! Service accounts: non-human principals that own API keys, created,
//! changed and deleted by admins.

use super::{Accounts, admin::Admin};
use crate::{
    api_key::{MAX_DESCRIPTION_CHARS, ServiceAccount, ServiceAccountId, parse_service_account_name},
    audit::AuditKind,
    error::{Error, FieldViolation, Result},
    events::SessionEvent,
    session::ClientInfo,
};

/// Most roles one service account may have.
pub const MAX_SERVICE_ACCOUNT_ROLES: usize = 16;

impl Accounts {
    /// Creates a service account with `roles`, for a caller whose
    /// permissions include `users:write` and whose reach covers the roles.
    pub async fn create_service_account(
        &self,
        admin: Admin<'_>,
        name: &str,
        description: &str,
        roles: &[String],
        client: &ClientInfo,
    ) -> Result<ServiceAccount> {
        self.require(admin, "users:write")?;
        let name = parse_service_account_name(name);
        let description = parse_description(description);
        let (name, description) = super::collect_violations(name, description)?;
        let roles = self.service_account_roles(roles)?;
        self.roles_within_reach(admin, &roles)?;
        let now = self.clock.now();
        let account = ServiceAccount { id: ServiceAccountId::generate(now), name, description, roles, created_at: now };
        let detail = format!("{}:{}:{}", account.id, account.name, account.roles.join(" "));
        let audit = self.admin_audit(admin, AuditKind::ServiceAccountCreated, client, detail);
        let (accounts, stored) = (self.clone(), account.clone());
        let created = self
            .to_completion(async move { Ok(accounts.api_key_store().insert_service_account(&stored, &audit).await?) })
            .await?;
        if created { Ok(account) } else { Err(Error::invalid("name", "is taken by another service account")) }
    }

    /// Every service account, by name, for a caller whose permissions
    /// include `users:read`.
    pub async fn list_service_accounts(&self, admin: Admin<'_>) -> Result<Vec<ServiceAccount>> {
        self.require(admin, "users:read")?;
        Ok(self.api_key_store().list_service_accounts().await?)
    }

    /// Replaces the roles of the service account `id`; its keys' cached
    /// answers drop everywhere before the call returns. Both the old and
    /// the new roles must be within the caller's reach.
    pub async fn set_service_account_roles(
        &self,
        admin: Admin<'_>,
        id: &str,
        roles: &[String],
        client: &ClientInfo,
    ) -> Result<ServiceAccount> {
        self.require(admin, "users:write")?;
        let mut account = self.find_service_account(id).await?;
        let roles = self.service_account_roles(roles)?;
        self.roles_within_reach(admin, &account.roles)?;
        self.roles_within_reach(admin, &roles)?;
        let detail = format!("{}:{}", account.id, roles.join(" "));
        let audit = self.admin_audit(admin, AuditKind::ServiceAccountRolesChanged, client, detail);
        let event = SessionEvent::ApiKeysChanged { owner_id: account.id.0, key_id: None };
        let (id, written) = (account.id, roles.clone());
        let changed = self
            .write_and_publish(event, move |accounts, event| async move {
                Ok(accounts.api_key_store().set_service_account_roles(id, &written, &audit, &event).await?)
            })
            .await?;
        if !changed {
            return Err(Error::ServiceAccountNotFound);
        }
        account.roles = roles;
        Ok(account)
    }

    /// Deletes the service account `id` and its keys, at once everywhere;
    /// how many keys went.
    pub async fn delete_service_account(&self, admin: Admin<'_>, id: &str, client: &ClientInfo) -> Result<u64> {
        self.require(admin, "users:write")?;
        let account = self.find_service_account(id).await?;
        self.roles_within_reach(admin, &account.roles)?;
        let detail = format!("{}:{}", account.id, account.name);
        let audit = self.admin_audit(admin, AuditKind::ServiceAccountDeleted, client, detail);
        let event = SessionEvent::ApiKeysChanged { owner_id: account.id.0, key_id: None };
        self.write_and_publish(event, move |accounts, event| async move {
            Ok(accounts.api_key_store().delete_service_account(account.id, &audit, &event).await?)
        })
        .await?
        .ok_or(Error::ServiceAccountNotFound)
    }

    /// `roles` for a service account: defined, at most 16, sorted and
    /// unique. Unlike a user's, they do not include `user`: a service
    /// account has only the roles it is given.
    fn service_account_roles(&self, roles: &[String]) -> Result<Vec<String>> {
        let defined = self.config.roles.current();
        if let Some(unknown) = roles.iter().find(|role| !defined.has_role(role)) {
            let violation = FieldViolation::new("roles", format!("{unknown:?} is not a defined role"));
            return Err(Error::InvalidArgument(vec![violation]));
        }
        if roles.len() > MAX_SERVICE_ACCOUNT_ROLES {
            return Err(Error::invalid("roles", "must be at most 16"));
        }
        let mut roles = roles.to_vec();
        roles.sort();
        roles.dedup();
        Ok(roles)
    }
}

fn parse_description(raw: &str) -> Result<String> {
    let description = raw.trim();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid("description", "must be at most 512 characters"));
    }
    if description.chars().any(|c| c.is_control() && c != '\n') {
        return Err(Error::invalid("description", "must not contain control characters"));
    }
    Ok(description.to_owned())
}
