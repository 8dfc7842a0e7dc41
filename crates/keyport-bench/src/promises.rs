//! Promises that only hold under concurrency, measured side by side in one
//! run (issue 8): a session cache miss against a hit, on SQLite and on
//! PostgreSQL; how soon a revocation on one replica is refused by another,
//! with the CPUs busy; and a legitimate `SignIn` during a flood of sign-ins
//! that their callers abandon.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use keyport_proto::v1::session_service_client::SessionServiceClient;
use keyport_proto::v1::{GetSessionRequest, SignInRequest, SignOutRequest};
use keyport_tests::{load::CpuBurner, pg::PgCluster};
use tonic::transport::Channel;
use tonic::{Code, Request};

use crate::load::{Call, LoadResult, Timing, closed_loop};
use crate::server::ServerProcess;
use crate::{BoxError, workload};

/// How long a fresh server may take to report SERVING.
const SERVING_LIMIT: Duration = Duration::from_secs(30);
/// Callers of the cache hit/miss comparison and its baseline.
const CALLERS: usize = 64;
/// Revocations measured across replicas.
const REVOCATION_TRIES: usize = 1000;
/// Longest a replica may keep accepting a revoked session before the try fails.
const REVOCATION_LIMIT: Duration = Duration::from_secs(5);
/// Callers abandoning their sign-ins in the flood.
const FLOOD_CALLERS: usize = 64;
/// The flood's client deadline: each of its sign-ins is abandoned after it.
const FLOOD_DEADLINE: Duration = Duration::from_millis(5);

/// `GetSession` with the server cache on and off, next to the health baseline.
pub(crate) struct CacheRow {
    /// `SQLite` or `PostgreSQL`.
    pub(crate) backend: &'static str,
    /// Health `Check`, the do-nothing handler.
    pub(crate) baseline: LoadResult,
    /// `GetSession` with the server cache on (the default).
    pub(crate) cache_on: LoadResult,
    /// `GetSession` with `server_cache_ttl_ms = 0`: every call reads the database.
    pub(crate) cache_off: LoadResult,
}

/// Delays from a `SignOut` on replica A returning to replica B refusing the session.
pub(crate) struct Revocations {
    /// Microseconds from A's answer to B's first refusal.
    pub(crate) delay_us: Histogram<u64>,
    /// Tries whose first `GetSession` on B was already refused.
    pub(crate) refused_at_once: usize,
    /// Tries where B kept accepting past [`REVOCATION_LIMIT`].
    pub(crate) failed: usize,
}

/// A legitimate `SignIn` alone and during a flood of abandoned sign-ins.
pub(crate) struct CancelledFlood {
    /// One caller signing in with a correct password, nothing else running.
    pub(crate) alone: LoadResult,
    /// The same caller while the flood runs.
    pub(crate) during: LoadResult,
    /// The flood's calls in the window (nearly all `DEADLINE_EXCEEDED`).
    pub(crate) flood: LoadResult,
}

