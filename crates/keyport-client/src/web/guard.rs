//! [`Guard`]: decides what happens to one HTTP request.

use std::sync::Arc;

use std::collections::HashMap;

use tonic::Status;

use super::{
    AuthSettings,
    reply::{Refusal, RefusalContext, default_json, default_page},
    rules::Access,
};
use crate::{
    cache::{Decision, SessionCache, session_id_of},
    client::{
        ClientInfo, EmailProof, FactorAnswer, FinishedOAuth, OAuthCallback, SecondFactorChallenge, SignInOutcome,
        SignUpOutcome, SignedIn,
    },
    error::{Error, Reason},
    factors::{FactorStatus, TotpEnrollment},
    passkeys::{Passkey, PasskeyCeremony},
    principal::{Principal, SessionSummary},
};

/// What the guard needs to know about a request; each adapter implements it
/// over its framework's request type.
pub trait RequestView {
    /// The method, upper-case (`GET`).
    fn method(&self) -> &str;
    /// The path, without the query.
    fn path(&self) -> &str;
    /// The query string, without `?`.
    fn query(&self) -> Option<&str>;
    /// The first value of a header, if it is valid text.
    fn header(&self, name: &str) -> Option<&str>;
    /// The address of the TCP peer.
    fn peer_ip(&self) -> Option<String>;
}

/// A response the adapter sends instead of calling the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Headers to set (`Set-Cookie` may repeat).
    pub headers: Vec<(&'static str, String)>,
    /// Body (JSON for API requests, empty for redirects).
    pub body: String,
}

/// The guard's decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Call the handler, with the principal if the request has a valid session.
    Proceed {
        /// Who is calling, if anyone (shared with the cache entry).
        principal: Option<Arc<Principal>>,
        /// `Set-Cookie` values to add to the handler's response (a slid
        /// expiry, or clearing an invalid cookie).
        set_cookies: Vec<String>,
    },
    /// Answer with this instead.
    Respond(Reply),
}

/// Authenticates and authorises requests against Keyport through a
/// revocation-aware cache.
#[derive(Debug, Clone)]
pub struct Guard {
    // Cloned per request by the adapters: one reference count, not a client.
    inner: Arc<GuardInner>,
}

#[derive(Debug)]
struct GuardInner {
    sessions: Sessions,
    settings: Arc<AuthSettings>,
}

/// Where sessions are checked.
#[derive(Debug)]
enum Sessions {
    // Boxed: a cache (with its client) is far larger than a map.
    Keyport(Box<SessionCache>),
    /// Fixed tokens and principals, for testing handlers: [`Guard::offline`].
    Offline(HashMap<String, OfflineSession>),
}

/// A session of an [offline](Guard::offline) guard.
#[derive(Debug)]
struct OfflineSession {
    principal: Arc<Principal>,
    /// The permissions its roles grant, as Keyport would say.
    granted: Vec<String>,
}

/// A valid session, as the guard uses it.
struct Checked {
    principal: Arc<Principal>,
    /// Keyport pushed the expiry forward: re-issue the cookie.
    refreshed: bool,
    /// Keyport's decisions of the route's permissions, in order; empty when
    /// the route names none.
    decisions: Vec<bool>,
}

impl Checked {
    /// A decision from the cache.
    fn decided(decision: Decision) -> Self {
        Self { principal: decision.principal, refreshed: false, decisions: decision.allowed }
    }
}

/// Where the request's token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Bearer,
    Cookie,
}

impl Guard {
    /// A guard using `cache` (and its client) with `settings`.
    pub fn new(cache: SessionCache, settings: Arc<AuthSettings>) -> Self {
        Self { inner: Arc::new(GuardInner { sessions: Sessions::Keyport(Box::new(cache)), settings }) }
    }

    /// A guard for tests of an app's handlers, with no Keyport behind it:
    /// each of `sessions`' tokens (sent as a bearer token or the session
    /// cookie) is that principal's session, and any other token is refused
    /// as `UNAUTHENTICATED`. Route rules, CSRF checks, redirects and refusal
    /// pages work as in production. Calls that need Keyport (sign-in,
    /// sign-up, social sign-in, session lists, revocations) fail with
    /// `FAILED_PRECONDITION`; sign-out only clears the cookie.
    pub fn offline(
        settings: Arc<AuthSettings>,
        sessions: impl IntoIterator<Item = (impl Into<String>, Principal)>,
    ) -> Self {
        Self::offline_granting(settings, sessions.into_iter().map(|(token, principal)| (token, principal, Vec::new())))
    }

    /// Like [`Guard::offline`], with the permissions each principal's roles
    /// grant, for handlers behind permission rules or
    /// [`Auth::require`](super::Auth::require): each session is allowed
    /// exactly the permissions listed with it.
    pub fn offline_granting(
        settings: Arc<AuthSettings>,
        sessions: impl IntoIterator<Item = (impl Into<String>, Principal, Vec<String>)>,
    ) -> Self {
        let sessions = sessions
            .into_iter()
            .map(|(token, principal, granted)| {
                (token.into(), OfflineSession { principal: Arc::new(principal), granted })
            })
            .collect();
        Self { inner: Arc::new(GuardInner { sessions: Sessions::Offline(sessions), settings }) }
    }

    /// The settings in force.
    pub fn settings(&self) -> &AuthSettings {
        &self.inner.settings
    }

    /// The session cache (and, through it, the client); `None` for an
    /// [offline](Guard::offline) guard.
    pub fn cache(&self) -> Option<&SessionCache> {
        match &self.inner.sessions {
            Sessions::Keyport(cache) => Some(cache),
            Sessions::Offline(_) => None,
        }
    }

    fn keyport(&self, action: &str) -> Result<&SessionCache, Error> {
        self.cache().ok_or_else(|| {
            Status::failed_precondition(format!("an offline guard has no Keyport to {action}; use Guard::new")).into()
        })
    }

    /// The span the adapters run each guarded request in (handler included).
    /// [`Guard::check`] records the `decision` and, for a signed-in caller,
    /// `user_id` and `session_id`; never a token.
    pub fn span(&self, request: &impl RequestView) -> tracing::Span {
        tracing::info_span!(
            "keyport.guard",
            http.method = request.method(),
            http.path = request.path(),
            decision = tracing::field::Empty,
            user_id = tracing::field::Empty,
            session_id = tracing::field::Empty,
        )
    }

