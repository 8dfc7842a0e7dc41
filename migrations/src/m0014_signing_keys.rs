//! The keys that sign access tokens (`SessionService.IssueAccessToken`).

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `signing_keys`. Each key has a generation, unique, so that two
/// replicas rotating at once cannot both add the next key: the second
/// insert conflicts and that replica reads the winner's. The private key is
/// sealed (XChaCha20-Poly1305, bound to its `kid`); the public one is a JWK.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0014_signing_keys"
    }
}

#[derive(DeriveIden)]
enum SigningKeys {
    Table,
    Kid,
    Generation,
    Algorithm,
    SealedPrivateKey,
    PublicJwk,
    CreatedAt,
    ActivatesAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .col(string_len(SigningKeys::Kid, 64).primary_key())
                    .col(big_integer(SigningKeys::Generation).unique_key())
                    .col(string_len(SigningKeys::Algorithm, 16))
                    .col(text(SigningKeys::SealedPrivateKey))
                    .col(text(SigningKeys::PublicJwk))
                    .col(big_integer(SigningKeys::CreatedAt))
                    .col(big_integer(SigningKeys::ActivatesAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(SigningKeys::Table).to_owned()).await
    }
}
