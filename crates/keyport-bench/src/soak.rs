//! The soak section (issue 16): a fixed mix of calls for N minutes against
//! one `keyport` on SQLite, then two replicas on one PostgreSQL database,
//! with sessions short-lived enough to expire during the run. Per minute
//! and process it records memory, open descriptors, calls, latencies and
//! errors (expected and not), and the rows of `sessions` and
//! `audit_events`, read through a database connection of its own: what
//! grows when a server runs for a long time.
//!
//! Not part of the default run: `--only soak`, `--soak-minutes N`.

mod callers;
mod sessions;
mod tally;

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use keyport_proto::v1::ListProvidersRequest;
use keyport_proto::v1::o_auth_service_client::OAuthServiceClient;
use keyport_tests::oidc::{self, OidcProvider};
use keyport_tests::pg::PgCluster;
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use tokio::task::JoinSet;
use tonic::transport::Channel;

use self::callers::{
    ABANDON_EVERY, Caller, Clients, OAUTH_INTERVAL, PROVIDER_ID, REDIRECT_URI, Role, SIGN_IN_INTERVAL,
    SIGN_UP_INTERVAL, Shared,
};
use self::sessions::{ABSOLUTE_LIFETIME, CROSS_REPLICA_LIMIT, EXPIRES_IN, UPDATE_AGE};
use self::tally::{Cell, MINUTE, Tally};
use crate::server::ServerProcess;
use crate::{BoxError, procfs, promises, workload};

/// Concurrent callers by role, 16 in all, spread over the processes in turn.
const ROLES: [(Role, usize); 6] =
    [(Role::Reader, 10), (Role::SignIn, 2), (Role::SignUp, 1), (Role::OAuth, 1), (Role::Revoker, 1), (Role::Prober, 1)];
/// HTTP/2 connections to each process, shared by the callers.
const CONNECTIONS_PER_PROCESS: usize = 2;
/// Users signed up before the soak; their sessions are the first pinned ones.
const SEED_USERS: usize = 16;
/// Sign-ins before the soak, so that the readers start with sessions to read.
const SEED_SIGN_INS: usize = 64;
/// How long a fresh server may take to report SERVING.
const SERVING_LIMIT: Duration = Duration::from_secs(30);
/// How long after the end the callers may take to stop; more than any
/// request timeout, so only a hung caller hits it.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// `database.sweep_interval_secs`: sweeps every half minute, so that a
/// soak of minutes shows the sessions table held at its level.
const SWEEP_INTERVAL_SECS: u64 = 30;
/// `audit.retention_days`: the shortest Keyport takes (0 keeps events forever).
const AUDIT_RETENTION_DAYS: u32 = 1;
/// Failed sign-in limits, raised as in `bench/ghz/run.sh`: all load comes
/// from 127.0.0.1, and nothing here should be refused.
const SIGN_IN_LIMIT: &str = "1000000000";
/// The tables whose rows are counted each minute.
const TABLES: [&str; 2] = ["sessions", "audit_events"];

/// What the soak of one backend measured.
#[derive(Debug)]
pub(crate) struct BackendSoak {
    backend: &'static str,
    /// Labels of the server processes, in the order of the tally's process numbers.
    processes: &'static [&'static str],
    /// The state after seeding, before the load.
    before: Sample,
    /// The state at the end of each minute.
    samples: Vec<Sample>,
    tally: Tally,
    /// Everything of `tally` together.
    total: Cell,
}

/// The state at the end of one minute.
#[derive(Debug)]
struct Sample {
    /// Per process: resident set size in MiB, open file descriptors.
    processes: Vec<(f64, usize)>,
    /// Rows of [`TABLES`], in that order.
    rows: [i64; 2],
}

/// Where the soak's servers keep their data.
#[derive(Clone, Copy)]
enum Store<'a> {
    Sqlite,
    Postgres(&'a PgCluster),
}

/// Runs the soak for `minutes` on SQLite, then on PostgreSQL in `pg`.
pub(crate) async fn soak(bin: &Path, pg: &PgCluster, minutes: u32) -> Result<Vec<BackendSoak>, BoxError> {
    let minutes = usize::try_from(minutes)?.max(1);
    let mut results = Vec::new();
    for store in [Store::Sqlite, Store::Postgres(pg)] {
        results.push(soak_backend(bin, store, minutes).await?);
    }
    Ok(results)
}

