//! Faults under load: PostgreSQL restarted while two replicas serve
//! writers and readers, and a database slowed to a stop under sign-ups
//! with deadlines. What must hold: health follows the database, no
//! acknowledged write is lost, no revoked session is served, nothing is
//! half-written, deadlines end calls, and the hashing pool gets every
//! permit back. (A replica killed under load is in `failover.rs`; SQLite
//! with a full disk is in the server's `operations` tests, on the binary.)

use std::{
    collections::BTreeSet,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures::future::join_all;
use keyport_proto::v1::{GetSessionRequest, SignOutRequest, SignUpRequest};
use keyport_tests::{
    Backend, TestServer,
    grpc::{authed, reason},
    pg::PgCluster,
    server::PASSWORD,
};
use sea_orm::{ConnectionTrait, TransactionTrait};
use tokio::task::JoinSet;
use tonic::{Code, Request};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

use crate::{TestResult, on_both_backends};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

on_both_backends!(a_stalled_database_holds_deadlines_and_returns_every_hashing_permit);

/// What the load saw, shared by its tasks.
#[derive(Default)]
struct Seen {
    /// Sign-ups answered OK: each must exist afterwards.
    acknowledged: Mutex<Vec<String>>,
    /// Codes of failed calls other than the expected refusals.
    failures: Mutex<Vec<(Code, String)>>,
    /// Times a revoked session was answered OK: must stay 0.
    stale: Mutex<u32>,
    /// Health statuses of replica A, in the order they changed.
    health: Mutex<Vec<ServingStatus>>,
}

impl Seen {
    fn fail(&self, status: &tonic::Status) {
        self.failures.lock().unwrap().push((status.code(), reason(status)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_loses_no_acknowledged_write() -> TestResult {
    let cluster = Arc::new(tokio::task::spawn_blocking(PgCluster::start).await??);
    let configure = |config: &mut keyport_server::Config| {
        config.database.acquire_timeout_ms = 500;
        // The load signs up far more than one address's budget allows.
        config.request_limits.burst = 0;
    };
    let a = Arc::new(TestServer::start_on_cluster(&cluster, configure).await?);
    let b = Arc::new(TestServer::replica_of_with(&a, configure).await?);
    let valid = a.sign_up("valid@example.com").await?;
    let revoked = a.sign_up("revoked@example.com").await?;
    assert_eq!(b.session_reason(&revoked).await, "OK", "cached on B");
    a.sessions().sign_out(authed(SignOutRequest {}, &revoked)).await?;
    assert_eq!(b.session_reason(&revoked).await, "UNAUTHENTICATED");

    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut load = JoinSet::new();
    for writer in 0..4 {
        let (server, seen, stop) = (if writer % 2 == 0 { a.clone() } else { b.clone() }, seen.clone(), stop.clone());
        load.spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let email = format!("load-{writer}-{n}@example.com");
                let request = SignUpRequest { email: email.clone(), password: PASSWORD.into(), name: String::new() };
                match server.users().sign_up(with_deadline(request)).await {
                    Ok(_) => seen.acknowledged.lock().unwrap().push(email),
                    // The outage: refused as unavailable, or cut by the deadline.
                    Err(status) if matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded) => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(status) => seen.fail(&status),
                }
            }
        });
    }
    for server in [a.clone(), b.clone()] {
        let (seen, stop, revoked, valid) = (seen.clone(), stop.clone(), revoked.clone(), valid.clone());
        load.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let request = GetSessionRequest { token: revoked.clone() };
                match server.sessions().get_session(with_deadline(request)).await {
                    Ok(_) => *seen.stale.lock().unwrap() += 1,
                    Err(status) if status.code() == Code::Unauthenticated => {}
                    Err(status) if matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded) => {}
                    Err(status) => seen.fail(&status),
                }
                let request = GetSessionRequest { token: valid.clone() };
                match server.sessions().get_session(with_deadline(request)).await {
                    Ok(_) => {}
                    Err(status) if matches!(status.code(), Code::Unavailable | Code::DeadlineExceeded) => {}
                    Err(status) => seen.fail(&status),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
    }
    {
        let (server, seen, stop) = (a.clone(), seen.clone(), stop.clone());
        load.spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let status = server.health().check(HealthCheckRequest { service: String::new() }).await;
                if let Ok(status) = status.map(|answer| answer.into_inner().status()) {
                    let mut health = seen.health.lock().unwrap();
                    if health.last() != Some(&status) {
                        health.push(status);
                    }
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        });
    }

    tokio::time::sleep(Duration::from_secs(1)).await;
    let before_outage = seen.acknowledged.lock().unwrap().len();
    let stopping = cluster.clone();
    tokio::task::spawn_blocking(move || stopping.stop()).await??;
    until_health(&seen, ServingStatus::NotServing).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let starting = cluster.clone();
    tokio::task::spawn_blocking(move || starting.start_again()).await??;
    until_health(&seen, ServingStatus::Serving).await?;
    let after_outage = seen.acknowledged.lock().unwrap().len();
    // Load after the restart, to show both replicas write again.
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    while let Some(task) = load.join_next().await {
        task?;
    }

    let health = seen.health.lock().unwrap().clone();
    assert_eq!(health, [ServingStatus::Serving, ServingStatus::NotServing, ServingStatus::Serving]);
    assert_eq!(*seen.stale.lock().unwrap(), 0, "a revoked session was served");
    let failures = seen.failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "unexpected failures: {failures:?}");
    let acknowledged = seen.acknowledged.lock().unwrap().clone();
    assert!(before_outage > 0, "the load wrote before the outage");
    assert!(acknowledged.len() > after_outage, "the load wrote again after the restart");

    // Every acknowledged sign-up is there; every account there (also those
    // whose answer the outage cut off) is whole: it signs in.
    let stored: BTreeSet<String> = users_like(&a, "load-%").await?;
    let lost: Vec<&String> = acknowledged.iter().filter(|email| !stored.contains(*email)).collect();
    assert!(lost.is_empty(), "acknowledged sign-ups lost: {lost:?}");
    for email in &stored {
        a.sign_in(email, PASSWORD).await.map_err(|status| format!("{email} is half-written: {status:?}"))?;
    }
    assert_eq!(a.session_reason(&valid).await, "OK");
    assert_eq!(b.session_reason(&revoked).await, "UNAUTHENTICATED");
    Ok(())
}

