//! `UserService.SignUp`.

use std::{sync::Arc, time::Duration};

use futures::future::join_all;
use keyport_proto::v1::{GetSessionRequest, SignInRequest, SignUpRequest};
use keyport_tests::{
    Backend, TestServer,
    grpc::{reason, violated_fields},
    server::PASSWORD,
};
use tokio::sync::Barrier;
use tonic::Code;
use tonic_types::StatusExt;

use crate::{TestResult, on_both_backends};

on_both_backends!(
    signs_up_and_hands_out_a_working_session,
    rejects_invalid_emails_and_writes_nothing,
    rejects_weak_and_overlong_passwords,
    accepts_long_and_unicode_passwords,
    refuses_a_taken_email_in_any_case,
    rejects_overlong_names,
    each_address_has_a_budget_of_sign_ups,
);

fn request(email: &str, password: &str, name: &str) -> SignUpRequest {
    SignUpRequest { email: email.into(), password: password.into(), name: name.into() }
}

async fn signs_up_and_hands_out_a_working_session(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let response = server.users().sign_up(request("  Ann@Example.COM ", PASSWORD, " Ann ")).await?.into_inner();

    let user = response.user.ok_or("no user")?;
    assert_eq!(user.email, "ann@example.com");
    assert_eq!(user.name, "Ann");
    assert_eq!(user.roles, ["user"]);
    assert!(!user.email_verified);
    assert_eq!(user.id.len(), 36);
    assert_eq!(&user.id[14..15], "7", "ids are UUIDv7: {}", user.id);

    let grant = response.session.ok_or("no session")?;
    assert!(grant.token.starts_with("kp_"));
    let session = server.sessions().get_session(GetSessionRequest { token: grant.token }).await?.into_inner();
    assert_eq!(session.user.ok_or("no user")?.id, user.id);
    assert_eq!(session.session.ok_or("no session")?.id, grant.session.ok_or("no session")?.id);

    // The password is stored as an argon2id PHC string, never in clear.
    let stored = server.scalar("SELECT COUNT(*) FROM passwords WHERE hash LIKE '$argon2id$v=19$%'").await?;
    assert_eq!(stored, 1);
    Ok(())
}

async fn rejects_invalid_emails_and_writes_nothing(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let overlong = format!("{}@example.com", "a".repeat(250));
    let invisible =
        ["ka\u{200b}te@example.com", "ka\u{ad}te@example.com", "kate@exam\u{200d}ple.com", "\u{feff}kate@example.com"];
    let malformed = ["", "   ", "not-an-email", "a@b", "two@@example.com", "sp ace@example.com", &overlong];
    for email in malformed.into_iter().chain(invisible) {
        let status = server.users().sign_up(request(email, PASSWORD, "")).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{email:?}");
        assert_eq!(reason(&status), "INVALID_ARGUMENT", "{email:?}");
        assert_eq!(violated_fields(&status), ["email"], "{email:?}");
    }
    assert_eq!(server.count("users").await?, 0);
    assert_eq!(server.count("sessions").await?, 0);
    Ok(())
}

async fn rejects_weak_and_overlong_passwords(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let cases = [
        ("", Code::InvalidArgument, "INVALID_ARGUMENT"),
        ("short", Code::InvalidArgument, "WEAK_PASSWORD"),
        ("seven77", Code::InvalidArgument, "WEAK_PASSWORD"),
        (&*"x".repeat(257), Code::InvalidArgument, "PASSWORD_TOO_LONG"),
        (&*"x".repeat(60_000), Code::InvalidArgument, "PASSWORD_TOO_LONG"),
        ("password1", Code::InvalidArgument, "PASSWORD_TOO_COMMON"),
        ("QWERTY123456", Code::InvalidArgument, "PASSWORD_TOO_COMMON"),
        ("ann@example.com", Code::InvalidArgument, "PASSWORD_CONTAINS_EMAIL"),
        ("the ANN password", Code::InvalidArgument, "PASSWORD_CONTAINS_EMAIL"),
    ];
    for (password, code, expected) in cases {
        let status = server.users().sign_up(request("ann@example.com", password, "")).await.unwrap_err();
        assert_eq!((status.code(), reason(&status).as_str()), (code, expected), "password of {}", password.len());
    }
    assert_eq!(server.count("users").await?, 0);
    assert_eq!(server.count("passwords").await?, 0);
    Ok(())
}

