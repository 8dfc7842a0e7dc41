//! The example website (`examples/site`) on Axum, with `keyport-axum`:
//! [`KeyportLayer`] in front of the router, the [`Principal`] and [`Auth`]
//! extractors in the handlers. Each handler calls the request's `Auth` and
//! lets the framework-free [`Site`] decide the page or redirect, which
//! [`respond`] turns into an Axum response; see `keyport_example_site` for
//! the pages, the route rules and the configuration (`KEYPORT_URL`,
//! `LISTEN`, `PUBLIC_URL`, `RUST_LOG`).

use std::{net::SocketAddr, process::ExitCode};

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
use keyport_client::{EmailProof, NewApiKey};
use keyport_example_site::{
    Answer, ApiKeyForm, CALLBACK_PATH, CallbackQuery, Config, DashboardQuery, EmailCodeForm, EmailSignInForm,
    ForgotPasswordForm, IdForm, InviteForm, LinkQuery, OrganizationForm, OrganizationsQuery, PasskeyForm,
    PasskeyIdForm, PasskeySignInForm, PasskeysQuery, ResetPasswordForm, RevokeForm, SecondFactorForm, SessionsQuery,
    SignInForm, SignInQuery, SignUpForm, Site, StepUpForm, step_up as step_up_with,
};
use tokio::net::TcpListener;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> ExitCode {
    keyport_example_site::init_tracing();
    keyport_example_site::exit_code("keyport-example-axum", run().await)
}

async fn run() -> Result<(), BoxError> {
    let config = Config::from_env();
    let guard = config.guard()?;
    let listener = TcpListener::bind(&config.listen).await?;
    let site = config.site("keyport-example-axum", guard, listener.local_addr()?);
    // `ConnectInfo` lets the layer pass the visitor's address on to Keyport,
    // which records it with each session.
    let service = app(site).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(shutdown_signal()).await?;
    Ok(())
}

fn app(site: Site) -> Router {
    let guard = site.guard().clone();
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
        .route("/sign-in/email/start", post(start_email_sign_in))
        .route("/sign-in/email", get(email_sign_in_page).post(email_code))
        .route("/sign-in/second-factor", get(second_factor_page).post(second_factor))
        .route("/sign-in/step-up", get(step_up_page).post(step_up))
        .route("/sign-in/step-up/passkey", post(passkey_step_up))
        .route("/sign-in/passkey/start", post(start_passkey_sign_in))
        .route("/sign-in/passkey", post(passkey_sign_in))
        .route("/api-keys", get(api_keys).post(create_api_key))
        .route("/api-keys/revoke", post(revoke_api_key))
        .route("/api/notes", get(notes))
        .route("/organizations", get(organizations).post(create_organization))
        .route("/organizations/switch", post(switch_organization))
        .route("/organizations/members", get(members))
        .route("/organizations/invite", post(invite))
        .route("/invitations/accept", post(accept_invitation))
        .route("/passkeys", get(passkeys).post(register_passkey))
        .route("/passkeys/start", post(start_passkey_registration))
        .route("/passkeys/rename", post(rename_passkey))
        .route("/passkeys/delete", post(delete_passkey))
        .route("/two-factor", get(two_factor))
        .route("/two-factor/enroll", post(enroll_totp))
        .route("/two-factor/confirm", post(confirm_totp))
        .route("/two-factor/disable", post(disable_totp))
        .route("/verify-email", get(verify_email))
        .route("/verify-email/send", post(request_email_verification))
        .route("/forgot-password", get(forgot_password_page).post(forgot_password))
        .route("/reset-password", get(reset_password_page).post(reset_password))
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

/// The site's answer as an Axum response: a page, or a `303 See Other`,
/// with its `Set-Cookie` headers.
fn respond(answer: Answer<CookieHeader>) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = match answer.location {
        Some(location) => {
            let location = HeaderValue::from_str(&location).unwrap_or_else(|_| HeaderValue::from_static("/"));
            (status, [(LOCATION, location)]).into_response()
        }
        None => (status, Html(answer.html)).into_response(),
    };
    for CookieHeader(cookie) in answer.cookies {
        match HeaderValue::from_str(&cookie) {
            Ok(value) => {
                response.headers_mut().append(SET_COOKIE, value);
            }
            Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        }
    }
    response
}

