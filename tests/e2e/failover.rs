//! A client of two replicas keeps working when one dies: stopped (SIGTERM),
//! killed (SIGKILL: every socket closes at once) or frozen (SIGSTOP: the
//! kernel keeps accepting and holding connections, nothing answers).
//!
//! The dying replica is always B and comes first in the client's list, so
//! that the client's first call (and the cache's subscription) goes to it.
//! Against the single-endpoint client every scenario fails: a client of B
//! alone gets UNAVAILABLE for every call once B is gone. Against tonic's
//! `Channel::balance_list` about half the calls fail (killed) or wait their
//! whole deadline (frozen), call after call, which the bounds below refuse.
//!
//! On SQLite the replicas share the database file but not events; each
//! scenario reads revocations only from the replica that made them.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use keyport_client::{CacheConfig, ClientInfo, KeyportClient, Reason, SessionCache};
use keyport_proto::v1::SignOutRequest;
use keyport_tests::{Backend, TestServer, grpc::authed, server::PASSWORD};
use tokio::sync::Barrier;

use crate::{TestResult, on_both_backends};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Deadline of each attempt of the clients under test.
const TIMEOUT: Duration = Duration::from_millis(500);

/// How replica B dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Death {
    /// Graceful shutdown, as on SIGTERM.
    Stopped,
    /// At once, as on SIGKILL.
    Killed,
    /// Frozen, as on SIGSTOP (thawed when the test ends).
    Frozen,
}

impl Death {
    /// Ends `b` this way; a frozen one is handed back, to be thawed on drop.
    async fn strike(self, b: TestServer) -> Result<Option<TestServer>, BoxError> {
        match self {
            Self::Stopped => b.stop().await?,
            Self::Killed => b.kill().await?,
            Self::Frozen => {
                b.freeze().await?;
                return Ok(Some(b));
            }
        }
        Ok(None)
    }
}

/// A client of `servers`, in that order, with a short deadline and probes.
fn client_of(servers: &[&TestServer]) -> Result<KeyportClient, BoxError> {
    Ok(KeyportClient::builder_for(servers.iter().map(|server| format!("http://{}", server.addr)))
        .request_timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .probe_delay(Duration::from_millis(50), Duration::from_millis(200))
        .build()?)
}

/// Replica A on `backend`, and B on its database, ready to be struck.
async fn replicas(backend: Backend) -> Result<(TestServer, TestServer), BoxError> {
    let a = TestServer::start(backend).await?;
    let b = TestServer::isolated_replica_of(&a).await?;
    Ok((a, b))
}

