//! A fake GitHub for end-to-end tests: GitHub's OAuth2 web flow and the two
//! user API endpoints a sign-in needs, in-process on a free port of 127.0.0.1.
//!
//! One OAuth app is registered: [`CLIENT_ID`] / [`CLIENT_SECRET`], with the
//! redirect URIs given to [`FakeGitHub::start`]. Routes, all on
//! [`FakeGitHub::base_url`] (GitHub splits them between `github.com` and
//! `api.github.com`):
//!
//! - `GET /login/oauth/authorize`: checks `client_id`, that `redirect_uri` is
//!   registered, that `state` is present and that PKCE is used
//!   (`code_challenge` with `code_challenge_method=S256`); a bad request gets
//!   a 400 page, never a redirect. Then redirects (302) to
//!   `redirect_uri?code=..&state=..`, signing in the user set by
//!   [`FakeGitHub::next_login`] (used once; without one,
//!   `?error=access_denied&state=..`), or to `?error=..&state=..` after
//!   [`FakeGitHub::next_error`].
//! - `POST /login/oauth/access_token` (form: `code`, `redirect_uri`,
//!   `code_verifier`, and the client credentials either in the form or in
//!   HTTP Basic, as the `oauth2` crate sends them by default): the code must
//!   be known and unused (any presentation uses it up), the `redirect_uri`
//!   must be the authorization's, and `BASE64URL(SHA256(code_verifier))` must
//!   be its `code_challenge`. Answers
//!   `{"access_token":"gho_..","token_type":"bearer","scope":".."}` when
//!   `Accept` has `application/json`, else the same as a urlencoded form.
//!   **Errors answer like GitHub, not like RFC 6749: HTTP 200** with
//!   `{"error":"bad_verification_code"|"incorrect_client_credentials"|
//!   "redirect_uri_mismatch","error_description":..,"error_uri":..}`. The
//!   `oauth2` crate (v5) only reads an error body on a non-200 status, so there
//!   a refused exchange is `RequestTokenError::Parse` (no `access_token`),
//!   not `RequestTokenError::ServerResponse`.
//! - `GET /user` (`Authorization: Bearer <token>` or `token <token>`):
//!   `{"id","login","name","email"}`, `email` being the primary address and
//!   `name` null when empty.
//! - `GET /user/emails`: `[{"email","primary","verified","visibility"}]`; like
//!   GitHub, 404 unless the token has the `user:email` (or `user`) scope.
//!
//! Like GitHub's API, `/user` and `/user/emails` answer 403 to a request
//! without `User-Agent`, and 401 `Bad credentials` to an unknown token.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher as _;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::Url;
use reqwest::redirect::Policy;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use tokio::sync::oneshot;

use crate::oidc::{Callback, follow_redirects};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The registered OAuth app's client id.
pub const CLIENT_ID: &str = "keyport-gh";
/// The secret of [`CLIENT_ID`].
pub const CLIENT_SECRET: &str = "keyport-gh-secret";

/// Where GitHub's token errors point.
const TROUBLESHOOTING: &str =
    "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/";

/// Where GitHub's API errors point.
const DOCS: &str = "https://docs.github.com/rest";

/// A GitHub account, as `/user` and `/user/emails` show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubUser {
    /// The numeric user id, the stable subject.
    pub id: u64,
    /// The username.
    pub login: String,
    /// The display name; empty shows as `null`.
    pub name: String,
    /// The addresses; the primary one is also `/user`'s `email`.
    pub emails: Vec<GitHubEmail>,
}

/// One address of a [`GitHubUser`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitHubEmail {
    /// The address.
    pub email: String,
    /// Whether it is the account's primary address.
    pub primary: bool,
    /// Whether GitHub verified it.
    pub verified: bool,
}

/// The running fake; dropping it stops the server.
#[derive(Debug)]
pub struct FakeGitHub {
    base_url: String,
    redirect_uris: Vec<String>,
    state: Arc<Mutex<Shared>>,
    http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
}