/// The key sealing TOTP secrets, which a server on PostgreSQL needs (the
/// same for both replicas).
pub(crate) const BENCH_FACTOR_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// Runs the cache comparison on SQLite and on a PostgreSQL this starts.
pub(crate) async fn cache_miss(
    bin: &Path,
    pg: &PgCluster,
    timing: Timing,
    connections: usize,
    users: usize,
) -> Result<Vec<CacheRow>, BoxError> {
    let mut rows = Vec::new();
    for backend in ["SQLite", "PostgreSQL"] {
        let mut results = Vec::new();
        for cache_on in [true, false] {
            let mut env = Vec::new();
            if backend == "PostgreSQL" {
                env.push(("KEYPORT_DATABASE_URL", pg.create_database("bench")?));
                env.push(("KEYPORT_SECOND_FACTORS__ENCRYPTION_KEY", BENCH_FACTOR_KEY.to_owned()));
            }
            if !cache_on {
                env.push(("KEYPORT_SESSIONS__SERVER_CACHE_TTL_MS", "0".to_owned()));
            }
            let mut server = ServerProcess::spawn_with(bin, &env)?;
            server.wait_serving(SERVING_LIMIT).await?;
            let channels = workload::connect(server.addr(), connections).await?;
            let tokens: Arc<[String]> =
                workload::sign_up_users(&channels, users).await?.into_iter().map(|user| user.token).collect();
            if cache_on {
                eprintln!("{backend}: health Check, {CALLERS} callers");
                let callers = workload::health_callers(&channels, CALLERS)?;
                results.push(closed_loop(callers, timing, server.pid()).await?);
            }
            let label = if cache_on { "on" } else { "off" };
            eprintln!("{backend}: GetSession, {CALLERS} callers, server cache {label}");
            let callers = workload::get_session_callers(&channels, CALLERS, &tokens)?;
            results.push(closed_loop(callers, timing, server.pid()).await?);
            server.ensure_running()?;
        }
        let [baseline, cache_on, cache_off]: [LoadResult; 3] =
            results.try_into().map_err(|_| "cache comparison: missing a step")?;
        rows.push(CacheRow { backend, baseline, cache_on, cache_off });
    }
    Ok(rows)
}

/// Two replicas on one PostgreSQL database: sessions signed in on A, read
/// (and cached) on B, signed out on A; B is asked until it refuses.
pub(crate) async fn cross_replica(bin: &Path, pg: &PgCluster) -> Result<Revocations, BoxError> {
    let env = [
        ("KEYPORT_DATABASE_URL", pg.create_database("bench_replicas")?),
        ("KEYPORT_SECOND_FACTORS__ENCRYPTION_KEY", BENCH_FACTOR_KEY.to_owned()),
    ];
    let mut a = ServerProcess::spawn_with(bin, &env)?;
    a.wait_serving(SERVING_LIMIT).await?;
    let mut b = ServerProcess::spawn_with(bin, &env)?;
    b.wait_serving(SERVING_LIMIT).await?;
    let on_a = workload::connect(a.addr(), 4).await?;
    let on_b = workload::connect(b.addr(), 1).await?;
    let user = workload::sign_up_users(&on_a, 1).await?.pop().ok_or("no user signed up")?;

    eprintln!("signing in {REVOCATION_TRIES} sessions on replica A");
    let mut tokens = Vec::with_capacity(REVOCATION_TRIES);
    let mut signers = tokio::task::JoinSet::new();
    for (index, channel) in on_a.iter().enumerate() {
        let (mut client, user) = (SessionServiceClient::new(channel.clone()), user.clone());
        let count = REVOCATION_TRIES / on_a.len() + usize::from(index < REVOCATION_TRIES % on_a.len());
        signers.spawn(async move {
            let mut tokens = Vec::with_capacity(count);
            while tokens.len() < count {
                let request = SignInRequest { email: user.email.clone(), password: user.password.clone() };
                match client.sign_in(request).await {
                    Ok(response) => tokens.push(session_token(response.into_inner())?),
                    Err(status) if status.code() == Code::ResourceExhausted => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(status) => return Err::<_, BoxError>(format!("SignIn on A failed: {status}").into()),
                }
            }
            Ok(tokens)
        });
    }
    while let Some(joined) = signers.join_next().await {
        tokens.extend(joined??);
    }

    eprintln!("{REVOCATION_TRIES} revocations on A, each checked on B, with the CPUs busy");
    let _busy = CpuBurner::start();
    let mut a_client = SessionServiceClient::new(on_a[0].clone());
    let mut b_client = SessionServiceClient::new(on_b[0].clone());
    let mut result = Revocations { delay_us: Histogram::new(3)?, refused_at_once: 0, failed: 0 };
    for token in tokens {
        for _ in 0..2 {
            b_client.get_session(GetSessionRequest { token: token.clone() }).await?;
        }
        let mut sign_out = Request::new(SignOutRequest {});
        sign_out.metadata_mut().insert("authorization", format!("Bearer {token}").parse()?);
        a_client.sign_out(sign_out).await?;
        let signed_out = Instant::now();
        let mut asks = 0;
        loop {
            asks += 1;
            match b_client.get_session(GetSessionRequest { token: token.clone() }).await {
                Err(status) if status.code() == Code::Unauthenticated => break,
                Ok(_) if signed_out.elapsed() < REVOCATION_LIMIT => continue,
                Ok(_) => {
                    result.failed += 1;
                    break;
                }
                Err(status) => return Err(format!("GetSession on B failed: {status}").into()),
            }
        }
        if asks == 1 {
            result.refused_at_once += 1;
        }
        let delay = u64::try_from(signed_out.elapsed().as_micros()).unwrap_or(u64::MAX);
        result.delay_us.record(delay.max(1))?;
    }
    a.ensure_running()?;
    b.ensure_running()?;
    Ok(result)
}

