//! Mail: one-time email tokens (verification, password reset) and the
//! outbox the courier sends from.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `email_tokens` and `mail_outbox`.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0003_mail"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum EmailTokens {
    Table,
    TokenHash,
    Purpose,
    UserId,
    Email,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum MailOutbox {
    Table,
    Id,
    Kind,
    Recipient,
    Subject,
    TextBody,
    HtmlBody,
    Status,
    Attempts,
    NextAttemptAt,
    CreatedAt,
    SentAt,
    LastError,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Only the SHA-256 of a token: a leaked row cannot be followed.
        manager
            .create_table(
                Table::create()
                    .table(EmailTokens::Table)
                    .col(binary_len(EmailTokens::TokenHash, 32).primary_key())
                    .col(string_len(EmailTokens::Purpose, 32))
                    .col(string_len(EmailTokens::UserId, 36))
                    .col(string_len(EmailTokens::Email, 254))
                    .col(big_integer(EmailTokens::CreatedAt))
                    .col(big_integer(EmailTokens::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(EmailTokens::Table, EmailTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_email_tokens_user_purpose")
                    .table(EmailTokens::Table)
                    .col(EmailTokens::UserId)
                    .col(EmailTokens::Purpose)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_email_tokens_expires_at")
                    .table(EmailTokens::Table)
                    .col(EmailTokens::ExpiresAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(MailOutbox::Table)
                    .col(string_len(MailOutbox::Id, 36).primary_key())
                    .col(string_len(MailOutbox::Kind, 32))
                    .col(string_len(MailOutbox::Recipient, 254))
                    .col(text(MailOutbox::Subject))
                    .col(text(MailOutbox::TextBody))
                    .col(text(MailOutbox::HtmlBody))
                    .col(string_len(MailOutbox::Status, 16))
                    .col(integer(MailOutbox::Attempts))
                    .col(big_integer(MailOutbox::NextAttemptAt))
                    .col(big_integer(MailOutbox::CreatedAt))
                    .col(big_integer_null(MailOutbox::SentAt))
                    .col(text_null(MailOutbox::LastError))
                    .to_owned(),
            )
            .await?;
        // The courier's query: the pending messages that are due.
        manager
            .create_index(
                Index::create()
                    .name("idx_mail_outbox_status_next_attempt")
                    .table(MailOutbox::Table)
                    .col(MailOutbox::Status)
                    .col(MailOutbox::NextAttemptAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_mail_outbox_created_at")
                    .table(MailOutbox::Table)
                    .col(MailOutbox::CreatedAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(MailOutbox::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(EmailTokens::Table).to_owned()).await?;
        Ok(())
    }
}