async fn accepts_long_and_unicode_passwords(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let long = "p".repeat(64);
    let max = "é".repeat(256);
    for (i, password) in ["eight ch", long.as_str(), max.as_str(), "пароль-密码-🔑🔑"].into_iter().enumerate()
    {
        server.users().sign_up(request(&format!("user{i}@example.com"), password, "")).await?;
    }
    assert_eq!(server.count("users").await?, 4);
    Ok(())
}

async fn refuses_a_taken_email_in_any_case(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    server.sign_up("ann@example.com").await?;
    for email in ["ann@example.com", "ANN@EXAMPLE.COM", " Ann@Example.com "] {
        let status = server.users().sign_up(request(email, "another password", "")).await.unwrap_err();
        assert_eq!(status.code(), Code::AlreadyExists, "{email}");
        assert_eq!(reason(&status), "EMAIL_TAKEN");
    }
    assert_eq!(server.count("users").await?, 1);
    assert_eq!(server.count("passwords").await?, 1);
    assert_eq!(server.count("sessions").await?, 1, "a refused sign-up leaves no session behind");
    Ok(())
}

async fn rejects_overlong_names(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let status = server.users().sign_up(request("not an email", PASSWORD, &"n".repeat(257))).await.unwrap_err();
    assert_eq!(reason(&status), "INVALID_ARGUMENT");
    assert_eq!(violated_fields(&status), ["email", "name"], "every bad field is reported at once");
    let status = server.users().sign_up(request("ann@example.com", PASSWORD, "bell\u{7}")).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["name"]);
    assert_eq!(server.count("users").await?, 0);
    Ok(())
}

async fn each_address_has_a_budget_of_sign_ups(backend: Backend) -> TestResult {
    let server = Arc::new(
        TestServer::start_with(backend, |config| {
            config.request_limits.burst = 3;
            config.request_limits.per_minute = 60;
        })
        .await?,
    );
    let callers = 8;
    let barrier = Arc::new(Barrier::new(callers));
    let attempts = (0..callers).map(|n| {
        let (server, barrier) = (server.clone(), barrier.clone());
        async move {
            barrier.wait().await;
            server.users().sign_up(request(&format!("user{n}@example.com"), PASSWORD, "")).await
        }
    });
    let results = join_all(attempts).await;
    let admitted: Vec<usize> =
        results.iter().enumerate().filter(|(_, result)| result.is_ok()).map(|(n, _)| n).collect();
    assert_eq!(admitted.len(), 3, "exactly the burst passes");
    for status in results.into_iter().filter_map(Result::err) {
        assert_eq!((status.code(), reason(&status).as_str()), (Code::ResourceExhausted, "RATE_LIMITED"));
        let retry = status.get_error_details().retry_info().and_then(|info| info.retry_delay).ok_or("no RetryInfo")?;
        assert!(retry > Duration::ZERO && retry <= Duration::from_secs(5), "{retry:?}");
    }
    assert_eq!(server.count("users").await?, 3, "a refused sign-up writes nothing");
    // Sign-in has a budget of its own, and the sign-up budget refills.
    let first = format!("user{}@example.com", admitted[0]);
    server.sessions().sign_in(SignInRequest { email: first, password: PASSWORD.into() }).await?;
    server.clock.advance(Duration::from_secs(1));
    server.users().sign_up(request("late@example.com", PASSWORD, "")).await?;
    let again = server.users().sign_up(request("later@example.com", PASSWORD, "")).await.unwrap_err();
    assert_eq!(reason(&again), "RATE_LIMITED");
    Ok(())
}
