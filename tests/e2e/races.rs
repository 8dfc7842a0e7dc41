//! Promises under concurrency: revocation across replicas, refreshes racing
//! sign-outs, password changes racing sign-ins, limits under bursts,
//! cancelled calls, and parallel writers that must never see `INTERNAL`.
//!
//! No sleeps: callers start together behind barriers, and the cross-replica
//! checks use PostgreSQL's own ordering (notifications arrive in commit
//! order) as the barrier.

use std::{sync::Arc, time::Duration};

use futures::future::join_all;
use keyport_proto::v1::{
    ChangePasswordRequest, DeleteCurrentUserRequest, GetSessionRequest, RevokeOtherSessionsRequest,
    RevokeSessionRequest, SignInRequest, SignOutRequest, SignUpRequest, UpdateCurrentUserRequest,
    WatchSessionEventsRequest, watch_session_events_response::Event,
};
use keyport_tests::{
    Backend, TestServer,
    grpc::{authed, reason},
    load::CpuBurner,
    server::{PASSWORD, session_id},
};
use sea_orm::sqlx;
use tokio::sync::Barrier;
use tonic::{Code, Request, Status, Streaming};

use crate::{TestResult, on_both_backends};

on_both_backends!(
    a_refresh_racing_a_sign_out_never_resurrects_the_session,
    a_password_change_ends_every_old_password_session,
    a_burst_of_guesses_gets_exactly_the_limit,
    a_burst_of_confirmations_gets_exactly_the_limit,
    cancelled_sign_ins_leave_room_for_real_ones,
    throttled_attempts_write_a_handful_of_audit_rows,
    parallel_writers_get_documented_reasons_never_internal,
    sign_in_racing_account_deletion_is_refused_cleanly,
);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Codes a write may answer under contention; `INTERNAL` and `UNKNOWN` are bugs.
fn assert_documented(status: &Status, what: &str) {
    assert!(!matches!(status.code(), Code::Internal | Code::Unknown), "{what}: {status:?}");
    assert!(!reason(status).is_empty(), "{what} without a reason: {status:?}");
}

async fn a_refresh_racing_a_sign_out_never_resurrects_the_session(backend: Backend) -> TestResult {
    let server = TestServer::start_with(backend, |config| config.sessions.update_age_secs = 60).await?;
    let server = Arc::new(server);
    for round in 0..20 {
        let token = server.sign_up(&format!("ann{round}@example.com")).await?;
        // Cached, then due for a sliding refresh.
        assert_eq!(server.session_reason(&token).await, "OK");
        server.clock.advance(Duration::from_secs(61));
        let barrier = Arc::new(Barrier::new(2));
        let refresh = {
            let (server, token, barrier) = (server.clone(), token.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                server.session_reason(&token).await
            })
        };
        let sign_out = {
            let (server, token, barrier) = (server.clone(), token.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                server.sessions().sign_out(authed(SignOutRequest {}, &token)).await.map(|_| ())
            })
        };
        let refreshed = refresh.await?;
        assert!(matches!(refreshed.as_str(), "OK" | "UNAUTHENTICATED"), "{refreshed}");
        sign_out.await??;
        assert_eq!(server.session_reason(&token).await, "UNAUTHENTICATED", "round {round}");
        // And later refreshes do not bring it back either.
        server.clock.advance(Duration::from_secs(61));
        assert_eq!(server.session_reason(&token).await, "UNAUTHENTICATED", "round {round}, later");
    }
    Ok(())
}