/// What the handlers share with the test.
#[derive(Debug, Default)]
struct Shared {
    redirect_uris: Vec<String>,
    next_user: Option<GitHubUser>,
    next_error: Option<String>,
    codes: HashMap<String, Grant>,
    tokens: HashMap<String, Token>,
}

/// An issued authorization code.
#[derive(Debug)]
struct Grant {
    user: GitHubUser,
    redirect_uri: String,
    code_challenge: String,
    scope: String,
    used: bool,
}

/// An issued access token.
#[derive(Debug)]
struct Token {
    user: GitHubUser,
    scope: String,
}

type App = Arc<Mutex<Shared>>;

impl FakeGitHub {
    /// Starts the fake on a free port of 127.0.0.1, its app accepting exactly
    /// `redirect_uris`. Runs on a thread of its own, so it works from sync and
    /// async code alike.
    pub fn start(redirect_uris: &[&str]) -> io::Result<Self> {
        let redirect_uris: Vec<String> = redirect_uris.iter().map(|uri| (*uri).to_owned()).collect();
        let state = Arc::new(Mutex::new(Shared { redirect_uris: redirect_uris.clone(), ..Shared::default() }));
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        listener.set_nonblocking(true)?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        let router = Router::new()
            .route("/login/oauth/authorize", get(authorize))
            .route("/login/oauth/access_token", post(access_token))
            .route("/user", get(user))
            .route("/user/emails", get(emails))
            .with_state(Arc::clone(&state));
        let (shutdown, stopped) = oneshot::channel::<()>();
        std::thread::Builder::new().name("fake-github".into()).spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(error) => return eprintln!("fake GitHub: {error}"),
                };
                tokio::select! {
                    served = axum::serve(listener, router).into_future() => {
                        if let Err(error) = served {
                            eprintln!("fake GitHub: {error}");
                        }
                    }
                    _ = stopped => {}
                }
            });
        })?;
        let http = reqwest::Client::builder()
            .redirect(Policy::none())
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(io::Error::other)?;
        Ok(FakeGitHub { base_url, redirect_uris, state, http, shutdown: Some(shutdown) })
    }

    /// `http://127.0.0.1:PORT`: GitHub's web root and API root at once.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// `{base_url}/login/oauth/authorize`.
    pub fn authorize_url(&self) -> String {
        format!("{}/login/oauth/authorize", self.base_url)
    }

    /// `{base_url}/login/oauth/access_token`.
    pub fn token_url(&self) -> String {
        format!("{}/login/oauth/access_token", self.base_url)
    }

    /// The API root (`/user`, `/user/emails`); the same as the base URL.
    pub fn api_url(&self) -> &str {
        &self.base_url
    }

    /// The registered app's client id, [`CLIENT_ID`].
    pub fn client_id(&self) -> &'static str {
        CLIENT_ID
    }

    /// The registered app's secret, [`CLIENT_SECRET`].
    pub fn client_secret(&self) -> &'static str {
        CLIENT_SECRET
    }

    /// Makes the next authorization sign `user` in. Used once: an
    /// authorization without one ends with `error=access_denied`.
    pub fn next_login(&self, user: &GitHubUser) {
        lock(&self.state).next_user = Some(user.clone());
    }

    /// Makes the next authorization redirect back with `error` (and the
    /// request's `state`) instead of a code.
    pub fn next_error(&self, error: &str) {
        lock(&self.state).next_error = Some(error.to_owned());
    }

    /// Plays a fresh browser from `authorization_url` to the redirect to a
    /// registered redirect URI, which it does not request, and returns that.
    pub async fn follow(&self, authorization_url: &str) -> Result<Callback, BoxError> {
        follow_redirects(&self.http, authorization_url, &self.redirect_uris).await
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
    }
}

/// Locks the shared state, whatever a panicking handler left in it.
fn lock(app: &App) -> MutexGuard<'_, Shared> {
    app.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// An unguessable-enough token for codes and access tokens: 32 hex digits.
pub(crate) fn random_token() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // Each RandomState has fresh SipHash keys.
    format!("{:016x}{:016x}", RandomState::new().hash_one(n), RandomState::new().hash_one(n))
}

