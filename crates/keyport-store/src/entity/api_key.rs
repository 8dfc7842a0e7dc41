//! The `api_keys` table.

use sea_orm::entity::prelude::*;

/// A row of `api_keys`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    /// Public key id (the lookup half of the key).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// What the key is for.
    pub name: String,
    /// SHA-256 of the key's secret.
    pub secret_hash: Vec<u8>,
    /// The owning user; null for a service account's key.
    pub owner_user_id: Option<String>,
    /// The owning service account; null for a user's key.
    pub service_account_id: Option<String>,
    /// Space-separated permissions.
    pub scopes: String,
    /// Creation time.
    pub created_at: i64,
    /// Expiry; null for none.
    pub expires_at: Option<i64>,
    /// Last recorded use.
    pub last_used_at: Option<i64>,
    /// Most checks per minute; 0 for none of its own.
    pub rate_limit_per_minute: i64,
    /// The key that replaced this one during its grace; null otherwise.
    pub replaced_by: Option<String>,
}

/// `api_keys` is read with its owner by hand.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