    /// Decides what happens to `request`.
    pub async fn check(&self, request: &impl RequestView) -> Outcome {
        let span = tracing::Span::current();
        // Browsers never send credentials on a CORS preflight, so it could
        // only ever be refused; the app's CORS handling must answer it.
        if is_preflight(request) {
            span.record("decision", "PREFLIGHT");
            return Outcome::Proceed { principal: None, set_cookies: Vec::new() };
        }
        let access = self.inner.settings.rules.access_for_request(request.method(), request.path());
        if self.is_cross_site_write(request) {
            return self.refuse(request, Refusal::CrossSite, Vec::new());
        }
        // An organization rule needs the organization the request names, in
        // the form of an id: anything else is no organization of the user's.
        let organization = access.organization_from().map(|from| {
            from.organization(request.path(), |name| request.header(name)).filter(|id| is_organization_id(id))
        });
        if let Some(None) = organization {
            return self.refuse(request, Refusal::Forbidden, Vec::new());
        }
        let mut set_cookies = Vec::new();
        let mut decisions = Vec::new();
        let principal = match self.token(request) {
            None => None,
            // A key is scoped: it reaches only routes whose rule names the
            // permissions to decide, never one that asks for a session (or
            // roles, which would bypass the key's scopes).
            Some((token, _))
                if is_api_key(token) && (access.permissions().is_none() || access.organization_from().is_some()) =>
            {
                if *access != Access::Public {
                    let refusal = Refusal::Unauthenticated { reason: "API_KEY_NOT_ACCEPTED" };
                    return self.refuse(request, refusal, set_cookies);
                }
                None
            }
            Some((token, source)) => match self.validate(token, request, access, organization.flatten()).await {
                Ok(Checked { principal, refreshed, decisions: decided }) => {
                    if refreshed && source == Source::Cookie {
                        set_cookies.push(self.inner.settings.cookie.issue(token, principal.expires_at));
                    }
                    decisions = decided;
                    Some(principal)
                }
                Err(error) if *error.reason() == Reason::PermissionUnknown => {
                    // The app's rule names a permission Keyport does not
                    // have: a bug to fix, not the caller's fault.
                    tracing::error!(%error, "a route rule names a permission outside Keyport's catalogue");
                    return self.refuse(request, Refusal::Misconfigured, set_cookies);
                }
                Err(error) if error.is_unavailable() || *error.reason() == Reason::ResourceExhausted => {
                    if *access != Access::Public {
                        tracing::warn!(%error, "keyport unreachable; failing closed");
                        return self.refuse(request, Refusal::Unavailable, set_cookies);
                    }
                    // A public page renders signed out rather than wait.
                    tracing::debug!(%error, "keyport unreachable; public page served signed out");
                    None
                }
                Err(error) => {
                    if source == Source::Cookie {
                        set_cookies.push(self.inner.settings.cookie.clear());
                    }
                    if *access != Access::Public {
                        let refusal = Refusal::Unauthenticated { reason: reason_name(&error) };
                        return self.refuse(request, refusal, set_cookies);
                    }
                    None
                }
            },
        };
        match (access, principal) {
            (Access::Public, None) => {
                span.record("decision", "ANONYMOUS");
                Outcome::Proceed { principal: None, set_cookies }
            }
            (_, None) => self.refuse(request, Refusal::Unauthenticated { reason: "UNAUTHENTICATED" }, set_cookies),
            (_, Some(principal)) if !access.roles_met(&principal) || !access.permissions_met(&decisions) => {
                record_principal(&span, &principal);
                self.refuse(request, Refusal::Forbidden, set_cookies)
            }
            (Access::Aal2 | Access::Fresh(_), Some(principal)) if !access.assurance_met(&principal, wall_clock()) => {
                record_principal(&span, &principal);
                self.refuse(request, Refusal::StepUpRequired, set_cookies)
            }
            (_, Some(principal)) => {
                record_principal(&span, &principal);
                span.record("decision", "ALLOWED");
                Outcome::Proceed { principal: Some(principal), set_cookies }
            }
        }
    }

    /// The session of `token` (with the route's permissions decided, if it
    /// names any): from the cache, else from Keyport within the route's
    /// wait budget (an answer later than that counts as unavailable).
    async fn validate(
        &self,
        token: &str,
        request: &impl RequestView,
        access: &Access,
        organization: Option<&str>,
    ) -> Result<Checked, Error> {
        let permissions: Vec<&str> = access.permissions().unwrap_or_default().iter().map(String::as_str).collect();
        let cache = match &self.inner.sessions {
            Sessions::Keyport(cache) => cache,
            Sessions::Offline(_) => {
                let decision = self.authorize(&ClientInfo::default(), token, &permissions).await?;
                return Ok(Checked { principal: decision.principal, refreshed: false, decisions: decision.allowed });
            }
        };
        // A hit needs neither the client's details nor a timer.
        let hit = match (permissions.is_empty(), organization) {
            (true, _) => cache.lookup_shared(token).map(|principal| Checked {
                principal,
                refreshed: false,
                decisions: Vec::new(),
            }),
            (false, None) => cache.decide_cached(token, &permissions).map(Checked::decided),
            (false, Some(organization)) => {
                cache.decide_cached_in(token, organization, &permissions).map(Checked::decided)
            }
        };
        if let Some(hit) = hit {
            return Ok(hit);
        }
        // Boxed: the miss's state (a task handle, a timer) would otherwise
        // live in every request's future, hit or miss, and be moved with it.
        Box::pin(self.fetch(cache, token, request, access, organization)).await
    }