// ----- Pages -----

async fn home(State(site): State<Site>, user: Option<Principal>) -> Response {
    respond(site.home(user.as_deref()))
}

async fn not_found(State(site): State<Site>, user: Option<Principal>) -> Response {
    respond(site.not_found(user.as_deref()))
}

async fn dashboard(State(site): State<Site>, user: Principal, Query(query): Query<DashboardQuery>) -> Response {
    respond(site.dashboard(&user, &query).await)
}

async fn admin(State(site): State<Site>, user: Principal) -> Response {
    respond(site.admin(&user))
}

// ----- Sign-up and sign-in -----

async fn sign_up_page(State(site): State<Site>, user: Option<Principal>) -> Response {
    respond(site.sign_up_page(user.as_deref()).await)
}

async fn sign_up(
    State(site): State<Site>,
    user: Option<Principal>,
    auth: Auth,
    Form(form): Form<SignUpForm>,
) -> Response {
    let signed_up = auth.sign_up(&form.email, &form.password, &form.name).await;
    respond(site.signed_up(user.as_deref(), &form, signed_up).await)
}

async fn sign_in_page(State(site): State<Site>, user: Option<Principal>, Query(query): Query<SignInQuery>) -> Response {
    respond(site.sign_in_page(user.as_deref(), &query).await)
}

async fn sign_in(
    State(site): State<Site>,
    user: Option<Principal>,
    auth: Auth,
    Form(form): Form<SignInForm>,
) -> Response {
    let signed_in = auth.sign_in(&form.email, &form.password).await;
    respond(site.signed_in(user.as_deref(), &form, signed_in).await)
}

// ----- Social sign-in -----

async fn start_oauth(
    State(site): State<Site>,
    user: Option<Principal>,
    auth: Auth,
    Path(provider): Path<String>,
) -> Response {
    respond(site.oauth_started(user.as_deref(), auth.start_oauth(&provider, site.callback()).await))
}

async fn link_oauth(State(site): State<Site>, user: Principal, auth: Auth, Path(provider): Path<String>) -> Response {
    respond(site.link_started(&user, auth.link_oauth(&provider, site.callback()).await))
}

async fn oauth_callback(
    State(site): State<Site>,
    user: Option<Principal>,
    auth: Auth,
    Query(query): Query<CallbackQuery>,
) -> Response {
    respond(site.oauth_finished(user.as_deref(), &query, auth.finish_oauth(site.callback()).await))
}

// ----- Through the mailbox -----

async fn start_email_sign_in(
    State(site): State<Site>,
    user: Option<Principal>,
    auth: Auth,
    Form(form): Form<EmailSignInForm>,
) -> Response {
    respond(site.email_sign_in_started(user.as_deref(), auth.start_email_sign_in(&form.email).await))
}

/// The code form, or, reached through the mailed link, the sign-in itself.
async fn email_sign_in_page(
    State(site): State<Site>,
    user: Option<Principal>,
    auth: Auth,
    Query(query): Query<LinkQuery>,
) -> Response {
    if query.token.is_empty() {
        return respond(site.email_code_page(user.as_deref()));
    }
    let finished = auth.finish_email_sign_in(EmailProof::Link(&query.token)).await;
    respond(site.email_signed_in(user.as_deref(), finished))
}

async fn email_code(
    State(site): State<Site>,
    user: Option<Principal>,
    auth: Auth,
    Form(form): Form<EmailCodeForm>,
) -> Response {
    let finished = auth.finish_email_sign_in(EmailProof::Code(&form.code)).await;
    respond(site.email_signed_in(user.as_deref(), finished))
}

async fn second_factor_page(State(site): State<Site>, user: Option<Principal>, auth: Auth) -> Response {
    respond(site.second_factor_page(user.as_deref(), auth.challenge_passkey_options()))
}

async fn second_factor(
    State(site): State<Site>,
    user: Option<Principal>,
    auth: Auth,
    Form(form): Form<SecondFactorForm>,
) -> Response {
    let completed = auth.complete_sign_in(form.answer()).await;
    respond(site.second_factor_completed(user.as_deref(), auth.challenge_passkey_options(), completed))
}

async fn step_up_page(State(site): State<Site>, user: Principal, Query(query): Query<SignInQuery>) -> Response {
    respond(site.step_up_page(&user, &query))
}

