//! Prometheus metrics on a listener of their own, off by default.
//!
//! The use cases and the store report through the `metrics` facade; this
//! module installs the process's recorder, describes every metric, samples
//! the levels (pool use, cache size, outbox depth, process figures) at each
//! scrape, and serves the text format at `GET /metrics`. Never on the gRPC
//! port: the figures describe traffic, and that port faces the callers.

use std::{net::SocketAddr, sync::OnceLock, time::Duration};

use axum::{Router, http::header, routing::get};
use keyport_core::Accounts;
use keyport_store::SeaStore;
use metrics::{Unit, describe_counter, describe_gauge, describe_histogram, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use tokio::{net::TcpListener, sync::watch, time::MissedTickBehavior};

use crate::{events::EventBus, rpc_observer};

/// The path of the scrape endpoint.
pub const METRICS_PATH: &str = "/metrics";
/// The content type of Prometheus' text exposition format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Latency buckets in seconds: from a cache hit (~100 µs) to a deadline.
const LATENCY_BUCKETS: &[f64] =
    &[0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
/// The longest an outbox count may hold up a scrape.
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(1);
/// How often the histograms' pending observations are folded into their
/// buckets, scrape or not (the exporter's own listener uses 5 s too).
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The `[metrics]` section: where to serve them; off until `listen` is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Address of the metrics listener, e.g. `127.0.0.1:9464`. Empty: off.
    pub listen: String,
}

impl MetricsConfig {
    /// The address to listen on, `None` when metrics are off.
    pub fn address(&self) -> Result<Option<SocketAddr>, String> {
        if self.listen.is_empty() {
            return Ok(None);
        }
        self.listen.parse().map(Some).map_err(|e| format!("metrics.listen `{}`: {e}", self.listen))
    }
}

/// The process's recorder, installed by the first server that serves
/// metrics (a process has one recorder; in-process test servers share it).
fn recorder() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .map(PrometheusBuilder::build_recorder);
        match recorder {
            Ok(recorder) => {
                let handle = recorder.handle();
                if metrics::set_global_recorder(recorder).is_err() {
                    tracing::warn!("a metrics recorder was installed already; Keyport's metrics stay empty");
                }
                describe();
                handle
            }
            // Unreachable: the bucket list is a non-empty constant.
            Err(error) => {
                tracing::error!(%error, "cannot build the metrics recorder");
                PrometheusBuilder::new().build_recorder().handle()
            }
        }
    })
}

/// What a scrape reads besides the recorded counters.
#[derive(Clone)]
pub(crate) struct Sampled {
    pub(crate) accounts: Accounts,
    pub(crate) store: SeaStore,
    pub(crate) events: EventBus,
    /// Whether the outbox is worth counting (mail is on).
    pub(crate) mail: bool,
}

impl Sampled {
    /// Sets the level gauges to their values now.
    async fn sample(&self) {
        let gauges = self.accounts.gauges();
        gauge!(HASHING_IN_FLIGHT).set(gauges.hashes_running as f64);
        gauge!(HASHING_QUEUED).set(gauges.hashes_queued as f64);
        gauge!(CACHE_ENTRIES).set(gauges.cached_entries as f64);
        gauge!(EVENT_SUBSCRIBERS).set(self.events.subscribers() as f64);
        let pool = self.store.pool_stats();
        gauge!(DB_CONNECTIONS, "state" => "in_use").set(f64::from(pool.in_use));
        gauge!(DB_CONNECTIONS, "state" => "idle").set(f64::from(pool.idle));
        gauge!(DB_MAX_CONNECTIONS).set(f64::from(pool.max));
        if self.mail {
            match tokio::time::timeout(SAMPLE_TIMEOUT, self.accounts.pending_mail()).await {
                Ok(Ok(pending)) => gauge!(MAIL_OUTBOX).set(pending as f64),
                // The gauge keeps its last value; the failure is counted as a database error.
                Ok(Err(error)) => tracing::debug!(%error, "cannot count the outbox for metrics"),
                Err(_) => tracing::debug!("counting the outbox for metrics timed out"),
            }
        }
        metrics_process::Collector::default().collect();
    }
}

/// Serves `GET /metrics` on `listener`, and keeps the recorder's memory
/// bounded, until `stop` turns true.
pub(crate) async fn serve(listener: TcpListener, sampled: Sampled, stop: watch::Receiver<bool>) {
    tokio::join!(serve_scrapes(listener, sampled, stop.clone()), keep_up(stop));
}

