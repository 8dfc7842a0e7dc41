//! Throttling counters that every replica on PostgreSQL shares: request
//! buckets and runs of failed sign-ins. Keys are SHA-256 digests of the
//! counter's name, so the tables hold no addresses or emails. (SQLite
//! deployments count in memory and leave them empty.)

use sea_orm_migration::{prelude::*, schema::*};

/// Creates `rate_buckets` and `failure_runs`.
pub(crate) struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m0005_throttling"
    }
}

#[derive(DeriveIden)]
enum RateBuckets {
    Table,
    KeyHash,
    FullAt,
}

#[derive(DeriveIden)]
enum FailureRuns {
    Table,
    KeyHash,
    Started,
    Last,
    Attempts,
    Refused,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A bucket is one timestamp: when it is full again.
        manager
            .create_table(
                Table::create()
                    .table(RateBuckets::Table)
                    .col(binary_len(RateBuckets::KeyHash, 32).primary_key())
                    .col(big_integer(RateBuckets::FullAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_rate_buckets_full_at")
                    .table(RateBuckets::Table)
                    .col(RateBuckets::FullAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(FailureRuns::Table)
                    .col(binary_len(FailureRuns::KeyHash, 32).primary_key())
                    .col(big_integer(FailureRuns::Started))
                    .col(big_integer(FailureRuns::Last))
                    .col(integer(FailureRuns::Attempts))
                    .col(big_integer(FailureRuns::Refused))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idx_failure_runs_last")
                    .table(FailureRuns::Table)
                    .col(FailureRuns::Last)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table(FailureRuns::Table).to_owned()).await?;
        manager.drop_table(Table::drop().table(RateBuckets::Table).to_owned()).await?;
        Ok(())
    }
}