    /// The session of `token` from Keyport, within the route's wait budget.
    async fn fetch(
        &self,
        cache: &SessionCache,
        token: &str,
        request: &impl RequestView,
        access: &Access,
        organization: Option<&str>,
    ) -> Result<Checked, Error> {
        let settings = &self.inner.settings;
        let wait = if *access == Access::Public { settings.public_wait } else { settings.protected_wait };
        // The call runs on its own task and outlives the wait: when this
        // request stops waiting, the client still sees the attempt through
        // (marking a replica that never answers as down, so the next
        // requests fail over) and the answer still warms the cache. Each
        // such task ends within the client's deadline.
        let call = {
            let (cache, token, client) = (SessionCache::clone(cache), token.to_owned(), self.client_info(request));
            let permissions: Vec<String> = access.permissions().unwrap_or_default().to_vec();
            let organization = organization.map(str::to_owned);
            tokio::spawn(async move {
                if permissions.is_empty() {
                    let session = cache.get_session(&token, &client).await?;
                    let principal = Arc::new(session.principal);
                    return Ok(Checked { principal, refreshed: session.refreshed, decisions: Vec::new() });
                }
                let asked: Vec<&str> = permissions.iter().map(String::as_str).collect();
                let decision = match &organization {
                    Some(organization) => cache.authorize_in(&token, organization, &asked, &client).await?,
                    None => cache.authorize(&token, &asked, &client).await?,
                };
                Ok(Checked {
                    principal: decision.principal,
                    refreshed: decision.refreshed,
                    decisions: decision.allowed,
                })
            })
        };
        match tokio::time::timeout(wait, call).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(failed)) => Err(Status::internal(format!("the session check failed: {failed}")).into()),
            Err(_) => Err(Status::unavailable(format!("keyport did not answer within {wait:?}")).into()),
        }
    }

    /// Signs in through Keyport; returns the outcome and the `Set-Cookie`
    /// value: the session's cookie, or, when the user has a second factor,
    /// the challenge's (finish with [`Guard::complete_sign_in`]). The
    /// browser's `previous` session, if any, is ended once a session is
    /// issued: a new sign-in must not leave an old session running unseen.
    pub async fn sign_in(
        &self,
        client: &ClientInfo,
        previous: Option<&str>,
        email: &str,
        password: &str,
    ) -> Result<(FirstFactor, String), Error> {
        let outcome = self.keyport("sign in")?.client().sign_in(email, password, client).await?;
        self.first_factor(client, previous, outcome).await
    }

    /// Finishes a sign-in that answered a challenge, with the challenge in
    /// the browser's `cookie_header` and the user's `answer`. Returns the
    /// session and the `Set-Cookie` values: the challenge deleted and the
    /// session's cookie (the browser's `previous` session is ended).
    pub async fn complete_sign_in(
        &self,
        client: &ClientInfo,
        previous: Option<&str>,
        cookie_header: Option<&str>,
        answer: FactorAnswer<'_>,
    ) -> Result<(SignedIn, Vec<String>), Error> {
        let cookie = &self.inner.settings.cookie;
        let challenge = cookie_header.and_then(|header| cookie.read_challenge(header)).unwrap_or_default();
        let signed_in =
            self.keyport("complete a sign-in")?.client().complete_sign_in(challenge, answer, client).await?;
        self.end_previous(client, previous, &signed_in.token).await;
        let cookies = vec![cookie.clear_challenge(), cookie.issue(&signed_in.token, signed_in.principal.expires_at)];
        Ok((signed_in, cookies))
    }

    /// The cookie for a first factor's outcome; ends `previous` on a session.
    async fn first_factor(
        &self,
        client: &ClientInfo,
        previous: Option<&str>,
        outcome: SignInOutcome,
    ) -> Result<(FirstFactor, String), Error> {
        let cookie = &self.inner.settings.cookie;
        match outcome {
            SignInOutcome::Session(signed_in) => {
                self.end_previous(client, previous, &signed_in.token).await;
                let set = cookie.issue(&signed_in.token, signed_in.principal.expires_at);
                Ok((FirstFactor::SignedIn(signed_in), set))
            }
            SignInOutcome::Challenge(challenge) => {
                let set = cookie.issue_challenge(
                    &challenge.challenge,
                    challenge.passkey_options.as_deref(),
                    challenge.expires_at,
                );
                Ok((FirstFactor::SecondFactorRequired(challenge), set))
            }
            // Exhaustive in spirit: an unknown step never signs anyone in.
            #[allow(unreachable_patterns)]
            _ => Err(Status::failed_precondition("sign-in needs a step this version does not know").into()),
        }
    }

    /// Signs up through Keyport: the session and the `Set-Cookie` value,
    /// ending the browser's `previous` session like [`Guard::sign_in`]; or
    /// [`SignedUp::VerificationRequired`] when the server requires verified
    /// addresses (nobody signed in, nothing to set).
    pub async fn sign_up(
        &self,
        client: &ClientInfo,
        previous: Option<&str>,
        email: &str,
        password: &str,
        name: &str,
    ) -> Result<SignedUp<String>, Error> {
        match self.keyport("sign up")?.client().sign_up(email, password, name, client).await? {
            SignUpOutcome::SignedIn(signed_in) => {
                self.end_previous(client, previous, &signed_in.token).await;
                let cookie = self.inner.settings.cookie.issue(&signed_in.token, signed_in.principal.expires_at);
                Ok(SignedUp::SignedIn(signed_in, cookie))
            }
            _ => Ok(SignedUp::VerificationRequired),
        }
    }

    async fn end_previous(&self, client: &ClientInfo, previous: Option<&str>, current: &str) {
        if let Some(previous) = previous.filter(|previous| *previous != current)
            && let Err(error) = self.sign_out(client, Some(previous)).await
        {
            tracing::warn!(%error, "could not end the session replaced by a new sign-in");
        }
    }

    /// The middleware's pending `Set-Cookie` values to add to a handler's
    /// response: none when the handler set the session cookie itself (a
    /// sign-in or sign-out), whose decision wins over a refresh or a clear.
    pub fn cookies_to_append<'a>(
        &self,
        pending: Vec<String>,
        set_by_handler: impl IntoIterator<Item = &'a str>,
    ) -> Vec<String> {
        if pending.is_empty() {
            return pending;
        }
        let name = self.inner.settings.cookie.name.as_str();
        let sets_session =
            |cookie: &str| cookie.trim_start().strip_prefix(name).is_some_and(|rest| rest.starts_with('='));
        if set_by_handler.into_iter().any(sets_session) { Vec::new() } else { pending }
    }

    /// Signs out the session of `token` (if any) and returns the `Set-Cookie`
    /// value that deletes the cookie. Succeeds even if the session was gone.
    pub async fn sign_out(&self, client: &ClientInfo, token: Option<&str>) -> Result<String, Error> {
        if let (Some(token), Some(cache)) = (token, self.cache()) {
            forget(cache, token);
            match cache.client().sign_out(token, client).await {
                Ok(()) => {}
                Err(error) if matches!(error.reason(), Reason::Unauthenticated | Reason::SessionExpired) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(self.inner.settings.cookie.clear())
    }

    /// The configured social sign-in providers: (id, display name). None
    /// for an offline guard.
    pub async fn list_providers(&self) -> Result<Vec<(String, String)>, Error> {
        match self.cache() {
            Some(cache) => cache.client().list_providers().await,
            None => Ok(Vec::new()),
        }
    }

    /// The sessions of `token`'s user, newest first.
    pub async fn list_sessions(&self, client: &ClientInfo, token: &str) -> Result<Vec<SessionSummary>, Error> {
        self.keyport("list sessions")?.client().list_sessions(token, client).await
    }

    /// Revokes one of the sessions of `token`'s user and drops it from the
    /// cache at once.
    pub async fn revoke_session(&self, client: &ClientInfo, token: &str, session_id: &str) -> Result<(), Error> {
        let cache = self.keyport("revoke a session")?;
        cache.client().revoke_session(token, session_id, client).await?;
        cache.forget_session(session_id);
        Ok(())
    }

    /// Ends every other session of `token`'s user; returns how many. The
    /// user's cached sessions are dropped at once, not only when the event
    /// arrives.
    pub async fn revoke_other_sessions(&self, client: &ClientInfo, token: &str) -> Result<u32, Error> {
        let cache = self.keyport("revoke sessions")?;
        let caller = cache.get_session(token, client).await?;
        let revoked = cache.client().revoke_other_sessions(token, client).await?;
        cache.forget_user(&caller.principal.user_id);
        Ok(revoked)
    }

    /// The second factors of `token`'s user.
    pub async fn list_factors(&self, client: &ClientInfo, token: &str) -> Result<FactorStatus, Error> {
        self.keyport("list second factors")?.client().list_factors(token, client).await
    }

    /// Starts enrolling an authenticator app for `token`'s user.
    pub async fn enroll_totp(&self, client: &ClientInfo, token: &str) -> Result<TotpEnrollment, Error> {
        self.keyport("enrol an authenticator app")?.client().enroll_totp(token, client).await
    }

    /// Turns the pending app on; returns the backup codes. The session
    /// becomes AAL2 here at once (its cached copy is dropped).
    pub async fn confirm_totp(&self, client: &ClientInfo, token: &str, code: &str) -> Result<Vec<String>, Error> {
        let cache = self.keyport("confirm an authenticator app")?;
        let codes = cache.client().confirm_totp(token, code, client).await?;
        forget(cache, token);
        Ok(codes)
    }

    /// Turns the app off; returns how many other sessions ended.
    pub async fn disable_totp(&self, client: &ClientInfo, token: &str) -> Result<u32, Error> {
        let cache = self.keyport("turn an authenticator app off")?;
        let ended = cache.client().disable_totp(token, client).await?;
        forget(cache, token);
        Ok(ended)
    }

    /// Steps `token`'s session up to AAL2 with a second factor; the cached
    /// copy at the old level is dropped at once.
    pub async fn step_up(&self, client: &ClientInfo, token: &str, answer: FactorAnswer<'_>) -> Result<(), Error> {
        let cache = self.keyport("step up")?;
        cache.client().step_up(token, answer, client).await?;
        forget(cache, token);
        Ok(())
    }

    /// The passkey request options of the sign-in challenge in the
    /// browser's `cookie_header`, for the page that asks for the second
    /// factor; `None` when the user has no passkey.
    pub fn challenge_passkey_options(&self, cookie_header: Option<&str>) -> Option<String> {
        self.inner.settings.cookie.read_challenge_passkey_options(cookie_header?)
    }

    /// Starts registering a passkey for `token`'s user. The ceremony is
    /// bound to the session: the page may carry it in a form field.
    pub async fn start_passkey_registration(&self, client: &ClientInfo, token: &str) -> Result<PasskeyCeremony, Error> {
        self.keyport("start a passkey registration")?.client().start_passkey_registration(token, client).await
    }

    /// Finishes a passkey registration; the session becomes AAL2 here at
    /// once (its cached copy is dropped).
    pub async fn finish_passkey_registration(
        &self,
        client: &ClientInfo,
        token: &str,
        ceremony: &str,
        credential: &str,
        name: &str,
    ) -> Result<Passkey, Error> {
        let cache = self.keyport("register a passkey")?;
        let passkey = cache.client().finish_passkey_registration(token, ceremony, credential, name, client).await?;
        forget(cache, token);
        Ok(passkey)
    }

    /// The passkeys of `token`'s user, oldest first.
    pub async fn list_passkeys(&self, client: &ClientInfo, token: &str) -> Result<Vec<Passkey>, Error> {
        self.keyport("list passkeys")?.client().list_passkeys(token, client).await
    }

    /// Renames one of the passkeys of `token`'s user.
    pub async fn rename_passkey(
        &self,
        client: &ClientInfo,
        token: &str,
        id: &str,
        name: &str,
    ) -> Result<Passkey, Error> {
        self.keyport("rename a passkey")?.client().rename_passkey(token, id, name, client).await
    }

    /// Deletes one of the passkeys of `token`'s user; returns how many
    /// other sessions ended. The session's cached copy is dropped (it may
    /// have become AAL1).
    pub async fn delete_passkey(&self, client: &ClientInfo, token: &str, id: &str) -> Result<u32, Error> {
        let cache = self.keyport("delete a passkey")?;
        let ended = cache.client().delete_passkey(token, id, client).await?;
        forget(cache, token);
        Ok(ended)
    }

    /// Starts a sign-in with a passkey alone: the WebAuthn options for the
    /// page, and the `Set-Cookie` value binding the ceremony to this browser.
    pub async fn start_passkey_sign_in(&self, client: &ClientInfo) -> Result<(String, String), Error> {
        let started = self.keyport("start a passkey sign-in")?.client().start_passkey_sign_in(client).await?;
        Ok((started.options, self.inner.settings.cookie.issue_passkey_ceremony(&started.ceremony)))
    }

    /// Finishes a passkey sign-in with the ceremony in the browser's
    /// `cookie_header` and the browser's `credential`. Returns the session
    /// and the `Set-Cookie` values: the ceremony deleted and the session's
    /// cookie (the browser's `previous` session is ended).
    pub async fn finish_passkey_sign_in(
        &self,
        client: &ClientInfo,
        previous: Option<&str>,
        cookie_header: Option<&str>,
        credential: &str,
    ) -> Result<(SignedIn, Vec<String>), Error> {
        let cookie = &self.inner.settings.cookie;
        let ceremony = cookie_header.and_then(|header| cookie.read_passkey_ceremony(header)).unwrap_or_default();
        let signed_in = self
            .keyport("finish a passkey sign-in")?
            .client()
            .finish_passkey_sign_in(ceremony, credential, client)
            .await?;
        self.end_previous(client, previous, &signed_in.token).await;
        let cookies =
            vec![cookie.clear_passkey_ceremony(), cookie.issue(&signed_in.token, signed_in.principal.expires_at)];
        Ok((signed_in, cookies))
    }

    /// Starts a step-up of `token`'s session with a passkey. The ceremony is
    /// bound to the session: the page may carry it in a form field.
    pub async fn start_passkey_step_up(&self, client: &ClientInfo, token: &str) -> Result<PasskeyCeremony, Error> {
        self.keyport("start a passkey step-up")?.client().start_passkey_step_up(token, client).await
    }

    /// Steps `token`'s session up with a passkey's answer; the cached copy
    /// at the old level is dropped at once.
    pub async fn step_up_with_passkey(
        &self,
        client: &ClientInfo,
        token: &str,
        ceremony: &str,
        credential: &str,
    ) -> Result<(), Error> {
        let cache = self.keyport("step up with a passkey")?;
        cache.client().step_up_with_passkey(token, ceremony, credential, client).await?;
        forget(cache, token);
        Ok(())
    }

    /// Mails `token`'s user a link that verifies their address.
    pub async fn request_email_verification(&self, client: &ClientInfo, token: &str) -> Result<(), Error> {
        self.keyport("request an email verification")?.client().request_email_verification(token, client).await
    }

    /// Starts an email sign-in: returns the `Set-Cookie` value binding it to
    /// this browser. The answer is the same whether or not `email` has an
    /// account.
    pub async fn start_email_sign_in(&self, client: &ClientInfo, email: &str) -> Result<String, Error> {
        let started = self.keyport("start an email sign-in")?.client().start_email_sign_in(email, client).await?;
        Ok(self.inner.settings.cookie.issue_email_binding(&started.binding))
    }

    /// Finishes an email sign-in with `proof` and the binding in the
    /// browser's `cookie_header`. Returns the session (or, when the user has a
    /// second factor, the challenge), whether the account is new, and the
    /// `Set-Cookie` values to send: the binding deleted and the session's
    /// (or challenge's) cookie; the browser's `previous` session is ended.
    pub async fn finish_email_sign_in(
        &self,
        client: &ClientInfo,
        previous: Option<&str>,
        cookie_header: Option<&str>,
        proof: EmailProof<'_>,
    ) -> Result<(FirstFactor, bool, Vec<String>), Error> {
        let cookie = &self.inner.settings.cookie;
        let binding = cookie_header.and_then(|header| cookie.read_email_binding(header)).unwrap_or_default();
        let (outcome, new_user) =
            self.keyport("finish an email sign-in")?.client().finish_email_sign_in(binding, proof, client).await?;
        let (first, set) = self.first_factor(client, previous, outcome).await?;
        Ok((first, new_user, vec![cookie.clear_email_binding(), set]))
    }

    /// Mails a new verification link to `email`, if an unverified account
    /// has it; the same answer either way.
    pub async fn request_email_verification_for(&self, client: &ClientInfo, email: &str) -> Result<(), Error> {
        self.keyport("request an email verification")?.client().request_email_verification_for(email, client).await
    }

    /// Marks an address verified with a verification link's token. The
    /// cache drops the user's sessions when Keyport's event arrives.
    pub async fn verify_email(&self, client: &ClientInfo, link_token: &str) -> Result<(), Error> {
        self.keyport("verify an email")?.client().verify_email(link_token, client).await
    }

    /// Mails a password-reset link to `email` if an account has it; the
    /// same answer either way.
    pub async fn request_password_reset(&self, client: &ClientInfo, email: &str) -> Result<(), Error> {
        self.keyport("request a password reset")?.client().request_password_reset(email, client).await
    }

    /// Sets a new password with a reset link's token; every session of the
    /// user ends (the cache hears of it at once) and nobody is signed in.
    pub async fn reset_password(
        &self,
        client: &ClientInfo,
        link_token: &str,
        new_password: &str,
    ) -> Result<u32, Error> {
        self.keyport("reset a password")?.client().reset_password(link_token, new_password, client).await
    }

    /// Starts a social sign-in (or, with `link_token`, a link): returns where
    /// to redirect the browser and the `Set-Cookie` value binding the flow to it.
    pub async fn start_oauth(
        &self,
        client: &ClientInfo,
        provider_id: &str,
        redirect_uri: &str,
        link_token: Option<&str>,
    ) -> Result<(String, String), Error> {
        let started = self
            .keyport("start a social sign-in")?
            .client()
            .start_oauth(provider_id, redirect_uri, link_token, client)
            .await?;
        Ok((started.authorization_url, self.inner.settings.cookie.issue_oauth_binding(&started.binding)))
    }

    /// Finishes a social sign-in from the callback's `query` and the
    /// browser's `cookie_header`. Returns the outcome and the `Set-Cookie`
    /// values to send: the binding cookie deleted and, on sign-in, the
    /// session cookie (the browser's `previous` session is ended).
    pub async fn finish_oauth(
        &self,
        client: &ClientInfo,
        previous: Option<&str>,
        redirect_uri: &str,
        query: Option<&str>,
        cookie_header: Option<&str>,
    ) -> Result<(FinishedOAuth, Vec<String>), Error> {
        let mut callback = OAuthCallback {
            redirect_uri: redirect_uri.to_owned(),
            binding: cookie_header
                .and_then(|c| self.inner.settings.cookie.read_oauth_binding(c))
                .unwrap_or_default()
                .to_owned(),
            ..OAuthCallback::default()
        };
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match &*key {
                "state" => callback.state = value.into_owned(),
                "code" => callback.code = value.into_owned(),
                "error" => callback.error = value.into_owned(),
                _ => {}
            }
        }
        let mut cookies = vec![self.inner.settings.cookie.clear_oauth_binding()];
        let finished = self.keyport("finish a social sign-in")?.client().finish_oauth(&callback, client).await?;
        match &finished {
            FinishedOAuth::SignedIn { signed_in, .. } => {
                self.end_previous(client, previous, &signed_in.token).await;
                cookies.push(self.inner.settings.cookie.issue(&signed_in.token, signed_in.principal.expires_at));
            }
            FinishedOAuth::Challenge(challenge) => {
                cookies.push(self.inner.settings.cookie.issue_challenge(
                    &challenge.challenge,
                    challenge.passkey_options.as_deref(),
                    challenge.expires_at,
                ));
            }
            FinishedOAuth::Linked { .. } => {}
        }
        Ok((finished, cookies))
    }

    /// The session token of `request` (bearer first, then cookie).
    pub fn token_of<'r>(&self, request: &'r impl RequestView) -> Option<&'r str> {
        self.token(request).map(|(token, _)| token)
    }

    /// The end user's address and agent, and the request's trace context,
    /// to forward to Keyport.
    pub fn client_info(&self, request: &impl RequestView) -> ClientInfo {
        let forwarded = self
            .inner
            .settings
            .trust_forwarded_for
            .then(|| request.header("x-forwarded-for"))
            .flatten()
            // The right-most entry is the one our own proxy appended; those
            // left of it are whatever the client claimed.
            .and_then(|value| value.rsplit(',').next())
            .map(|ip| ip.trim().to_owned());
        ClientInfo {
            ip_address: forwarded.or_else(|| request.peer_ip()),
            user_agent: request.header("user-agent").map(str::to_owned),
            ..ClientInfo::default()
        }
        // The app's own span is not known here; its caller's trace is.
        .with_trace_context(request.header("traceparent"), request.header("tracestate"))
    }

    fn token<'r>(&self, request: &'r impl RequestView) -> Option<(&'r str, Source)> {
        if let Some(token) = bearer(request) {
            return Some((token, Source::Bearer));
        }
        let cookies = request.header("cookie")?;
        // A cookie carries a session, never a key: a key in one would be
        // an ambient credential.
        self.inner.settings.cookie.read(cookies).filter(|token| !is_api_key(token)).map(|token| (token, Source::Cookie))
    }

    /// CSRF defence (OWASP: verify the origin with standard headers). An
    /// unsafe request without a bearer token is refused when it carries the
    /// session cookie or comes from a browser (`Origin` or `Referer` set),
    /// unless that origin is allowed. This also stops login CSRF: a foreign
    /// page posting to the sign-in handler.
    fn is_cross_site_write(&self, request: &impl RequestView) -> bool {
        // Only a bearer token is not ambient. `Basic` credentials (a staging
        // site behind basic auth) are sent by browsers on their own, exactly
        // like cookies, so they must not skip the check.
        if !is_unsafe(request.method()) || bearer(request).is_some() {
            return false;
        }
        // Set by the browser, never by a page: trusted where present. A page
        // with `Referrer-Policy: no-referrer` posts with `Origin: null`, and
        // only this header says the post is its own.
        if request.header("sec-fetch-site") == Some("same-origin") {
            return false;
        }
        let has_cookie = request.header("cookie").and_then(|c| self.inner.settings.cookie.read(c)).is_some();
        let from_browser = request.header("origin").is_some() || request.header("referer").is_some();
        (has_cookie || from_browser) && !self.same_origin(request)
    }

    /// `Origin`, else `Referer`, is an allowed origin, or the request's own
    /// host when none is configured.
    fn same_origin(&self, request: &impl RequestView) -> bool {
        let source = request.header("origin").filter(|o| *o != "null").map(str::to_owned).or_else(|| {
            let referer = request.header("referer")?;
            let after_scheme = referer.find("://")? + 3;
            let end = referer[after_scheme..].find('/').map_or(referer.len(), |i| after_scheme + i);
            Some(referer[..end].to_owned())
        });
        let Some(origin) = source else { return false };
        let origin = origin.trim_end_matches('/');
        if self.inner.settings.allowed_origins.is_empty() {
            let host = request.header("host").unwrap_or_default();
            origin.split_once("://").is_some_and(|(_, authority)| !host.is_empty() && authority == host)
        } else {
            self.inner.settings.allowed_origins.iter().any(|allowed| allowed == origin)
        }
    }

    /// Answers for the handler: the app's [`RefusalPage`](super::RefusalPage)
    /// if it has one for this refusal, else the default (a redirect to sign
    /// in or an HTML page for browsers, JSON for API clients).
    fn refuse(&self, request: &impl RequestView, refusal: Refusal, set_cookies: Vec<String>) -> Outcome {
        tracing::Span::current().record("decision", refusal.reason());
        let mut reply = self.refusal_reply(request, refusal);
        reply.headers.extend(set_cookies.into_iter().map(|cookie| ("set-cookie", cookie)));
        Outcome::Respond(reply)
    }

    /// The answer to `request` for `refusal`: the app's
    /// [`RefusalPage`](super::RefusalPage) if it has one, else the default
    /// (a redirect to sign in or an HTML page for browsers, JSON for API
    /// clients).
    pub fn refusal_reply(&self, request: &impl RequestView, refusal: Refusal) -> Reply {
        let browser = is_navigation(request);
        let settings = &self.inner.settings;
        let context = RefusalContext { refusal, browser, path: request.path() };
        let mut reply =
            settings.refusal_page.as_ref().and_then(|page| page.reply(&context)).unwrap_or_else(|| {
                match (refusal, browser, &settings.forbidden_path) {
                    (Refusal::Unauthenticated { .. }, true, _) => {
                        Reply::see_other(self.return_location(&settings.sign_in_path, request))
                    }
                    (Refusal::StepUpRequired, true, _) => {
                        Reply::see_other(self.return_location(&settings.step_up_path, request))
                    }
                    (Refusal::Forbidden, true, Some(path)) => Reply::see_other(path.clone()),
                    (_, true, _) => default_page(refusal),
                    (_, false, _) => default_json(refusal),
                }
            });
        if reply.status == 401 && !reply.headers.iter().any(|(name, _)| *name == "www-authenticate") {
            reply.headers.push(("www-authenticate", "Bearer".into()));
        }
        reply
    }

    /// Decides `permissions` for the session `token` through the cache, as
    /// permission rules do; an offline guard answers from its granted lists.
    pub async fn authorize(&self, client: &ClientInfo, token: &str, permissions: &[&str]) -> Result<Decision, Error> {
        match &self.inner.sessions {
            Sessions::Keyport(cache) => cache.authorize(token, permissions, client).await,
            Sessions::Offline(sessions) => {
                let session = sessions
                    .get(token)
                    .ok_or_else(|| Error::from(Status::unauthenticated("not one of the offline guard's tokens")))?;
                let allowed = permissions.iter().map(|p| session.granted.iter().any(|g| g == p)).collect();
                Ok(Decision { principal: Arc::clone(&session.principal), allowed, refreshed: false })
            }
        }
    }

    /// Decides `permissions` for the session `token` in the organization
    /// `organization_id`, through the cache, as organization rules do; an
    /// offline guard answers from its granted lists, organizations aside.
    pub async fn authorize_in(
        &self,
        client: &ClientInfo,
        token: &str,
        organization_id: &str,
        permissions: &[&str],
    ) -> Result<Decision, Error> {
        match &self.inner.sessions {
            Sessions::Keyport(cache) => cache.authorize_in(token, organization_id, permissions, client).await,
            Sessions::Offline(_) => self.authorize(client, token, permissions).await,
        }
    }

    /// `page` (sign-in or step-up), with the page to come back to (a form
    /// post cannot be replayed by a redirect back, so it just goes there).
    fn return_location(&self, page: &str, request: &impl RequestView) -> String {
        let settings = &self.inner.settings;
        if !matches!(request.method(), "GET" | "HEAD") {
            return page.to_owned();
        }
        let mut back = request.path().to_owned();
        if let Some(query) = request.query() {
            back.push('?');
            back.push_str(query);
        }
        let back = percent_encoding::utf8_percent_encode(&back, percent_encoding::NON_ALPHANUMERIC);
        format!("{page}?{}={back}", settings.return_param)
    }
}

