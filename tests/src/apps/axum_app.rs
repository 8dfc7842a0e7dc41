//! The conformance app on Axum with `keyport-axum`.

use std::net::SocketAddr;

use axum::{
    Form, Router,
    http::StatusCode,
    response::IntoResponse,
    routing::{get, post},
};
use keyport_axum::{Auth, KeyportLayer, Principal};
use keyport_client::{
    FactorAnswer,
    web::{FirstFactor, Guard, safe_return_path},
};
use tokio::net::TcpListener;

#[derive(serde::Deserialize)]
struct Credentials {
    email: String,
    password: String,
    /// Where to go after signing in, validated against open redirects.
    #[serde(default)]
    return_to: Option<String>,
}

/// The second step of a sign-in: the authenticator app's code.
#[derive(Debug, serde::Deserialize)]
struct CodeForm {
    code: String,
}

/// A handler that trusts the route rules to have refused anonymous callers.
async fn open(user: Option<Principal>) -> String {
    format!("open:{}", user.map_or("anonymous".to_owned(), |u| u.email.clone()))
}

/// Serves the conformance app guarded by `guard` on a free port; returns its address.
pub async fn start(guard: Guard) -> std::io::Result<SocketAddr> {
    let guarded = Router::new()
        .route(
            "/public",
            get(|user: Option<Principal>| async move {
                format!("public:{}", user.map_or("anonymous".to_owned(), |u| u.email.clone()))
            }),
        )
        .route("/dashboard", get(|user: Principal| async move { format!("dashboard:{}", user.email) }))
        .route("/admin", get(|user: Principal| async move { format!("admin:{}", user.email) }))
        .route("/api/me", get(|user: Principal| async move { format!("me:{}:{}", user.email, user.session_id) }))
        .route(
            "/api/notes",
            post(|_: Principal| async { "created" }).options(|| async {
                (StatusCode::NO_CONTENT, [(axum::http::header::ACCESS_CONTROL_ALLOW_ORIGIN, "*")])
            }),
        )
        .route("/trpc/{*rest}", get(open))
        .route("/users/{id}", get(open))
        .route("/org/{org}/billing", get(open))
        .route("/vault", get(open))
        .route("/settings/fresh", get(open))
        .route("/settings/stale", get(open))
        .route("/posts/{id}", get(open).post(open).delete(open))
        .route("/staff", get(open))
        .route("/verified", get(open))
        .route("/broken", get(open))
        .route("/orgs/{org}/posts", get(open))
        .route("/team/posts", get(open))
        .route(
            "/orgs/{org}/invoices",
            get(|auth: Auth, axum::extract::Path(org): axum::extract::Path<String>| async move {
                let caller = auth.require_in(&org, "billing:read").await?;
                Ok::<_, axum::response::Response>(format!("invoices:{}", caller.email))
            }),
        )
        .route(
            "/billing",
            get(|auth: Auth| async move {
                let caller = auth.require("billing:read").await?;
                Ok::<_, axum::response::Response>(format!("billing:{}", caller.email))
            }),
        )
        .route("/sign-in", get(|| async { "sign-in page" }))
        .route(
            "/session",
            post(|auth: Auth, Form(form): Form<Credentials>| async move {
                match auth.sign_in(&form.email, &form.password).await {
                    Ok((_, cookie)) if form.return_to.is_some() => {
                        let back = form.return_to.as_deref().and_then(safe_return_path).unwrap_or("/");
                        (StatusCode::SEE_OTHER, cookie, [(axum::http::header::LOCATION, back.to_owned())])
                            .into_response()
                    }
                    Ok((FirstFactor::SignedIn(signed_in), cookie)) => {
                        (cookie, format!("signed-in:{}", signed_in.principal.email)).into_response()
                    }
                    Ok((_, cookie)) => (cookie, "second-factor").into_response(),
                    Err(error) => (StatusCode::UNAUTHORIZED, format!("{:?}", error.reason())).into_response(),
                }
            }),
        )
        .route(
            "/session/second-factor",
            post(|auth: Auth, Form(form): Form<CodeForm>| async move {
                match auth.complete_sign_in(FactorAnswer::Totp(&form.code)).await {
                    Ok((signed_in, cookies)) => {
                        let mut response = format!("signed-in:{}", signed_in.principal.email).into_response();
                        for cookie in cookies {
                            if let Ok(value) = axum::http::HeaderValue::from_str(&cookie.0) {
                                response.headers_mut().append(axum::http::header::SET_COOKIE, value);
                            }
                        }
                        response
                    }
                    Err(error) => (StatusCode::UNAUTHORIZED, format!("{:?}", error.reason())).into_response(),
                }
            }),
        )
        .route(
            "/sign-out",
            post(|auth: Auth| async move {
                match auth.sign_out().await {
                    Ok(cookie) => (cookie, "signed-out").into_response(),
                    Err(error) => (StatusCode::SERVICE_UNAVAILABLE, error.to_string()).into_response(),
                }
            }),
        )
        .layer(KeyportLayer::new(guard));
    let app =
        Router::new().route("/unguarded", get(|user: Principal| async move { user.email.clone() })).merge(guarded);
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        let _ = axum::serve(listener, service).await;
    });
    Ok(addr)
}