async fn step_up(State(site): State<Site>, user: Principal, auth: Auth, Form(form): Form<StepUpForm>) -> Response {
    let stepped = step_up_with(&auth, &form).await;
    respond(site.stepped_up(&user, &form, stepped))
}

async fn passkey_step_up(
    State(site): State<Site>,
    user: Principal,
    auth: Auth,
    Form(form): Form<StepUpForm>,
) -> Response {
    respond(site.passkey_step_up_page(&user, &form, auth.start_passkey_step_up().await))
}

// ----- Passkeys -----

async fn start_passkey_sign_in(State(site): State<Site>, user: Option<Principal>, auth: Auth) -> Response {
    respond(site.passkey_sign_in_page(user.as_deref(), auth.start_passkey_sign_in().await))
}

async fn passkey_sign_in(
    State(site): State<Site>,
    user: Option<Principal>,
    auth: Auth,
    Form(form): Form<PasskeySignInForm>,
) -> Response {
    respond(site.passkey_signed_in(user.as_deref(), auth.finish_passkey_sign_in(&form.credential).await))
}

async fn api_keys(State(site): State<Site>, user: Principal, auth: Auth) -> Response {
    respond(site.api_keys_page(&user, auth.list_api_keys().await, None))
}

async fn create_api_key(
    State(site): State<Site>,
    user: Principal,
    auth: Auth,
    Form(form): Form<ApiKeyForm>,
) -> Response {
    let new = NewApiKey { name: form.name, scopes: vec![form.scope], ..Default::default() };
    let created = auth.create_api_key(new).await;
    respond(site.api_keys_page(&user, auth.list_api_keys().await, Some(created)))
}

async fn revoke_api_key(State(site): State<Site>, user: Principal, auth: Auth, Form(form): Form<IdForm>) -> Response {
    respond(site.api_key_revoked(&user, auth.revoke_api_key(&form.id).await))
}

async fn notes(State(site): State<Site>, caller: Principal) -> Response {
    respond(site.notes(&caller))
}

async fn organizations(
    State(site): State<Site>,
    user: Principal,
    auth: Auth,
    Query(query): Query<OrganizationsQuery>,
) -> Response {
    respond(site.organizations_page(&user, &query, auth.list_my_organizations().await))
}

async fn create_organization(
    State(site): State<Site>,
    user: Principal,
    auth: Auth,
    Form(form): Form<OrganizationForm>,
) -> Response {
    respond(site.organization_changed(&user, auth.create_organization(&form.name, &form.slug).await))
}

async fn switch_organization(
    State(site): State<Site>,
    user: Principal,
    auth: Auth,
    Form(form): Form<IdForm>,
) -> Response {
    respond(site.organization_changed(&user, auth.set_active_organization(&form.id).await))
}

async fn members(State(site): State<Site>, user: Principal, auth: Auth, Query(query): Query<IdForm>) -> Response {
    let (members, invitations) = tokio::join!(auth.list_members(&query.id), auth.list_invitations(&query.id));
    respond(site.members_page(&user, &query.id, members, invitations))
}

async fn invite(State(site): State<Site>, user: Principal, auth: Auth, Form(form): Form<InviteForm>) -> Response {
    let invited = auth.create_invitation(&form.organization, &form.email, &form.role).await;
    respond(site.invited(&user, &form.organization, invited))
}

async fn accept_invitation(
    State(site): State<Site>,
    user: Principal,
    auth: Auth,
    Form(form): Form<IdForm>,
) -> Response {
    respond(site.organization_changed(&user, auth.accept_invitation(&form.id).await))
}

async fn passkeys(
    State(site): State<Site>,
    user: Principal,
    auth: Auth,
    Query(query): Query<PasskeysQuery>,
) -> Response {
    respond(site.passkeys_page(&user, &query, auth.list_passkeys().await))
}

async fn start_passkey_registration(State(site): State<Site>, user: Principal, auth: Auth) -> Response {
    respond(site.passkey_registration(&user, auth.start_passkey_registration().await))
}

async fn register_passkey(
    State(site): State<Site>,
    user: Principal,
    auth: Auth,
    Form(form): Form<PasskeyForm>,
) -> Response {
    let finished = auth.finish_passkey_registration(&form.ceremony, &form.credential, &form.name).await;
    respond(site.passkey_registered(&user, finished))
}

