//! Keyport's storage: the [`keyport_core::store::Store`] contract implemented
//! with SeaORM over SQLite (the embedded default) and PostgreSQL.
//!
//! [`SeaStore::connect`] opens and tunes the connection pool; the schema
//! comes from `keyport-migration` and is applied by [`SeaStore::migrate`].

mod convert;
pub mod entity;
pub mod events;
mod oauth;
mod session_lookup;
mod store;
mod write;

pub use store::{Backend, SeaStore, StoreOptions};
