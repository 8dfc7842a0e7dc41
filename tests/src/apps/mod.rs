//! The conformance app: the same routes built with each middleware adapter,
//! so that one suite checks every adapter's behaviour.
//!
//! Routes (rules: `/dashboard(.*)`, `/(api|trpc)(.*)`, `/users/:id` and
//! `/org/*/billing` need a session, `/admin/**` needs the `admin` role, the
//! rest is public):
//! - `GET /public` → `public:<email|anonymous>` (optional principal)
//! - `GET /dashboard` → `dashboard:<email>`
//! - `GET /admin` → `admin:<email>`
//! - `GET /api/me` → `me:<email>:<session id>`
//! - `POST /api/notes` → `created` (an unsafe method, for CSRF);
//!   `OPTIONS /api/notes` → 204 with `access-control-allow-origin: *` (the
//!   app's CORS answer to a preflight)
//! - `GET /trpc/{*rest}`, `/users/{id}`, `/org/{org}/billing` →
//!   `open:<email|anonymous>`: handlers that trust the rules and take an
//!   optional principal, so a rule that failed open would show `anonymous`
//! - `POST /session` (form `email`, `password`) → `signed-in:<email>` + cookie;
//!   with a `return_to` field, a 303 to it if it is a safe local path, else to `/`
//! - `POST /sign-out` → `signed-out` + cookie deletion
//! - `POST /session/second-factor` (form `code`) → `signed-in:<email>` +
//!   cookies: the second step of a sign-in that answered `second-factor`
//! - `GET /vault` (needs AAL2) and `GET /settings/fresh` (a proof within 10
//!   minutes), `GET /settings/stale` (within no time at all: always refused)
//!   → `open:<email|anonymous>`
//! - `GET|POST /posts/{id}` → `open:<email|anonymous>`: reading needs
//!   `posts:read`, writing (`POST`, `PUT`, `DELETE`) `posts:write`
//! - `GET /staff` (`admin` or `support`), `GET /verified` (a predicate: a
//!   verified email), `GET /broken` (a permission outside the catalogue)
//!   → `open:<email|anonymous>`
//! - `GET /billing` → `billing:<email>`: the handler checks `billing:read`
//!   itself (`auth.require`)
//! - `GET /orgs/{org}/posts` and `GET /team/posts` (the organization in
//!   `x-organization-id`) → `open:<email|anonymous>`: `posts:write` in the
//!   organization; `GET /orgs/{org}/invoices` → `invoices:<email>`: the
//!   handler checks `billing:read` in it (`auth.require_in`)
//! - `GET /sign-in` → `sign-in page`
//! - `GET /unguarded` → a route outside the layer that uses the extractor

pub mod actix_app;
pub mod axum_app;

use keyport_client::web::{Access, AuthSettings, OrganizationFrom, RouteRules};

/// The permissions the conformance app's rules and handlers name: what the
/// Keyport in front of it must have in its catalogue.
pub const PERMISSIONS: [&str; 3] = ["posts:read", "posts:write", "billing:read"];

/// The conformance app's route rules.
pub fn rules() -> RouteRules {
    RouteRules::new()
        .on(&["POST", "PUT", "DELETE"], "/posts/**", Access::AllPermissions(vec!["posts:write".into()]))
        .require_permission("/posts/**", "posts:read")
        .require_any_role("/staff", &["admin", "support"])
        .require("/verified", "a verified email", |principal| principal.email_verified)
        .require_permission("/broken", "nothing:here")
        .require_permission_in_org("/orgs/*/posts", "posts:write", OrganizationFrom::Segment(1))
        .require_permission_in_org("/team/posts", "posts:write", OrganizationFrom::Header("x-organization-id".into()))
        .protect("/dashboard(.*)")
        .require_role("/admin/**", "admin")
        .protect("/(api|trpc)(.*)")
        .protect("/users/:id")
        .protect("/org/*/billing")
        .require_aal2("/vault")
        .require_fresh("/settings/fresh", std::time::Duration::from_secs(600))
        .require_fresh("/settings/stale", std::time::Duration::ZERO)
}

/// The conformance app's settings.
pub fn settings() -> AuthSettings {
    AuthSettings::new(rules())
}
