//! Roles defined at run time (`AdminService.PutRole`), besides the
//! configuration's.

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `roles`: a run-time role's name and its space-separated grants.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0010_roles"
    }
}

#[derive(DeriveIden)]
enum Roles {
    Table,
    Name,
    Grants,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Roles::Table)
                    .if_not_exists()
                    .col(text(Roles::Name).primary_key())
                    .col(text(Roles::Grants))
                    .col(big_integer(Roles::UpdatedAt))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(Roles::Table).to_owned()).await
    }
}
