//! A real OpenID Connect provider for end-to-end tests: panva's
//! `oidc-provider` (npm), run by Node.js from `tests/oidc-provider/`.
//!
//! [`OidcProvider::start`] spawns `node provider.mjs` on a free port of
//! 127.0.0.1 with one confidential client ([`CLIENT_ID`], [`CLIENT_SECRET`],
//! `client_secret_basic` preferred, `client_secret_post` accepted) for the given
//! redirect URIs: authorization code flow only, PKCE S256 required, scopes
//! `openid email profile`, and the scope claims (`email`, `email_verified`,
//! `name`) in the id_token as well as at userinfo. Its RS256 signing key is
//! generated at each start and published at the discovery document's `jwks_uri`.
//!
//! There is no login page: the test says who signs in next
//! ([`OidcProvider::next_login`]) or how the next authorization fails
//! ([`OidcProvider::next_error`]), or breaks the id_token of the next token
//! response ([`OidcProvider::tamper_next_token`]); [`OidcProvider::follow`]
//! then plays the browser from the authorization URL to the callback.
//!
//! Needs `node` (or `$KEYPORT_NODE`) and the pinned packages: run
//! `npm ci --prefix tests/oidc-provider` once before the tests.
//!
//! Cleanup: the provider exits when its stdin closes, so it dies with the test
//! process even when that process is killed and [`Drop`] never runs.

use std::io::{self, BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::{Url, redirect::Policy};
use serde::{Deserialize, Serialize};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The client id registered at the provider.
pub const CLIENT_ID: &str = "keyport-test";
/// The secret of [`CLIENT_ID`].
pub const CLIENT_SECRET: &str = "keyport-test-secret";

/// How long Node may take to print the issuer line.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long one HTTP request of the harness may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Redirects [`follow`](OidcProvider::follow) takes before giving up.
const MAX_REDIRECTS: usize = 20;
/// How much of an unexpected response body goes into an error message.
const BODY_SNIPPET: usize = 2000;

/// Who the next authorization signs in: the id_token's claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Login {
    /// The subject, `sub`.
    pub sub: String,
    /// `email`.
    pub email: String,
    /// `email_verified`.
    pub email_verified: bool,
    /// `name`.
    pub name: String,
}

/// How [`OidcProvider::tamper_next_token`] breaks the next id_token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    /// `aud` becomes `someone-else`; re-signed with the provider's key.
    Audience,
    /// `iss` becomes `http://127.0.0.1:1`; re-signed with the provider's key.
    Issuer,
    /// `nonce` becomes `not-<nonce>`; re-signed with the provider's key.
    Nonce,
    /// Claims and header (so `kid`) unchanged, signed with another RSA key.
    Signature,
    /// `iat`, `exp` (and `auth_time`) moved two hours back, so it expired
    /// well over an hour ago; re-signed with the provider's key.
    Expired,
}

impl Tamper {
    /// Every kind, for tests that try them all.
    pub const ALL: [Tamper; 5] = [Tamper::Audience, Tamper::Issuer, Tamper::Nonce, Tamper::Signature, Tamper::Expired];

    /// The name `provider.mjs` knows it by.
    fn kind(self) -> &'static str {
        match self {
            Tamper::Audience => "aud",
            Tamper::Issuer => "iss",
            Tamper::Nonce => "nonce",
            Tamper::Signature => "signature",
            Tamper::Expired => "expired",
        }
    }
}

/// The redirect back to the client that ends an authorization, as the
/// browser would have requested it (it is not requested).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Callback {
    /// `code`, on success.
    pub code: Option<String>,
    /// `state`, echoed.
    pub state: Option<String>,
    /// `error`, when the provider refused.
    pub error: Option<String>,
    /// The whole callback URL, for any other parameter (`iss`,
    /// `error_description`) or to hand to a web app's callback route.
    pub url: String,
}

impl Callback {
    /// Reads the query of a callback URL.
    fn from_url(url: &Url) -> Self {
        let param = |name: &str| url.query_pairs().find(|(key, _)| key == name).map(|(_, value)| value.into_owned());
        Callback { code: param("code"), state: param("state"), error: param("error"), url: url.to_string() }
    }
}

/// The running provider; dropping it kills the Node process.
#[derive(Debug)]
pub struct OidcProvider {
    issuer: String,
    redirect_uris: Vec<String>,
    http: reqwest::Client,
    child: Child,
}

