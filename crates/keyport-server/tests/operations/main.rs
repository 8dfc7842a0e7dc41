//! The `keyport` binary as an operator runs it: its metrics listener
//! scraped and checked with `promtool`, `keyport health`, and `keyport
//! backup` and `restore`.

mod backup;
mod health;
mod metrics;
mod process;
mod tracing;

/// What every test here returns.
type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