async fn rename_passkey(
    State(site): State<Site>,
    user: Principal,
    auth: Auth,
    Form(form): Form<PasskeyIdForm>,
) -> Response {
    respond(site.passkey_renamed(&user, auth.rename_passkey(&form.id, &form.name).await))
}

async fn delete_passkey(
    State(site): State<Site>,
    user: Principal,
    auth: Auth,
    Form(form): Form<PasskeyIdForm>,
) -> Response {
    respond(site.passkey_deleted(&user, auth.delete_passkey(&form.id).await))
}

async fn two_factor(State(site): State<Site>, user: Principal, auth: Auth) -> Response {
    respond(site.two_factor_page(&user, auth.list_factors().await))
}

async fn enroll_totp(State(site): State<Site>, user: Principal, auth: Auth) -> Response {
    respond(site.totp_enrollment(&user, auth.enroll_totp().await))
}

async fn confirm_totp(
    State(site): State<Site>,
    user: Principal,
    auth: Auth,
    Form(form): Form<SecondFactorForm>,
) -> Response {
    respond(site.totp_confirmed(&user, auth.confirm_totp(&form.code).await))
}

async fn disable_totp(State(site): State<Site>, user: Principal, auth: Auth) -> Response {
    respond(site.totp_disabled(&user, auth.disable_totp().await))
}

async fn request_email_verification(State(site): State<Site>, user: Principal, auth: Auth) -> Response {
    respond(site.verification_requested(&user, auth.request_email_verification().await))
}

async fn verify_email(
    State(site): State<Site>,
    user: Option<Principal>,
    auth: Auth,
    Query(query): Query<LinkQuery>,
) -> Response {
    respond(site.email_verified(user.as_deref(), auth.verify_email(&query.token).await))
}

async fn forgot_password_page(State(site): State<Site>, user: Option<Principal>) -> Response {
    respond(site.forgot_password_page(user.as_deref()))
}

async fn forgot_password(
    State(site): State<Site>,
    user: Option<Principal>,
    auth: Auth,
    Form(form): Form<ForgotPasswordForm>,
) -> Response {
    let requested = auth.request_password_reset(&form.email).await;
    respond(site.password_reset_requested(user.as_deref(), &form, requested))
}

async fn reset_password_page(
    State(site): State<Site>,
    user: Option<Principal>,
    Query(query): Query<LinkQuery>,
) -> Response {
    respond(site.reset_password_page(user.as_deref(), &query))
}

async fn reset_password(
    State(site): State<Site>,
    user: Option<Principal>,
    auth: Auth,
    Form(form): Form<ResetPasswordForm>,
) -> Response {
    let reset = auth.reset_password(&form.token, &form.password).await;
    respond(site.password_reset(user.as_deref(), &form, reset))
}

// ----- Sign-out and sessions -----

async fn sign_out(State(site): State<Site>, auth: Auth) -> Response {
    respond(site.signed_out(auth.sign_out().await))
}

async fn sessions(
    State(site): State<Site>,
    user: Principal,
    auth: Auth,
    Query(query): Query<SessionsQuery>,
) -> Response {
    respond(site.sessions(&user, &query, auth.list_sessions().await))
}

async fn revoke_session(
    State(site): State<Site>,
    user: Principal,
    auth: Auth,
    Form(form): Form<RevokeForm>,
) -> Response {
    respond(site.revoked_session(&user, auth.revoke_session(&form.session_id).await))
}

async fn revoke_other_sessions(State(site): State<Site>, user: Principal, auth: Auth) -> Response {
    respond(site.revoked_other_sessions(&user, auth.revoke_other_sessions().await))
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
    use keyport_client::{Principal, web::Guard};
    use tower::ServiceExt;

    use super::*;

    /// Status, `Location`, `Referrer-Policy` and body of `GET path`.
    async fn get(path: &str, token: Option<&str>) -> Result<(u16, String, String, String), BoxError> {
        let sessions = [
            ("ann-token", Principal::for_tests("ann@example.com", &[])),
            ("root-token", Principal::for_tests("root@example.com", &["admin"])),
        ];
        let guard = Guard::offline(keyport_example_site::settings().shared(), sessions);
        let site = Site::new(guard, "http://localhost/oauth/callback");
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
