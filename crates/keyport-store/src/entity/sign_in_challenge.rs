//! The `sign_in_challenges` table: sign-ins waiting for a second factor.

use sea_orm::entity::prelude::*;

/// A row of `sign_in_challenges`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sign_in_challenges")]
pub struct Model {
    /// SHA-256 of the challenge's secret.
    #[sea_orm(primary_key, auto_increment = false)]
    pub hash: Vec<u8>,
    /// Who passed the first factor.
    pub user_id: String,
    /// How (`password`, `oauth:<provider>`, `email`).
    pub first_factor: String,
    /// Answers taken so far.
    pub attempts: i32,
    /// Client IP at the first factor.
    pub ip_address: Option<String>,
    /// Client user agent at the first factor.
    pub user_agent: Option<String>,
    /// When the first factor was passed.
    pub created_at: i64,
    /// Expiry.
    pub expires_at: i64,
    /// The WebAuthn state of the passkey request offered with it.
    pub passkey_state: Option<String>,
}

/// `sign_in_challenges` has no navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
