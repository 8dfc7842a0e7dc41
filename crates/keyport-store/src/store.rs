//! [`SeaStore`]: the SeaORM implementation of the storage contract, its
//! connection pool and [`Store::ping`]. Each area's trait is implemented in
//! the area's own module (`users.rs`, `sessions.rs`, `oauth.rs`, `audit.rs`,
//! `mail.rs`, `factors.rs`).

use std::time::Duration;

use async_trait::async_trait;
use keyport_core::{
    Clock, SystemClock,
    store::{Store, StoreError, StoreResult},
};
use sea_orm::{
    ConnectOptions, Database, DatabaseConnection,
    sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous},
};

use crate::{
    backend::{Backend, StoreOptions},
    counters::SharedCounters,
    db_error::classify,
    migrate::Migrated,
    session_lookup::SessionLookup,
};

/// Every storage area of Keyport in a SeaORM database.
#[derive(Debug, Clone)]
pub struct SeaStore {
    pub(crate) db: DatabaseConnection,
    backend: Backend,
    pub(crate) sessions: SessionLookup,
    /// Marks this process's own event notifications, which it has applied
    /// already, so its relay can skip them.
    pub(crate) origin: String,
}

impl SeaStore {
    /// Opens a pool on `url` (`sqlite://path?mode=rwc` or `postgres://...`).
    pub async fn connect(url: &str, options: &StoreOptions) -> StoreResult<Self> {
        let backend = Backend::of_url(url)
            .ok_or_else(|| StoreError::Other("database URL must be sqlite: or postgres://".into()))?;
        let mut connect = ConnectOptions::new(url);
        connect
            .max_connections(options.max_connections)
            .min_connections(1)
            .acquire_timeout(options.acquire_timeout)
            .connect_timeout(options.acquire_timeout)
            .sqlx_logging(false);
        match backend {
            Backend::Sqlite => {
                // A local file does not drop connections: skip the per-acquire ping.
                connect.test_before_acquire(false).map_sqlx_sqlite_opts(|opts| {
                    opts.journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal)
                        .busy_timeout(Duration::from_secs(5))
                        .foreign_keys(true)
                        .create_if_missing(true)
                });
            }
            Backend::Postgres => {
                // Connections die when the server restarts; check them before use.
                connect.test_before_acquire(true);
            }
        }
        let db = Database::connect(connect).await.map_err(classify)?;
        let sessions = SessionLookup::new(&db, backend);
        Ok(Self { db, backend, sessions, origin: SystemClock.now().uuid_v7().simple().to_string() })
    }

    /// Applies pending migrations; replicas starting together on
    /// PostgreSQL take turns. A schema a newer Keyport migrated further is
    /// left as it is, provided every migration of this build is applied
    /// (an older replica restarting during a rolling upgrade).
    pub async fn migrate(&self) -> StoreResult<Migrated> {
        crate::migrate::migrate(&self.db, self.backend).await
    }

    /// The backend in use.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The throttling counters every replica on this database shares; on
    /// SQLite, whose file belongs to one process, `None`: count in memory.
    pub fn shared_counters(&self) -> Option<SharedCounters> {
        (self.backend == Backend::Postgres).then(|| SharedCounters::new(self.db.clone()))
    }

    /// The tag this process's event notifications carry.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The connection pool's use right now.
    pub fn pool_stats(&self) -> PoolStats {
        let (size, idle, max) = match self.backend {
            Backend::Sqlite => {
                let pool = self.db.get_sqlite_connection_pool();
                (pool.size(), pool.num_idle(), pool.options().get_max_connections())
            }
            Backend::Postgres => {
                let pool = self.db.get_postgres_connection_pool();
                (pool.size(), pool.num_idle(), pool.options().get_max_connections())
            }
        };
        let idle = u32::try_from(idle).unwrap_or(u32::MAX).min(size);
        PoolStats { in_use: size - idle, idle, max }
    }

    /// The underlying connection, for tests and admin tooling.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Closes the pool.
    pub async fn close(self) -> StoreResult<()> {
        self.db.close().await.map_err(classify)
    }
}

#[async_trait]
impl Store for SeaStore {
    async fn ping(&self) -> StoreResult<()> {
        self.db.ping().await.map_err(classify)
    }
}

/// How many of a pool's connections are open and busy ([`SeaStore::pool_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections lent out to calls.
    pub in_use: u32,
    /// Open connections waiting for a call.
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}
