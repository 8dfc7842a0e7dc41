//! A small website on Axum whose accounts and sessions live in Keyport,
//! through `keyport-axum`.
//!
//! Pages: `/` (public), `/sign-up` and `/sign-in` (forms, and a "Sign in
//! with ..." button per provider configured in Keyport), `/dashboard` and
//! `/sessions` (need a session), `/admin` (needs the `admin` role), and
//! `POST /sign-out`. Social sign-in: `POST /oauth/start/{provider}` sends the
//! browser to the provider, which sends it back to `GET /oauth/callback`;
//! `POST /oauth/link/{provider}` (needs a session) links a provider account
//! the same way. The route rules in [`settings`] decide who may see what;
//! the handlers only read the [`Principal`] the layer found.
//!
//! Configuration, from the environment:
//! - `KEYPORT_URL`: where Keyport serves gRPC [default: `http://127.0.0.1:50051`]
//! - `LISTEN`: the address to serve the site on [default: `127.0.0.1:3000`]
//! - `PUBLIC_URL`: the site's address in the browser; the OAuth callback is
//!   `{PUBLIC_URL}/oauth/callback`, which must be in Keyport's
//!   `[oauth] redirect_uris` [default: `http://` and the address listened on]
//! - `RUST_LOG`: log filter [default: `info`]
//!
//! The session cookie is `__Host-keyport_session` (`Secure`, `HttpOnly`,
//! `SameSite=Lax`). Browsers accept `Secure` cookies from
//! `http://localhost` and `http://127.0.0.1`, so the site works over plain
//! HTTP on this machine; anywhere else, serve it over HTTPS.

mod html;

use std::{env, net::SocketAddr, process::ExitCode, sync::Arc};

use axum::{
    Form, Router,
    extract::{Path, Query, State},
    http::{
        HeaderValue, StatusCode,
        header::{LOCATION, REFERRER_POLICY, SET_COOKIE},
    },
    response::{Html, IntoResponse, Response},
    routing::{get, post},
};
use keyport_axum::{Auth, CookieHeader, KeyportLayer, Principal};
use keyport_client::{
    CacheConfig, Error, FinishedOAuth, KeyportClient, Reason, SessionCache,
    web::{AuthSettings, Guard, RouteRules, safe_return_path},
};
use serde::Deserialize;
use tokio::net::TcpListener;

const DEFAULT_KEYPORT_URL: &str = "http://127.0.0.1:50051";
const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
/// Where a successful sign-in goes when no (valid) `return_to` was given.
const AFTER_SIGN_IN: &str = "/dashboard";

/// The OAuth callback's path; the redirect URI is `PUBLIC_URL` and this.
const CALLBACK_PATH: &str = "/oauth/callback";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the handlers share.
#[derive(Clone)]
struct Site {
    /// The middleware's guard: its client lists providers, its settings
    /// name the cookies.
    guard: Guard,
    /// The redirect URI of every OAuth flow: `{PUBLIC_URL}/oauth/callback`.
    callback: Arc<str>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keyport-example-axum: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let keyport_url = env::var("KEYPORT_URL").unwrap_or_else(|_| DEFAULT_KEYPORT_URL.to_owned());
    let listen = env::var("LISTEN").unwrap_or_else(|_| DEFAULT_LISTEN.to_owned());

    // One client and one cache for the whole process: the cache keeps
    // validated sessions for up to a minute and drops them the moment
    // Keyport reports a sign-out or revocation.
    let client = KeyportClient::builder(keyport_url.clone()).build()?;
    let guard = Guard::new(SessionCache::start(client, CacheConfig::default()), settings().shared());

    let listener = TcpListener::bind(&listen).await?;
    let address = listener.local_addr()?;
    let public_url = env::var("PUBLIC_URL").unwrap_or_else(|_| format!("http://{address}"));
    let callback = format!("{}{CALLBACK_PATH}", public_url.trim_end_matches('/'));
    // The browser test waits for this line (and reads the port from it).
    println!(
        "keyport-example-axum listening on http://{address} (Keyport at {keyport_url}; OAuth callback {callback})"
    );

    // `ConnectInfo` lets the layer pass the visitor's address on to Keyport,
    // which records it with each session.
    let site = Site { guard, callback: callback.into() };
    let service = app(site).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(shutdown_signal()).await?;
    Ok(())
}

