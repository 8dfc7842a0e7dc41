//! The Rust SDK for Keyport.
//!
//! - [`KeyportClient`]: typed calls over one lazily connected tonic channel,
//!   with per-call deadlines, retries of idempotent calls on `UNAVAILABLE`,
//!   and errors whose [`Reason`] is an enum.
//! - [`SessionCache`]: a bounded cache of validated sessions, fed by
//!   `WatchSessionEvents` so that revocations reach it at once; it serves
//!   nothing while its event stream is down.
//! - [`web`]: the framework-free core of the Axum and Actix-web middleware:
//!   token extraction, route rules, cookies, CSRF and redirect decisions.

mod cache;
mod client;
mod endpoints;
mod error;
mod principal;
pub mod web;

pub use cache::{CacheConfig, SessionCache};
pub use client::{ClientBuilder, ClientInfo, FinishedOAuth, KeyportClient, OAuthCallback, SignedIn, StartedOAuth};
pub use error::{Error, Reason};
pub use principal::{Principal, SessionSummary, ValidatedSession};
