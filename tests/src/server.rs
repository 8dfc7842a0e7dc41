//! The real Keyport server, in-process on port 0, for one test.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use keyport_core::{Accounts, ManualClock};
use keyport_proto::v1::{
    SignUpRequest, session_service_client::SessionServiceClient, user_service_client::UserServiceClient,
};
use keyport_server::{Config, Keyport};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};
use tempfile::TempDir;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_client::HealthClient;

use crate::pg::{self, PgCluster};

/// Which database a test server uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A fresh SQLite file in a temporary directory.
    Sqlite,
    /// A fresh database on the shared PostgreSQL cluster.
    Postgres,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A running Keyport with its own empty database and a manual clock.
pub struct TestServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The server's clock; move it to expire sessions.
    pub clock: Arc<ManualClock>,
    /// The database URL it uses.
    pub database_url: String,
    /// A connection of the test's own to the same database, for checks.
    pub db: DatabaseConnection,
    /// The server's use cases, for what only the inside can see (e.g. a
    /// hash in progress).
    pub accounts: Accounts,
    channel: Channel,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), keyport_server::StartError>>>,
    /// Set for [`TestServer::isolated_replica_of`]: the runtime it runs on.
    runtime: Option<OwnRuntime>,
    _dir: TempDir,
}

/// A runtime on a thread of its own, for a server that a test freezes or
/// kills as a whole, as SIGSTOP or SIGKILL would its process.
struct OwnRuntime {
    handle: tokio::runtime::Handle,
    /// Dropping it ends the thread, which drops the runtime and every task on it.
    end: Option<oneshot::Sender<()>>,
    /// Held while frozen: sending (or dropping) it thaws the runtime.
    thaw: std::sync::Mutex<Option<std::sync::mpsc::Sender<()>>>,
    ended: Option<oneshot::Receiver<()>>,
}

impl OwnRuntime {
    fn start() -> Result<Self, BoxError> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (end, until) = oneshot::channel::<()>();
        let (ended_tx, ended) = oneshot::channel::<()>();
        std::thread::Builder::new().name("keyport-isolated".into()).spawn(move || {
            let _ = runtime.block_on(until);
            // Every task goes, with its sockets: the kernel closes them as
            // it does for a process that died.
            drop(runtime);
            let _ = ended_tx.send(());
        })?;
        Ok(Self { handle, end: Some(end), thaw: std::sync::Mutex::new(None), ended: Some(ended) })
    }

    fn thaw(&self) {
        if let Ok(mut thaw) = self.thaw.lock() {
            thaw.take();
        }
    }
}

impl Drop for OwnRuntime {
    fn drop(&mut self) {
        self.thaw();
        self.end.take();
    }
}

/// The web origin the tests' software authenticator runs ceremonies for;
/// every test server allows it, with relying-party id `localhost`.
pub const TEST_PASSKEY_ORIGIN: &str = "https://localhost";

/// The second-factor key of test servers on PostgreSQL (32 bytes of 7).
pub const TEST_FACTOR_KEY: &str = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";

/// Argon2 parameters cheap enough for hundreds of test sign-ups; the real
/// defaults are exercised by the unit tests and the benchmark.
pub fn fast_hashing(config: &mut Config) {
    config.hashing.memory_kib = 1024;
    config.hashing.iterations = 1;
}

impl TestServer {
    /// Starts a server on `backend` with test defaults.
    pub async fn start(backend: Backend) -> Result<Self, BoxError> {
        Self::start_with(backend, |_| {}).await
    }

    /// Starts a server on `backend`, letting `configure` change the config.
    pub async fn start_with(backend: Backend, configure: impl FnOnce(&mut Config)) -> Result<Self, BoxError> {
        let dir = tempfile::tempdir()?;
        let database_url = match backend {
            Backend::Sqlite => String::new(),
            Backend::Postgres => pg::shared()?.create_database("keyport")?,
        };
        Self::start_on(dir, database_url, configure, None, None).await
    }

