//! [`Guard`]: decides what happens to one HTTP request.

use std::sync::Arc;

use super::{AuthSettings, rules::Access};
use crate::{
    cache::{SessionCache, session_id_of},
    client::{ClientInfo, FinishedOAuth, OAuthCallback, SignedIn},
    error::{Error, Reason},
    principal::Principal,
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
        /// Who is calling, if anyone.
        principal: Option<Principal>,
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
    cache: SessionCache,
    settings: Arc<AuthSettings>,
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
        Self { inner: Arc::new(GuardInner { cache, settings }) }
    }

    /// The settings in force.
    pub fn settings(&self) -> &AuthSettings {
        &self.inner.settings
    }

    /// The session cache (and, through it, the client).
    pub fn cache(&self) -> &SessionCache {
        &self.inner.cache
    }

    /// Decides what happens to `request`.
    pub async fn check(&self, request: &impl RequestView) -> Outcome {
        let access = self.inner.settings.rules.access_for(request.path());
        let mut set_cookies = Vec::new();
        if self.is_cross_site_write(request) {
            return Outcome::Respond(json(403, "CSRF_REJECTED", "cross-origin request refused"));
        }
        let principal = match self.token(request) {
            None => None,
            Some((token, source)) => match self.inner.cache.get_session(token, &self.client_info(request)).await {
                Ok(session) => {
                    if session.refreshed && source == Source::Cookie {
                        set_cookies.push(self.inner.settings.cookie.issue(token, session.principal.expires_at));
                    }
                    Some(session.principal)
                }
                Err(error) if error.is_unavailable() || *error.reason() == Reason::ResourceExhausted => {
                    if *access == Access::Public {
                        None
                    } else {
                        tracing::warn!(%error, "keyport unreachable; failing closed");
                        return Outcome::Respond(json(503, "AUTH_UNAVAILABLE", "authentication is unavailable"));
                    }
                }
                Err(error) => {
                    if source == Source::Cookie {
                        set_cookies.push(self.inner.settings.cookie.clear());
                    }
                    if *access != Access::Public {
                        return Outcome::Respond(self.unauthenticated(request, reason_name(&error), set_cookies));
                    }
                    None
                }
            },
        };
        match (access, principal) {
            (Access::Public, principal) => Outcome::Proceed { principal, set_cookies },
            (_, None) => Outcome::Respond(self.unauthenticated(request, "UNAUTHENTICATED", set_cookies)),
            (Access::Role(role), Some(principal)) if !principal.has_role(role) => {
                Outcome::Respond(self.forbidden(request, set_cookies))
            }
            (_, principal) => Outcome::Proceed { principal, set_cookies },
        }
    }

    /// Signs in through Keyport; returns the session and the `Set-Cookie`
    /// value. The browser's `previous` session, if any, is ended: a new
    /// sign-in must not leave an old session running unseen.
    pub async fn sign_in(
        &self,
        client: &ClientInfo,
        previous: Option<&str>,
        email: &str,
        password: &str,
    ) -> Result<(SignedIn, String), Error> {
        let signed_in = self.inner.cache.client().sign_in(email, password, client).await?;
        self.end_previous(client, previous, &signed_in.token).await;
        let cookie = self.inner.settings.cookie.issue(&signed_in.token, signed_in.principal.expires_at);
        Ok((signed_in, cookie))
    }

    /// Signs up through Keyport; returns the session and the `Set-Cookie`
    /// value, ending the browser's `previous` session like [`Guard::sign_in`].
    pub async fn sign_up(
        &self,
        client: &ClientInfo,
        previous: Option<&str>,
        email: &str,
        password: &str,
        name: &str,
    ) -> Result<(SignedIn, String), Error> {
        let signed_in = self.inner.cache.client().sign_up(email, password, name, client).await?;
        self.end_previous(client, previous, &signed_in.token).await;
        let cookie = self.inner.settings.cookie.issue(&signed_in.token, signed_in.principal.expires_at);
        Ok((signed_in, cookie))
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
        let name = self.inner.settings.cookie.name.as_str();
        let sets_session =
            |cookie: &str| cookie.trim_start().strip_prefix(name).is_some_and(|rest| rest.starts_with('='));
        if set_by_handler.into_iter().any(sets_session) { Vec::new() } else { pending }
    }

    /// Signs out the session of `token` (if any) and returns the `Set-Cookie`
    /// value that deletes the cookie. Succeeds even if the session was gone.
    pub async fn sign_out(&self, client: &ClientInfo, token: Option<&str>) -> Result<String, Error> {
        if let Some(token) = token {
            if let Some(id) = session_id_of(token) {
                self.inner.cache.forget_session(id);
            }
            match self.inner.cache.client().sign_out(token, client).await {
                Ok(()) => {}
                Err(error) if matches!(error.reason(), Reason::Unauthenticated | Reason::SessionExpired) => {}
                Err(error) => return Err(error),
            }
        }
        Ok(self.inner.settings.cookie.clear())
    }

    /// Revokes one of the sessions of `token`'s user and drops it from the
    /// cache at once.
    pub async fn revoke_session(&self, client: &ClientInfo, token: &str, session_id: &str) -> Result<(), Error> {
        self.inner.cache.client().revoke_session(token, session_id, client).await?;
        self.inner.cache.forget_session(session_id);
        Ok(())
    }

    /// Ends every other session of `token`'s user; returns how many. The
    /// user's cached sessions are dropped at once, not only when the event
    /// arrives.
    pub async fn revoke_other_sessions(&self, client: &ClientInfo, token: &str) -> Result<u32, Error> {
        let caller = self.inner.cache.get_session(token, client).await?;
        let revoked = self.inner.cache.client().revoke_other_sessions(token, client).await?;
        self.inner.cache.forget_user(&caller.principal.user_id);
        Ok(revoked)
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
        let started = self.inner.cache.client().start_oauth(provider_id, redirect_uri, link_token, client).await?;
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
        let finished = self.inner.cache.client().finish_oauth(&callback, client).await?;
        if let FinishedOAuth::SignedIn { signed_in, .. } = &finished {
            self.end_previous(client, previous, &signed_in.token).await;
            cookies.push(self.inner.settings.cookie.issue(&signed_in.token, signed_in.principal.expires_at));
        }
        Ok((finished, cookies))
    }

    /// The session token of `request` (bearer first, then cookie).
    pub fn token_of<'r>(&self, request: &'r impl RequestView) -> Option<&'r str> {
        self.token(request).map(|(token, _)| token)
    }

    /// The end user's address and agent, to forward to Keyport.
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
        }
    }

    fn token<'r>(&self, request: &'r impl RequestView) -> Option<(&'r str, Source)> {
        if let Some(token) = bearer(request) {
            return Some((token, Source::Bearer));
        }
        let cookies = request.header("cookie")?;
        self.inner.settings.cookie.read(cookies).map(|token| (token, Source::Cookie))
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

    /// 401 JSON for API clients; a redirect to sign in for browsers.
    fn unauthenticated(&self, request: &impl RequestView, reason: &str, set_cookies: Vec<String>) -> Reply {
        let mut reply = if is_navigation(request) {
            let location = if matches!(request.method(), "GET" | "HEAD") {
                let mut back = request.path().to_owned();
                if let Some(query) = request.query() {
                    back.push('?');
                    back.push_str(query);
                }
                let back = percent_encoding::utf8_percent_encode(&back, percent_encoding::NON_ALPHANUMERIC);
                format!("{}?{}={back}", self.inner.settings.sign_in_path, self.inner.settings.return_param)
            } else {
                // A form post cannot be replayed by a redirect back: just sign in.
                self.inner.settings.sign_in_path.clone()
            };
            Reply { status: 303, headers: vec![("location", location)], body: String::new() }
        } else {
            let mut reply = json(401, reason, "sign in first");
            reply.headers.push(("www-authenticate", "Bearer".into()));
            reply
        };
        reply.headers.extend(set_cookies.into_iter().map(|cookie| ("set-cookie", cookie)));
        reply
    }
}

