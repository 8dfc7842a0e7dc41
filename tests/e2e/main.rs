//! End-to-end tests: the real Keyport server, driven through the generated
//! Rust client. Every scenario runs twice, on SQLite and on a real
//! PostgreSQL that the test kit starts itself.

#![allow(
    clippy::disallowed_methods,
    reason = "tests time what they observe; the server under test reads its injected clock"
)]
// Scenarios are test code called from generated `#[tokio::test]`s, which
// clippy's allow-*-in-tests settings do not see.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod access_tokens;
mod account;
mod admin;
mod api_keys;
mod audit;
mod authorization;
mod connections;
mod counters;
mod email_change;
mod email_sign_in;
mod failover;
mod faults;
mod grpc_layer;
mod layering;
mod mail;
mod oauth;
mod organizations;
mod passkeys;
mod races;
mod reasons;
mod second_factors;
mod sessions;
mod sign_in;
mod sign_up;
mod tls;
mod transport;
mod upgrade;
mod verified_sign_up;
mod web;

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

/// For each scenario `async fn name(Backend) -> TestResult` of the calling
/// module, generates the tests `sqlite::name` and `postgres::name`.
macro_rules! on_both_backends {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> crate::TestResult {
                    super::$name(keyport_tests::Backend::Sqlite).await
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() -> crate::TestResult {
                    super::$name(keyport_tests::Backend::Postgres).await
                }
            )+
        }
    };
}
pub(crate) use on_both_backends;
