//! The `roles` table: roles defined at run time.

use sea_orm::entity::prelude::*;

/// A row of `roles`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "roles")]
pub struct Model {
    /// The role's name.
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    /// Space-separated grants: permissions, `resource:*` or `*`.
    pub grants: String,
    /// When the grants were last set.
    pub updated_at: i64,
}

/// `roles` has no navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
