//! Users, passwords, sessions and the audit trail.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates the identity tables.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0001_identity"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Email,
    Name,
    EmailVerified,
    Roles,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Passwords {
    Table,
    UserId,
    Hash,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    Id,
    UserId,
    SecretHash,
    CreatedAt,
    ExpiresAt,
    AbsoluteExpiresAt,
    RefreshedAt,
    IpAddress,
    UserAgent,
}

#[derive(DeriveIden)]
enum AuditEvents {
    Table,
    Id,
    At,
    Kind,
    UserId,
    SessionId,
    IpAddress,
    UserAgent,
    Detail,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(string_len(Users::Id, 36).primary_key())
                    .col(string_len_uniq(Users::Email, 254))
                    .col(string(Users::Name))
                    .col(boolean(Users::EmailVerified))
                    .col(string(Users::Roles))
                    .col(big_integer(Users::CreatedAt))
                    .col(big_integer(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Passwords::Table)
                    .col(string_len(Passwords::UserId, 36).primary_key())
                    .col(text(Passwords::Hash))
                    .col(big_integer(Passwords::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Passwords::Table, Passwords::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Sessions::Table)
                    .col(string_len(Sessions::Id, 22).primary_key())
                    .col(string_len(Sessions::UserId, 36))
                    .col(binary_len(Sessions::SecretHash, 32))
                    .col(big_integer(Sessions::CreatedAt))
                    .col(big_integer(Sessions::ExpiresAt))
                    .col(big_integer(Sessions::AbsoluteExpiresAt))
                    .col(big_integer(Sessions::RefreshedAt))
                    .col(string_null(Sessions::IpAddress))
                    .col(text_null(Sessions::UserAgent))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Sessions::Table, Sessions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in
            [("idx_sessions_user_id", Sessions::UserId), ("idx_sessions_expires_at", Sessions::ExpiresAt)]
        {
            manager.create_index(Index::create().name(name).table(Sessions::Table).col(column).to_owned()).await?;
        }

        // No foreign key to users: the trail outlives the accounts it describes.
        manager
            .create_table(
                Table::create()
                    .table(AuditEvents::Table)
                    .col(string_len(AuditEvents::Id, 36).primary_key())
                    .col(big_integer(AuditEvents::At))
                    .col(string_len(AuditEvents::Kind, 32))
                    .col(string_len_null(AuditEvents::UserId, 36))
                    .col(string_len_null(AuditEvents::SessionId, 22))
                    .col(string_null(AuditEvents::IpAddress))
                    .col(text_null(AuditEvents::UserAgent))
                    .col(text_null(AuditEvents::Detail))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_audit_events_user_id_at")
                    .table(AuditEvents::Table)
                    .col(AuditEvents::UserId)
                    .col(AuditEvents::At)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            AuditEvents::Table.into_iden(),
            Sessions::Table.into_iden(),
            Passwords::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
