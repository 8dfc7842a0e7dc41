//! Bans: an admin's suspension of an account, kept on its user row.

use sea_orm_migration::{prelude::*, schema::*};

/// Adds `users.banned_at`, `users.ban_reason` and `users.ban_expires_at`,
/// all null for a user never banned (or unbanned since).
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0008_bans"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    BannedAt,
    BanReason,
    BanExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time.
        for column in
            [big_integer_null(Users::BannedAt), text_null(Users::BanReason), big_integer_null(Users::BanExpiresAt)]
        {
            manager.alter_table(Table::alter().table(Users::Table).add_column(column).to_owned()).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Users::BanExpiresAt, Users::BanReason, Users::BannedAt] {
            manager.alter_table(Table::alter().table(Users::Table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
