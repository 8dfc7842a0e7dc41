//! [`KeyportClient`]: typed calls to Keyport, over one endpoint or several.

use std::{
    future::Future,
    time::{Duration, SystemTime},
};

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
    endpoints::{EndpointId, Endpoints, Failure, Health, Probing},
    error::Error,
    principal::{Principal, SessionSummary, ValidatedSession, principal, summary},
};

/// The end user behind a call, forwarded to Keyport (which believes the
/// address and agent only from peers listed in its `trusted_proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The end user's IP address.
    pub ip_address: Option<String>,
    /// The end user's user agent.
    pub user_agent: Option<String>,
    /// The W3C trace context of the request being served, forwarded so
    /// that Keyport's span joins its trace: `traceparent`, sent only when
    /// well-formed ([`ClientInfo::with_trace_context`]).
    pub traceparent: Option<String>,
    /// The W3C `tracestate` that goes with `traceparent`.
    pub tracestate: Option<String>,
}

/// The longest `tracestate` forwarded (W3C: 32 entries of at most 256 bytes
/// may be cut to 512 bytes).
const MAX_TRACESTATE: usize = 512;

impl ClientInfo {
    /// These details with the trace context of an incoming request, from
    /// its `traceparent` and `tracestate` headers; a malformed
    /// `traceparent` is dropped, and `tracestate` with it.
    #[must_use]
    pub fn with_trace_context(mut self, traceparent: Option<&str>, tracestate: Option<&str>) -> Self {
        self.traceparent = traceparent.filter(|value| is_traceparent(value)).map(str::to_owned);
        self.tracestate = self
            .traceparent
            .as_ref()
            .and(tracestate)
            .filter(|state| state.len() <= MAX_TRACESTATE && state.bytes().all(|b| (0x20..0x7f).contains(&b)))
            .map(str::to_owned);
        self
    }
}

/// Whether `value` is a version-00 W3C `traceparent`:
/// `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`, lower case,
/// with neither id all zeros.
pub fn is_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex =
        |part: &str, len: usize| part.len() == len && part.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let nonzero = |part: &str| part.bytes().any(|b| b != b'0');
    matches!(parts.as_slice(), [version, trace, span, flags]
        if *version == "00" && hex(trace, 32) && hex(span, 16) && hex(flags, 2) && nonzero(trace) && nonzero(span))
}

/// A successful sign-in or sign-up.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The session token: put it in a cookie or an `Authorization` header.
    pub token: String,
    /// Who signed in.
    pub principal: Principal,
}

/// How a password sign-in ended, as the proto's `SignInResponse.outcome`.
#[derive(Debug, Clone)]
#[non_exhaustive]
#[expect(
    clippy::large_enum_variant,
    reason = "one value per sign-in, matched at once: a box would cost every caller a deref for nothing"
)]
pub enum SignInOutcome {
    /// The user is signed in.
    Session(SignedIn),
    /// The user has a second factor: finish with
    /// [`KeyportClient::complete_sign_in`].
    Challenge(SecondFactorChallenge),
}

/// What a first factor gets when the user has a second one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecondFactorChallenge {
    /// The challenge (`kpc_...`): keep it where only this browser has it
    /// (an `HttpOnly` cookie); it stands for the passed first factor.
    pub challenge: String,
    /// Whether the user can answer with an authenticator app's code.
    pub totp: bool,
    /// Whether the user can answer with a backup code.
    pub backup_code: bool,
    /// The WebAuthn request options (JSON) for the user's passkeys, when
    /// they can answer with one: pass them to `navigator.credentials.get`.
    pub passkey_options: Option<String>,
    /// When it stops working.
    pub expires_at: SystemTime,
}

