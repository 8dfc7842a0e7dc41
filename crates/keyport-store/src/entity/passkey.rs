//! The `passkeys` table: users' WebAuthn credentials.

use sea_orm::entity::prelude::*;

/// A row of `passkeys`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "passkeys")]
pub struct Model {
    /// Keyport's id of the passkey (UUID).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// The authenticator's credential id; unique.
    pub credential_id: Vec<u8>,
    /// The user's name for it.
    pub name: String,
    /// webauthn-rs's credential as JSON.
    pub credential: String,
    /// The signature counter last seen.
    pub sign_count: i64,
    /// WebAuthn backup state.
    pub backed_up: bool,
    /// Registration time.
    pub created_at: i64,
    /// Last ceremony passed.
    pub last_used_at: Option<i64>,
}

/// `passkeys` has no navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
