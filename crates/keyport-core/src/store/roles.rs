//! Storage of the roles admins define at run time.

use async_trait::async_trait;

use super::StoreResult;
use crate::{audit::AuditEvent, clock::Timestamp, events::SessionEvent};

/// A role defined at run time, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRole {
    /// Its name.
    pub name: String,
    /// What it grants: permissions, `resource:*` or `*`, checked when set.
    pub grants: Vec<String>,
    /// When its grants were last set.
    pub updated_at: Timestamp,
}

/// Run-time roles. Each change emits its event in its transaction, as the
/// other areas' changes do.
#[async_trait]
pub trait RoleStore: Send + Sync + 'static {
    /// Every run-time role, by name.
    async fn list_roles(&self) -> StoreResult<Vec<StoredRole>>;

    /// Creates `role`, or replaces the grants of the one with its name.
    async fn put_role(&self, role: &StoredRole, audit: &AuditEvent, event: &SessionEvent) -> StoreResult<()>;

    /// Deletes the run-time role `name`; false (nothing written) when there
    /// is none.
    async fn delete_role(&self, name: &str, audit: &AuditEvent, event: &SessionEvent) -> StoreResult<bool>;
}