/// The line `provider.mjs` prints when it listens.
#[derive(Deserialize)]
struct Ready {
    issuer: String,
}

impl OidcProvider {
    /// Starts a provider whose client accepts exactly `redirect_uris`.
    ///
    /// Fails when `tests/oidc-provider/node_modules` is missing (run
    /// `npm ci --prefix tests/oidc-provider`), when Node.js cannot run, or
    /// when the provider does not print its issuer within a minute.
    pub fn start(redirect_uris: &[&str]) -> io::Result<Self> {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("oidc-provider");
        if !dir.join("node_modules").join("oidc-provider").is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{}/node_modules is missing: run `npm ci --prefix tests/oidc-provider` \
                     (npm ci in tests/oidc-provider) before the tests",
                    dir.display()
                ),
            ));
        }
        if redirect_uris.is_empty() || redirect_uris.iter().any(|uri| uri.contains(',')) {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "need redirect URIs, none with a comma"));
        }
        let node = std::env::var_os("KEYPORT_NODE").unwrap_or_else(|| "node".into());
        let mut child = Command::new(&node)
            .arg("provider.mjs")
            .current_dir(&dir)
            .env("REDIRECT_URIS", redirect_uris.join(","))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("cannot run {node:?} (Node.js runs the test OIDC provider; set KEYPORT_NODE): {error}"),
                )
            })?;
        let (stdout, stderr) = match (child.stdout.take(), child.stderr.take()) {
            (Some(stdout), Some(stderr)) => (stdout, stderr),
            _ => {
                kill(&mut child);
                return Err(io::Error::other("the OIDC provider's output pipes are missing"));
            }
        };
        let (log, log_thread) = forward_stderr(stderr)?;
        // The first stdout line is the issuer; the rest is drained.
        let (ready_tx, ready_rx) = mpsc::channel();
        thread::Builder::new().name("oidc-provider-stdout".into()).spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = ready_tx.send(lines.next());
            lines.for_each(drop);
        })?;
        let ready = match ready_rx.recv_timeout(READY_TIMEOUT) {
            Ok(Some(Ok(line))) => serde_json::from_str::<Ready>(&line).map_err(|error| format!("{error}: {line:?}")),
            Ok(Some(Err(error))) => Err(error.to_string()),
            Ok(None) | Err(mpsc::RecvTimeoutError::Disconnected) => Err("it exited".to_owned()),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!("no issuer line within {READY_TIMEOUT:?}")),
        };
        let http = reqwest::Client::builder().redirect(Policy::none()).timeout(REQUEST_TIMEOUT).build();
        match (ready, http) {
            (Ok(ready), Ok(http)) => Ok(OidcProvider {
                issuer: ready.issuer,
                redirect_uris: redirect_uris.iter().map(|uri| (*uri).to_owned()).collect(),
                http,
                child,
            }),
            (ready, http) => {
                kill(&mut child);
                let _ = log_thread.join();
                let log = log.lock().map(|log| log.clone()).unwrap_or_default();
                let why = ready.err().or_else(|| http.err().map(|error| error.to_string())).unwrap_or_default();
                Err(io::Error::other(format!("the test OIDC provider did not start: {why}\nits stderr:\n{log}")))
            }
        }
    }

    /// The issuer, `http://127.0.0.1:PORT`; discovery is at
    /// `{issuer}/.well-known/openid-configuration`.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The registered client's id, [`CLIENT_ID`].
    pub fn client_id(&self) -> &'static str {
        CLIENT_ID
    }

    /// The registered client's secret, [`CLIENT_SECRET`].
    pub fn client_secret(&self) -> &'static str {
        CLIENT_SECRET
    }

    /// The redirect URIs the client was registered with.
    pub fn redirect_uris(&self) -> &[String] {
        &self.redirect_uris
    }

    /// Makes the next authorization sign `login` in. Used once: an
    /// authorization without one ends with `error=login_required`.
    pub async fn next_login(&self, login: &Login) -> Result<(), BoxError> {
        self.control("next-login", login).await
    }

    /// Makes the next authorization redirect back with `error` (and the
    /// request's `state`) instead of a code.
    pub async fn next_error(&self, error: &str) -> Result<(), BoxError> {
        #[derive(Serialize)]
        struct Body<'a> {
            error: &'a str,
        }
        self.control("next-error", &Body { error }).await
    }

    /// Breaks the id_token of the next successful token response.
    pub async fn tamper_next_token(&self, tamper: Tamper) -> Result<(), BoxError> {
        #[derive(Serialize)]
        struct Body {
            kind: &'static str,
        }
        self.control("tamper", &Body { kind: tamper.kind() }).await
    }

    /// Plays a fresh browser (no cookies yet) from `authorization_url`: follows
    /// every redirect, keeping the provider's cookies, up to the first one to
    /// a registered redirect URI, which it does not request, and returns that.
    pub async fn follow(&self, authorization_url: &str) -> Result<Callback, BoxError> {
        follow_redirects(&self.http, authorization_url, &self.redirect_uris).await
    }

    /// POSTs `body` as JSON to `/test/{path}`.
    async fn control(&self, path: &str, body: &impl Serialize) -> Result<(), BoxError> {
        let response = self.http.post(format!("{}/test/{path}", self.issuer)).json(body).send().await?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(format!("POST /test/{path}: {status}: {text}").into());
        }
        Ok(())
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        kill(&mut self.child);
    }
}

