//! Applying Keyport's migrations at start, safely beside other replicas.
//!
//! Two things SeaORM's `Migrator::up` alone gets wrong during a rolling
//! upgrade on one PostgreSQL database:
//! - replicas starting together race to apply the same migration, and all
//!   but one fail to start; here they take turns under an advisory lock;
//! - an old replica that restarts after the new release migrated refuses
//!   the schema ("applied but its file is missing"); here it serves the
//!   newer schema, whose migrations are additive, as long as every
//!   migration it knows is applied.

use std::collections::BTreeSet;

use keyport_core::store::{StoreError, StoreResult};
use keyport_migration::Migrator;
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseExecutor, TransactionTrait};
use sea_orm_migration::{MigratorTrait, seaql_migrations};

use crate::{backend::Backend, db_error::classify};

/// The PostgreSQL advisory lock migrating replicas take turns on ("kpmigrat").
const MIGRATION_LOCK: i64 = 0x6b70_6d69_6772_6174;

/// What [`migrate`] found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Migrated {
    /// Every migration this build knows is applied now (`applied` of them
    /// by this call).
    Current {
        /// How many were pending and applied.
        applied: usize,
    },
    /// The schema has migrations of a newer Keyport besides all of this
    /// build's: it is served as it is.
    Newer {
        /// The migrations this build does not know, oldest first.
        unknown: Vec<String>,
    },
}

/// Applies this build's pending migrations to `db`.
pub(crate) async fn migrate(db: &DatabaseConnection, backend: Backend) -> StoreResult<Migrated> {
    match backend {
        Backend::Postgres => {
            // DDL is transactional here: the lock is held until the whole
            // set commits, and a failed migration leaves nothing behind.
            let txn = db.begin().await.map_err(classify)?;
            txn.execute_unprepared(&format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"))
                .await
                .map_err(classify)?;
            let migrated = migrate_on(DatabaseExecutor::from(&txn)).await?;
            txn.commit().await.map_err(classify)?;
            Ok(migrated)
        }
        // One process owns the file; SQLite's own locking orders writers.
        Backend::Sqlite => migrate_on(DatabaseExecutor::from(db)).await,
    }
}

async fn migrate_on(db: DatabaseExecutor<'_>) -> StoreResult<Migrated> {
    let recorded: BTreeSet<String> =
        Migrator::get_migration_models(&db).await.map_err(classify)?.into_iter().map(version).collect();
    let known: Vec<String> = Migrator::migrations().iter().map(|m| m.name().to_owned()).collect();
    let pending: Vec<&String> = known.iter().filter(|name| !recorded.contains(*name)).collect();
    let unknown: Vec<String> = recorded.iter().filter(|name| !known.contains(name)).cloned().collect();
    match (unknown.is_empty(), pending.is_empty()) {
        (true, _) => {
            let applied = pending.len();
            Migrator::up(db, None).await.map_err(classify)?;
            Ok(Migrated::Current { applied })
        }
        (false, true) => Ok(Migrated::Newer { unknown }),
        // Migrations only ever append, so a newer schema lacking one of
        // ours is not one Keyport made: never guess at it.
        (false, false) => Err(StoreError::Other(format!(
            "the schema has migrations this Keyport does not know ({}) and lacks some it does ({}); \
             migrate it with the Keyport that made it",
            unknown.join(", "),
            pending.iter().map(|name| name.as_str()).collect::<Vec<_>>().join(", "),
        ))),
    }
}

fn version(model: seaql_migrations::Model) -> String {
    model.version
}
