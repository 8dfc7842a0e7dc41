//! The `email_tokens` table.

use sea_orm::entity::prelude::*;

/// A row of `email_tokens`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "email_tokens")]
pub struct Model {
    /// SHA-256 of the token.
    #[sea_orm(primary_key, auto_increment = false)]
    pub token_hash: Vec<u8>,
    /// What the token is for (`verify_email`, `reset_password`).
    pub purpose: String,
    /// Whose token it is.
    pub user_id: String,
    /// The address it was sent to.
    pub email: String,
    /// Issue time.
    pub created_at: i64,
    /// Expiry.
    pub expires_at: i64,
}

/// `email_tokens` has no navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
