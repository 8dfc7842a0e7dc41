//! Impersonation: the admin behind a session opened to act as a user.

use sea_orm_migration::{prelude::*, schema::*};

/// Adds `sessions.impersonator_id`, null for a user's own session.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0009_impersonation"
    }
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    ImpersonatorId,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // No foreign key: the admin may be deleted while the session lives
        // on until its short end; the id stays as the record of who it was.
        manager
            .alter_table(
                Table::alter().table(Sessions::Table).add_column(text_null(Sessions::ImpersonatorId)).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(Table::alter().table(Sessions::Table).drop_column(Sessions::ImpersonatorId).to_owned())
            .await
    }
}