/// The wall-clock time: a session's `authenticated_at` is the server's
/// wall-clock time, so freshness is judged on the same scale.
#[expect(clippy::disallowed_methods, reason = "freshness compares against the server's wall-clock timestamps")]
fn wall_clock() -> std::time::SystemTime {
    std::time::SystemTime::now()
}

/// Drops `token`'s session from `cache`: it changed here, and must not be
/// served at its old level until the event arrives.
fn forget(cache: &SessionCache, token: &str) {
    if let Some(id) = session_id_of(token) {
        cache.forget_session(id);
    }
}

fn record_principal(span: &tracing::Span, principal: &Principal) {
    span.record("user_id", principal.user_id.as_str());
    span.record("session_id", principal.session_id.as_str());
}

/// The refusal of a request whose check failed with `error`.
pub(crate) fn refusal_for(error: &Error) -> Refusal {
    match error.reason() {
        Reason::PermissionUnknown => Refusal::Misconfigured,
        Reason::ResourceExhausted => Refusal::Unavailable,
        _ if error.is_unavailable() => Refusal::Unavailable,
        _ => Refusal::Unauthenticated { reason: reason_name(error) },
    }
}

fn reason_name(error: &Error) -> &'static str {
    match error.reason() {
        Reason::SessionExpired => "SESSION_EXPIRED",
        _ => "UNAUTHENTICATED",
    }
}

