//! The throttling counters that replicas on PostgreSQL share: the same
//! rules as the memory counters (each scenario runs on both), atomic for
//! parallel callers on two connection pools, sound after cancelled calls,
//! and one budget for two replicas, not two.

use std::{sync::Arc, time::Duration};

use futures::future::join_all;
use keyport_core::{
    Timestamp,
    store::CounterStore,
    throttle::{
        CounterKey,
        budget::Rate,
        failures::{Attempt, Refusal},
        memory::MemoryCounters,
    },
};
use keyport_proto::v1::{SignInRequest, SignUpRequest};
use keyport_store::{Backend as StoreBackend, SeaStore, SharedCounters, StoreOptions};
use keyport_tests::{Backend, TestServer, grpc::reason, pg, server::PASSWORD};
use tokio::sync::Barrier;

use crate::TestResult;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const T0: Timestamp = Timestamp::from_unix_millis(1_800_000_000_000);

fn at(millis: u64) -> Timestamp {
    T0.saturating_add(Duration::from_millis(millis))
}

/// Shared counters on a fresh database, and its URL for more pools.
async fn shared() -> Result<(SharedCounters, String), BoxError> {
    let url = pg::shared()?.create_database("counters")?;
    let store = SeaStore::connect(&url, &StoreOptions::for_backend(StoreBackend::Postgres)).await?;
    store.migrate().await?;
    Ok((store.shared_counters().ok_or("PostgreSQL has shared counters")?, url))
}

/// Another pool on the database at `url`: what a second replica has.
async fn pool(url: &str) -> Result<SharedCounters, BoxError> {
    let store = SeaStore::connect(url, &StoreOptions::for_backend(StoreBackend::Postgres)).await?;
    Ok(store.shared_counters().ok_or("PostgreSQL has shared counters")?)
}

/// Both counter stores, named for assertion messages.
async fn both() -> Result<Vec<(&'static str, Box<dyn CounterStore>)>, BoxError> {
    let (shared, _) = shared().await?;
    Ok(vec![("memory", Box::new(MemoryCounters::default())), ("postgres", Box::new(shared))])
}

async fn take(counters: &dyn CounterStore, key: &CounterKey, rate: Rate, now: Timestamp) -> Result<(), Duration> {
    counters.take_token(key, rate, now).await.unwrap()
}

