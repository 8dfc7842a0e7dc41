//! Storage of the audit trail.

use async_trait::async_trait;

use super::StoreResult;
use crate::{audit::AuditEvent, clock::Timestamp};

/// The audit trail. The other areas append to it in their own
/// transactions; this trait covers what stands alone.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    /// Appends to the audit trail.
    async fn record_audit(&self, event: &AuditEvent) -> StoreResult<()>;

    /// Deletes the audit events recorded before `before`; returns how many.
    async fn delete_audit_events_before(&self, before: Timestamp) -> StoreResult<u64>;
}