/// Who may see what. First matching rule wins; everything else is public
/// (and still knows who is signed in, through `Option<Principal>`).
fn settings() -> AuthSettings {
    let rules = RouteRules::new()
        .protect("/dashboard(.*)")
        .protect("/sessions(.*)")
        .protect("/oauth/link/(.*)")
        .require_role("/admin(.*)", "admin");
    // Signed-out browsers asking for a protected page are sent to
    // `/sign-in?return_to=<the page>` (the defaults).
    AuthSettings::new(rules)
}

fn app(site: Site) -> Router {
    let guard = site.guard.clone();
    Router::new()
        .route("/", get(home))
        .route("/sign-up", get(sign_up_page).post(sign_up))
        .route("/sign-in", get(sign_in_page).post(sign_in))
        .route("/sign-out", post(sign_out))
        .route("/dashboard", get(dashboard))
        .route("/sessions", get(sessions))
        .route("/sessions/revoke", post(revoke_session))
        .route("/sessions/revoke-others", post(revoke_other_sessions))
        .route("/admin", get(admin))
        .route("/oauth/start/{provider}", post(start_oauth))
        .route("/oauth/link/{provider}", post(link_oauth))
        .route(CALLBACK_PATH, get(oauth_callback))
        .fallback(not_found)
        .with_state(site)
        .layer(KeyportLayer::new(guard))
        // Outside the guard, so its refusals carry it too: no page address
        // leaks to other sites. Forms on such pages post with `Origin: null`;
        // the guard's CSRF check then relies on `Sec-Fetch-Site`.
        .layer(axum::middleware::map_response(|mut response: Response| async move {
            response.headers_mut().insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
            response
        }))
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

// ----- Pages -----

async fn home(user: Option<Principal>) -> Html<String> {
    Html(html::home(user.as_deref()))
}

async fn not_found(user: Option<Principal>) -> Response {
    let page = html::problem(user.as_deref(), "Not found", "There is no page here.");
    (StatusCode::NOT_FOUND, Html(page)).into_response()
}

#[derive(Deserialize)]
struct DashboardQuery {
    /// Set after a social sign-in created the account.
    welcome: Option<String>,
    /// The provider just linked.
    linked: Option<String>,
}

async fn dashboard(State(site): State<Site>, user: Principal, Query(query): Query<DashboardQuery>) -> Html<String> {
    let providers = providers(&site).await;
    let notice = match (&query.linked, &query.welcome) {
        (Some(id), _) => Some(format!("Linked your {} account.", html::provider_name(&providers, id))),
        (None, Some(_)) => Some("Welcome! Your account was created.".to_owned()),
        (None, None) => None,
    };
    Html(html::dashboard(&user, &providers, notice.as_deref()))
}

async fn admin(user: Principal) -> Html<String> {
    // The route rule already refused anyone without the role.
    Html(html::admin(&user))
}

// ----- Sign-up -----

async fn sign_up_page(State(site): State<Site>, user: Option<Principal>) -> Html<String> {
    let providers = providers(&site).await;
    Html(html::sign_up(user.as_deref(), &html::SignUpForm { providers: &providers, ..html::SignUpForm::default() }))
}

#[derive(Deserialize)]
struct SignUpForm {
    email: String,
    #[serde(default)]
    name: String,
    password: String,
}

async fn sign_up(
    State(site): State<Site>,
    user: Option<Principal>,
    auth: Auth,
    Form(form): Form<SignUpForm>,
) -> Response {
    match auth.sign_up(&form.email, &form.password, &form.name).await {
        // The cookie header signs the new account in at once.
        Ok((_, cookie)) => (cookie, see_other(AFTER_SIGN_IN)).into_response(),
        Err(error) => {
            let (status, message) = form_error(&error);
            let providers = providers(&site).await;
            let again =
                html::SignUpForm { email: &form.email, name: &form.name, error: Some(&message), providers: &providers };
            (status, Html(html::sign_up(user.as_deref(), &again))).into_response()
        }
    }
}

// ----- Sign-in -----

#[derive(Deserialize)]
struct SignInQuery {
    return_to: Option<String>,
}

async fn sign_in_page(
    State(site): State<Site>,
    user: Option<Principal>,
    Query(query): Query<SignInQuery>,
) -> Html<String> {
    let return_to = query.return_to.as_deref().and_then(safe_return_path);
    let notice = return_to.map(|_| "Sign in to see that page.");
    let providers = providers(&site).await;
    let form = html::SignInForm { return_to, notice, providers: &providers, ..html::SignInForm::default() };
    Html(html::sign_in(user.as_deref(), &form))
}

#[derive(Deserialize)]
struct SignInForm {
    email: String,
    password: String,
    return_to: Option<String>,
}

async fn sign_in(
    State(site): State<Site>,
    user: Option<Principal>,
    auth: Auth,
    Form(form): Form<SignInForm>,
) -> Response {
    // Never redirect anywhere but a path on this site (no open redirect).
    let return_to = form.return_to.as_deref().and_then(safe_return_path);
    match auth.sign_in(&form.email, &form.password).await {
        Ok((_, cookie)) => (cookie, see_other(return_to.unwrap_or(AFTER_SIGN_IN))).into_response(),
        Err(error) => {
            let (status, message) = form_error(&error);
            let providers = providers(&site).await;
            let again = html::SignInForm {
                email: &form.email,
                return_to,
                error: Some(&message),
                notice: None,
                providers: &providers,
            };
            (status, Html(html::sign_in(user.as_deref(), &again))).into_response()
        }
    }
}

// ----- Social sign-in -----

/// The providers configured in Keyport, for the "Sign in with ..." buttons;
/// none (and a warning) when Keyport cannot say.
async fn providers(site: &Site) -> Vec<html::Provider> {
    match site.guard.list_providers().await {
        Ok(providers) => providers,
        Err(error) => {
            tracing::warn!(%error, "could not list the sign-in providers");
            Vec::new()
        }
    }
}

/// "Sign in with {provider}": Keyport starts the flow; the browser goes to
/// the provider with a cookie binding the flow to it.
async fn start_oauth(
    State(site): State<Site>,
    user: Option<Principal>,
    auth: Auth,
    Path(provider): Path<String>,
) -> Response {
    match auth.start_oauth(&provider, &site.callback).await {
        Ok((authorization_url, cookie)) => (cookie, see_other(&authorization_url)).into_response(),
        Err(error) => oauth_failed(&site, user.as_deref(), &error, None, None),
    }
}

/// "Link {provider}": the same, for the signed-in user (the route rule
/// already sent anyone else to sign in).
async fn link_oauth(State(site): State<Site>, user: Principal, auth: Auth, Path(provider): Path<String>) -> Response {
    match auth.link_oauth(&provider, &site.callback).await {
        Ok((authorization_url, cookie)) => (cookie, see_other(&authorization_url)).into_response(),
        Err(error) if is_signed_out(&error) => see_other("/sign-in?return_to=%2Fdashboard"),
        Err(error) => oauth_failed(&site, Some(&user), &error, None, None),
    }
}

#[derive(Deserialize)]
struct CallbackQuery {
    /// The provider's refusal (`access_denied`...), if it refused.
    error: Option<String>,
}

/// Where the provider sends the browser back. Keyport checks the state, the
/// binding cookie and the provider's answer, then signs in (or signs up, or
/// links); the response deletes the binding cookie and sets the session's.
async fn oauth_callback(
    State(site): State<Site>,
    user: Option<Principal>,
    auth: Auth,
    Query(query): Query<CallbackQuery>,
) -> Response {
    match auth.finish_oauth(&site.callback).await {
        Ok((finished, cookies)) => {
            let location = match finished {
                FinishedOAuth::SignedIn { new_user: true, .. } => format!("{AFTER_SIGN_IN}?welcome=1"),
                FinishedOAuth::SignedIn { new_user: false, .. } => AFTER_SIGN_IN.to_owned(),
                FinishedOAuth::Linked { provider_id, .. } => linked_page(&provider_id),
            };
            with_cookies(see_other(&location), cookies)
        }
        Err(error) => {
            // The flow is over either way: drop its binding cookie too.
            let clear = CookieHeader(site.guard.settings().cookie.clear_oauth_binding());
            oauth_failed(&site, user.as_deref(), &error, query.error.as_deref(), Some(clear))
        }
    }
}

/// The dashboard announcing the link (provider ids are `a-z 0-9 - _`).
fn linked_page(provider_id: &str) -> String {
    if provider_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        format!("{AFTER_SIGN_IN}?linked={provider_id}")
    } else {
        AFTER_SIGN_IN.to_owned()
    }
}

