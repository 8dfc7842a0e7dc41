//! Upgrades: a database on the previous release's schema, with data in it,
//! is migrated by this one and loses nothing; an older replica keeps
//! serving a schema that a newer release migrated (the rolling-upgrade
//! case); replicas starting together on an empty PostgreSQL database all
//! start, and the schema is made once.

use std::sync::Arc;

use futures::future::join_all;
use keyport_core::{Accounts, SystemClock, session::ClientInfo};
use keyport_migration::Migrator;
use keyport_proto::v1::{IssueAccessTokenRequest, SignOutRequest};
use keyport_server::Config;
use keyport_store::{Migrated, SeaStore, StoreOptions};
use keyport_tests::{
    Backend, TestServer,
    grpc::authed,
    pg,
    server::{PASSWORD, fast_hashing},
};
use sea_orm::ConnectionTrait;
use sea_orm_migration::MigratorTrait;
use tempfile::TempDir;
use tokio::sync::Barrier;

use crate::{TestResult, on_both_backends};

on_both_backends!(
    a_database_of_the_previous_schema_is_upgraded_with_its_data,
    an_older_replica_serves_a_schema_a_newer_release_migrated,
    a_schema_that_lacks_a_known_migration_beside_unknown_ones_is_refused,
);

/// Migrations of the previous release: all but the newest.
fn previous_release() -> u32 {
    u32::try_from(Migrator::migrations().len() - 1).unwrap()
}

/// A fresh, empty database on `backend`, and the directory an SQLite one lives in.
fn empty_database(backend: Backend, name: &str) -> Result<(String, TempDir), Box<dyn std::error::Error + Send + Sync>> {
    let dir = tempfile::tempdir()?;
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}?mode=rwc", dir.path().join(format!("{name}.db")).display()),
        Backend::Postgres => pg::shared()?.create_database(name)?,
    };
    Ok((url, dir))
}

/// Access tokens on, for the audience `orders`, sealed with the test key
/// (on SQLite the server would otherwise make a key file of its own).
fn access_tokens(config: &mut Config) {
    config.access_tokens.issuer = "https://keyport.test".into();
    config.access_tokens.audiences = vec!["orders".into()];
    config.second_factors.encryption_key = keyport_tests::server::TEST_FACTOR_KEY.into();
}

async fn open(url: &str) -> Result<SeaStore, Box<dyn std::error::Error + Send + Sync>> {
    let backend = keyport_store::Backend::of_url(url).ok_or("not a database URL")?;
    Ok(SeaStore::connect(url, &StoreOptions::for_backend(backend)).await?)
}

async fn a_database_of_the_previous_schema_is_upgraded_with_its_data(backend: Backend) -> TestResult {
    let (url, _dir) = empty_database(backend, "previous")?;
    let store = open(&url).await?;
    Migrator::up(store.connection(), Some(previous_release())).await?;
    let newest = Migrator::migrations().last().map(|m| m.name().to_owned()).ok_or("no migrations")?;
    let recorded = format!("SELECT COUNT(*) FROM seaql_migrations WHERE version = '{newest}'");
    let scalar = |sql: String| {
        let db = store.connection().clone();
        async move {
            let row = db.query_one_raw(sea_orm::Statement::from_string(db.get_database_backend(), sql)).await?;
            Ok::<i64, sea_orm::DbErr>(row.map(|row| row.try_get_by_index::<i64>(0)).transpose()?.unwrap_or(-1))
        }
    };
    assert_eq!(scalar(recorded.clone()).await?, 0, "the newest migration is not applied yet");

    // Accounts, sessions and audit events written into the old schema.
    let mut config = Config::default();
    fast_hashing(&mut config);
    let accounts = Accounts::new(Arc::new(store.clone()), Arc::new(SystemClock), config.accounts())?;
    let client = ClientInfo::default();
    let mut tokens = Vec::new();
    for email in ["ada@example.com", "grace@example.com"] {
        let grant =
            accounts.sign_up(email, PASSWORD, "Old Account", &client).await?.into_grant().ok_or("no session")?;
        tokens.push(grant.token);
    }
    assert!(accounts.sign_in("ada@example.com", "wrong password!", &client).await.is_err());
    store.close().await?;

    let server = TestServer::start_on_database(&url, access_tokens).await?;
    assert_eq!(server.scalar(&recorded).await?, 1, "the server applied the newest migration");
    assert_eq!(server.count("users").await?, 2);
    assert_eq!(server.scalar("SELECT COUNT(*) FROM audit_events WHERE kind = 'sign_in_failed'").await?, 1);
    for token in &tokens {
        assert_eq!(server.session_reason(token).await, "OK", "a session of the old schema still works");
    }
    server.sign_in("grace@example.com", PASSWORD).await?;
    let request = IssueAccessTokenRequest { token: tokens[0].clone(), audience: "orders".into() };
    let issued = server.sessions().issue_access_token(request).await?.into_inner();
    assert!(!issued.access_token.is_empty(), "the new table serves an old session");
    server.sessions().sign_out(authed(SignOutRequest {}, &tokens[1])).await?;
    assert_eq!(server.session_reason(&tokens[1]).await, "UNAUTHENTICATED");
    Ok(())
}

