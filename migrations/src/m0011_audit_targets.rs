//! The user an admin's action was about, on its audit entry, so that the
//! trail of a user shows what admins did to them.

use sea_orm_migration::{prelude::*, schema::*};

/// Adds `audit_events.target_user_id` (null but for admins' actions) and
/// an index on it.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0011_audit_targets"
    }
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    TargetUserId,
}

const INDEX: &str = "audit_events_target_user_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(AuditEvents::Table).add_column(text_null(AuditEvents::TargetUserId)).to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name(INDEX).table(AuditEvents::Table).col(AuditEvents::TargetUserId).to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_index(Index::drop().name(INDEX).table(AuditEvents::Table).to_owned()).await?;
        manager
            .alter_table(Table::alter().table(AuditEvents::Table).drop_column(AuditEvents::TargetUserId).to_owned())
            .await
    }
}
