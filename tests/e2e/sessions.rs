//! `SessionService`: validating, listing and ending sessions.

use std::time::Duration;

use keyport_proto::v1::{
    GetSessionRequest, ListSessionsRequest, RevokeOtherSessionsRequest, RevokeSessionRequest, SignOutRequest,
};
use keyport_tests::{
    Backend, TestServer,
    grpc::{authed, reason},
    server::{PASSWORD, session_id},
};
use tonic::{Code, Request};

use crate::{TestResult, on_both_backends};

on_both_backends!(
    rejects_malformed_and_unknown_tokens,
    rejects_a_known_id_with_the_wrong_secret,
    expires_idle_sessions,
    slides_expiry_at_most_once_per_update_age,
    caps_sessions_at_the_absolute_lifetime,
    lists_only_the_callers_sessions,
    revokes_one_session_at_once,
    cannot_revoke_another_users_session,
    revokes_all_other_sessions,
    signs_out,
    user_calls_need_a_valid_bearer_token,
);

const DAY: Duration = Duration::from_secs(24 * 60 * 60);

async fn sign_in(server: &TestServer, email: &str) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    Ok(server.sign_in(email, PASSWORD).await?)
}

async fn rejects_malformed_and_unknown_tokens(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let real = server.sign_up("ann@example.com").await?;
    let unknown = format!("kp_{}.{}", "A".repeat(22), "B".repeat(43));
    let cases = ["", "garbage", "kp_", "Bearer kp_x.y", &real[..real.len() - 1], &unknown, &"k".repeat(60_000)];
    for token in cases {
        let status = server.sessions().get_session(GetSessionRequest { token: token.into() }).await.unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{token:.40}");
        assert_eq!(reason(&status), "UNAUTHENTICATED", "{token:.40}");
    }
    Ok(())
}

async fn rejects_a_known_id_with_the_wrong_secret(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let real = server.sign_up("ann@example.com").await?;
    let (id, secret) = real.split_once('.').ok_or("token has no dot")?;
    let flipped = if secret.starts_with('A') { "B" } else { "A" };
    let forged = format!("{id}.{flipped}{}", &secret[1..]);
    assert_eq!(server.session_reason(&forged).await, "UNAUTHENTICATED");
    assert_eq!(server.session_reason(&real).await, "OK", "the real token still works");
    Ok(())
}

async fn expires_idle_sessions(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let token = server.sign_up("ann@example.com").await?;
    server.clock.advance(7 * DAY - Duration::from_secs(1));
    assert_eq!(server.session_reason(&token).await, "OK");
    let token2 = sign_in(&server, "ann@example.com").await?;
    server.clock.advance(7 * DAY);
    assert_eq!(server.session_reason(&token2).await, "SESSION_EXPIRED");
    let status = server.users().get_current_user(authed(Default::default(), &token2)).await.unwrap_err();
    assert_eq!(reason(&status), "SESSION_EXPIRED");
    Ok(())
}

async fn slides_expiry_at_most_once_per_update_age(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let token = server.sign_up("ann@example.com").await?;
    let refreshed_at = "SELECT MAX(refreshed_at) FROM sessions";
    let created = server.scalar(refreshed_at).await?;

    // Within update_age: a pure read.
    for _ in 0..3 {
        server.clock.advance(Duration::from_secs(3600));
        let response = server.sessions().get_session(GetSessionRequest { token: token.clone() }).await?.into_inner();
        assert!(!response.refreshed);
    }
    assert_eq!(server.scalar(refreshed_at).await?, created, "no write within update_age");

    // Past update_age: one write, reported, with the expiry pushed forward.
    server.clock.advance(DAY);
    let response = server.sessions().get_session(GetSessionRequest { token: token.clone() }).await?.into_inner();
    assert!(response.refreshed);
    let expires_at = response.session.ok_or("no session")?.expires_at.ok_or("no expiry")?;
    let now_secs = server.scalar(refreshed_at).await? / 1000;
    assert_eq!(expires_at.seconds - now_secs, (7 * DAY).as_secs() as i64);
    let again = server.sessions().get_session(GetSessionRequest { token: token.clone() }).await?.into_inner();
    assert!(!again.refreshed, "the next call is a read again");

    // A session kept in use outlives its first idle expiry.
    for _ in 0..4 {
        server.clock.advance(2 * DAY);
        assert_eq!(server.session_reason(&token).await, "OK");
    }
    Ok(())
}

async fn caps_sessions_at_the_absolute_lifetime(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let token = server.sign_up("ann@example.com").await?;
    for _ in 0..14 {
        server.clock.advance(2 * DAY);
        assert_eq!(server.session_reason(&token).await, "OK");
    }
    server.clock.advance(2 * DAY); // 30 days in, however busy the session was
    assert_eq!(server.session_reason(&token).await, "SESSION_EXPIRED");
    Ok(())
}

async fn lists_only_the_callers_sessions(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let ann = server.sign_up("ann@example.com").await?;
    server.clock.advance(Duration::from_secs(1));
    let ann2 = sign_in(&server, "ann@example.com").await?;
    server.sign_up("bob@example.com").await?;
    let listed = server.sessions().list_sessions(authed(ListSessionsRequest {}, &ann2)).await?.into_inner();
    assert_eq!(listed.sessions.len(), 2);
    let current: Vec<bool> = listed.sessions.iter().map(|s| s.current).collect();
    assert_eq!(current, [true, false], "newest first, the caller's own marked current");
    let ann_id = ann.split_once('.').ok_or("no dot")?.0.trim_start_matches("kp_");
    assert_eq!(listed.sessions[1].id, ann_id);
    Ok(())
}