/// `GET /login/oauth/authorize`.
async fn authorize(State(app): State<App>, Query(params): Query<HashMap<String, String>>) -> Response {
    let param = |name: &str| params.get(name).map(String::as_str).filter(|value| !value.is_empty());
    let mut shared = lock(&app);
    if param("client_id") != Some(CLIENT_ID) {
        return (StatusCode::NOT_FOUND, "unknown client_id").into_response();
    }
    let Some(redirect_uri) = param("redirect_uri").filter(|uri| shared.redirect_uris.iter().any(|known| known == uri))
    else {
        return (StatusCode::BAD_REQUEST, "redirect_uri missing or not registered").into_response();
    };
    let Some(state) = param("state") else {
        return (StatusCode::BAD_REQUEST, "state missing").into_response();
    };
    let (Some(code_challenge), Some("S256")) = (param("code_challenge"), param("code_challenge_method")) else {
        return (StatusCode::BAD_REQUEST, "PKCE required: code_challenge with code_challenge_method=S256")
            .into_response();
    };
    let Ok(mut callback) = Url::parse(redirect_uri) else {
        return (StatusCode::BAD_REQUEST, "redirect_uri is not a URL").into_response();
    };
    let error = shared.next_error.take();
    match (error, shared.next_user.take()) {
        (Some(error), _) => {
            callback.query_pairs_mut().append_pair("error", &error).append_pair("state", state);
        }
        (None, None) => {
            callback.query_pairs_mut().append_pair("error", "access_denied").append_pair("state", state);
        }
        (None, Some(user)) => {
            let code = random_token();
            let grant = Grant {
                user,
                redirect_uri: redirect_uri.to_owned(),
                code_challenge: code_challenge.to_owned(),
                scope: param("scope").unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(","),
                used: false,
            };
            shared.codes.insert(code.clone(), grant);
            callback.query_pairs_mut().append_pair("code", &code).append_pair("state", state);
        }
    }
    (StatusCode::FOUND, [(header::LOCATION, callback.to_string())]).into_response()
}

/// A successful token response.
#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    scope: String,
}

/// A refused token request, as GitHub words it.
#[derive(Serialize)]
struct TokenError {
    error: &'static str,
    error_description: &'static str,
    error_uri: String,
}

/// `POST /login/oauth/access_token`.
async fn access_token(
    State(app): State<App>,
    headers: HeaderMap,
    Form(params): Form<HashMap<String, String>>,
) -> Response {
    let json = headers
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    let answer = |body: Result<TokenResponse, (&'static str, &'static str)>| match body {
        Ok(token) if json => Json(token).into_response(),
        Ok(token) => Form(token).into_response(),
        Err((error, error_description)) => {
            let error = TokenError { error, error_description, error_uri: format!("{TROUBLESHOOTING}#{error}") };
            // GitHub answers 200 even to a refused request.
            if json { Json(error).into_response() } else { Form(error).into_response() }
        }
    };
    let param = |name: &str| params.get(name).map(String::as_str);
    let credentials = basic_credentials(&headers)
        .or_else(|| Some((param("client_id")?.to_owned(), param("client_secret").unwrap_or_default().to_owned())));
    if credentials.as_ref().is_none_or(|(id, secret)| id != CLIENT_ID || secret != CLIENT_SECRET) {
        return answer(Err((
            "incorrect_client_credentials",
            "The client_id and/or client_secret passed are incorrect.",
        )));
    }
    let mut shared = lock(&app);
    let bad_code = Err(("bad_verification_code", "The code passed is incorrect or expired."));
    let Some(grant) = param("code").and_then(|code| shared.codes.get_mut(code)) else {
        return answer(bad_code);
    };
    if std::mem::replace(&mut grant.used, true) {
        return answer(bad_code);
    }
    if param("redirect_uri").is_some_and(|uri| uri != grant.redirect_uri) {
        return answer(Err((
            "redirect_uri_mismatch",
            "The redirect_uri MUST match the registered callback URL for this application.",
        )));
    }
    let challenge = param("code_verifier").map(|verifier| URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())));
    if challenge.as_deref() != Some(grant.code_challenge.as_str()) {
        return answer(bad_code);
    }
    let token = Token { user: grant.user.clone(), scope: grant.scope.clone() };
    let access_token = format!("gho_{}", random_token());
    let response =
        TokenResponse { access_token: access_token.clone(), token_type: "bearer", scope: token.scope.clone() };
    shared.tokens.insert(access_token, token);
    answer(Ok(response))
}