/// Folds the histograms' pending observations into their buckets every
/// [`UPKEEP_INTERVAL`]. The recorder keeps each observation until then, so
/// with scrapes far apart, or no scraper yet, memory grew with every call
/// (a `build_recorder` recorder gets no upkeep task of its own).
async fn keep_up(mut stop: watch::Receiver<bool>) {
    let handle = recorder();
    let mut ticks = tokio::time::interval(UPKEEP_INTERVAL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => handle.run_upkeep(),
            _ = stop.wait_for(|stopped| *stopped) => return,
        }
    }
}

async fn serve_scrapes(listener: TcpListener, sampled: Sampled, mut stop: watch::Receiver<bool>) {
    let handle = recorder();
    let app = Router::new().route(
        METRICS_PATH,
        get(move || {
            let sampled = sampled.clone();
            async move {
                sampled.sample().await;
                handle.run_upkeep();
                ([(header::CONTENT_TYPE, TEXT_FORMAT)], handle.render())
            }
        }),
    );
    let stopped = async move {
        let _ = stop.wait_for(|stopped| *stopped).await;
    };
    if let Err(error) = axum::serve(listener, app).with_graceful_shutdown(stopped).await {
        tracing::warn!(%error, "the metrics listener failed");
    }
}

/// Installs the recorder now, so that what happens before the first scrape
/// is counted too.
pub(crate) fn install() {
    recorder();
}

const HASHING_IN_FLIGHT: &str = "keyport_hashing_in_flight";
const HASHING_QUEUED: &str = "keyport_hashing_queued";
const CACHE_ENTRIES: &str = "keyport_session_cache_entries";
const EVENT_SUBSCRIBERS: &str = "keyport_event_subscribers";
const DB_CONNECTIONS: &str = "keyport_db_connections";
const DB_MAX_CONNECTIONS: &str = "keyport_db_max_connections";
const MAIL_OUTBOX: &str = "keyport_mail_outbox_depth";
const BUILD_INFO: &str = "keyport_build_info";

/// Describes every metric once, with its unit, and sets the build info.
fn describe() {
    use keyport_core::observe;

    describe_counter!(rpc_observer::REQUESTS, "gRPC calls answered, by service, method and gRPC code.");
    describe_histogram!(rpc_observer::DURATION, Unit::Seconds, "Time to answer a gRPC call (to its response headers).");
    describe_counter!(rpc_observer::ERRORS, "gRPC calls refused, by service, method and Keyport's reason.");
    describe_gauge!(HASHING_IN_FLIGHT, "Password hashes and verifications running on the hashing threads.");
    describe_gauge!(HASHING_QUEUED, "Callers waiting for a hashing thread.");
    describe_histogram!(observe::HASHING_WAIT, Unit::Seconds, "Time a hash waited for a hashing thread.");
    describe_counter!(observe::HASHING_REJECTIONS, "Hashes refused: the hashing queue was full or the wait ran out.");
    describe_gauge!(CACHE_ENTRIES, "Sessions, API keys and memberships in the server's cache.");
    describe_counter!(
        observe::CACHE_LOOKUPS,
        "Server cache lookups, by kind (session, api_key) and result (hit, miss)."
    );
    describe_gauge!(EVENT_SUBSCRIBERS, "Open WatchSessionEvents streams.");
    describe_histogram!(
        keyport_store::events::RELAY_LAG,
        Unit::Seconds,
        "Round trip of this replica's heartbeat through PostgreSQL: how late other replicas' events arrive."
    );
    describe_gauge!(DB_CONNECTIONS, "Database pool connections, by state (in_use, idle).");
    describe_gauge!(DB_MAX_CONNECTIONS, "The most connections the database pool opens.");
    describe_counter!(keyport_store::DB_ERRORS, "Database calls that failed, by kind (unavailable, other).");
    describe_counter!(observe::RATE_LIMIT_REJECTIONS, "Requests refused by a rate limit, by the limit.");
    describe_gauge!(MAIL_OUTBOX, "Mails queued and not yet sent nor failed for good.");
    describe_gauge!(BUILD_INFO, "Always 1; the version label says which Keyport runs.");
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    metrics_process::Collector::default().describe();
}
