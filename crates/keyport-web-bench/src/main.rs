//! `keyport-web-bench`: what the web middleware costs, against a real
//! Keyport started by the benchmark itself.
//!
//! 1. Added time per request: `Guard::check` on a cache hit, on a miss, and
//!    on a public route without a token (the floor), in a tight loop.
//! 2. Throughput: a hello-world Axum app bare, behind the layer with a cache
//!    hit, and behind the layer with every request a miss, loaded by `wrk`.
//! 3. Revocation delay: from `RevokeSession` returning (called through
//!    another client, as another app or replica would) to the cache
//!    dropping the session.

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
    CacheConfig, ClientInfo, KeyportClient, SessionCache,
    web::{AuthSettings, Guard, RequestView, RouteRules},
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const PASSWORD: &str = "correct horse battery staple";

/// Benchmark of the Keyport web middleware.
#[derive(Debug, Parser)]
struct Args {
    /// The `keyport` binary [default: next to this executable].
    #[arg(long)]
    keyport_bin: Option<PathBuf>,
    /// Seconds of `wrk` load per app.
    #[arg(long, default_value_t = 10)]
    duration: u64,
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
    let token = signed_up.token;

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
    println!("## Added time per request (`Guard::check`, one caller)\n");
    println!("| case | per request |\n|---|---|");
    println!("| public route, no token (floor) | {:.2} µs |", floor.as_secs_f64() * 1e6);
    println!("| protected route, cache hit | {:.2} µs |", on_hit.as_secs_f64() * 1e6);
    println!("| protected route, cache miss (a `GetSession` call) | {:.2} µs |\n", on_miss.as_secs_f64() * 1e6);

    eprintln!("loading the apps with wrk ...");
    let bare = serve(hello()).await?;
    let with_hit = serve(hello().layer(KeyportLayer::new(hit))).await?;
    let with_miss = serve(hello().layer(KeyportLayer::new(miss))).await?;
    let header = format!("Authorization: Bearer {token}");
    let (seconds, connections) = (args.duration, args.connections);
    let url = |addr: SocketAddr| format!("http://{addr}/hello");
    let loads = [
        ("Axum bare (baseline)", wrk::run(&url(bare), None, connections, seconds)?),
        ("Axum + layer, cache hit", wrk::run(&url(with_hit), Some(&header), connections, seconds)?),
        ("Axum + layer, cache miss", wrk::run(&url(with_miss), Some(&header), connections, seconds)?),
    ];
    let actix_bare = actix::serve(None)?;
    let actix_with_hit = actix::serve(Some(actix_hit))?;
    let actix_with_miss = actix::serve(Some(actix_miss))?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let actix_loads = [
        ("Actix bare (baseline)", wrk::run(&url(actix_bare), None, connections, seconds)?),
        ("Actix + middleware, cache hit", wrk::run(&url(actix_with_hit), Some(&header), connections, seconds)?),
        ("Actix + middleware, cache miss", wrk::run(&url(actix_with_miss), Some(&header), connections, seconds)?),
    ];
    println!("## Throughput (`wrk -t1 -c{connections} -d{seconds}s`, hello world)\n");
    println!("Each framework's bare app is the baseline of its rows; apps are loaded one at a time.\n");
    println!("| app | requests/s | of bare | mean latency | errors |\n|---|---|---|---|---|");
    for group in [&loads, &actix_loads] {
        let baseline = group[0].1.requests_per_sec;
        for (name, load) in group.iter() {
            println!(
                "| {name} | {:.0} | {:.1} % | {:.0} µs | {} |",
                load.requests_per_sec,
                100.0 * load.requests_per_sec / baseline,
                load.mean_latency_us,
                load.errors
            );
        }
    }
    println!();

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
    Router::new().route("/hello", get(|| async { "hello" }))
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
        let session = client.sign_in("bench@example.com", PASSWORD, &nobody).await?;
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
