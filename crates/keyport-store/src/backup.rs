//! Online backups of the embedded SQLite database, and their restore.
//!
//! A backup is `VACUUM INTO`: one read transaction copies a consistent
//! snapshot into a new, compacted file while the server goes on reading and
//! writing (WAL mode lets both proceed). Every commit acknowledged before
//! the backup began is in it; nothing half-written can be. Restoring
//! checks the copy first, then puts it in place with a rename, so a failed
//! restore leaves no database rather than a broken one. PostgreSQL has its
//! own tools (`pg_dump`, `pg_restore`).

use std::{
    fs::{self, OpenOptions},
    io,
    os::unix::fs::{DirBuilderExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

use keyport_migration::Migrator;
use sea_orm::sqlx::{
    self, Row,
    sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions},
};
use sea_orm_migration::MigratorTrait;

use crate::{backend::Backend, store::SeaStore};

/// Why a backup or restore did not happen.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// Backups of PostgreSQL are made with its own tools.
    #[error("the database is PostgreSQL: back it up with pg_dump (see docs/operations.md)")]
    NotSqlite,
    /// The target exists; a backup or restore never overwrites.
    #[error("{0} exists already; choose a new path (nothing was overwritten)")]
    Exists(PathBuf),
    /// The path is not valid UTF-8, which SQLite's `VACUUM INTO` needs.
    #[error("the path {0:?} is not valid UTF-8")]
    Path(PathBuf),
    /// The file is not a usable Keyport database.
    #[error("{path} is not a usable Keyport backup: {problem}")]
    Unusable {
        /// The file checked.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
    /// The database refused.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// Reading or writing a file failed.
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
}

/// What a checked backup holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSummary {
    /// Size of the file in bytes.
    pub bytes: u64,
    /// The last migration applied to it.
    pub schema: String,
    /// Users in it.
    pub users: i64,
}

impl SeaStore {
    /// Writes a consistent copy of this SQLite database to `target`, a new
    /// file (mode 0600), while the database stays in use; then checks it.
    pub async fn backup_to(&self, target: &Path) -> Result<BackupSummary, BackupError> {
        if self.backend() != Backend::Sqlite {
            return Err(BackupError::NotSqlite);
        }
        let name = target.to_str().ok_or_else(|| BackupError::Path(target.to_path_buf()))?;
        // Created empty and private first: VACUUM INTO accepts an empty file
        // and keeps its mode; `create_new` refuses an existing one.
        create_private(target)?;
        let pool = self.connection().get_sqlite_connection_pool();
        let copied = match sqlx::query("VACUUM INTO ?").bind(name).execute(pool).await {
            Ok(_) => check(target).await,
            Err(error) => Err(error.into()),
        };
        // A copy that fails its check is no backup: nothing is left behind.
        if copied.is_err() {
            let _ = fs::remove_file(target);
        }
        copied
    }
}

/// Checks that `path` is an intact Keyport database that this version can
/// open: SQLite's integrity check passes and every migration it has applied
/// is one this binary knows.
pub async fn check(path: &Path) -> Result<BackupSummary, BackupError> {
    let unusable = |problem: String| BackupError::Unusable { path: path.to_path_buf(), problem };
    let bytes = fs::metadata(path)?.len();
    let pool = open_read_only(path).await.map_err(|e| unusable(e.to_string()))?;
    let checked = async {
        let integrity: String =
            sqlx::query("PRAGMA integrity_check").fetch_one(&pool).await.map_err(|e| unusable(e.to_string()))?.get(0);
        if integrity != "ok" {
            return Err(unusable(format!("integrity check: {integrity}")));
        }
        let applied: Vec<String> = sqlx::query("SELECT version FROM seaql_migrations ORDER BY version")
            .fetch_all(&pool)
            .await
            .map_err(|_| unusable("no Keyport schema (seaql_migrations is missing)".into()))?
            .iter()
            .map(|row| row.get(0))
            .collect();
        let known: Vec<String> = Migrator::migrations().iter().map(|m| m.name().to_owned()).collect();
        if let Some(newer) = applied.iter().find(|name| !known.contains(name)) {
            return Err(unusable(format!("migration {newer} is from a newer Keyport; restore it with that version")));
        }
        let schema = applied.last().cloned().ok_or_else(|| unusable("no migration applied".into()))?;
        let users: i64 = sqlx::query("SELECT COUNT(*) FROM users")
            .fetch_one(&pool)
            .await
            .map_err(|e| unusable(e.to_string()))?
            .get(0);
        Ok(BackupSummary { bytes, schema, users })
    };
    let summary = checked.await;
    pool.close().await;
    summary
}