fn is_unsafe(method: &str) -> bool {
    !matches!(method, "GET" | "HEAD" | "OPTIONS" | "TRACE")
}

/// A browser loading a page (any method, e.g. a form post), as opposed to
/// an API call: `Sec-Fetch-Mode: navigate`, or a GET that accepts HTML.
fn is_navigation(request: &impl RequestView) -> bool {
    request.header("sec-fetch-mode") == Some("navigate")
        || (matches!(request.method(), "GET" | "HEAD")
            && request.header("accept").is_some_and(|a| a.contains("text/html")))
}

/// A CORS preflight: `OPTIONS` with `Origin` and
/// `Access-Control-Request-Method`.
fn is_preflight(request: &impl RequestView) -> bool {
    request.method() == "OPTIONS"
        && request.header("origin").is_some()
        && request.header("access-control-request-method").is_some()
}

/// Whether `id` has the form of an organization id (a UUID, lower-case
/// and hyphenated), so that a bad URL is refused here, not sent on.
fn is_organization_id(id: &str) -> bool {
    id.len() == 36
        && id.bytes().enumerate().all(|(at, b)| match at {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
        })
}

/// Whether `token` is an API key rather than a session token.
fn is_api_key(token: &str) -> bool {
    token.starts_with(crate::cache::API_KEY_PREFIX)
}

