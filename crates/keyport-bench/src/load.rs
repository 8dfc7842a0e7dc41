//! The closed-loop load runner: a fixed number of callers, each sending its
//! next request as soon as the previous one answered, for a fixed time after
//! an unrecorded warm-up; latencies go into HDR histograms.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use tokio::task::JoinSet;
use tonic::Code;

use crate::BoxError;
use crate::procfs::{self, CpuSample, Process};

/// Longest latency the histograms hold, in microseconds; longer ones are clamped.
const MAX_LATENCY_US: u64 = 60_000_000;
/// Significant decimal digits kept by the histograms.
const SIGNIFICANT_DIGITS: u8 = 3;
/// How long after the end of a step callers may take to stop; more than any
/// request timeout, so only a hung caller hits it.
const STOP_GRACE: Duration = Duration::from_secs(15);

/// One kind of request, sent again and again by one caller.
pub(crate) trait Call: Send + 'static {
    /// Sends one request; a failure carries its gRPC status code.
    fn call(&mut self) -> impl Future<Output = Result<(), Code>> + Send;
}

/// How long a load step runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    /// Load sent before measuring starts, not recorded.
    pub(crate) warmup: Duration,
    /// The measured window.
    pub(crate) duration: Duration,
}

/// What one load step measured: calls that completed inside the measured window.
#[derive(Debug)]
pub(crate) struct LoadResult {
    /// Concurrent callers.
    pub(crate) callers: usize,
    /// Calls answered with status OK.
    pub(crate) ok: u64,
    /// Failed calls by gRPC status code name (`RESOURCE_EXHAUSTED`, ...).
    pub(crate) errors: BTreeMap<&'static str, u64>,
    /// Latencies of the successful calls, in microseconds.
    pub(crate) latency_us: Histogram<u64>,
    /// Length of the measured window.
    pub(crate) window: Duration,
    /// Cores the server and the load generator kept busy during the window, when readable.
    pub(crate) cpu: Option<CpuShare>,
    /// The server's resident set size at the end of the step, in MB, when readable.
    pub(crate) server_rss_mb: Option<f64>,
}

/// Average cores busy during a measured window (2.0 = two cores fully used).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CpuShare {
    /// Cores used by the server process.
    pub(crate) server: f64,
    /// Cores used by this benchmark process (all its load steps, if several run at once).
    pub(crate) bench: f64,
    /// Cores used by everything else on the machine: other work skewing the numbers.
    pub(crate) other: f64,
}

impl LoadResult {
    /// Successful calls per second.
    pub(crate) fn ok_per_second(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64()
    }

    /// Latency of successful calls at `quantile` (0.5 for the median), in milliseconds.
    pub(crate) fn latency_ms(&self, quantile: f64) -> f64 {
        self.latency_us.value_at_quantile(quantile) as f64 / 1000.0
    }

    /// All failed calls.
    pub(crate) fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Failed calls with one status code.
    pub(crate) fn errors_with(&self, code: Code) -> u64 {
        self.errors.get(code_name(code)).copied().unwrap_or(0)
    }
}

/// Runs `callers` concurrently in closed loops for `timing` against the
/// server process `server_pid`, then merges what they measured.
pub(crate) async fn closed_loop<C: Call>(
    callers: Vec<C>,
    timing: Timing,
    server_pid: u32,
) -> Result<LoadResult, BoxError> {
    let count = callers.len();
    let measure_from = Instant::now() + timing.warmup;
    let until = measure_from + timing.duration;
    let mut tasks = JoinSet::new();
    for caller in callers {
        tasks.spawn(caller_loop(caller, measure_from, until));
    }
    // A JoinSet so that an early return aborts the sampler too.
    let mut sampler = JoinSet::new();
    sampler.spawn(cpu_share(Process::Pid(server_pid), measure_from, until));

    let mut total = Tally::new()?;
    let stop_by = tokio::time::Instant::from_std(until + STOP_GRACE);
    // On any error `tasks` is dropped, which aborts the callers still running.
    while let Some(joined) = tokio::time::timeout_at(stop_by, tasks.join_next())
        .await
        .map_err(|_| format!("callers still running {STOP_GRACE:?} after the end of the step"))?
    {
        total.merge(joined??)?;
    }

    let cpu = sampler.join_next().await.and_then(|joined| joined.ok()).and_then(Result::ok);
    let server_rss_mb = procfs::rss_mb(server_pid).ok();

    let errors = total.errors.into_iter().map(|(code, calls)| (code_name(code), calls)).collect();
    Ok(LoadResult {
        callers: count,
        ok: total.ok,
        errors,
        latency_us: total.latency_us,
        window: timing.duration,
        cpu,
        server_rss_mb,
    })
}

/// The cores used by `server` and by this process between `from` and `until`.
async fn cpu_share(server: Process, from: Instant, until: Instant) -> Result<CpuShare, BoxError> {
    let take = || -> Result<[CpuSample; 3], BoxError> {
        Ok([CpuSample::take(server)?, CpuSample::take(Process::Bench)?, CpuSample::take(Process::All)?])
    };
    tokio::time::sleep_until(from.into()).await;
    let [server_before, bench_before, all_before] = take()?;
    tokio::time::sleep_until(until.into()).await;
    let [server_after, bench_after, all_after] = take()?;
    let server = server_after.cores_since(&server_before);
    let bench = bench_after.cores_since(&bench_before);
    let other = (all_after.cores_since(&all_before) - server - bench).max(0.0);
    Ok(CpuShare { server, bench, other })
}

/// One caller: sends requests until `until`, recording those that complete
/// between `measure_from` and `until`.
async fn caller_loop<C: Call>(mut caller: C, measure_from: Instant, until: Instant) -> Result<Tally, BoxError> {
    let mut tally = Tally::new()?;
    loop {
        let sent = Instant::now();
        if sent >= until {
            break;
        }
        let outcome = caller.call().await;
        let answered = Instant::now();
        if answered < measure_from || answered > until {
            continue;
        }
        match outcome {
            Ok(()) => {
                tally.ok += 1;
                let micros = u64::try_from(answered.duration_since(sent).as_micros()).unwrap_or(u64::MAX);
                tally.latency_us.saturating_record(micros.max(1));
            }
            Err(code) => *tally.errors.entry(code).or_default() += 1,
        }
    }
    Ok(tally)
}

/// Counts of one caller, or of all of them once merged.
struct Tally {
    ok: u64,
    errors: HashMap<Code, u64>,
    latency_us: Histogram<u64>,
}

impl Tally {
    fn new() -> Result<Self, BoxError> {
        let latency_us = Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGNIFICANT_DIGITS)?;
        Ok(Self { ok: 0, errors: HashMap::new(), latency_us })
    }

    fn merge(&mut self, other: Tally) -> Result<(), BoxError> {
        self.ok += other.ok;
        for (code, calls) in other.errors {
            *self.errors.entry(code).or_default() += calls;
        }
        self.latency_us.add(&other.latency_us)?;
        Ok(())
    }
}

/// The canonical gRPC name of a status code, as in `grpc-status` documentation.
pub(crate) fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}
