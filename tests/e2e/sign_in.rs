//! `SessionService.SignIn`.

use keyport_proto::v1::{GetSessionRequest, SignInRequest, SignInResponse, sign_in_response::Outcome};
use keyport_tests::{Backend, TestServer, grpc::reason, server::PASSWORD};
use tonic::{Code, Request};
use tonic_types::StatusExt;

use crate::{TestResult, on_both_backends};

on_both_backends!(
    signs_in_with_the_right_password,
    unknown_email_and_wrong_password_fail_alike,
    rejects_empty_and_oversized_credentials,
    throttles_repeated_failures,
    rehashes_when_the_parameters_change,
    records_the_client_from_trusted_metadata,
    ignores_forwarded_metadata_from_untrusted_peers,
);

fn request(email: &str, password: &str) -> SignInRequest {
    SignInRequest { email: email.into(), password: password.into() }
}

fn token(response: SignInResponse) -> Result<String, &'static str> {
    match response.outcome {
        Some(Outcome::Session(grant)) => Ok(grant.token),
        Some(Outcome::Challenge(_)) => Err("sign-in answered a challenge"),
        None => Err("sign-in produced no outcome"),
    }
}

async fn signs_in_with_the_right_password(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let first = server.sign_up("ann@example.com").await?;
    let second = token(server.sessions().sign_in(request("ANN@example.com", PASSWORD)).await?.into_inner())?;
    assert_ne!(first, second, "each sign-in is a new session");
    for token in [first, second] {
        let session = server.sessions().get_session(GetSessionRequest { token }).await?.into_inner();
        assert_eq!(session.user.ok_or("no user")?.email, "ann@example.com");
    }
    assert_eq!(server.count("sessions").await?, 2);
    Ok(())
}

async fn unknown_email_and_wrong_password_fail_alike(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    server.sign_up("ann@example.com").await?;
    let wrong_password = server.sessions().sign_in(request("ann@example.com", "not the password")).await.unwrap_err();
    let unknown_email = server.sessions().sign_in(request("bob@example.com", "not the password")).await.unwrap_err();
    for status in [&wrong_password, &unknown_email] {
        assert_eq!(status.code(), Code::Unauthenticated);
        assert_eq!(reason(status), "INVALID_CREDENTIALS");
    }
    assert_eq!(wrong_password.message(), unknown_email.message());
    assert_eq!(server.count("sessions").await?, 1, "failures create no session");
    Ok(())
}

async fn rejects_empty_and_oversized_credentials(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    server.sign_up("ann@example.com").await?;
    let cases = [
        request("", PASSWORD),
        request("ann@example.com", ""),
        request(&"a".repeat(5_000), PASSWORD),
        request("not-an-email", PASSWORD),
    ];
    for case in cases {
        let status = server.sessions().sign_in(case).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(reason(&status), "INVALID_ARGUMENT");
    }
    let status = server.sessions().sign_in(request("ann@example.com", &"x".repeat(10_000))).await.unwrap_err();
    assert_eq!(reason(&status), "PASSWORD_TOO_LONG");
    assert_eq!(server.count("sessions").await?, 1);
    Ok(())
}

async fn throttles_repeated_failures(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, |config| config.sign_in_limits.per_account = 3).await?;
    server.sign_up("ann@example.com").await?;
    for _ in 0..3 {
        let status = server.sessions().sign_in(request("ann@example.com", "guess guess")).await.unwrap_err();
        assert_eq!(reason(&status), "INVALID_CREDENTIALS");
    }
    // Even the right password waits out the delay: 1 s after the third failure.
    let status = server.sessions().sign_in(request("ann@example.com", PASSWORD)).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(reason(&status), "RATE_LIMITED");
    let retry = status.get_error_details().retry_info().and_then(|info| info.retry_delay).ok_or("no RetryInfo")?;
    assert_eq!(retry, std::time::Duration::from_secs(1));
    // Case variants count against the same account.
    let status = server.sessions().sign_in(request("ANN@example.com", PASSWORD)).await.unwrap_err();
    assert_eq!(reason(&status), "RATE_LIMITED");

    // Each further failure doubles the wait; it never becomes a lock.
    server.clock.advance(std::time::Duration::from_secs(1));
    let status = server.sessions().sign_in(request("ann@example.com", "guess guess")).await.unwrap_err();
    assert_eq!(reason(&status), "INVALID_CREDENTIALS");
    let status = server.sessions().sign_in(request("ann@example.com", PASSWORD)).await.unwrap_err();
    let retry = status.get_error_details().retry_info().and_then(|info| info.retry_delay).ok_or("no RetryInfo")?;
    assert_eq!(retry, std::time::Duration::from_secs(2));
    server.clock.advance(std::time::Duration::from_secs(2));
    server.sessions().sign_in(request("ann@example.com", PASSWORD)).await?;
    Ok(())
}

async fn rehashes_when_the_parameters_change(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    server.sign_up("ann@example.com").await?;
    let old = server.scalar("SELECT COUNT(*) FROM passwords WHERE hash LIKE '$argon2id$v=19$m=1024,t=1,p=1$%'").await?;
    assert_eq!(old, 1);

    let server = server.restart_with(|config| config.hashing.memory_kib = 2048).await?;
    server.sessions().sign_in(request("ann@example.com", PASSWORD)).await?;
    let new = server.scalar("SELECT COUNT(*) FROM passwords WHERE hash LIKE '$argon2id$v=19$m=2048,t=1,p=1$%'").await?;
    assert_eq!(new, 1, "the hash was upgraded at sign-in");
    // And the upgraded hash still verifies.
    server.sessions().sign_in(request("ann@example.com", PASSWORD)).await?;
    Ok(())
}

async fn records_the_client_from_trusted_metadata(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    server.sign_up("ann@example.com").await?;
    let mut sign_in = Request::new(request("ann@example.com", PASSWORD));
    sign_in.metadata_mut().insert("x-keyport-client-ip", "203.0.113.7".parse()?);
    sign_in.metadata_mut().insert("x-keyport-user-agent", "Firefox/140".parse()?);
    let forwarded = token(server.sessions().sign_in(sign_in).await?.into_inner())?;
    let session = server.sessions().get_session(GetSessionRequest { token: forwarded }).await?.into_inner();
    let session = session.session.ok_or("no session")?;
    assert_eq!(session.ip_address, "203.0.113.7");
    assert_eq!(session.user_agent, "Firefox/140");

    // Without the forwarded agent, the trusted peer's own (its gRPC
    // library's `tonic/...`) is not taken for the end user's.
    let plain = token(server.sessions().sign_in(request("ann@example.com", PASSWORD)).await?.into_inner())?;
    let session = server.sessions().get_session(GetSessionRequest { token: plain }).await?.into_inner();
    assert_eq!(session.session.ok_or("no session")?.user_agent, "");
    Ok(())
}

async fn ignores_forwarded_metadata_from_untrusted_peers(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, |config| config.server.trusted_proxies.clear()).await?;
    server.sign_up("ann@example.com").await?;
    let mut sign_in = Request::new(request("ann@example.com", PASSWORD));
    sign_in.metadata_mut().insert("x-keyport-client-ip", "203.0.113.7".parse()?);
    let token = token(server.sessions().sign_in(sign_in).await?.into_inner())?;
    let session = server.sessions().get_session(GetSessionRequest { token }).await?.into_inner();
    assert_eq!(session.session.ok_or("no session")?.ip_address, "127.0.0.1", "the peer's own address counts");
    Ok(())
}
