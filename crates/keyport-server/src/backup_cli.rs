//! `keyport backup PATH` and `keyport restore PATH`, for the embedded
//! SQLite database (PostgreSQL has `pg_dump` and `pg_restore`).

use std::path::Path;

use keyport_store::{
    Backend, SeaStore, StoreOptions,
    backup::{self, BackupError, BackupSummary},
};

use crate::config::Config;

/// Why `keyport backup` or `keyport restore` failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupCliError {
    /// No database where the configuration points.
    #[error("no database at {0}: check --data-dir or database_url")]
    NoDatabase(String),
    /// The backup or restore itself failed.
    #[error(transparent)]
    Backup(#[from] BackupError),
    /// The database could not be opened.
    #[error("database: {0}")]
    Store(#[from] keyport_core::store::StoreError),
}

/// Copies the configured SQLite database to `target`, a new file, while
/// Keyport may be serving from it; answers what the copy holds.
pub async fn backup(config: &Config, target: &Path) -> Result<String, BackupCliError> {
    let database = config.sqlite_file().ok_or(BackupError::NotSqlite)?;
    if !database.is_file() {
        return Err(BackupCliError::NoDatabase(database.display().to_string()));
    }
    let store =
        SeaStore::connect(&config.effective_database_url(), &StoreOptions::for_backend(Backend::Sqlite)).await?;
    let copied = store.backup_to(target).await;
    let _ = store.close().await;
    Ok(format!(
        "backed up {} to {}: {}\nthe second-factor key is not in the backup; keep a copy of it apart (docs/operations.md#backups)\n",
        database.display(),
        target.display(),
        describe(&copied?)
    ))
}

/// Puts the backup at `source` in place as the configured SQLite database,
/// which must not exist (stop Keyport and move the old files aside first).
pub async fn restore(config: &Config, source: &Path) -> Result<String, BackupCliError> {
    let database = config.sqlite_file().ok_or(BackupError::NotSqlite)?;
    let summary = backup::restore(source, &database).await?;
    Ok(format!(
        "restored {} as {}: {}\nstart Keyport to apply any newer migrations\n",
        source.display(),
        database.display(),
        describe(&summary)
    ))
}

fn describe(summary: &BackupSummary) -> String {
    format!("{} bytes, {} users, schema {}", summary.bytes, summary.users, summary.schema)
}