/// Closes the child's stdin (it exits on that), kills it and reaps it.
fn kill(child: &mut Child) {
    drop(child.stdin.take());
    let _ = child.kill();
    let _ = child.wait();
}

/// Passes the provider's stderr on to the test's (captured per test, shown
/// when it fails) and keeps a copy for start-up errors.
fn forward_stderr(stderr: std::process::ChildStderr) -> io::Result<(Arc<Mutex<String>>, JoinHandle<()>)> {
    let log = Arc::new(Mutex::new(String::new()));
    let copy = Arc::clone(&log);
    let handle = thread::Builder::new().name("oidc-provider-stderr".into()).spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("oidc-provider: {line}");
            if let Ok(mut log) = copy.lock() {
                log.push_str(&line);
                log.push('\n');
            }
        }
    })?;
    Ok((log, handle))
}

/// Plays a browser with a fresh cookie jar from `start` to the first
/// redirect to one of `redirect_uris` (compared without query and fragment),
/// and returns that redirect unrequested. Fails on a response that is not a
/// redirect, quoting its body.
pub(crate) async fn follow_redirects(
    http: &reqwest::Client,
    start: &str,
    redirect_uris: &[String],
) -> Result<Callback, BoxError> {
    let redirect_uris = redirect_uris.iter().map(|uri| Url::parse(uri)).collect::<Result<Vec<_>, _>>()?;
    let mut jar = CookieJar::default();
    let mut url = Url::parse(start)?;
    for _ in 0..MAX_REDIRECTS {
        if redirect_uris.iter().any(|uri| same_endpoint(uri, &url)) {
            return Ok(Callback::from_url(&url));
        }
        let mut request = http.get(url.clone());
        if let Some(cookies) = jar.header_for(&url) {
            request = request.header(COOKIE, cookies);
        }
        let response = request.send().await?;
        for set_cookie in response.headers().get_all(SET_COOKIE) {
            if let Ok(set_cookie) = set_cookie.to_str() {
                jar.store(&url, set_cookie);
            }
        }
        let status = response.status();
        let location = response.headers().get(LOCATION).and_then(|location| location.to_str().ok()).map(str::to_owned);
        match location {
            Some(location) if status.is_redirection() => url = url.join(&location)?,
            _ => {
                let body: String = response.text().await.unwrap_or_default().chars().take(BODY_SNIPPET).collect();
                return Err(format!("GET {url} answered {status}, not a redirect: {body}").into());
            }
        }
    }
    Err(format!("more than {MAX_REDIRECTS} redirects from {start}").into())
}

/// Whether `url` is `endpoint`, ignoring query and fragment.
fn same_endpoint(endpoint: &Url, url: &Url) -> bool {
    endpoint.scheme() == url.scheme()
        && endpoint.host_str() == url.host_str()
        && endpoint.port_or_known_default() == url.port_or_known_default()
        && endpoint.path() == url.path()
}

/// Just enough of a browser's cookie jar for the provider's interaction
/// cookies: host-only cookies by name and path; deletions honoured.
#[derive(Debug, Default)]
struct CookieJar {
    cookies: Vec<StoredCookie>,
}

