//! Wiring: storage, use cases and gRPC services into one running server.

use std::{future::Future, sync::Arc, time::Duration};

use keyport_core::{Accounts, Clock, store::StoreError};
use keyport_store::{Backend, Migrated, SeaStore, StoreOptions, events::PgEventRelay};
use tokio::{net::TcpListener, sync::watch, task::JoinSet};
use tonic::transport::{Certificate, Identity as TlsIdentity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;

use crate::{
    access_tokens::JwksLayer,
    caller::ClientResolver,
    config::Config,
    events::{CacheHealth, EventBus},
    grpc_web,
    health::{self, Health},
    incoming::{self, ConnectionLimits},
    mail::Courier,
    malformed::MalformedRequestLayer,
    oversized::DiscardOversizedLayer,
    prometheus,
    rpc_observer::RpcObserverLayer,
    service::{self, Shared},
};

/// Why Keyport could not start or keep serving.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database could not be opened or migrated.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// The identity rules are invalid (e.g. impossible argon2 parameters).
    #[error("configuration: {0}")]
    Identity(#[from] keyport_core::Error),
    /// Creating the data directory or binding failed.
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The gRPC transport failed.
    #[error("transport: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// An OAuth provider is misconfigured.
    #[error("{0}")]
    OAuth(#[from] keyport_oauth::SettingsError),
    /// The mail settings are incomplete or wrong.
    #[error("{0}")]
    Mail(#[from] crate::mail::MailConfigError),
    /// The permission catalogue or a role is malformed.
    #[error("{0}")]
    Authorization(String),
    /// `[access_tokens]` is wrong.
    #[error("{0}")]
    AccessTokens(String),
    /// `[metrics]` is wrong.
    #[error("{0}")]
    Metrics(String),
    /// The second-factor settings are unusable.
    #[error("{0}")]
    SecondFactors(#[from] crate::second_factors::SecondFactorsError),
    /// Building the reflection service failed.
    #[error("reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
}

/// An opened Keyport: migrated database and ready use cases, not yet serving.
pub struct Keyport {
    config: Config,
    accounts: Accounts,
    store: SeaStore,
    events: EventBus,
    relay: Option<PgEventRelay>,
    courier: Option<Courier>,
    metrics: Option<TcpListener>,
}

impl Keyport {
    /// Opens the database (creating the SQLite data directory if needed),
    /// applies migrations and builds the use cases.
    pub async fn open(config: Config, clock: Arc<dyn Clock>) -> Result<Self, StartError> {
        config.metrics.address().map_err(StartError::Metrics)?;
        let store = open_store(&config).await?;
        match store.migrate().await? {
            Migrated::Current { applied: 0 } => tracing::info!("schema up to date"),
            Migrated::Current { applied } => tracing::info!(applied, "migrations applied"),
            Migrated::Newer { unknown } => tracing::warn!(
                unknown = unknown.join(","),
                "the schema is newer than this Keyport (a rolling upgrade?): serving it as it is"
            ),
        }
        let events = EventBus::new();
        let relay = PgEventRelay::new(&store);
        let providers = keyport_oauth::providers(&config.oauth.providers)?;
        let counters = store.shared_counters();
        let mut accounts_config = config.accounts();
        accounts_config.second_factors.keys = Some(config.second_factors.keys(sqlite_dir(&config).as_deref())?);
        accounts_config.roles = Arc::new(config.authorization.role_book().map_err(StartError::Authorization)?);
        accounts_config.organizations =
            config.organizations.policy(&config.authorization.permissions).map_err(StartError::Authorization)?;
        accounts_config.access_tokens = config.access_tokens.policy().map_err(StartError::AccessTokens)?;
        let factors = &accounts_config.second_factors;
        accounts_config.second_factors.passkeys =
            config.passkeys.relying_party(&factors.issuer, factors.challenge_ttl)?.map(Arc::new);
        let mut accounts = Accounts::new(Arc::new(store.clone()), clock, accounts_config)?
            .with_events(Arc::new(events.clone()))
            .with_providers(providers);
        if let Some(counters) = counters {
            accounts = accounts.with_counters(Arc::new(counters));
        }
        accounts.reload_roles().await?;
        let courier = if config.mail.enabled() {
            accounts = accounts.with_mail(config.mail.settings()?);
            Some(Courier::new(accounts.clone(), &config.mail)?)
        } else if config.sign_up.require_email_verification {
            let problem = "sign_up.require_email_verification needs mail delivery".to_owned();
            return Err(crate::mail::MailConfigError::Invalid { field: "smtp_host", problem }.into());
        } else {
            tracing::info!(
                "mail is off (no mail.smtp_host): verification and password-reset calls answer MAIL_DISABLED"
            );
            None
        };
        Ok(Self { config, accounts, store, events, relay, courier, metrics: None })
    }

    /// Binds the metrics listener of `[metrics] listen`, if set, and
    /// returns its address (the port chosen for `:0`). [`Keyport::serve`]
    /// binds it otherwise.
    pub async fn bind_metrics(&mut self) -> Result<Option<std::net::SocketAddr>, StartError> {
        if self.metrics.is_none()
            && let Some(address) = self.config.metrics.address().map_err(StartError::Metrics)?
        {
            self.metrics = Some(TcpListener::bind(address).await?);
        }
        Ok(self.metrics.as_ref().map(TcpListener::local_addr).transpose()?)
    }

    /// The use cases, for in-process callers and tests.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// Serves gRPC on `listener` until `shutdown` resolves, then lets
    /// in-flight calls finish for up to `shutdown_grace_ms`.
    pub async fn serve(
        mut self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartError> {
        self.bind_metrics().await?;
        let Self { config, accounts, store, events, relay, courier, metrics } = self;
        let server = &config.server;
        let (stop_tx, stop_rx) = watch::channel(false);
        let shared = Shared {
            accounts: accounts.clone(),
            clients: ClientResolver::new(server.trusted_proxies.clone()),
            events: events.clone(),
            stopping: stop_rx.clone(),
        };
        let api = service::registry(&shared, server.max_message_bytes);
        let (reporter, health_service) = tonic_health::server::health_reporter();
        let health = Health::new(reporter, api.names());
        health.start(ServingStatus::Serving).await;

        // Every task started here ends with `serve` (the set aborts them
        // when dropped), whichever way it returns.
        let jwks = JwksLayer::new(accounts.clone());
        let mut background = spawn_background(&config, accounts.clone(), events.clone(), relay, health.clone());
        if let Some(listener) = metrics {
            prometheus::install();
            let sampled = prometheus::Sampled { accounts: accounts.clone(), store, events, mail: courier.is_some() };
            background.spawn(prometheus::serve(listener, sampled, stop_rx.clone()));
        }
        if let Some(courier) = courier {
            background.spawn(courier.run(stop_rx.clone()));
        }
        background.spawn(async move {
            shutdown.await;
            // Load balancers stop sending new calls while in-flight ones drain.
            health.report(ServingStatus::NotServing).await;
            let _ = stop_tx.send(true);
        });

        let mut routes = api.into_routes().add_service(health_service);
        // v1alpha too: many tools (Postman, grpcui, Python's grpc_reflection) speak only that.
        routes = routes.add_service(reflection().build_v1()?).add_service(reflection().build_v1alpha()?);
        run(server, routes, jwks, listener, stop_rx).await
    }
}

/// The work a serving replica does besides answering calls: following the
/// database's health, sweeping expired rows, and (on PostgreSQL) relaying
/// the other replicas' session events.
fn spawn_background(
    config: &Config,
    accounts: Accounts,
    events: EventBus,
    relay: Option<PgEventRelay>,
    health: Health,
) -> JoinSet<()> {
    let cache_health = CacheHealth::new(accounts.clone());
    let interval = Duration::from_millis(config.database.health_check_interval_ms.max(10));
    let mut tasks = JoinSet::new();
    tasks.spawn(health::monitor(accounts.clone(), cache_health.clone(), health, interval));
    tasks.spawn(sweep_expired(accounts, Duration::from_secs(config.database.sweep_interval_secs.max(1))));
    if let Some(relay) = relay {
        tasks.spawn(events.relay(relay, cache_health));
    }
    tasks
}

/// Serves `routes` on `listener`, with the transport's limits and layers,
/// until `stop` turns true and the calls in flight end (or the shutdown
/// grace elapses).
async fn run(
    server: &crate::config::ServerConfig,
    routes: tonic::service::Routes,
    jwks: JwksLayer,
    listener: TcpListener,
    stop: watch::Receiver<bool>,
) -> Result<(), StartError> {
    let router = with_tls(Server::builder(), server)?
        // HTTP/1.1 too, for gRPC-web from browsers.
        .accept_http1(true)
        .timeout(Duration::from_millis(server.request_timeout_ms))
        .concurrency_limit_per_connection(server.max_concurrent_requests_per_connection)
        .max_concurrent_streams(server.max_concurrent_streams)
        // Live clients acknowledge pings, which also keeps them clear of
        // the idle timeout; dead ones are closed after the ping timeout.
        .http2_keepalive_interval(crate::config::ServerConfig::millis(server.http2_keepalive_interval_ms))
        .http2_keepalive_timeout(Some(Duration::from_millis(server.http2_keepalive_timeout_ms)))
        .trace_fn(crate::telemetry::rpc_span)
        // Plain HTTP, so outside gRPC-web (which refuses it).
        .layer(jwks)
        .layer(tower::util::option_layer(grpc_web::cors(&server.cors_allowed_origins)))
        .layer(tonic_web::GrpcWebLayer::new())
        // Inside gRPC-web, so that browser calls count like the others, and
        // outside the rewrites below, so that it sees what callers get.
        .layer(RpcObserverLayer)
        // Inside gRPC-web, so that browsers get the same answers.
        .layer(DiscardOversizedLayer)
        .layer(MalformedRequestLayer)
        .add_routes(routes);
    warn_if_keepalive_misses_idle_timeout(server);
    // Our own accept loop: it caps connections, backs off when out of
    // descriptors, sets TCP keepalive (which tonic ignores with a custom
    // incoming) and closes silent connections.
    let incoming = incoming::incoming(listener, ConnectionLimits::of(server));
    let grace = Duration::from_millis(server.shutdown_grace_ms);
    tokio::select! {
        served = router.serve_with_incoming_shutdown(incoming, stopped(stop.clone())) => served.map_err(StartError::from),
        () = async { stopped(stop).await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "shutdown grace elapsed; dropping calls still in flight");
            Ok(())
        }
    }
}

/// What reflection describes: our API, health, and the google.rpc error
/// details (so that grpcurl can decode reasons).
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(keyport_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
}

/// An idle timeout shorter than the ping interval closes healthy but quiet
/// HTTP/2 connections, long-lived `WatchSessionEvents` streams included.
fn warn_if_keepalive_misses_idle_timeout(server: &crate::config::ServerConfig) {
    let idle = server.idle_timeout_ms;
    let ping = server.http2_keepalive_interval_ms;
    if idle > 0 && (ping == 0 || ping >= idle) {
        tracing::warn!(
            idle_timeout_ms = idle,
            http2_keepalive_interval_ms = ping,
            "HTTP/2 keepalive pings are not sent within the idle timeout; quiet connections will be closed"
        );
    }
}

/// Adds TLS (and client certificate checks) when configured.
fn with_tls(builder: Server, server: &crate::config::ServerConfig) -> Result<Server, StartError> {
    let (cert, key) = (&server.tls_cert_file, &server.tls_key_file);
    if cert.as_os_str().is_empty() && key.as_os_str().is_empty() {
        return Ok(builder);
    }
    let identity = TlsIdentity::from_pem(std::fs::read(cert)?, std::fs::read(key)?);
    let mut tls = ServerTlsConfig::new().identity(identity);
    if !server.tls_client_ca_file.as_os_str().is_empty() {
        tls = tls.client_ca_root(Certificate::from_pem(std::fs::read(&server.tls_client_ca_file)?));
    }
    Ok(builder.tls_config(tls)?)
}

async fn open_store(config: &Config) -> Result<SeaStore, StartError> {
    let url = config.effective_database_url();
    let backend = Backend::of_url(&url)
        .ok_or_else(|| StoreError::Other("database_url must start with sqlite: or postgres://".into()))?;
    if config.database_url.is_empty() {
        create_private_dir(&config.data_dir)?;
    }
    let mut options = StoreOptions::for_backend(backend);
    if config.database.max_connections > 0 {
        options.max_connections = config.database.max_connections;
    }
    options.acquire_timeout = Duration::from_millis(config.database.acquire_timeout_ms);
    Ok(SeaStore::connect(&url, &options).await?)
}

/// The directory of the SQLite database file, where the second-factor key
/// file goes when no key is configured; `None` on PostgreSQL, whose
/// replicas must be given one shared key.
fn sqlite_dir(config: &Config) -> Option<std::path::PathBuf> {
    if Backend::of_url(&config.effective_database_url()) != Some(Backend::Sqlite) {
        return None;
    }
    match config.sqlite_file().as_deref().and_then(std::path::Path::parent) {
        Some(dir) if !dir.as_os_str().is_empty() => Some(dir.to_path_buf()),
        _ => Some(config.data_dir.clone()),
    }
}

/// Creates the data directory readable by its owner only: it holds password hashes.
fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(path)
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stopped| *stopped).await;
}

async fn sweep_expired(accounts: Accounts, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    loop {
        ticker.tick().await;
        match accounts.sweep_expired().await {
            Ok(swept) if swept == Default::default() => {}
            Ok(swept) => tracing::info!(
                sessions = swept.sessions,
                oauth_flows = swept.oauth_flows,
                email_tokens = swept.email_tokens,
                email_sign_ins = swept.email_sign_ins,
                mails = swept.mails,
                throttling_counters = swept.counters,
                audit_events = swept.audit_events,
                signing_keys = swept.signing_keys,
                "deleted expired rows"
            ),
            Err(error) => tracing::warn!(%error, "sweeping expired rows failed"),
        }
    }
}
