//! Extractors: who is calling, and sign-in/sign-out helpers.

use std::future::{Ready, ready};

use actix_web::{
    FromRequest, HttpMessage, HttpRequest,
    dev::Payload,
    error::{ErrorInternalServerError, ErrorUnauthorized},
    http::header::{HeaderName, HeaderValue, InvalidHeaderValue, SET_COOKIE, TryIntoHeaderPair},
};
use derive_more::{Deref, From};
use keyport_client::web::Guard;

use crate::{middleware::Guarded, view::HttpRequestView};

const MISSING_MIDDLEWARE: &str = "keyport_actix: this route uses a Keyport extractor but is not behind the \
                                  `KeyportMiddleware` layer; add `.wrap(KeyportMiddleware::new(guard))` to its app \
                                  or scope";

/// The signed-in caller. Rejects with 401 when the request has no valid
/// session, and with 500 naming [`KeyportMiddleware`](crate::KeyportMiddleware)
/// when the route is not behind it.
///
/// On public routes take `Option<Principal>`: `None` for anonymous callers.
/// Actix's `Option<T>` turns *every* rejection into `None`, so there a
/// missing middleware also reads as anonymous; it is logged as an error,
/// but the request is not refused.
#[derive(Debug, Clone, PartialEq, Eq, Deref)]
pub struct Principal(pub keyport_client::Principal);

impl FromRequest for Principal {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        from_guarded(request, |guarded| match &guarded.principal {
            Some(principal) => Ok(Self(keyport_client::Principal::clone(principal))),
            None => Err(ErrorUnauthorized("sign in first")),
        })
    }
}

/// `extract` from what the middleware left on `request`; a 500 naming the
/// middleware when the route is not behind it.
fn from_guarded<T>(
    request: &HttpRequest,
    extract: impl FnOnce(&Guarded) -> Result<T, actix_web::Error>,
) -> Ready<Result<T, actix_web::Error>> {
    ready(request.extensions().get::<Guarded>().map_or_else(|| Err(missing_middleware()), extract))
}

fn missing_middleware() -> actix_web::Error {
    tracing::error!("{MISSING_MIDDLEWARE}");
    ErrorInternalServerError(MISSING_MIDDLEWARE)
}

/// Sign-in, sign-up, sign-out, social sign-in and session management for
/// handlers, with the request's client details and token captured. The
/// steps are [`keyport_client::web::Auth`]'s, reached through `Deref`; each
/// returns [`CookieHeader`]s to add to the response. Rejects with 500 when
/// the route is not behind [`KeyportMiddleware`](crate::KeyportMiddleware).
#[derive(Debug, Clone, Deref)]
pub struct Auth(pub keyport_client::web::Auth<CookieHeader>);

impl Auth {
    /// Checks in a handler that the caller's roles grant `permission`
    /// (`resource:action`), through the guard's cache:
    /// `let caller = auth.require("billing:read").await?;`. Refuses with the
    /// response the middleware sends for a permission rule (403
    /// `FORBIDDEN`, 401 without a valid session, 500 `PERMISSION_UNKNOWN`
    /// for a name outside Keyport's catalogue, 503 when Keyport is down).
    pub async fn require(&self, permission: &str) -> Result<Principal, actix_web::Error> {
        self.require_all(&[permission]).await
    }

    /// Like [`Auth::require`], for every one of `permissions`.
    pub async fn require_all(&self, permissions: &[&str]) -> Result<Principal, actix_web::Error> {
        answer(self.0.require_all(permissions).await)
    }

    /// Like [`Auth::require`], in the organization `organization_id`: the
    /// user's roles, or their role in it, must grant `permission`; a user
    /// who is not a member is refused (403 `FORBIDDEN`).
    pub async fn require_in(&self, organization_id: &str, permission: &str) -> Result<Principal, actix_web::Error> {
        answer(self.0.require_in(organization_id, permission).await)
    }
}

/// A handler check's answer, as the handler returns it.
fn answer(
    checked: Result<std::sync::Arc<keyport_client::Principal>, keyport_client::web::Denied>,
) -> Result<Principal, actix_web::Error> {
    match checked {
        Ok(principal) => Ok(Principal(keyport_client::Principal::clone(&principal))),
        Err(denied) => {
            let response = crate::middleware::into_response(denied.reply);
            Err(actix_web::error::InternalError::from_response(denied.refusal.reason(), response).into())
        }
    }
}

impl FromRequest for Auth {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        from_guarded(request, |guarded| {
            Ok(Self(keyport_client::web::Auth::new(Guard::clone(&guarded.guard), &HttpRequestView(request))))
        })
    }
}

/// A `Set-Cookie` header from [`Auth`], to add to a response with
/// `HttpResponse::Ok().append_header(cookie)` (`insert_header` works too, but
/// would replace any other `Set-Cookie` the handler set).
#[derive(Debug, Clone, PartialEq, Eq, From)]
pub struct CookieHeader(pub String);

impl TryIntoHeaderPair for CookieHeader {
    type Error = InvalidHeaderValue;

    fn try_into_pair(self) -> Result<(HeaderName, HeaderValue), Self::Error> {
        Ok((SET_COOKIE, HeaderValue::from_str(&self.0)?))
    }
}