async fn an_older_replica_serves_a_schema_a_newer_release_migrated(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let token = server.sign_up("ada@example.com").await?;
    // What a newer release's migration leaves: a record this build does not know.
    server
        .db
        .execute_unprepared(
            "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m9999_from_a_newer_release', 1800000000)",
        )
        .await?;
    let store = open(&server.database_url).await?;
    assert_eq!(store.migrate().await?, Migrated::Newer { unknown: vec!["m9999_from_a_newer_release".into()] });
    store.close().await?;

    // The old replica restarts (a crash, a drained node) mid-rollout.
    let server = server.restart_with(|_| {}).await?;
    assert_eq!(server.session_reason(&token).await, "OK");
    server.sign_in("ada@example.com", PASSWORD).await?;
    server.sign_up("grace@example.com").await?;
    assert_eq!(server.count("users").await?, 2);
    Ok(())
}

async fn a_schema_that_lacks_a_known_migration_beside_unknown_ones_is_refused(backend: Backend) -> TestResult {
    let (url, _dir) = empty_database(backend, "mixed")?;
    let store = open(&url).await?;
    Migrator::up(store.connection(), Some(previous_release())).await?;
    store
        .connection()
        .execute_unprepared(
            "INSERT INTO seaql_migrations (version, applied_at) VALUES ('m9999_from_a_newer_release', 1800000000)",
        )
        .await?;
    let error = store.migrate().await.expect_err("a schema no Keyport made is refused").to_string();
    assert!(error.contains("m9999_from_a_newer_release"), "{error}");
    let newest = Migrator::migrations().last().map(|m| m.name().to_owned()).ok_or("no migrations")?;
    assert!(error.contains(&newest), "the error names what is missing: {error}");
    // Nothing was applied.
    let migrations = Migrator::get_migration_models(store.connection()).await?;
    assert!(migrations.iter().all(|m| m.version != newest));
    Ok(())
}

/// Four replicas of a new deployment start at once on an empty database:
/// each would apply every migration; they take turns, and all serve.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_together_on_an_empty_database_all_start() -> TestResult {
    const REPLICAS: usize = 4;
    let url = pg::shared()?.create_database("together")?;
    let barrier = Arc::new(Barrier::new(REPLICAS));
    let starts = (0..REPLICAS).map(|_| {
        let (url, barrier) = (url.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            TestServer::start_on_database(&url, |_| {}).await
        })
    });
    let mut servers = Vec::new();
    for started in join_all(starts).await {
        servers.push(started?.map_err(|error| format!("a replica failed to start: {error}"))?);
    }
    let expected = i64::try_from(Migrator::migrations().len())?;
    assert_eq!(servers[0].count("seaql_migrations").await?, expected, "each migration applied once");
    let token = servers[1].sign_up("ada@example.com").await?;
    for server in &servers {
        assert_eq!(server.session_reason(&token).await, "OK");
    }
    Ok(())
}