/// The token of an `Authorization: Bearer <token>` header. Any other scheme
/// (`Basic` from a site behind basic auth) is not Keyport's and leaves the
/// session cookie in charge.
fn bearer(request: &impl RequestView) -> Option<&str> {
    let (scheme, token) = request.header("authorization")?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// How a first factor (password, mailbox, provider) ended in a web app.
#[derive(Debug, Clone)]
#[non_exhaustive]
#[expect(
    clippy::large_enum_variant,
    reason = "one value per sign-in, matched at once: a box would cost every caller a deref for nothing"
)]
pub enum FirstFactor {
    /// Signed in; the accompanying cookie is the session's.
    SignedIn(SignedIn),
    /// The user has a second factor; the accompanying cookie keeps the
    /// challenge. Send the browser to a page that asks for the code and
    /// calls [`Guard::complete_sign_in`].
    SecondFactorRequired(SecondFactorChallenge),
}

/// How a sign-up through the web layer ended. `C` is the adapter's
/// `Set-Cookie` header type.
#[derive(Debug, Clone)]
#[non_exhaustive]
#[expect(
    clippy::large_enum_variant,
    reason = "one value per sign-up, matched at once: a box would cost every caller a deref for nothing"
)]
pub enum SignedUp<C> {
    /// Signed in: the session, and the header that sets its cookie.
    SignedIn(SignedIn, C),
    /// The server requires verified addresses: nobody is signed in, and a
    /// mail is on its way (a link for a new account, a notice for an
    /// existing one). Show a "check your mail" page.
    VerificationRequired,
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use tracing::{Instrument, field::Visit, span};
    use tracing_subscriber::{Layer, layer::SubscriberExt, registry::Registry};

