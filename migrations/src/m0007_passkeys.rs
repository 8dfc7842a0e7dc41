//! Passkeys (WebAuthn credentials), the ceremonies under way, and the
//! passkey request a sign-in challenge offers.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `passkeys` and `passkey_ceremonies`, and adds
/// `sign_in_challenges.passkey_state`.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0007_passkeys"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Passkeys {
    Table,
    Id,
    UserId,
    CredentialId,
    Name,
    Credential,
    SignCount,
    BackedUp,
    CreatedAt,
    LastUsedAt,
}

#[derive(DeriveIden)]
enum PasskeyCeremonies {
    Table,
    Hash,
    Purpose,
    SessionId,
    State,
    CreatedAt,
    ExpiresAt,
}

#[derive(DeriveIden)]
enum SignInChallenges {
    Table,
    PasskeyState,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The credential (public key, counter, flags) is webauthn-rs's JSON;
        // `sign_count` repeats the counter so that using a passkey is one
        // conditional UPDATE on it. A credential id is unique over all
        // users: the authenticator made it, and it names one key.
        manager
            .create_table(
                Table::create()
                    .table(Passkeys::Table)
                    .col(string_len(Passkeys::Id, 36).primary_key())
                    .col(string_len(Passkeys::UserId, 36))
                    .col(binary(Passkeys::CredentialId).unique_key())
                    .col(text(Passkeys::Name))
                    .col(text(Passkeys::Credential))
                    .col(big_integer(Passkeys::SignCount))
                    .col(boolean(Passkeys::BackedUp))
                    .col(big_integer(Passkeys::CreatedAt))
                    .col(big_integer_null(Passkeys::LastUsedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Passkeys::Table, Passkeys::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("idx_passkeys_user_id").table(Passkeys::Table).col(Passkeys::UserId).to_owned(),
            )
            .await?;

        // Only the ceremony token's hash. No foreign key to the session: a
        // ceremony of an ended session is refused by the session check and
        // swept at its expiry.
        manager
            .create_table(
                Table::create()
                    .table(PasskeyCeremonies::Table)
                    .col(binary_len(PasskeyCeremonies::Hash, 32).primary_key())
                    .col(string_len(PasskeyCeremonies::Purpose, 16))
                    .col(text_null(PasskeyCeremonies::SessionId))
                    .col(text(PasskeyCeremonies::State))
                    .col(big_integer(PasskeyCeremonies::CreatedAt))
                    .col(big_integer(PasskeyCeremonies::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_passkey_ceremonies_expires_at")
                    .table(PasskeyCeremonies::Table)
                    .col(PasskeyCeremonies::ExpiresAt)
                    .to_owned(),
            )
            .await?;

        manager
            .alter_table(
                Table::alter()
                    .table(SignInChallenges::Table)
                    .add_column(text_null(SignInChallenges::PasskeyState))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter().table(SignInChallenges::Table).drop_column(SignInChallenges::PasskeyState).to_owned(),
            )
            .await?;
        for table in [PasskeyCeremonies::Table.into_iden(), Passkeys::Table.into_iden()] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