async fn soak_backend(bin: &Path, store: Store<'_>, minutes: usize) -> Result<BackendSoak, BoxError> {
    let (backend, processes): (&'static str, &'static [&'static str]) = match store {
        Store::Sqlite => ("SQLite", &["keyport"]),
        Store::Postgres(_) => ("PostgreSQL", &["replica A", "replica B"]),
    };
    eprintln!("soak, {backend}: starting the OIDC provider (node tests/oidc-provider)");
    // Blocks until Node prints its issuer: off the runtime's threads.
    let oidc = tokio::task::spawn_blocking(|| OidcProvider::start(&[REDIRECT_URI])).await??;
    // The SQLite file lives here rather than in the server's own directory,
    // so that the benchmark can count its rows.
    let dir = tempfile::Builder::new().prefix("keyport-soak-").tempdir()?;
    let url = match store {
        Store::Sqlite => format!("sqlite://{}?mode=rwc", dir.path().join("keyport.db").display()),
        Store::Postgres(pg) => pg.create_database("soak")?,
    };
    let mut env = server_env(oidc.issuer());
    env.push(("KEYPORT_DATABASE_URL", url.clone()));
    if let Store::Postgres(_) = store {
        env.push(("KEYPORT_SECOND_FACTORS__ENCRYPTION_KEY", promises::BENCH_FACTOR_KEY.to_owned()));
    }

    let mut servers = Vec::with_capacity(processes.len());
    for _ in processes {
        // One after the other: the first migrates the empty database.
        let mut server = ServerProcess::spawn_with(bin, &env)?;
        server.wait_serving(SERVING_LIMIT).await?;
        servers.push(server);
    }
    let mut connections = Vec::with_capacity(servers.len());
    for server in &servers {
        connections.push(workload::connect(server.addr(), CONNECTIONS_PER_PROCESS).await?);
    }
    ensure_provider(&connections).await?;
    let db = Database::connect(&url).await?;

    let shared = Arc::new(Shared::new(servers.len(), oidc));
    eprintln!("soak, {backend}: signing up {SEED_USERS} users, {SEED_SIGN_INS} sign-ins");
    let seeder = Clients::new(&connections, 0)?;
    Caller::new(Role::SignUp, 0, 0, seeder, Arc::clone(&shared), Tally::new(Instant::now(), 1))
        .seed(SEED_USERS, SEED_SIGN_INS)
        .await?;

    let before = sample(&mut servers, &db).await?;
    let callers: usize = ROLES.iter().map(|(_, count)| count).sum();
    eprintln!("soak, {backend}: before the load: {}", progress(processes, &before));
    eprintln!("soak, {backend}: {callers} callers for {minutes} min on {} process(es)", servers.len());
    let started = Instant::now();
    let until = started + MINUTE * u32::try_from(minutes)?;
    // A JoinSet: returning early (an error, Ctrl-C) aborts every caller.
    let mut tasks = JoinSet::new();
    let mut index = 0;
    for (role, count) in ROLES {
        for _ in 0..count {
            let home = index % servers.len();
            let clients = Clients::new(&connections, index)?;
            let caller = Caller::new(role, index, home, clients, Arc::clone(&shared), Tally::new(started, minutes));
            tasks.spawn(caller.run(until));
            index += 1;
        }
    }

    let mut tally = Tally::new(started, minutes);
    let mut samples = Vec::with_capacity(minutes);
    for minute in 1..=minutes {
        let due = started + MINUTE * u32::try_from(minute)?;
        loop {
            // A caller that fails ends the soak at once, not at the next sample.
            tokio::select! {
                () = tokio::time::sleep_until(due.into()) => break,
                Some(joined) = tasks.join_next() => tally.merge(joined??)?,
            }
        }
        let sample = sample(&mut servers, &db).await?;
        eprintln!("soak, {backend}: minute {minute}/{minutes}: {}", progress(processes, &sample));
        samples.push(sample);
    }
    let stop_by = tokio::time::Instant::from_std(until + STOP_GRACE);
    while let Some(joined) = tokio::time::timeout_at(stop_by, tasks.join_next())
        .await
        .map_err(|_| format!("soak callers still running {STOP_GRACE:?} after the end"))?
    {
        tally.merge(joined??)?;
    }
    for server in &mut servers {
        server.ensure_running()?;
    }
    let total = tally.total()?;
    Ok(BackendSoak { backend, processes, before, samples, tally, total })
}

/// The soak's server configuration besides the database: short sessions,
/// a sweep every half minute, the shortest audit retention, no limits in the way, the OIDC provider,
/// and metrics recorded but never scraped: the case in which a recorder
/// without upkeep kept every observation. (`ServerProcess` turns the
/// request budgets off for every section.)
fn server_env(issuer: &str) -> Vec<(&'static str, String)> {
    let provider = format!(
        "[{{id=\"{PROVIDER_ID}\",kind=\"oidc\",issuer=\"{issuer}\",client_id=\"{}\",client_secret=\"{}\"}}]",
        oidc::CLIENT_ID,
        oidc::CLIENT_SECRET
    );
    vec![
        ("KEYPORT_SESSIONS__EXPIRES_IN_SECS", EXPIRES_IN.as_secs().to_string()),
        ("KEYPORT_SESSIONS__UPDATE_AGE_SECS", UPDATE_AGE.as_secs().to_string()),
        ("KEYPORT_SESSIONS__ABSOLUTE_LIFETIME_SECS", ABSOLUTE_LIFETIME.as_secs().to_string()),
        ("KEYPORT_AUDIT__RETENTION_DAYS", AUDIT_RETENTION_DAYS.to_string()),
        ("KEYPORT_DATABASE__SWEEP_INTERVAL_SECS", SWEEP_INTERVAL_SECS.to_string()),
        ("KEYPORT_SIGN_IN_LIMITS__PER_ACCOUNT", SIGN_IN_LIMIT.to_owned()),
        ("KEYPORT_SIGN_IN_LIMITS__PER_IP", SIGN_IN_LIMIT.to_owned()),
        ("KEYPORT_OAUTH__REDIRECT_URIS", format!("[\"{REDIRECT_URI}\"]")),
        ("KEYPORT_OAUTH__PROVIDERS", provider),
        ("KEYPORT_METRICS__LISTEN", "127.0.0.1:0".to_owned()),
    ]
}

/// Fails unless every process lists the provider: a configuration it
/// ignored would otherwise show up only as failed flows.
async fn ensure_provider(connections: &[Vec<Channel>]) -> Result<(), BoxError> {
    for of_one in connections {
        let mut client = OAuthServiceClient::new(workload::channel_for(of_one, 0)?);
        let providers = client.list_providers(ListProvidersRequest {}).await?.into_inner().providers;
        if !providers.iter().any(|provider| provider.id == PROVIDER_ID) {
            return Err(format!(
                "the server lists no OAuth provider `{PROVIDER_ID}`: it ignored the soak's configuration"
            )
            .into());
        }
    }
    Ok(())
}

/// Reads each process's memory and descriptors (failing if one exited) and the table rows.
async fn sample(servers: &mut [ServerProcess], db: &DatabaseConnection) -> Result<Sample, BoxError> {
    let mut processes = Vec::with_capacity(servers.len());
    for server in servers.iter_mut() {
        server.ensure_running()?;
        processes.push((procfs::rss_mib(server.pid())?, procfs::open_fds(server.pid())?));
    }
    let mut rows = [0; TABLES.len()];
    for (count, table) in rows.iter_mut().zip(TABLES) {
        *count = count_rows(db, table).await?;
    }
    Ok(Sample { processes, rows })
}

async fn count_rows(db: &DatabaseConnection, table: &str) -> Result<i64, BoxError> {
    let statement = Statement::from_string(db.get_database_backend(), format!("SELECT COUNT(*) FROM {table}"));
    let row = db.query_one_raw(statement).await?.ok_or("COUNT(*) returned no row")?;
    Ok(row.try_get_by_index::<i64>(0)?)
}

/// A sample as one line of progress on stderr.
fn progress(processes: &[&str], sample: &Sample) -> String {
    let mut line = String::new();
    for (label, (rss, fds)) in processes.iter().zip(&sample.processes) {
        let _ = write!(line, "{label} {rss:.1} MiB, {fds} fds; ");
    }
    let _ = write!(line, "{} sessions, {} audit_events", sample.rows[0], sample.rows[1]);
    line
}

/// The section as Markdown: what ran, then per backend the table by
/// minute and process, the calls by RPC, the errors, and the verdict.
pub(crate) fn render(results: &[BackendSoak]) -> String {
    let mut out = String::new();
    let minutes = results.first().map_or(0, |result| result.samples.len());
    let callers: usize = ROLES.iter().map(|(_, count)| count).sum();
    let count_of = |role: Role| ROLES.iter().find(|(of, _)| *of == role).map_or(0, |(_, count)| *count);
    let per_second = |interval: Duration| 1.0 / interval.as_secs_f64();
    let _ = writeln!(out, "## Soak: {minutes} min of mixed load\n");
    let _ = writeln!(
        out,
        "{callers} callers at once, spread over the processes in turn: {} readers (`GetSession` as fast as \
         answered, over a ring of recent sessions and a few pinned ones); {} signers (`SignIn`, {:.0}/s each); \
         {} sign-up caller (fresh users, {:.0}/s); {} OAuth caller ({:.0} flows/s at most against the OIDC provider \
         of `tests/oidc-provider`: `StartOAuth` on one process, the browser's part at the provider, \
         `FinishOAuth` on the next; every other flow is a known identity coming back); {} revoker (each \
         session pushed out of the ring is revoked by `SignOut` or by `RevokeSession` from the user's newest \
         session, one in {ABANDON_EVERY} is abandoned instead); {} prober (asks the other replica about each \
         revocation {} ms after it, and about each abandoned session once it must have expired).\n",
        count_of(Role::Reader),
        count_of(Role::SignIn),
        per_second(SIGN_IN_INTERVAL),
        count_of(Role::SignUp),
        per_second(SIGN_UP_INTERVAL),
        count_of(Role::OAuth),
        per_second(OAUTH_INTERVAL),
        count_of(Role::Revoker),
        count_of(Role::Prober),
        CROSS_REPLICA_LIMIT.as_millis(),
    );
    let _ = writeln!(
        out,
        "Servers: sessions expire after {} s unused (refreshed at most every {} s) and {} s at most; audit \
         retention {AUDIT_RETENTION_DAYS} day; failed sign-in limits raised, request budgets off. Errors are \
         *expected* when they are the refusal the soak caused (`UNAUTHENTICATED` for a session it revoked or \
         that is past its lifetime) and *unexpected* otherwise, including an OK where a refusal was due (a \
         revoked session accepted by its replica, or by the other past {} ms; an expired one accepted). \
         Latencies are of OK answers. Rows are counted each minute through the benchmark's own connection to \
         the database (both replicas share one).\n",
        EXPIRES_IN.as_secs(),
        UPDATE_AGE.as_secs(),
        ABSOLUTE_LIFETIME.as_secs(),
        CROSS_REPLICA_LIMIT.as_millis(),
    );
    let _ = writeln!(
        out,
        "The servers sweep expired rows every {SWEEP_INTERVAL_SECS} s (`database.sweep_interval_secs`; an \
         hour by default), so `sessions` should level off at about what a lifetime of load leaves, plus one \
         sweep interval. Audit events are kept for whole days (`audit.retention_days`, at least 1): in a soak \
         of minutes none is old enough to go, so `audit_events` grows by the rate shown, up to rate × \
         retention; the sweep of old events is tested in `tests/e2e/audit.rs`. Revoked sessions are deleted \
         at once.\n"
    );
    for result in results {
        render_backend(&mut out, result);
    }
    out
}

fn render_backend(out: &mut String, result: &BackendSoak) {
    let _ = writeln!(out, "### {}: {}\n", result.backend, result.processes.join(" and "));
    let _ = writeln!(
        out,
        "| minute | process | RSS (MiB) | open fds | calls | GetSession p50 (ms) | GetSession p99 (ms) | \
         SignIn p50 (ms) | SignIn p99 (ms) | expected errors | unexpected errors | sessions rows | \
         audit_events rows |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (label, (rss, fds)) in result.processes.iter().zip(&result.before.processes) {
        let _ = writeln!(
            out,
            "| before | {label} | {rss:.1} | {fds} | - | - | - | - | - | - | - | {} | {} |",
            result.before.rows[0], result.before.rows[1]
        );
    }
    let empty = Cell::default();
    for (minute, sample) in result.samples.iter().enumerate() {
        for (process, (label, (rss, fds))) in result.processes.iter().zip(&sample.processes).enumerate() {
            let cell = result.tally.cell(process, minute).unwrap_or(&empty);
            let _ = writeln!(
                out,
                "| {} | {label} | {rss:.1} | {fds} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                minute + 1,
                cell.calls(),
                quantile_ms(cell.get_session_us.as_ref(), 0.5),
                quantile_ms(cell.get_session_us.as_ref(), 0.99),
                quantile_ms(cell.sign_in_us.as_ref(), 0.5),
                quantile_ms(cell.sign_in_us.as_ref(), 0.99),
                cell.expected_errors(),
                cell.unexpected_errors(),
                sample.rows[0],
                sample.rows[1],
            );
        }
    }

    let _ = writeln!(out, "\n| RPC, whole soak | ok | expected errors | unexpected errors |\n|---|---:|---:|---:|");
    for (rpc, count) in &result.total.rpcs {
        let _ = writeln!(out, "| `{}` | {} | {} | {} |", rpc.name(), count.ok, count.expected, count.unexpected);
    }
    let expected: Vec<String> = result.total.expected.iter().map(|(kind, count)| format!("{kind} {count}")).collect();
    let expected = if expected.is_empty() { "none".to_owned() } else { expected.join(", ") };
    let _ = writeln!(out, "\nExpected errors by kind: {expected}.");
    if result.total.unexpected.is_empty() {
        let _ = writeln!(out, "\nUnexpected errors: none.");
    } else {
        let _ = writeln!(out, "\nUnexpected errors:\n");
        for (why, count) in &result.total.unexpected {
            let _ = writeln!(out, "- {count} × {why}");
        }
    }
    let _ = writeln!(out, "\n{}\n", verdict(result));
}

/// One line: RSS growth of each process from the first to the last
/// minute (and its RSS before the load), the most rows of each table, and
/// the unexpected errors.
fn verdict(result: &BackendSoak) -> String {
    let (Some(first), Some(last)) = (result.samples.first(), result.samples.last()) else {
        return format!("**Verdict, {}:** no minute completed.", result.backend);
    };
    let mut parts = Vec::new();
    for (index, label) in result.processes.iter().enumerate() {
        if let (Some((from, _)), Some((to, _))) = (first.processes.get(index), last.processes.get(index)) {
            let growth = 100.0 * (to - from) / from.max(f64::MIN_POSITIVE);
            let idle = result.before.processes.get(index).map_or(0.0, |(rss, _)| *rss);
            parts.push(format!(
                "RSS of {label} {from:.1} → {to:.1} MiB from minute 1 to {} ({:+.1} MiB, {growth:+.1} %; \
                 {idle:.1} before the load)",
                result.samples.len(),
                to - from
            ));
        }
    }
    for (index, table) in TABLES.iter().enumerate() {
        let max = result.samples.iter().map(|sample| sample.rows[index]).max().unwrap_or(0);
        parts.push(format!(
            "`{table}` at most {max} rows ({} after minute 1, {} at the end)",
            first.rows[index], last.rows[index]
        ));
    }
    let unexpected = result.total.unexpected_errors();
    let met = if unexpected == 0 { "met" } else { "**not met**" };
    parts.push(format!("unexpected errors {unexpected} (target 0: {met})"));
    format!("**Verdict, {}:** {}.", result.backend, parts.join("; "))
}

fn quantile_ms(histogram: Option<&hdrhistogram::Histogram<u64>>, quantile: f64) -> String {
    histogram.map_or_else(|| "-".to_owned(), |h| format!("{:.2}", h.value_at_quantile(quantile) as f64 / 1000.0))
}