/// A legitimate user's `SignIn`, alone and during a flood of sign-ins that
/// are abandoned after [`FLOOD_DEADLINE`], sent from many addresses. The
/// benchmark is a trusted peer (loopback), so the addresses it forwards count.
pub(crate) async fn cancelled_flood(
    bin: &Path,
    timing: Timing,
    connections: usize,
) -> Result<CancelledFlood, BoxError> {
    let mut server = ServerProcess::spawn(bin)?;
    server.wait_serving(SERVING_LIMIT).await?;
    let channels = workload::connect(server.addr(), connections).await?;
    let users: Arc<[workload::BenchUser]> = workload::sign_up_users(&channels, 1).await?.into();
    // The legitimate user has a connection of their own, as a real one would.
    let own = workload::connect(server.addr(), 1).await?;

    eprintln!("SignIn, 1 caller, alone");
    let alone = closed_loop(workload::sign_in_callers(&own, 1, &users)?, timing, server.pid()).await?;
    eprintln!("SignIn, 1 caller, during {FLOOD_CALLERS} callers abandoning sign-ins after {FLOOD_DEADLINE:?}");
    let flooders: Vec<AbandonedSignIn> = (0..FLOOD_CALLERS)
        .map(|index| AbandonedSignIn {
            client: SessionServiceClient::new(channels[index % channels.len()].clone()),
            caller: index,
            next: 0,
        })
        .collect();
    let (during, flood) = tokio::try_join!(
        closed_loop(workload::sign_in_callers(&own, 1, &users)?, timing, server.pid()),
        closed_loop(flooders, timing, server.pid()),
    )?;
    server.ensure_running()?;
    Ok(CancelledFlood { alone, during, flood })
}

fn session_token(response: keyport_proto::v1::SignInResponse) -> Result<String, BoxError> {
    use keyport_proto::v1::sign_in_response::Outcome;
    match response.outcome {
        Some(Outcome::Session(grant)) => Ok(grant.token),
        Some(Outcome::Challenge(_)) => Err("SignIn answered a second-factor challenge".into()),
        None => Err("SignIn answered without a session".into()),
    }
}

/// A sign-in of an unknown email, abandoned by its caller after [`FLOOD_DEADLINE`].
struct AbandonedSignIn {
    client: SessionServiceClient<Channel>,
    caller: usize,
    next: u64,
}

impl Call for AbandonedSignIn {
    async fn call(&mut self) -> Result<(), Code> {
        self.next += 1;
        let email = format!("flood-{}-{}@example.com", self.caller, self.next);
        let mut request = Request::new(SignInRequest { email, password: "not the password".into() });
        request.set_timeout(FLOOD_DEADLINE);
        // From many addresses, as a botnet would: the per-address limit then
        // never stops the flood, and the hashing pool takes all of it.
        let ip = format!("10.{}.{}.{}", self.caller % 256, (self.next >> 8) % 256, self.next % 256);
        if let Ok(ip) = ip.parse() {
            request.metadata_mut().insert("x-keyport-client-ip", ip);
        }
        self.client.sign_in(request).await.map(drop).map_err(|status| status.code())
    }
}

