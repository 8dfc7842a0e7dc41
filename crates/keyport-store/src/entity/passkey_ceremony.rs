//! The `passkey_ceremonies` table: WebAuthn ceremonies under way.

use sea_orm::entity::prelude::*;

/// A row of `passkey_ceremonies`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "passkey_ceremonies")]
pub struct Model {
    /// SHA-256 of the ceremony token's secret.
    #[sea_orm(primary_key, auto_increment = false)]
    pub hash: Vec<u8>,
    /// `registration`, `sign_in` or `step_up`.
    pub purpose: String,
    /// The session it is bound to, if any.
    pub session_id: Option<String>,
    /// webauthn-rs's ceremony state as JSON.
    pub state: String,
    /// Start.
    pub created_at: i64,
    /// Expiry.
    pub expires_at: i64,
}

/// `passkey_ceremonies` has no navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
