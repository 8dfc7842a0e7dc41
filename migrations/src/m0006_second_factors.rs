//! Second factors: authenticator apps, backup codes, the challenges of
//! sign-ins waiting for a second factor, and the assurance level a session
//! records.

use sea_orm_migration::{prelude::*, schema::*};

/// Adds the second-factor columns to `users` and `sessions`, and creates
/// `totp_factors`, `backup_codes` and `sign_in_challenges`.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0006_second_factors"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    TwoFactorEnabled,
}

#[derive(DeriveIden)]
enum Sessions {
    Table,
    CreatedAt,
    AssuranceLevel,
    AuthenticatedAt,
}

#[derive(DeriveIden)]
enum TotpFactors {
    Table,
    UserId,
    SealedSecret,
    CreatedAt,
    EnabledAt,
    LastUsedStep,
}

#[derive(DeriveIden)]
enum BackupCodes {
    Table,
    UserId,
    CodeHash,
    UsedAt,
}

#[derive(DeriveIden)]
enum SignInChallenges {
    Table,
    Hash,
    UserId,
    FirstFactor,
    Attempts,
    IpAddress,
    UserAgent,
    CreatedAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite's ALTER TABLE adds one at a time,
        // and a NOT NULL column it adds needs a default.
        let added = [
            (Users::Table.into_iden(), boolean(Users::TwoFactorEnabled).default(false).to_owned()),
            // Every session so far was signed in with one factor (AAL1).
            (Sessions::Table.into_iden(), small_integer(Sessions::AssuranceLevel).default(1).to_owned()),
            (Sessions::Table.into_iden(), big_integer(Sessions::AuthenticatedAt).default(0).to_owned()),
        ];
        for (table, mut column) in added {
            manager.alter_table(Table::alter().table(table).add_column(&mut column).to_owned()).await?;
        }
        // A session so far was last authenticated when it was created.
        manager
            .exec_stmt(
                Query::update()
                    .table(Sessions::Table)
                    .value(Sessions::AuthenticatedAt, Expr::col(Sessions::CreatedAt))
                    .to_owned(),
            )
            .await?;

        // The secret is sealed (encrypted under a configured key, bound to
        // its user); a row with no `enabled_at` is an enrolment waiting for
        // its first code.
        manager
            .create_table(
                Table::create()
                    .table(TotpFactors::Table)
                    .col(string_len(TotpFactors::UserId, 36).primary_key())
                    .col(text(TotpFactors::SealedSecret))
                    .col(big_integer(TotpFactors::CreatedAt))
                    .col(big_integer_null(TotpFactors::EnabledAt))
                    .col(big_integer_null(TotpFactors::LastUsedStep))
                    .foreign_key(
                        ForeignKey::create()
                            .from(TotpFactors::Table, TotpFactors::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        // Hashes only. The primary key leads with `user_id`, so it is also
        // the index of a user's codes.
        manager
            .create_table(
                Table::create()
                    .table(BackupCodes::Table)
                    .col(string_len(BackupCodes::UserId, 36))
                    .col(binary_len(BackupCodes::CodeHash, 32))
                    .col(big_integer_null(BackupCodes::UsedAt))
                    .primary_key(Index::create().col(BackupCodes::UserId).col(BackupCodes::CodeHash))
                    .foreign_key(
                        ForeignKey::create()
                            .from(BackupCodes::Table, BackupCodes::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;

        // Only the challenge's hash: a leaked row cannot finish a sign-in.
        manager
            .create_table(
                Table::create()
                    .table(SignInChallenges::Table)
                    .col(binary_len(SignInChallenges::Hash, 32).primary_key())
                    .col(string_len(SignInChallenges::UserId, 36))
                    .col(text(SignInChallenges::FirstFactor))
                    .col(integer(SignInChallenges::Attempts).default(0))
                    .col(text_null(SignInChallenges::IpAddress))
                    .col(text_null(SignInChallenges::UserAgent))
                    .col(big_integer(SignInChallenges::CreatedAt))
                    .col(big_integer(SignInChallenges::ExpiresAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(SignInChallenges::Table, SignInChallenges::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, column) in [
            ("idx_sign_in_challenges_user_id", SignInChallenges::UserId),
            ("idx_sign_in_challenges_expires_at", SignInChallenges::ExpiresAt),
        ] {
            manager
                .create_index(Index::create().name(name).table(SignInChallenges::Table).col(column).to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in
            [SignInChallenges::Table.into_iden(), BackupCodes::Table.into_iden(), TotpFactors::Table.into_iden()]
        {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        let dropped = [
            (Sessions::Table.into_iden(), Sessions::AuthenticatedAt.into_iden()),
            (Sessions::Table.into_iden(), Sessions::AssuranceLevel.into_iden()),
            (Users::Table.into_iden(), Users::TwoFactorEnabled.into_iden()),
        ];
        for (table, column) in dropped {
            manager.alter_table(Table::alter().table(table).drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