/// Client id and secret from `Authorization: Basic`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value.strip_prefix("Basic ").or_else(|| value.strip_prefix("basic "))?;
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// Why the API refused a request.
#[derive(Debug)]
enum Refusal {
    /// No `User-Agent`.
    NoUserAgent,
    /// No token, or an unknown one.
    BadCredentials,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::NoUserAgent => (
                StatusCode::FORBIDDEN,
                "Request forbidden by administrative rules. Please make sure your request has a User-Agent header",
            )
                .into_response(),
            Refusal::BadCredentials => {
                let body = json!({"message": "Bad credentials", "documentation_url": DOCS, "status": "401"});
                (StatusCode::UNAUTHORIZED, Json(body)).into_response()
            }
        }
    }
}

/// The user and scope of the request's token.
fn authenticated(app: &App, headers: &HeaderMap) -> Result<(GitHubUser, String), Refusal> {
    if !headers.contains_key(header::USER_AGENT) {
        return Err(Refusal::NoUserAgent);
    }
    let token = headers.get(header::AUTHORIZATION).and_then(|value| value.to_str().ok()).and_then(|value| {
        value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")).or_else(|| value.strip_prefix("token "))
    });
    let shared = lock(app);
    let token = token.and_then(|token| shared.tokens.get(token.trim())).ok_or(Refusal::BadCredentials)?;
    Ok((token.user.clone(), token.scope.clone()))
}

/// `GET /user`.
async fn user(State(app): State<App>, headers: HeaderMap) -> Response {
    match authenticated(&app, &headers) {
        Ok((user, _)) => {
            let email = user.emails.iter().find(|email| email.primary).map(|email| email.email.clone());
            let name = Some(user.name).filter(|name| !name.is_empty());
            Json(json!({"id": user.id, "login": user.login, "name": name, "email": email, "type": "User"}))
                .into_response()
        }
        Err(refusal) => refusal.into_response(),
    }
}

/// `GET /user/emails`.
async fn emails(State(app): State<App>, headers: HeaderMap) -> Response {
    let (user, scope) = match authenticated(&app, &headers) {
        Ok(found) => found,
        Err(refusal) => return refusal.into_response(),
    };
    if !scope.split(',').any(|scope| scope == "user:email" || scope == "user") {
        let body = json!({"message": "Not Found", "documentation_url": DOCS, "status": "404"});
        return (StatusCode::NOT_FOUND, Json(body)).into_response();
    }
    let emails: Vec<_> = user
        .emails
        .iter()
        .map(|email| {
            json!({
                "email": email.email,
                "primary": email.primary,
                "verified": email.verified,
                "visibility": if email.primary { Some("public") } else { None },
            })
        })
        .collect();
    Json(emails).into_response()
}

#[cfg(test)]
mod tests {
    use oauth2::basic::BasicClient;
    use oauth2::{
        AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, RedirectUrl,
        RequestTokenError, Scope, TokenResponse as _, TokenUrl,
    };
    use serde_json::Value;

    use super::*;

    const REDIRECT_URI: &str = "http://127.0.0.1:9/oauth/github";

    fn octocat() -> GitHubUser {
        GitHubUser {
            id: 583231,
            login: "octocat".into(),
            name: "The Octocat".into(),
            emails: vec![
                GitHubEmail { email: "octocat@example.com".into(), primary: true, verified: true },
                GitHubEmail { email: "old@example.com".into(), primary: false, verified: false },
            ],
        }
    }

    /// One authorization's secrets and its callback.
    struct Flow {
        callback: Callback,
        state: String,
        verifier: String,
    }

    fn authorization_url(github: &FakeGitHub, params: &[(&str, &str)]) -> String {
        Url::parse_with_params(&github.authorize_url(), params).unwrap().to_string()
    }