#[derive(Debug)]
struct StoredCookie {
    origin: String,
    name: String,
    value: String,
    path: String,
}

impl CookieJar {
    /// Stores (or deletes) the cookie of one `Set-Cookie` header of a
    /// response to `url`.
    fn store(&mut self, url: &Url, set_cookie: &str) {
        let mut parts = set_cookie.split(';');
        let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
            return;
        };
        let (name, value) = (name.trim(), value.trim());
        let mut path = default_path(url);
        let mut delete = value.is_empty();
        for attribute in parts {
            let (key, attribute_value) = attribute.split_once('=').unwrap_or((attribute, ""));
            let attribute_value = attribute_value.trim();
            match key.trim().to_ascii_lowercase().as_str() {
                "path" if attribute_value.starts_with('/') => path = attribute_value.to_owned(),
                "max-age" => delete |= attribute_value.parse::<i64>().is_ok_and(|seconds| seconds <= 0),
                // Deletions are dated 1970; nothing else here is in the past.
                "expires" => delete |= attribute_value.contains("1970"),
                _ => {}
            }
        }
        let origin = origin(url);
        self.cookies.retain(|cookie| !(cookie.origin == origin && cookie.name == name && cookie.path == path));
        if !delete {
            self.cookies.push(StoredCookie { origin, name: name.to_owned(), value: value.to_owned(), path });
        }
    }

    /// The `Cookie` header for a request to `url`, if any cookie applies.
    fn header_for(&self, url: &Url) -> Option<String> {
        let origin = origin(url);
        let pairs: Vec<String> = self
            .cookies
            .iter()
            .filter(|cookie| cookie.origin == origin && path_matches(url.path(), &cookie.path))
            .map(|cookie| format!("{}={}", cookie.name, cookie.value))
            .collect();
        (!pairs.is_empty()).then(|| pairs.join("; "))
    }
}

/// Scheme, host and port of `url`.
fn origin(url: &Url) -> String {
    format!("{}://{}:{}", url.scheme(), url.host_str().unwrap_or_default(), url.port_or_known_default().unwrap_or(0))
}

/// RFC 6265 default cookie path: the request path up to its last `/`.
fn default_path(url: &Url) -> String {
    match url.path().rfind('/') {
        Some(0) | None => "/".to_owned(),
        Some(end) => url.path().get(..end).unwrap_or("/").to_owned(),
    }
}