fn oauth_failed(
    site: &Site,
    user: Option<&keyport_client::Principal>,
    error: &Error,
    provider_said: Option<&str>,
    cookie: Option<CookieHeader>,
) -> Response {
    tracing::info!(%error, "social sign-in failed");
    let (status, page) = html::oauth_failed(user, error, provider_said, &site.callback);
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    with_cookies((status, Html(page)).into_response(), cookie)
}

fn with_cookies(mut response: Response, cookies: impl IntoIterator<Item = CookieHeader>) -> Response {
    for CookieHeader(cookie) in cookies {
        match HeaderValue::from_str(&cookie) {
            Ok(value) => {
                response.headers_mut().append(SET_COOKIE, value);
            }
            Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    }
    response
}

// ----- Sign-out and sessions -----

async fn sign_out(auth: Auth) -> Response {
    // Ends the session in Keyport (every app sharing it sees that at once)
    // and deletes the cookie; succeeds if there was no session.
    match auth.sign_out().await {
        Ok(cookie) => (cookie, see_other("/")).into_response(),
        Err(error) => unavailable(None, &error),
    }
}

#[derive(Deserialize)]
struct SessionsQuery {
    revoked: Option<String>,
    others: Option<String>,
}

async fn sessions(user: Principal, auth: Auth, Query(query): Query<SessionsQuery>) -> Response {
    let notice = match (query.revoked.as_deref(), query.others.as_deref().and_then(|n| n.parse::<u32>().ok())) {
        (Some("gone"), _) => Some("That session had already ended.".to_owned()),
        (Some(_), _) => Some("Session revoked.".to_owned()),
        (None, Some(1)) => Some("Signed out 1 other session.".to_owned()),
        (None, Some(n)) => Some(format!("Signed out {n} other sessions.")),
        (None, None) => None,
    };
    match auth.list_sessions().await {
        Ok(list) => Html(html::sessions(&user, &list, notice.as_deref())).into_response(),
        Err(error) if is_signed_out(&error) => see_other("/sign-in?return_to=%2Fsessions"),
        Err(error) => unavailable(Some(&user), &error),
    }
}

#[derive(Deserialize)]
struct RevokeForm {
    session_id: String,
}

async fn revoke_session(user: Principal, auth: Auth, Form(form): Form<RevokeForm>) -> Response {
    match auth.revoke_session(&form.session_id).await {
        Ok(()) => see_other("/sessions?revoked=1"),
        Err(error) if *error.reason() == Reason::SessionNotFound => see_other("/sessions?revoked=gone"),
        Err(error) if is_signed_out(&error) => see_other("/sign-in?return_to=%2Fsessions"),
        Err(error) => unavailable(Some(&user), &error),
    }
}

async fn revoke_other_sessions(user: Principal, auth: Auth) -> Response {
    match auth.revoke_other_sessions().await {
        Ok(count) => see_other(&format!("/sessions?others={count}")),
        Err(error) if is_signed_out(&error) => see_other("/sign-in?return_to=%2Fsessions"),
        Err(error) => unavailable(Some(&user), &error),
    }
}

// ----- Helpers -----

/// A `303 See Other` to a path on this site (or, starting social sign-in,
/// to the provider): after a form POST, the browser follows it with a GET.
fn see_other(location: &str) -> Response {
    let location = HeaderValue::from_str(location).unwrap_or_else(|_| HeaderValue::from_static("/"));
    (StatusCode::SEE_OTHER, [(LOCATION, location)]).into_response()
}

fn is_signed_out(error: &Error) -> bool {
    matches!(error.reason(), Reason::Unauthenticated | Reason::SessionExpired)
}

/// What to tell someone whose sign-up or sign-in failed.
fn form_error(error: &Error) -> (StatusCode, String) {
    match error.reason() {
        Reason::InvalidCredentials => (StatusCode::UNAUTHORIZED, "Wrong email or password.".to_owned()),
        Reason::EmailTaken => (StatusCode::CONFLICT, "An account with this email already exists.".to_owned()),
        // Keyport's messages for these are written for people
        // ("password must be at least 8 characters").
        Reason::WeakPassword | Reason::PasswordTooLong => {
            (StatusCode::UNPROCESSABLE_ENTITY, capitalise(error.message()))
        }
        Reason::InvalidArgument => {
            let message = match error.field_violations() {
                [] => capitalise(error.message()),
                violations => violations
                    .iter()
                    .map(|(field, description)| format!("{}: {description}.", capitalise(field)))
                    .collect::<Vec<_>>()
                    .join(" "),
            };
            (StatusCode::UNPROCESSABLE_ENTITY, message)
        }
        Reason::RateLimited => {
            (StatusCode::TOO_MANY_REQUESTS, "Too many failed attempts. Wait a little and try again.".to_owned())
        }
        _ => {
            tracing::warn!(%error, "keyport call failed");
            (StatusCode::SERVICE_UNAVAILABLE, "Signing in is unavailable right now. Try again shortly.".to_owned())
        }
    }
}

fn unavailable(user: Option<&keyport_client::Principal>, error: &Error) -> Response {
    tracing::warn!(%error, "keyport call failed");
    let page = html::problem(user, "Try again", "Keyport is unavailable right now. Try again shortly.");
    (StatusCode::SERVICE_UNAVAILABLE, Html(page)).into_response()
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// The site's own tests: the real layer and rules, with made-up sessions and
/// no Keyport (`Guard::offline`).
#[cfg(test)]
mod tests {
    use axum::{
        body::{Body, to_bytes},
        http::{
            Request,
            header::{ACCEPT, AUTHORIZATION},
        },
    };
    use keyport_client::Principal;
    use tower::ServiceExt;

    use super::*;

    /// Status, `Location`, `Referrer-Policy` and body of `GET path`.
    async fn get(path: &str, token: Option<&str>) -> Result<(u16, String, String, String), BoxError> {
        let sessions = [
            ("ann-token", Principal::for_tests("ann@example.com", &[])),
            ("root-token", Principal::for_tests("root@example.com", &["admin"])),
        ];
        let guard = Guard::offline(settings().shared(), sessions);
        let site = Site { guard, callback: "http://localhost/oauth/callback".into() };
        let mut request = Request::get(path).header(ACCEPT, "text/html");
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let response = app(site).oneshot(request.body(Body::empty())?).await?;
        let header = |name| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let (status, location, policy) = (response.status().as_u16(), header(LOCATION), header(REFERRER_POLICY));
        let body = to_bytes(response.into_body(), 1 << 20).await?;
        Ok((status, location, policy, String::from_utf8_lossy(&body).into_owned()))
    }

    #[tokio::test]
    async fn the_dashboard_sends_visitors_to_sign_in_and_greets_members() -> Result<(), BoxError> {
        let (status, location, ..) = get("/dashboard", None).await?;
        assert_eq!((status, location.as_str()), (303, "/sign-in?return_to=%2Fdashboard"));
        let (status, _, _, body) = get("/dashboard", Some("ann-token")).await?;
        assert_eq!(status, 200);
        assert!(body.contains("ann@example.com"), "{body}");
        Ok(())
    }

    #[tokio::test]
    async fn the_admin_page_needs_the_role() -> Result<(), BoxError> {
        assert_eq!(get("/admin", Some("ann-token")).await?.0, 403);
        assert_eq!(get("/admin", Some("made-up")).await?.0, 303, "an unknown token is no session");
        let (status, _, _, body) = get("/admin", Some("root-token")).await?;
        assert_eq!(status, 200);
        assert!(body.contains("root@example.com"), "{body}");
        Ok(())
    }

    #[tokio::test]
    async fn every_page_asks_for_no_referrer() -> Result<(), BoxError> {
        for (path, token) in [("/", None), ("/dashboard", None), ("/admin", Some("ann-token")), ("/nope", None)] {
            assert_eq!(get(path, token).await?.2, "no-referrer", "{path}");
        }
        Ok(())
    }
}
