//! The example website of `examples/axum-app`, on Actix Web with
//! `keyport-actix`: same pages, same rules, same behaviour.
//!
//! Pages: `/` (public), `/sign-up` and `/sign-in` (forms, and a "Sign in
//! with ..." button per provider configured in Keyport), `/dashboard` and
//! `/sessions` (need a session), `/admin` (needs the `admin` role), and
//! `POST /sign-out`. Social sign-in: `POST /oauth/start/{provider}` sends the
//! browser to the provider, which sends it back to `GET /oauth/callback`;
//! `POST /oauth/link/{provider}` (needs a session) links a provider account
//! the same way. The route rules in [`settings`] decide who may see what;
//! the handlers only read the [`Principal`] the middleware found.
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

// The pages are the Axum example's, shared rather than copied: they depend
// on `keyport-client` types only, not on the web framework.
#[path = "../../axum-app/src/html.rs"]
mod html;

use std::{env, net::TcpListener, process::ExitCode};

use actix_web::{
    App, HttpResponse, HttpServer,
    http::{StatusCode, header::ContentType, header::LOCATION},
    middleware::DefaultHeaders,
    rt::System,
    web,
};
use keyport_actix::{Auth, CookieHeader, KeyportMiddleware, Principal};
use keyport_client::{
    CacheConfig, Error, FinishedOAuth, KeyportClient, Reason, SessionCache,
    web::{AuthSettings, Guard, RouteRules, safe_return_path},
};
use serde::Deserialize;

const DEFAULT_KEYPORT_URL: &str = "http://127.0.0.1:50051";
const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
/// Where a successful sign-in goes when no (valid) `return_to` was given.
const AFTER_SIGN_IN: &str = "/dashboard";

/// The OAuth callback's path; the redirect URI is `PUBLIC_URL` and this.
const CALLBACK_PATH: &str = "/oauth/callback";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the handlers share.
struct Site {
    /// The middleware's guard: its client lists providers, its settings
    /// name the cookies.
    guard: Guard,
    /// The redirect URI of every OAuth flow: `{PUBLIC_URL}/oauth/callback`.
    callback: String,
}

fn main() -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    // Actix runs on its own runtime; the session cache's background task is
    // spawned on this (main) one and lives as long as the server.
    match System::new().block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keyport-example-actix: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), BoxError> {
    let keyport_url = env::var("KEYPORT_URL").unwrap_or_else(|_| DEFAULT_KEYPORT_URL.to_owned());
    let listen = env::var("LISTEN").unwrap_or_else(|_| DEFAULT_LISTEN.to_owned());

    // One client and one cache for the whole process (every worker shares
    // them): the cache keeps validated sessions for up to a minute and drops
    // them the moment Keyport reports a sign-out or revocation.
    let client = KeyportClient::builder(keyport_url.clone()).build()?;
    let guard = Guard::new(SessionCache::start(client, CacheConfig::default()), settings().shared());

    // Bound first: the OAuth callback's default address is the bound one.
    let listener = TcpListener::bind(&listen)?;
    let address = listener.local_addr()?;
    let public_url = env::var("PUBLIC_URL").unwrap_or_else(|_| format!("http://{address}"));
    let callback = format!("{}{CALLBACK_PATH}", public_url.trim_end_matches('/'));
    let site = web::Data::new(Site { guard: guard.clone(), callback: callback.clone() });

    let server = HttpServer::new(move || app(site.clone(), guard.clone())).listen(listener)?;
    // The browser test waits for this line (and reads the port from it).
    println!(
        "keyport-example-actix listening on http://{address} (Keyport at {keyport_url}; OAuth callback {callback})"
    );
    // Actix stops gracefully on Ctrl-C and SIGTERM by itself.
    server.run().await?;
    Ok(())
}

