//! Configuration: defaults, then a TOML file, then `KEYPORT_*` environment
//! variables, then command-line flags; later sources win.
//!
//! Every key is documented in `keyport.example.toml` at the repository root,
//! which a test checks against [`Config`].

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use keyport_core::{
    AccountsConfig,
    oauth::OAuthConfig,
    password::{HashParams, HashingLimits, PasswordPolicy},
    session::SessionPolicy,
    throttle::{budget::RequestLimits, failures::SignInLimits},
};
use keyport_oauth::ProviderSettings;
use serde::{Deserialize, Serialize};

use crate::{
    access_tokens::AccessTokensConfig,
    mail::MailConfig,
    prometheus::MetricsConfig,
    second_factors::{PasskeysConfig, SecondFactorsConfig},
    telemetry::TracingConfig,
};

/// Everything `keyport serve` can be told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address the gRPC server listens on.
    pub listen: SocketAddr,
    /// Directory of the embedded SQLite database (created if missing).
    pub data_dir: PathBuf,
    /// Database URL; empty means SQLite in `data_dir`. `postgres://...`
    /// selects PostgreSQL.
    pub database_url: String,
    /// Log output: `pretty` for people, `json` for log collectors.
    pub log_format: LogFormat,
    /// Connection pool.
    pub database: DatabaseConfig,
    /// Transport limits.
    pub server: ServerConfig,
    /// Session lifetimes.
    pub sessions: SessionsConfig,
    /// Password rules.
    pub passwords: PasswordsConfig,
    /// Argon2id cost and the hashing pool.
    pub hashing: HashingConfig,
    /// Failed sign-in throttling.
    pub sign_in_limits: SignInLimitsConfig,
    /// Budgets of the public RPCs per client address.
    pub request_limits: RequestLimitsConfig,
    /// Social sign-in.
    pub oauth: OAuthSettings,
    /// The audit trail.
    pub audit: AuditConfig,
    /// Mail delivery and the links in mails; off until `smtp_host` is set.
    pub mail: MailConfig,
    /// Sign-up rules.
    pub sign_up: SignUpConfig,
    /// Second factors: the key sealing TOTP secrets, freshness rules.
    pub second_factors: SecondFactorsConfig,
    /// Passkeys (WebAuthn); off until `rp_id` is set.
    pub passkeys: PasskeysConfig,
    /// The permission catalogue and the roles.
    pub authorization: AuthorizationConfig,
    /// API keys' lifetimes and bookkeeping.
    pub api_keys: ApiKeysConfig,
    /// Organization roles and limits.
    pub organizations: OrganizationsConfig,
    /// Signed access tokens (JWTs) and their keys; off until `issuer` is set.
    pub access_tokens: AccessTokensConfig,
    /// Prometheus metrics on a listener of their own; off until `listen` is set.
    pub metrics: MetricsConfig,
    /// OpenTelemetry traces over OTLP; off until `otlp_endpoint` is set.
    pub tracing: TracingConfig,
}

/// The `[organizations]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrganizationsConfig {
    /// Days an invitation works.
    pub invitation_ttl_days: u64,
    /// Most organizations one user may own.
    pub max_owned: u64,
    /// Most pending invitations of one organization.
    pub max_pending_invitations: u64,
    /// Role name to grants inside an organization: permissions of the
    /// catalogue, `resource:*` or `*` (never Keyport's own). `owner`,
    /// `admin` and `member` exist even if not listed.
    pub roles: std::collections::BTreeMap<String, Vec<String>>,
}

impl Default for OrganizationsConfig {
    fn default() -> Self {
        let policy = keyport_core::organization::OrganizationPolicy::default();
        Self {
            invitation_ttl_days: policy.invitation_ttl.as_secs() / 86_400,
            max_owned: policy.max_owned,
            max_pending_invitations: policy.max_pending_invitations,
            roles: keyport_core::organization::default_roles().into_iter().collect(),
        }
    }
}

impl OrganizationsConfig {
    /// The policy these settings describe over the catalogue `permissions`,
    /// or what is wrong with the roles.
    pub fn policy(&self, permissions: &[String]) -> Result<keyport_core::organization::OrganizationPolicy, String> {
        let mut roles: std::collections::BTreeMap<String, Vec<String>> =
            keyport_core::organization::default_roles().into_iter().collect();
        roles.extend(self.roles.clone());
        let roles = keyport_core::authorization::Roles::new(permissions, roles)
            .map_err(|problem| format!("organizations: {problem}"))?;
        Ok(keyport_core::organization::OrganizationPolicy {
            roles: std::sync::Arc::new(roles),
            invitation_ttl: Duration::from_secs(self.invitation_ttl_days.max(1).saturating_mul(86_400)),
            max_owned: self.max_owned,
            max_pending_invitations: self.max_pending_invitations,
        })
    }
}

