//! Social sign-in: started OAuth flows and linked external accounts.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `oauth_flows` and `accounts`.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0002_oauth"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum OauthFlows {
    Table,
    StateHash,
    BindingHash,
    ProviderId,
    RedirectUri,
    PkceVerifier,
    Nonce,
    LinkUserId,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum Accounts {
    Table,
    Id,
    UserId,
    ProviderId,
    Subject,
    Email,
    LinkedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Only hashes of the state and binding: a leaked row cannot finish a flow.
        manager
            .create_table(
                Table::create()
                    .table(OauthFlows::Table)
                    .col(binary_len(OauthFlows::StateHash, 32).primary_key())
                    .col(binary_len(OauthFlows::BindingHash, 32))
                    .col(string_len(OauthFlows::ProviderId, 64))
                    .col(text(OauthFlows::RedirectUri))
                    .col(text(OauthFlows::PkceVerifier))
                    .col(text_null(OauthFlows::Nonce))
                    .col(string_len_null(OauthFlows::LinkUserId, 36))
                    .col(big_integer(OauthFlows::CreatedAt))
                    .col(big_integer(OauthFlows::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_oauth_flows_expires_at")
                    .table(OauthFlows::Table)
                    .col(OauthFlows::ExpiresAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Accounts::Table)
                    .col(string_len(Accounts::Id, 36).primary_key())
                    .col(string_len(Accounts::UserId, 36))
                    .col(string_len(Accounts::ProviderId, 64))
                    .col(string_len(Accounts::Subject, 255))
                    .col(string_len(Accounts::Email, 254))
                    .col(big_integer(Accounts::LinkedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Accounts::Table, Accounts::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_accounts_provider_subject")
                    .table(Accounts::Table)
                    .col(Accounts::ProviderId)
                    .col(Accounts::Subject)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("idx_accounts_user_id").table(Accounts::Table).col(Accounts::UserId).to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Accounts::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(OauthFlows::Table).to_owned()).await?;
        Ok(())
    }
}
