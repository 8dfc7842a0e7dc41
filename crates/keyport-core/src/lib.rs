//! Keyport's domain: who a user is, how they prove it, and how long a
//! session lasts.
//!
//! This crate knows nothing of gRPC, SQL or HTTP. It holds the identity rules
//! ([`email`], [`password`], [`token`], [`session`], [`oauth`]), the storage
//! contract the database layer implements ([`store`], one trait per area,
//! with an in-memory implementation for tests in [`store::memory`]), the
//! injected [`clock`], and the use cases that tie them together
//! ([`Accounts`]).
//!
//! Each area has the same three places: its types and rules (`user.rs`,
//! `session.rs`, `oauth.rs`, `audit.rs`), its use cases on [`Accounts`]
//! (`accounts/<area>.rs`), and its storage trait (`store/<area>.rs`).

pub mod access_token;
pub mod accounts;
pub mod api_key;
pub mod audit;
pub mod authorization;
pub mod clock;
pub mod common_passwords;
pub mod email;
pub mod error;
pub mod events;
mod hash_pool;
pub mod mail;
pub mod oauth;
pub mod observe;
pub mod organization;
pub mod password;
pub mod second_factor;
pub mod session;
pub mod store;
pub mod throttle;
pub mod token;
pub mod user;
mod validated_cache;

pub use accounts::{Accounts, AccountsConfig};
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use error::{Error, FieldViolation, Result};
pub use session::{ClientInfo, Principal, SessionGrant, SignUpOutcome};
