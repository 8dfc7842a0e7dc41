//! The `service_accounts` table.

use sea_orm::entity::prelude::*;

/// A row of `service_accounts`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "service_accounts")]
pub struct Model {
    /// Id (UUIDv7).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Unique name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Roles, encoded as users' are.
    pub roles: String,
    /// Creation time.
    pub created_at: i64,
}

/// `service_accounts` has no navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
