//! The `signing_keys` table: the keys that sign access tokens.

use sea_orm::entity::prelude::*;

/// A row of `signing_keys`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signing_keys")]
pub struct Model {
    /// The key id: the public key's RFC 7638 thumbprint.
    #[sea_orm(primary_key, auto_increment = false)]
    pub kid: String,
    /// The key's place in the rotation (unique).
    pub generation: i64,
    /// `EdDSA` or `ES256`.
    pub algorithm: String,
    /// The PKCS#8 private key, sealed and bound to `kid`.
    pub sealed_private_key: String,
    /// The public key as a JWK.
    pub public_jwk: String,
    /// When it was made.
    pub created_at: i64,
    /// When it starts signing.
    pub activates_at: i64,
}

/// `signing_keys` has no navigable relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
