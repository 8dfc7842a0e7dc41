//! The Rust SDK for Keyport.
//!
//! - [`KeyportClient`]: typed calls over one lazily connected tonic channel,
//!   with per-call deadlines, retries of idempotent calls on `UNAVAILABLE`,
//!   and errors whose [`Reason`] is an enum.
//! - [`SessionCache`]: a bounded cache of validated sessions, fed by
//!   `WatchSessionEvents` so that revocations reach it at once; it serves
//!   nothing while its event stream is down, and remembers refused tokens
//!   briefly so junk cookies do not each cost a call.
//! - [`web`]: the framework-free core of the Axum and Actix-web middleware:
//!   token extraction, route rules, cookies, CSRF and redirect decisions.

mod cache;
mod client;
mod error;
mod principal;
mod refusals;
pub mod web;

pub use cache::{CacheConfig, CacheStats, SessionCache};
pub use client::{ClientBuilder, ClientInfo, FinishedOAuth, KeyportClient, OAuthCallback, SignedIn, StartedOAuth};
pub use error::{Error, Reason};
pub use principal::{Principal, SessionSummary, ValidatedSession};
