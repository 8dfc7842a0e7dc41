//! Extractors: who is calling, and sign-in/sign-out helpers.

use std::ops::Deref;

use axum::{
    extract::{FromRequestParts, OptionalFromRequestParts},
    http::{HeaderValue, StatusCode, header::SET_COOKIE, request::Parts},
    response::{IntoResponse, Response},
};
use keyport_client::{ClientInfo, Error, FinishedOAuth, SignedIn, web::RequestView as _};

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
        match parts.extensions.get::<Guarded>() {
            None => Err(missing_layer()),
            Some(Guarded { principal: Some(principal), .. }) => Ok(Self(keyport_client::Principal::clone(principal))),
            Some(Guarded { principal: None, .. }) => Err((StatusCode::UNAUTHORIZED, "sign in first").into_response()),
        }
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Principal {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        match parts.extensions.get::<Guarded>() {
            None => Err(missing_layer()),
            Some(guarded) => Ok(guarded.principal.as_deref().cloned().map(Self)),
        }
    }
}

fn missing_layer() -> Response {
    tracing::error!("{MISSING_LAYER}");
    (StatusCode::INTERNAL_SERVER_ERROR, MISSING_LAYER).into_response()
}

/// Sign-in, sign-up, sign-out and session management for handlers, with the
/// request's client details and token captured.
#[derive(Debug, Clone)]
pub struct Auth {
    guard: keyport_client::web::Guard,
    client: ClientInfo,
    token: Option<String>,
    query: Option<String>,
    cookies: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(guard) = parts.extensions.get::<Guarded>().map(|guarded| guarded.guard.clone()) else {
            return Err(missing_layer());
        };
        let view = PartsView(parts);
        Ok(Self {
            client: guard.client_info(&view),
            token: guard.token_of(&view).map(str::to_owned),
            query: parts.uri.query().map(str::to_owned),
            cookies: view.header("cookie").map(str::to_owned),
            guard,
        })
    }
}

impl Auth {
    /// Starts "Sign in with `provider_id`": redirect the browser to the
    /// returned URL, with the returned header binding the flow to it.
    /// `redirect_uri` is your callback's full URL, allowed in Keyport's config.
    pub async fn start_oauth(&self, provider_id: &str, redirect_uri: &str) -> Result<(String, CookieHeader), Error> {
        let (url, cookie) = self.guard.start_oauth(&self.client, provider_id, redirect_uri, None).await?;
        Ok((url, CookieHeader(cookie)))
    }

    /// Starts linking `provider_id` to the signed-in user (needs a session).
    pub async fn link_oauth(&self, provider_id: &str, redirect_uri: &str) -> Result<(String, CookieHeader), Error> {
        let token = self.token.as_deref().unwrap_or_default();
        let (url, cookie) = self.guard.start_oauth(&self.client, provider_id, redirect_uri, Some(token)).await?;
        Ok((url, CookieHeader(cookie)))
    }

    /// Finishes a flow on your callback route (`redirect_uri` as at the
    /// start). Returns the outcome and the headers to send: the binding
    /// cookie deleted and, on sign-in, the session cookie.
    pub async fn finish_oauth(&self, redirect_uri: &str) -> Result<(FinishedOAuth, Vec<CookieHeader>), Error> {
        let (finished, cookies) = self
            .guard
            .finish_oauth(
                &self.client,
                self.token.as_deref(),
                redirect_uri,
                self.query.as_deref(),
                self.cookies.as_deref(),
            )
            .await?;
        Ok((finished, cookies.into_iter().map(CookieHeader).collect()))
    }
    /// Signs in; the returned header sets the session cookie.
    pub async fn sign_in(&self, email: &str, password: &str) -> Result<(SignedIn, CookieHeader), Error> {
        let (signed_in, cookie) = self.guard.sign_in(&self.client, self.token.as_deref(), email, password).await?;
        Ok((signed_in, CookieHeader(cookie)))
    }

    /// Creates an account and signs it in; the returned header sets the cookie.
    pub async fn sign_up(&self, email: &str, password: &str, name: &str) -> Result<(SignedIn, CookieHeader), Error> {
        let (signed_in, cookie) =
            self.guard.sign_up(&self.client, self.token.as_deref(), email, password, name).await?;
        Ok((signed_in, CookieHeader(cookie)))
    }

    /// Ends the request's session; the returned header deletes the cookie.
    pub async fn sign_out(&self) -> Result<CookieHeader, Error> {
        Ok(CookieHeader(self.guard.sign_out(&self.client, self.token.as_deref()).await?))
    }

    /// The caller's sessions, newest first.
    pub async fn list_sessions(&self) -> Result<Vec<keyport_client::SessionSummary>, Error> {
        let token = self.token.as_deref().unwrap_or_default();
        self.guard.list_sessions(&self.client, token).await
    }

    /// Ends one of the caller's sessions at once.
    pub async fn revoke_session(&self, session_id: &str) -> Result<(), Error> {
        let token = self.token.as_deref().unwrap_or_default();
        self.guard.revoke_session(&self.client, token, session_id).await
    }

    /// Ends all the caller's other sessions; returns how many.
    pub async fn revoke_other_sessions(&self) -> Result<u32, Error> {
        let token = self.token.as_deref().unwrap_or_default();
        let revoked = self.guard.revoke_other_sessions(&self.client, token).await?;
        Ok(revoked)
    }
}

/// A `Set-Cookie` header from [`Auth`], to add to a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieHeader(pub String);

impl axum::response::IntoResponseParts for CookieHeader {
    type Error = Response;

    fn into_response_parts(
        self,
        mut res: axum::response::ResponseParts,
    ) -> Result<axum::response::ResponseParts, Self::Error> {
        let value = HeaderValue::from_str(&self.0)
            .map_err(|_| (StatusCode::INTERNAL_SERVER_ERROR, "invalid cookie").into_response())?;
        res.headers_mut().append(SET_COOKIE, value);
        Ok(res)
    }
}
