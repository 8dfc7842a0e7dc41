//! A `keyport serve` child process: spawning it on a free loopback port with
//! an empty data directory, waiting for SERVING, reading its RSS, killing it.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::{BoxError, procfs};

/// Log filter given to the server when the caller's environment sets no `RUST_LOG`:
/// request-level logging would measure the logger, not the service.
const DEFAULT_SERVER_LOG_FILTER: &str = "warn";
/// Interval between health checks while waiting for SERVING.
const POLL_INTERVAL: Duration = Duration::from_millis(1);
/// Lines of the server log quoted in errors.
const LOG_TAIL_LINES: usize = 20;

/// The `RUST_LOG` value the server runs with.
pub(crate) fn log_filter() -> String {
    std::env::var("RUST_LOG").unwrap_or_else(|_| DEFAULT_SERVER_LOG_FILTER.to_owned())
}

/// `KEYPORT_*` variables of this environment, which the server inherits and
/// reads as configuration: listed in the report so a run can be reproduced.
pub(crate) fn config_env() -> Vec<String> {
    let mut vars: Vec<String> = std::env::vars()
        .filter(|(name, _)| name.starts_with("KEYPORT_"))
        .map(|(name, value)| format!("{name}={value}"))
        .collect();
    vars.sort();
    vars
}

/// A running `keyport serve` process, killed when dropped (also on error paths).
pub(crate) struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    spawned_at: Instant,
    log_path: PathBuf,
    // Declared last so the directory is removed after `Drop::drop` killed the process.
    _dir: TempDir,
}

impl ServerProcess {
    /// Spawns `keyport serve` on a free loopback port with a fresh, empty data
    /// directory; the server's stdout and stderr go to a log file next to it.
    /// Does not wait for the server to be ready: see [`Self::wait_serving`].
    pub(crate) fn spawn(bin: &Path) -> Result<Self, BoxError> {
        Self::spawn_with(bin, &[])
    }

    /// [`Self::spawn`] with extra `KEYPORT_*` configuration variables, e.g.
    /// another database or the server cache turned off.
    pub(crate) fn spawn_with(bin: &Path, env: &[(&str, String)]) -> Result<Self, BoxError> {
        let dir = tempfile::Builder::new().prefix("keyport-bench-").tempdir()?;
        let data_dir = dir.path().join("data");
        std::fs::create_dir(&data_dir)?;
        let log_path = dir.path().join("server.log");
        let log = File::create(&log_path)?;
        let addr = free_loopback_addr()?;

        let mut command = Command::new(bin);
        command
            .arg("serve")
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(&data_dir)
            .env("RUST_LOG", log_filter())
            // Load comes from one address: the per-address budgets would
            // measure themselves instead of the server.
            .env("KEYPORT_REQUEST_LIMITS__BURST", "0")
            .envs(env.iter().map(|(name, value)| (*name, value.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let spawned_at = Instant::now();
        let child = command.spawn().map_err(|error| format!("spawning {}: {error}", bin.display()))?;
        Ok(Self { child, addr, spawned_at, log_path, _dir: dir })
    }

    /// The loopback address the server listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls the health `Check` RPC (service `""`) every millisecond until it
    /// answers SERVING; returns the time from spawn to that answer.
    pub(crate) async fn wait_serving(&mut self, limit: Duration) -> Result<Duration, BoxError> {
        let endpoint = Endpoint::from_shared(format!("http://{}", self.addr))?
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_millis(250))
            .timeout(Duration::from_secs(1));
        let mut client: Option<HealthClient<Channel>> = None;
        loop {
            self.ensure_running()?;
            if self.spawned_at.elapsed() > limit {
                return Err(format!("keyport not SERVING after {limit:?}; its log ends:\n{}", self.log_tail()).into());
            }
            if client.is_none() {
                // Refused until the listener is bound: keep polling.
                client = endpoint.connect().await.ok().map(HealthClient::new);
            }
            if let Some(health) = client.as_mut() {
                let request = HealthCheckRequest { service: String::new() };
                if let Ok(response) = health.check(request).await
                    && response.into_inner().status() == ServingStatus::Serving
                {
                    return Ok(self.spawned_at.elapsed());
                }
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Fails, quoting the server's log, when the process has exited.
    pub(crate) fn ensure_running(&mut self) -> Result<(), BoxError> {
        match self.child.try_wait()? {
            Some(status) => Err(format!("keyport exited ({status}); its log ends:\n{}", self.log_tail()).into()),
            None => Ok(()),
        }
    }

    /// The server's resident set size in MB (10^6 bytes).
    pub(crate) fn rss_mb(&self) -> Result<f64, BoxError> {
        procfs::rss_mb(self.child.id())
    }

    /// The last lines of the server's log, for error messages.
    fn log_tail(&self) -> String {
        match std::fs::read_to_string(&self.log_path) {
            Ok(log) => {
                let lines: Vec<&str> = log.lines().collect();
                lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
            }
            Err(error) => format!("(cannot read {}: {error})", self.log_path.display()),
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Errors mean the process is already gone; nothing else to do.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address with a port that was free a moment ago.
///
/// The port is released before the server binds it; another process could
/// take it in between, which the wait for SERVING then reports.
fn free_loopback_addr() -> Result<SocketAddr, BoxError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?)
}