/// Restores the backup at `backup` as the database file `database`, which
/// must not exist (move the old one aside, with its `-wal` and `-shm`,
/// with the server stopped). The copy is checked, written beside the
/// target, synced, and renamed into place.
pub async fn restore(backup: &Path, database: &Path) -> Result<BackupSummary, BackupError> {
    let summary = check(backup).await?;
    for existing in [database.to_path_buf(), suffixed(database, "-wal"), suffixed(database, "-shm")] {
        if existing.exists() {
            return Err(BackupError::Exists(existing));
        }
    }
    let dir = database.parent().filter(|dir| !dir.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // Private, like the data directory Keyport makes itself.
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let partial = suffixed(database, ".restoring");
    let _ = fs::remove_file(&partial);
    let copied = (|| {
        let mut from = fs::File::open(backup)?;
        let mut to = create_private(&partial)?;
        io::copy(&mut from, &mut to)?;
        to.sync_all()?;
        Ok::<_, BackupError>(())
    })();
    if let Err(error) = copied {
        let _ = fs::remove_file(&partial);
        return Err(error);
    }
    // The copy is checked too: what is renamed into place is intact.
    if let Err(error) = check(&partial).await {
        let _ = fs::remove_file(&partial);
        return Err(error);
    }
    fs::rename(&partial, database)?;
    fs::File::open(dir)?.sync_all()?;
    Ok(summary)
}

async fn open_read_only(path: &Path) -> Result<SqlitePool, sqlx::Error> {
    let options = SqliteConnectOptions::new().filename(path).read_only(true).create_if_missing(false);
    SqlitePoolOptions::new().max_connections(1).connect_with(options).await
}

fn create_private(path: &Path) -> Result<fs::File, BackupError> {
    OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|error| {
        if error.kind() == io::ErrorKind::AlreadyExists {
            BackupError::Exists(path.to_path_buf())
        } else {
            error.into()
        }
    })
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreOptions;

    async fn migrated(dir: &Path) -> SeaStore {
        let url = format!("sqlite://{}?mode=rwc", dir.join("live.db").display());
        let store = SeaStore::connect(&url, &StoreOptions::for_backend(Backend::Sqlite)).await.unwrap();
        store.migrate().await.unwrap();
        store
    }

    #[tokio::test]
    async fn a_backup_is_checked_and_private_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let store = migrated(dir.path()).await;
        let copy = dir.path().join("copy.db");
        let summary = store.backup_to(&copy).await.unwrap();
        let latest = Migrator::migrations().last().map(|m| m.name().to_owned()).unwrap();
        assert_eq!((summary.schema.as_str(), summary.users), (latest.as_str(), 0));
        assert_eq!(check(&copy).await.unwrap(), summary);
        let before = fs::read(&copy).unwrap();
        assert!(matches!(store.backup_to(&copy).await, Err(BackupError::Exists(_))));
        assert_eq!(fs::read(&copy).unwrap(), before);
    }

    #[tokio::test]
    async fn a_database_from_a_newer_keyport_is_neither_backed_up_nor_restored() {
        let dir = tempfile::tempdir().unwrap();
        let store = migrated(dir.path()).await;
        let copy = dir.path().join("current.db");
        store.backup_to(&copy).await.unwrap();
        let pool = store.connection().get_sqlite_connection_pool();
        sqlx::query("INSERT INTO seaql_migrations (version, applied_at) VALUES ('m9999_from_the_future', 0)")
            .execute(pool)
            .await
            .unwrap();
        let newer = dir.path().join("newer.db");
        let refused = store.backup_to(&newer).await.unwrap_err();
        assert!(refused.to_string().contains("m9999_from_the_future"), "{refused}");
        assert!(!newer.exists(), "a copy that fails its check is removed");

        // Restoring the good copy works once; the target then exists.
        let target = dir.path().join("restored").join("keyport.db");
        restore(&copy, &target).await.unwrap();
        assert!(matches!(restore(&copy, &target).await, Err(BackupError::Exists(_))));
        assert!(!dir.path().join("restored").join("keyport.db.restoring").exists());
    }
}