async fn a_password_change_ends_every_old_password_session(backend: Backend) -> TestResult {
    let server = Arc::new(
        TestServer::start_with(backend, |config| {
            config.sign_in_limits.per_account = 1_000_000;
            config.sign_in_limits.per_ip = 1_000_000;
        })
        .await?,
    );
    let owner = server.sign_up("ann@example.com").await?;
    let signers = 6;
    let barrier = Arc::new(Barrier::new(signers + 1));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let attackers: Vec<_> = (0..signers)
        .map(|_| {
            let (server, barrier, done) = (server.clone(), barrier.clone(), done.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let mut tokens = Vec::new();
                // Keep signing in with the old password while the change runs,
                // and once more after it returned.
                let mut after = 0;
                while after < 2 {
                    if done.load(std::sync::atomic::Ordering::Acquire) {
                        after += 1;
                    }
                    match server.sign_in("ann@example.com", PASSWORD).await {
                        Ok(token) => tokens.push(token),
                        Err(status) => assert_eq!(reason(&status), "INVALID_CREDENTIALS", "{status:?}"),
                    }
                }
                tokens
            })
        })
        .collect();
    barrier.wait().await;
    let change = ChangePasswordRequest { current_password: PASSWORD.into(), new_password: "a whole new secret".into() };
    server.users().change_password(authed(change, &owner)).await?;
    done.store(true, std::sync::atomic::Ordering::Release);
    for attacker in attackers {
        for token in attacker.await? {
            assert_eq!(server.session_reason(&token).await, "UNAUTHENTICATED", "an old-password session survived");
        }
    }
    assert_eq!(server.session_reason(&owner).await, "OK");
    assert!(server.sign_in("ann@example.com", "a whole new secret").await.is_ok());
    Ok(())
}

/// `n` callers started together; each runs `call(i)`.
async fn burst<T, F, Fut>(n: usize, call: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (barrier, call) = (barrier.clone(), call(i));
            tokio::spawn(async move {
                barrier.wait().await;
                call.await
            })
        })
        .collect();
    join_all(tasks).await.into_iter().filter_map(Result::ok).collect()
}

async fn a_burst_of_guesses_gets_exactly_the_limit(backend: Backend) -> TestResult {
    let server = Arc::new(TestServer::start(backend).await?);
    server.sign_up("ann@example.com").await?;
    let results = burst(100, |i| {
        let server = server.clone();
        // One right password among 99 wrong ones, all from one address.
        let password = if i == 50 { PASSWORD.to_owned() } else { format!("wrong guess {i}") };
        async move { server.sign_in("ann@example.com", &password).await.map_err(|s| reason(&s)) }
    })
    .await;
    // The right password's attempt is refunded when it succeeds, so a guess
    // still waiting may take its place: at most 10 wrong ones are verified.
    let wrong = results.iter().filter(|r| matches!(r, Err(reason) if reason == "INVALID_CREDENTIALS")).count();
    assert!(wrong <= 10, "{wrong} wrong passwords were verified past the limit of 10");
    let verified = results.iter().filter(|r| !matches!(r, Err(reason) if reason == "RATE_LIMITED")).count();
    assert!(verified <= 11, "{verified} attempts were verified: 10 wrong and the right one at most");
    for result in &results {
        if let Err(reason) = result {
            assert!(matches!(reason.as_str(), "RATE_LIMITED" | "INVALID_CREDENTIALS"), "{reason}");
        }
    }
    // About 90 refusals at once, audited at their 1st and 10th only.
    let audited = server.scalar("SELECT COUNT(*) FROM audit_events WHERE detail LIKE 'rate_limited:%'").await?;
    assert_eq!(audited, 2, "audit rows for the refusals of one burst");
    Ok(())
}

async fn a_burst_of_confirmations_gets_exactly_the_limit(backend: Backend) -> TestResult {
    let server = Arc::new(TestServer::start(backend).await?);
    let stolen = server.sign_up("ann@example.com").await?;
    let results = burst(60, |i| {
        let (server, stolen) = (server.clone(), stolen.clone());
        async move {
            let guess = ChangePasswordRequest {
                current_password: format!("wrong guess {i}"),
                new_password: "attacker's password".into(),
            };
            server.users().change_password(authed(guess, &stolen)).await.map(|_| ()).map_err(|s| reason(&s))
        }
    })
    .await;
    let verified = results.iter().filter(|r| matches!(r, Err(reason) if reason == "INVALID_CREDENTIALS")).count();
    assert!(verified <= 10, "{verified} guesses were verified past the limit of 10");
    assert!(
        results.iter().all(|r| matches!(r, Err(reason) if reason == "RATE_LIMITED" || reason == "INVALID_CREDENTIALS"))
    );
    Ok(())
}