/// A second factor's answer, as typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorAnswer<'a> {
    /// The six-digit code of the authenticator app.
    Totp(&'a str),
    /// One of the backup codes.
    BackupCode(&'a str),
    /// A passkey's answer (`PublicKeyCredential` JSON) to the challenge's
    /// [`SecondFactorChallenge::passkey_options`]. (A step-up with a
    /// passkey is [`KeyportClient::step_up_with_passkey`].)
    Passkey(&'a str),
}

/// How a sign-up ended, as the proto's `SignUpResponse`.
#[derive(Debug, Clone)]
#[non_exhaustive]
#[expect(
    clippy::large_enum_variant,
    reason = "one value per sign-up, matched at once: a box would cost every caller a deref for nothing"
)]
pub enum SignUpOutcome {
    /// The account exists and is signed in.
    SignedIn(SignedIn),
    /// The server requires verified addresses: nobody is signed in, and a
    /// mail is on its way to the address (a verification link for a new
    /// account, a notice for an existing one). Tell the user to check it.
    VerificationRequired,
}

/// A started email sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StartedEmailSignIn {
    /// The secret to keep in an `HttpOnly` cookie of the browser that
    /// asked; [`KeyportClient::finish_email_sign_in`] needs it.
    pub binding: String,
    /// When the mailed link and code stop working.
    pub expires_at: SystemTime,
}

/// What finishes an email sign-in: the mailed link's `token`, or the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailProof<'a> {
    /// The `token` query parameter of the link.
    Link(&'a str),
    /// The six-digit code, as typed.
    Code(&'a str),
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
#[expect(
    clippy::large_enum_variant,
    reason = "one value per finished flow, matched at once: a box would cost every caller a deref for nothing"
)]
pub enum FinishedOAuth {
    /// Signed in; `new_user` when the sign-in created the account.
    SignedIn {
        /// The session.
        signed_in: SignedIn,
        /// Whether the user was created now.
        new_user: bool,
    },
    /// The user has a second factor: finish with
    /// [`KeyportClient::complete_sign_in`].
    Challenge(SecondFactorChallenge),
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
    endpoints: Vec<String>,
    connect_timeout: Duration,
    request_timeout: Duration,
    retries: u32,
    retry_backoff: Duration,
    probe_delay: (Duration, Duration),
    tls: Option<tonic::transport::ClientTlsConfig>,
}

impl ClientBuilder {
    /// Adds another endpoint: a replica of the same Keyport (`http://host:port`).
    /// Calls take turns over the endpoints that answer, and fail over when
    /// one does not (see [`KeyportClient::builder_for`]).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoints.push(endpoint.into());
        self
    }

    /// Deadline of each attempt of a call (sent as `grpc-timeout`) [default: 2 s].
    /// It is also how long an endpoint that stopped answering can hold a call
    /// before the call moves on (idempotent calls) or fails.
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// How long connecting may take [default: 2 s].
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Extra attempts of idempotent calls after `UNAVAILABLE` or no answer
    /// [default: 2]. A retry goes to another endpoint when there is one; once
    /// every endpoint was tried, the next round waits `backoff` first,
    /// doubling [default: 25 ms].
    pub fn retries(mut self, retries: u32, backoff: Duration) -> Self {
        self.retries = retries;
        self.retry_backoff = backoff;
        self
    }

    /// How often an endpoint that stopped answering is checked again
    /// (`grpc.health.v1`), in the background: `first` after the failure,
    /// doubling up to `max` [default: 250 ms up to 5 s]. Calls avoid it until
    /// it reports SERVING.
    pub fn probe_delay(mut self, first: Duration, max: Duration) -> Self {
        self.probe_delay = (first, max.max(first));
        self
    }

    /// TLS to Keyport: a custom CA (`ca_certificate`) and, for mutual TLS, a
    /// client `identity`, set on the given config. Applies to every endpoint,
    /// which must all be `https://`.
    pub fn tls(mut self, tls: tonic::transport::ClientTlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Builds the client, inside a Tokio runtime. It connects lazily, on the
    /// first call, and reconnects by itself. Fails on an invalid endpoint, or none.
    pub fn build(self) -> Result<KeyportClient, Error> {
        let invalid = |e: tonic::transport::Error| Error::from(Status::invalid_argument(format!("endpoint: {e}")));
        let mut channels = Vec::with_capacity(self.endpoints.len());
        for uri in &self.endpoints {
            let endpoint = Endpoint::from_shared(uri.clone()).map_err(invalid)?;
            let endpoint = endpoint
                .connect_timeout(self.connect_timeout)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(20))
                .keep_alive_while_idle(true);
            let endpoint = match self.tls.clone() {
                Some(tls) => endpoint.tls_config(tls).map_err(invalid)?,
                None => endpoint,
            };
            channels.push((uri.clone(), endpoint.connect_lazy()));
        }
        let probing =
            Probing { first_delay: self.probe_delay.0, max_delay: self.probe_delay.1, timeout: self.request_timeout };
        let endpoints = Endpoints::new(channels, probing)
            .ok_or_else(|| Error::from(Status::invalid_argument("no Keyport endpoint given")))?;
        Ok(KeyportClient { endpoints, options: self })
    }
}

