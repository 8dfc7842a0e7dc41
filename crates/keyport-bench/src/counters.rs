//! The counters section: what a throttling check costs where it is counted.
//! Each public call takes a request-budget token, and each password attempt
//! reserves (and on success refunds) a failure run; on PostgreSQL those are
//! rows every replica shares, in memory they are a map. Measured in process
//! against the same store code the server runs, one caller and 16 at once,
//! with memory as the baseline of the same run.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use keyport_core::{
    Clock, SystemClock,
    store::CounterStore,
    throttle::{CounterKey, budget::Rate, memory::MemoryCounters},
};
use keyport_store::{Backend, SeaStore, StoreOptions};
use keyport_tests::pg::PgCluster;
use tokio::task::JoinSet;

use crate::BoxError;

/// Calls per caller of each measurement.
const CALLS: usize = 2_000;
/// Callers of the concurrent measurement.
const CALLERS: usize = 16;

/// What one store measured: latency of one caller, and throughput of many.
#[derive(Debug)]
pub(crate) struct StoreCost {
    name: &'static str,
    /// `take_token`, one caller, in µs.
    take: Histogram<u64>,
    /// `reserve_attempt` then `refund_attempt` (a successful sign-in's
    /// pair), one caller, in µs.
    attempt: Histogram<u64>,
    /// `take_token` calls per second, [`CALLERS`] callers on distinct keys.
    takes_per_second: f64,
}

/// Measures the memory counters and the shared counters on `pg`.
pub(crate) async fn counters(pg: &PgCluster) -> Result<Vec<StoreCost>, BoxError> {
    let url = pg.create_database("counters")?;
    let store = SeaStore::connect(&url, &StoreOptions::for_backend(Backend::Postgres)).await?;
    store.migrate().await?;
    let shared = store.shared_counters().ok_or("PostgreSQL has shared counters")?;
    let stores: [(&'static str, Arc<dyn CounterStore>); 2] = [
        ("memory (SQLite deployments)", Arc::new(MemoryCounters::default())),
        ("PostgreSQL, shared", Arc::new(shared)),
    ];
    let mut costs = Vec::new();
    for (name, counters) in stores {
        eprintln!("counters: {name}");
        costs.push(measure(name, counters).await?);
    }
    Ok(costs)
}

async fn measure(name: &'static str, counters: Arc<dyn CounterStore>) -> Result<StoreCost, BoxError> {
    // Generous limits: the measurement is of the bookkeeping, not refusals.
    let rate = Rate { burst: u32::MAX, interval: Duration::from_millis(1) };
    let window = Duration::from_secs(900);
    let mut take = Histogram::<u64>::new(3)?;
    let mut attempt = Histogram::<u64>::new(3)?;
    for call in 0..CALLS {
        let key = CounterKey::new("sign_in", format!("198.51.{}.{}", call / 256, call % 256));
        let started = Instant::now();
        let _ = counters.take_token(&key, rate, SystemClock.now()).await?;
        take.record(micros(started.elapsed()))?;

        let keys = [(CounterKey::new("failed_sign_in_account", format!("user{call}@example.com")), u32::MAX)];
        let started = Instant::now();
        if let Ok(reserved) = counters.reserve_attempt(&keys, window, SystemClock.now()).await? {
            counters.refund_attempt(&reserved).await?;
        }
        attempt.record(micros(started.elapsed()))?;
    }
    let started = Instant::now();
    let mut callers = JoinSet::new();
    for caller in 0..CALLERS {
        let counters = counters.clone();
        callers.spawn(async move {
            for call in 0..CALLS {
                let key = CounterKey::new("sign_up", format!("10.{caller}.{}.{}", call / 256, call % 256));
                if counters.take_token(&key, rate, SystemClock.now()).await?.is_err() {
                    return Err(keyport_core::store::StoreError::Other("a take was refused".into()));
                }
            }
            Ok::<_, keyport_core::store::StoreError>(())
        });
    }
    while let Some(done) = callers.join_next().await {
        done??;
    }
    let takes_per_second = (CALLERS * CALLS) as f64 / started.elapsed().as_secs_f64();
    Ok(StoreCost { name, take, attempt, takes_per_second })
}

fn micros(elapsed: Duration) -> u64 {
    u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// The section as Markdown.
pub(crate) fn render(costs: &[StoreCost]) -> String {
    let mut out = String::new();
    let ms = |histogram: &Histogram<u64>, quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
    let _ = writeln!(out, "## Throttling counters: memory against PostgreSQL\n");
    let _ = writeln!(
        out,
        "In process, {CALLS} calls each: a request-budget take (every public RPC makes one), and a \
         failure-run reserve plus refund (a successful password attempt), one caller; then takes from \
         {CALLERS} callers at once.\n"
    );
    let _ = writeln!(
        out,
        "| counters | take median (ms) | take p99 (ms) | attempt median (ms) | attempt p99 (ms) | takes/s, {CALLERS} callers |\n\
         |---|---:|---:|---:|---:|---:|"
    );
    for cost in costs {
        let _ = writeln!(
            out,
            "| {} | {:.3} | {:.3} | {:.3} | {:.3} | {:.0} |",
            cost.name,
            ms(&cost.take, 0.5),
            ms(&cost.take, 0.99),
            ms(&cost.attempt, 0.5),
            ms(&cost.attempt, 0.99),
            cost.takes_per_second
        );
    }
    let _ = writeln!(out);
    out
}
