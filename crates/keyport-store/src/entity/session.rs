//! The `sessions` table.

use sea_orm::entity::prelude::*;

/// A row of `sessions`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "sessions")]
pub struct Model {
    /// Public session id (the lookup half of the token).
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// SHA-256 of the token secret.
    pub secret_hash: Vec<u8>,
    /// Sign-in time.
    pub created_at: i64,
    /// Idle expiry.
    pub expires_at: i64,
    /// Hard expiry.
    pub absolute_expires_at: i64,
    /// Last time the idle expiry moved.
    pub refreshed_at: i64,
    /// Client IP at sign-in.
    pub ip_address: Option<String>,
    /// Client user agent at sign-in.
    pub user_agent: Option<String>,
    /// Authenticator assurance level: 1, or 2 after a second factor.
    pub assurance_level: i16,
    /// When the user last proved who they are: sign-in or step-up.
    pub authenticated_at: i64,
    /// The admin who opened the session to act as the user; null for the
    /// user's own session.
    pub impersonator_id: Option<String>,
    /// The organization the session works in; null for none.
    pub active_organization_id: Option<String>,
}

/// Relations of `sessions`.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    /// The session's user.
    #[sea_orm(belongs_to = "super::user::Entity", from = "Column::UserId", to = "super::user::Column::Id")]
    User,
}

impl Related<super::user::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::User.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
