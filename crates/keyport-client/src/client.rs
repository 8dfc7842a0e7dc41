//! [`KeyportClient`]: typed calls to Keyport over one tonic channel.

use std::time::Duration;

use keyport_proto::v1::{self, session_service_client::SessionServiceClient, user_service_client::UserServiceClient};
use tonic::{
    Code, Request, Status, Streaming,
    metadata::MetadataValue,
    transport::{Channel, Endpoint},
};

use crate::{
    error::Error,
    principal::{Principal, SessionSummary, ValidatedSession, principal, summary},
};

/// The end user behind a call, forwarded to Keyport (which believes it only
/// from peers listed in its `trusted_proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The end user's IP address.
    pub ip_address: Option<String>,
    /// The end user's user agent.
    pub user_agent: Option<String>,
}

/// A successful sign-in or sign-up.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The session token: put it in a cookie or an `Authorization` header.
    pub token: String,
    /// Who signed in.
    pub principal: Principal,
}

/// Configures a [`KeyportClient`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    endpoint: String,
    connect_timeout: Duration,
    request_timeout: Duration,
    retries: u32,
    retry_backoff: Duration,
    #[cfg(feature = "tls")]
    tls: Option<tonic::transport::ClientTlsConfig>,
}

impl ClientBuilder {
    /// Deadline of each call (sent as `grpc-timeout`) [default: 2 s].
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long connecting may take [default: 2 s].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Extra attempts of idempotent calls after `UNAVAILABLE` [default: 2],
    /// starting `backoff` apart and doubling [default: 25 ms].
    pub fn retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.retry_backoff = backoff;
        self
    }

    /// TLS to Keyport: a custom CA and, for mTLS, a client identity, set on
    /// the given config. Needs the `tls` feature and an `https://` endpoint.
    #[cfg(feature = "tls")]
    pub fn tls(mut self, tls: tonic::transport::ClientTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Builds the client. It connects lazily, on the first call, and
    /// reconnects by itself.
    pub fn build(self) -> Result<KeyportClient, Error> {
        let invalid = |e: tonic::transport::Error| Error::from(Status::invalid_argument(format!("endpoint: {e}")));
        let endpoint = Endpoint::from_shared(self.endpoint.clone()).map_err(invalid)?;
        let endpoint = endpoint
            .connect_timeout(self.connect_timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(20))
            .keep_alive_while_idle(true);
        #[cfg(feature = "tls")]
        let endpoint = match self.tls.clone() {
            Some(tls) => endpoint.tls_config(tls).map_err(invalid)?,
            None => endpoint,
        };
        let channel = endpoint.connect_lazy();
        Ok(KeyportClient {
            sessions: SessionServiceClient::new(channel.clone()),
            users: UserServiceClient::new(channel),
            options: self,
        })
    }
}

/// A typed client of Keyport's gRPC API. Cheap to clone: clones share one
/// HTTP/2 connection.
#[derive(Debug, Clone)]
pub struct KeyportClient {
    sessions: SessionServiceClient<Channel>,
    users: UserServiceClient<Channel>,
    options: ClientBuilder,
}

