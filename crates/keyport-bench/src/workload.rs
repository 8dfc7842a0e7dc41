//! The requests the benchmark sends: connections, signed-up users, and one
//! [`Call`] per measured RPC (health `Check`, `GetSession`, `SignIn`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use keyport_proto::v1::session_service_client::SessionServiceClient;
use keyport_proto::v1::user_service_client::UserServiceClient;
use keyport_proto::v1::{GetSessionRequest, SignInRequest, SignUpRequest};
use tokio::task::JoinSet;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

use crate::BoxError;
use crate::load::Call;

/// Client-side limit on any one request, so that no caller can hang a step.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Concurrent sign-ups while creating the users (each costs one password hash).
pub(crate) const SIGN_UP_CONCURRENCY: usize = 4;
/// Attempts per sign-up when the server answers `RESOURCE_EXHAUSTED`.
const SIGN_UP_ATTEMPTS: u32 = 100;
/// Pause before retrying a sign-up the server turned away.
const SIGN_UP_BACKOFF: Duration = Duration::from_millis(20);

/// A signed-up user: credentials for `SignIn` and the session token `SignUp` returned.
#[derive(Clone, Debug)]
pub(crate) struct BenchUser {
    /// The user's email address.
    pub(crate) email: String,
    /// The user's password.
    pub(crate) password: String,
    /// The session token handed out by `SignUp`.
    pub(crate) token: String,
}

/// Opens `count` HTTP/2 connections to the server at `addr`, one per tonic `Channel`.
pub(crate) async fn connect(addr: SocketAddr, count: usize) -> Result<Vec<Channel>, BoxError> {
    let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(2))
        .timeout(REQUEST_TIMEOUT);
    let mut channels = Vec::with_capacity(count);
    for _ in 0..count {
        channels.push(endpoint.connect().await?);
    }
    Ok(channels)
}

/// Signs up `count` users (`bench-user-N@example.com`), retrying sign-ups that
/// the hashing pool turns away with `RESOURCE_EXHAUSTED`.
pub(crate) async fn sign_up_users(channels: &[Channel], count: usize) -> Result<Vec<BenchUser>, BoxError> {
    let mut tasks = JoinSet::new();
    for worker in 0..SIGN_UP_CONCURRENCY.min(count) {
        let client = UserServiceClient::new(channel_for(channels, worker)?);
        let indices: Vec<usize> = (worker..count).step_by(SIGN_UP_CONCURRENCY).collect();
        tasks.spawn(async move {
            let mut client = client;
            let mut users = Vec::with_capacity(indices.len());
            for index in indices {
                users.push((index, sign_up(&mut client, index).await?));
            }
            Ok::<_, BoxError>(users)
        });
    }
    let mut users = Vec::with_capacity(count);
    while let Some(joined) = tasks.join_next().await {
        users.extend(joined??);
    }
    users.sort_by_key(|(index, _)| *index);
    Ok(users.into_iter().map(|(_, user)| user).collect())
}

/// Signs up user number `index`.
async fn sign_up(client: &mut UserServiceClient<Channel>, index: usize) -> Result<BenchUser, BoxError> {
    let email = format!("bench-user-{index}@example.com");
    let password = format!("bench-password-{index}");
    for _ in 0..SIGN_UP_ATTEMPTS {
        let request = SignUpRequest { email: email.clone(), password: password.clone(), name: String::new() };
        match client.sign_up(request).await {
            Ok(response) => {
                let grant = response.into_inner().session.ok_or("SignUp answered without a session")?;
                return Ok(BenchUser { email, password, token: grant.token });
            }
            Err(status) if status.code() == Code::ResourceExhausted => tokio::time::sleep(SIGN_UP_BACKOFF).await,
            Err(status) => return Err(format!("SignUp of {email} failed: {status}").into()),
        }
    }
    Err(format!("SignUp of {email}: still RESOURCE_EXHAUSTED after {SIGN_UP_ATTEMPTS} attempts").into())
}

/// The channel of caller `index`: callers take the connections round-robin.
pub(crate) fn channel_for(channels: &[Channel], index: usize) -> Result<Channel, BoxError> {
    if channels.is_empty() {
        return Err("no connections to the server".into());
    }
    Ok(channels[index % channels.len()].clone())
}

/// Calls the health `Check` RPC: a handler that does nothing, the baseline.
pub(crate) struct HealthCheck {
    client: HealthClient<Channel>,
}

impl Call for HealthCheck {
    async fn call(&mut self) -> Result<(), Code> {
        let request = HealthCheckRequest { service: String::new() };
        self.client.check(request).await.map(drop).map_err(|status| status.code())
    }
}

/// `count` health callers spread over `channels`.
pub(crate) fn health_callers(channels: &[Channel], count: usize) -> Result<Vec<HealthCheck>, BoxError> {
    (0..count).map(|index| Ok(HealthCheck { client: HealthClient::new(channel_for(channels, index)?) })).collect()
}

/// Calls `GetSession`, cycling over the users' session tokens.
pub(crate) struct GetSession {
    client: SessionServiceClient<Channel>,
    tokens: Arc<[String]>,
    next: usize,
}

impl Call for GetSession {
    async fn call(&mut self) -> Result<(), Code> {
        let token = self.tokens[self.next % self.tokens.len()].clone();
        self.next = self.next.wrapping_add(1);
        self.client.get_session(GetSessionRequest { token }).await.map(drop).map_err(|status| status.code())
    }
}

/// `count` `GetSession` callers spread over `channels`, each starting at another token.
pub(crate) fn get_session_callers(
    channels: &[Channel],
    count: usize,
    tokens: &Arc<[String]>,
) -> Result<Vec<GetSession>, BoxError> {
    if tokens.is_empty() {
        return Err("no session tokens to validate".into());
    }
    (0..count)
        .map(|index| {
            let client = SessionServiceClient::new(channel_for(channels, index)?);
            Ok(GetSession { client, tokens: Arc::clone(tokens), next: index })
        })
        .collect()
}

/// Calls `SignIn` with correct passwords, cycling over the users.
pub(crate) struct SignIn {
    client: SessionServiceClient<Channel>,
    users: Arc<[BenchUser]>,
    next: usize,
}

impl Call for SignIn {
    async fn call(&mut self) -> Result<(), Code> {
        let user = &self.users[self.next % self.users.len()];
        let request = SignInRequest { email: user.email.clone(), password: user.password.clone() };
        self.next = self.next.wrapping_add(1);
        self.client.sign_in(request).await.map(drop).map_err(|status| status.code())
    }
}

/// `count` `SignIn` callers spread over `channels`, each starting at another user.
pub(crate) fn sign_in_callers(
    channels: &[Channel],
    count: usize,
    users: &Arc<[BenchUser]>,
) -> Result<Vec<SignIn>, BoxError> {
    if users.is_empty() {
        return Err("no users to sign in".into());
    }
    (0..count)
        .map(|index| {
            let client = SessionServiceClient::new(channel_for(channels, index)?);
            Ok(SignIn { client, users: Arc::clone(users), next: index })
        })
        .collect()
}