    /// Starts a server on `backend` listening on `bind` (say `[::]:0`); the
    /// test's clients connect to 127.0.0.1 when `bind` is unspecified.
    pub async fn start_bound(
        backend: Backend,
        bind: SocketAddr,
        configure: impl FnOnce(&mut Config),
    ) -> Result<Self, BoxError> {
        let dir = tempfile::tempdir()?;
        let database_url = match backend {
            Backend::Sqlite => String::new(),
            Backend::Postgres => pg::shared()?.create_database("keyport")?,
        };
        Self::start_on(dir, database_url, configure, None, Some(bind)).await
    }

    /// Starts a server on SQLite that speaks only TLS, and connects to it
    /// with `tls` (trusted CA, client identity, server name).
    pub async fn start_tls(
        configure: impl FnOnce(&mut Config),
        tls: tonic::transport::ClientTlsConfig,
    ) -> Result<Self, BoxError> {
        Self::start_on(tempfile::tempdir()?, String::new(), configure, Some(tls), None).await
    }

    /// Starts another replica on `other`'s database. On PostgreSQL the two
    /// exchange events (revocations reach the other's caches and streams). On
    /// SQLite they share the file but not events: use it only where what one
    /// changes need not be pushed by the other.
    pub async fn replica_of(other: &TestServer) -> Result<Self, BoxError> {
        Self::start_on(tempfile::tempdir()?, other.database_url.clone(), |_| {}, None, None).await
    }

    /// Like [`TestServer::replica_of`], with `configure` changing the new
    /// replica's config.
    pub async fn replica_of_with(other: &TestServer, configure: impl FnOnce(&mut Config)) -> Result<Self, BoxError> {
        Self::start_on(tempfile::tempdir()?, other.database_url.clone(), configure, None, None).await
    }

    /// Like [`TestServer::replica_of`], but on a runtime and thread of its
    /// own, so that the test can [`freeze`](Self::freeze) or
    /// [`kill`](Self::kill) the whole server, as SIGSTOP or SIGKILL would.
    pub async fn isolated_replica_of(other: &TestServer) -> Result<Self, BoxError> {
        let runtime = OwnRuntime::start()?;
        let mut server =
            Self::start_isolated(tempfile::tempdir()?, other.database_url.clone(), Some(&runtime.handle)).await?;
        server.runtime = Some(runtime);
        Ok(server)
    }

    /// Starts a server on the database at `url` as it is (an SQLite
    /// `sqlite://...?mode=rwc` URL or a PostgreSQL one), which the server
    /// migrates: for databases a test prepared itself.
    pub async fn start_on_database(url: &str, configure: impl FnOnce(&mut Config)) -> Result<Self, BoxError> {
        Self::start_on(tempfile::tempdir()?, url.to_owned(), configure, None, None).await
    }

    /// Starts a server on a private PostgreSQL cluster that the test may stop.
    pub async fn start_on_cluster(cluster: &PgCluster, configure: impl FnOnce(&mut Config)) -> Result<Self, BoxError> {
        let url = cluster.create_database("keyport")?;
        Self::start_on(tempfile::tempdir()?, url, configure, None, None).await
    }

    async fn start_on(
        dir: TempDir,
        database_url: String,
        configure: impl FnOnce(&mut Config),
        tls: Option<tonic::transport::ClientTlsConfig>,
        bind: Option<SocketAddr>,
    ) -> Result<Self, BoxError> {
        Self::start_in(dir, database_url, configure, tls, bind, None).await
    }

    async fn start_isolated(
        dir: TempDir,
        database_url: String,
        runtime: Option<&tokio::runtime::Handle>,
    ) -> Result<Self, BoxError> {
        Self::start_in(dir, database_url, |_| {}, None, None, runtime).await
    }

