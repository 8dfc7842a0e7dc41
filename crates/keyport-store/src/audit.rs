//! The audit area: the trail of security-relevant events.

use async_trait::async_trait;
use keyport_core::{
    Timestamp,
    audit::AuditEvent,
    store::{AuditQuery, AuditStore, StoreError, StoreResult, StoredAudit},
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, sea_query::Condition};
use uuid::Uuid;

use crate::{SeaStore, db_error::classify, entity::audit_event, rows::insert_audit};

#[async_trait]
impl AuditStore for SeaStore {
    async fn record_audit(&self, event: &AuditEvent) -> StoreResult<()> {
        insert_audit(&self.db, event).await
    }

    async fn list_audit_events(&self, query: &AuditQuery, limit: u64) -> StoreResult<Vec<StoredAudit>> {
        let mut select = audit_event::Entity::find().order_by_desc(audit_event::Column::Id).limit(limit);
        if let Some(user_id) = query.user_id {
            let (by, about) = (audit_event::Column::UserId, audit_event::Column::TargetUserId);
            select = select.filter(Condition::any().add(by.eq(user_id.to_string())).add(about.eq(user_id.to_string())));
        }
        if let Some(kind) = &query.kind {
            select = select.filter(audit_event::Column::Kind.eq(kind.as_str()));
        }
        if let Some(after) = query.after {
            select = select.filter(audit_event::Column::At.gte(after.unix_millis()));
        }
        if let Some(before) = query.before {
            select = select.filter(audit_event::Column::At.lt(before.unix_millis()));
        }
        if let Some(before_id) = query.before_id {
            select = select.filter(audit_event::Column::Id.lt(before_id.to_string()));
        }
        let rows = select.all(&self.db).await.map_err(classify)?;
        rows.into_iter()
            .map(|row| {
                let id = Uuid::parse_str(&row.id)
                    .map_err(|e| StoreError::Other(format!("audit event {:?} has a malformed id: {e}", row.id)))?;
                Ok(StoredAudit {
                    id,
                    at: Timestamp::from_unix_millis(row.at),
                    kind: row.kind,
                    user_id: row.user_id,
                    session_id: row.session_id,
                    ip_address: row.ip_address,
                    user_agent: row.user_agent,
                    detail: row.detail,
                    target_user_id: row.target_user_id,
                })
            })
            .collect()
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