/// The `[api_keys]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiKeysConfig {
    /// Days a key works when created without `expires_in`; 0 for keys
    /// that do not expire unless asked to.
    pub default_lifetime_days: u64,
    /// Most days a key may be given.
    pub max_lifetime_days: u64,
    /// A key's last use is written at most once per this many seconds.
    pub last_used_interval_secs: u64,
    /// Most keys one user or service account may have.
    pub max_per_owner: u64,
}

impl Default for ApiKeysConfig {
    fn default() -> Self {
        let policy = keyport_core::api_key::ApiKeyPolicy::default();
        Self {
            default_lifetime_days: policy.default_lifetime.map_or(0, |lifetime| lifetime.as_secs() / 86_400),
            max_lifetime_days: policy.max_lifetime.as_secs() / 86_400,
            last_used_interval_secs: policy.last_used_interval.as_secs(),
            max_per_owner: policy.max_per_owner,
        }
    }
}

impl ApiKeysConfig {
    /// The policy these settings describe.
    pub fn policy(&self) -> keyport_core::api_key::ApiKeyPolicy {
        const DAY: Duration = Duration::from_secs(86_400);
        keyport_core::api_key::ApiKeyPolicy {
            default_lifetime: (self.default_lifetime_days > 0)
                .then(|| DAY.saturating_mul(u32::try_from(self.default_lifetime_days).unwrap_or(u32::MAX))),
            max_lifetime: DAY.saturating_mul(u32::try_from(self.max_lifetime_days.max(1)).unwrap_or(u32::MAX)),
            last_used_interval: Duration::from_secs(self.last_used_interval_secs),
            max_per_owner: self.max_per_owner,
        }
    }
}

/// The `[authorization]` section: the permissions there are and what each
/// role grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthorizationConfig {
    /// The apps' permissions (`resource:action`), besides the built-in
    /// `audit:read`, `sessions:revoke`, `users:impersonate`, `users:read`
    /// and `users:write`.
    pub permissions: Vec<String>,
    /// Role name to grants: permissions, `resource:*` or `*`. `user` and
    /// `admin` exist even if not listed (`admin` then grants `*`).
    pub roles: std::collections::BTreeMap<String, Vec<String>>,
    /// Longest an impersonation session (`AdminService.ImpersonateUser`)
    /// lasts, in seconds.
    pub impersonation_ttl_secs: u64,
    /// Whether admins may impersonate users whose roles grant a built-in
    /// administration permission (other admins).
    pub impersonate_admins: bool,
}

impl Default for AuthorizationConfig {
    fn default() -> Self {
        let roles = [("user".to_owned(), Vec::new()), ("admin".to_owned(), vec!["*".to_owned()])];
        Self {
            permissions: Vec::new(),
            roles: roles.into_iter().collect(),
            impersonation_ttl_secs: 3600,
            impersonate_admins: false,
        }
    }
}

impl AuthorizationConfig {
    /// The catalogue and roles these settings describe (run-time roles
    /// join them once read), or what is wrong.
    pub fn role_book(&self) -> Result<keyport_core::authorization::RoleBook, String> {
        keyport_core::authorization::RoleBook::new(self.permissions.clone(), self.roles.clone())
            .map_err(|problem| format!("authorization: {problem}"))
    }
}

/// Sign-up rules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignUpConfig {
    /// Password accounts sign in only once their address is verified, and
    /// `SignUp` answers the same for new and taken addresses (the owner of
    /// a taken one gets a mail). Needs `[mail]`.
    pub require_email_verification: bool,
    /// An email sign-in (`StartEmailSignIn`) for an address without an
    /// account creates one, passwordless and verified.
    pub by_email: bool,
}

/// The audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Days an audit event is kept; older ones are deleted by the hourly
    /// sweep. 0 keeps them forever.
    pub retention_days: u64,
}

impl Default for AuditConfig {
    fn default() -> Self {
        let retention = AccountsConfig::default().audit_retention;
        Self { retention_days: retention.as_secs() / 86_400 }
    }
}

/// Social sign-in settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OAuthSettings {
    /// Exact redirect URIs (your web apps' callback URLs) flows may use.
    pub redirect_uris: Vec<String>,
    /// Link a provider identity to an existing user with the same email when
    /// the provider and Keyport both consider that email verified.
    pub link_verified_emails: bool,
    /// Seconds a started flow may be finished.
    pub flow_lifetime_secs: u64,
    /// The providers (`[[oauth.providers]]`).
    pub providers: Vec<ProviderSettings>,
}