    use super::*;
    use crate::web::{RouteRules, tests::now};

    struct View {
        method: &'static str,
        path: &'static str,
        headers: Vec<(&'static str, &'static str)>,
    }

    impl RequestView for View {
        fn method(&self) -> &str {
            self.method
        }
        fn path(&self) -> &str {
            self.path
        }
        fn query(&self) -> Option<&str> {
            Some("code=secret-code")
        }
        fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
        }
        fn peer_ip(&self) -> Option<String> {
            None
        }
    }

    /// Every field recorded on any span, as `name=value`.
    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<Vec<String>>>);

    impl Visit for Recorded {
        fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
            if let Ok(mut fields) = self.0.lock() {
                fields.push(format!("{}={value:?}", field.name()).replace('"', ""));
            }
        }
    }

    impl<S: tracing::Subscriber> Layer<S> for Recorded {
        fn on_new_span(
            &self,
            attrs: &span::Attributes<'_>,
            _: &span::Id,
            _: tracing_subscriber::layer::Context<'_, S>,
        ) {
            attrs.record(&mut self.clone());
        }
        fn on_record(&self, _: &span::Id, values: &span::Record<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
            values.record(&mut self.clone());
        }
    }

    fn guard() -> Guard {
        let settings = AuthSettings::new(RouteRules::new().require_role("/admin", "admin").protect("/app")).shared();
        Guard::offline(settings, [("ann-token", Principal::for_tests("ann@example.com", &[]))])
    }

    #[test]
    fn the_requests_trace_context_is_forwarded_when_well_formed() {
        let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let view = |headers| View { method: "GET", path: "/app", headers };
        let info = guard().client_info(&view(vec![("traceparent", parent), ("tracestate", "vendor=1")]));
        assert_eq!((info.traceparent.as_deref(), info.tracestate.as_deref()), (Some(parent), Some("vendor=1")));
        let bad = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7";
        let info = guard().client_info(&view(vec![("traceparent", bad), ("tracestate", "vendor=1")]));
        assert_eq!((info.traceparent, info.tracestate), (None, None), "a broken parent takes its state with it");
        assert_eq!(guard().client_info(&view(vec![])).traceparent, None);
    }

    /// The fields the span of one request ends up with.
    fn traced(view: &View) -> Vec<String> {
        let recorded = Recorded::default();
        let subscriber = Registry::default().with(recorded.clone());
        let guard = guard();
        tracing::subscriber::with_default(subscriber, || {
            now(async { guard.check(view).await }.instrument(guard.span(view)));
        });
        recorded.0.lock().map(|fields| fields.clone()).unwrap_or_default()
    }

    #[test]
    fn the_span_records_the_decision_and_the_caller_but_never_the_token() {
        let bearer = vec![("authorization", "Bearer ann-token")];
        let allowed = traced(&View { method: "GET", path: "/app", headers: bearer.clone() });
        for field in ["http.method=GET", "http.path=/app", "decision=ALLOWED", "user_id=test-user-ann@example.com"] {
            assert!(allowed.contains(&field.to_owned()), "{field} missing from {allowed:?}");
        }
        assert!(allowed.contains(&"session_id=test-session-ann@example.com".to_owned()), "{allowed:?}");
        let forbidden = traced(&View { method: "GET", path: "/admin", headers: bearer });
        assert!(forbidden.contains(&"decision=FORBIDDEN".to_owned()), "{forbidden:?}");
        let anonymous = traced(&View { method: "GET", path: "/app", headers: vec![] });
        assert!(anonymous.contains(&"decision=UNAUTHENTICATED".to_owned()), "{anonymous:?}");
        let cookie = vec![("cookie", "__Host-keyport_session=ann-token"), ("origin", "https://evil.example")];
        let csrf = traced(&View { method: "POST", path: "/app", headers: cookie });
        assert!(csrf.contains(&"decision=CSRF_REJECTED".to_owned()), "{csrf:?}");
        for fields in [&allowed, &forbidden, &anonymous, &csrf] {
            assert!(fields.iter().all(|f| !f.contains("ann-token") && !f.contains("secret-code")), "{fields:?}");
        }
    }

    #[test]
    fn preflights_and_same_origin_fetch_metadata() {
        let guard = guard();
        let preflight = View {
            method: "OPTIONS",
            path: "/admin",
            headers: vec![("origin", "https://app.example"), ("access-control-request-method", "POST")],
        };
        assert!(matches!(now(guard.check(&preflight)), Outcome::Proceed { principal: None, .. }));
        let plain = View { method: "OPTIONS", path: "/admin", headers: vec![] };
        assert!(matches!(now(guard.check(&plain)), Outcome::Respond(Reply { status: 401, .. })));
        let cookie = "__Host-keyport_session=ann-token";
        let own = View {
            method: "POST",
            path: "/app",
            headers: vec![("cookie", cookie), ("origin", "null"), ("sec-fetch-site", "same-origin")],
        };
        assert!(matches!(now(guard.check(&own)), Outcome::Proceed { principal: Some(_), .. }));
        let foreign = View {
            method: "POST",
            path: "/app",
            headers: vec![("cookie", cookie), ("origin", "null"), ("sec-fetch-site", "cross-site")],
        };
        assert!(matches!(now(guard.check(&foreign)), Outcome::Respond(Reply { status: 403, .. })));
    }
}
