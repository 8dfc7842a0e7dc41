//! The audit trail records who did what, from where.

use keyport_proto::v1::{ChangePasswordRequest, SignInRequest, SignOutRequest};
use keyport_tests::{Backend, TestServer, grpc::authed, server::PASSWORD};
use tonic::Request;

use crate::{TestResult, on_both_backends};

on_both_backends!(records_security_events);

async fn records_security_events(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let token = server.sign_up("ann@example.com").await?;
    let mut failed = Request::new(SignInRequest { email: "ann@example.com".into(), password: "wrong password".into() });
    failed.metadata_mut().insert("x-keyport-client-ip", "198.51.100.4".parse()?);
    assert!(server.sessions().sign_in(failed).await.is_err());
    let unknown = SignInRequest { email: "nobody@example.com".into(), password: "wrong password".into() };
    assert!(server.sessions().sign_in(unknown).await.is_err());
    let wrong =
        ChangePasswordRequest { current_password: "not mine".into(), new_password: "another passphrase".into() };
    assert!(server.users().change_password(authed(wrong, &token)).await.is_err());
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
