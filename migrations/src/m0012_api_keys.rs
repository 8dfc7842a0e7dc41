//! API keys and the service accounts that own them
//! (`ApiKeyService`, `AdminService.CreateServiceAccount`).

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `service_accounts` and `api_keys`. A key belongs to a user or to
/// a service account (exactly one of the two columns is set) and goes with
/// its owner.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0012_api_keys"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum ServiceAccounts {
    Table,
    Id,
    Name,
    Description,
    Roles,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    Name,
    SecretHash,
    OwnerUserId,
    ServiceAccountId,
    Scopes,
    CreatedAt,
    ExpiresAt,
    LastUsedAt,
    RateLimitPerMinute,
    ReplacedBy,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ServiceAccounts::Table)
                    .col(string_len(ServiceAccounts::Id, 36).primary_key())
                    .col(string_len(ServiceAccounts::Name, 64).unique_key())
                    .col(text(ServiceAccounts::Description))
                    .col(text(ServiceAccounts::Roles))
                    .col(big_integer(ServiceAccounts::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(string_len(ApiKeys::Id, 22).primary_key())
                    .col(text(ApiKeys::Name))
                    .col(binary_len(ApiKeys::SecretHash, 32))
                    .col(string_len_null(ApiKeys::OwnerUserId, 36))
                    .col(string_len_null(ApiKeys::ServiceAccountId, 36))
                    .col(text(ApiKeys::Scopes))
                    .col(big_integer(ApiKeys::CreatedAt))
                    .col(big_integer_null(ApiKeys::ExpiresAt))
                    .col(big_integer_null(ApiKeys::LastUsedAt))
                    .col(big_integer(ApiKeys::RateLimitPerMinute))
                    .col(string_len_null(ApiKeys::ReplacedBy, 22))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ApiKeys::Table, ApiKeys::OwnerUserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(ApiKeys::Table, ApiKeys::ServiceAccountId)
                            .to(ServiceAccounts::Table, ServiceAccounts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx_api_keys_owner_user_id", ApiKeys::OwnerUserId),
            ("idx_api_keys_service_account_id", ApiKeys::ServiceAccountId),
            ("idx_api_keys_expires_at", ApiKeys::ExpiresAt),
        ] {
            manager.create_index(Index::create().name(name).table(ApiKeys::Table).col(column).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(ApiKeys::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(ServiceAccounts::Table).to_owned()).await
    }
}