async fn until(what: &str, within: Duration, mut done: impl AsyncFnMut() -> bool) -> TestResult {
    let deadline = Instant::now() + within;
    while !done().await {
        if Instant::now() > deadline {
            return Err(format!("not within {within:?}: {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

async fn get_session_fails_over(backend: Backend, death: Death) -> TestResult {
    let (a, b) = replicas(backend).await?;
    let client = client_of(&[&b, &a])?;
    let token = a.sign_up("ann@example.com").await?;
    let nobody = ClientInfo::default();
    for _ in 0..4 {
        client.get_session(&token, &nobody).await?; // B and A in turn
    }

    let _frozen = death.strike(b).await?;
    let mut slow = 0;
    for call in 0..20 {
        let started = Instant::now();
        let answer = client.get_session(&token, &nobody).await;
        let took = started.elapsed();
        assert!(answer.is_ok(), "{death:?}: call {call} failed after {took:?}: {answer:?}");
        // One deadline on B at most, then the retry on A.
        assert!(took < 2 * TIMEOUT, "{death:?}: call {call} took {took:?}");
        if took > TIMEOUT / 2 {
            slow += 1;
        }
    }
    // Once B let a call down it is avoided: no call waits on it again.
    assert!(slow <= 1, "{death:?}: {slow} calls waited on B");
    Ok(())
}

async fn get_session_fails_over_from_a_stopped_replica(backend: Backend) -> TestResult {
    get_session_fails_over(backend, Death::Stopped).await
}

async fn get_session_fails_over_from_a_killed_replica(backend: Backend) -> TestResult {
    get_session_fails_over(backend, Death::Killed).await
}

async fn get_session_fails_over_from_a_frozen_replica(backend: Backend) -> TestResult {
    get_session_fails_over(backend, Death::Frozen).await
}

async fn the_cache_fails_over(backend: Backend, death: Death) -> TestResult {
    let (a, b) = replicas(backend).await?;
    let config = CacheConfig {
        reconnect_delay: Duration::from_millis(20),
        liveness_interval: Duration::from_millis(100),
        ..CacheConfig::default()
    };
    // The subscription is the client's first call: it goes to B.
    let cache = SessionCache::start(client_of(&[&b, &a])?, config);
    until("the cache is live", Duration::from_secs(10), async || cache.is_live()).await?;
    let nobody = ClientInfo::default();
    let ann = a.sign_up("ann@example.com").await?;
    cache.get_session(&ann, &nobody).await?;
    assert!(cache.lookup(&ann).is_some(), "cached while live");

    // B dies, then A revokes Ann's session. B never relays that event: the
    // cache must stop serving the entry by itself, and soon.
    let _frozen = death.strike(b).await?;
    a.sessions().sign_out(authed(SignOutRequest {}, &ann)).await?;
    let bound = TIMEOUT + Duration::from_secs(1);
    until("the cache drops what B can no longer revoke", bound, async || cache.lookup(&ann).is_none()).await?;
    let refused = cache.get_session(&ann, &nobody).await.unwrap_err();
    assert_eq!(refused.reason(), &Reason::Unauthenticated, "{death:?}: asked A");

    // Subscribed through A now: a revocation on A reaches the cache.
    until("the cache is live again", Duration::from_secs(5), async || cache.is_live()).await?;
    let bob = a.sign_up("bob@example.com").await?;
    until("Bob's session is cached", Duration::from_secs(5), async || {
        cache.get_session(&bob, &nobody).await.is_ok() && cache.lookup(&bob).is_some()
    })
    .await?;
    a.sessions().sign_out(authed(SignOutRequest {}, &bob)).await?;
    until("A's revocation reaches the cache", Duration::from_secs(1), async || cache.lookup(&bob).is_none()).await?;
    assert!(cache.is_live(), "{death:?}: the drop came from an event, not from the cache going dark");
    Ok(())
}

async fn the_cache_fails_over_from_a_killed_replica(backend: Backend) -> TestResult {
    the_cache_fails_over(backend, Death::Killed).await
}

async fn the_cache_fails_over_from_a_frozen_replica(backend: Backend) -> TestResult {
    the_cache_fails_over(backend, Death::Frozen).await
}

async fn concurrent_callers_ride_out(backend: Backend, death: Death) -> TestResult {
    const CALLERS: usize = 16;
    let (a, b) = replicas(backend).await?;
    let client = client_of(&[&b, &a])?;
    let token = a.sign_up("ann@example.com").await?;
    let barrier = Arc::new(Barrier::new(CALLERS + 1));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (client, token, barrier) = (client.clone(), token.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                let (mut slowest, mut slow) = (Duration::ZERO, 0);
                for _ in 0..40 {
                    let started = Instant::now();
                    client.get_session(&token, &ClientInfo::default()).await?;
                    slowest = slowest.max(started.elapsed());
                    slow += usize::from(started.elapsed() > TIMEOUT / 2);
                }
                Ok::<_, keyport_client::Error>((slowest, slow))
            })
        })
        .collect();
    barrier.wait().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    let _frozen = death.strike(b).await?; // while calls are in flight on both
    for caller in callers {
        let (slowest, slow) = caller.await?.map_err(|e| format!("{death:?}: a caller got {e}"))?;
        assert!(slowest < 2 * TIMEOUT, "{death:?}: a call took {slowest:?}");
        // Only calls already on their way to B when it froze wait for it.
        assert!(slow <= 1, "{death:?}: {slow} calls of one caller waited on B");
    }
    Ok(())
}

async fn concurrent_callers_ride_out_a_replica_killed_mid_flight(backend: Backend) -> TestResult {
    concurrent_callers_ride_out(backend, Death::Killed).await
}

async fn concurrent_callers_ride_out_a_replica_frozen_mid_flight(backend: Backend) -> TestResult {
    concurrent_callers_ride_out(backend, Death::Frozen).await
}

on_both_backends!(
    get_session_fails_over_from_a_stopped_replica,
    get_session_fails_over_from_a_killed_replica,
    get_session_fails_over_from_a_frozen_replica,
    the_cache_fails_over_from_a_killed_replica,
    the_cache_fails_over_from_a_frozen_replica,
    concurrent_callers_ride_out_a_replica_killed_mid_flight,
    concurrent_callers_ride_out_a_replica_frozen_mid_flight,
);

/// Fail closed: with no replica answering, calls fail with UNAVAILABLE, and
/// soon; the cache serves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_replica_down_calls_fail_closed_quickly() -> TestResult {
    let db = TestServer::start(Backend::Sqlite).await?;
    for death in [Death::Killed, Death::Frozen] {
        let (b, c) = (TestServer::isolated_replica_of(&db).await?, TestServer::isolated_replica_of(&db).await?);
        let client = client_of(&[&b, &c])?;
        let cache = SessionCache::start(client.clone(), CacheConfig::default());
        until("the cache is live", Duration::from_secs(10), async || cache.is_live()).await?;
        let token = db.sign_up(&format!("ann-{death:?}@example.com")).await?;
        cache.get_session(&token, &ClientInfo::default()).await?;
        let _frozen = (death.strike(b).await?, death.strike(c).await?);

        // The first call may wait out one deadline per replica.
        let first = client.get_session(&token, &ClientInfo::default()).await.unwrap_err();
        assert_eq!(first.reason(), &Reason::Unavailable, "{death:?}");
        for _ in 0..5 {
            let started = Instant::now();
            let error = cache.get_session(&token, &ClientInfo::default()).await.unwrap_err();
            assert_eq!(error.reason(), &Reason::Unavailable, "{death:?}");
            let took = started.elapsed();
            assert!(took < Duration::from_millis(200), "{death:?}: failing took {took:?}");
        }
        assert!(cache.lookup(&token).is_none(), "{death:?}: served with nothing behind it");
    }
    Ok(())
}

/// A sign-in that may have reached a frozen replica is not sent again to
/// another: it could sign the user in twice (or spend a rate-limit attempt
/// twice). Once that replica is known down, sign-ins go elsewhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_that_may_have_arrived_is_not_replayed() -> TestResult {
    let (a, b) = replicas(Backend::Sqlite).await?;
    a.sign_up("ann@example.com").await?;
    let client = client_of(&[&b, &a])?;
    let _frozen = Death::Frozen.strike(b).await?;

    let error = client.sign_in("ann@example.com", PASSWORD, &ClientInfo::default()).await.unwrap_err();
    assert_eq!(error.reason(), &Reason::Unavailable);
    assert_eq!(a.count("sessions").await?, 1, "only the sign-up's session: the sign-in went nowhere else");

    client.sign_in("ann@example.com", PASSWORD, &ClientInfo::default()).await?;
    assert_eq!(a.count("sessions").await?, 2);
    Ok(())
}

