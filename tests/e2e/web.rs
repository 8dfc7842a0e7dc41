//! Conformance of the web middleware: one suite, run against every adapter
//! through the same conformance app (see `keyport_tests::apps`), in front
//! of a real Keyport.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use keyport_client::{
    CacheConfig, KeyportClient, SessionCache,
    web::{AuthSettings, Guard},
};
use keyport_proto::v1::{RevokeSessionRequest, SignInRequest, sign_in_response::Outcome};
use keyport_tests::{Backend, TestServer, apps, grpc::authed, server::PASSWORD};
use reqwest::{
    Method, StatusCode,
    header::{ACCEPT, AUTHORIZATION, COOKIE, LOCATION, ORIGIN, SET_COOKIE},
    redirect::Policy,
};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type TestResult = Result<(), BoxError>;

/// Starts an adapter's conformance app in front of Keyport with `guard`.
pub(crate) type StartApp = fn(Guard) -> futures::future::BoxFuture<'static, std::io::Result<SocketAddr>>;

/// Generates the suite's tests for one adapter.
macro_rules! web_conformance {
    ($adapter:ident, $start:expr) => {
        mod $adapter {
            use super::*;

            const START: StartApp = $start;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn public_protected_and_role_gated_routes() -> TestResult {
                super::public_protected_and_role_gated_routes(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn bearer_and_cookie_tokens() -> TestResult {
                super::bearer_and_cookie_tokens(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn expired_revoked_and_malformed_tokens() -> TestResult {
                super::expired_revoked_and_malformed_tokens(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn browsers_are_redirected_and_apis_get_401() -> TestResult {
                super::browsers_are_redirected_and_apis_get_401(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cross_origin_cookie_requests_are_rejected() -> TestResult {
                super::cross_origin_cookie_requests_are_rejected(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sign_in_and_sign_out_set_and_clear_the_cookie() -> TestResult {
                super::sign_in_and_sign_out_set_and_clear_the_cookie(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn revocation_reaches_the_cache() -> TestResult {
                super::revocation_reaches_the_cache(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn fails_closed_when_keyport_is_unreachable() -> TestResult {
                super::fails_closed_when_keyport_is_unreachable(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn login_csrf_and_browser_responses() -> TestResult {
                super::login_csrf_and_browser_responses(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_new_sign_in_wins_over_a_dead_cookie() -> TestResult {
                super::a_new_sign_in_wins_over_a_dead_cookie(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_slid_expiry_reissues_the_cookie() -> TestResult {
                super::a_slid_expiry_reissues_the_cookie(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn return_paths_never_leave_the_site() -> TestResult {
                super::return_paths_never_leave_the_site(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn extractor_without_layer_names_the_layer() -> TestResult {
                super::extractor_without_layer_names_the_layer(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn patterns_users_write_guard_their_routes() -> TestResult {
                super::patterns_users_write_guard_their_routes(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn preflights_reach_the_app() -> TestResult {
                super::preflights_reach_the_app(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_second_factor_comes_before_the_session_cookie() -> TestResult {
                super::a_second_factor_comes_before_the_session_cookie(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn assurance_rules_send_browsers_to_step_up() -> TestResult {
                super::assurance_rules_send_browsers_to_step_up(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn same_origin_fetch_metadata_passes_the_csrf_check() -> TestResult {
                super::same_origin_fetch_metadata_passes_the_csrf_check(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_hung_keyport_does_not_hold_pages() -> TestResult {
                super::a_hung_keyport_does_not_hold_pages(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn junk_tokens_cost_one_call() -> TestResult {
                super::junk_tokens_cost_one_call(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn refusal_pages_can_be_replaced() -> TestResult {
                super::refusal_pages_can_be_replaced(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn an_offline_guard_runs_the_rules_without_keyport() -> TestResult {
                super::an_offline_guard_runs_the_rules_without_keyport(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn permission_rules_and_handler_checks() -> TestResult {
                super::permission_rules_and_handler_checks(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_role_change_reaches_the_next_request_at_once() -> TestResult {
                super::a_role_change_reaches_the_next_request_at_once(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn api_keys_reach_permission_routes_only() -> TestResult {
                super::api_keys_reach_permission_routes_only(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_key_revoked_mid_stream_is_refused_next() -> TestResult {
                super::a_key_revoked_mid_stream_is_refused_next(START).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn organization_rules_follow_memberships() -> TestResult {
                super::organization_rules_follow_memberships(START).await
            }
        }
    };
}

web_conformance!(axum, |guard| Box::pin(apps::axum_app::start(guard)));
web_conformance!(actix, |guard| Box::pin(apps::actix_app::start(guard)));

/// A Keyport, the conformance app in front of it, and an HTTP client.
struct Harness {
    keyport: TestServer,
    app: SocketAddr,
    http: reqwest::Client,
    cache: SessionCache,
}

impl Harness {
    async fn start(start: StartApp) -> Result<Self, BoxError> {
        let keyport = TestServer::start_with(Backend::Sqlite, catalogue).await?;
        let client = KeyportClient::builder(format!("http://{}", keyport.addr)).build()?;
        let cache = SessionCache::start(client, CacheConfig::default());
        wait_until_live(&cache).await?;
        let app = start(Guard::new(cache.clone(), apps::settings().shared())).await?;
        let http = reqwest::Client::builder().redirect(Policy::none()).build()?;
        Ok(Self { keyport, app, http, cache })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.app)
    }

    async fn get_bearer(&self, path: &str, token: &str) -> Result<(StatusCode, String), BoxError> {
        let response = self.http.get(self.url(path)).header(AUTHORIZATION, format!("Bearer {token}")).send().await?;
        Ok((response.status(), response.text().await?))
    }

    async fn send_bearer(&self, method: Method, path: &str, token: &str) -> Result<(StatusCode, String), BoxError> {
        let request = self.http.request(method, self.url(path)).header(AUTHORIZATION, format!("Bearer {token}"));
        let response = request.send().await?;
        Ok((response.status(), response.text().await?))
    }

    async fn get_cookie(&self, path: &str, token: &str) -> Result<reqwest::Response, BoxError> {
        Ok(self.http.get(self.url(path)).header(COOKIE, cookie(token)).send().await?)
    }

    async fn grant_admin(&self, email: &str) -> TestResult {
        let sql = format!("UPDATE users SET roles = 'admin user' WHERE email = '{email}'");
        let updated = sea_orm::ConnectionTrait::execute_unprepared(&self.keyport.db, &sql).await?;
        assert_eq!(updated.rows_affected(), 1, "{email} has an account");
        Ok(())
    }
}

/// The conformance app's permissions in Keyport's catalogue; users may read
/// posts, editors write them, admins do all.
fn catalogue(config: &mut keyport_server::config::Config) {
    config.authorization.permissions = apps::PERMISSIONS.map(String::from).to_vec();
    // Inside an organization, members write posts; `billing` reads invoices.
    config.organizations.roles = [("member", vec!["posts:*"]), ("billing", vec!["billing:read"])]
        .into_iter()
        .map(|(role, grants)| (role.to_owned(), grants.into_iter().map(String::from).collect()))
        .collect();
    config.authorization.roles =
        [("user", vec!["posts:read"]), ("editor", vec!["posts:*"]), ("support", vec![]), ("admin", vec!["*"])]
            .into_iter()
            .map(|(role, grants)| (role.to_owned(), grants.into_iter().map(String::from).collect()))
            .collect();
}

fn cookie(token: &str) -> String {
    format!("__Host-keyport_session={token}")
}

async fn wait_until_live(cache: &SessionCache) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cache.is_live() {
        if Instant::now() > deadline {
            return Err("session cache never went live".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

async fn public_protected_and_role_gated_routes(start: StartApp) -> TestResult {
    let h = Harness::start(start).await?;
    let ann = h.keyport.sign_up("ann@example.com").await?;
    let bob = h.keyport.sign_up("bob@example.com").await?;
    h.grant_admin("bob@example.com").await?;
    // Roles come with the session: bob signs in again to get a fresh answer.
    let bob_admin = sign_in(&h, "bob@example.com").await?;
    drop(bob);

    let anonymous = h.http.get(h.url("/public")).send().await?;
    assert_eq!((anonymous.status(), anonymous.text().await?), (StatusCode::OK, "public:anonymous".into()));
    assert_eq!(h.get_bearer("/public", &ann).await?, (StatusCode::OK, "public:ann@example.com".into()));
    assert_eq!(h.get_bearer("/dashboard", &ann).await?, (StatusCode::OK, "dashboard:ann@example.com".into()));
    assert_eq!(h.get_bearer("/dashboard/", &ann).await?.0, StatusCode::OK.max(StatusCode::NOT_FOUND));
    assert_eq!(h.get_bearer("/admin", &ann).await?.0, StatusCode::FORBIDDEN, "missing role");
    assert_eq!(h.get_bearer("/admin", &bob_admin).await?, (StatusCode::OK, "admin:bob@example.com".into()));
    let (status, body) = h.get_bearer("/api/me", &ann).await?;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("me:ann@example.com:"), "{body}");
    let sneaky = h.http.get(h.url("//admin")).header(AUTHORIZATION, format!("Bearer {ann}")).send().await?;
    assert_ne!(sneaky.status(), StatusCode::OK, "path tricks do not bypass the role rule");
    for encoded in ["/%61dmin", "/%61%64min"] {
        let response = h.http.get(h.url(encoded)).header(AUTHORIZATION, format!("Bearer {ann}")).send().await?;
        assert_ne!(response.status(), StatusCode::OK, "{encoded} does not bypass the role rule");
    }
    Ok(())
}

async fn sign_in(h: &Harness, email: &str) -> Result<String, BoxError> {
    let response = h
        .keyport
        .sessions()
        .sign_in(SignInRequest { email: email.into(), password: PASSWORD.into() })
        .await?
        .into_inner();
    match response.outcome {
        Some(Outcome::Session(grant)) => Ok(grant.token),
        Some(Outcome::Challenge(_)) => Err("a challenge".into()),
        None => Err("no outcome".into()),
    }
}

async fn bearer_and_cookie_tokens(start: StartApp) -> TestResult {
    let h = Harness::start(start).await?;
    let token = h.keyport.sign_up("ann@example.com").await?;
    assert_eq!(h.get_bearer("/dashboard", &token).await?.1, "dashboard:ann@example.com");
    let by_cookie = h.get_cookie("/dashboard", &token).await?;
    assert_eq!((by_cookie.status(), by_cookie.text().await?), (StatusCode::OK, "dashboard:ann@example.com".into()));
    let lower = h.http.get(h.url("/dashboard")).header(AUTHORIZATION, format!("bearer {token}")).send().await?;
    assert_eq!(lower.status(), StatusCode::OK, "the scheme is case-insensitive");
    // A site behind basic auth: the browser sends `Basic` credentials along
    // with the cookie, and the cookie still counts.
    let basic = h
        .http
        .get(h.url("/dashboard"))
        .header(AUTHORIZATION, "Basic c3RhZ2luZzpzZWNyZXQ=")
        .header(COOKIE, cookie(&token))
        .send()
        .await?;
    assert_eq!((basic.status(), basic.text().await?), (StatusCode::OK, "dashboard:ann@example.com".into()));
    // Another app's cookie with a UTF-8 value (browsers send them raw) does
    // not hide the session cookie beside it.
    let utf8 = reqwest::header::HeaderValue::from_bytes(format!("theme=crème; {}", cookie(&token)).as_bytes())?;
    let beside = h.http.get(h.url("/dashboard")).header(COOKIE, utf8).send().await?;
    assert_eq!((beside.status(), beside.text().await?), (StatusCode::OK, "dashboard:ann@example.com".into()));
    Ok(())
}

async fn expired_revoked_and_malformed_tokens(start: StartApp) -> TestResult {
    let h = Harness::start(start).await?;
    let token = h.keyport.sign_up("ann@example.com").await?;
    for bad in ["", "garbage", "kp_nope.nope", &format!("{token}x"), &"k".repeat(4000)] {
        assert_eq!(h.get_bearer("/dashboard", bad).await?.0, StatusCode::UNAUTHORIZED, "{bad:.20}");
        let response = h.get_cookie("/api/me", bad).await?;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{bad:.20}");
    }
    // A cookie that no longer works is cleared.
    let response =
        h.get_cookie("/api/me", "kp_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB").await?;
    let cleared =
        response.headers().get_all(SET_COOKIE).iter().any(|v| v.to_str().is_ok_and(|v| v.contains("Max-Age=0")));
    assert!(cleared, "an invalid session cookie is deleted");

    // Expiry: the cache never outlives the session, and Keyport says expired.
    h.keyport.clock.advance(Duration::from_secs(8 * 24 * 3600));
    h.cache.forget_user("ignored");
    let expired = h.get_bearer("/api/me", &token).await?;
    assert_eq!(expired.0, StatusCode::UNAUTHORIZED);
    assert!(expired.1.contains("SESSION_EXPIRED"), "{}", expired.1);
    Ok(())
}

async fn browsers_are_redirected_and_apis_get_401(start: StartApp) -> TestResult {
    let h = Harness::start(start).await?;
    let browser = h.http.get(h.url("/dashboard/settings?tab=a b")).header(ACCEPT, "text/html,*/*").send().await?;
    assert_eq!(browser.status(), StatusCode::SEE_OTHER);
    let location = browser.headers().get(LOCATION).ok_or("no location")?.to_str()?;
    assert_eq!(location, "/sign-in?return_to=%2Fdashboard%2Fsettings%3Ftab%3Da%2520b");
    let api = h.http.get(h.url("/api/me")).header(ACCEPT, "application/json").send().await?;
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api.headers().get("www-authenticate").map(|v| v.as_bytes()), Some(&b"Bearer"[..]));
    let body = api.text().await?;
    assert!(body.contains(r#""error":"UNAUTHENTICATED""#), "{body}");
    let post = h.http.post(h.url("/dashboard")).header(ACCEPT, "text/html").send().await?;
    assert_eq!(post.status(), StatusCode::UNAUTHORIZED, "only navigations are redirected");
    Ok(())
}

async fn cross_origin_cookie_requests_are_rejected(start: StartApp) -> TestResult {
    let h = Harness::start(start).await?;
    let token = h.keyport.sign_up("ann@example.com").await?;
    let own_origin = format!("http://{}", h.app);
    let post = |origin: Option<&str>| {
        let mut request = h.http.post(h.url("/api/notes")).header(COOKIE, cookie(&token));
        if let Some(origin) = origin {
            request = request.header(ORIGIN, origin);
        }
        request.send()
    };
    assert_eq!(post(Some(&own_origin)).await?.status(), StatusCode::OK);
    assert_eq!(post(Some("https://evil.example")).await?.status(), StatusCode::FORBIDDEN);
    assert_eq!(post(Some("null")).await?.status(), StatusCode::FORBIDDEN);
    assert_eq!(post(None).await?.status(), StatusCode::FORBIDDEN, "no Origin, no Referer: refused");
    let referer =
        h.http.post(h.url("/api/notes")).header(COOKIE, cookie(&token)).header("referer", format!("{own_origin}/page"));
    assert_eq!(referer.send().await?.status(), StatusCode::OK, "a same-origin Referer is accepted");
    let bearer = h.http.post(h.url("/api/notes")).header(AUTHORIZATION, format!("Bearer {token}"));
    assert_eq!(bearer.send().await?.status(), StatusCode::OK, "bearer tokens are not ambient: no CSRF check");
    // Basic credentials are as ambient as cookies: they do not skip the check.
    let basic = h
        .http
        .post(h.url("/api/notes"))
        .header(AUTHORIZATION, "Basic c3RhZ2luZzpzZWNyZXQ=")
        .header(COOKIE, cookie(&token))
        .header(ORIGIN, "https://evil.example");
    assert_eq!(basic.send().await?.status(), StatusCode::FORBIDDEN, "a cross-site write with Basic auth");
    Ok(())
}

async fn sign_in_and_sign_out_set_and_clear_the_cookie(start: StartApp) -> TestResult {
    let h = Harness::start(start).await?;
    h.keyport.sign_up("ann@example.com").await?;
    let own_origin = format!("http://{}", h.app);
    let wrong = h.http.post(h.url("/session")).form(&[("email", "ann@example.com"), ("password", "wrong password")]);
    assert_eq!(wrong.send().await?.status(), StatusCode::UNAUTHORIZED);
    let response =
        h.http.post(h.url("/session")).form(&[("email", "ann@example.com"), ("password", PASSWORD)]).send().await?;
    assert_eq!(response.status(), StatusCode::OK);
    let set_cookie = response.headers().get(SET_COOKIE).ok_or("no cookie")?.to_str()?.to_owned();
    for attribute in ["__Host-keyport_session=kp_", "Path=/", "HttpOnly", "Secure", "SameSite=Lax", "Max-Age="] {
        assert!(set_cookie.contains(attribute), "{attribute} missing from {set_cookie}");
    }
    let token = set_cookie.split(';').next().and_then(|pair| pair.split_once('=')).ok_or("bad cookie")?.1.to_owned();
    assert_eq!(h.get_cookie("/dashboard", &token).await?.status(), StatusCode::OK);

    let out = h.http.post(h.url("/sign-out")).header(COOKIE, cookie(&token)).header(ORIGIN, &own_origin).send().await?;
    assert_eq!(out.status(), StatusCode::OK);
    let cleared = out.headers().get(SET_COOKIE).ok_or("no cookie")?.to_str()?;
    assert!(cleared.starts_with("__Host-keyport_session=;") && cleared.contains("Max-Age=0"), "{cleared}");
    assert_eq!(h.get_cookie("/dashboard", &token).await?.status(), StatusCode::UNAUTHORIZED, "signed out at once");
    Ok(())
}

/// The `Set-Cookie` values of `response`, by cookie name.
fn set_cookies(response: &reqwest::Response) -> Vec<(String, String)> {
    response
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| {
            let (name, rest) = value.split_once('=')?;
            Some((name.to_owned(), rest.split(';').next().unwrap_or_default().to_owned()))
        })
        .collect()
}

async fn a_second_factor_comes_before_the_session_cookie(start: StartApp) -> TestResult {
    use keyport_core::{
        Clock,
        second_factor::{TotpSecret, TotpStep},
    };
    use keyport_proto::v1::{ConfirmTotpRequest, EnrollTotpRequest, two_factor_service_client::TwoFactorServiceClient};

    let h = Harness::start(start).await?;
    let token = h.keyport.sign_up("ann@example.com").await?;
    let mut factors = TwoFactorServiceClient::new(h.keyport.channel());
    let enrolled = factors.enroll_totp(authed(EnrollTotpRequest {}, &token)).await?.into_inner();
    let secret = TotpSecret::from_base32(&enrolled.secret).ok_or("not base32")?;
    let code_now = |offset: i64| secret.code_at(TotpStep(TotpStep::at(h.keyport.clock.now()).0 + offset));
    factors.confirm_totp(authed(ConfirmTotpRequest { code: code_now(0)? }, &token)).await?;

    let first =
        h.http.post(h.url("/session")).form(&[("email", "ann@example.com"), ("password", PASSWORD)]).send().await?;
    assert_eq!(first.status(), StatusCode::OK);
    let cookies = set_cookies(&first);
    assert_eq!(first.text().await?, "second-factor");
    assert!(
        cookies.iter().all(|(name, _)| name != "__Host-keyport_session"),
        "no session before the factor: {cookies:?}"
    );
    let (_, challenge) =
        cookies.iter().find(|(name, _)| name == "__Host-keyport_challenge").ok_or("no challenge cookie")?.clone();
    assert!(challenge.starts_with("kpc_"), "{challenge}");

    let answer = |code: String, with_cookie: bool| {
        let request = h.http.post(h.url("/session/second-factor")).form(&[("code", code)]);
        if with_cookie { request.header(COOKIE, format!("__Host-keyport_challenge={challenge}")) } else { request }
    };
    let other_browser = answer(code_now(1)?, false).send().await?;
    assert_eq!(other_browser.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(other_browser.text().await?, "SignInChallengeInvalid", "a browser without the cookie");
    let wrong = answer("000000".into(), true).send().await?;
    assert_eq!(wrong.text().await?, "SecondFactorInvalid");

    let right = answer(code_now(1)?, true).send().await?;
    assert_eq!(right.status(), StatusCode::OK);
    let cookies = set_cookies(&right);
    assert_eq!(right.text().await?, "signed-in:ann@example.com");
    assert!(cookies.iter().any(|(name, value)| name == "__Host-keyport_challenge" && value.is_empty()), "{cookies:?}");
    let (_, session) = cookies.iter().find(|(name, _)| name == "__Host-keyport_session").ok_or("no session cookie")?;
    assert_eq!(h.get_cookie("/dashboard", session).await?.status(), StatusCode::OK);
    let replay = answer(code_now(2)?, true).send().await?;
    assert_eq!(replay.text().await?, "SignInChallengeInvalid", "the challenge worked once");
    Ok(())
}

async fn assurance_rules_send_browsers_to_step_up(start: StartApp) -> TestResult {
    use keyport_core::{
        Clock,
        second_factor::{TotpSecret, TotpStep},
    };
    use keyport_proto::v1::{ConfirmTotpRequest, EnrollTotpRequest, two_factor_service_client::TwoFactorServiceClient};

    let h = Harness::start(start).await?;
    let plain = h.keyport.sign_up("bob@example.com").await?;
    let token = h.keyport.sign_up("ann@example.com").await?;
    // Bob has no second factor: a fresh sign-in is enough where freshness
    // is asked, never where AAL2 is.
    assert_eq!(h.get_bearer("/settings/fresh", &plain).await?, (StatusCode::OK, "open:bob@example.com".into()));
    let (status, body) = h.get_bearer("/vault", &plain).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body.contains("STEP_UP_REQUIRED"), "{body}");
    let api = h.http.get(h.url("/vault")).header(AUTHORIZATION, format!("Bearer {plain}")).send().await?;
    let challenge = api.headers().get("www-authenticate").ok_or("no WWW-Authenticate")?.to_str()?;
    assert_eq!(challenge, r#"Bearer error="insufficient_user_authentication""#, "RFC 9470");
    let browser =
        h.http.get(h.url("/vault?x=1")).header(COOKIE, cookie(&plain)).header(ACCEPT, "text/html").send().await?;
    assert_eq!(browser.status(), StatusCode::SEE_OTHER);
    let location = browser.headers().get(LOCATION).ok_or("no location")?.to_str()?;
    assert_eq!(location, "/sign-in/step-up?return_to=%2Fvault%3Fx%3D1");

    // Ann turns an app on: her confirming session is AAL2.
    let mut factors = TwoFactorServiceClient::new(h.keyport.channel());
    let enrolled = factors.enroll_totp(authed(EnrollTotpRequest {}, &token)).await?.into_inner();
    let secret = TotpSecret::from_base32(&enrolled.secret).ok_or("not base32")?;
    let code_now = |offset: i64| secret.code_at(TotpStep(TotpStep::at(h.keyport.clock.now()).0 + offset));
    factors.confirm_totp(authed(ConfirmTotpRequest { code: code_now(0)? }, &token)).await?;
    for path in ["/vault", "/settings/fresh"] {
        assert_eq!(h.get_bearer(path, &token).await?, (StatusCode::OK, "open:ann@example.com".into()), "{path}");
    }
    assert_eq!(h.get_bearer("/settings/stale", &token).await?.0, StatusCode::UNAUTHORIZED, "no proof is that recent");
    Ok(())
}

async fn revocation_reaches_the_cache(start: StartApp) -> TestResult {
    let h = Harness::start(start).await?;
    let laptop = h.keyport.sign_up("ann@example.com").await?;
    let phone = sign_in(&h, "ann@example.com").await?;
    // Warm the cache, and prove the second request is a hit.
    assert_eq!(h.get_bearer("/dashboard", &phone).await?.0, StatusCode::OK);
    assert_eq!(h.cache.len(), 1);
    assert_eq!(h.get_bearer("/dashboard", &phone).await?.0, StatusCode::OK);

    // Revoked through Keyport directly, not through the app.
    let phone_id = phone.trim_start_matches("kp_").split_once('.').ok_or("no dot")?.0.to_owned();
    h.keyport.sessions().revoke_session(authed(RevokeSessionRequest { session_id: phone_id }, &laptop)).await?;
    // The event drops the entry; how fast is the benchmark's business
    // (docs/benchmarks.md), not this test's.
    let dropped = async {
        while h.cache.lookup(&phone).is_some() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), dropped)
        .await
        .map_err(|_| "the revocation never reached the cache")?;
    assert!(h.cache.is_live(), "dropped by the event, not by a broken stream");
    assert_eq!(h.get_bearer("/dashboard", &phone).await?.0, StatusCode::UNAUTHORIZED, "refused at once");
    assert_eq!(h.get_bearer("/dashboard", &laptop).await?.0, StatusCode::OK);
    Ok(())
}

async fn fails_closed_when_keyport_is_unreachable(start: StartApp) -> TestResult {
    // A port nobody listens on.
    let unused = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let client = KeyportClient::builder(format!("http://{unused}"))
        .retries(1, Duration::from_millis(10))
        .connect_timeout(Duration::from_millis(200))
        .build()?;
    let cache = SessionCache::start(client, CacheConfig::default());
    let app = start(Guard::new(cache, AuthSettings::new(apps::rules()).shared())).await?;
    let http = reqwest::Client::new();
    let token = "kp_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    for path in ["/dashboard", "/admin", "/api/me"] {
        let response =
            http.get(format!("http://{app}{path}")).header(AUTHORIZATION, format!("Bearer {token}")).send().await?;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path} fails closed");
    }
    let public = http.get(format!("http://{app}/public")).send().await?;
    assert_eq!(public.status(), StatusCode::OK, "public routes need no Keyport");
    let no_token = http.get(format!("http://{app}/dashboard")).send().await?;
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED, "no token needs no Keyport to refuse");
    Ok(())
}

async fn extractor_without_layer_names_the_layer(start: StartApp) -> TestResult {
    let h = Harness::start(start).await?;
    let token = h.keyport.sign_up("ann@example.com").await?;
    let (status, body) = h.get_bearer("/unguarded", &token).await?;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("not behind") && body.to_lowercase().contains("layer"), "{body}");
    Ok(())
}

async fn login_csrf_and_browser_responses(start: StartApp) -> TestResult {
    let h = Harness::start(start).await?;
    let ann = h.keyport.sign_up("ann@example.com").await?;
    // A foreign page posting the sign-in form: refused even without a cookie.
    let forged = h
        .http
        .post(h.url("/session"))
        .header(ORIGIN, "https://evil.example")
        .form(&[("email", "ann@example.com"), ("password", PASSWORD)]);
    let forged = forged.send().await?;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(forged.headers().get(SET_COOKIE).is_none(), "no session handed to a forged sign-in");
    // A browser without the role gets a page, an API client JSON.
    let page = h.http.get(h.url("/admin")).header(AUTHORIZATION, format!("Bearer {ann}")).header(ACCEPT, "text/html");
    let page = page.send().await?;
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    assert!(page.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/html")));
    // A form post navigation without a session goes to sign in.
    let own_origin = format!("http://{}", h.app);
    let post = h.http.post(h.url("/api/notes")).header("sec-fetch-mode", "navigate").header(ORIGIN, &own_origin);
    let post = post.send().await?;
    assert_eq!(post.status(), StatusCode::SEE_OTHER);
    assert_eq!(post.headers().get(LOCATION).map(|v| v.as_bytes()), Some(&b"/sign-in"[..]));
    Ok(())
}

async fn a_new_sign_in_wins_over_a_dead_cookie(start: StartApp) -> TestResult {
    let h = Harness::start(start).await?;
    let old = h.keyport.sign_up("ann@example.com").await?;
    let own_origin = format!("http://{}", h.app);
    let signed_in = h
        .http
        .post(h.url("/session"))
        .header(COOKIE, cookie("kp_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"))
        .header(ORIGIN, &own_origin)
        .form(&[("email", "ann@example.com"), ("password", PASSWORD)])
        .send()
        .await?;
    assert_eq!(signed_in.status(), StatusCode::OK);
    let cookies: Vec<&str> = signed_in.headers().get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()).collect();
    assert_eq!(cookies.len(), 1, "only the new session cookie: {cookies:?}");
    assert!(cookies[0].starts_with("__Host-keyport_session=kp_"), "{cookies:?}");

    // Signing in over a live session ends the old one.
    let again = h
        .http
        .post(h.url("/session"))
        .header(COOKIE, cookie(&old))
        .header(ORIGIN, &own_origin)
        .form(&[("email", "ann@example.com"), ("password", PASSWORD)])
        .send()
        .await?;
    assert_eq!(again.status(), StatusCode::OK);
    assert_eq!(h.get_bearer("/dashboard", &old).await?.0, StatusCode::UNAUTHORIZED, "the replaced session ended");
    Ok(())
}

async fn a_slid_expiry_reissues_the_cookie(start: StartApp) -> TestResult {
    let h = Harness::start(start).await?;
    let token = h.keyport.sign_up("ann@example.com").await?;
    let fresh = h.get_cookie("/dashboard", &token).await?;
    assert!(fresh.headers().get(SET_COOKIE).is_none(), "nothing to re-issue for a fresh session");
    // Past update_age, Keyport slides the expiry and the app re-issues the cookie.
    // A session the cache has never seen, so that its first check reaches Keyport.
    let second = sign_in(&h, "ann@example.com").await?;
    h.keyport.clock.advance(Duration::from_secs(2 * 24 * 3600));
    let slid = h.get_cookie("/dashboard", &second).await?;
    assert_eq!(slid.status(), StatusCode::OK);
    let cookie = slid.headers().get(SET_COOKIE).ok_or("no re-issued cookie")?.to_str()?;
    assert!(cookie.starts_with(&format!("__Host-keyport_session={second};")), "{cookie}");
    assert!(cookie.contains("Max-Age="), "{cookie}");
    Ok(())
}

async fn return_paths_never_leave_the_site(start: StartApp) -> TestResult {
    let h = Harness::start(start).await?;
    h.keyport.sign_up("ann@example.com").await?;
    let own_origin = format!("http://{}", h.app);
    let cases = [
        ("/dashboard?tab=1", "/dashboard?tab=1"),
        ("//evil.example", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/%2F%2Fevil.example", "/"),
        ("/%5Cevil.example", "/"),
        ("javascript:alert(1)", "/"),
        ("/ok\r\nSet-Cookie: x=y", "/"),
    ];
    for (asked, expected) in cases {
        let response = h
            .http
            .post(h.url("/session"))
            .header(ORIGIN, &own_origin)
            .form(&[("email", "ann@example.com"), ("password", PASSWORD), ("return_to", asked)])
            .send()
            .await?;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{asked:?}");
        let location = response.headers().get(LOCATION).ok_or("no location")?.to_str()?;
        assert_eq!(location, expected, "{asked:?}");
    }
    Ok(())
}

/// The patterns that used to leave their routes public (`/(api|trpc)(.*)`,
/// `/users/:id`, `/org/*/billing`) refuse anonymous callers, and pass
/// signed-in ones, including through encoded and dot-segment paths.
async fn patterns_users_write_guard_their_routes(start: StartApp) -> TestResult {
    let h = Harness::start(start).await?;
    let ann = h.keyport.sign_up("ann@example.com").await?;
    for path in ["/trpc/x", "/trpc/a/b", "/users/1", "/org/acme/billing", "/%75sers/1", "/x/../org/acme/billing"] {
        let anonymous = h.http.get(h.url(path)).send().await?;
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{path} refuses anonymous callers");
    }
    for path in ["/trpc/x", "/users/1", "/org/acme/billing"] {
        assert_eq!(h.get_bearer(path, &ann).await?, (StatusCode::OK, "open:ann@example.com".into()), "{path}");
    }
    Ok(())
}

/// A CORS preflight carries no credentials; it reaches the app's answer
/// even on a protected route. A plain `OPTIONS` does not skip the rules.
async fn preflights_reach_the_app(start: StartApp) -> TestResult {
    let h = Harness::start(start).await?;
    let preflight = h
        .http
        .request(reqwest::Method::OPTIONS, h.url("/api/notes"))
        .header(ORIGIN, "https://app.example")
        .header("access-control-request-method", "POST")
        .send()
        .await?;
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    assert_eq!(preflight.headers().get("access-control-allow-origin").map(|v| v.as_bytes()), Some(&b"*"[..]));
    let plain = h.http.request(reqwest::Method::OPTIONS, h.url("/api/notes")).send().await?;
    assert_eq!(plain.status(), StatusCode::UNAUTHORIZED, "not a preflight: the route's rule applies");
    Ok(())
}

/// `Sec-Fetch-Site: same-origin` (set by browsers, never by pages) lets a
/// page with `Referrer-Policy: no-referrer` post (`Origin: null`); other
/// sites stay refused.
async fn same_origin_fetch_metadata_passes_the_csrf_check(start: StartApp) -> TestResult {
    let h = Harness::start(start).await?;
    let token = h.keyport.sign_up("ann@example.com").await?;
    let post = |site: &str, origin: &str| {
        h.http
            .post(h.url("/api/notes"))
            .header(COOKIE, cookie(&token))
            .header("sec-fetch-site", site)
            .header(ORIGIN, origin)
            .send()
    };
    assert_eq!(post("same-origin", "null").await?.status(), StatusCode::OK);
    assert_eq!(post("cross-site", "null").await?.status(), StatusCode::FORBIDDEN);
    assert_eq!(post("same-site", "https://evil.example").await?.status(), StatusCode::FORBIDDEN);
    assert_eq!(post("cross-site", "https://evil.example").await?.status(), StatusCode::FORBIDDEN);
    assert_eq!(post("none", "null").await?.status(), StatusCode::FORBIDDEN);
    Ok(())
}

/// A Keyport that accepts connections and never answers (a stopped
/// process: the kernel completes the handshake, nobody reads) must not
/// hold a public page for the client's 5 s deadline: it renders signed out
/// after `public_wait`, and a protected page fails closed after
/// `protected_wait`, as an HTML page for browsers.
async fn a_hung_keyport_does_not_hold_pages(start: StartApp) -> TestResult {
    // Never accepted: connections wait in the backlog, like a SIGSTOPped server's.
    let hung = std::net::TcpListener::bind("127.0.0.1:0")?;
    let client = KeyportClient::builder(format!("http://{}", hung.local_addr()?))
        .request_timeout(Duration::from_secs(5))
        .build()?;
    let settings = apps::settings().with_waits(Duration::from_millis(100), Duration::from_millis(300));
    let app = start(Guard::new(SessionCache::start(client, CacheConfig::default()), settings.shared())).await?;
    let http = reqwest::Client::new();
    let token = "kp_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";

    let started = Instant::now();
    let public = http.get(format!("http://{app}/public")).header(COOKIE, cookie(token)).send().await?;
    let public_took = started.elapsed();
    assert_eq!((public.status(), public.text().await?), (StatusCode::OK, "public:anonymous".into()));
    let started = Instant::now();
    let page = http.get(format!("http://{app}/dashboard")).header(COOKIE, cookie(token)).header(ACCEPT, "text/html");
    let page = page.send().await?;
    let protected_took = started.elapsed();
    assert_eq!(page.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.headers().get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"text/html")));
    assert!(page.headers().get(SET_COOKIE).is_none(), "an outage is no reason to drop the cookie");
    eprintln!("hung keyport: public page in {public_took:?}, protected page refused in {protected_took:?}");
    // Bounds far above the budgets and far below the 5 s deadline.
    assert!(public_took < Duration::from_secs(2), "public page waited {public_took:?}");
    assert!(protected_took < Duration::from_millis(2500), "protected page waited {protected_took:?}");
    drop(hung);
    Ok(())
}

/// A made-up or revoked token is refused by Keyport once, then from memory:
/// replaying it does not drive calls onto Keyport.
async fn junk_tokens_cost_one_call(start: StartApp) -> TestResult {
    let h = Harness::start(start).await?;
    let junk = "kp_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    let before = h.cache.stats();
    for _ in 0..20 {
        let response = h.get_cookie("/public", junk).await?;
        assert_eq!((response.status(), response.text().await?), (StatusCode::OK, "public:anonymous".into()));
    }
    let after = h.cache.stats();
    assert_eq!(after.misses - before.misses, 1, "one call to Keyport for 20 requests");
    assert_eq!(after.refusal_hits - before.refusal_hits, 19);
    assert!(after.refusals >= 1 && after.live, "{after:?}");

    // A revoked session is refused from memory too, and a valid one still passes.
    let ann = h.keyport.sign_up("ann@example.com").await?;
    let other = sign_in(&h, "ann@example.com").await?;
    let id = keyport_tests::server::session_id(&other);
    h.keyport.sessions().revoke_session(authed(RevokeSessionRequest { session_id: id }, &ann)).await?;
    let before = h.cache.stats();
    for _ in 0..5 {
        assert_eq!(h.get_bearer("/dashboard", &other).await?.0, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(h.cache.stats().misses - before.misses, 1);
    assert_eq!(h.get_bearer("/dashboard", &ann).await?.0, StatusCode::OK);
    Ok(())
}

/// The app replaces the built-in refusal responses where its hook answers,
/// and keeps them where it does not.
async fn refusal_pages_can_be_replaced(start: StartApp) -> TestResult {
    use keyport_client::web::{Refusal, RefusalPage, Reply};
    let keyport = TestServer::start(Backend::Sqlite).await?;
    let client = KeyportClient::builder(format!("http://{}", keyport.addr)).build()?;
    let cache = SessionCache::start(client, CacheConfig::default());
    wait_until_live(&cache).await?;
    let page = RefusalPage::new(|context| match context.refusal {
        Refusal::Forbidden if context.browser => Some(Reply::html(403, format!("<p>no entry to {}</p>", context.path))),
        Refusal::Unauthenticated { reason } if !context.browser => Some(Reply::json(401, reason, "custom")),
        _ => None,
    });
    let settings = apps::settings().with_refusal_page(page);
    let app = start(Guard::new(cache, settings.shared())).await?;
    let http = reqwest::Client::builder().redirect(Policy::none()).build()?;
    let ann = keyport.sign_up("ann@example.com").await?;

    let forbidden = http
        .get(format!("http://{app}/admin"))
        .header(AUTHORIZATION, format!("Bearer {ann}"))
        .header(ACCEPT, "text/html")
        .send()
        .await?;
    assert_eq!(
        (forbidden.status(), forbidden.text().await?),
        (StatusCode::FORBIDDEN, "<p>no entry to /admin</p>".into())
    );
    let api = http.get(format!("http://{app}/api/me")).send().await?;
    assert_eq!(api.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(api.headers().get("www-authenticate").map(|v| v.as_bytes()), Some(&b"Bearer"[..]));
    assert_eq!(api.text().await?, r#"{"error":"UNAUTHENTICATED","message":"custom"}"#);
    let browser = http.get(format!("http://{app}/dashboard")).header(ACCEPT, "text/html").send().await?;
    assert_eq!(browser.status(), StatusCode::SEE_OTHER, "no hook answer: the default redirect");
    Ok(())
}

/// `Guard::offline`: the real middleware with fixed principals and no
/// Keyport, for testing an app's handlers.
async fn an_offline_guard_runs_the_rules_without_keyport(start: StartApp) -> TestResult {
    use keyport_client::Principal;
    let sessions = [
        ("ann-token", Principal::for_tests("ann@example.com", &[]), vec!["posts:read".to_owned()]),
        (
            "root-token",
            Principal::for_tests("root@example.com", &["admin"]),
            apps::PERMISSIONS.map(String::from).to_vec(),
        ),
    ];
    let app = start(Guard::offline_granting(apps::settings().shared(), sessions)).await?;
    let http = reqwest::Client::builder().redirect(Policy::none()).build()?;
    let get = |path: &str, token: Option<&str>| {
        let mut request = http.get(format!("http://{app}{path}"));
        if let Some(token) = token {
            request = request.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        request.send()
    };
    let dashboard = get("/dashboard", Some("ann-token")).await?;
    assert_eq!((dashboard.status(), dashboard.text().await?), (StatusCode::OK, "dashboard:ann@example.com".into()));
    assert_eq!(get("/admin", Some("ann-token")).await?.status(), StatusCode::FORBIDDEN);
    assert_eq!(get("/admin", Some("root-token")).await?.status(), StatusCode::OK);
    assert_eq!(get("/dashboard", None).await?.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(get("/dashboard", Some("made-up")).await?.status(), StatusCode::UNAUTHORIZED);
    // Permissions are the ones listed with each session.
    assert_eq!(get("/posts/1", Some("ann-token")).await?.status(), StatusCode::OK);
    let post = |token: &str| {
        http.post(format!("http://{app}/posts/1")).header(AUTHORIZATION, format!("Bearer {token}")).send()
    };
    assert_eq!(post("ann-token").await?.status(), StatusCode::FORBIDDEN);
    assert_eq!(post("root-token").await?.status(), StatusCode::OK);
    assert_eq!(get("/billing", Some("ann-token")).await?.status(), StatusCode::FORBIDDEN);
    assert_eq!(get("/billing", Some("root-token")).await?.text().await?, "billing:root@example.com");
    let by_cookie = http.get(format!("http://{app}/api/me")).header(COOKIE, cookie("ann-token")).send().await?;
    assert_eq!(by_cookie.text().await?, "me:ann@example.com:test-session-ann@example.com");
    // What needs Keyport says so instead of pretending.
    let sign_in = http
        .post(format!("http://{app}/session"))
        .form(&[("email", "ann@example.com"), ("password", PASSWORD)])
        .send()
        .await?;
    assert_eq!(sign_in.status(), StatusCode::UNAUTHORIZED);
    assert!(sign_in.text().await?.contains("FailedPrecondition"));
    Ok(())
}

/// A lost event must never leave a revoked session valid: a cache whose
/// stream broke serves nothing, and starts empty when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_resynchronises_after_a_broken_stream() -> TestResult {
    let keyport = TestServer::start(Backend::Sqlite).await?;
    let client = KeyportClient::builder(format!("http://{}", keyport.addr)).build()?;
    let config = CacheConfig { reconnect_delay: Duration::from_millis(20), ..CacheConfig::default() };
    let cache = SessionCache::start(client, config);
    wait_until_live(&cache).await?;
    let token = keyport.sign_up("ann@example.com").await?;
    let nobody = keyport_client::ClientInfo::default();
    cache.get_session(&token, &nobody).await?;
    assert!(cache.lookup(&token).is_some(), "cached while live");

    // Keyport goes away; the session is revoked behind its back, so no event
    // is ever sent for it.
    let url = keyport.database_url.clone();
    let restarted = keyport.restart_with(|_| {}).await;
    let keyport = restarted?;
    assert_eq!(url, keyport.database_url);
    sea_orm::ConnectionTrait::execute_unprepared(&keyport.db, "DELETE FROM sessions").await?;

    wait_until_live(&cache).await?;
    assert!(cache.lookup(&token).is_none(), "the cache started over after the stream broke");
    let error = cache.get_session(&token, &nobody).await.unwrap_err();
    assert_eq!(error.reason(), &keyport_client::Reason::Unauthenticated);
    Ok(())
}

/// The event stream reveals revocations: only trusted peers may open it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_trusted_peers_may_watch_session_events() -> TestResult {
    let keyport = TestServer::start_with(Backend::Sqlite, |config| config.server.trusted_proxies.clear()).await?;
    let client = KeyportClient::builder(format!("http://{}", keyport.addr)).build()?;
    let error = client.watch_session_events().await.unwrap_err();
    assert_eq!(error.reason(), &keyport_client::Reason::PermissionDenied);
    let cache = SessionCache::start(client, CacheConfig::default());
    // Refused twice: it has tried, and tried again, and never went live.
    let refused = async {
        while cache.stats().subscribe_failures < 2 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), refused).await?;
    assert!(!cache.is_live(), "a cache without the stream never serves");
    assert_eq!(cache.stats().subscriptions, 0);
    Ok(())
}

/// Permission rules (per method), any-of roles, a predicate, a handler's
/// own check, and a name outside Keyport's catalogue.
async fn permission_rules_and_handler_checks(start: StartApp) -> TestResult {
    let h = Harness::start(start).await?;
    let ann = h.keyport.sign_up("ann@example.com").await?;
    h.keyport.sign_up("root@example.com").await?;
    h.grant_admin("root@example.com").await?;
    let verified = "UPDATE users SET email_verified = true WHERE email = 'root@example.com'";
    sea_orm::ConnectionTrait::execute_unprepared(&h.keyport.db, verified).await?;
    let root = sign_in(&h, "root@example.com").await?;

    assert_eq!(h.get_bearer("/posts/1", &ann).await?, (StatusCode::OK, "open:ann@example.com".into()));
    for method in [Method::POST, Method::DELETE] {
        let (status, body) = h.send_bearer(method.clone(), "/posts/1", &ann).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} needs posts:write");
        assert!(body.contains("FORBIDDEN"), "{body}");
        assert_eq!(h.send_bearer(method, "/posts/1", &root).await?.0, StatusCode::OK);
    }
    let anonymous = h.http.get(h.url("/posts/1")).send().await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    // A later check of the same session is answered by the cache.
    let misses = h.cache.stats().misses;
    for _ in 0..3 {
        assert_eq!(h.get_bearer("/posts/2", &ann).await?.0, StatusCode::OK);
        assert_eq!(h.send_bearer(Method::POST, "/posts/2", &ann).await?.0, StatusCode::FORBIDDEN);
    }
    assert_eq!(h.cache.stats().misses, misses, "decided from the cache");

    assert_eq!(h.get_bearer("/staff", &ann).await?.0, StatusCode::FORBIDDEN, "neither admin nor support");
    assert_eq!(h.get_bearer("/staff", &root).await?.0, StatusCode::OK);
    assert_eq!(h.get_bearer("/verified", &ann).await?.0, StatusCode::FORBIDDEN, "the predicate refuses");
    assert_eq!(h.get_bearer("/verified", &root).await?.0, StatusCode::OK);

    let (status, body) = h.get_bearer("/billing", &ann).await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "the handler's own check: {body}");
    assert!(body.contains("FORBIDDEN"), "{body}");
    assert_eq!(h.get_bearer("/billing", &root).await?, (StatusCode::OK, "billing:root@example.com".into()));
    let (status, _) = h.get_bearer("/billing", "kp_AAAA.BBBB").await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "a bad token in a handler check");
    let no_token = h.http.get(h.url("/billing")).send().await?;
    assert_eq!(no_token.status(), StatusCode::UNAUTHORIZED);

    // A rule naming a permission Keyport does not have is a server error,
    // not a deny, and leaves the session alone.
    let (status, body) = h.get_bearer("/broken", &ann).await?;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.contains("PERMISSION_UNKNOWN"), "{body}");
    let broken = h.get_cookie("/broken", &ann).await?;
    assert_eq!(broken.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(set_cookies(&broken).is_empty(), "the cookie is not cleared for the app's mistake");
    assert_eq!(h.get_bearer("/posts/1", &ann).await?.0, StatusCode::OK, "the session still works");
    Ok(())
}

/// Sets `email`'s roles through `AdminService` with the admin `root`'s
/// session, then waits until the app's cache dropped `token`.
async fn set_roles(h: &Harness, root: &str, token: &str, roles: &[&str]) -> TestResult {
    use keyport_proto::v1::{GetCurrentUserRequest, SetUserRolesRequest, admin_service_client::AdminServiceClient};
    let me = h.keyport.users().get_current_user(authed(GetCurrentUserRequest {}, token)).await?.into_inner();
    let user_id = me.user.ok_or("no user")?.id;
    let request = SetUserRolesRequest { user_id, roles: roles.iter().map(|role| (*role).to_owned()).collect() };
    AdminServiceClient::new(h.keyport.channel()).set_user_roles(authed(request, root)).await?;
    let dropped = async {
        while h.cache.lookup(token).is_some() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), dropped)
        .await
        .map_err(|_| "the role change never reached the cache")?;
    Ok(())
}

/// After a role is granted or removed, the next request through the
/// middleware is decided on the new roles, also with requests in flight.
async fn a_role_change_reaches_the_next_request_at_once(start: StartApp) -> TestResult {
    let h = std::sync::Arc::new(Harness::start(start).await?);
    let ann = h.keyport.sign_up("ann@example.com").await?;
    h.keyport.sign_up("root@example.com").await?;
    h.grant_admin("root@example.com").await?;
    let root = sign_in(&h, "root@example.com").await?;
    assert_eq!(h.send_bearer(Method::POST, "/posts/1", &ann).await?.0, StatusCode::FORBIDDEN, "cached as a user");

    set_roles(&h, &root, &ann, &["editor"]).await?;
    assert_eq!(h.send_bearer(Method::POST, "/posts/1", &ann).await?.0, StatusCode::OK, "granted: the next request");
    assert_eq!(h.send_bearer(Method::POST, "/posts/1", &ann).await?.0, StatusCode::OK, "cached as an editor");

    // Requests in flight while the role goes: whatever they were answered,
    // none after the change is allowed.
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(9));
    let burst: Vec<_> = (0..8)
        .map(|_| {
            let (h, ann, barrier) = (h.clone(), ann.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                h.send_bearer(Method::POST, "/posts/1", &ann).await.map(|(status, _)| status)
            })
        })
        .collect();
    barrier.wait().await;
    set_roles(&h, &root, &ann, &[]).await?;
    for status in futures::future::join_all(burst).await {
        let status = status??;
        assert!([StatusCode::OK, StatusCode::FORBIDDEN].contains(&status), "{status}");
    }
    for _ in 0..5 {
        let (status, body) = h.send_bearer(Method::POST, "/posts/1", &ann).await?;
        assert_eq!(status, StatusCode::FORBIDDEN, "removed: every later request: {body}");
    }
    assert_eq!(h.get_bearer("/posts/1", &ann).await?.0, StatusCode::OK, "reading is still the user role's");
    Ok(())
}

/// An API key of `token`'s user with `scopes`, made through Keyport.
async fn api_key(h: &Harness, token: &str, scopes: &[&str]) -> Result<(String, String), BoxError> {
    use keyport_proto::v1::{CreateApiKeyRequest, api_key_service_client::ApiKeyServiceClient};
    let request = CreateApiKeyRequest {
        name: "script".into(),
        scopes: scopes.iter().map(|scope| (*scope).to_owned()).collect(),
        ..Default::default()
    };
    let created = ApiKeyServiceClient::new(h.keyport.channel()).create_api_key(authed(request, token)).await?;
    let created = created.into_inner();
    Ok((created.secret, created.api_key.ok_or("no key")?.id))
}

/// A key is a bearer credential for routes whose rule names permissions:
/// decided on its scopes (within its owner's roles) and cached like a
/// session; refused on routes that ask for a session or roles, and never
/// read from a cookie.
async fn api_keys_reach_permission_routes_only(start: StartApp) -> TestResult {
    let h = Harness::start(start).await?;
    h.keyport.sign_up("ann@example.com").await?;
    h.grant_admin("ann@example.com").await?;
    let ann = sign_in(&h, "ann@example.com").await?;
    let (key, _) = api_key(&h, &ann, &["posts:read"]).await?;

    assert_eq!(h.get_bearer("/posts/1", &key).await?, (StatusCode::OK, "open:ann@example.com".into()));
    let (status, body) = h.send_bearer(Method::POST, "/posts/1", &key).await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "posts:write is the owner's, not the key's: {body}");
    assert_eq!(h.send_bearer(Method::POST, "/posts/1", &ann).await?.0, StatusCode::OK, "the owner may");
    let misses = h.cache.stats().misses;
    for _ in 0..3 {
        assert_eq!(h.get_bearer("/posts/2", &key).await?.0, StatusCode::OK);
    }
    assert_eq!(h.cache.stats().misses, misses, "decided from the cache");

    // A route that asks for a session, or for roles (which would bypass the
    // key's scopes): refused with a reason that says why.
    for path in ["/dashboard", "/admin", "/staff", "/api/me"] {
        let (status, body) = h.get_bearer(path, &key).await?;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
        assert!(body.contains("API_KEY_NOT_ACCEPTED"), "{path}: {body}");
    }
    // Public routes serve a key's request signed out.
    let (status, body) = h.get_bearer("/public", &key).await?;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "public:anonymous"));
    // A key in the session cookie is no credential at all.
    assert_eq!(h.get_cookie("/posts/1", &key).await?.status(), StatusCode::UNAUTHORIZED);
    // A handler's own check takes a key too.
    let (status, body) = h.get_bearer("/billing", &key).await?;
    assert_eq!(status, StatusCode::FORBIDDEN, "billing:read is not in the key's scopes: {body}");
    Ok(())
}

/// Requests keep coming with a key while it is revoked through Keyport:
/// once the event reached the app's cache, the next request is refused,
/// and no later one passes.
async fn a_key_revoked_mid_stream_is_refused_next(start: StartApp) -> TestResult {
    use keyport_proto::v1::{RevokeApiKeyRequest, api_key_service_client::ApiKeyServiceClient};
    let h = std::sync::Arc::new(Harness::start(start).await?);
    h.keyport.sign_up("ann@example.com").await?;
    let ann = sign_in(&h, "ann@example.com").await?;
    let (key, key_id) = api_key(&h, &ann, &["posts:read"]).await?;
    assert_eq!(h.get_bearer("/posts/1", &key).await?.0, StatusCode::OK);

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stream = {
        let (h, key, stop) = (h.clone(), key.clone(), stop.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                statuses.push(h.get_bearer("/posts/1", &key).await?.0);
            }
            Ok::<_, BoxError>(statuses)
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let revoke = RevokeApiKeyRequest { api_key_id: key_id, service_account_id: String::new() };
    ApiKeyServiceClient::new(h.keyport.channel()).revoke_api_key(authed(revoke, &ann)).await?;
    let dropped = async {
        while h.cache.lookup(&key).is_some() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), dropped)
        .await
        .map_err(|_| "the revocation never reached the cache")?;
    let (status, body) = h.get_bearer("/posts/1", &key).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the next request: {body}");
    stop.store(true, std::sync::atomic::Ordering::Release);
    let statuses = stream.await??;
    assert!(statuses.first() == Some(&StatusCode::OK), "the stream ran before the revocation");
    // Once refused, never allowed again.
    let first_refusal = statuses.iter().position(|status| *status != StatusCode::OK).unwrap_or(statuses.len());
    assert!(statuses[first_refusal..].iter().all(|status| *status == StatusCode::UNAUTHORIZED), "{statuses:?}");
    assert!(h.cache.is_live(), "dropped by the event, not by a broken stream");
    Ok(())
}

/// Organization rules: the organization from the path or a header, allowed
/// for members whose role there grants the permission, refused for anyone
/// else; a member removed while their requests stream is refused next.
async fn organization_rules_follow_memberships(start: StartApp) -> TestResult {
    use keyport_proto::v1::{
        AcceptInvitationRequest, CreateInvitationRequest, CreateOrganizationRequest, RemoveMemberRequest,
        SetMemberRoleRequest, organization_service_client::OrganizationServiceClient,
    };
    let h = std::sync::Arc::new(Harness::start(start).await?);
    let orgs = OrganizationServiceClient::new(h.keyport.channel());
    for email in ["ann@example.com", "bob@example.com", "eve@example.com"] {
        h.keyport.sign_up(email).await?;
    }
    let verified = "UPDATE users SET email_verified = true";
    sea_orm::ConnectionTrait::execute_unprepared(&h.keyport.db, verified).await?;
    let ann = sign_in(&h, "ann@example.com").await?;
    let bob = sign_in(&h, "bob@example.com").await?;
    let eve = sign_in(&h, "eve@example.com").await?;
    let create = CreateOrganizationRequest { name: "Acme".into(), slug: "acme".into() };
    let acme = orgs.clone().create_organization(authed(create, &ann)).await?.into_inner().organization.ok_or("none")?;
    let invite = CreateInvitationRequest {
        organization_id: acme.id.clone(),
        email: "bob@example.com".into(),
        role: "member".into(),
    };
    let invitation =
        orgs.clone().create_invitation(authed(invite, &ann)).await?.into_inner().invitation.ok_or("none")?;
    orgs.clone().accept_invitation(authed(AcceptInvitationRequest { invitation_id: invitation.id }, &bob)).await?;
    let bob_id = crate::authorization::user_id(&h.keyport, &bob).await?;

    let in_acme = format!("/orgs/{}/posts", acme.id);
    assert_eq!(h.get_bearer(&in_acme, &bob).await?, (StatusCode::OK, "open:bob@example.com".into()));
    assert_eq!(h.get_bearer(&in_acme, &eve).await?.0, StatusCode::FORBIDDEN, "not a member");
    assert_eq!(h.get_bearer("/orgs/nope/posts", &bob).await?.0, StatusCode::FORBIDDEN, "a malformed organization");
    let elsewhere = "/orgs/0190e9b1-0000-7000-8000-000000000000/posts";
    assert_eq!(h.get_bearer(elsewhere, &bob).await?.0, StatusCode::FORBIDDEN, "another organization");
    let anonymous = h.http.get(h.url(&in_acme)).send().await?;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    let by_header = |token: &str, org: Option<&str>| {
        let mut request = h.http.get(h.url("/team/posts")).header(AUTHORIZATION, format!("Bearer {token}"));
        if let Some(org) = org {
            request = request.header("x-organization-id", org);
        }
        request.send()
    };
    assert_eq!(by_header(&bob, Some(&acme.id)).await?.status(), StatusCode::OK);
    assert_eq!(by_header(&bob, None).await?.status(), StatusCode::FORBIDDEN, "no organization named");
    assert_eq!(by_header(&eve, Some(&acme.id)).await?.status(), StatusCode::FORBIDDEN);
    // The handler's own check in the organization, and a custom role.
    let invoices = format!("/orgs/{}/invoices", acme.id);
    assert_eq!(h.get_bearer(&invoices, &bob).await?.0, StatusCode::FORBIDDEN, "a member reads no invoices");
    let billing =
        SetMemberRoleRequest { organization_id: acme.id.clone(), user_id: bob_id.clone(), role: "billing".into() };
    orgs.clone().set_member_role(authed(billing, &ann)).await?;
    let dropped = async {
        while h.cache.lookup(&bob).is_some() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), dropped)
        .await
        .map_err(|_| "the role change never reached the cache")?;
    assert_eq!(h.get_bearer(&invoices, &bob).await?, (StatusCode::OK, "invoices:bob@example.com".into()));
    assert_eq!(h.get_bearer(&in_acme, &bob).await?.0, StatusCode::FORBIDDEN, "billing writes no posts");
    let member =
        SetMemberRoleRequest { organization_id: acme.id.clone(), user_id: bob_id.clone(), role: "member".into() };
    orgs.clone().set_member_role(authed(member, &ann)).await?;
    tokio::time::timeout(Duration::from_secs(10), async {
        while h.get_bearer(&in_acme, &bob).await.map(|(status, _)| status).ok() != Some(StatusCode::OK) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .map_err(|_| "the member role never came back")?;
    let misses = h.cache.stats().misses;
    assert_eq!(h.get_bearer(&in_acme, &bob).await?.0, StatusCode::OK);
    assert_eq!(h.cache.stats().misses, misses, "decided from the cache");

    // Removed while requests stream: once the event is in, refused next.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stream = {
        let (h, bob, stop, path) = (h.clone(), bob.clone(), stop.clone(), in_acme.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                statuses.push(h.get_bearer(&path, &bob).await?.0);
            }
            Ok::<_, BoxError>(statuses)
        })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let remove = RemoveMemberRequest { organization_id: acme.id.clone(), user_id: bob_id };
    orgs.clone().remove_member(authed(remove, &ann)).await?;
    let dropped = async {
        while h.cache.decide_cached_in(&bob, &acme.id, &["posts:write"]).is_some() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), dropped).await.map_err(|_| "the removal never reached the cache")?;
    assert_eq!(h.get_bearer(&in_acme, &bob).await?.0, StatusCode::FORBIDDEN, "the next request");
    stop.store(true, std::sync::atomic::Ordering::Release);
    let statuses = stream.await??;
    assert_eq!(statuses.first(), Some(&StatusCode::OK), "the stream ran before the removal");
    let first_refusal = statuses.iter().position(|status| *status != StatusCode::OK).unwrap_or(statuses.len());
    assert!(statuses[first_refusal..].iter().all(|status| *status == StatusCode::FORBIDDEN), "{statuses:?}");

    // A key is not scoped to organizations.
    let (key, _) = api_key(&h, &ann, &["posts:read"]).await?;
    let (status, body) = h.get_bearer(&in_acme, &key).await?;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.contains("API_KEY_NOT_ACCEPTED"), "{body}");
    Ok(())
}
