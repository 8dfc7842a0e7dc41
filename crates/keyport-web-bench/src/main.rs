//! `keyport-web-bench`: what the web middleware costs, against a real
//! Keyport started by the benchmark itself.
//!
//! 1. Added time per request: `Guard::check` on a cache hit, on a miss, and
//!    on a public route without a token (the floor), in a tight loop.
//! 2. Throughput: a hello-world Axum and Actix app bare, behind the layer
//!    with a cache hit, and behind the layer with every request a miss,
//!    loaded by `wrk` in alternating rounds; and a public route sent a
//!    made-up session cookie, with refused tokens remembered and without.
//! 3. A hung Keyport (accepts, never answers): how long a public and a
//!    protected route wait, with the default budgets and with the client's
//!    whole deadline (the behaviour before the budgets existed).
//! 4. Revocation delay: from `RevokeSession` returning (called through
//!    another client, as another app or replica would) to the cache
//!    dropping the session.

#![allow(clippy::disallowed_methods, reason = "a benchmark reads the time to measure")]

mod actix;
mod keyport;
mod wrk;

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant},
};

use axum::{Router, routing::get};
use clap::Parser;
use keyport_axum::KeyportLayer;
use keyport_client::{
    AccessTokenVerifier, CacheConfig, ClientInfo, KeyportClient, NewApiKey, SessionCache, SignInOutcome, SignUpOutcome,
    web::{AuthSettings, Guard, Outcome, RequestView, RouteRules},
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const PASSWORD: &str = "correct horse battery staple";

/// Benchmark of the Keyport web middleware.
#[derive(Debug, Parser)]
struct Args {
    /// The `keyport` binary [default: next to this executable].
    #[arg(long)]
    keyport_bin: Option<PathBuf>,
    /// Seconds of `wrk` load per app and round.
    #[arg(long, default_value_t = 4)]
    duration: u64,
    /// Rounds of load; each round loads every app of a group once, in turn.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Throughput groups to load: `axum`, `actix`, `junk` (all by default).
    #[arg(long, value_delimiter = ',', default_value = "axum,actix,junk")]
    groups: Vec<String>,
    /// Concurrent `wrk` connections.
    #[arg(long, default_value_t = 64)]
    connections: u32,
    /// Calls of `Guard::check` per micro-benchmark.
    #[arg(long, default_value_t = 200_000)]
    iterations: u32,
    /// Revocations timed.
    #[arg(long, default_value_t = 200)]
    revocations: usize,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    let binary = match args.keyport_bin.clone() {
        Some(path) => path,
        None => std::env::current_exe()?.with_file_name("keyport"),
    };
    let keyport = keyport::Keyport::start(&binary).await?;
    let client = KeyportClient::builder(&keyport.endpoint).build()?;
    let signed_up = client.sign_up("bench@example.com", PASSWORD, "Bench", &ClientInfo::default()).await?;
    let SignUpOutcome::SignedIn(signed_in) = signed_up else {
        return Err("the benchmark's Keyport requires email verification".into());
    };
    let token = signed_in.token;
    keyport.create_admin("admin@example.com", PASSWORD).await?;
    let SignInOutcome::Session(admin) = client.sign_in("admin@example.com", PASSWORD, &ClientInfo::default()).await?
    else {
        return Err("the benchmark's admin needs another sign-in step".into());
    };

    let settings = AuthSettings::new(RouteRules::new().protect("/hello")).shared();
    let hit_cache = SessionCache::start(client.clone(), CacheConfig::default());
    wait_live(&hit_cache).await?;
    let never = CacheConfig { max_ttl: Duration::ZERO, ..CacheConfig::default() };
    let hit = Guard::new(hit_cache.clone(), settings.clone());
    let miss = Guard::new(SessionCache::start(client.clone(), never), settings);
    let (actix_hit, actix_miss) = (hit.clone(), miss.clone());

    println!("# Web middleware benchmark\n");
    println!(
        "Command: `cargo run --release -p keyport-web-bench -- {}`\n",
        std::env::args().skip(1).collect::<Vec<_>>().join(" ")
    );
    println!("Machine: {} cores; Keyport on SQLite with default settings, on the same machine.\n", cores());

    eprintln!("measuring Guard::check ...");
    let protected = View::new("/hello", Some(&token));
    let public = View::new("/public", None);
    let floor = time_checks(&hit, &public, args.iterations).await;
    let on_hit = time_checks(&hit, &protected, args.iterations).await;
    let on_miss = time_checks(&miss, &protected, (args.iterations / 50).max(100)).await;
    // A permission rule, for an admin (allowed): decided from the cache, or
    // by one `Authorize` call per request.
    let permission_settings = AuthSettings::new(RouteRules::new().require_permission("/hello", "users:read")).shared();
    let permission_hit = Guard::new(hit_cache.clone(), permission_settings.clone());
    let permission_miss = Guard::new(SessionCache::start(client.clone(), never), permission_settings);
    let as_admin = View::new("/hello", Some(&admin.token));
    // The admin's API key with the rule's permission: the machine caller.
    let new_key = NewApiKey { name: "bench".into(), scopes: vec!["users:read".into()], ..Default::default() };
    let key = client.create_api_key(&admin.token, new_key, &ClientInfo::default()).await?.secret;
    let as_key = View::new("/hello", Some(&key));
    // Timed only once it is known to be allowed, not a refusal.
    for (guard, view) in [(&permission_hit, &as_admin), (&permission_miss, &as_admin), (&permission_hit, &as_key)] {
        if !matches!(guard.check(view).await, Outcome::Proceed { principal: Some(_), .. }) {
            return Err("the admin (or their key) was not allowed through the permission rule".into());
        }
    }
    let on_permission_hit = time_checks(&permission_hit, &as_admin, args.iterations).await;
    let on_key_hit = time_checks(&permission_hit, &as_key, args.iterations).await;
    let on_permission_miss = time_checks(&permission_miss, &as_admin, (args.iterations / 50).max(100)).await;
    let on_key_miss = time_checks(&permission_miss, &as_key, (args.iterations / 50).max(100)).await;
    println!("## Added time per request (`Guard::check`, one caller)\n");
    println!("| case | per request |\n|---|---|");
    println!("| public route, no token (floor) | {:.2} µs |", floor.as_secs_f64() * 1e6);
    println!("| protected route, cache hit | {:.2} µs |", on_hit.as_secs_f64() * 1e6);
    println!("| protected route, cache miss (a `GetSession` call) | {:.2} µs |", on_miss.as_secs_f64() * 1e6);
    println!("| `require_permission` route, cache hit | {:.2} µs |", on_permission_hit.as_secs_f64() * 1e6);
    println!(
        "| `require_permission` route, cache miss (an `Authorize` call) | {:.2} µs |",
        on_permission_miss.as_secs_f64() * 1e6
    );
    println!("| `require_permission` route, API key, cache hit | {:.2} µs |", on_key_hit.as_secs_f64() * 1e6);
    println!(
        "| `require_permission` route, API key, cache miss (an `Authorize` call) | {:.2} µs |\n",
        on_key_miss.as_secs_f64() * 1e6
    );
    println!(
        "An API key on a cache hit costs {:+.2} µs against a session on a cache hit (target: at most 2 µs added).\n",
        (on_key_hit.as_secs_f64() - on_permission_hit.as_secs_f64()) * 1e6
    );

    eprintln!("timing access-token verification ...");
    let access_token = client.issue_access_token(&token, "").await?.token;
    let verifier =
        AccessTokenVerifier::new(client.clone(), keyport::ACCESS_TOKEN_ISSUER, keyport::ACCESS_TOKEN_AUDIENCE);
    let on_jwt = time_verifications(&verifier, &access_token, args.iterations).await?;
    println!("## Offline access-token (JWT) verification against a session cache hit (one caller)\n");
    println!("| check | per call | per second, one core |\n|---|---|---|");
    for (name, time) in [
        ("`AccessTokenVerifier::verify` (EdDSA, keys cached)", on_jwt),
        ("`Guard::check`, protected route, cache hit", on_hit),
    ] {
        println!("| {name} | {:.2} µs | {:.0} |", time.as_secs_f64() * 1e6, 1.0 / time.as_secs_f64());
    }
    println!();

    eprintln!("timing Actix in process ...");
    let bearer_value = format!("Bearer {token}");
    let (header, iterations, rounds) = (bearer_value.clone(), args.iterations, args.rounds.max(1));
    let guard = actix_hit.clone();
    // Actix runs its own system, which cannot start inside Tokio's.
    let in_process = std::thread::Builder::new()
        .name("actix-in-process".into())
        .spawn(move || actix::time_in_process(guard, ("authorization", &header), iterations, rounds))?
        .join()
        .map_err(|_| "the in-process Actix run panicked")?;
    println!("## Added time per request (Actix in process, no socket; fastest of {rounds} rounds)\n");
    println!("| app | per request |\n|---|---|");
    let names = ["Actix bare", "Actix + a pass-through `from_fn` middleware", "Actix + middleware, cache hit"];
    for (name, time) in names.into_iter().zip(in_process) {
        println!("| {name} | {:.2} µs |", time.as_secs_f64() * 1e6);
    }
    println!();

    eprintln!("loading the apps with wrk ...");
    let junk_settings = AuthSettings::new(RouteRules::new().protect("/hello")).shared();
    let no_refusals = CacheConfig { refusal_ttl: Duration::ZERO, ..CacheConfig::default() };
    let remembering = Guard::new(SessionCache::start(client.clone(), CacheConfig::default()), junk_settings.clone());
    let forgetting = Guard::new(SessionCache::start(client.clone(), no_refusals), junk_settings);
    let bearer = format!("Authorization: Bearer {token}");
    let junk = "Cookie: __Host-keyport_session=kp_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    let hello_at = |addr: SocketAddr| format!("http://{addr}/hello");
    let public_at = |addr: SocketAddr| format!("http://{addr}/public");
    // The baselines get the same request bytes (the Authorization header
    // included): the rows measure the middleware, not parsing a header.
    let axum_bare = serve(hello()).await?;
    let actix_bare = actix::serve(None)?;
    let axum_group = [
        Variant::new("Axum bare, same header (baseline)", hello_at(axum_bare), Some(&bearer)),
        Variant::new("Axum bare, no header", hello_at(axum_bare), None),
        Variant::new(
            "Axum + layer, cache hit",
            hello_at(serve(hello().layer(KeyportLayer::new(hit))).await?),
            Some(&bearer),
        ),
        Variant::new(
            "Axum + layer, cache miss",
            hello_at(serve(hello().layer(KeyportLayer::new(miss))).await?),
            Some(&bearer),
        ),
    ];
    let actix_group = [
        Variant::new("Actix bare, same header (baseline)", hello_at(actix_bare), Some(&bearer)),
        Variant::new("Actix bare, no header", hello_at(actix_bare), None),
        Variant::new("Actix + middleware, cache hit", hello_at(actix::serve(Some(actix_hit))?), Some(&bearer)),
        Variant::new("Actix + middleware, cache miss", hello_at(actix::serve(Some(actix_miss))?), Some(&bearer)),
    ];
    let remembering_app = serve(hello().layer(KeyportLayer::new(remembering))).await?;
    let junk_group = [
        Variant::new("Axum + layer, public route, no cookie (baseline)", public_at(remembering_app), None),
        Variant::new("... made-up cookie, refusals remembered", public_at(remembering_app), Some(junk)),
        Variant::new(
            "... made-up cookie, refusals not remembered (before)",
            public_at(serve(hello().layer(KeyportLayer::new(forgetting))).await?),
            Some(junk),
        ),
    ];
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (seconds, connections, rounds) = (args.duration, args.connections, args.rounds.max(1));
    println!("## Throughput (`wrk -t1 -c{connections} -d{seconds}s`, hello world, {rounds} rounds)\n");
    println!(
        "Apps are loaded one at a time; each round loads every app of a group in turn, so that the machine's \
         drift reaches all of them. \"Of baseline\" is the median over rounds of the app's rate divided by its \
         group's baseline in the same round.\n"
    );
    println!("| app | requests/s (median) | of baseline | mean latency | errors |\n|---|---|---|---|---|");
    let groups = [("axum", &axum_group[..]), ("actix", &actix_group[..]), ("junk", &junk_group[..])];
    for (_, group) in groups.into_iter().filter(|(name, _)| args.groups.iter().any(|g| g == name)) {
        for row in load_in_rounds(group, rounds, connections, seconds)? {
            println!("{row}");
        }
    }
    println!();

    eprintln!("timing a hung Keyport ...");
    println!("## A hung Keyport (accepts connections, never answers)\n");
    println!(
        "Time for `Guard::check` to decide on tokens the cache does not hold: the first request, and the mean of \
         the 4 after it (by then the client has marked the endpoint down). A fresh client per cell.\n"
    );
    println!(
        "| budgets | public: first | public: next 4 | protected: first | protected: next 4 |\n|---|---|---|---|---|"
    );
    let hung = std::net::TcpListener::bind("127.0.0.1:0")?;
    let hung_url = format!("http://{}", hung.local_addr()?);
    let budgets =
        [("defaults (250 ms / 1 s)", None), ("the client's deadline, 2 s (before)", Some(Duration::from_secs(2)))];
    for (name, wait) in budgets {
        let mut cells = Vec::new();
        for path in ["/public", "/hello"] {
            let mut settings = AuthSettings::new(RouteRules::new().protect("/hello"));
            if let Some(wait) = wait {
                settings = settings.with_waits(wait, wait);
            }
            let client = KeyportClient::builder(&hung_url).build()?;
            let guard = Guard::new(SessionCache::start(client, CacheConfig::default()), settings.shared());
            cells.push(time_uncached(&guard, path, 0, 1).await);
            cells.push(time_uncached(&guard, path, 1, 4).await);
        }
        let ms: Vec<String> = cells.iter().map(|d| format!("{:.0} ms", d.as_secs_f64() * 1e3)).collect();
        println!("| {name} | {} |", ms.join(" | "));
    }
    println!();
    drop(hung);

    eprintln!("timing revocations ...");
    let revoker = KeyportClient::builder(&keyport.endpoint).build()?;
    let delays = revocation_delays(&client, &revoker, &hit_cache, &token, args.revocations).await?;
    println!("## Revocation reaching the cache ({} revocations)\n", delays.len());
    println!("From `RevokeSession` returning (through a second client) to the cache dropping the session.\n");
    println!("| p50 | p99 | max |\n|---|---|---|");
    println!(
        "| {:.2} ms | {:.2} ms | {:.2} ms |",
        percentile(&delays, 0.50),
        percentile(&delays, 0.99),
        percentile(&delays, 1.0)
    );
    Ok(())
}

fn hello() -> Router {
    Router::new().route("/hello", get(|| async { "hello" })).route("/public", get(|| async { "hello" }))
}

/// One app to load: where, and with which header.
struct Variant {
    name: &'static str,
    url: String,
    header: Option<String>,
}

impl Variant {
    fn new(name: &'static str, url: String, header: Option<&str>) -> Self {
        Self { name, url, header: header.map(str::to_owned) }
    }
}

/// Loads each app of `group` once per round, in turn; returns a table row
/// per app. The first app is the group's baseline.
fn load_in_rounds(group: &[Variant], rounds: usize, connections: u32, seconds: u64) -> Result<Vec<String>, BoxError> {
    let mut loads = vec![Vec::with_capacity(rounds); group.len()];
    for _ in 0..rounds {
        for (variant, loads) in group.iter().zip(&mut loads) {
            loads.push(wrk::run(&variant.url, variant.header.as_deref(), connections, seconds)?);
        }
    }
    let median = |mut values: Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2]
    };
    let rows = group
        .iter()
        .zip(&loads)
        .map(|(variant, own)| {
            let ratios = own.iter().zip(&loads[0]).map(|(a, b)| a.requests_per_sec / b.requests_per_sec).collect();
            format!(
                "| {} | {:.0} | {:.1} % | {:.0} µs | {} |",
                variant.name,
                median(own.iter().map(|l| l.requests_per_sec).collect()),
                100.0 * median(ratios),
                median(own.iter().map(|l| l.mean_latency_us).collect()),
                own.iter().map(|l| l.errors).sum::<u64>(),
            )
        })
        .collect();
    Ok(rows)
}