/// A typed client of Keyport's gRPC API, over one endpoint or several
/// replicas. Cheap to clone: clones share connections and health marks.
///
/// Calls take turns over the endpoints that answer. An endpoint whose
/// connection is refused or breaks, or that lets an attempt reach its
/// deadline, is avoided at once and checked again in the background.
/// Idempotent calls (`GetSession`, `ListSessions`, ...) are retried on
/// another endpoint. Calls that change something (`SignIn`, `SignUp`,
/// `SignOut`, ...) move to another endpoint only when the connection could
/// not be made, so that the request never left; if it may have reached a
/// server, their error is returned as is. With no endpoint answering, calls
/// fail with `UNAVAILABLE` at once.
#[derive(Debug, Clone)]
pub struct KeyportClient {
    endpoints: Endpoints,
    options: ClientBuilder,
}

/// Whether a call may be sent again after it may have reached a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replay {
    /// It changes nothing: retry on `UNAVAILABLE` or no answer.
    Idempotent,
    /// It changes something: another endpoint only if the request never left.
    NeverSent,
}

/// A `WatchSessionEvents` stream with the endpoint it is subscribed to.
pub(crate) struct EventSubscription {
    /// The stream.
    pub(crate) events: Streaming<v1::WatchSessionEventsResponse>,
    /// Its endpoint's health.
    pub(crate) endpoint: SubscribedEndpoint,
}

/// The endpoint of an [`EventSubscription`].
pub(crate) struct SubscribedEndpoint {
    id: EndpointId,
    endpoints: Endpoints,
    health: tokio::sync::watch::Receiver<Health>,
}

impl SubscribedEndpoint {
    /// Resolves once a call or probe found the endpoint not answering.
    pub(crate) async fn down(&self) {
        let mut health = self.health.clone();
        if health.wait_for(|health| *health != Health::Up).await.is_err() {
            std::future::pending::<()>().await;
        }
    }

    /// Checks every `interval` that the endpoint still answers (a frozen
    /// server keeps the stream open, silent, until the heartbeat timeout);
    /// resolves, having marked it down, once it does not.
    pub(crate) async fn check_every(&self, interval: Duration) {
        let mut health = self.health.clone();
        loop {
            tokio::time::sleep(interval).await;
            if *health.borrow_and_update() != Health::Up {
                return;
            }
            self.endpoints.check_answers(self.id).await;
        }
    }

    /// Records that the stream broke with `status`, or went silent (`None`).
    pub(crate) fn broke(&self, status: Option<&Status>) {
        let failure = status.map_or(Failure::NoAnswer, Failure::of);
        self.endpoints.failed(self.id, failure);
    }
}

impl KeyportClient {
    /// A builder for a client of the Keyport at `endpoint` (`http://host:port`).
    /// Add replicas with [`ClientBuilder::endpoint`].
    pub fn builder(endpoint: impl Into<String>) -> ClientBuilder {
        Self::builder_for([endpoint])
    }