impl Default for OAuthSettings {
    fn default() -> Self {
        let defaults = OAuthConfig::default();
        Self {
            redirect_uris: defaults.redirect_uris,
            link_verified_emails: defaults.link_verified_emails,
            flow_lifetime_secs: defaults.flow_lifetime.as_secs(),
            providers: Vec::new(),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, coloured when on a terminal.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// Connection pool settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// Pooled connections at most; 0 picks a default per backend (SQLite 4, PostgreSQL 16).
    pub max_connections: u32,
    /// Milliseconds to wait for a connection before failing the call.
    pub acquire_timeout_ms: u64,
    /// Milliseconds between database health checks (drives gRPC health).
    pub health_check_interval_ms: u64,
    /// Seconds between sweeps of expired rows (sessions, flows, tokens,
    /// audit events past retention); each replica sweeps, once at start too.
    pub sweep_interval_secs: u64,
}

/// Transport limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Longest a call may run, in milliseconds, before it fails with `CANCELLED`.
    pub request_timeout_ms: u64,
    /// Largest request message accepted, in bytes.
    pub max_message_bytes: usize,
    /// Calls served at once per connection; more wait.
    pub max_concurrent_requests_per_connection: usize,
    /// HTTP/2 streams a client may open at once on one connection.
    pub max_concurrent_streams: u32,
    /// Milliseconds that in-flight calls get to finish after SIGTERM or Ctrl-C.
    pub shutdown_grace_ms: u64,
    /// Peers whose `x-keyport-client-ip` and `x-keyport-user-agent` metadata
    /// is believed (e.g. your web apps' middleware). Others' own address counts.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Browser origins (e.g. `https://app.example.com`) allowed to call the
    /// gRPC-web endpoint cross-origin. Empty: no CORS headers at all.
    pub cors_allowed_origins: Vec<String>,
    /// PEM certificate chain for TLS; with `tls_key_file`, Keyport speaks
    /// only TLS. Empty: plaintext (terminate TLS in front instead).
    pub tls_cert_file: PathBuf,
    /// PEM private key of `tls_cert_file`.
    pub tls_key_file: PathBuf,
    /// PEM CA certificates: when set, clients must present a certificate
    /// signed by one of them (mutual TLS).
    pub tls_client_ca_file: PathBuf,
    /// Connections open at once; further clients wait in the listen backlog
    /// until one closes. Keep it below the process's file descriptor limit.
    pub max_connections: usize,
    /// Milliseconds a new connection may take to send its first bytes before
    /// it is closed. 0: no limit.
    pub handshake_timeout_ms: u64,
    /// Milliseconds a connection may send nothing before it is closed.
    /// HTTP/2 clients answer keepalive pings, so only dead or half-open
    /// connections go quiet this long. 0: no limit.
    pub idle_timeout_ms: u64,
    /// Milliseconds between HTTP/2 keepalive pings on a connection. Keep it
    /// well below `idle_timeout_ms`. 0: no pings.
    pub http2_keepalive_interval_ms: u64,
    /// Milliseconds to wait for a ping's acknowledgement before closing.
    pub http2_keepalive_timeout_ms: u64,
    /// Milliseconds a connection is quiet before the kernel starts TCP
    /// keepalive probes. 0: no TCP keepalive.
    pub tcp_keepalive_ms: u64,
}

/// Session lifetimes, in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// An unused session expires after this long.
    pub expires_in_secs: u64,
    /// Use extends a session at most once per this interval.
    pub update_age_secs: u64,
    /// No session outlives this, however it is used.
    pub absolute_lifetime_secs: u64,
    /// How long middleware subscribed to session events may reuse a
    /// validated session (`GetSessionResponse.cache_ttl`).
    pub cache_ttl_secs: u64,
    /// How long Keyport itself reuses a session it read from the database,
    /// in milliseconds; revocations drop entries at once. 0 turns it off.
    pub server_cache_ttl_ms: u64,
}

/// Password rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasswordsConfig {
    /// Fewest characters a new password may have.
    pub min_length: usize,
    /// Most characters a password may have.
    pub max_length: usize,
    /// Refuse the 100,000 most common passwords (compared without case).
    pub refuse_common: bool,
}

/// Argon2id cost and the hashing pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HashingConfig {
    /// Memory cost in KiB (OWASP: 19456).
    pub memory_kib: u32,
    /// Time cost: passes over memory (OWASP: 2).
    pub iterations: u32,
    /// Lanes (OWASP: 1).
    pub parallelism: u32,
    /// Hashes computed at once; 0 means one per core.
    pub workers: usize,
    /// Callers that may wait for a worker; 0 means 64 per worker. More fail
    /// at once with `RESOURCE_EXHAUSTED`.
    pub max_queue: usize,
    /// Milliseconds a caller waits for a worker before `RESOURCE_EXHAUSTED`.
    pub max_wait_ms: u64,
}

/// Failed sign-in throttling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignInLimitsConfig {
    /// Failed attempts an account may have before delays start.
    pub per_account: u32,
    /// Failed attempts a client IP may have before delays start.
    pub per_ip: u32,
    /// Longest delay, and idle time after which failures are forgotten, in seconds.
    pub window_secs: u64,
}

/// Budgets of the public RPCs (`SignUp`, `SignIn`, `StartOAuth`,
/// `FinishOAuth`) per client address, each RPC its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RequestLimitsConfig {
    /// Requests an address may make at once; 0 turns the budgets off.
    pub burst: u32,
    /// Requests per minute an address may keep making after its burst.
    pub per_minute: u32,
}

