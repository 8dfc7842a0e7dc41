//! The `totp_factors` table: one authenticator app per user.

use sea_orm::entity::prelude::*;

/// A row of `totp_factors`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "totp_factors")]
pub struct Model {
    /// Owner.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: String,
    /// The shared secret, sealed (`v1.<key id>.<sealed bytes>`).
    pub sealed_secret: String,
    /// When the enrolment started.
    pub created_at: i64,
    /// When it was turned on; null while it waits for its first code.
    pub enabled_at: Option<i64>,
    /// The latest TOTP step whose code was accepted.
    pub last_used_step: Option<i64>,
}

/// `totp_factors` has no navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
