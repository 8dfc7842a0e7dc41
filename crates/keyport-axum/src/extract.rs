//! Extractors: who is calling, and sign-in/sign-out helpers.

use std::ops::Deref;

use axum_core::{
    extract::{FromRequestParts, OptionalFromRequestParts},
    response::{IntoResponse, IntoResponseParts, Response, ResponseParts},
};
use http::{HeaderValue, StatusCode, header::SET_COOKIE, request::Parts};

use crate::{layer::Guarded, view::PartsView};

const MISSING_LAYER: &str = "keyport_axum: this route uses a Keyport extractor but is not behind `KeyportLayer`; \
                             add `.layer(KeyportLayer::new(guard))` to the router";

/// The signed-in caller. Rejects with 401 when the request has no valid
/// session; use `Option<Principal>` on public routes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(pub keyport_client::Principal);

impl Deref for Principal {
    type Target = keyport_client::Principal;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        match &guarded(parts).ok_or_else(missing_layer)?.principal {
            Some(principal) => Ok(Self(keyport_client::Principal::clone(principal))),
            None => Err((StatusCode::UNAUTHORIZED, "sign in first").into_response()),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(guarded(parts).ok_or_else(missing_layer)?.principal.as_deref().cloned().map(Self))
    }
}

/// What the layer left on the request; `None` when the route is not behind it.
fn guarded(parts: &Parts) -> Option<&Guarded> {
    parts.extensions.get::<Guarded>()
}

fn missing_layer() -> Response {
    tracing::error!("{MISSING_LAYER}");
    (StatusCode::INTERNAL_SERVER_ERROR, MISSING_LAYER).into_response()
}

/// Sign-in, sign-up, sign-out, social sign-in and session management for
/// handlers, with the request's client details and token captured. The
/// steps are [`keyport_client::web::Auth`]'s, reached through `Deref`; each
/// returns [`CookieHeader`]s to add to the response.
#[derive(Debug, Clone)]
pub struct Auth(pub keyport_client::web::Auth<CookieHeader>);

impl Deref for Auth {
    type Target = keyport_client::web::Auth<CookieHeader>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl Auth {
    /// Checks in a handler that the caller's roles grant `permission`
    /// (`resource:action`), through the guard's cache:
    /// `let caller = auth.require("billing:read").await?;`. Refuses with the
    /// response the middleware sends for a permission rule (403
    /// `FORBIDDEN`, 401 without a valid session, 500 `PERMISSION_UNKNOWN`
    /// for a name outside Keyport's catalogue, 503 when Keyport is down).
    pub async fn require(&self, permission: &str) -> Result<Principal, Response> {
        self.require_all(&[permission]).await
    }

    /// Like [`Auth::require`], for every one of `permissions`.
    pub async fn require_all(&self, permissions: &[&str]) -> Result<Principal, Response> {
        answer(self.0.require_all(permissions).await)
    }

    /// Like [`Auth::require`], in the organization `organization_id`: the
    /// user's roles, or their role in it, must grant `permission`; a user
    /// who is not a member is refused (403 `FORBIDDEN`).
    pub async fn require_in(&self, organization_id: &str, permission: &str) -> Result<Principal, Response> {
        answer(self.0.require_in(organization_id, permission).await)
    }
}

/// A handler check's answer, as the handler returns it.
#[expect(clippy::result_large_err, reason = "the handler's own return type, which `require` returns as is")]
fn answer(
    checked: Result<std::sync::Arc<keyport_client::Principal>, keyport_client::web::Denied>,
) -> Result<Principal, Response> {
    match checked {
        Ok(principal) => Ok(Principal(keyport_client::Principal::clone(&principal))),
        Err(denied) => Err(crate::layer::into_response(denied.reply).into_response()),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let guard = guarded(parts).ok_or_else(missing_layer)?.guard.clone();
        Ok(Self(keyport_client::web::Auth::new(guard, &PartsView(parts))))
    }
}

/// A `Set-Cookie` header from [`Auth`], to add to a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieHeader(pub String);

impl From<String> for CookieHeader {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl IntoResponseParts for CookieHeader {
    type Error = Response;

    fn into_response_parts(self, mut res: ResponseParts) -> Result<ResponseParts, Self::Error> {
        let value = HeaderValue::from_str(&self.0)
            .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "invalid cookie").into_response())?;
        res.headers_mut().append(SET_COOKIE, value);
        Ok(res)
    }
}
