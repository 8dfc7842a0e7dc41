//! `UserService`: the signed-in user's own account.

use keyport_proto::v1::{
    ChangePasswordRequest, DeleteCurrentUserRequest, GetCurrentUserRequest, GetSessionRequest, SignInRequest,
    UpdateCurrentUserRequest,
};
use keyport_tests::{
    Backend, TestServer,
    grpc::{authed, reason},
    server::PASSWORD,
};
use tonic::Code;

use crate::{TestResult, on_both_backends};

on_both_backends!(
    reads_and_updates_the_current_user,
    changes_the_password_and_ends_other_sessions,
    refuses_a_password_change_without_the_current_password,
    deletes_the_user_and_everything_theirs,
    refuses_deletion_with_a_wrong_password,
);

fn sign_in(email: &str, password: &str) -> SignInRequest {
    SignInRequest { email: email.into(), password: password.into() }
}

async fn reads_and_updates_the_current_user(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let token = server.sign_up("ann@example.com").await?;
    let user = server.users().get_current_user(authed(GetCurrentUserRequest {}, &token)).await?.into_inner();
    assert_eq!(user.user.ok_or("no user")?.name, "Test User");

    server.clock.advance(std::time::Duration::from_secs(5));
    let update = UpdateCurrentUserRequest { name: Some("  Ann Lee ".into()) };
    let updated = server.users().update_current_user(authed(update, &token)).await?.into_inner().user.ok_or("none")?;
    assert_eq!(updated.name, "Ann Lee");
    let seconds = |t: Option<prost_types::Timestamp>| t.map(|t| t.seconds).unwrap_or_default();
    assert!(seconds(updated.updated_at) > seconds(updated.created_at));

    // Unset fields keep their value; invalid ones change nothing.
    let unchanged = server.users().update_current_user(authed(UpdateCurrentUserRequest { name: None }, &token)).await?;
    assert_eq!(unchanged.into_inner().user.ok_or("none")?.name, "Ann Lee");
    let too_long = UpdateCurrentUserRequest { name: Some("n".repeat(257)) };
    let status = server.users().update_current_user(authed(too_long, &token)).await.unwrap_err();
    assert_eq!(reason(&status), "INVALID_ARGUMENT");
    let user = server.users().get_current_user(authed(GetCurrentUserRequest {}, &token)).await?.into_inner();
    assert_eq!(user.user.ok_or("no user")?.name, "Ann Lee");
    Ok(())
}

async fn changes_the_password_and_ends_other_sessions(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let laptop = server.sign_up("ann@example.com").await?;
    let phone = server.sessions().sign_in(sign_in("ann@example.com", PASSWORD)).await?;
    assert!(phone.into_inner().outcome.is_some());

    let change =
        ChangePasswordRequest { current_password: PASSWORD.into(), new_password: "a brand new passphrase".into() };
    let response = server.users().change_password(authed(change, &laptop)).await?.into_inner();
    assert_eq!(response.revoked_sessions, 1);
    assert_eq!(server.count("sessions").await?, 1, "only the calling session is left");
    server.sessions().get_session(GetSessionRequest { token: laptop }).await?;

    let old = server.sessions().sign_in(sign_in("ann@example.com", PASSWORD)).await.unwrap_err();
    assert_eq!(reason(&old), "INVALID_CREDENTIALS");
    server.sessions().sign_in(sign_in("ann@example.com", "a brand new passphrase")).await?;
    Ok(())
}

async fn refuses_a_password_change_without_the_current_password(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let token = server.sign_up("ann@example.com").await?;
    let cases = [
        ("wrong current password", "a brand new passphrase", Code::Unauthenticated, "INVALID_CREDENTIALS"),
        ("", "a brand new passphrase", Code::InvalidArgument, "INVALID_ARGUMENT"),
        (PASSWORD, "short", Code::InvalidArgument, "WEAK_PASSWORD"),
        (PASSWORD, &*"x".repeat(300), Code::InvalidArgument, "PASSWORD_TOO_LONG"),
        (PASSWORD, "iloveyou123", Code::InvalidArgument, "PASSWORD_TOO_COMMON"),
        (PASSWORD, "Ann@Example.com", Code::InvalidArgument, "PASSWORD_CONTAINS_EMAIL"),
    ];
    for (current, new, code, expected) in cases {
        let change = ChangePasswordRequest { current_password: current.into(), new_password: new.into() };
        let status = server.users().change_password(authed(change, &token)).await.unwrap_err();
        assert_eq!((status.code(), reason(&status).as_str()), (code, expected));
    }
    // The original password still works: nothing was changed.
    server.sessions().sign_in(sign_in("ann@example.com", PASSWORD)).await?;
    let unauthenticated = server
        .users()
        .change_password(ChangePasswordRequest {
            current_password: PASSWORD.into(),
            new_password: "a brand new passphrase".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(reason(&unauthenticated), "UNAUTHENTICATED");
    Ok(())
}

async fn deletes_the_user_and_everything_theirs(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let token = server.sign_up("ann@example.com").await?;
    server.sessions().sign_in(sign_in("ann@example.com", PASSWORD)).await?;
    let bob = server.sign_up("bob@example.com").await?;

    let delete = DeleteCurrentUserRequest { password: PASSWORD.into() };
    server.users().delete_current_user(authed(delete, &token)).await?;
    assert_eq!(server.count("users").await?, 1);
    assert_eq!(server.count("passwords").await?, 1);
    assert_eq!(server.count("sessions").await?, 1, "only bob's session is left");

    let status = server.sessions().get_session(GetSessionRequest { token }).await.unwrap_err();
    assert_eq!(reason(&status), "UNAUTHENTICATED");
    let status = server.sessions().sign_in(sign_in("ann@example.com", PASSWORD)).await.unwrap_err();
    assert_eq!(reason(&status), "INVALID_CREDENTIALS");
    server.sessions().get_session(GetSessionRequest { token: bob }).await?;
    // The email is free again.
    server.sign_up("ann@example.com").await?;
    Ok(())
}

async fn refuses_deletion_with_a_wrong_password(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let token = server.sign_up("ann@example.com").await?;
    for password in ["wrong password", ""] {
        let delete = DeleteCurrentUserRequest { password: password.into() };
        let status = server.users().delete_current_user(authed(delete, &token)).await.unwrap_err();
        assert_ne!(status.code(), Code::Ok);
    }
    assert_eq!(server.count("users").await?, 1);
    assert_eq!(server.count("sessions").await?, 1);
    server.users().get_current_user(authed(GetCurrentUserRequest {}, &token)).await?;
    Ok(())
}