/// RFC 6265 path-match.
fn path_matches(request_path: &str, cookie_path: &str) -> bool {
    request_path
        .strip_prefix(cookie_path)
        .is_some_and(|rest| rest.is_empty() || cookie_path.ends_with('/') || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet};
    use openidconnect::{ClaimsVerificationError, ClientId, IssuerUrl, Nonce};
    use serde_json::Value;
    use sha2::{Digest as _, Sha256};

    use super::*;
    use crate::github::random_token;

    const REDIRECT_URI: &str = "http://127.0.0.1:9/oauth/callback";

    #[derive(Debug, Deserialize)]
    struct Discovery {
        issuer: String,
        authorization_endpoint: String,
        token_endpoint: String,
        jwks_uri: String,
        code_challenge_methods_supported: Vec<String>,
        token_endpoint_auth_methods_supported: Vec<String>,
    }

    /// One authorization's secrets and its callback.
    struct Flow {
        callback: Callback,
        state: String,
        nonce: String,
        verifier: String,
    }

    fn alice() -> Login {
        Login {
            sub: "alice-sub".into(),
            email: "alice@example.com".into(),
            email_verified: true,
            name: "Alice Liddell".into(),
        }
    }

    async fn discover(provider: &OidcProvider) -> Discovery {
        let url = format!("{}/.well-known/openid-configuration", provider.issuer());
        provider.http.get(url).send().await.unwrap().error_for_status().unwrap().json().await.unwrap()
    }

    /// Builds an authorization URL by hand (PKCE S256, state, nonce) and
    /// follows it.
    async fn authorize(provider: &OidcProvider, discovery: &Discovery) -> Flow {
        let (state, nonce, verifier) =
            (random_token(), random_token(), format!("{}{}", random_token(), random_token()));
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let url = Url::parse_with_params(
            &discovery.authorization_endpoint,
            [
                ("response_type", "code"),
                ("client_id", CLIENT_ID),
                ("redirect_uri", REDIRECT_URI),
                ("scope", "openid email profile"),
                ("state", &state),
                ("nonce", &nonce),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        )
        .unwrap();
        let callback = provider.follow(url.as_str()).await.unwrap();
        Flow { callback, state, nonce, verifier }
    }

    /// Exchanges a code with client_secret_basic; returns the status and body.
    async fn exchange(
        provider: &OidcProvider,
        discovery: &Discovery,
        code: &str,
        verifier: &str,
    ) -> (reqwest::StatusCode, Value) {
        let response = provider
            .http
            .post(&discovery.token_endpoint)
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }

    /// Signs in `login` and returns the flow and its id_token.
    async fn sign_in(provider: &OidcProvider, discovery: &Discovery, login: &Login) -> (Flow, String) {
        provider.next_login(login).await.unwrap();
        let flow = authorize(provider, discovery).await;
        let code = flow.callback.code.clone().unwrap_or_else(|| panic!("no code: {:?}", flow.callback));
        let (status, body) = exchange(provider, discovery, &code, &flow.verifier).await;
        assert_eq!(status, 200, "{body}");
        let id_token = body["id_token"].as_str().unwrap().to_owned();
        (flow, id_token)
    }

    /// The id_token's payload, decoded without any check.
    fn payload(id_token: &str) -> Value {
        let middle = id_token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(middle).unwrap()).unwrap()
    }

    /// Verifies the id_token as a relying party would: signature against the
    /// provider's JWKS, `iss`, `aud`, `exp` and `nonce`.
    async fn verify(
        provider: &OidcProvider,
        discovery: &Discovery,
        id_token: &str,
        nonce: &str,
    ) -> Result<(), ClaimsVerificationError> {
        let jwks: CoreJsonWebKeySet =
            provider.http.get(&discovery.jwks_uri).send().await.unwrap().json().await.unwrap();
        let verifier = CoreIdTokenVerifier::new_public_client(
            ClientId::new(CLIENT_ID.into()),
            IssuerUrl::new(provider.issuer().into()).unwrap(),
            jwks,
        );
        let token: CoreIdToken = id_token.parse().unwrap();
        token.claims(&verifier, &Nonce::new(nonce.into())).map(drop)
    }

    #[tokio::test]
    async fn discovery_then_code_flow_with_pkce_and_nonce() {
        let provider = OidcProvider::start(&[REDIRECT_URI, "http://127.0.0.1:9/other"]).unwrap();
        let discovery = discover(&provider).await;
        assert_eq!(discovery.issuer, provider.issuer());
        assert_eq!(discovery.code_challenge_methods_supported, ["S256"]);
        assert!(discovery.token_endpoint_auth_methods_supported.iter().any(|method| method == "client_secret_basic"));

        let (flow, id_token) = sign_in(&provider, &discovery, &alice()).await;
        assert_eq!(flow.callback.state.as_deref(), Some(flow.state.as_str()));
        assert_eq!(flow.callback.error, None);
        assert!(flow.callback.url.starts_with(REDIRECT_URI), "{}", flow.callback.url);

        let claims = payload(&id_token);
        assert_eq!(claims["sub"], "alice-sub");
        assert_eq!(claims["email"], "alice@example.com");
        assert_eq!(claims["email_verified"], true);
        assert_eq!(claims["name"], "Alice Liddell");
        assert_eq!(claims["nonce"], flow.nonce.as_str());
        assert_eq!(claims["aud"], CLIENT_ID);
        assert_eq!(claims["iss"], provider.issuer());
        verify(&provider, &discovery, &id_token, &flow.nonce).await.unwrap();

        // A code is single-use, and bound to its PKCE verifier.
        let code = flow.callback.code.unwrap();
        let (status, body) = exchange(&provider, &discovery, &code, &flow.verifier).await;
        assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
        provider.next_login(&alice()).await.unwrap();
        let flow = authorize(&provider, &discovery).await;
        let wrong_verifier = format!("{}{}", random_token(), random_token());
        let (status, body) = exchange(&provider, &discovery, &flow.callback.code.unwrap(), &wrong_verifier).await;
        assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    }

    #[tokio::test]
    async fn each_tamper_breaks_only_its_claim() {
        let provider = OidcProvider::start(&[REDIRECT_URI]).unwrap();
        let discovery = discover(&provider).await;
        for tamper in Tamper::ALL {
            provider.tamper_next_token(tamper).await.unwrap();
            let (flow, id_token) = sign_in(&provider, &discovery, &alice()).await;
            let claims = payload(&id_token);
            assert_eq!(claims["sub"], "alice-sub", "{tamper:?}");
            assert_eq!(claims["email"], "alice@example.com", "{tamper:?}");
            assert_eq!(claims["aud"] == CLIENT_ID, tamper != Tamper::Audience, "{tamper:?}: {claims}");
            assert_eq!(claims["iss"] == provider.issuer(), tamper != Tamper::Issuer, "{tamper:?}: {claims}");
            assert_eq!(claims["nonce"] == flow.nonce.as_str(), tamper != Tamper::Nonce, "{tamper:?}: {claims}");
            let error = verify(&provider, &discovery, &id_token, &flow.nonce).await.unwrap_err();
            let expected = matches!(
                (tamper, &error),
                (Tamper::Audience, ClaimsVerificationError::InvalidAudience(_))
                    | (Tamper::Issuer, ClaimsVerificationError::InvalidIssuer(_))
                    | (Tamper::Nonce, ClaimsVerificationError::InvalidNonce(_))
                    | (Tamper::Signature, ClaimsVerificationError::SignatureVerification(_))
                    | (Tamper::Expired, ClaimsVerificationError::Expired(_))
            );
            assert!(expected, "{tamper:?} failed verification with {error:?}");
        }
        // A tamper breaks one token only.
        let (flow, id_token) = sign_in(&provider, &discovery, &alice()).await;
        verify(&provider, &discovery, &id_token, &flow.nonce).await.unwrap();
    }

    #[tokio::test]
    async fn refusals_come_back_to_the_redirect_uri_with_state() {
        let provider = OidcProvider::start(&[REDIRECT_URI]).unwrap();
        let discovery = discover(&provider).await;

        provider.next_error("access_denied").await.unwrap();
        let flow = authorize(&provider, &discovery).await;
        assert_eq!(flow.callback.error.as_deref(), Some("access_denied"), "{:?}", flow.callback);
        assert_eq!(flow.callback.state.as_deref(), Some(flow.state.as_str()));
        assert_eq!(flow.callback.code, None);

        // Without a next login nobody is signed in.
        let flow = authorize(&provider, &discovery).await;
        assert_eq!(flow.callback.error.as_deref(), Some("login_required"), "{:?}", flow.callback);

        // PKCE is required.
        let url = Url::parse_with_params(
            &discovery.authorization_endpoint,
            [
                ("response_type", "code"),
                ("client_id", CLIENT_ID),
                ("redirect_uri", REDIRECT_URI),
                ("scope", "openid"),
                ("state", "s1"),
            ],
        )
        .unwrap();
        let callback = provider.follow(url.as_str()).await.unwrap();
        assert_eq!(callback.error.as_deref(), Some("invalid_request"), "{callback:?}");
        assert_eq!(callback.state.as_deref(), Some("s1"));

        // An unregistered redirect URI is never redirected to.
        let url = Url::parse_with_params(
            &discovery.authorization_endpoint,
            [("response_type", "code"), ("client_id", CLIENT_ID), ("redirect_uri", "http://127.0.0.1:9/evil")],
        )
        .unwrap();
        assert!(provider.follow(url.as_str()).await.is_err());
    }

    #[test]
    fn cookie_jar_scopes_cookies_by_origin_and_path() {
        let mut jar = CookieJar::default();
        let url = Url::parse("http://127.0.0.1:5/auth").unwrap();
        jar.store(&url, "_interaction=abc; path=/interaction/abc; samesite=lax; httponly");
        jar.store(&url, "_session=s; path=/");
        let at = |jar: &CookieJar, url: &str| jar.header_for(&Url::parse(url).unwrap());
        assert_eq!(at(&jar, "http://127.0.0.1:5/interaction/abc").as_deref(), Some("_interaction=abc; _session=s"));
        assert_eq!(at(&jar, "http://127.0.0.1:5/interaction/abcd").as_deref(), Some("_session=s"));
        assert_eq!(at(&jar, "http://127.0.0.1:6/interaction/abc"), None);
        jar.store(&url, "_session=; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(&jar, "http://127.0.0.1:5/x"), None);
    }
}