async fn reserve(counters: &dyn CounterStore, keys: &[(CounterKey, u32)], now: Timestamp) -> Result<Attempt, Refusal> {
    counters.reserve_attempt(keys, Duration::from_secs(60), now).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buckets_pass_a_burst_then_refill_at_the_rate() -> TestResult {
    for (name, counters) in both().await? {
        let counters = counters.as_ref();
        let rate = Rate::per_minute(3, 60);
        let key = CounterKey::new("sign_up", "203.0.113.7");
        for _ in 0..3 {
            assert_eq!(take(counters, &key, rate, at(0)).await, Ok(()), "{name}");
        }
        assert_eq!(take(counters, &key, rate, at(0)).await, Err(Duration::from_secs(1)), "{name}");
        assert_eq!(take(counters, &key, rate, at(999)).await, Err(Duration::from_millis(1)), "{name}");
        assert_eq!(take(counters, &key, rate, at(1_000)).await, Ok(()), "{name}");
        assert!(take(counters, &key, rate, at(1_000)).await.is_err(), "{name}");
        // Another subject and another scope have buckets of their own.
        assert_eq!(take(counters, &CounterKey::new("sign_up", "203.0.113.8"), rate, at(1_000)).await, Ok(()));
        assert_eq!(take(counters, &CounterKey::new("sign_in", "203.0.113.7"), rate, at(1_000)).await, Ok(()));
        // A quiet spell refills the whole burst, and no more.
        for _ in 0..3 {
            assert_eq!(take(counters, &key, rate, at(120_000)).await, Ok(()), "{name}");
        }
        assert!(take(counters, &key, rate, at(120_000)).await.is_err(), "{name}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_runs_grow_their_delay_and_refund_only_their_own_attempt() -> TestResult {
    for (name, counters) in both().await? {
        let counters = counters.as_ref();
        let account = (CounterKey::new("failed_sign_in_account", "ann@example.com"), 3);
        let address = (CounterKey::new("failed_sign_in_ip", "203.0.113.7"), 5);
        let keys = [account.clone(), address.clone()];
        // Two failures, then a success that refunds only itself.
        for _ in 0..2 {
            let _failed = reserve(counters, &keys, at(0)).await.unwrap();
        }
        let success = reserve(counters, &keys, at(0)).await.unwrap();
        counters.refund_attempt(&success).await?;
        let _failed = reserve(counters, &keys, at(0)).await.unwrap();
        // Three failures: 1 s, then 2 s after the next.
        let refusal = reserve(counters, &keys, at(0)).await.unwrap_err();
        assert_eq!(refusal, Refusal { retry_after: Duration::from_secs(1), refused: 1 }, "{name}");
        assert_eq!(reserve(counters, &keys, at(999)).await.unwrap_err().refused, 2, "{name}");
        let _failed = reserve(counters, &keys, at(1_000)).await.unwrap();
        let refusal = reserve(counters, &keys, at(1_000)).await.unwrap_err();
        assert_eq!(refusal.retry_after, Duration::from_secs(2), "{name}");
        // The address counted every attempt: one more is its fifth.
        let other = [(CounterKey::new("failed_sign_in_account", "bob@example.com"), 3), address.clone()];
        let late = reserve(counters, &other, at(1_000)).await.unwrap();
        assert!(reserve(counters, &other, at(1_000)).await.is_err(), "{name}: the address is spent");
        // A window of quiet starts every run afresh; a refund from the old
        // run no longer applies.
        for _ in 0..3 {
            let _failed = reserve(counters, &keys, at(62_000)).await.unwrap();
        }
        counters.refund_attempt(&late).await?;
        assert!(reserve(counters, &keys, at(62_000)).await.is_err(), "{name}: a stale refund was applied");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_deletes_only_counters_that_limit_nothing() -> TestResult {
    for (name, counters) in both().await? {
        let counters = counters.as_ref();
        let rate = Rate::per_minute(1, 1);
        take(counters, &CounterKey::new("sign_up", "a"), rate, at(0)).await.unwrap();
        let _failed = reserve(counters, &[(CounterKey::new("failed_sign_in_account", "a"), 3)], at(0)).await.unwrap();
        let idle = Duration::from_secs(60);
        assert_eq!(counters.delete_idle_counters(at(59_999), idle).await?, 0, "{name}");
        assert_eq!(counters.delete_idle_counters(at(60_000), idle).await?, 2, "{name}");
        // Swept is fresh: the full burst again.
        assert_eq!(take(counters, &CounterKey::new("sign_up", "a"), rate, at(60_000)).await, Ok(()), "{name}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_callers_on_two_pools_get_exactly_the_budget() -> TestResult {
    let (a, url) = shared().await?;
    let pools = Arc::new([a, pool(&url).await?]);
    let callers = 32;
    let barrier = Arc::new(Barrier::new(callers));
    let rate = Rate { burst: 5, interval: Duration::from_secs(3600) };
    let takes = (0..callers).map(|n| {
        let (pools, barrier) = (pools.clone(), barrier.clone());
        async move {
            barrier.wait().await;
            pools[n % 2].take_token(&CounterKey::new("sign_up", "203.0.113.7"), rate, at(0)).await
        }
    });
    let admitted = join_all(takes).await.into_iter().filter(|taken| matches!(taken, Ok(Ok(())))).count();
    assert_eq!(admitted, 5, "exactly the burst, whichever pool asked");

    let barrier = Arc::new(Barrier::new(callers));
    let reserves = (0..callers).map(|n| {
        let (pools, barrier) = (pools.clone(), barrier.clone());
        async move {
            barrier.wait().await;
            let keys = [
                (CounterKey::new("failed_sign_in_account", "ann@example.com"), 3),
                (CounterKey::new("failed_sign_in_ip", format!("203.0.113.{n}")), 100),
            ];
            pools[n % 2].reserve_attempt(&keys, Duration::from_secs(60), at(0)).await
        }
    });
    let reserved = join_all(reserves).await.into_iter().filter(|reserved| matches!(reserved, Ok(Ok(_)))).count();
    assert_eq!(reserved, 3, "exactly the free failures, whichever pool asked");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempts_cancelled_mid_flight_leave_no_lock_behind() -> TestResult {
    let (counters, _) = shared().await?;
    let counters = Arc::new(counters);
    let keys = [(CounterKey::new("failed_sign_in_account", "ann@example.com"), 1_000)];
    for n in 0..40u64 {
        let (counters, keys) = (counters.clone(), keys.clone());
        let call = tokio::spawn(async move { counters.reserve_attempt(&keys, Duration::from_secs(60), at(0)).await });
        // Cancelled at varying points of its transaction.
        tokio::time::sleep(Duration::from_micros(n * 50)).await;
        call.abort();
        let _ = call.await;
    }
    // A transaction left open would hold the run's row lock: this would wait.
    let next =
        tokio::time::timeout(Duration::from_secs(10), counters.reserve_attempt(&keys, Duration::from_secs(60), at(0)));
    assert!(next.await?.is_ok_and(|reserved| reserved.is_ok()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_budget_of_failed_sign_ins() -> TestResult {
    let a = TestServer::start_with(Backend::Postgres, |config| config.sign_in_limits.per_account = 4).await?;
    let b = TestServer::replica_of_with(&a, |config| config.sign_in_limits.per_account = 4).await?;
    a.sign_up("ann@example.com").await?;
    for n in 0..4 {
        let replica = if n % 2 == 0 { &a } else { &b };
        let status = replica.sign_in("ann@example.com", "guess guess").await.unwrap_err();
        assert_eq!(reason(&status), "INVALID_CREDENTIALS");
    }
    // Four failures between them: each replica now makes the right
    // password wait too (each alone has counted only two).
    for replica in [&a, &b] {
        let status = replica.sign_in("ann@example.com", PASSWORD).await.unwrap_err();
        assert_eq!(reason(&status), "RATE_LIMITED");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_budget_of_sign_ups() -> TestResult {
    let budget = |config: &mut keyport_server::Config| {
        config.request_limits.burst = 6;
        config.request_limits.per_minute = 1;
    };
    let a = Arc::new(TestServer::start_with(Backend::Postgres, budget).await?);
    let b = Arc::new(TestServer::replica_of_with(&a, budget).await?);
    let callers = 20;
    let barrier = Arc::new(Barrier::new(callers));
    let sign_ups = (0..callers).map(|n| {
        let replica = if n % 2 == 0 { a.clone() } else { b.clone() };
        let barrier = barrier.clone();
        async move {
            barrier.wait().await;
            let request =
                SignUpRequest { email: format!("user{n}@example.com"), password: PASSWORD.into(), name: String::new() };
            replica.users().sign_up(request).await
        }
    });
    let results = join_all(sign_ups).await;
    let admitted = results.iter().filter(|result| result.is_ok()).count();
    assert_eq!(admitted, 6, "one budget for both replicas, not one each");
    for status in results.into_iter().filter_map(Result::err) {
        assert_eq!(reason(&status), "RATE_LIMITED");
    }
    assert_eq!(a.count("users").await?, 6);
    // Sign-in keeps a budget of its own.
    let request = SignInRequest { email: "nobody@example.com".into(), password: PASSWORD.into() };
    assert_eq!(reason(&b.sessions().sign_in(request).await.unwrap_err()), "INVALID_CREDENTIALS");
    Ok(())
}