async fn revokes_one_session_at_once(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let laptop = server.sign_up("ann@example.com").await?;
    let phone = sign_in(&server, "ann@example.com").await?;
    let phone_id = session_id(&phone);

    let revoke = RevokeSessionRequest { session_id: phone_id.clone() };
    server.sessions().revoke_session(authed(revoke.clone(), &laptop)).await?;
    assert_eq!(server.session_reason(&phone).await, "UNAUTHENTICATED", "revoked at once");
    assert_eq!(server.session_reason(&laptop).await, "OK");

    let status = server.sessions().revoke_session(authed(revoke, &laptop)).await.unwrap_err();
    assert_eq!((status.code(), reason(&status).as_str()), (Code::NotFound, "SESSION_NOT_FOUND"), "replayed");
    for bad in ["", "short", &"*".repeat(22)] {
        let request = RevokeSessionRequest { session_id: bad.into() };
        let status = server.sessions().revoke_session(authed(request, &laptop)).await.unwrap_err();
        assert_eq!(reason(&status), "INVALID_ARGUMENT", "{bad:?}");
    }
    Ok(())
}

async fn cannot_revoke_another_users_session(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let ann = server.sign_up("ann@example.com").await?;
    let bob = server.sign_up("bob@example.com").await?;
    let bob_id = session_id(&bob);
    let status =
        server.sessions().revoke_session(authed(RevokeSessionRequest { session_id: bob_id }, &ann)).await.unwrap_err();
    assert_eq!(reason(&status), "SESSION_NOT_FOUND", "indistinguishable from an unknown id");
    assert_eq!(server.session_reason(&bob).await, "OK");
    Ok(())
}

async fn revokes_all_other_sessions(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let first = server.sign_up("ann@example.com").await?;
    let second = sign_in(&server, "ann@example.com").await?;
    let third = sign_in(&server, "ann@example.com").await?;
    let bob = server.sign_up("bob@example.com").await?;
    let response = server.sessions().revoke_other_sessions(authed(RevokeOtherSessionsRequest {}, &third)).await?;
    assert_eq!(response.into_inner().revoked_sessions, 2);
    assert_eq!(server.session_reason(&first).await, "UNAUTHENTICATED");
    assert_eq!(server.session_reason(&second).await, "UNAUTHENTICATED");
    assert_eq!(server.session_reason(&third).await, "OK");
    assert_eq!(server.session_reason(&bob).await, "OK", "other users are untouched");
    Ok(())
}

async fn signs_out(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let token = server.sign_up("ann@example.com").await?;
    server.sessions().sign_out(authed(SignOutRequest {}, &token)).await?;
    assert_eq!(server.session_reason(&token).await, "UNAUTHENTICATED");
    let status = server.sessions().sign_out(authed(SignOutRequest {}, &token)).await.unwrap_err();
    assert_eq!(reason(&status), "UNAUTHENTICATED", "a replayed sign-out is refused");
    assert_eq!(server.count("sessions").await?, 0);
    Ok(())
}

async fn user_calls_need_a_valid_bearer_token(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let token = server.sign_up("ann@example.com").await?;
    let status = server.sessions().list_sessions(ListSessionsRequest {}).await.unwrap_err();
    assert_eq!((status.code(), reason(&status).as_str()), (Code::Unauthenticated, "UNAUTHENTICATED"));
    for header in [format!("Basic {token}"), token.clone(), "Bearer ".into(), "Bearer kp_nope".into()] {
        let mut request = Request::new(ListSessionsRequest {});
        request.metadata_mut().insert("authorization", header.parse()?);
        let status = server.sessions().list_sessions(request).await.unwrap_err();
        assert_eq!(reason(&status), "UNAUTHENTICATED", "{header:.20}");
    }
    Ok(())
}

/// Two replicas on one PostgreSQL database: a revocation on one reaches the
/// other's session cache and its `WatchSessionEvents` subscribers through
/// LISTEN/NOTIFY.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_reach_other_replicas() -> crate::TestResult {
    use keyport_proto::v1::{WatchSessionEventsRequest, watch_session_events_response::Event};

    let a = TestServer::start(Backend::Postgres).await?;
    let b = TestServer::replica_of(&a).await?;
    let laptop = a.sign_up("ann@example.com").await?;
    let phone = sign_in(&b, "ann@example.com").await?;
    // Replica B has read (and cached) the phone's session.
    assert_eq!(b.session_reason(&phone).await, "OK");
    let mut events = b.sessions().watch_session_events(WatchSessionEventsRequest {}).await?.into_inner();
    let first = events.message().await?.and_then(|m| m.event);
    assert!(matches!(first, Some(Event::Ready(_))), "{first:?}");

    let phone_id = session_id(&phone);
    a.sessions().revoke_session(authed(RevokeSessionRequest { session_id: phone_id.clone() }, &laptop)).await?;

    let relayed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.message().await?.and_then(|m| m.event) {
                Some(Event::SessionRevoked(revoked)) => return Ok::<_, tonic::Status>(revoked),
                Some(_) => continue,
                None => return Err(tonic::Status::aborted("stream ended")),
            }
        }
    })
    .await??;
    assert_eq!(relayed.session_id, phone_id);
    assert_eq!(b.session_reason(&phone).await, "UNAUTHENTICATED", "B's own cache dropped it too");
    Ok(())
}