/// The Markdown of whichever of the three ran.
pub(crate) fn render(
    cache: Option<&[CacheRow]>,
    revocations: Option<&Revocations>,
    flood: Option<&CancelledFlood>,
) -> String {
    let mut out = String::new();
    if let Some(rows) = cache {
        let _ = writeln!(out, "## GetSession: server cache hit and miss\n");
        let _ = writeln!(
            out,
            "{CALLERS} callers each; one server per column, each with its own fresh database and 100 users. \
             Cache off is `server_cache_ttl_ms = 0`: every call reads the session and its user from the database. \
             The baseline is the health `Check` of the cache-on server.\n"
        );
        let _ = writeln!(
            out,
            "| backend | baseline (ok/s) | cache on (ok/s) | p99 (ms) | x baseline | cache off (ok/s) | p99 (ms) | x baseline | errors |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
        for row in rows {
            let base = row.baseline.ok_per_second();
            let _ = writeln!(
                out,
                "| {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {} |",
                row.backend,
                base,
                row.cache_on.ok_per_second(),
                row.cache_on.latency_ms(0.99),
                row.cache_on.ok_per_second() / base,
                row.cache_off.ok_per_second(),
                row.cache_off.latency_ms(0.99),
                row.cache_off.ok_per_second() / base,
                row.cache_on.error_count() + row.cache_off.error_count(),
            );
        }
        let _ = writeln!(out);
    }
    if let Some(result) = revocations {
        let tries = result.delay_us.len();
        let ms = |q: f64| result.delay_us.value_at_quantile(q) as f64 / 1000.0;
        let _ = writeln!(out, "## Revocation across replicas, CPUs busy\n");
        let _ = writeln!(
            out,
            "Two `keyport` processes on one PostgreSQL database. Per try: a session signed in on A is read twice \
             on B (so B caches it), signed out on A, and B is asked again and again from the moment A answered \
             until it refuses. One spinning thread per core runs throughout. The delay includes B's own round \
             trip.\n"
        );
        let _ = writeln!(
            out,
            "| tries | refused on the first ask | p50 (ms) | p99 (ms) | max (ms) | still accepted after 5 s |"
        );
        let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|");
        let _ = writeln!(
            out,
            "| {tries} | {} | {:.2} | {:.2} | {:.2} | {} |\n",
            result.refused_at_once,
            ms(0.5),
            ms(0.99),
            result.delay_us.max() as f64 / 1000.0,
            result.failed,
        );
    }
    if let Some(result) = flood {
        let _ = writeln!(out, "## A legitimate SignIn during a flood of abandoned sign-ins\n");
        let _ = writeln!(
            out,
            "SQLite, argon2id at the defaults. One caller signs in with a correct password over a connection of \
             its own, first alone, then while {FLOOD_CALLERS} callers send sign-ins that they abandon after \
             {} ms.\n",
            FLOOD_DEADLINE.as_millis()
        );
        let _ = writeln!(out, "| legitimate SignIn | ok/s | p50 (ms) | p99 (ms) | max (ms) | errors by status |");
        let _ = writeln!(out, "|---|---:|---:|---:|---:|---|");
        for (label, step) in [("alone", &result.alone), ("during the flood", &result.during)] {
            let _ = writeln!(
                out,
                "| {label} | {:.1} | {:.1} | {:.1} | {:.1} | {:?} |",
                step.ok_per_second(),
                step.latency_ms(0.5),
                step.latency_ms(0.99),
                step.latency_us.max() as f64 / 1000.0,
                step.errors,
            );
        }
        let flood_calls = result.flood.ok + result.flood.error_count();
        let _ = writeln!(
            out,
            "\nThe flood sent {flood_calls} sign-ins in the window ({:.0}/s); by status: {:?}.\n",
            flood_calls as f64 / result.flood.window.as_secs_f64(),
            result.flood.errors
        );
    }
    out
}
