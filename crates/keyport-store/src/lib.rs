//! Keyport's storage: the [`keyport_core::store`] contract, every area of
//! it, implemented with SeaORM over SQLite (the embedded default) and
//! PostgreSQL.
//!
//! [`SeaStore::connect`] opens and tunes the connection pool; the schema
//! comes from `keyport-migration` and is applied by [`SeaStore::migrate`].
//!
//! One module per area implements its trait on [`SeaStore`] (`users.rs`,
//! `sessions.rs`, `oauth.rs`, `audit.rs`, `mail.rs`, `factors.rs`), and
//! `counters.rs` holds the throttling counters replicas on PostgreSQL share
//! ([`SharedCounters`]); what they share sits below them: `rows.rs` (row
//! conversions and shared inserts), `write.rs` (write transactions),
//! `db_error.rs` (error classification). No module imports an area module.

mod api_keys;
mod audit;
mod backend;
pub mod backup;
mod counters;
mod db_error;
pub mod entity;
pub mod events;
mod factors;
mod mail;
mod migrate;
mod oauth;
mod organizations;
mod passkeys;
mod roles;
mod rows;
mod session_lookup;
mod sessions;
mod signing_keys;
mod store;
mod users;
mod write;

pub use backend::{Backend, StoreOptions};
pub use counters::SharedCounters;
pub use db_error::DB_ERRORS;
pub use migrate::Migrated;
pub use store::{PoolStats, SeaStore};
