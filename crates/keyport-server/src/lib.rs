//! The Keyport identity server: gRPC services over `keyport-core`, stored
//! with `keyport-store`.
//!
//! The `keyport` binary is a thin CLI over [`Keyport`]; tests embed the same
//! type to run the real server in-process on port 0 with a controlled clock.

pub mod access_tokens;
pub mod admin_cli;
mod app;
pub mod backup_cli;
pub mod caller;
pub mod config;
mod convert;
mod events;
mod grpc_web;
mod health;
pub mod health_probe;
mod incoming;
pub mod mail;
mod malformed;
mod oversized;
pub mod prometheus;
mod registry;
mod rpc_observer;
pub mod second_factors;
pub mod service;
pub mod status;
pub mod telemetry;

pub use app::{Keyport, StartError};
pub use config::Config;
pub use health::LIVENESS;
