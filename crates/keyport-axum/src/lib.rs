//! Keyport for Axum: put [`KeyportLayer`] in front of the router, read the
//! caller with the [`Principal`] extractor (or `Option<Principal>`), and sign
//! users in and out with [`Auth`].
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use keyport_axum::{KeyportLayer, Principal};
//! use keyport_client::{CacheConfig, KeyportClient, SessionCache, web::{AuthSettings, Guard, RouteRules}};
//!
//! # async fn app() -> Result<(), keyport_client::Error> {
//! let client = KeyportClient::builder("http://127.0.0.1:50051").build()?;
//! let rules = RouteRules::new().protect("/dashboard(.*)").require_role("/admin/**", "admin");
//! let guard = Guard::new(SessionCache::start(client, CacheConfig::default()), AuthSettings::new(rules).shared());
//! let app: Router = Router::new()
//!     .route("/dashboard", get(|user: Principal| async move { format!("hello {}", user.email) }))
//!     .layer(KeyportLayer::new(guard));
//! # Ok(()) }
//! ```
//!
//! Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so the
//! client address reaches Keyport.

mod extract;
mod layer;
mod view;

pub use extract::{Auth, CookieHeader, Principal};
pub use layer::{KeyportLayer, KeyportService};
