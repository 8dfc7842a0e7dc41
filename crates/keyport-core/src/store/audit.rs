//! Storage of the audit trail.

use async_trait::async_trait;
use uuid::Uuid;

use super::StoreResult;
use crate::{audit::AuditEvent, clock::Timestamp, user::UserId};

/// Which audit entries [`AuditStore::list_audit_events`] returns: every set
/// filter must match. Pages run newest first, so a page continues below
/// `before_id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Entries by or about this user: their user, or the target of an
    /// admin's action.
    pub user_id: Option<UserId>,
    /// Entries of this kind (`sign_in`, `user_banned`, ...).
    pub kind: Option<String>,
    /// Entries at or after this time.
    pub after: Option<Timestamp>,
    /// Entries before this time.
    pub before: Option<Timestamp>,
    /// Entries whose id sorts below this one: the last of the previous page.
    pub before_id: Option<Uuid>,
}

/// An audit entry as stored, for listing: text as written, so that entries
/// of kinds a newer release added read back too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAudit {
    /// Unique, time-ordered id.
    pub id: Uuid,
    /// When it happened.
    pub at: Timestamp,
    /// What happened.
    pub kind: String,
    /// The user concerned (the admin, for an admin's action).
    pub user_id: Option<String>,
    /// The session concerned.
    pub session_id: Option<String>,
    /// Client IP.
    pub ip_address: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Machine-readable detail.
    pub detail: Option<String>,
    /// The user an admin's action was about.
    pub target_user_id: Option<String>,
}

impl From<&AuditEvent> for StoredAudit {
    fn from(event: &AuditEvent) -> Self {
        Self {
            id: event.id,
            at: event.at,
            kind: event.kind.as_str().to_owned(),
            user_id: event.user_id.map(|id| id.to_string()),
            session_id: event.session_id.as_ref().map(|id| id.as_str().to_owned()),
            ip_address: event.client.ip_address.clone(),
            user_agent: event.client.user_agent.clone(),
            detail: event.detail.clone(),
            target_user_id: event.target.map(|id| id.to_string()),
        }
    }
}

/// The audit trail. The other areas append to it in their own
/// transactions; this trait covers what stands alone.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends to the audit trail.
    async fn record_audit(&self, event: &AuditEvent) -> StoreResult<()>;

    /// Up to `limit` entries matching `query`, newest first.
    async fn list_audit_events(&self, query: &AuditQuery, limit: u64) -> StoreResult<Vec<StoredAudit>>;

    /// Deletes the audit events recorded before `before`; returns how many.
    async fn delete_audit_events_before(&self, before: Timestamp) -> StoreResult<u64>;
}
