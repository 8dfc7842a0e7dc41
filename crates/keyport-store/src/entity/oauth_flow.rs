//! The `oauth_flows` table.

use sea_orm::entity::prelude::*;

/// A row of `oauth_flows`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_flows")]
pub struct Model {
    /// SHA-256 of the state.
    #[sea_orm(primary_key, auto_increment = false)]
    pub state_hash: Vec<u8>,
    /// SHA-256 of the browser binding.
    pub binding_hash: Vec<u8>,
    /// Provider id.
    pub provider_id: String,
    /// Redirect URI used at the start.
    pub redirect_uri: String,
    /// PKCE verifier.
    pub pkce_verifier: String,
    /// OpenID Connect nonce.
    pub nonce: Option<String>,
    /// User to link to, for a link flow.
    pub link_user_id: Option<String>,
    /// Start time.
    pub created_at: i64,
    /// Expiry.
    pub expires_at: i64,
}

/// `oauth_flows` has no navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
