//! Email sign-in: started sign-ins waiting for their link or code.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `email_sign_ins`.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0004_email_sign_in"
    }
}

#[derive(DeriveIden)]
enum EmailSignIns {
    Table,
    BindingHash,
    Email,
    LinkHash,
    CodeHash,
    Attempts,
    CreatedAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Hashes only: the browser's binding, the link's token and the code
        // (keyed by the binding, so a leaked row cannot be brute-forced).
        manager
            .create_table(
                Table::create()
                    .table(EmailSignIns::Table)
                    .col(binary_len(EmailSignIns::BindingHash, 32).primary_key())
                    .col(string_len(EmailSignIns::Email, 254))
                    .col(binary_len(EmailSignIns::LinkHash, 32))
                    .col(binary_len(EmailSignIns::CodeHash, 32))
                    .col(integer(EmailSignIns::Attempts))
                    .col(big_integer(EmailSignIns::CreatedAt))
                    .col(big_integer(EmailSignIns::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_email_sign_ins_email")
                    .table(EmailSignIns::Table)
                    .col(EmailSignIns::Email)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_email_sign_ins_expires_at")
                    .table(EmailSignIns::Table)
                    .col(EmailSignIns::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(EmailSignIns::Table).to_owned()).await?;
        Ok(())
    }
}
