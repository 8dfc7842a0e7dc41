//! Test kit for Keyport's end-to-end tests: real parts started by the tests.
//!
//! [`server::TestServer`] runs the real Keyport in-process on port 0 with a
//! controllable clock, on SQLite or on a real PostgreSQL from [`pg`];
//! [`mailpit::Mailpit`] is the real SMTP server the mail tests read.

pub mod apps;
pub mod github;
pub mod grpc;
pub mod load;
pub mod mailpit;
pub mod oidc;
pub mod pg;
pub mod server;

pub use server::{Backend, TestServer};