/// Mean time of `check` on `path` with `count` tokens the cache has never
/// seen, numbered from `first`.
async fn time_uncached(guard: &Guard, path: &'static str, first: u32, count: u32) -> Duration {
    let start = Instant::now();
    for i in first..first + count {
        let view = View::new(path, Some(&format!("kp_hung{i:018}.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB")));
        std::hint::black_box(guard.check(&view).await);
    }
    start.elapsed() / count
}

async fn serve(app: Router) -> Result<SocketAddr, BoxError> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).await;
    });
    Ok(addr)
}

async fn wait_live(cache: &SessionCache) -> Result<(), BoxError> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cache.is_live() {
        if Instant::now() > deadline {
            return Err("the session cache never went live".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Mean time of one `check` over `iterations` sequential calls.
async fn time_checks(guard: &Guard, view: &View, iterations: u32) -> Duration {
    // Warm up: fill the cache, connect, fault in the code.
    for _ in 0..100 {
        std::hint::black_box(guard.check(view).await);
    }
    let start = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(guard.check(view).await);
    }
    start.elapsed() / iterations
}

/// Mean time of one `verify` of `token` (checked valid first), keys cached.
async fn time_verifications(
    verifier: &AccessTokenVerifier,
    token: &str,
    iterations: u32,
) -> Result<Duration, BoxError> {
    for _ in 0..100 {
        verifier.verify(token).await?;
    }
    let start = Instant::now();
    for _ in 0..iterations {
        std::hint::black_box(verifier.verify(token).await.is_ok());
    }
    Ok(start.elapsed() / iterations)
}

/// Milliseconds from each `RevokeSession` returning to the cache forgetting.
async fn revocation_delays(
    client: &KeyportClient,
    revoker: &KeyportClient,
    cache: &SessionCache,
    owner: &str,
    count: usize,
) -> Result<Vec<f64>, BoxError> {
    let mut delays = Vec::with_capacity(count);
    let nobody = ClientInfo::default();
    for _ in 0..count {
        let session = match client.sign_in("bench@example.com", PASSWORD, &nobody).await? {
            SignInOutcome::Session(session) => session,
            _ => return Err("the bench user needs another sign-in step".into()),
        };
        cache.get_session(&session.token, &nobody).await?;
        if cache.lookup(&session.token).is_none() {
            return Err("a fresh session was not cached".into());
        }
        revoker.revoke_session(owner, &session.principal.session_id, &nobody).await?;
        let returned = Instant::now();
        while cache.lookup(&session.token).is_some() {
            if returned.elapsed() > Duration::from_secs(5) {
                return Err("a revocation did not reach the cache within 5 s".into());
            }
            tokio::task::yield_now().await;
        }
        delays.push(returned.elapsed().as_secs_f64() * 1e3);
    }
    delays.sort_by(f64::total_cmp);
    Ok(delays)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(index).copied().unwrap_or(f64::NAN)
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// A request as the guard sees it, without any framework.
struct View {
    path: &'static str,
    authorization: Option<String>,
}

impl View {
    fn new(path: &'static str, token: Option<&str>) -> Self {
        Self { path, authorization: token.map(|token| format!("Bearer {token}")) }
    }
}

impl RequestView for View {
    fn method(&self) -> &str {
        "GET"
    }

    fn path(&self) -> &str {
        self.path
    }

    fn query(&self) -> Option<&str> {
        None
    }

    fn header(&self, name: &str) -> Option<&str> {
        match name {
            "authorization" => self.authorization.as_deref(),
            _ => None,
        }
    }

    fn peer_ip(&self) -> Option<String> {
        Some("127.0.0.1".into())
    }
}