/// The site: every route behind the middleware, every response with
/// `Referrer-Policy: no-referrer` (no page address leaks to other sites; the
/// middleware's CSRF check relies on `Sec-Fetch-Site` for such pages, whose
/// forms post with `Origin: null`).
fn app(
    site: web::Data<Site>,
    guard: Guard,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(site)
        .wrap(KeyportMiddleware::new(guard))
        .wrap(DefaultHeaders::new().add(("referrer-policy", "no-referrer")))
        .route("/", web::get().to(home))
        .route("/sign-up", web::get().to(sign_up_page))
        .route("/sign-up", web::post().to(sign_up))
        .route("/sign-in", web::get().to(sign_in_page))
        .route("/sign-in", web::post().to(sign_in))
        .route("/sign-out", web::post().to(sign_out))
        .route("/dashboard", web::get().to(dashboard))
        .route("/sessions", web::get().to(sessions))
        .route("/sessions/revoke", web::post().to(revoke_session))
        .route("/sessions/revoke-others", web::post().to(revoke_other_sessions))
        .route("/admin", web::get().to(admin))
        .route("/oauth/start/{provider}", web::post().to(start_oauth))
        .route("/oauth/link/{provider}", web::post().to(link_oauth))
        .route(CALLBACK_PATH, web::get().to(oauth_callback))
        .default_service(web::to(not_found))
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

// ----- Pages -----

fn respond(status: StatusCode, page: String) -> HttpResponse {
    HttpResponse::build(status).content_type(ContentType::html()).body(page)
}

async fn home(user: Option<Principal>) -> HttpResponse {
    respond(StatusCode::OK, html::home(user.as_deref()))
}

async fn not_found(user: Option<Principal>) -> HttpResponse {
    respond(StatusCode::NOT_FOUND, html::problem(user.as_deref(), "Not found", "There is no page here."))
}

#[derive(Deserialize)]
struct DashboardQuery {
    /// Set after a social sign-in created the account.
    welcome: Option<String>,
    /// The provider just linked.
    linked: Option<String>,
}

async fn dashboard(site: web::Data<Site>, user: Principal, query: web::Query<DashboardQuery>) -> HttpResponse {
    let providers = providers(&site).await;
    let notice = match (&query.linked, &query.welcome) {
        (Some(id), _) => Some(format!("Linked your {} account.", html::provider_name(&providers, id))),
        (None, Some(_)) => Some("Welcome! Your account was created.".to_owned()),
        (None, None) => None,
    };
    respond(StatusCode::OK, html::dashboard(&user, &providers, notice.as_deref()))
}

async fn admin(user: Principal) -> HttpResponse {
    // The route rule already refused anyone without the role.
    respond(StatusCode::OK, html::admin(&user))
}

// ----- Sign-up -----

async fn sign_up_page(site: web::Data<Site>, user: Option<Principal>) -> HttpResponse {
    let providers = providers(&site).await;
    let form = html::SignUpForm { providers: &providers, ..html::SignUpForm::default() };
    respond(StatusCode::OK, html::sign_up(user.as_deref(), &form))
}

#[derive(Deserialize)]
struct SignUpForm {
    email: String,
    #[serde(default)]
    name: String,
    password: String,
}

async fn sign_up(
    site: web::Data<Site>,
    user: Option<Principal>,
    auth: Auth,
    form: web::Form<SignUpForm>,
) -> HttpResponse {
    match auth.sign_up(&form.email, &form.password, &form.name).await {
        // The cookie header signs the new account in at once.
        Ok((_, cookie)) => see_other(AFTER_SIGN_IN).append_header(cookie).finish(),
        Err(error) => {
            let (status, message) = form_error(&error);
            let providers = providers(&site).await;
            let again =
                html::SignUpForm { email: &form.email, name: &form.name, error: Some(&message), providers: &providers };
            respond(status, html::sign_up(user.as_deref(), &again))
        }
    }
}

// ----- Sign-in -----

#[derive(Deserialize)]
struct SignInQuery {
    return_to: Option<String>,
}

async fn sign_in_page(site: web::Data<Site>, user: Option<Principal>, query: web::Query<SignInQuery>) -> HttpResponse {
    let return_to = query.return_to.as_deref().and_then(safe_return_path);
    let notice = return_to.map(|_| "Sign in to see that page.");
    let providers = providers(&site).await;
    let form = html::SignInForm { return_to, notice, providers: &providers, ..html::SignInForm::default() };
    respond(StatusCode::OK, html::sign_in(user.as_deref(), &form))
}

#[derive(Deserialize)]
struct SignInForm {
    email: String,
    password: String,
    return_to: Option<String>,
}

async fn sign_in(
    site: web::Data<Site>,
    user: Option<Principal>,
    auth: Auth,
    form: web::Form<SignInForm>,
) -> HttpResponse {
    // Never redirect anywhere but a path on this site (no open redirect).
    let return_to = form.return_to.as_deref().and_then(safe_return_path);
    match auth.sign_in(&form.email, &form.password).await {
        Ok((_, cookie)) => see_other(return_to.unwrap_or(AFTER_SIGN_IN)).append_header(cookie).finish(),
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
            respond(status, html::sign_in(user.as_deref(), &again))
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
    site: web::Data<Site>,
    user: Option<Principal>,
    auth: Auth,
    provider: web::Path<String>,
) -> HttpResponse {
    match auth.start_oauth(&provider, &site.callback).await {
        Ok((authorization_url, cookie)) => see_other(&authorization_url).append_header(cookie).finish(),
        Err(error) => oauth_failed(&site, user.as_deref(), &error, None, None),
    }
}

/// "Link {provider}": the same, for the signed-in user (the route rule
/// already sent anyone else to sign in).
async fn link_oauth(site: web::Data<Site>, user: Principal, auth: Auth, provider: web::Path<String>) -> HttpResponse {
    match auth.link_oauth(&provider, &site.callback).await {
        Ok((authorization_url, cookie)) => see_other(&authorization_url).append_header(cookie).finish(),
        Err(error) if is_signed_out(&error) => see_other("/sign-in?return_to=%2Fdashboard").finish(),
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
    site: web::Data<Site>,
    user: Option<Principal>,
    auth: Auth,
    query: web::Query<CallbackQuery>,
) -> HttpResponse {
    match auth.finish_oauth(&site.callback).await {
        Ok((finished, cookies)) => {
            let location = match finished {
                FinishedOAuth::SignedIn { new_user: true, .. } => format!("{AFTER_SIGN_IN}?welcome=1"),
                FinishedOAuth::SignedIn { new_user: false, .. } => AFTER_SIGN_IN.to_owned(),
                FinishedOAuth::Linked { provider_id, .. } => linked_page(&provider_id),
            };
            let mut response = see_other(&location);
            for cookie in cookies {
                response.append_header(cookie);
            }
            response.finish()
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
) -> HttpResponse {
    tracing::info!(%error, "social sign-in failed");
    let (status, page) = html::oauth_failed(user, error, provider_said, &site.callback);
    let mut response = HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST));
    if let Some(cookie) = cookie {
        response.append_header(cookie);
    }
    response.content_type(ContentType::html()).body(page)
}

// ----- Sign-out and sessions -----

async fn sign_out(auth: Auth) -> HttpResponse {
    // Ends the session in Keyport (every app sharing it sees that at once)
    // and deletes the cookie; succeeds if there was no session.
    match auth.sign_out().await {
        Ok(cookie) => see_other("/").append_header(cookie).finish(),
        Err(error) => unavailable(None, &error),
    }
}

#[derive(Deserialize)]
struct SessionsQuery {
    revoked: Option<String>,
    others: Option<String>,
}

async fn sessions(user: Principal, auth: Auth, query: web::Query<SessionsQuery>) -> HttpResponse {
    let notice = match (query.revoked.as_deref(), query.others.as_deref().and_then(|n| n.parse::<u32>().ok())) {
        (Some("gone"), _) => Some("That session had already ended.".to_owned()),
        (Some(_), _) => Some("Session revoked.".to_owned()),
        (None, Some(1)) => Some("Signed out 1 other session.".to_owned()),
        (None, Some(n)) => Some(format!("Signed out {n} other sessions.")),
        (None, None) => None,
    };
    match auth.list_sessions().await {
        Ok(list) => respond(StatusCode::OK, html::sessions(&user, &list, notice.as_deref())),
        Err(error) if is_signed_out(&error) => see_other("/sign-in?return_to=%2Fsessions").finish(),
        Err(error) => unavailable(Some(&user), &error),
    }
}

#[derive(Deserialize)]
struct RevokeForm {
    session_id: String,
}

async fn revoke_session(user: Principal, auth: Auth, form: web::Form<RevokeForm>) -> HttpResponse {
    match auth.revoke_session(&form.session_id).await {
        Ok(()) => see_other("/sessions?revoked=1").finish(),
        Err(error) if *error.reason() == Reason::SessionNotFound => see_other("/sessions?revoked=gone").finish(),
        Err(error) if is_signed_out(&error) => see_other("/sign-in?return_to=%2Fsessions").finish(),
        Err(error) => unavailable(Some(&user), &error),
    }
}

async fn revoke_other_sessions(user: Principal, auth: Auth) -> HttpResponse {
    match auth.revoke_other_sessions().await {
        Ok(count) => see_other(&format!("/sessions?others={count}")).finish(),
        Err(error) if is_signed_out(&error) => see_other("/sign-in?return_to=%2Fsessions").finish(),
        Err(error) => unavailable(Some(&user), &error),
    }
}

// ----- Helpers -----

/// A `303 See Other` to a path on this site (or, starting social sign-in,
/// to the provider), to finish (and add a cookie to): after a form POST,
/// the browser follows it with a GET.
fn see_other(location: &str) -> actix_web::HttpResponseBuilder {
    let mut response = HttpResponse::SeeOther();
    // An invalid value would turn the response into a 500, never a panic;
    // the paths here are validated or constant, the provider's URL Keyport's.
    response.insert_header((LOCATION, location));
    response
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

fn unavailable(user: Option<&keyport_client::Principal>, error: &Error) -> HttpResponse {
    tracing::warn!(%error, "keyport call failed");
    let page = html::problem(user, "Try again", "Keyport is unavailable right now. Try again shortly.");
    respond(StatusCode::SERVICE_UNAVAILABLE, page)
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// The site's own tests: the real middleware and rules, with made-up
/// sessions and no Keyport (`Guard::offline`).
#[cfg(test)]
mod tests {
    use actix_web::{
        http::header::{ACCEPT, AUTHORIZATION},
        test::{TestRequest, call_service, init_service, read_body},
    };
    use keyport_client::Principal;

    use super::*;

    /// Status, `Location` and `Referrer-Policy`, and body of `GET path`.
    fn get(path: &str, token: Option<&str>) -> (u16, String, String, String) {
        System::new().block_on(async {
            let sessions = [
                ("ann-token", Principal::for_tests("ann@example.com", &[])),
                ("root-token", Principal::for_tests("root@example.com", &["admin"])),
            ];
            let guard = Guard::offline(settings().shared(), sessions);
            let site =
                web::Data::new(Site { guard: guard.clone(), callback: "http://localhost/oauth/callback".into() });
            let app = init_service(app(site, guard)).await;
            let mut request = TestRequest::get().uri(path).insert_header((ACCEPT, "text/html"));
            if let Some(token) = token {
                request = request.insert_header((AUTHORIZATION, format!("Bearer {token}")));
            }
            let response = call_service(&app, request.to_request()).await;
            let header =
                |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
            let (status, location, policy) =
                (response.status().as_u16(), header("location"), header("referrer-policy"));
            let body = String::from_utf8_lossy(&read_body(response).await).into_owned();
            (status, location, policy, body)
        })
    }

    #[test]
    fn the_dashboard_sends_visitors_to_sign_in_and_greets_members() {
        let (status, location, ..) = get("/dashboard", None);
        assert_eq!((status, location.as_str()), (303, "/sign-in?return_to=%2Fdashboard"));
        let (status, _, _, body) = get("/dashboard", Some("ann-token"));
        assert_eq!(status, 200);
        assert!(body.contains("ann@example.com"), "{body}");
    }

    #[test]
    fn the_admin_page_needs_the_role() {
        assert_eq!(get("/admin", Some("ann-token")).0, 403);
        assert_eq!(get("/admin", Some("made-up")).0, 303, "an unknown token is no session");
        let (status, _, _, body) = get("/admin", Some("root-token"));
        assert_eq!(status, 200);
        assert!(body.contains("root@example.com"), "{body}");
    }

    #[test]
    fn every_page_asks_for_no_referrer() {
        for (path, token) in [("/", None), ("/dashboard", None), ("/admin", Some("ann-token")), ("/nope", None)] {
            assert_eq!(get(path, token).2, "no-referrer", "{path}");
        }
    }
}
