//! Keyport's domain: who a user is, how they prove it, and how long a
//! session lasts.
//!
//! This crate knows nothing of gRPC, SQL or HTTP. It holds the identity rules
//! ([`email`], [`password`], [`token`], [`session`]), the storage contract the
//! database layer implements ([`store`]), the injected [`clock`], and the use
//! cases that tie them together ([`Identity`]).

pub mod audit;
pub mod clock;
pub mod email;
pub mod error;
pub mod events;
mod hash_pool;
pub mod identity;
pub mod oauth;
pub mod password;
pub mod rate_limit;
pub mod session;
pub mod social;
pub mod store;
pub mod token;
pub mod user;
mod validated_cache;

pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use error::{Error, FieldViolation, Result};
pub use identity::{Identity, IdentityConfig, Principal, SessionGrant};
pub use session::ClientInfo;
