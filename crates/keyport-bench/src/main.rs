//! `keyport-bench`: measures a real `keyport` process that it starts itself.
//!
//! Sections: start to SERVING and idle RSS over fresh starts, a do-nothing
//! health `Check` baseline, `GetSession` at 1, 16 and 64 concurrent callers,
//! `SignIn` throughput, `GetSession` latency during a sign-in flood, and the
//! promises of [`promises`]: cache miss against hit on SQLite and PostgreSQL,
//! revocation across replicas, a legitimate sign-in during a flood of
//! abandoned ones, and the mail flows (reset for known against unknown
//! addresses, courier throughput into Mailpit), and the throttling counters
//! in memory against PostgreSQL. Not part of the default run: the soak of
//! [`soak`] (`--only soak`), minutes of mixed load watching memory and
//! table sizes. The
//! result is a Markdown report on stdout (and optionally in a file); see
//! `docs/benchmarks.md` for how to run it and the latest numbers.

#![allow(clippy::disallowed_methods, reason = "a benchmark reads the time to measure")]

mod api_keys;
mod authorize;
mod counters;
mod load;
mod mail;
mod passkeys;
mod procfs;
mod promises;
mod report;
mod server;
mod soak;
mod workload;

use std::error::Error;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

use crate::load::{Timing, closed_loop};
use crate::report::{Flood, Report, Settings, StartSample};
use crate::server::ServerProcess;

/// Any error that ends a run; its message is shown to the operator.
pub(crate) type BoxError = Box<dyn Error + Send + Sync>;

/// How long a fresh server may take to report SERVING before the run fails.
const SERVING_LIMIT: Duration = Duration::from_secs(30);
/// Idle time between SERVING and reading the resident set size.
const IDLE_BEFORE_RSS: Duration = Duration::from_secs(1);
/// A 1-minute load average above this means other work competes for the CPUs.
const BUSY_LOAD_AVERAGE: f64 = 0.5;
/// Concurrent callers of the health baseline and the top `GetSession` step.
const HIGH_CONCURRENCY: usize = 64;
/// Concurrent callers of `SignIn` throughput and of `GetSession` during the flood.
const MID_CONCURRENCY: usize = 16;
/// Concurrent `SignIn` loops of the sign-in flood.
const FLOOD_CALLERS: usize = 64;

/// Measures a real `keyport` process: start-up, idle RSS, GetSession, SignIn.
#[derive(Debug, Parser)]
#[command(name = "keyport-bench", version)]
struct Args {
    /// The `keyport` binary to start [default: `keyport` next to this executable].
    #[arg(long, value_name = "PATH")]
    keyport_bin: Option<PathBuf>,
    /// Seconds each measured load step runs (after its warm-up).
    #[arg(long, value_name = "SECS", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    duration: u64,
    /// Seconds of unrecorded load before each measured load step.
    #[arg(long, value_name = "SECS", default_value_t = 2, value_parser = clap::value_parser!(u64).range(0..=600))]
    warmup: u64,
    /// HTTP/2 connections (tonic Channels) that the callers share round-robin.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    connections: u16,
    /// Users signed up before the load steps; each has its own session token.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..))]
    users: u16,
    /// Fresh starts measured for start to SERVING and idle RSS.
    #[arg(long, value_name = "N", default_value_t = 5, value_parser = clap::value_parser!(u16).range(1..=100))]
    starts: u16,
    /// Minutes of mixed load per backend in the soak (`--only soak`).
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=1440))]
    soak_minutes: u32,
    /// Run only this section.
    #[arg(long, value_enum)]
    only: Option<Section>,
    /// Also write the Markdown report to this file.
    #[arg(long, value_name = "PATH")]
    out: Option<PathBuf>,
}