impl Default for RequestLimitsConfig {
    fn default() -> Self {
        let limits = RequestLimits::default();
        Self { burst: limits.burst, per_minute: limits.per_minute }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: PathBuf::from("keyport-data"),
            database_url: String::new(),
            log_format: LogFormat::Pretty,
            database: DatabaseConfig::default(),
            server: ServerConfig::default(),
            sessions: SessionsConfig::default(),
            passwords: PasswordsConfig::default(),
            hashing: HashingConfig::default(),
            sign_in_limits: SignInLimitsConfig::default(),
            request_limits: RequestLimitsConfig::default(),
            oauth: OAuthSettings::default(),
            audit: AuditConfig::default(),
            mail: MailConfig::default(),
            sign_up: SignUpConfig::default(),
            second_factors: SecondFactorsConfig::default(),
            passkeys: PasskeysConfig::default(),
            authorization: AuthorizationConfig::default(),
            api_keys: ApiKeysConfig::default(),
            organizations: OrganizationsConfig::default(),
            access_tokens: AccessTokensConfig::default(),
            metrics: MetricsConfig::default(),
            tracing: TracingConfig::default(),
        }
    }
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            max_connections: 0,
            acquire_timeout_ms: 3_000,
            health_check_interval_ms: 1_000,
            sweep_interval_secs: 3_600,
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            request_timeout_ms: 10_000,
            max_message_bytes: 64 * 1024,
            max_concurrent_requests_per_connection: 256,
            max_concurrent_streams: 256,
            shutdown_grace_ms: 10_000,
            trusted_proxies: vec![[127, 0, 0, 1].into(), std::net::Ipv6Addr::LOCALHOST.into()],
            cors_allowed_origins: Vec::new(),
            tls_cert_file: PathBuf::new(),
            tls_key_file: PathBuf::new(),
            tls_client_ca_file: PathBuf::new(),
            max_connections: 4096,
            handshake_timeout_ms: 10_000,
            idle_timeout_ms: 60_000,
            http2_keepalive_interval_ms: 20_000,
            http2_keepalive_timeout_ms: 10_000,
            tcp_keepalive_ms: 60_000,
        }
    }
}

impl ServerConfig {
    /// `ms` milliseconds, or `None` for 0 (turned off).
    pub fn millis(ms: u64) -> Option<Duration> {
        (ms > 0).then(|| Duration::from_millis(ms))
    }
}

impl Default for SessionsConfig {
    fn default() -> Self {
        let policy = SessionPolicy::default();
        Self {
            expires_in_secs: policy.expires_in.as_secs(),
            update_age_secs: policy.update_age.as_secs(),
            absolute_lifetime_secs: policy.absolute_lifetime.as_secs(),
            cache_ttl_secs: AccountsConfig::default().session_cache_ttl.as_secs(),
            server_cache_ttl_ms: u64::try_from(AccountsConfig::default().validated_cache_ttl.as_millis()).unwrap_or(0),
        }
    }
}

impl Default for PasswordsConfig {
    fn default() -> Self {
        let policy = PasswordPolicy::default();
        Self { min_length: policy.min_length, max_length: policy.max_length, refuse_common: policy.refuse_common }
    }
}

impl Default for HashingConfig {
    fn default() -> Self {
        let params = HashParams::default();
        Self {
            memory_kib: params.memory_kib,
            iterations: params.iterations,
            parallelism: params.parallelism,
            workers: 0,
            max_queue: 0,
            max_wait_ms: 2_000,
        }
    }
}

impl Default for SignInLimitsConfig {
    fn default() -> Self {
        let limits = SignInLimits::default();
        Self { per_account: limits.per_account, per_ip: limits.per_ip, window_secs: limits.window.as_secs() }
    }
}

/// Top-level keys, so that unrelated `KEYPORT_*` variables (say,
/// `KEYPORT_CONFIG`) are not mistaken for settings.
const KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "database_url",
    "log_format",
    "database",
    "server",
    "sessions",
    "passwords",
    "hashing",
    "sign_in_limits",
    "request_limits",
    "oauth",
    "audit",
    "mail",
    "sign_up",
    "second_factors",
    "passkeys",
    "authorization",
    "api_keys",
    "organizations",
    "access_tokens",
    "metrics",
    "tracing",
];

