//! The `keyport` binary as an operator runs it: its metrics listener
//! scraped and checked with `promtool`, `keyport health`, `keyport
//! backup` and `restore`, and SQLite on a disk that fills up.

mod backup;
mod disk_full;
mod health;
mod metrics;
mod process;
mod tracing;

/// What every test here returns.
type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;
