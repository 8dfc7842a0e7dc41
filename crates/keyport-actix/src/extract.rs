//! Extractors: who is calling, and sign-in/sign-out helpers.

use std::{
    future::{Ready, ready},
    ops::Deref,
};

use actix_web::{
    FromRequest, HttpMessage, HttpRequest,
    dev::Payload,
    error::{ErrorInternalServerError, ErrorUnauthorized},
    http::header::{HeaderName, HeaderValue, InvalidHeaderValue, SET_COOKIE, TryIntoHeaderPair},
};
use keyport_client::{
    ClientInfo, Error, FinishedOAuth, SignedIn,
    web::{Guard, RequestView as _},
};

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
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal(pub keyport_client::Principal);

impl Deref for Principal {
    type Target = keyport_client::Principal;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl FromRequest for Principal {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let extensions = request.extensions();
        ready(match extensions.get::<Guarded>() {
            None => Err(missing_middleware()),
            Some(Guarded { principal: Some(principal), .. }) => Ok(Self(keyport_client::Principal::clone(principal))),
            Some(Guarded { principal: None, .. }) => Err(ErrorUnauthorized("sign in first")),
        })
    }
}

fn missing_middleware() -> actix_web::Error {
    tracing::error!("{MISSING_MIDDLEWARE}");
    ErrorInternalServerError(MISSING_MIDDLEWARE)
}

/// Sign-in, sign-up, sign-out and session management for handlers, with the
/// request's client details and token captured. Rejects with 500 when the
/// route is not behind [`KeyportMiddleware`](crate::KeyportMiddleware).
#[derive(Debug, Clone)]
pub struct Auth {
    guard: Guard,
    client: ClientInfo,
    token: Option<String>,
    query: Option<String>,
    cookies: Option<String>,
}

impl FromRequest for Auth {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(request: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let Some(guard) = request.extensions().get::<Guarded>().map(|guarded| std::rc::Rc::clone(&guarded.guard))
        else {
            return ready(Err(missing_middleware()));
        };
        let view = HttpRequestView(request);
        ready(Ok(Self {
            client: guard.client_info(&view),
            token: guard.token_of(&view).map(str::to_owned),
            query: Some(request.query_string().to_owned()).filter(|query| !query.is_empty()),
            cookies: view.header("cookie").map(str::to_owned),
            guard: Guard::clone(&guard),
        }))
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
        self.guard.revoke_other_sessions(&self.client, token).await
    }
}

/// A `Set-Cookie` header from [`Auth`], to add to a response with
/// `HttpResponse::Ok().append_header(cookie)` (`insert_header` works too, but
/// would replace any other `Set-Cookie` the handler set).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieHeader(pub String);

impl TryIntoHeaderPair for CookieHeader {
    type Error = InvalidHeaderValue;

    fn try_into_pair(self) -> Result<(HeaderName, HeaderValue), Self::Error> {
        Ok((SET_COOKIE, HeaderValue::from_str(&self.0)?))
    }
}
