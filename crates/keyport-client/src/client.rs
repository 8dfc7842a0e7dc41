//! [`KeyportClient`]: typed calls to Keyport over one tonic channel.

use std::time::Duration;

use keyport_proto::v1::{
    self, o_auth_service_client::OAuthServiceClient, session_service_client::SessionServiceClient,
    user_service_client::UserServiceClient,
};
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

/// A started social sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedOAuth {
    /// Where to send the browser.
    pub authorization_url: String,
    /// Keep in an HttpOnly cookie of this browser; pass back at the callback.
    pub binding: String,
}

/// The parameters a provider's callback brings back, plus the binding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OAuthCallback {
    /// `state` query parameter.
    pub state: String,
    /// `code` query parameter.
    pub code: String,
    /// `error` query parameter, when the provider refused.
    pub error: String,
    /// The redirect URI the flow used (this callback's URL, without query).
    pub redirect_uri: String,
    /// The binding from the browser's cookie.
    pub binding: String,
}

/// How a social sign-in ended.
#[derive(Debug, Clone)]
pub enum FinishedOAuth {
    /// Signed in; `new_user` when the sign-in created the account.
    SignedIn {
        /// The session.
        signed_in: SignedIn,
        /// Whether the user was created now.
        new_user: bool,
    },
    /// The identity was linked to the signed-in user.
    Linked {
        /// Provider id.
        provider_id: String,
        /// Subject at the provider.
        subject: String,
    },
}

/// Configures a [`KeyportClient`].
#[derive(Debug, Clone)]
pub struct ClientBuilder {
    endpoint: String,
    connect_timeout: Duration,
    request_timeout: Duration,
    retries: u32,
    retry_backoff: Duration,
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

    /// TLS to Keyport: a custom CA (`ca_certificate`) and, for mutual TLS, a
    /// client `identity`, set on the given config. Needs an `https://` endpoint.
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
        let endpoint = match self.tls.clone() {
            Some(tls) => endpoint.tls_config(tls).map_err(invalid)?,
            None => endpoint,
        };
        let channel = endpoint.connect_lazy();
        Ok(KeyportClient {
            sessions: SessionServiceClient::new(channel.clone()),
            oauth: OAuthServiceClient::new(channel.clone()),
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
    oauth: OAuthServiceClient<Channel>,
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

    /// The generated `OAuthService` client, for calls this type does not wrap.
    pub fn oauth_service(&self) -> OAuthServiceClient<Channel> {
        self.oauth.clone()
    }

    /// The provider identities linked to `token`'s user: (provider id, subject, email).
    pub async fn list_linked_accounts(
        &self,
        token: &str,
        client: &ClientInfo,
    ) -> Result<Vec<(String, String, String)>, Error> {
        let response = self
            .idempotent(|| {
                let mut oauth = self.oauth.clone();
                let request = self.request(v1::ListLinkedAccountsRequest {}, Some(token), client);
                async move { oauth.list_linked_accounts(request).await }
            })
            .await?;
        Ok(response.accounts.into_iter().map(|a| (a.provider_id, a.subject, a.email)).collect())
    }

    /// Unlinks a provider identity from `token`'s user (never the last way in).
    pub async fn unlink_account(
        &self,
        token: &str,
        provider_id: &str,
        subject: &str,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let message = v1::UnlinkAccountRequest { provider_id: provider_id.to_owned(), subject: subject.to_owned() };
        self.oauth.clone().unlink_account(self.request(message, Some(token), client)).await?;
        Ok(())
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
            // A newer server may answer with another step (a second factor):
            // refuse clearly rather than pretend the user is signed in.
            None => Err(Status::failed_precondition("sign-in needs a step this client version does not know").into()),
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

    /// The configured social sign-in providers: (id, display name).
    pub async fn list_providers(&self) -> Result<Vec<(String, String)>, Error> {
        let response = self
            .idempotent(|| {
                let mut oauth = self.oauth.clone();
                let request = self.request(v1::ListProvidersRequest {}, None, &ClientInfo::default());
                async move { oauth.list_providers(request).await }
            })
            .await?;
        Ok(response.providers.into_iter().map(|p| (p.id, p.display_name)).collect())
    }

    /// Starts a social sign-in; with `link_token`, links the provider
    /// identity to that session's user instead.
    pub async fn start_oauth(
        &self,
        provider_id: &str,
        redirect_uri: &str,
        link_token: Option<&str>,
        client: &ClientInfo,
    ) -> Result<StartedOAuth, Error> {
        let message = v1::StartOAuthRequest {
            provider_id: provider_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            link: link_token.is_some(),
        };
        let response = self.oauth.clone().start_o_auth(self.request(message, link_token, client)).await?.into_inner();
        Ok(StartedOAuth { authorization_url: response.authorization_url, binding: response.binding })
    }

    /// Finishes a social sign-in from the provider's callback parameters.
    pub async fn finish_oauth(&self, callback: &OAuthCallback, client: &ClientInfo) -> Result<FinishedOAuth, Error> {
        let message = v1::FinishOAuthRequest {
            state: callback.state.clone(),
            code: callback.code.clone(),
            redirect_uri: callback.redirect_uri.clone(),
            binding: callback.binding.clone(),
            error: callback.error.clone(),
        };
        let response = self.oauth.clone().finish_o_auth(self.request(message, None, client)).await?.into_inner();
        match response.outcome {
            Some(v1::finish_o_auth_response::Outcome::Session(grant)) => {
                Ok(FinishedOAuth::SignedIn { signed_in: signed_in(grant)?, new_user: response.new_user })
            }
            Some(v1::finish_o_auth_response::Outcome::Linked(account)) => {
                Ok(FinishedOAuth::Linked { provider_id: account.provider_id, subject: account.subject })
            }
            None => Err(Status::internal("FinishOAuth answered without an outcome").into()),
        }
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