    async fn authorize(github: &FakeGitHub, scope: &str) -> Flow {
        let (state, verifier) = (random_token(), format!("{}{}", random_token(), random_token()));
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        let url = authorization_url(
            github,
            &[
                ("client_id", CLIENT_ID),
                ("redirect_uri", REDIRECT_URI),
                ("scope", scope),
                ("state", &state),
                ("code_challenge", &challenge),
                ("code_challenge_method", "S256"),
            ],
        );
        let callback = github.follow(&url).await.unwrap();
        Flow { callback, state, verifier }
    }

    /// Exchanges `code` with the credentials in the form, asking for JSON.
    async fn exchange(github: &FakeGitHub, code: &str, verifier: &str) -> Value {
        let response = github
            .http
            .post(github.token_url())
            .header(header::ACCEPT, "application/json")
            .form(&[
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("code", code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", verifier),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    async fn api(github: &FakeGitHub, path: &str, token: &str) -> (u16, Value) {
        let response = github
            .http
            .get(format!("{}{path}", github.api_url()))
            .header(header::USER_AGENT, "keyport-tests")
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    #[tokio::test]
    async fn code_flow_with_pkce_then_user_api() {
        let github = FakeGitHub::start(&[REDIRECT_URI]).unwrap();
        github.next_login(&octocat());
        let flow = authorize(&github, "read:user user:email").await;
        assert_eq!(flow.callback.state.as_deref(), Some(flow.state.as_str()));
        assert_eq!(flow.callback.error, None);
        let code = flow.callback.code.unwrap();

        let token = exchange(&github, &code, &flow.verifier).await;
        assert_eq!(token["token_type"], "bearer");
        assert_eq!(token["scope"], "read:user,user:email");
        let access_token = token["access_token"].as_str().unwrap();

        let (status, user) = api(&github, "/user", access_token).await;
        assert_eq!(status, 200);
        assert_eq!(user["id"], 583231);
        assert_eq!(user["login"], "octocat");
        assert_eq!(user["name"], "The Octocat");
        assert_eq!(user["email"], "octocat@example.com");
        let (status, emails) = api(&github, "/user/emails", access_token).await;
        assert_eq!(status, 200);
        assert_eq!(
            emails,
            json!([
                {"email": "octocat@example.com", "primary": true, "verified": true, "visibility": "public"},
                {"email": "old@example.com", "primary": false, "verified": false, "visibility": null},
            ])
        );

        // The code is single-use.
        let again = exchange(&github, &code, &flow.verifier).await;
        assert_eq!(again["error"], "bad_verification_code", "{again}");

        // Without the user:email scope there are no emails; unknown tokens and
        // requests without User-Agent are refused.
        github.next_login(&octocat());
        let flow = authorize(&github, "read:user").await;
        let token = exchange(&github, &flow.callback.code.unwrap(), &flow.verifier).await;
        let (status, _) = api(&github, "/user/emails", token["access_token"].as_str().unwrap()).await;
        assert_eq!(status, 404);
        assert_eq!(api(&github, "/user", "gho_unknown").await.0, 401);
        let status = github.http.get(format!("{}/user", github.api_url())).bearer_auth(access_token).send().await;
        assert_eq!(status.unwrap().status(), 403);
    }

    #[tokio::test]
    async fn exchange_checks_verifier_redirect_uri_and_client() {
        let github = FakeGitHub::start(&[REDIRECT_URI, "http://127.0.0.1:9/other"]).unwrap();

        github.next_login(&octocat());
        let flow = authorize(&github, "user:email").await;
        let wrong = exchange(&github, &flow.callback.code.unwrap(), &random_token()).await;
        assert_eq!(wrong["error"], "bad_verification_code", "{wrong}");

        github.next_login(&octocat());
        let flow = authorize(&github, "user:email").await;
        let code = flow.callback.code.unwrap();
        let form =
            [("code", code.as_str()), ("redirect_uri", "http://127.0.0.1:9/other"), ("code_verifier", &flow.verifier)];
        let response = github
            .http
            .post(github.token_url())
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .form(&form)
            .send()
            .await
            .unwrap();
        // No Accept: GitHub's urlencoded form, status 200.
        assert_eq!(response.status(), 200);
        let body = response.text().await.unwrap();
        assert!(body.starts_with("error=redirect_uri_mismatch&"), "{body}");

        github.next_login(&octocat());
        let flow = authorize(&github, "user:email").await;
        let response = github
            .http
            .post(github.token_url())
            .header(header::ACCEPT, "application/json")
            .form(&[
                ("client_id", CLIENT_ID),
                ("client_secret", "wrong"),
                ("code", &flow.callback.code.unwrap()),
                ("code_verifier", &flow.verifier),
            ])
            .send()
            .await
            .unwrap();
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "incorrect_client_credentials", "{body}");
    }

    #[tokio::test]
    async fn authorize_refuses_bad_requests_and_passes_errors_back() {
        let github = FakeGitHub::start(&[REDIRECT_URI]).unwrap();
        let full = [
            ("client_id", CLIENT_ID),
            ("redirect_uri", REDIRECT_URI),
            ("state", "s1"),
            ("code_challenge", "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"),
            ("code_challenge_method", "S256"),
        ];
        github.next_error("access_denied");
        let callback = github.follow(&authorization_url(&github, &full)).await.unwrap();
        assert_eq!(
            (callback.error.as_deref(), callback.state.as_deref(), callback.code),
            (Some("access_denied"), Some("s1"), None)
        );
        // No next login: nobody to sign in.
        let callback = github.follow(&authorization_url(&github, &full)).await.unwrap();
        assert_eq!(callback.error.as_deref(), Some("access_denied"));

        for (name, value) in [
            ("client_id", "someone-else"),
            ("redirect_uri", "http://127.0.0.1:9/evil"),
            ("state", ""),
            ("code_challenge", ""),
            ("code_challenge_method", "plain"),
        ] {
            let params: Vec<_> = full.iter().map(|&(key, old)| (key, if key == name { value } else { old })).collect();
            github.next_login(&octocat());
            let refused = github.follow(&authorization_url(&github, &params)).await;
            assert!(refused.is_err(), "{name}={value:?} accepted: {refused:?}");
        }
    }

    /// The `oauth2` crate (v5), as Keyport uses it: Basic client auth, JSON.
    #[tokio::test]
    async fn works_with_the_oauth2_crate() {
        let github = FakeGitHub::start(&[REDIRECT_URI]).unwrap();
        let client = BasicClient::new(ClientId::new(CLIENT_ID.into()))
            .set_client_secret(ClientSecret::new(CLIENT_SECRET.into()))
            .set_auth_uri(AuthUrl::new(github.authorize_url()).unwrap())
            .set_token_uri(TokenUrl::new(github.token_url()).unwrap())
            .set_redirect_uri(RedirectUrl::new(REDIRECT_URI.into()).unwrap());
        let http =
            oauth2::reqwest::Client::builder().redirect(oauth2::reqwest::redirect::Policy::none()).build().unwrap();

        github.next_login(&octocat());
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state) = client
            .authorize_url(CsrfToken::new_random)
            .add_scope(Scope::new("read:user".into()))
            .add_scope(Scope::new("user:email".into()))
            .set_pkce_challenge(challenge)
            .url();
        let callback = github.follow(url.as_str()).await.unwrap();
        assert_eq!(callback.state.as_deref(), Some(state.secret().as_str()));
        let code = AuthorizationCode::new(callback.code.unwrap());
        let token = client.exchange_code(code.clone()).set_pkce_verifier(verifier).request_async(&http).await.unwrap();
        assert!(token.access_token().secret().starts_with("gho_"));

        // A refusal comes with status 200, so oauth2 reports a parse error.
        let (_, verifier) = PkceCodeChallenge::new_random_sha256();
        let refused = client.exchange_code(code).set_pkce_verifier(verifier).request_async(&http).await.unwrap_err();
        match refused {
            RequestTokenError::Parse(_, body) => {
                let body: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(body["error"], "bad_verification_code");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }
}
