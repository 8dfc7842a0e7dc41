//! The Keyport identity server: gRPC services over `keyport-core`, stored
//! with `keyport-store`.
//!
//! The `keyport` binary is a thin CLI over [`Keyport`]; tests embed the same
//! type to run the real server in-process on port 0 with a controlled clock.

mod app;
pub mod config;
pub mod context;
mod convert;
mod events;
mod health;
mod incoming;
mod malformed;
mod oversized;
pub mod service;
pub mod status;
pub mod telemetry;
mod web;

pub use app::{Keyport, StartError};
pub use config::Config;
