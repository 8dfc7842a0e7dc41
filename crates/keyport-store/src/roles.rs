//! The roles area: roles admins define at run time.

use async_trait::async_trait;
use keyport_core::{
    Timestamp,
    audit::AuditEvent,
    events::SessionEvent,
    store::{RoleStore, StoreResult, StoredRole},
};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, sea_query::OnConflict};

use crate::{
    SeaStore,
    db_error::classify,
    entity::role,
    rows::insert_audit,
    write::{begin, notify},
};

#[async_trait]
impl RoleStore for SeaStore {
    async fn list_roles(&self) -> StoreResult<Vec<StoredRole>> {
        let rows = role::Entity::find().order_by_asc(role::Column::Name).all(&self.db).await.map_err(classify)?;
        Ok(rows
            .into_iter()
            .map(|row| StoredRole {
                name: row.name,
                grants: row.grants.split_ascii_whitespace().map(str::to_owned).collect(),
                updated_at: Timestamp::from_unix_millis(row.updated_at),
            })
            .collect())
    }

    async fn put_role(&self, stored: &StoredRole, audit: &AuditEvent, event: &SessionEvent) -> StoreResult<()> {
        let row = role::ActiveModel {
            name: Set(stored.name.clone()),
            grants: Set(stored.grants.join(" ")),
            updated_at: Set(stored.updated_at.unix_millis()),
        };
        let upsert = OnConflict::column(role::Column::Name)
            .update_columns([role::Column::Grants, role::Column::UpdatedAt])
            .to_owned();
        let txn = begin(&self.db).await?;
        role::Entity::insert(row).on_conflict(upsert).exec_without_returning(&txn).await.map_err(classify)?;
        insert_audit(&txn, audit).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)
    }

    async fn delete_role(&self, name: &str, audit: &AuditEvent, event: &SessionEvent) -> StoreResult<bool> {
        let txn = begin(&self.db).await?;
        let deleted =
            role::Entity::delete_many().filter(role::Column::Name.eq(name)).exec(&txn).await.map_err(classify)?;
        if deleted.rows_affected == 0 {
            return Ok(false);
        }
        insert_audit(&txn, audit).await?;
        notify(&txn, &self.origin, event).await?;
        txn.commit().await.map_err(classify)?;
        Ok(true)
    }
}