impl Guard {
    /// 403: an HTML page (or a redirect to `forbidden_path`) for browsers,
    /// JSON for API clients.
    fn forbidden(&self, request: &impl RequestView, set_cookies: Vec<String>) -> Reply {
        let mut reply = match (&self.inner.settings.forbidden_path, is_navigation(request)) {
            (Some(path), true) => Reply { status: 303, headers: vec![("location", path.clone())], body: String::new() },
            (None, true) => Reply {
                status: 403,
                headers: vec![
                    ("content-type", "text/html; charset=utf-8".into()),
                    ("cache-control", "no-store".into()),
                ],
                body: "<!doctype html><title>Forbidden</title><h1>Forbidden</h1><p>Your account lacks the role this \
                       page needs.</p>"
                    .into(),
            },
            (_, false) => json(403, "FORBIDDEN", "missing role"),
        };
        reply.headers.extend(set_cookies.into_iter().map(|cookie| ("set-cookie", cookie)));
        reply
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

fn json(status: u16, reason: &str, message: &str) -> Reply {
    Reply {
        status,
        headers: vec![("content-type", "application/json".into()), ("cache-control", "no-store".into())],
        body: format!(r#"{{"error":"{reason}","message":"{message}"}}"#),
    }
}

/// The token of an `Authorization: Bearer <token>` header. Any other scheme
/// (`Basic` from a site behind basic auth) is not Keyport's and leaves the
/// session cookie in charge.
fn bearer(request: &impl RequestView) -> Option<&str> {
    let (scheme, token) = request.header("authorization")?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}