async fn a_stalled_database_holds_deadlines_and_returns_every_hashing_permit(backend: Backend) -> TestResult {
    const CALLERS: usize = 32;
    const DEADLINE: Duration = Duration::from_millis(800);
    let server = Arc::new(
        TestServer::start_with(backend, |config| {
            // The real cost, on fewer threads than callers: the deadline
            // cuts calls waiting for a thread, hashing, and writing.
            config.hashing.memory_kib = 19_456;
            config.hashing.iterations = 2;
            config.hashing.workers = 2;
            config.request_limits.burst = 0;
        })
        .await?,
    );
    let known = server.sign_up("known@example.com").await?;

    // Stall every write: hold the database's write lock from the test's
    // own connection (SQLite: the one writer; PostgreSQL: `users` locked).
    let stall = server.db.begin().await?;
    match backend {
        Backend::Sqlite => stall.execute_unprepared("UPDATE users SET name = name WHERE email = 'known@example.com'"),
        Backend::Postgres => stall.execute_unprepared("LOCK TABLE users IN ACCESS EXCLUSIVE MODE"),
    }
    .await?;

    let calls = (0..CALLERS).map(|n| {
        let server = server.clone();
        tokio::spawn(async move {
            let email = format!("stalled-{n}@example.com");
            let request = SignUpRequest { email, password: PASSWORD.into(), name: String::new() };
            let mut request = Request::new(request);
            request.set_timeout(DEADLINE);
            let started = Instant::now();
            let outcome = server.users().sign_up(request).await;
            (started.elapsed(), outcome.map(|_| ()).map_err(|status| status.code()))
        })
    });
    for call in join_all(calls).await {
        let (took, outcome) = call?;
        // The server ends a call past its deadline with CANCELLED (tonic's
        // code, docs/operations.md#limits), or the client's timer does first.
        assert!(
            matches!(outcome, Err(Code::DeadlineExceeded | Code::Cancelled)),
            "a stalled write is cut by the deadline: {outcome:?}"
        );
        // Generous: only a call that ignored its deadline (waiting out the
        // 5 s busy timeout or the lock) takes this long.
        assert!(took < DEADLINE + Duration::from_secs(3), "the deadline held: {took:?}");
    }
    stall.rollback().await?;

    // Every permit is back: the queue drains, and a full round of callers
    // is served at once, which a pool short of threads could not do.
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.accounts.gauges().hashes_running + server.accounts.gauges().hashes_queued > 0 {
        assert!(Instant::now() < deadline, "hashing never drained: {:?}", server.accounts.gauges());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let again = (0..8).map(|n| {
        let server = server.clone();
        async move { server.sign_up(&format!("after-{n}@example.com")).await }
    });
    for signed_up in join_all(again).await {
        assert!(!signed_up?.is_empty());
    }
    // The cut sign-ups left nothing behind that cannot sign in.
    for email in users_like(&server, "stalled-%").await? {
        server.sign_in(&email, PASSWORD).await.map_err(|status| format!("{email} is half-written: {status:?}"))?;
    }
    assert_eq!(server.session_reason(&known).await, "OK");
    Ok(())
}

/// A request with a deadline short enough for calls to give up during an
/// outage, long enough for a busy machine's normal calls.
fn with_deadline<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(Duration::from_secs(3));
    request
}

/// Waits until replica A's health has last been `wanted`.
async fn until_health(seen: &Seen, wanted: ServingStatus) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.health.lock().unwrap().last() != Some(&wanted) {
        if Instant::now() > deadline {
            return Err(format!("health never became {wanted:?}: {:?}", seen.health.lock().unwrap()).into());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Ok(())
}

/// The emails of the accounts whose address is like `pattern`.
async fn users_like(server: &TestServer, pattern: &str) -> Result<BTreeSet<String>, BoxError> {
    let backend = server.db.get_database_backend();
    let sql = format!("SELECT email FROM users WHERE email LIKE '{pattern}'");
    let rows = server.db.query_all_raw(sea_orm::Statement::from_string(backend, sql)).await?;
    Ok(rows.iter().map(|row| row.try_get_by_index::<String>(0)).collect::<Result<_, _>>()?)
}