impl KeyportClient {
    /// A builder for a client of the Keyport at `endpoint` (`http://host:port`).
    pub fn builder(endpoint: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            endpoint: endpoint.into(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
            retries: 2,
            retry_backoff: Duration::from_millis(25),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// The generated `SessionService` client, for calls this type does not wrap.
    pub fn session_service(&self) -> SessionServiceClient<Channel> {
        self.sessions.clone()
    }

    /// The generated `UserService` client, for calls this type does not wrap.
    pub fn user_service(&self) -> UserServiceClient<Channel> {
        self.users.clone()
    }

    /// Validates a session token. Retried on `UNAVAILABLE`.
    pub async fn get_session(&self, token: &str, client: &ClientInfo) -> Result<ValidatedSession, Error> {
        let response = self
            .idempotent(|| {
                let mut sessions = self.sessions.clone();
                let request = self.request(v1::GetSessionRequest { token: token.to_owned() }, None, client);
                async move { sessions.get_session(request).await }
            })
            .await?;
        let (Some(user), Some(session)) = (&response.user, &response.session) else {
            return Err(Status::internal("GetSession answered without a user or session").into());
        };
        Ok(ValidatedSession {
            principal: principal(user, session),
            refreshed: response.refreshed,
            cache_ttl: response.cache_ttl.and_then(|ttl| Duration::try_from(ttl).ok()).unwrap_or_default(),
        })
    }

    /// Signs in with email and password.
    pub async fn sign_in(&self, email: &str, password: &str, client: &ClientInfo) -> Result<SignedIn, Error> {
        let request =
            self.request(v1::SignInRequest { email: email.to_owned(), password: password.to_owned() }, None, client);
        let response = self.sessions.clone().sign_in(request).await?.into_inner();
        match response.outcome {
            Some(v1::sign_in_response::Outcome::Session(grant)) => signed_in(grant),
            None => Err(Status::unimplemented("sign-in needs a step this client does not support").into()),
        }
    }

    /// Creates an account and signs it in.
    pub async fn sign_up(
        &self,
        email: &str,
        password: &str,
        name: &str,
        client: &ClientInfo,
    ) -> Result<SignedIn, Error> {
        let request = self.request(
            v1::SignUpRequest { email: email.to_owned(), password: password.to_owned(), name: name.to_owned() },
            None,
            client,
        );
        let response = self.users.clone().sign_up(request).await?.into_inner();
        let grant = response.session.ok_or_else(|| Status::internal("SignUp answered without a session"))?;
        signed_in(grant)
    }

    /// Ends the session of `token`.
    pub async fn sign_out(&self, token: &str, client: &ClientInfo) -> Result<(), Error> {
        let request = self.request(v1::SignOutRequest {}, Some(token), client);
        self.sessions.clone().sign_out(request).await?;
        Ok(())
    }

    /// The sessions of the user behind `token`, newest first.
    pub async fn list_sessions(&self, token: &str, client: &ClientInfo) -> Result<Vec<SessionSummary>, Error> {
        let response = self
            .idempotent(|| {
                let mut sessions = self.sessions.clone();
                let request = self.request(v1::ListSessionsRequest {}, Some(token), client);
                async move { sessions.list_sessions(request).await }
            })
            .await?;
        Ok(response.sessions.iter().map(summary).collect())
    }

    /// Ends one session of the user behind `token`.
    pub async fn revoke_session(&self, token: &str, session_id: &str, client: &ClientInfo) -> Result<(), Error> {
        let request = self.request(v1::RevokeSessionRequest { session_id: session_id.to_owned() }, Some(token), client);
        self.sessions.clone().revoke_session(request).await?;
        Ok(())
    }

    /// Ends every other session of the user behind `token`; returns how many.
    pub async fn revoke_other_sessions(&self, token: &str, client: &ClientInfo) -> Result<u32, Error> {
        let request = self.request(v1::RevokeOtherSessionsRequest {}, Some(token), client);
        Ok(self.sessions.clone().revoke_other_sessions(request).await?.into_inner().revoked_sessions)
    }

    /// Opens the `WatchSessionEvents` stream (no deadline: it lives long).
    pub async fn watch_session_events(&self) -> Result<Streaming<v1::WatchSessionEventsResponse>, Error> {
        let request = Request::new(v1::WatchSessionEventsRequest {});
        Ok(self.sessions.clone().watch_session_events(request).await?.into_inner())
    }

    /// A request with the deadline, the bearer token and the end user's details.
    fn request<T>(&self, message: T, token: Option<&str>, client: &ClientInfo) -> Request<T> {
        let mut request = Request::new(message);
        request.set_timeout(self.options.request_timeout);
        let metadata = request.metadata_mut();
        let mut insert = |key: &'static str, value: &str| {
            if let Ok(value) = MetadataValue::try_from(value) {
                metadata.insert(key, value);
            }
        };
        if let Some(token) = token {
            insert("authorization", &format!("Bearer {token}"));
        }
        if let Some(ip) = &client.ip_address {
            insert("x-keyport-client-ip", ip);
        }
        if let Some(agent) = &client.user_agent {
            insert("x-keyport-user-agent", agent);
        }
        request
    }

    /// Runs an idempotent call, retrying with exponential backoff while
    /// Keyport is unavailable.
    async fn idempotent<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut backoff = self.options.retry_backoff;
        let mut attempt = 0;
        loop {
            match call().await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status) if status.code() == Code::Unavailable && attempt < self.options.retries => {
                    attempt += 1;
                    tracing::debug!(attempt, ?backoff, "keyport unavailable; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                Err(status) => return Err(status.into()),
            }
        }
    }
}

fn signed_in(grant: v1::SessionGrant) -> Result<SignedIn, Error> {
    let (Some(user), Some(session)) = (&grant.user, &grant.session) else {
        return Err(Status::internal("session grant without user or session").into());
    };
    Ok(SignedIn { principal: principal(user, session), token: grant.token })
}