    async fn start_in(
        dir: TempDir,
        database_url: String,
        configure: impl FnOnce(&mut Config),
        tls: Option<tonic::transport::ClientTlsConfig>,
        bind: Option<SocketAddr>,
        runtime: Option<&tokio::runtime::Handle>,
    ) -> Result<Self, BoxError> {
        let mut config = Config {
            data_dir: dir.path().join("data"),
            // An SQLite URL from an earlier server of the same test is kept as is.
            database_url,
            ..Config::default()
        };
        fast_hashing(&mut config);
        // Replicas on one PostgreSQL database share the key that seals TOTP
        // secrets; on SQLite the server makes its own key file.
        if keyport_store::Backend::of_url(&config.database_url) == Some(keyport_store::Backend::Postgres) {
            config.second_factors.encryption_key = TEST_FACTOR_KEY.into();
        }
        config.passkeys.rp_id = "localhost".into();
        config.passkeys.origins = vec![TEST_PASSKEY_ORIGIN.into()];
        config.database.health_check_interval_ms = 100;
        config.server.shutdown_grace_ms = 2_000;
        configure(&mut config);
        let url = config.effective_database_url();

        let clock = Arc::new(ManualClock::starting_now());
        let launched = launch(config, clock.clone(), bind);
        let (addr, shutdown, task, accounts) = match runtime {
            // Opened, bound and served there, so that every task and socket
            // of the server belongs to that runtime.
            Some(runtime) => runtime.spawn(launched).await??,
            None => launched.await?,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut endpoint = Endpoint::from_shared(format!("{scheme}://{addr}"))?
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20));
        if let Some(tls) = tls {
            endpoint = endpoint.tls_config(tls)?;
        }
        let channel = endpoint.connect().await?;
        let db = Database::connect(&url).await?;
        Ok(Self {
            addr,
            clock,
            database_url: url,
            db,
            accounts,
            channel,
            shutdown: Some(shutdown),
            task: Some(task),
            runtime: None,
            _dir: dir,
        })
    }

    /// Freezes a server from [`TestServer::isolated_replica_of`] until
    /// [`thaw`](Self::thaw): its one thread blocks, as if SIGSTOPped. The
    /// kernel still completes TCP handshakes into the listen backlog and
    /// keeps established connections open; nothing is read or answered.
    pub async fn freeze(&self) -> Result<(), BoxError> {
        let runtime = self.runtime.as_ref().ok_or("only an isolated replica can be frozen")?;
        let (thaw, frozen_until) = std::sync::mpsc::channel::<()>();
        let (frozen_tx, frozen) = oneshot::channel::<()>();
        *runtime.thaw.lock().map_err(|_| "poisoned")? = Some(thaw);
        runtime.handle.spawn(async move {
            let _ = frozen_tx.send(());
            // Blocks the runtime's only thread: every task of the server stops.
            let _ = frozen_until.recv();
        });
        frozen.await?;
        Ok(())
    }

    /// Lets a frozen server run again.
    pub fn thaw(&self) {
        if let Some(runtime) = &self.runtime {
            runtime.thaw();
        }
    }

    /// Kills a server from [`TestServer::isolated_replica_of`] at once, with
    /// no graceful shutdown: its runtime is dropped with every task, listener
    /// and connection, as the kernel closes a dead process's sockets.
    pub async fn kill(mut self) -> Result<(), BoxError> {
        let mut runtime = self.runtime.take().ok_or("only an isolated replica can be killed")?;
        let ended = runtime.ended.take().ok_or("killed twice")?;
        self.shutdown.take();
        self.task.take();
        drop(runtime);
        ended.await?;
        Ok(())
    }

    /// Stops this server and starts a new one on the same database and
    /// address, with `configure` applied to the test defaults: a restart.
    pub async fn restart_with(mut self, configure: impl FnOnce(&mut Config)) -> Result<Self, BoxError> {
        let dir = std::mem::replace(&mut self._dir, tempfile::tempdir()?);
        let (url, addr) = (self.database_url.clone(), self.addr);
        self.stop_in_place().await?;
        Self::start_on(dir, url, configure, None, Some(addr)).await
    }

    /// A `UserService` client.
    pub fn users(&self) -> UserServiceClient<Channel> {
        UserServiceClient::new(self.channel.clone())
    }

    /// A `SessionService` client.
    pub fn sessions(&self) -> SessionServiceClient<Channel> {
        SessionServiceClient::new(self.channel.clone())
    }

    /// A `grpc.health.v1` client.
    pub fn health(&self) -> HealthClient<Channel> {
        HealthClient::new(self.channel.clone())
    }

    /// The shared channel, for other generated clients.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Signs up `email` with a valid password; returns the session token.
    pub async fn sign_up(&self, email: &str) -> Result<String, BoxError> {
        let response = self
            .users()
            .sign_up(SignUpRequest { email: email.into(), password: PASSWORD.into(), name: "Test User".into() })
            .await?
            .into_inner();
        Ok(response.session.map(|grant| grant.token).unwrap_or_default())
    }

    /// Signs `email` in with `password`; returns the session token.
    pub async fn sign_in(&self, email: &str, password: &str) -> Result<String, tonic::Status> {
        use keyport_proto::v1::{SignInRequest, sign_in_response::Outcome};
        let request = SignInRequest { email: email.into(), password: password.into() };
        match self.sessions().sign_in(request).await?.into_inner().outcome {
            Some(Outcome::Session(grant)) => Ok(grant.token),
            Some(Outcome::Challenge(_)) => Err(tonic::Status::failed_precondition("SignIn answered a challenge")),
            None => Err(tonic::Status::internal("SignIn answered without a session")),
        }
    }

    /// What `GetSession` says of `token`: `"OK"`, or the refusal's reason.
    pub async fn session_reason(&self, token: &str) -> String {
        let request = keyport_proto::v1::GetSessionRequest { token: token.into() };
        match self.sessions().get_session(request).await {
            Ok(_) => "OK".into(),
            Err(status) => crate::grpc::reason(&status),
        }
    }

    /// Rows in `table`, read through the test's own connection.
    pub async fn count(&self, table: &str) -> Result<i64, BoxError> {
        self.scalar(&format!("SELECT COUNT(*) FROM {table}")).await
    }

    /// The first column of the first row of `sql`, as an integer.
    pub async fn scalar(&self, sql: &str) -> Result<i64, BoxError> {
        let backend = self.db.get_database_backend();
        let row = self.db.query_one_raw(Statement::from_string(backend, sql)).await?;
        let row = row.ok_or("query returned no row")?;
        Ok(row.try_get_by_index::<i64>(0)?)
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(mut self) -> Result<(), BoxError> {
        self.stop_in_place().await
    }

    async fn stop_in_place(&mut self) -> Result<(), BoxError> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(task) = self.task.take() {
            task.await??;
        }
        Ok(())
    }
}

