//! The `users` table.

use sea_orm::entity::prelude::*;

/// A row of `users`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    /// UUIDv7, hyphenated.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Normalised email; unique.
    #[sea_orm(unique)]
    pub email: String,
    /// Display name.
    pub name: String,
    /// Whether the email is verified.
    pub email_verified: bool,
    /// Space-separated roles.
    pub roles: String,
    /// Creation time.
    pub created_at: i64,
    /// Last profile change.
    pub updated_at: i64,
    /// Whether a second factor is on.
    pub two_factor_enabled: bool,
    /// When the last ban began; null when never banned or unbanned since.
    pub banned_at: Option<i64>,
    /// Why the admin banned the user.
    pub ban_reason: Option<String>,
    /// When the ban ends on its own; null for a ban until lifted.
    pub ban_expires_at: Option<i64>,
}

/// Relations of `users`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The user's sessions.
    #[sea_orm(has_many = "super::session::Entity")]
    Session,
}

impl Related<super::session::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Session.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
