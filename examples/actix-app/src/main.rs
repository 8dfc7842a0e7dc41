//! The example website (`examples/site`) on Actix Web, with
//! `keyport-actix`: [`KeyportMiddleware`] wrapping the app, the
//! [`Principal`] and [`Auth`] extractors in the handlers. Each handler calls
//! the request's `Auth` and lets the framework-free [`Site`] decide the page
//! or redirect, which [`respond`] turns into an Actix response; see
//! `keyport_example_site` for the pages, the route rules and the
//! configuration (`KEYPORT_URL`, `LISTEN`, `PUBLIC_URL`, `RUST_LOG`).

use std::{net::TcpListener, process::ExitCode};

use actix_web::{
    App, HttpResponse, HttpServer,
    http::{StatusCode, header::ContentType, header::LOCATION},
    middleware::DefaultHeaders,
    rt::System,
    web,
};
use keyport_actix::{Auth, CookieHeader, KeyportMiddleware, Principal};
use keyport_client::{EmailProof, NewApiKey, web::Guard};
use keyport_example_site::{
    Answer, ApiKeyForm, CALLBACK_PATH, CallbackQuery, Config, DashboardQuery, EmailCodeForm, EmailSignInForm,
    ForgotPasswordForm, IdForm, InviteForm, LinkQuery, OrganizationForm, OrganizationsQuery, PasskeyForm,
    PasskeyIdForm, PasskeySignInForm, PasskeysQuery, ResetPasswordForm, RevokeForm, SecondFactorForm, SessionsQuery,
    SignInForm, SignInQuery, SignUpForm, Site, StepUpForm, step_up as step_up_with,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> ExitCode {
    keyport_example_site::init_tracing();
    // Actix runs on its own runtime; the session cache's background task is
    // spawned on this (main) one and lives as long as the server.
    keyport_example_site::exit_code("keyport-example-actix", System::new().block_on(run()))
}

async fn run() -> Result<(), BoxError> {
    let config = Config::from_env();
    let guard = config.guard()?;
    // Bound first: the OAuth callback's default address is the bound one.
    let listener = TcpListener::bind(&config.listen)?;
    let site = web::Data::new(config.site("keyport-example-actix", guard.clone(), listener.local_addr()?));
    let server = HttpServer::new(move || app(site.clone(), guard.clone())).listen(listener)?;
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
        .route("/sign-in/email/start", web::post().to(start_email_sign_in))
        .route("/sign-in/email", web::get().to(email_sign_in_page))
        .route("/sign-in/email", web::post().to(email_code))
        .route("/sign-in/second-factor", web::get().to(second_factor_page))
        .route("/sign-in/second-factor", web::post().to(second_factor))
        .route("/sign-in/step-up", web::get().to(step_up_page))
        .route("/sign-in/step-up", web::post().to(step_up))
        .route("/sign-in/step-up/passkey", web::post().to(passkey_step_up))
        .route("/sign-in/passkey/start", web::post().to(start_passkey_sign_in))
        .route("/sign-in/passkey", web::post().to(passkey_sign_in))
        .route("/api-keys", web::get().to(api_keys))
        .route("/api-keys", web::post().to(create_api_key))
        .route("/api-keys/revoke", web::post().to(revoke_api_key))
        .route("/api/notes", web::get().to(notes))
        .route("/organizations", web::get().to(organizations))
        .route("/organizations", web::post().to(create_organization))
        .route("/organizations/switch", web::post().to(switch_organization))
        .route("/organizations/members", web::get().to(members))
        .route("/organizations/invite", web::post().to(invite))
        .route("/invitations/accept", web::post().to(accept_invitation))
        .route("/passkeys", web::get().to(passkeys))
        .route("/passkeys", web::post().to(register_passkey))
        .route("/passkeys/start", web::post().to(start_passkey_registration))
        .route("/passkeys/rename", web::post().to(rename_passkey))
        .route("/passkeys/delete", web::post().to(delete_passkey))
        .route("/two-factor", web::get().to(two_factor))
        .route("/two-factor/enroll", web::post().to(enroll_totp))
        .route("/two-factor/confirm", web::post().to(confirm_totp))
        .route("/two-factor/disable", web::post().to(disable_totp))
        .route("/verify-email", web::get().to(verify_email))
        .route("/verify-email/send", web::post().to(request_email_verification))
        .route("/forgot-password", web::get().to(forgot_password_page))
        .route("/forgot-password", web::post().to(forgot_password))
        .route("/reset-password", web::get().to(reset_password_page))
        .route("/reset-password", web::post().to(reset_password))
        .default_service(web::to(not_found))
}

/// The site's answer as an Actix response: a page, or a `303 See Other`,
/// with its `Set-Cookie` headers (appended: `insert_header` would keep only
/// the last).
fn respond(answer: Answer<CookieHeader>) -> HttpResponse {
    let mut response = HttpResponse::build(StatusCode::from_u16(answer.status).unwrap_or(StatusCode::BAD_REQUEST));
    if let Some(location) = answer.location {
        // An invalid value would turn the response into a 500, never a panic;
        // the paths here are validated or constant, the provider's URL Keyport's.
        response.insert_header((LOCATION, location));
    }
    for cookie in answer.cookies {
        response.append_header(cookie);
    }
    if answer.html.is_empty() {
        response.finish()
    } else {
        response.content_type(ContentType::html()).body(answer.html)
    }
}

// ----- Pages -----

async fn home(site: web::Data<Site>, user: Option<Principal>) -> HttpResponse {
    respond(site.home(user.as_deref()))
}

async fn not_found(site: web::Data<Site>, user: Option<Principal>) -> HttpResponse {
    respond(site.not_found(user.as_deref()))
}

async fn dashboard(site: web::Data<Site>, user: Principal, query: web::Query<DashboardQuery>) -> HttpResponse {
    respond(site.dashboard(&user, &query).await)
}

async fn admin(site: web::Data<Site>, user: Principal) -> HttpResponse {
    respond(site.admin(&user))
}

// ----- Sign-up and sign-in -----

async fn sign_up_page(site: web::Data<Site>, user: Option<Principal>) -> HttpResponse {
    respond(site.sign_up_page(user.as_deref()).await)
}

async fn sign_up(
    site: web::Data<Site>,
    user: Option<Principal>,
    auth: Auth,
    form: web::Form<SignUpForm>,
) -> HttpResponse {
    let signed_up = auth.sign_up(&form.email, &form.password, &form.name).await;
    respond(site.signed_up(user.as_deref(), &form, signed_up).await)
}

async fn sign_in_page(site: web::Data<Site>, user: Option<Principal>, query: web::Query<SignInQuery>) -> HttpResponse {
    respond(site.sign_in_page(user.as_deref(), &query).await)
}

async fn sign_in(
    site: web::Data<Site>,
    user: Option<Principal>,
    auth: Auth,
    form: web::Form<SignInForm>,
) -> HttpResponse {
    let signed_in = auth.sign_in(&form.email, &form.password).await;
    respond(site.signed_in(user.as_deref(), &form, signed_in).await)
}

// ----- Social sign-in -----

async fn start_oauth(
    site: web::Data<Site>,
    user: Option<Principal>,
    auth: Auth,
    provider: web::Path<String>,
) -> HttpResponse {
    respond(site.oauth_started(user.as_deref(), auth.start_oauth(&provider, site.callback()).await))
}

async fn link_oauth(site: web::Data<Site>, user: Principal, auth: Auth, provider: web::Path<String>) -> HttpResponse {
    respond(site.link_started(&user, auth.link_oauth(&provider, site.callback()).await))
}

async fn oauth_callback(
    site: web::Data<Site>,
    user: Option<Principal>,
    auth: Auth,
    query: web::Query<CallbackQuery>,
) -> HttpResponse {
    respond(site.oauth_finished(user.as_deref(), &query, auth.finish_oauth(site.callback()).await))
}

// ----- Through the mailbox -----

async fn start_email_sign_in(
    site: web::Data<Site>,
    user: Option<Principal>,
    auth: Auth,
    form: web::Form<EmailSignInForm>,
) -> HttpResponse {
    respond(site.email_sign_in_started(user.as_deref(), auth.start_email_sign_in(&form.email).await))
}

/// The code form, or, reached through the mailed link, the sign-in itself.
async fn email_sign_in_page(
    site: web::Data<Site>,
    user: Option<Principal>,
    auth: Auth,
    query: web::Query<LinkQuery>,
) -> HttpResponse {
    if query.token.is_empty() {
        return respond(site.email_code_page(user.as_deref()));
    }
    let finished = auth.finish_email_sign_in(EmailProof::Link(&query.token)).await;
    respond(site.email_signed_in(user.as_deref(), finished))
}

async fn email_code(
    site: web::Data<Site>,
    user: Option<Principal>,
    auth: Auth,
    form: web::Form<EmailCodeForm>,
) -> HttpResponse {
    let finished = auth.finish_email_sign_in(EmailProof::Code(&form.code)).await;
    respond(site.email_signed_in(user.as_deref(), finished))
}

async fn second_factor_page(site: web::Data<Site>, user: Option<Principal>, auth: Auth) -> HttpResponse {
    respond(site.second_factor_page(user.as_deref(), auth.challenge_passkey_options()))
}

async fn second_factor(
    site: web::Data<Site>,
    user: Option<Principal>,
    auth: Auth,
    form: web::Form<SecondFactorForm>,
) -> HttpResponse {
    let completed = auth.complete_sign_in(form.answer()).await;
    respond(site.second_factor_completed(user.as_deref(), auth.challenge_passkey_options(), completed))
}

async fn step_up_page(site: web::Data<Site>, user: Principal, query: web::Query<SignInQuery>) -> HttpResponse {
    respond(site.step_up_page(&user, &query))
}

async fn step_up(site: web::Data<Site>, user: Principal, auth: Auth, form: web::Form<StepUpForm>) -> HttpResponse {
    let stepped = step_up_with(&auth, &form).await;
    respond(site.stepped_up(&user, &form, stepped))
}

async fn passkey_step_up(
    site: web::Data<Site>,
    user: Principal,
    auth: Auth,
    form: web::Form<StepUpForm>,
) -> HttpResponse {
    respond(site.passkey_step_up_page(&user, &form, auth.start_passkey_step_up().await))
}

// ----- Passkeys -----

async fn start_passkey_sign_in(site: web::Data<Site>, user: Option<Principal>, auth: Auth) -> HttpResponse {
    respond(site.passkey_sign_in_page(user.as_deref(), auth.start_passkey_sign_in().await))
}

async fn passkey_sign_in(
    site: web::Data<Site>,
    user: Option<Principal>,
    auth: Auth,
    form: web::Form<PasskeySignInForm>,
) -> HttpResponse {
    respond(site.passkey_signed_in(user.as_deref(), auth.finish_passkey_sign_in(&form.credential).await))
}

async fn api_keys(site: web::Data<Site>, user: Principal, auth: Auth) -> HttpResponse {
    respond(site.api_keys_page(&user, auth.list_api_keys().await, None))
}

async fn create_api_key(
    site: web::Data<Site>,
    user: Principal,
    auth: Auth,
    form: web::Form<ApiKeyForm>,
) -> HttpResponse {
    let form = form.into_inner();
    let new = NewApiKey { name: form.name, scopes: vec![form.scope], ..Default::default() };
    let created = auth.create_api_key(new).await;
    respond(site.api_keys_page(&user, auth.list_api_keys().await, Some(created)))
}

async fn revoke_api_key(site: web::Data<Site>, user: Principal, auth: Auth, form: web::Form<IdForm>) -> HttpResponse {
    respond(site.api_key_revoked(&user, auth.revoke_api_key(&form.id).await))
}

async fn notes(site: web::Data<Site>, caller: Principal) -> HttpResponse {
    respond(site.notes(&caller))
}

async fn organizations(
    site: web::Data<Site>,
    user: Principal,
    auth: Auth,
    query: web::Query<OrganizationsQuery>,
) -> HttpResponse {
    respond(site.organizations_page(&user, &query, auth.list_my_organizations().await))
}

async fn create_organization(
    site: web::Data<Site>,
    user: Principal,
    auth: Auth,
    form: web::Form<OrganizationForm>,
) -> HttpResponse {
    respond(site.organization_changed(&user, auth.create_organization(&form.name, &form.slug).await))
}

async fn switch_organization(
    site: web::Data<Site>,
    user: Principal,
    auth: Auth,
    form: web::Form<IdForm>,
) -> HttpResponse {
    respond(site.organization_changed(&user, auth.set_active_organization(&form.id).await))
}

async fn members(site: web::Data<Site>, user: Principal, auth: Auth, query: web::Query<IdForm>) -> HttpResponse {
    let (members, invitations) = tokio::join!(auth.list_members(&query.id), auth.list_invitations(&query.id));
    respond(site.members_page(&user, &query.id, members, invitations))
}

async fn invite(site: web::Data<Site>, user: Principal, auth: Auth, form: web::Form<InviteForm>) -> HttpResponse {
    let invited = auth.create_invitation(&form.organization, &form.email, &form.role).await;
    respond(site.invited(&user, &form.organization, invited))
}

async fn accept_invitation(
    site: web::Data<Site>,
    user: Principal,
    auth: Auth,
    form: web::Form<IdForm>,
) -> HttpResponse {
    respond(site.organization_changed(&user, auth.accept_invitation(&form.id).await))
}

async fn passkeys(
    site: web::Data<Site>,
    user: Principal,
    auth: Auth,
    query: web::Query<PasskeysQuery>,
) -> HttpResponse {
    respond(site.passkeys_page(&user, &query, auth.list_passkeys().await))
}

async fn start_passkey_registration(site: web::Data<Site>, user: Principal, auth: Auth) -> HttpResponse {
    respond(site.passkey_registration(&user, auth.start_passkey_registration().await))
}

async fn register_passkey(
    site: web::Data<Site>,
    user: Principal,
    auth: Auth,
    form: web::Form<PasskeyForm>,
) -> HttpResponse {
    let finished = auth.finish_passkey_registration(&form.ceremony, &form.credential, &form.name).await;
    respond(site.passkey_registered(&user, finished))
}

async fn rename_passkey(
    site: web::Data<Site>,
    user: Principal,
    auth: Auth,
    form: web::Form<PasskeyIdForm>,
) -> HttpResponse {
    respond(site.passkey_renamed(&user, auth.rename_passkey(&form.id, &form.name).await))
}

async fn delete_passkey(
    site: web::Data<Site>,
    user: Principal,
    auth: Auth,
    form: web::Form<PasskeyIdForm>,
) -> HttpResponse {
    respond(site.passkey_deleted(&user, auth.delete_passkey(&form.id).await))
}

async fn two_factor(site: web::Data<Site>, user: Principal, auth: Auth) -> HttpResponse {
    respond(site.two_factor_page(&user, auth.list_factors().await))
}

async fn enroll_totp(site: web::Data<Site>, user: Principal, auth: Auth) -> HttpResponse {
    respond(site.totp_enrollment(&user, auth.enroll_totp().await))
}

async fn confirm_totp(
    site: web::Data<Site>,
    user: Principal,
    auth: Auth,
    form: web::Form<SecondFactorForm>,
) -> HttpResponse {
    respond(site.totp_confirmed(&user, auth.confirm_totp(&form.code).await))
}

async fn disable_totp(site: web::Data<Site>, user: Principal, auth: Auth) -> HttpResponse {
    respond(site.totp_disabled(&user, auth.disable_totp().await))
}

async fn request_email_verification(site: web::Data<Site>, user: Principal, auth: Auth) -> HttpResponse {
    respond(site.verification_requested(&user, auth.request_email_verification().await))
}

async fn verify_email(
    site: web::Data<Site>,
    user: Option<Principal>,
    auth: Auth,
    query: web::Query<LinkQuery>,
) -> HttpResponse {
    respond(site.email_verified(user.as_deref(), auth.verify_email(&query.token).await))
}

async fn forgot_password_page(site: web::Data<Site>, user: Option<Principal>) -> HttpResponse {
    respond(site.forgot_password_page(user.as_deref()))
}

async fn forgot_password(
    site: web::Data<Site>,
    user: Option<Principal>,
    auth: Auth,
    form: web::Form<ForgotPasswordForm>,
) -> HttpResponse {
    let requested = auth.request_password_reset(&form.email).await;
    respond(site.password_reset_requested(user.as_deref(), &form, requested))
}

async fn reset_password_page(
    site: web::Data<Site>,
    user: Option<Principal>,
    query: web::Query<LinkQuery>,
) -> HttpResponse {
    respond(site.reset_password_page(user.as_deref(), &query))
}

async fn reset_password(
    site: web::Data<Site>,
    user: Option<Principal>,
    auth: Auth,
    form: web::Form<ResetPasswordForm>,
) -> HttpResponse {
    let reset = auth.reset_password(&form.token, &form.password).await;
    respond(site.password_reset(user.as_deref(), &form, reset))
}

// ----- Sign-out and sessions -----

async fn sign_out(site: web::Data<Site>, auth: Auth) -> HttpResponse {
    respond(site.signed_out(auth.sign_out().await))
}

async fn sessions(
    site: web::Data<Site>,
    user: Principal,
    auth: Auth,
    query: web::Query<SessionsQuery>,
) -> HttpResponse {
    respond(site.sessions(&user, &query, auth.list_sessions().await))
}

async fn revoke_session(
    site: web::Data<Site>,
    user: Principal,
    auth: Auth,
    form: web::Form<RevokeForm>,
) -> HttpResponse {
    respond(site.revoked_session(&user, auth.revoke_session(&form.session_id).await))
}

async fn revoke_other_sessions(site: web::Data<Site>, user: Principal, auth: Auth) -> HttpResponse {
    respond(site.revoked_other_sessions(&user, auth.revoke_other_sessions().await))
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
            let guard = Guard::offline(keyport_example_site::settings().shared(), sessions);
            let site = web::Data::new(Site::new(guard.clone(), "http://localhost/oauth/callback"));
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
