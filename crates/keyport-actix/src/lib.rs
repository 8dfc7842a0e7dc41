//! Keyport for Actix Web: wrap the app with [`KeyportMiddleware`], read the
//! caller with the [`Principal`] extractor (or `Option<Principal>`), and sign
//! users in and out with [`Auth`].
//!
//! ```no_run
//! use actix_web::{App, HttpServer, web};
//! use keyport_actix::{KeyportMiddleware, Principal};
//! use keyport_client::{CacheConfig, KeyportClient, SessionCache, web::{AuthSettings, Guard, RouteRules}};
//!
//! # async fn app() -> Result<(), Box<dyn std::error::Error>> {
//! let client = KeyportClient::builder("http://127.0.0.1:50051").build()?;
//! let rules = RouteRules::new().protect("/dashboard(.*)").require_role("/admin/**", "admin");
//! let guard = Guard::new(SessionCache::start(client, CacheConfig::default()), AuthSettings::new(rules).shared());
//! HttpServer::new(move || {
//!     App::new()
//!         .wrap(KeyportMiddleware::new(guard.clone()))
//!         .route("/dashboard", web::get().to(|user: Principal| async move { format!("hello {}", user.email) }))
//! })
//! .bind("127.0.0.1:8080")?
//! .run()
//! .await?;
//! # Ok(()) }
//! ```
//!
//! The client address Keyport sees is the TCP peer's (`HttpRequest::peer_addr`),
//! or `X-Forwarded-For` when the settings trust it.
//!
//! Unlike Axum, Actix's `Option<T>` extractor yields `None` on any rejection:
//! `Option<Principal>` on a route outside the middleware reads as an
//! anonymous caller (and logs an error) instead of failing with 500.

mod extract;
mod middleware;
mod view;

pub use extract::{Auth, CookieHeader, Principal};
pub use middleware::{KeyportMiddleware, KeyportService};

#[cfg(test)]
mod tests;
