//! The `accounts` table: external identities linked to users.

use sea_orm::entity::prelude::*;

/// A row of `accounts`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "accounts")]
pub struct Model {
    /// UUIDv7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// The user.
    pub user_id: String,
    /// Provider id.
    pub provider_id: String,
    /// Subject at the provider.
    pub subject: String,
    /// Email reported at linking.
    pub email: String,
    /// Linking time.
    pub linked_at: i64,
}

/// `accounts` has no navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