async fn cancelled_sign_ins_leave_room_for_real_ones(backend: Backend) -> TestResult {
    let server = Arc::new(
        TestServer::start_with(backend, |config| {
            // Real cost, so that a flood of sign-ins outlasts its deadlines.
            config.hashing.memory_kib = 19 * 1024;
            config.hashing.iterations = 2;
            config.hashing.max_queue = 16;
            config.sign_in_limits.per_ip = 1_000_000;
            config.sign_in_limits.per_account = 1_000_000;
            // The flood comes from one address; this is about the pool.
            config.request_limits.burst = 0;
        })
        .await?,
    );
    server.sign_up("ann@example.com").await?;
    // The flood comes over connections of its own, as from many clients
    // (a connection whose calls are reset by the hundred is closed by the
    // HTTP/2 layer's rapid-reset guard, which is right).
    let mut flooders = Vec::new();
    for _ in 0..10 {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", server.addr))?.connect().await?;
        flooders.push(keyport_proto::v1::session_service_client::SessionServiceClient::new(channel));
    }
    // Each connection sends sign-ins back to back, each abandoned after 5 ms.
    let flood = burst(flooders.len(), |i| {
        let mut client = flooders[i].clone();
        async move {
            for n in 0..100 {
                let email = format!("guest{i}-{n}@example.com");
                let mut request = Request::new(SignInRequest { email, password: "whatever!".into() });
                request.set_timeout(Duration::from_millis(5));
                let _ = client.sign_in(request).await;
            }
        }
    })
    .await;
    assert_eq!(flood.len(), flooders.len());
    // The abandoned jobs are skipped and their queue places given back, so
    // real users get in, more of them at once than there are hashing
    // threads, instead of queueing behind seconds of hashes for nobody. The
    // deadline is a hundred times what a hash takes here.
    //
    // A call can still meet a database connection that the flood's
    // cancellations made the pool reopen, and answer `UNAVAILABLE`, gRPC's
    // retryable code, which clients retry; the promise is that real users
    // get in, each within the same 5 seconds, not on the first attempt.
    let signed_in = burst(8, |_| {
        let server = server.clone();
        async move {
            let until = tokio::time::Instant::now() + Duration::from_secs(5);
            loop {
                let mut request =
                    Request::new(SignInRequest { email: "ann@example.com".into(), password: PASSWORD.into() });
                request.set_timeout(until.saturating_duration_since(tokio::time::Instant::now()));
                match server.sessions().sign_in(request).await {
                    Err(status) if status.code() == tonic::Code::Unavailable && tokio::time::Instant::now() < until => {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                    answer => return answer.map(|_| ()),
                }
            }
        }
    })
    .await;
    for result in signed_in {
        result?;
    }
    Ok(())
}

async fn throttled_attempts_write_a_handful_of_audit_rows(backend: Backend) -> TestResult {
    // 300 attempts from one address: about the failure limits, not the
    // per-address request budget.
    let server = TestServer::start_with(backend, |config| config.request_limits.burst = 0).await?;
    server.sign_up("ann@example.com").await?;
    for i in 0..10 {
        let refused = server.sign_in("ann@example.com", &format!("wrong {i}")).await.unwrap_err();
        assert!(["INVALID_CREDENTIALS", "RATE_LIMITED"].contains(&reason(&refused).as_str()), "{refused:?}");
    }
    let before = server.count("audit_events").await?;
    for _ in 0..300 {
        let status = server.sign_in("ann@example.com", PASSWORD).await.unwrap_err();
        assert_eq!(reason(&status), "RATE_LIMITED");
    }
    // The 1st, 10th and 100th refusals of the window, not 300 rows.
    let rows = server.count("audit_events").await? - before;
    assert_eq!(rows, 3, "audit rows written for 300 throttled attempts");
    let last = server.scalar("SELECT COUNT(*) FROM audit_events WHERE detail = 'rate_limited:refused=100'").await?;
    assert_eq!(last, 1);
    Ok(())
}

async fn parallel_writers_get_documented_reasons_never_internal(backend: Backend) -> TestResult {
    let server = Arc::new(TestServer::start(backend).await?);
    const N: usize = 8;

    // Sign-up of one email: one wins, the others are told it is taken.
    let signed_up = burst(N, |_| {
        let server = server.clone();
        async move {
            let request =
                SignUpRequest { email: "kim@example.com".into(), password: PASSWORD.into(), name: "Kim".into() };
            server.users().sign_up(request).await.map(|r| r.into_inner())
        }
    })
    .await;
    for result in &signed_up {
        if let Err(status) = result {
            assert_documented(status, "SignUp");
            assert_eq!(reason(status), "EMAIL_TAKEN");
        }
    }
    assert_eq!(signed_up.iter().filter(|r| r.is_ok()).count(), 1);

    // Sign-ins of one account.
    let tokens: Vec<String> = burst(N, |_| {
        let server = server.clone();
        async move { server.sign_in("kim@example.com", PASSWORD).await }
    })
    .await
    .into_iter()
    .collect::<Result<_, _>>()?;
    let token = tokens[0].clone();

    // Reads that slide the expiry, all at once.
    server.clock.advance(Duration::from_secs(2 * 24 * 3600));
    for result in burst(N, |i| {
        let (server, token) = (server.clone(), tokens[i].clone());
        async move { server.sessions().get_session(GetSessionRequest { token }).await.map(|_| ()) }
    })
    .await
    {
        result?;
    }

    // Profile updates of one user.
    for result in burst(N, |i| {
        let (server, token) = (server.clone(), token.clone());
        async move {
            let update = UpdateCurrentUserRequest { name: Some(format!("Kim {i}")) };
            server.users().update_current_user(authed(update, &token)).await.map(|_| ())
        }
    })
    .await
    {
        result?;
    }

    // Revoking the same session from several callers: one wins.
    let victim = tokens[1].clone();
    let revoked = burst(N, |_| {
        let (server, token, victim) = (server.clone(), token.clone(), victim.clone());
        async move {
            let request = RevokeSessionRequest { session_id: session_id(&victim) };
            server.sessions().revoke_session(authed(request, &token)).await.map(|_| ())
        }
    })
    .await;
    for status in revoked.iter().filter_map(|r| r.as_ref().err()) {
        assert_documented(status, "RevokeSession");
        assert_eq!(reason(status), "SESSION_NOT_FOUND");
    }
    assert_eq!(revoked.iter().filter(|r| r.is_ok()).count(), 1);

    // Sign-outs of distinct sessions and revoke-others, all at once.
    let mixed = burst(N, |i| {
        let (server, token, mine) = (server.clone(), token.clone(), tokens[i].clone());
        async move {
            if i == 0 {
                server.sessions().revoke_other_sessions(authed(RevokeOtherSessionsRequest {}, &token)).await.map(|_| ())
            } else {
                server.sessions().sign_out(authed(SignOutRequest {}, &mine)).await.map(|_| ())
            }
        }
    })
    .await;
    for status in mixed.iter().filter_map(|r| r.as_ref().err()) {
        assert_documented(status, "SignOut/RevokeOtherSessions");
        assert_eq!(reason(status), "UNAUTHENTICATED", "{status:?}");
    }

    // Password changes from one session: one wins; the others find the
    // password changed (or the session gone with it).
    let changed = burst(N, |i| {
        let (server, token) = (server.clone(), token.clone());
        async move {
            let change =
                ChangePasswordRequest { current_password: PASSWORD.into(), new_password: format!("new secret {i}") };
            server.users().change_password(authed(change, &token)).await.map(|_| ())
        }
    })
    .await;
    for status in changed.iter().filter_map(|r| r.as_ref().err()) {
        assert_documented(status, "ChangePassword");
        assert!(matches!(reason(status).as_str(), "INVALID_CREDENTIALS" | "UNAUTHENTICATED"), "{status:?}");
    }
    assert!(changed.iter().any(Result::is_ok));
    Ok(())
}

async fn sign_in_racing_account_deletion_is_refused_cleanly(backend: Backend) -> TestResult {
    let server = Arc::new(TestServer::start(backend).await?);
    for round in 0..5 {
        let email = format!("del{round}@example.com");
        let token = server.sign_up(&email).await?;
        let results = burst(6, |i| {
            let (server, token, email) = (server.clone(), token.clone(), email.clone());
            async move {
                if i == 0 {
                    let delete = DeleteCurrentUserRequest { password: PASSWORD.into() };
                    server.users().delete_current_user(authed(delete, &token)).await.map(|_| None)
                } else {
                    server.sign_in(&email, PASSWORD).await.map(Some)
                }
            }
        })
        .await;
        for result in &results {
            match result {
                Ok(Some(token)) => {
                    // Signed in before the deletion: the deletion ended it.
                    assert_eq!(server.session_reason(token).await, "UNAUTHENTICATED");
                }
                Ok(None) => {}
                Err(status) => {
                    assert_documented(status, "SignIn racing DeleteCurrentUser");
                    assert_eq!(reason(status), "INVALID_CREDENTIALS", "{status:?}");
                }
            }
        }
        assert_eq!(server.scalar(&format!("SELECT COUNT(*) FROM users WHERE email = '{email}'")).await?, 0);
        assert_eq!(server.count("sessions").await?, 0, "no session outlives its user");
    }
    Ok(())
}

// Cross-replica revocation: PostgreSQL only (an SQLite file has one process).

/// Sends a notification from outside Keyport that replica B relays as an
/// event about a user nobody has: since notifications arrive in commit
/// order, when B's stream shows it, B has processed everything committed
/// before it was sent.
async fn probe(a: &TestServer) -> Result<String, BoxError> {
    let user = uuid::Uuid::now_v7().to_string();
    let payload = format!("probe\tuser\t{user}\tprofile");
    let pool = a.db.get_postgres_connection_pool();
    sqlx::query("SELECT pg_notify('keyport_session_events', $1)").bind(&payload).execute(pool).await?;
    Ok(user)
}

/// Reads `events` until `until` matches an event; fails if the stream ends.
async fn read_until(
    events: &mut Streaming<keyport_proto::v1::WatchSessionEventsResponse>,
    mut until: impl FnMut(&Event) -> bool,
) -> Result<(), BoxError> {
    let read = async {
        loop {
            match events.message().await?.and_then(|m| m.event) {
                Some(event) if until(&event) => return Ok::<_, BoxError>(()),
                Some(_) => continue,
                None => return Err("event stream ended".into()),
            }
        }
    };
    // Generous: only a broken relay gets near it.
    tokio::time::timeout(Duration::from_secs(20), read).await?
}

async fn watch(server: &TestServer) -> Result<Streaming<keyport_proto::v1::WatchSessionEventsResponse>, BoxError> {
    let mut events = server.sessions().watch_session_events(WatchSessionEventsRequest {}).await?.into_inner();
    read_until(&mut events, |event| matches!(event, Event::Ready(_))).await?;
    Ok(events)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_out_is_notified_before_it_returns() -> TestResult {
    let a = TestServer::start(Backend::Postgres).await?;
    let b = TestServer::replica_of(&a).await?;
    let mut events = watch(&b).await?;
    for round in 0..20 {
        let token = a.sign_up(&format!("ann{round}@example.com")).await?;
        a.sessions().sign_out(authed(SignOutRequest {}, &token)).await?;
        // Sent after SignOut returned, so it must arrive after the revocation.
        let probe_user = probe(&a).await?;
        let revoked = session_id(&token);
        let mut seen_revocation = false;
        read_until(&mut events, |event| match event {
            Event::SessionRevoked(r) if r.session_id == revoked => {
                seen_revocation = true;
                false
            }
            Event::UserChanged(u) => u.user_id == probe_user,
            _ => false,
        })
        .await?;
        if !seen_revocation {
            // Tell "late" from "never" for whoever reads the failure.
            let late =
                read_until(&mut events, |event| matches!(event, Event::SessionRevoked(r) if r.session_id == revoked))
                    .await
                    .is_ok();
            panic!(
                "round {round}: the revocation arrived after a notification sent once SignOut returned (late: {late})"
            );
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_on_one_replica_is_refused_by_the_other_at_once() -> TestResult {
    let a = TestServer::start(Backend::Postgres).await?;
    let b = TestServer::replica_of(&a).await?;
    let mut events = watch(&b).await?;
    let _busy = CpuBurner::start();
    for round in 0..30 {
        let token = a.sign_up(&format!("ann{round}@example.com")).await?;
        // B reads and caches the session.
        assert_eq!(b.session_reason(&token).await, "OK");
        assert_eq!(b.session_reason(&token).await, "OK");
        a.sessions().sign_out(authed(SignOutRequest {}, &token)).await?;
        let probe_user = probe(&a).await?;
        read_until(&mut events, |event| matches!(event, Event::UserChanged(u) if u.user_id == probe_user)).await?;
        assert_eq!(b.session_reason(&token).await, "UNAUTHENTICATED", "round {round}: B served a revoked session");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_of_another_replica_never_reads_back_a_stale_answer() -> TestResult {
    // 200 sign-ups from one address: not about the request budget.
    let a = TestServer::start_with(Backend::Postgres, |config| config.request_limits.burst = 0).await?;
    let b = TestServer::replica_of(&a).await?;
    let mut events = watch(&b).await?;
    let _busy = CpuBurner::start();
    for round in 0..200 {
        let token = a.sign_up(&format!("ann{round}@example.com")).await?;
        assert_eq!(b.session_reason(&token).await, "OK");
        assert_eq!(b.session_reason(&token).await, "OK");
        a.sessions().sign_out(authed(SignOutRequest {}, &token)).await?;
        let revoked = session_id(&token);
        // What a middleware does: on the event, drop and ask B again.
        read_until(&mut events, |event| matches!(event, Event::SessionRevoked(r) if r.session_id == revoked)).await?;
        assert_eq!(b.session_reason(&token).await, "UNAUTHENTICATED", "round {round}: B answered from a stale cache");
    }
    Ok(())
}

/// Resumes stopped PostgreSQL backends when dropped, whatever the test did.
struct Stopped(Vec<i32>);

impl Stopped {
    fn signal(pids: &[i32], signal: &str) -> std::io::Result<()> {
        for pid in pids {
            std::process::Command::new("kill").arg(signal).arg(pid.to_string()).status()?;
        }
        Ok(())
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = Self::signal(&self.0, "-CONT");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_relay_turns_caches_off_until_it_is_back() -> TestResult {
    // A private cluster: frozen backends must not disturb other tests'
    // notifications (PostgreSQL has one notification queue per cluster).
    let cluster = keyport_tests::pg::PgCluster::start()?;
    let a = TestServer::start_on_cluster(&cluster, |_| {}).await?;
    let b = TestServer::replica_of(&a).await?;
    let mut events = watch(&b).await?;
    let token = a.sign_up("ann@example.com").await?;
    assert_eq!(b.session_reason(&token).await, "OK");

    // Freeze the listening connections: they stay open but deliver nothing,
    // as in a network partition that TCP does not notice for hours.
    let listeners: Vec<i32> = sqlx::query_scalar(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query ILIKE 'LISTEN%'",
    )
    .fetch_all(a.db.get_postgres_connection_pool())
    .await?;
    assert_eq!(listeners.len(), 2, "one listener per replica");
    Stopped::signal(&listeners, "-STOP")?;
    let stopped = Stopped(listeners);

    // B notices by itself: its stream ends, and new ones are refused.
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match events.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return (Code::Ok, String::new()),
                Err(status) => return (status.code(), reason(&status)),
            }
        }
    })
    .await?;
    assert_eq!(ended, (Code::Aborted, "EVENTS_LOST".to_owned()));
    let refused = b.sessions().watch_session_events(WatchSessionEventsRequest {}).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    assert_eq!(reason(&refused), "UNAVAILABLE");

    // Meanwhile B's own cache is off: a sign-out on A, whose notification
    // B cannot hear, is refused by B at once.
    a.sessions().sign_out(authed(SignOutRequest {}, &token)).await?;
    assert_eq!(b.session_reason(&token).await, "UNAUTHENTICATED");

    // Back: B accepts streams again once its heartbeats return.
    drop(stopped);
    let back = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match b.sessions().watch_session_events(WatchSessionEventsRequest {}).await {
                Ok(stream) => return Ok::<_, Status>(stream),
                Err(status) if status.code() == Code::Unavailable => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(status) => return Err(status),
            }
        }
    })
    .await??;
    drop(back);
    Ok(())
}