type Launched = (SocketAddr, oneshot::Sender<()>, JoinHandle<Result<(), keyport_server::StartError>>, Accounts);

/// Opens Keyport, binds and serves, on the runtime this runs on.
async fn launch(config: Config, clock: Arc<ManualClock>, bind: Option<SocketAddr>) -> Result<Launched, BoxError> {
    let keyport = Keyport::open(config, clock).await?;
    let accounts = keyport.accounts().clone();
    let listener = TcpListener::bind(bind.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)))).await?;
    let mut addr = listener.local_addr()?;
    if addr.ip().is_unspecified() {
        // Through an IPv6 wildcard, an IPv4 client arrives as ::ffff:127.0.0.1.
        addr.set_ip([127, 0, 0, 1].into());
    }
    let (shutdown, stop) = oneshot::channel::<()>();
    let task = tokio::spawn(keyport.serve(listener, async move {
        let _ = stop.await;
    }));
    Ok((addr, shutdown, task, accounts))
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The session id (the lookup half) of a session token `kp_<id>.<secret>`.
pub fn session_id(token: &str) -> String {
    token.split_once('.').map(|(id, _)| id.trim_start_matches("kp_").to_owned()).unwrap_or_default()
}

/// The password every [`TestServer::sign_up`] account has.
pub const PASSWORD: &str = "correct horse battery staple";
