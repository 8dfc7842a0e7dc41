//! The conformance app on Actix Web with `keyport-actix`.

use std::{net::SocketAddr, thread};

use actix_web::{App, HttpResponse, HttpServer, http::header::ContentType, rt::System, web};
use keyport_actix::{Auth, KeyportMiddleware, Principal};
use keyport_client::{
    FactorAnswer,
    web::{FirstFactor, Guard, safe_return_path},
};
use tokio::sync::oneshot;

/// The second step of a sign-in: the authenticator app's code.
#[derive(Debug, serde::Deserialize)]
struct CodeForm {
    code: String,
}

#[derive(serde::Deserialize)]
struct Credentials {
    email: String,
    password: String,
    /// Where to go after signing in, validated against open redirects.
    #[serde(default)]
    return_to: Option<String>,
}

/// Serves the conformance app guarded by `guard` on a free port; returns its address.
///
/// Actix runs its own single-threaded runtime, so the server lives on a
/// thread of its own, with one worker, for the rest of the process.
pub async fn start(guard: Guard) -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (started, bound) = oneshot::channel();
    thread::Builder::new().name(format!("actix-app-{addr}")).spawn(move || {
        System::new().block_on(async move {
            let server = HttpServer::new(move || app(guard.clone()))
                .workers(1)
                .disable_signals()
                .listen(listener)
                .map(HttpServer::run);
            match server {
                Ok(server) => {
                    let _ = started.send(Ok(()));
                    let _ = server.await;
                }
                Err(error) => {
                    let _ = started.send(Err(error));
                }
            }
        });
    })?;
    bound.await.map_err(|_| std::io::Error::other("the actix server thread died"))??;
    Ok(addr)
}

/// A handler that trusts the route rules to have refused anonymous callers.
async fn open(user: Option<Principal>) -> String {
    format!("open:{}", user.map_or("anonymous".to_owned(), |u| u.email.clone()))
}

fn app(
    guard: Guard,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let guarded = web::scope("")
        .wrap(KeyportMiddleware::new(guard))
        .route(
            "/public",
            web::get().to(|user: Option<Principal>| async move {
                format!("public:{}", user.map_or("anonymous".to_owned(), |u| u.email.clone()))
            }),
        )
        .route("/dashboard", web::get().to(|user: Principal| async move { format!("dashboard:{}", user.email) }))
        .route("/admin", web::get().to(|user: Principal| async move { format!("admin:{}", user.email) }))
        .route(
            "/api/me",
            web::get().to(|user: Principal| async move { format!("me:{}:{}", user.email, user.session_id) }),
        )
        .route("/api/notes", web::post().to(|_: Principal| async { "created" }))
        .route(
            "/api/notes",
            web::method(actix_web::http::Method::OPTIONS).to(|| async {
                HttpResponse::NoContent().append_header(("access-control-allow-origin", "*")).finish()
            }),
        )
        .route("/trpc/{rest:.*}", web::get().to(open))
        .route("/users/{id}", web::get().to(open))
        .route("/org/{org}/billing", web::get().to(open))
        .route("/vault", web::get().to(open))
        .route("/settings/fresh", web::get().to(open))
        .route("/settings/stale", web::get().to(open))
        .route("/posts/{id}", web::get().to(open))
        .route("/posts/{id}", web::post().to(open))
        .route("/posts/{id}", web::delete().to(open))
        .route("/staff", web::get().to(open))
        .route("/verified", web::get().to(open))
        .route("/broken", web::get().to(open))
        .route("/orgs/{org}/posts", web::get().to(open))
        .route("/team/posts", web::get().to(open))
        .route(
            "/orgs/{org}/invoices",
            web::get().to(|auth: Auth, org: web::Path<String>| async move {
                let caller = auth.require_in(&org, "billing:read").await?;
                Ok::<_, actix_web::Error>(format!("invoices:{}", caller.email))
            }),
        )
        .route(
            "/billing",
            web::get().to(|auth: Auth| async move {
                let caller = auth.require("billing:read").await?;
                Ok::<_, actix_web::Error>(format!("billing:{}", caller.email))
            }),
        )
        .route("/sign-in", web::get().to(|| async { "sign-in page" }))
        .route(
            "/session",
            web::post().to(|auth: Auth, form: web::Form<Credentials>| async move {
                match auth.sign_in(&form.email, &form.password).await {
                    Ok((_, cookie)) if form.return_to.is_some() => {
                        let back = form.return_to.as_deref().and_then(safe_return_path).unwrap_or("/");
                        HttpResponse::SeeOther().append_header(cookie).append_header(("location", back)).finish()
                    }
                    Ok((FirstFactor::SignedIn(signed_in), cookie)) => HttpResponse::Ok()
                        .content_type(ContentType::plaintext())
                        .append_header(cookie)
                        .body(format!("signed-in:{}", signed_in.principal.email)),
                    Ok((_, cookie)) => HttpResponse::Ok()
                        .content_type(ContentType::plaintext())
                        .append_header(cookie)
                        .body("second-factor"),
                    Err(error) => HttpResponse::Unauthorized()
                        .content_type(ContentType::plaintext())
                        .body(format!("{:?}", error.reason())),
                }
            }),
        )
        .route(
            "/session/second-factor",
            web::post().to(|auth: Auth, form: web::Form<CodeForm>| async move {
                match auth.complete_sign_in(FactorAnswer::Totp(&form.code)).await {
                    Ok((signed_in, cookies)) => {
                        let mut response = HttpResponse::Ok();
                        response.content_type(ContentType::plaintext());
                        for cookie in cookies {
                            response.append_header(cookie);
                        }
                        response.body(format!("signed-in:{}", signed_in.principal.email))
                    }
                    Err(error) => HttpResponse::Unauthorized()
                        .content_type(ContentType::plaintext())
                        .body(format!("{:?}", error.reason())),
                }
            }),
        )
        .route(
            "/sign-out",
            web::post().to(|auth: Auth| async move {
                match auth.sign_out().await {
                    Ok(cookie) => HttpResponse::Ok()
                        .content_type(ContentType::plaintext())
                        .append_header(cookie)
                        .body("signed-out"),
                    Err(error) => HttpResponse::ServiceUnavailable()
                        .content_type(ContentType::plaintext())
                        .body(error.to_string()),
                }
            }),
        );
    // Registered first, and outside the scope the middleware wraps.
    App::new().route("/unguarded", web::get().to(|user: Principal| async move { user.email.clone() })).service(guarded)
}
