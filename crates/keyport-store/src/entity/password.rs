//! The `passwords` table: one argon2id PHC string per user.

use sea_orm::entity::prelude::*;

/// A row of `passwords`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "passwords")]
pub struct Model {
    /// Owner.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    /// Argon2id PHC string.
    pub hash: String,
    /// When the hash was last written.
    pub updated_at: i64,
}

/// `passwords` has no navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
