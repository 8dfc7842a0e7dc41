//! The adapter's own behaviour, without a Keyport: what needs one is in the
//! shared conformance suite (`keyport-tests`, `web::actix`).

use actix_web::{
    App,
    http::{StatusCode, header::TryIntoHeaderPair},
    rt::System,
    test::{TestRequest, call_service, init_service, read_body},
    web,
};
use keyport_client::{
    CacheConfig, KeyportClient, SessionCache,
    web::{AuthSettings, Guard, RouteRules},
};

use crate::{CookieHeader, KeyportMiddleware, Principal};

async fn public(user: Option<Principal>) -> String {
    user.map_or("anonymous".to_owned(), |user| user.email.clone())
}

async fn private(user: Principal) -> String {
    user.email.clone()
}

fn unreachable_guard() -> Result<Guard, keyport_client::Error> {
    // Nothing listens there: requests without a token never ask Keyport.
    let client = KeyportClient::builder("http://127.0.0.1:9").build()?;
    let rules = RouteRules::new().protect("/private");
    Ok(Guard::new(SessionCache::start(client, CacheConfig::default()), AuthSettings::new(rules).shared()))
}

#[test]
fn missing_middleware_fails_loudly_for_principal_only() {
    System::new().block_on(async {
        let app =
            init_service(App::new().route("/public", web::get().to(public)).route("/private", web::get().to(private)))
                .await;
        let response = call_service(&app, TestRequest::get().uri("/private").to_request()).await;
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = read_body(response).await;
        assert!(String::from_utf8_lossy(&body).contains("not behind the `KeyportMiddleware` layer"));

        // Actix's `Option<T>` swallows the rejection: documented behaviour.
        let response = call_service(&app, TestRequest::get().uri("/public").to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(read_body(response).await, "anonymous");
    });
}

#[test]
fn middleware_lets_anonymous_callers_through_public_routes_only() {
    System::new().block_on(async {
        let middleware = KeyportMiddleware::new(unreachable_guard().unwrap());
        let app = init_service(
            App::new()
                .wrap(middleware)
                .route("/public", web::get().to(public))
                .route("/private", web::get().to(private)),
        )
        .await;
        let response = call_service(&app, TestRequest::get().uri("/public").to_request()).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(read_body(response).await, "anonymous");

        let request = TestRequest::get().uri("/private").peer_addr(([127, 0, 0, 1], 4000).into()).to_request();
        let response = call_service(&app, request).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers().get("www-authenticate").map(|v| v.as_bytes()), Some(&b"Bearer"[..]));
        assert!(String::from_utf8_lossy(&read_body(response).await).contains("UNAUTHENTICATED"));
    });
}

// The middleware can be built once, outside the `HttpServer::new` factory.
const _: fn() = || {
    fn send_and_clone<T: Send + Clone>() {}
    send_and_clone::<KeyportMiddleware>();
};

#[test]
fn cookie_header_is_a_set_cookie_pair() {
    let (name, value) = CookieHeader("a=b; Path=/".into()).try_into_pair().unwrap();
    assert_eq!((name.as_str(), value.to_str().unwrap()), ("set-cookie", "a=b; Path=/"));
    assert!(CookieHeader("bad\nvalue".into()).try_into_pair().is_err());
}