impl Config {
    /// Layers the sources: defaults < `file` < environment < `overrides`.
    ///
    /// Environment variables are `KEYPORT_<KEY>`, with `__` between a
    /// section and its key: `KEYPORT_LISTEN`, `KEYPORT_SERVER__REQUEST_TIMEOUT_MS`.
    pub fn load(file: Option<&std::path::Path>, overrides: &Overrides) -> Result<Self, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(file) = file {
            figment = figment.merge(Toml::file_exact(file));
        }
        let env = Env::prefixed("KEYPORT_").split("__").filter(|key| {
            // The key may arrive before or after `__` becomes `.`, in any case.
            let top = key.as_str().split("__").next().and_then(|k| k.split('.').next()).unwrap_or_default();
            KEYS.iter().any(|known| known.eq_ignore_ascii_case(top))
        });
        figment.merge(env).merge(Serialized::defaults(overrides)).extract().map_err(Box::new)
    }

    /// The database URL in effect: the configured one, or SQLite in `data_dir`.
    pub fn effective_database_url(&self) -> String {
        if self.database_url.is_empty() {
            format!("sqlite://{}?mode=rwc", self.data_dir.join("keyport.db").display())
        } else {
            self.database_url.clone()
        }
    }

    /// The SQLite database file, `None` on PostgreSQL or in memory.
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        let url = self.effective_database_url();
        let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:"))?;
        let file = path.split('?').next().unwrap_or_default();
        (!file.is_empty() && !file.starts_with(":memory:")).then(|| PathBuf::from(file))
    }

    /// The identity rules these settings describe.
    pub fn accounts(&self) -> AccountsConfig {
        let workers = match self.hashing.workers {
            0 => HashingLimits::default().workers,
            n => n,
        };
        AccountsConfig {
            sessions: SessionPolicy {
                expires_in: Duration::from_secs(self.sessions.expires_in_secs),
                update_age: Duration::from_secs(self.sessions.update_age_secs),
                absolute_lifetime: Duration::from_secs(self.sessions.absolute_lifetime_secs),
            },
            passwords: PasswordPolicy {
                min_length: self.passwords.min_length,
                max_length: self.passwords.max_length,
                refuse_common: self.passwords.refuse_common,
            },
            hashing: HashParams {
                memory_kib: self.hashing.memory_kib,
                iterations: self.hashing.iterations,
                parallelism: self.hashing.parallelism,
            },
            hashing_limits: HashingLimits {
                workers,
                max_queue: if self.hashing.max_queue == 0 { 64 * workers } else { self.hashing.max_queue },
                max_wait: Duration::from_millis(self.hashing.max_wait_ms),
            },
            sign_in_limits: SignInLimits {
                per_account: self.sign_in_limits.per_account,
                per_ip: self.sign_in_limits.per_ip,
                window: Duration::from_secs(self.sign_in_limits.window_secs),
            },
            request_limits: RequestLimits {
                burst: self.request_limits.burst,
                per_minute: self.request_limits.per_minute,
            },
            session_cache_ttl: Duration::from_secs(self.sessions.cache_ttl_secs),
            validated_cache_ttl: Duration::from_millis(self.sessions.server_cache_ttl_ms),
            require_email_verification: self.sign_up.require_email_verification,
            sign_up_by_email: self.sign_up.by_email,
            second_factors: self.second_factors.rules(),
            // Checked and set by `Keyport::open`, which reports a bad one.
            roles: std::sync::Arc::default(),
            impersonation: keyport_core::accounts::ImpersonationPolicy {
                // A minute at least: a shorter session could not be used.
                ttl: Duration::from_secs(self.authorization.impersonation_ttl_secs.max(60)),
                admins: self.authorization.impersonate_admins,
            },
            api_keys: self.api_keys.policy(),
            // Checked by `Keyport::open`, which reports bad roles.
            organizations: self.organizations.policy(&self.authorization.permissions).unwrap_or_default(),
            // Checked by `Keyport::open` too.
            access_tokens: self.access_tokens.policy().unwrap_or_default(),
            audit_retention: match self.audit.retention_days {
                0 => Duration::MAX,
                days => Duration::from_secs(days.saturating_mul(86_400)),
            },
            oauth: OAuthConfig {
                redirect_uris: self.oauth.redirect_uris.clone(),
                link_verified_emails: self.oauth.link_verified_emails,
                flow_lifetime: Duration::from_secs(self.oauth.flow_lifetime_secs),
            },
        }
    }
}