/// A refused connection proves the request never left: a sign-in moves on
/// to the next replica at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_in_moves_on_when_a_connection_is_refused() -> TestResult {
    let (a, b) = replicas(Backend::Sqlite).await?;
    a.sign_up("ann@example.com").await?;
    let client = client_of(&[&b, &a])?;
    Death::Killed.strike(b).await?;
    for _ in 0..3 {
        let started = Instant::now();
        client.sign_in("ann@example.com", PASSWORD, &ClientInfo::default()).await?;
        assert!(started.elapsed() < TIMEOUT, "no deadline waited out");
    }
    assert_eq!(a.count("sessions").await?, 4, "the sign-up's and one per sign-in");
    Ok(())
}

/// The middleware in front of two replicas, B frozen: its wait budget
/// (shorter than an attempt's deadline) gives up on B, but the attempt goes
/// on in the background, B is marked down, and the requests after it are
/// answered through A. Were the attempt cancelled with the request, the
/// client would never learn of B and every request sent there would fail.
async fn the_middleware_fails_over(start: crate::web::StartApp) -> TestResult {
    use keyport_client::web::Guard;
    use reqwest::{StatusCode, header::AUTHORIZATION};

    let (a, b) = replicas(Backend::Sqlite).await?;
    let ann = a.sign_up("ann@example.com").await?;
    // Every request asks Keyport, and only requests can find B frozen (the
    // cache's own liveness probe would find it too, and hide the difference).
    let config =
        CacheConfig { max_ttl: Duration::ZERO, liveness_interval: Duration::from_secs(600), ..CacheConfig::default() };
    let cache = SessionCache::start(client_of(&[&b, &a])?, config);
    let settings = keyport_tests::apps::settings().with_waits(TIMEOUT / 5, TIMEOUT / 5);
    let app = start(Guard::new(cache, settings.shared())).await?;
    let http = reqwest::Client::new();
    let _frozen = Death::Frozen.strike(b).await?;

    let mut statuses = Vec::new();
    for _ in 0..20 {
        let response =
            http.get(format!("http://{app}/dashboard")).header(AUTHORIZATION, format!("Bearer {ann}")).send().await?;
        statuses.push(response.status());
        tokio::time::sleep(TIMEOUT / 10).await;
    }
    let refused = statuses.iter().filter(|status| **status == StatusCode::SERVICE_UNAVAILABLE).count();
    eprintln!("middleware with B frozen: {refused} of 20 requests refused");
    assert!(statuses[10..].iter().all(|status| *status == StatusCode::OK), "after failover: {statuses:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_axum_middleware_fails_over_from_a_frozen_replica() -> TestResult {
    the_middleware_fails_over(|guard| Box::pin(keyport_tests::apps::axum_app::start(guard))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_actix_middleware_fails_over_from_a_frozen_replica() -> TestResult {
    the_middleware_fails_over(|guard| Box::pin(keyport_tests::apps::actix_app::start(guard))).await
}
