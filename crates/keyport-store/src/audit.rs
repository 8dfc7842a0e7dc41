//! The audit area: the trail of security-relevant events.

use async_trait::async_trait;
use keyport_core::{
    Timestamp,
    audit::AuditEvent,
    store::{AuditStore, StoreResult},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::{SeaStore, db_error::classify, entity::audit_event, rows::insert_audit};

#[async_trait]
impl AuditStore for SeaStore {
    async fn record_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        insert_audit(&self.db, event).await
    }

    async fn delete_audit_events_before(&self, before: Timestamp) -> StoreResult<u64> {
        let deleted = audit_event::Entity::delete_many()
            .filter(audit_event::Column::At.lt(before.unix_millis()))
            .exec(&self.db)
            .await
            .map_err(classify)?;
        Ok(deleted.rows_affected)
    }
}