/// Settings given as command-line flags; unset ones leave the layers below alone.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    /// `--listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// `--data-dir`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// `--database-url`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    /// `--log-format`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's own signature
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../../keyport.example.toml");

    #[test]
    fn every_top_level_key_is_read_from_the_environment() {
        let defaults = toml::Table::try_from(Config::default()).unwrap();
        for key in defaults.keys() {
            assert!(
                KEYS.contains(&key.as_str()),
                "KEYS lacks `{key}`: KEYPORT_{}__* would be ignored",
                key.to_uppercase()
            );
        }
    }

    #[test]
    fn example_file_lists_every_key_with_its_default() {
        let parsed: Config = toml::from_str(EXAMPLE).expect("example config parses with deny_unknown_fields");
        assert_eq!(parsed, Config::default());
        // Every key of the struct appears in the example (not merely defaulted).
        let example: toml::Table = toml::from_str(EXAMPLE).unwrap();
        let full = toml::Table::try_from(Config::default()).unwrap();
        for (key, value) in &full {
            let present = example.get(key).unwrap_or_else(|| panic!("example lacks `{key}`"));
            if let (Some(section), Some(example_section)) = (value.as_table(), present.as_table()) {
                for sub in section.keys() {
                    assert!(example_section.contains_key(sub), "example lacks `{key}.{sub}`");
                }
            }
        }
    }

    #[test]
    fn flags_beat_environment_beats_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "k.toml",
                "listen = \"127.0.0.1:1000\"\ndata_dir = \"from-file\"\n[hashing]\nmemory_kib = 1024\n",
            )?;
            jail.set_env("KEYPORT_DATA_DIR", "from-env");
            jail.set_env("KEYPORT_HASHING__ITERATIONS", "3");
            jail.set_env("KEYPORT_PG_BIN", "/unrelated");
            let overrides = Overrides { listen: Some("127.0.0.1:2000".parse().unwrap()), ..Overrides::default() };
            let config = Config::load(Some(std::path::Path::new("k.toml")), &overrides).unwrap();
            assert_eq!(config.listen.port(), 2000);
            assert_eq!(config.data_dir, PathBuf::from("from-env"));
            assert_eq!(config.hashing.memory_kib, 1024);
            assert_eq!(config.hashing.iterations, 3);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_in_the_file_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("k.toml", "listn = \"127.0.0.1:1000\"\n")?;
            let error = Config::load(Some(std::path::Path::new("k.toml")), &Overrides::default()).unwrap_err();
            assert!(error.to_string().contains("listn"), "{error}");
            Ok(())
        });
    }

    #[test]
    fn default_database_is_sqlite_in_the_data_dir() {
        let config = Config::default();
        assert_eq!(config.effective_database_url(), "sqlite://keyport-data/keyport.db?mode=rwc");
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's own signature
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// A setting: its section (empty at the top level), its key, and its
    /// default, whose TOML type is the type the key wants.
    #[derive(Debug, Clone)]
    struct Setting {
        section: String,
        key: String,
        default: toml::Value,
    }

    impl Setting {
        /// The dotted path, as an error names it.
        fn path(&self) -> String {
            if self.section.is_empty() { self.key.clone() } else { format!("{}.{}", self.section, self.key) }
        }

        /// The environment variable that sets it.
        fn env_var(&self) -> String {
            format!("KEYPORT_{}", self.path().replace('.', "__").to_uppercase())
        }

        /// A file that sets it to `value` (TOML).
        fn file(&self, value: &str) -> String {
            match self.section.as_str() {
                "" => format!("{} = {value}\n", self.key),
                section => format!("[{section}]\n{} = {value}\n", self.key),
            }
        }
    }

    /// Every top-level key and every key of a section, read off the
    /// defaults so that a new key is covered without editing this list.
    fn settings() -> Vec<Setting> {
        let Ok(defaults) = toml::Table::try_from(Config::default()) else { return Vec::new() };
        let mut settings = Vec::new();
        for (key, default) in defaults {
            match default {
                toml::Value::Table(section) => settings.extend(section.into_iter().map(|(sub, default)| Setting {
                    section: key.clone(),
                    key: sub,
                    default,
                })),
                default => settings.push(Setting { section: String::new(), key, default }),
            }
        }
        settings
    }

    /// The sections (the top-level keys that are tables) and their keys.
    fn sections() -> Vec<(String, Vec<String>)> {
        let mut sections: Vec<(String, Vec<String>)> = Vec::new();
        for setting in settings().into_iter().filter(|setting| !setting.section.is_empty()) {
            match sections.last_mut() {
                Some((section, keys)) if *section == setting.section => keys.push(setting.key),
                _ => sections.push((setting.section, vec![setting.key])),
            }
        }
        sections
    }

    /// TOML values of another type than `default`'s, none of which serde
    /// or figment turns into that type. (No array for a table: serde reads
    /// a struct from a sequence too.)
    fn wrong_value(default: &toml::Value) -> BoxedStrategy<String> {
        let string = "\"[a-z]{1,8}\"".boxed();
        let integer = "[1-9][0-9]{0,8}".boxed();
        let array = prop_oneof![Just("[]".to_owned()), Just("[1, 2]".to_owned()), Just("[\"a\"]".to_owned())].boxed();
        let boolean = prop_oneof![Just("true".to_owned()), Just("false".to_owned())].boxed();
        let table = Just("{ a = 1 }".to_owned()).boxed();
        match default {
            toml::Value::Integer(_) => prop_oneof![string, boolean, array, table, Just("1.5".to_owned())].boxed(),
            toml::Value::Float(_) => prop_oneof![string, boolean, array, table].boxed(),
            toml::Value::Boolean(_) => prop_oneof![string, integer, array, table].boxed(),
            toml::Value::String(_) => prop_oneof![integer, boolean, array, table].boxed(),
            toml::Value::Array(_) => prop_oneof![string, integer, boolean, table].boxed(),
            toml::Value::Table(_) | toml::Value::Datetime(_) => prop_oneof![string, integer, boolean].boxed(),
        }
    }

    /// What `keyport serve` would load from `file` (if any) and `env`, in a
    /// jail (a scratch directory and environment): the configuration, or
    /// the error as a user reads it.
    fn load(file: Option<&str>, env: &[(String, String)]) -> Result<Result<Config, String>, TestCaseError> {
        let mut outcome = None;
        figment::Jail::try_with(|jail| {
            let path = match file {
                Some(text) => {
                    jail.create_file("keyport.toml", text)?;
                    Some(std::path::Path::new("keyport.toml"))
                }
                None => None,
            };
            for (key, value) in env {
                jail.set_env(key, value);
            }
            outcome = Some(Config::load(path, &Overrides::default()).map_err(|error| error.to_string()));
            Ok(())
        })
        .map_err(|error| TestCaseError::fail(format!("jail: {error}")))?;
        outcome.ok_or_else(|| TestCaseError::fail("the jail did not run"))
    }

    /// Whether `message` says which key is wrong, as figment names it: the
    /// file's `default.<path>` or the environment's `<PATH>`, possibly
    /// followed by what inside the value is wrong (an enum's variant).
    fn names_key(message: &str, path: &str) -> bool {
        let message = message.to_lowercase();
        [format!("for key \"default.{path}"), format!("for key \"{path}")].iter().any(|named| {
            message
                .match_indices(named.as_str())
                .any(|(at, _)| matches!(message[at + named.len()..].chars().next(), Some('"' | '.')))
        })
    }

    /// Names of keys and sections, known ones and others, plain and dotted.
    fn toml_key() -> impl Strategy<Value = String> {
        let known: Vec<String> = settings()
            .iter()
            .flat_map(|setting| [setting.section.clone(), setting.key.clone(), setting.path()])
            .filter(|name| !name.is_empty())
            .collect();
        prop_oneof![4 => proptest::sample::select(known), 1 => "[a-z_]{1,12}", 1 => "\\PC{0,8}"]
    }

    /// Values of every TOML kind, well-formed or nearly.
    fn toml_value() -> impl Strategy<Value = String> {
        prop_oneof![
            "-?[0-9]{1,25}",
            "[0-9]{1,5}\\.[0-9]{0,3}",
            Just("true".to_owned()),
            "\"[^\"\\\\\n]{0,16}\"",
            "'[^'\n]{0,16}'",
            "\\[[0-9a-z\", \\[\\]]{0,16}\\]?",
            "\\{[a-z0-9 =\",]{0,16}\\}?",
            "[0-9]{4}-[0-9]{2}-[0-9]{2}(T[0-9]{2}:[0-9]{2}:[0-9]{2}Z)?",
            "[0-9.:\\[\\]a-f]{0,24}",
            "\\PC{0,12}",
        ]
    }

    /// A value of `default`'s type: any integer a `u8` holds (the
    /// narrowest key, `tracing.sample_percent`), any boolean; strings, arrays
    /// and tables keep their default (their own rules are not this test's).
    fn right_value(default: &toml::Value) -> BoxedStrategy<toml::Value> {
        match default {
            toml::Value::Integer(_) => (0..=i64::from(u8::MAX)).prop_map(toml::Value::Integer).boxed(),
            toml::Value::Boolean(_) => any::<bool>().prop_map(toml::Value::Boolean).boxed(),
            other => Just(other.clone()).boxed(),
        }
    }

    /// A well-formed file setting some keys to values of their type, and
    /// those keys with their values.
    fn well_formed_file() -> impl Strategy<Value = (String, Vec<(Setting, toml::Value)>)> {
        proptest::sample::subsequence(settings(), 0..=12)
            .prop_flat_map(|chosen| {
                let values: Vec<_> = chosen.iter().map(|setting| right_value(&setting.default)).collect();
                (Just(chosen), values)
            })
            .prop_map(|(chosen, values)| {
                let set: Vec<(Setting, toml::Value)> = chosen.into_iter().zip(values).collect();
                let mut file = toml::Table::new();
                for (setting, value) in &set {
                    let table = match setting.section.as_str() {
                        "" => &mut file,
                        section => {
                            match file.entry(section).or_insert_with(|| toml::Value::Table(toml::Table::new())) {
                                toml::Value::Table(table) => table,
                                _ => continue,
                            }
                        }
                    };
                    table.insert(setting.key.clone(), value.clone());
                }
                (toml::to_string(&file).unwrap_or_default(), set)
            })
    }

    /// A TOML-ish file: section headers, arrays of tables, assignments and
    /// junk, one a line.
    fn toml_text() -> impl Strategy<Value = String> {
        let line = prop_oneof![
            2 => toml_key().prop_map(|name| format!("[{name}]")),
            1 => toml_key().prop_map(|name| format!("[[{name}]]")),
            6 => (toml_key(), toml_value()).prop_map(|(name, value)| format!("{name} = {value}")),
            1 => "\\PC{0,24}",
        ];
        proptest::collection::vec(line, 0..12).prop_map(|lines| lines.join("\n"))
    }

    /// `KEYPORT_*` variables: known settings in any case, unknown ones,
    /// odd separators; values of every kind, control characters included.
    /// (No NUL: no environment holds one.)
    fn env_vars() -> impl Strategy<Value = Vec<(String, String)>> {
        let known: Vec<String> = settings().iter().map(Setting::env_var).collect();
        let name = prop_oneof![
            4 => proptest::sample::select(known.clone()),
            2 => proptest::sample::select(known).prop_map(|name| name.to_lowercase().replacen("keyport_", "KEYPORT_", 1)),
            2 => "[A-Za-z0-9_.]{0,16}(__[A-Za-z0-9_.]{0,12}){0,3}".prop_map(|rest| format!("KEYPORT_{rest}")),
        ];
        let value = prop_oneof![toml_value(), "\\PC{0,24}"].prop_map(|value| value.replace('\0', ""));
        proptest::collection::vec((name, value), 0..6)
    }

    proptest! {
        /// Whatever the file holds, loading it is a configuration or an
        /// error, never a panic.
        #[test]
        fn any_file_loads_or_is_an_error(text in toml_text()) {
            let _ = load(Some(&text), &[])?;
        }

        /// A file of values of the right types loads, each key as written
        /// and the others at their defaults; and what loads can be written
        /// back as a file that loads the same.
        #[test]
        fn a_well_formed_file_loads_as_written((text, set) in well_formed_file()) {
            let config = load(Some(&text), &[])?.map_err(TestCaseError::fail)?;
            let loaded = toml::Table::try_from(&config).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let mut expected = toml::Table::try_from(Config::default()).map_err(|e| TestCaseError::fail(e.to_string()))?;
            for (setting, value) in set {
                match setting.section.as_str() {
                    "" => expected.insert(setting.key, value),
                    section => expected.get_mut(section).and_then(toml::Value::as_table_mut).and_then(|table| table.insert(setting.key, value)),
                };
            }
            prop_assert_eq!(&loaded, &expected, "{}", text);
            let written = toml::to_string(&config).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(load(Some(&written), &[])?, Ok(config), "{}", written);
        }

        /// Whatever `KEYPORT_*` variables are set, loading is a
        /// configuration or an error, never a panic.
        #[test]
        fn any_environment_loads_or_is_an_error(env in env_vars()) {
            let _ = load(None, &env)?;
        }

        /// A value of the wrong type for a known key, in the file or in the
        /// environment, is an error that names that key.
        #[test]
        fn a_wrong_type_is_an_error_naming_the_key(
            (setting, value, from_env) in proptest::sample::select(settings())
                .prop_flat_map(|setting| {
                    let value = wrong_value(&setting.default);
                    (Just(setting), value, any::<bool>())
                })
        ) {
            let loaded = match from_env {
                true => load(None, &[(setting.env_var(), value.clone())])?,
                false => load(Some(&setting.file(&value)), &[])?,
            };
            match loaded {
                Ok(_) => prop_assert!(false, "{} = {value} was accepted", setting.path()),
                Err(message) => prop_assert!(names_key(&message, &setting.path()), "{message}"),
            }
        }

        /// An unknown key, at the top of the file or in any section of it,
        /// or after a section's `__` in the environment, is an error that
        /// names it. (No `__` inside the name: that would nest it, and
        /// figment skips a variable with an empty part, as `KEYPORT_SERVER__A__`.)
        #[test]
        fn unknown_keys_are_errors_naming_them(
            (section, known) in proptest::sample::select(sections()),
            name in "[a-z]([a-z0-9]|_[a-z0-9]){0,12}_?",
            place in 0..3u8,
        ) {
            prop_assume!(!known.contains(&name) && !KEYS.contains(&name.as_str()));
            let loaded = match place {
                0 => load(Some(&format!("{name} = 1\n")), &[])?,
                1 => load(Some(&format!("[{section}]\n{name} = 1\n")), &[])?,
                _ => load(None, &[(format!("KEYPORT_{}__{}", section.to_uppercase(), name.to_uppercase()), "1".into())])?,
            };
            match loaded {
                Ok(_) => prop_assert!(false, "`{name}` was accepted"),
                Err(message) => prop_assert!(message.contains(&format!("unknown field: found `{name}`")), "{message}"),
            }
        }

        /// A `KEYPORT_*` variable whose first part is no top-level key (say
        /// `KEYPORT_CONFIG`) is not a setting: it changes nothing.
        #[test]
        fn unrelated_environment_variables_are_ignored(name in "[A-Z][A-Z0-9_]{0,15}", value in "\\PC{0,24}") {
            let top = name.split("__").next().unwrap_or_default();
            prop_assume!(!KEYS.iter().any(|key| key.eq_ignore_ascii_case(top)));
            let baseline = load(None, &[])?;
            prop_assert!(baseline.is_ok(), "{baseline:?}");
            prop_assert_eq!(load(None, &[(format!("KEYPORT_{name}"), value)])?, baseline);
        }
    }
}