/// A part of the benchmark that `--only` can select.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Section {
    /// Start to SERVING and idle RSS over fresh starts.
    Startup,
    /// Health `Check` throughput at 64 callers: the do-nothing baseline.
    Baseline,
    /// `GetSession` at 1, 16 and 64 callers.
    GetSession,
    /// `SignIn` with correct passwords at 16 callers.
    SignIn,
    /// `GetSession` at 16 callers while 64 `SignIn` loops saturate hashing.
    Flood,
    /// `GetSession` with the server cache on and off, on SQLite and PostgreSQL.
    CacheMiss,
    /// Revocation on one replica, refused by another, with the CPUs busy.
    CrossReplica,
    /// A legitimate `SignIn` alone and during a flood of abandoned sign-ins.
    CancelledFlood,
    /// `RequestPasswordReset` for known and unknown addresses, and the
    /// courier's throughput into a real SMTP server (Mailpit).
    Mail,
    /// Throttling counters in memory against the shared PostgreSQL table.
    Counters,
    /// A passwordless passkey sign-in against a password sign-in.
    Passkeys,
    /// `Authorize` against `GetSession` at 1, 16 and 64 callers.
    Authorize,
    /// `Authorize` with API keys against session tokens at 1, 16 and 64 callers.
    ApiKeys,
    /// Minutes of mixed load on SQLite and on two PostgreSQL replicas,
    /// watching memory, descriptors and table rows. Only with `--only soak`:
    /// it is not part of the default run.
    Soak,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = tokio::select! {
        outcome = run(args) => outcome,
        // Returning (rather than dying on the signal) runs the server guard's Drop.
        _ = tokio::signal::ctrl_c() => Err("interrupted".into()),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keyport-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the selected sections against fresh `keyport` processes and prints the report.
async fn run(args: Args) -> Result<(), BoxError> {
    let bin = keyport_bin(args.keyport_bin.as_deref())?;
    let timing = Timing { warmup: Duration::from_secs(args.warmup), duration: Duration::from_secs(args.duration) };
    warn_if_busy();
    // The soak is long: it runs only when asked for by name.
    let wants = |section: Section| args.only.map_or(section != Section::Soak, |only| only == section);
    let mut report = Report::new(Settings {
        keyport_bin: bin.clone(),
        timing,
        connections: usize::from(args.connections),
        users: usize::from(args.users),
        server_log_filter: server::log_filter(),
        server_env: server::config_env(),
    });

    if wants(Section::Startup) {
        report.startup = Some(measure_startup(&bin, args.starts).await?);
    }

    let load_sections = [Section::Baseline, Section::GetSession, Section::SignIn, Section::Flood, Section::Authorize];
    let mut authorized = None;
    if load_sections.into_iter().any(wants) {
        eprintln!("starting keyport for the load sections");
        let mut server = ServerProcess::spawn(&bin)?;
        server.wait_serving(SERVING_LIMIT).await?;
        let server_pid = server.pid();
        let channels = workload::connect(server.addr(), usize::from(args.connections)).await?;

        if wants(Section::Baseline) {
            eprintln!("baseline: health Check, {HIGH_CONCURRENCY} callers");
            let callers = workload::health_callers(&channels, HIGH_CONCURRENCY)?;
            report.baseline = Some(closed_loop(callers, timing, server_pid).await?);
            server.ensure_running()?;
        }

        if [Section::GetSession, Section::SignIn, Section::Flood, Section::Authorize].into_iter().any(wants) {
            eprintln!("signing up {} users", args.users);
            let started = Instant::now();
            let users = workload::sign_up_users(&channels, usize::from(args.users)).await?;
            report.sign_up = Some(started.elapsed());
            server.ensure_running()?;
            let tokens: Arc<[String]> = users.iter().map(|user| user.token.clone()).collect();
            let users: Arc<[workload::BenchUser]> = users.into();

            if wants(Section::GetSession) {
                for callers in [1, MID_CONCURRENCY, HIGH_CONCURRENCY] {
                    eprintln!("GetSession, {callers} callers");
                    let callers = workload::get_session_callers(&channels, callers, &tokens)?;
                    report.get_session.push(closed_loop(callers, timing, server_pid).await?);
                    server.ensure_running()?;
                }
            }
            if wants(Section::Authorize) {
                let concurrency = [1, MID_CONCURRENCY, HIGH_CONCURRENCY];
                authorized = Some(authorize::authorize(&channels, &tokens, &concurrency, timing, server_pid).await?);
                server.ensure_running()?;
            }
            if wants(Section::SignIn) {
                eprintln!("SignIn, {MID_CONCURRENCY} callers");
                let callers = workload::sign_in_callers(&channels, MID_CONCURRENCY, &users)?;
                report.sign_in = Some(closed_loop(callers, timing, server_pid).await?);
                server.ensure_running()?;
            }
            if wants(Section::Flood) {
                eprintln!("GetSession, {MID_CONCURRENCY} callers, during a flood of {FLOOD_CALLERS} SignIn loops");
                let readers = workload::get_session_callers(&channels, MID_CONCURRENCY, &tokens)?;
                let flooders = workload::sign_in_callers(&channels, FLOOD_CALLERS, &users)?;
                let (get_session, sign_in) = tokio::try_join!(
                    closed_loop(readers, timing, server_pid),
                    closed_loop(flooders, timing, server_pid)
                )?;
                report.flood = Some(Flood { get_session, sign_in });
                server.ensure_running()?;
            }
        }
    }

    let pg_sections = [Section::CacheMiss, Section::CrossReplica, Section::Counters, Section::Soak];
    let pg = if pg_sections.into_iter().any(wants) {
        eprintln!("starting PostgreSQL (initdb + pg_ctl in a temporary directory)");
        Some(keyport_tests::pg::PgCluster::start()?)
    } else {
        None
    };
    let connections = usize::from(args.connections);
    let cache = match &pg {
        Some(pg) if wants(Section::CacheMiss) => {
            Some(promises::cache_miss(&bin, pg, timing, connections, usize::from(args.users)).await?)
        }
        _ => None,
    };
    let revocations = match &pg {
        Some(pg) if wants(Section::CrossReplica) => Some(promises::cross_replica(&bin, pg).await?),
        _ => None,
    };
    let flood = match wants(Section::CancelledFlood) {
        true => Some(promises::cancelled_flood(&bin, timing, connections).await?),
        false => None,
    };

    let counters = match &pg {
        Some(pg) if wants(Section::Counters) => Some(counters::counters(pg).await?),
        _ => None,
    };

    let mail = match wants(Section::Mail) {
        true => Some(mail::mail(&bin).await?),
        false => None,
    };

    let api_keys = match wants(Section::ApiKeys) {
        true => Some(api_keys::api_keys(&bin, &[1, MID_CONCURRENCY, HIGH_CONCURRENCY], timing).await?),
        false => None,
    };

    let passkeys = match wants(Section::Passkeys) {
        true => Some(passkeys::passkeys(&bin).await?),
        false => None,
    };

    let soaked = match &pg {
        Some(pg) if wants(Section::Soak) => Some(soak::soak(&bin, pg, args.soak_minutes).await?),
        _ => None,
    };

    let mut markdown = report.render();
    markdown.push_str(&promises::render(cache.as_deref(), revocations.as_ref(), flood.as_ref()));
    if let Some(mail) = &mail {
        markdown.push_str(&mail::render(mail));
    }
    if let Some(counters) = &counters {
        markdown.push_str(&counters::render(counters));
    }
    if let Some(passkeys) = &passkeys {
        markdown.push_str(&passkeys::render(passkeys));
    }
    if let Some(pairs) = &authorized {
        markdown.push_str(&authorize::render(pairs));
    }
    if let Some(pairs) = &api_keys {
        markdown.push_str(&api_keys::render(pairs));
    }
    if let Some(soaked) = &soaked {
        markdown.push_str(&soak::render(soaked));
    }
    print!("{markdown}");
    if let Some(path) = &args.out {
        std::fs::write(path, &markdown).map_err(|error| format!("writing {}: {error}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    Ok(())
}

/// Starts `keyport` `starts` times, each with an empty data directory, and
/// measures spawn to SERVING and the idle resident set size.
async fn measure_startup(bin: &Path, starts: u16) -> Result<Vec<StartSample>, BoxError> {
    let mut samples = Vec::with_capacity(usize::from(starts));
    for start in 1..=starts {
        let mut server = ServerProcess::spawn(bin)?;
        let to_serving = server.wait_serving(SERVING_LIMIT).await?;
        tokio::time::sleep(IDLE_BEFORE_RSS).await;
        let idle_rss_mb = server.rss_mb()?;
        eprintln!("start {start}/{starts}: SERVING after {to_serving:.1?}, idle RSS {idle_rss_mb:.1} MB");
        samples.push(StartSample { to_serving, idle_rss_mb });
        // Dropping the guard kills the process before the next fresh start.
        drop(server);
    }
    Ok(samples)
}

/// Warns when the machine is already busy: the numbers would measure the other work too.
fn warn_if_busy() {
    let one_minute = report::load_average()
        .and_then(|load| load.split(',').next().and_then(|first| first.trim().parse::<f64>().ok()));
    if let Some(load) = one_minute.filter(|load| *load > BUSY_LOAD_AVERAGE) {
        eprintln!("warning: 1-minute load average is {load} before the run; other work will skew the numbers");
    }
}

/// The `keyport` binary to benchmark: the flag, else `keyport` next to this executable.
fn keyport_bin(flag: Option<&Path>) -> Result<PathBuf, BoxError> {
    let bin = match flag {
        Some(path) => path.to_path_buf(),
        None => {
            let exe = std::env::current_exe()?;
            exe.with_file_name("keyport")
        }
    };
    if !bin.is_file() {
        return Err(format!(
            "no keyport binary at {} (build it with `cargo build --release -p keyport-server`, or pass --keyport-bin)",
            bin.display()
        )
        .into());
    }
    Ok(bin)
}
