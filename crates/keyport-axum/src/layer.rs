//! The tower layer: asks the [`Guard`] about every request.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use axum_core::body::Body;
use http::{
    HeaderValue, Request, Response, StatusCode,
    header::{HeaderName, SET_COOKIE},
};
use keyport_client::web::{Guard, Outcome, Reply};
use tower_layer::Layer;
use tower_service::Service;
use tracing::Instrument;

use crate::view::PartsView;

/// What the layer leaves on a request it let through: the guard, and the
/// caller if signed in. One extension, so one allocation per request; its
/// presence also tells extractors a missing session from a missing layer.
#[derive(Debug, Clone)]
pub(crate) struct Guarded {
    pub(crate) guard: Guard,
    pub(crate) principal: Option<std::sync::Arc<keyport_client::Principal>>,
}

/// Authenticates and authorises every request with Keyport.
#[derive(Debug, Clone)]
pub struct KeyportLayer {
    guard: Guard,
}

impl KeyportLayer {
    /// A layer deciding with `guard`.
    pub fn new(guard: Guard) -> Self {
        Self { guard }
    }
}

impl<S> Layer<S> for KeyportLayer {
    type Service = KeyportService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyportService { inner, guard: self.guard.clone() }
    }
}

/// The service [`KeyportLayer`] wraps around an app.
#[derive(Debug, Clone)]
pub struct KeyportService<S> {
    inner: S,
    guard: Guard,
}

impl<S> Service<Request<Body>> for KeyportService<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        // The clone may not be ready; the instance polled ready is the one to use.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let guard = self.guard.clone();
        // Parts, unlike the whole request, may be shared across the await.
        let (parts, body) = request.into_parts();
        let span = guard.span(&PartsView(&parts));
        Box::pin(
            async move {
                let outcome = guard.check(&PartsView(&parts)).await;
                let mut request = Request::from_parts(parts, body);
                match outcome {
                    Outcome::Respond(reply) => Ok(into_response(reply)),
                    Outcome::Proceed { principal, set_cookies } => {
                        request.extensions_mut().insert(Guarded { guard: guard.clone(), principal });
                        let mut response = inner.call(request).await?;
                        let set_by_handler = response.headers().get_all(SET_COOKIE);
                        let set_cookies =
                            guard.cookies_to_append(set_cookies, set_by_handler.iter().filter_map(|v| v.to_str().ok()));
                        for cookie in set_cookies {
                            if let Ok(value) = HeaderValue::from_str(&cookie) {
                                response.headers_mut().append(SET_COOKIE, value);
                            }
                        }
                        Ok(response)
                    }
                }
            }
            .instrument(span),
        )
    }
}

pub(crate) fn into_response(reply: Reply) -> Response<Body> {
    let mut response = Response::new(Body::from(reply.body));
    *response.status_mut() = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in reply.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().append(HeaderName::from_static(name), value);
        }
    }
    response
}
