//! The audit trail records who did what, from where.

use std::{sync::Arc, time::Duration};

use keyport_core::{
    Accounts, AccountsConfig, ManualClock, Timestamp,
    audit::{AuditEvent, AuditKind},
    session::ClientInfo,
    store::AuditStore,
};
use keyport_proto::v1::{ChangePasswordRequest, SignInRequest, SignOutRequest};
use keyport_store::{SeaStore, StoreOptions};
use keyport_tests::{
    Backend, TestServer,
    grpc::{authed, reason},
    pg,
    server::PASSWORD,
};
use tonic::Request;

use crate::{TestResult, on_both_backends};

on_both_backends!(records_security_events, the_sweep_deletes_audit_events_past_retention);

async fn records_security_events(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let token = server.sign_up("ann@example.com").await?;
    let mut failed = Request::new(SignInRequest { email: "ann@example.com".into(), password: "wrong password".into() });
    failed.metadata_mut().insert("x-keyport-client-ip", "198.51.100.4".parse()?);
    assert_eq!(reason(&server.sessions().sign_in(failed).await.unwrap_err()), "INVALID_CREDENTIALS");
    let unknown = SignInRequest { email: "nobody@example.com".into(), password: "wrong password".into() };
    assert_eq!(reason(&server.sessions().sign_in(unknown).await.unwrap_err()), "INVALID_CREDENTIALS");
    let wrong =
        ChangePasswordRequest { current_password: "not mine".into(), new_password: "another passphrase".into() };
    let refused = server.users().change_password(authed(wrong, &token)).await.unwrap_err();
    assert_eq!(reason(&refused), "INVALID_CREDENTIALS", "{refused:?}");
    let change = ChangePasswordRequest { current_password: PASSWORD.into(), new_password: "another passphrase".into() };
    server.users().change_password(authed(change, &token)).await?;
    server.sessions().sign_out(authed(SignOutRequest {}, &token)).await?;

    let count = |kind: &str| format!("SELECT COUNT(*) FROM audit_events WHERE kind = '{kind}'");
    assert_eq!(server.scalar(&count("sign_up")).await?, 1);
    assert_eq!(server.scalar(&count("sign_in_failed")).await?, 2);
    assert_eq!(server.scalar(&count("password_changed")).await?, 1);
    assert_eq!(server.scalar(&count("password_confirmation_failed")).await?, 1);
    assert_eq!(server.scalar(&count("sign_out")).await?, 1);
    let from_ip = "SELECT COUNT(*) FROM audit_events WHERE kind = 'sign_in_failed' AND ip_address = '198.51.100.4' \
                   AND user_id IS NOT NULL";
    assert_eq!(server.scalar(from_ip).await?, 1, "a failure names the account and the address");
    let unknown = "SELECT COUNT(*) FROM audit_events WHERE kind = 'sign_in_failed' AND user_id IS NULL";
    assert_eq!(server.scalar(unknown).await?, 1);
    Ok(())
}

async fn the_sweep_deletes_audit_events_past_retention(backend: Backend) -> TestResult {
    let dir = tempfile::tempdir()?;
    let (url, store_backend) = match backend {
        Backend::Sqlite => {
            (format!("sqlite://{}?mode=rwc", dir.path().join("k.db").display()), keyport_store::Backend::Sqlite)
        }
        Backend::Postgres => (pg::shared()?.create_database("retention")?, keyport_store::Backend::Postgres),
    };
    let store = SeaStore::connect(&url, &StoreOptions::for_backend(store_backend)).await?;
    store.migrate().await?;
    let day = Duration::from_secs(24 * 3600);
    let clock = Arc::new(ManualClock::starting_now());
    let now = keyport_core::Clock::now(clock.as_ref());
    let client = ClientInfo::default();
    for age_days in [400, 91, 89, 1, 0] {
        let at: Timestamp = now.saturating_sub(day * age_days);
        store.record_audit(&AuditEvent::new(AuditKind::SignIn, at, &client)).await?;
    }
    let config = AccountsConfig { audit_retention: day * 90, ..AccountsConfig::default() };
    let accounts = Accounts::new(Arc::new(store.clone()), clock, config)?;
    let swept = accounts.sweep_expired().await?;
    assert_eq!(swept.audit_events, 2, "the events older than 90 days");
    assert_eq!(accounts.sweep_expired().await?.audit_events, 0);
    Ok(())
}
