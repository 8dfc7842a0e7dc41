//! The `email_sign_ins` table.

use sea_orm::entity::prelude::*;

/// A row of `email_sign_ins`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "email_sign_ins")]
pub struct Model {
    /// SHA-256 of the browser's binding.
    #[sea_orm(primary_key, auto_increment = false)]
    pub binding_hash: Vec<u8>,
    /// The address signing in.
    pub email: String,
    /// SHA-256 of the link's token.
    pub link_hash: Vec<u8>,
    /// SHA-256 of the binding and the code.
    pub code_hash: Vec<u8>,
    /// Proofs tried so far.
    pub attempts: i32,
    /// Start time.
    pub created_at: i64,
    /// Expiry.
    pub expires_at: i64,
}

/// `email_sign_ins` has no navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