    /// A builder for a client of several replicas of one Keyport (say, every
    /// `keyport` serving one PostgreSQL database): calls are spread over
    /// those that answer and fail over when one does not.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), keyport_client::Error> {
    /// let client = keyport_client::KeyportClient::builder_for(["http://10.0.0.1:50051", "http://10.0.0.2:50051"])
    ///     .build()?;
    /// # Ok(()) }
    /// ```
    ///
    /// A host name that resolves to several addresses is one endpoint: each
    /// connection goes to the first address that accepts it, so it gives
    /// failover when connecting but neither balancing nor failover of an
    /// open connection. List the replicas instead.
    pub fn builder_for<I>(endpoints: I) -> ClientBuilder
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        ClientBuilder {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(2),
            retries: 2,
            retry_backoff: Duration::from_millis(25),
            probe_delay: (Duration::from_millis(250), Duration::from_secs(5)),
            tls: None,
        }
    }

    /// The generated `SessionService` client, for calls this type does not
    /// wrap: over one endpoint that answers now, without failover.
    pub fn session_service(&self) -> SessionServiceClient<Channel> {
        SessionServiceClient::new(self.endpoints.any_channel())
    }

    /// The generated `UserService` client, for calls this type does not
    /// wrap: over one endpoint that answers now, without failover.
    pub fn user_service(&self) -> UserServiceClient<Channel> {
        UserServiceClient::new(self.endpoints.any_channel())
    }

    /// The generated `OAuthService` client, for calls this type does not
    /// wrap: over one endpoint that answers now, without failover.
    pub fn oauth_service(&self) -> OAuthServiceClient<Channel> {
        OAuthServiceClient::new(self.endpoints.any_channel())
    }

    /// The provider identities linked to `token`'s user: (provider id, subject, email).
    pub async fn list_linked_accounts(
        &self,
        token: &str,
        client: &ClientInfo,
    ) -> Result<Vec<(String, String, String)>, Error> {
        let response = self
            .idempotent(|channel| {
                let mut oauth = OAuthServiceClient::new(channel);
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
        self.once(|channel| {
            let request = self.request(message.clone(), Some(token), client);
            async move { OAuthServiceClient::new(channel).unlink_account(request).await }
        })
        .await?;
        Ok(())
    }

    /// Validates a session token. Retried on `UNAVAILABLE`.
    pub async fn get_session(&self, token: &str, client: &ClientInfo) -> Result<ValidatedSession, Error> {
        let response = self
            .idempotent(|channel| {
                let mut sessions = SessionServiceClient::new(channel);
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

    /// Signs in with email and password: a session, or a challenge when the
    /// user has a second factor (finish it with
    /// [`KeyportClient::complete_sign_in`]). The enum is non-exhaustive:
    /// match later variants with a `_` arm that refuses.
    pub async fn sign_in(&self, email: &str, password: &str, client: &ClientInfo) -> Result<SignInOutcome, Error> {
        let message = v1::SignInRequest { email: email.to_owned(), password: password.to_owned() };
        let response = self
            .once(|channel| {
                let request = self.request(message.clone(), None, client);
                async move { SessionServiceClient::new(channel).sign_in(request).await }
            })
            .await?;
        match response.outcome {
            Some(v1::sign_in_response::Outcome::Session(grant)) => signed_in(grant).map(SignInOutcome::Session),
            Some(v1::sign_in_response::Outcome::Challenge(challenge)) => {
                Ok(SignInOutcome::Challenge(second_factor_challenge(challenge)))
            }
            // A newer server may answer with another step: refuse clearly
            // rather than pretend the user is signed in.
            None => Err(Status::failed_precondition("sign-in needs a step this client version does not know").into()),
        }
    }

    /// Finishes a sign-in that answered a [`SecondFactorChallenge`] with the
    /// second factor: the new session, at [`crate::Assurance::Aal2`].
    pub async fn complete_sign_in(
        &self,
        challenge: &str,
        answer: FactorAnswer<'_>,
        client: &ClientInfo,
    ) -> Result<SignedIn, Error> {
        use v1::complete_sign_in_request::Answer;
        let answer = match answer {
            FactorAnswer::Totp(code) => Answer::TotpCode(code.to_owned()),
            FactorAnswer::BackupCode(code) => Answer::BackupCode(code.to_owned()),
            FactorAnswer::Passkey(credential) => Answer::PasskeyCredential(credential.to_owned()),
        };
        let message = v1::CompleteSignInRequest { challenge: challenge.to_owned(), answer: Some(answer) };
        let response = self
            .once(|channel| {
                let request = self.request(message.clone(), None, client);
                async move { SessionServiceClient::new(channel).complete_sign_in(request).await }
            })
            .await?;
        signed_in(response.session.ok_or_else(|| Status::internal("CompleteSignIn answered without a session"))?)
    }

    /// Creates an account and signs it in, or (when the server requires
    /// verified addresses) answers [`SignUpOutcome::VerificationRequired`].
    pub async fn sign_up(
        &self,
        email: &str,
        password: &str,
        name: &str,
        client: &ClientInfo,
    ) -> Result<SignUpOutcome, Error> {
        let message =
            v1::SignUpRequest { email: email.to_owned(), password: password.to_owned(), name: name.to_owned() };
        let response = self
            .once(|channel| {
                let request = self.request(message.clone(), None, client);
                async move { UserServiceClient::new(channel).sign_up(request).await }
            })
            .await?;
        if response.verification_required {
            return Ok(SignUpOutcome::VerificationRequired);
        }
        let grant = response.session.ok_or_else(|| Status::internal("SignUp answered without a session"))?;
        signed_in(grant).map(SignUpOutcome::SignedIn)
    }

    /// Mails the user behind `token` a link that verifies their address
    /// (nothing when it is verified already). Fails with
    /// [`Reason::MailDisabled`](crate::Reason::MailDisabled) on a server
    /// without mail.
    pub async fn request_email_verification(&self, token: &str, client: &ClientInfo) -> Result<(), Error> {
        self.once(|channel| {
            let request = self.request(v1::RequestEmailVerificationRequest::default(), Some(token), client);
            async move { UserServiceClient::new(channel).request_email_verification(request).await }
        })
        .await?;
        Ok(())
    }

    /// Mails a new verification link to `email`, for a user who cannot sign
    /// in before verifying ([`Reason::EmailNotVerified`](crate::Reason::EmailNotVerified));
    /// answers the same whether or not such an account exists.
    pub async fn request_email_verification_for(&self, email: &str, client: &ClientInfo) -> Result<(), Error> {
        self.once(|channel| {
            let message = v1::RequestEmailVerificationRequest { email: email.to_owned() };
            let request = self.request(message, None, client);
            async move { UserServiceClient::new(channel).request_email_verification(request).await }
        })
        .await?;
        Ok(())
    }

    /// Marks an address verified with the `token` query parameter of a
    /// verification link.
    pub async fn verify_email(&self, link_token: &str, client: &ClientInfo) -> Result<(), Error> {
        self.once(|channel| {
            let request = self.request(
                v1::VerifyEmailRequest { token: link_token.to_owned(), code: String::new() },
                None,
                client,
            );
            async move { UserServiceClient::new(channel).verify_email(request).await }
        })
        .await?;
        Ok(())
    }

    /// Mails a password-reset link to `email` if an account with a password
    /// has it; answers the same either way.
    pub async fn request_password_reset(&self, email: &str, client: &ClientInfo) -> Result<(), Error> {
        self.once(|channel| {
            let request = self.request(v1::RequestPasswordResetRequest { email: email.to_owned() }, None, client);
            async move { UserServiceClient::new(channel).request_password_reset(request).await }
        })
        .await?;
        Ok(())
    }

    /// Sets a new password with the `token` query parameter of a reset
    /// link; every session of the user ends and nobody is signed in.
    /// Returns how many sessions ended.
    pub async fn reset_password(
        &self,
        link_token: &str,
        new_password: &str,
        client: &ClientInfo,
    ) -> Result<u32, Error> {
        let message = v1::ResetPasswordRequest { token: link_token.to_owned(), new_password: new_password.to_owned() };
        let response = self
            .once(|channel| {
                let request = self.request(message.clone(), None, client);
                async move { UserServiceClient::new(channel).reset_password(request).await }
            })
            .await?;
        Ok(response.revoked_sessions)
    }

    /// Mails `email` a link and a code that sign in (if an account has the
    /// address, or the server signs up by email); the same answer either way.
    pub async fn start_email_sign_in(&self, email: &str, client: &ClientInfo) -> Result<StartedEmailSignIn, Error> {
        let response = self
            .once(|channel| {
                let request = self.request(v1::StartEmailSignInRequest { email: email.to_owned() }, None, client);
                async move { SessionServiceClient::new(channel).start_email_sign_in(request).await }
            })
            .await?;
        let expires_at = crate::principal::system_time(response.expires_at.as_ref());
        Ok(StartedEmailSignIn { binding: response.binding, expires_at })
    }

    /// Finishes an email sign-in (a challenge instead of a session when the
    /// user has a second factor) with the browser's `binding` and `proof`.
    /// Returns the session and whether the sign-in created the account.
    pub async fn finish_email_sign_in(
        &self,
        binding: &str,
        proof: EmailProof<'_>,
        client: &ClientInfo,
    ) -> Result<(SignInOutcome, bool), Error> {
        use v1::finish_email_sign_in_request::Proof;
        let proof = match proof {
            EmailProof::Link(token) => Proof::Token(token.to_owned()),
            EmailProof::Code(code) => Proof::Code(code.to_owned()),
        };
        let message = v1::FinishEmailSignInRequest { binding: binding.to_owned(), proof: Some(proof) };
        let response = self
            .once(|channel| {
                let request = self.request(message.clone(), None, client);
                async move { SessionServiceClient::new(channel).finish_email_sign_in(request).await }
            })
            .await?;
        if let Some(challenge) = response.challenge {
            return Ok((SignInOutcome::Challenge(second_factor_challenge(challenge)), false));
        }
        let grant = response.session.ok_or_else(|| Status::internal("FinishEmailSignIn answered without a session"))?;
        Ok((SignInOutcome::Session(signed_in(grant)?), response.new_user))
    }

    /// Asks to move `token`'s user to `new_email` (with their `password`,
    /// ignored for an account without one); the new address gets a link.
    pub async fn request_email_change(
        &self,
        token: &str,
        new_email: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let message = v1::RequestEmailChangeRequest { new_email: new_email.to_owned(), password: password.to_owned() };
        self.once(|channel| {
            let request = self.request(message.clone(), Some(token), client);
            async move { UserServiceClient::new(channel).request_email_change(request).await }
        })
        .await?;
        Ok(())
    }

    /// Moves the account to the address of a change-of-address link;
    /// with `end_sessions`, every session of the user ends. Returns how
    /// many sessions ended.
    pub async fn confirm_email_change(
        &self,
        link_token: &str,
        end_sessions: bool,
        client: &ClientInfo,
    ) -> Result<u32, Error> {
        let message = v1::ConfirmEmailChangeRequest { token: link_token.to_owned(), end_sessions };
        let response = self
            .once(|channel| {
                let request = self.request(message.clone(), None, client);
                async move { UserServiceClient::new(channel).confirm_email_change(request).await }
            })
            .await?;
        Ok(response.revoked_sessions)
    }

    /// Mails `token`'s user (an account without a password, on a session
    /// from the last 10 minutes) a code to set a first password.
    pub async fn request_password_setup(&self, token: &str, client: &ClientInfo) -> Result<(), Error> {
        self.once(|channel| {
            let request = self.request(v1::RequestPasswordSetupRequest {}, Some(token), client);
            async move { UserServiceClient::new(channel).request_password_setup(request).await }
        })
        .await?;
        Ok(())
    }

    /// Sets the first password of `token`'s user with the mailed `code`.
    pub async fn set_password(
        &self,
        token: &str,
        code: &str,
        new_password: &str,
        client: &ClientInfo,
    ) -> Result<(), Error> {
        let message = v1::SetPasswordRequest { code: code.to_owned(), new_password: new_password.to_owned() };
        self.once(|channel| {
            let request = self.request(message.clone(), Some(token), client);
            async move { UserServiceClient::new(channel).set_password(request).await }
        })
        .await?;
        Ok(())
    }

    /// Ends the session of `token`.
    pub async fn sign_out(&self, token: &str, client: &ClientInfo) -> Result<(), Error> {
        self.once(|channel| {
            let request = self.request(v1::SignOutRequest {}, Some(token), client);
            async move { SessionServiceClient::new(channel).sign_out(request).await }
        })
        .await?;
        Ok(())
    }

    /// The sessions of the user behind `token`, newest first.
    pub async fn list_sessions(&self, token: &str, client: &ClientInfo) -> Result<Vec<SessionSummary>, Error> {
        let response = self
            .idempotent(|channel| {
                let mut sessions = SessionServiceClient::new(channel);
                let request = self.request(v1::ListSessionsRequest {}, Some(token), client);
                async move { sessions.list_sessions(request).await }
            })
            .await?;
        Ok(response.sessions.iter().map(summary).collect())
    }

    /// Ends one session of the user behind `token`.
    pub async fn revoke_session(&self, token: &str, session_id: &str, client: &ClientInfo) -> Result<(), Error> {
        self.once(|channel| {
            let message = v1::RevokeSessionRequest { session_id: session_id.to_owned() };
            let request = self.request(message, Some(token), client);
            async move { SessionServiceClient::new(channel).revoke_session(request).await }
        })
        .await?;
        Ok(())
    }

    /// Ends every other session of the user behind `token`; returns how many.
    pub async fn revoke_other_sessions(&self, token: &str, client: &ClientInfo) -> Result<u32, Error> {
        let response = self
            .once(|channel| {
                let request = self.request(v1::RevokeOtherSessionsRequest {}, Some(token), client);
                async move { SessionServiceClient::new(channel).revoke_other_sessions(request).await }
            })
            .await?;
        Ok(response.revoked_sessions)
    }

    /// The configured social sign-in providers: (id, display name).
    pub async fn list_providers(&self) -> Result<Vec<(String, String)>, Error> {
        let response = self
            .idempotent(|channel| {
                let mut oauth = OAuthServiceClient::new(channel);
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
        let response = self
            .once(|channel| {
                let request = self.request(message.clone(), link_token, client);
                async move { OAuthServiceClient::new(channel).start_o_auth(request).await }
            })
            .await?;
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
        let response = self
            .once(|channel| {
                let request = self.request(message.clone(), None, client);
                async move { OAuthServiceClient::new(channel).finish_o_auth(request).await }
            })
            .await?;
        match response.outcome {
            Some(v1::finish_o_auth_response::Outcome::Session(grant)) => {
                Ok(FinishedOAuth::SignedIn { signed_in: signed_in(grant)?, new_user: response.new_user })
            }
            Some(v1::finish_o_auth_response::Outcome::Challenge(challenge)) => {
                Ok(FinishedOAuth::Challenge(second_factor_challenge(challenge)))
            }
            Some(v1::finish_o_auth_response::Outcome::Linked(account)) => {
                Ok(FinishedOAuth::Linked { provider_id: account.provider_id, subject: account.subject })
            }
            None => Err(Status::internal("FinishOAuth answered without an outcome").into()),
        }
    }

    /// Opens the `WatchSessionEvents` stream on an endpoint that answers
    /// (no deadline once open: it lives long).
    pub async fn watch_session_events(&self) -> Result<Streaming<v1::WatchSessionEventsResponse>, Error> {
        Ok(self.subscribe_session_events().await?.events)
    }

    /// Opens the `WatchSessionEvents` stream, and says on which endpoint.
    pub(crate) async fn subscribe_session_events(&self) -> Result<EventSubscription, Error> {
        let timeout = self.options.request_timeout;
        let (events, id) = self
            .call(Replay::Idempotent, |channel| async move {
                let mut sessions = SessionServiceClient::new(channel);
                let request = Request::new(v1::WatchSessionEventsRequest {});
                // Only opening has a deadline: a frozen endpoint must not hold it forever.
                match tokio::time::timeout(timeout, sessions.watch_session_events(request)).await {
                    Ok(opened) => opened,
                    Err(_) => Err(Status::from_error(Box::new(tonic::TimeoutExpired(())))),
                }
            })
            .await?;
        let endpoint = SubscribedEndpoint { id, endpoints: self.endpoints.clone(), health: self.endpoints.watch(id) };
        Ok(EventSubscription { events, endpoint })
    }

    /// A request with the deadline, the bearer token and the end user's details.
    pub(crate) fn request<T>(&self, message: T, token: Option<&str>, client: &ClientInfo) -> Request<T> {
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
        if let Some(parent) = &client.traceparent {
            insert("traceparent", parent);
            if let Some(state) = &client.tracestate {
                insert("tracestate", state);
            }
        }
        request
    }

    /// Runs an idempotent call, retrying on another endpoint (or, once
    /// all were tried, after a backoff) while Keyport is unavailable.
    pub(crate) async fn idempotent<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        Ok(self.call(Replay::Idempotent, call).await?.0)
    }

    /// Runs a call that changes something: on another endpoint only when
    /// the connection could not be made, so that the request never left.
    pub(crate) async fn once<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        Ok(self.call(Replay::NeverSent, call).await?.0)
    }

    /// Sends `call` to endpoints in turn, keeping their health marks, as
    /// `replay` allows; returns the answer and the endpoint that gave it.
    async fn call<T, F, Fut>(&self, replay: Replay, call: F) -> Result<(T, EndpointId), Error>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut backoff = self.options.retry_backoff;
        let mut tried: Vec<EndpointId> = Vec::new();
        // Attempts that may have reached a server, and rounds over the
        // endpoints, beyond the first: each at most `retries`.
        let (mut retried, mut rounds) = (0, 0);
        let mut last: Option<Status> = None;
        loop {
            let id = match self.endpoints.pick(&tried) {
                Some(id) => id,
                // Every endpoint had its turn: start a new round after a pause.
                None if replay == Replay::Idempotent && !tried.is_empty() && rounds < self.options.retries => {
                    tracing::debug!(?backoff, "no keyport endpoint answered; retrying");
                    rounds += 1;
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                    tried.clear();
                    continue;
                }
                None => return Err(last.unwrap_or_else(|| self.endpoints.none_available()).into()),
            };
            let status = match call(self.endpoints.channel(id)).await {
                Ok(response) => {
                    self.endpoints.succeeded(id);
                    return Ok((response.into_inner(), id));
                }
                Err(status) => status,
            };
            let failure = Failure::of(&status);
            self.endpoints.failed(id, failure);
            let again = match (replay, failure) {
                (_, Failure::NotSent { .. }) => true,
                (Replay::Idempotent, Failure::NoAnswer) => true,
                (Replay::Idempotent, Failure::Answered) => status.code() == Code::Unavailable,
                (Replay::NeverSent, _) => false,
            };
            if !again {
                return Err(status.into());
            }
            // A request that never left costs nothing to send elsewhere.
            if !matches!(failure, Failure::NotSent { .. }) {
                if retried >= self.options.retries {
                    return Err(status.into());
                }
                retried += 1;
            }
            tracing::debug!(%status, ?failure, "keyport call failed; trying another endpoint");
            tried.push(id);
            last = Some(status);
        }
    }
}

fn second_factor_challenge(challenge: v1::SignInChallenge) -> SecondFactorChallenge {
    let offers = |factor: v1::SecondFactor| challenge.factors.contains(&i32::from(factor));
    SecondFactorChallenge {
        totp: offers(v1::SecondFactor::Totp),
        backup_code: offers(v1::SecondFactor::BackupCode),
        passkey_options: Some(challenge.passkey_options).filter(|options| !options.is_empty()),
        expires_at: crate::principal::system_time(challenge.expires_at.as_ref()),
        challenge: challenge.challenge,
    }
}

pub(crate) fn signed_in(grant: v1::SessionGrant) -> Result<SignedIn, Error> {
    let (Some(user), Some(session)) = (&grant.user, &grant.session) else {
        return Err(Status::internal("session grant without user or session").into());
    };
    Ok(SignedIn { principal: principal(user, session), token: grant.token })
}

#[cfg(test)]
mod trace_context_tests {
    use super::*;

    #[test]
    fn only_version_00_traceparents_with_real_ids_pass() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert!(is_traceparent(good));
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\n",
        ] {
            assert!(!is_traceparent(bad), "{bad}");
        }
        let long_state = "a=".to_owned() + &"b".repeat(MAX_TRACESTATE);
        let info = ClientInfo::default().with_trace_context(Some(good), Some(&long_state));
        assert_eq!((info.traceparent.as_deref(), info.tracestate), (Some(good), None));
        let info = ClientInfo::default().with_trace_context(Some(good), Some("a=1\r\nx: y"));
        assert_eq!(info.tracestate, None, "control characters are not forwarded");
    }
}
