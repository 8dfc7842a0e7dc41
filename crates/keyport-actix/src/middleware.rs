//! The middleware: asks the [`Guard`] about every request.

use std::{
    future::{Future, Ready, ready},
    pin::Pin,
    rc::Rc,
};

use actix_web::{
    Error, HttpMessage, HttpResponse,
    body::{EitherBody, MessageBody},
    dev::{Service, ServiceRequest, ServiceResponse, Transform, forward_ready},
    http::{
        StatusCode,
        header::{HeaderName, HeaderValue, SET_COOKIE},
    },
};
use keyport_client::web::{Guard, Outcome, Reply};

use tracing::Instrument;

use crate::view::HttpRequestView;

/// What the middleware leaves on a request it let through: the guard, and
/// the caller if signed in. One extension, so one allocation per request;
/// its presence also tells extractors a missing session from a missing
/// middleware.
#[derive(Debug, Clone)]
pub(crate) struct Guarded {
    pub(crate) guard: Rc<Guard>,
    pub(crate) principal: Option<std::sync::Arc<keyport_client::Principal>>,
}

/// Authenticates and authorises every request with Keyport.
///
/// Wrap an `App`, a `Scope` or a `Resource` with it: requests the guard
/// refuses are answered here (401, 403, a redirect to sign in, 503 when
/// Keyport is unreachable on a protected route); the others reach the
/// handler with the caller available to the [`Principal`](crate::Principal)
/// and [`Auth`](crate::Auth) extractors.
///
/// It is `Send` and cheap to clone, so it may be built once, outside the
/// `HttpServer::new` factory; each worker's service shares the guard by `Rc`.
#[derive(Debug, Clone)]
pub struct KeyportMiddleware {
    guard: Guard,
}

impl KeyportMiddleware {
    /// A middleware deciding with `guard`.
    pub fn new(guard: Guard) -> Self {
        Self { guard }
    }
}

impl<S, B> Transform<S, ServiceRequest> for KeyportMiddleware
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Transform = KeyportService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, Self::InitError>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(KeyportService { service: Rc::new(service), guard: Rc::new(self.guard.clone()) }))
    }
}

/// The service [`KeyportMiddleware`] wraps around an app.
#[derive(Debug)]
pub struct KeyportService<S> {
    service: Rc<S>,
    guard: Rc<Guard>,
}

impl<S, B> Service<ServiceRequest> for KeyportService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let service = Rc::clone(&self.service);
        let guard = Rc::clone(&self.guard);
        let span = guard.span(&HttpRequestView(request.request()));
        // Actix workers are single-threaded: the future need not be `Send`,
        // so the request may be borrowed across the guard's await.
        Box::pin(
            async move {
                let outcome = guard.check(&HttpRequestView(request.request())).await;
                match outcome {
                    Outcome::Respond(reply) => Ok(request.into_response(into_response(reply)).map_into_right_body()),
                    Outcome::Proceed { principal, set_cookies } => {
                        request.extensions_mut().insert(Guarded { guard: Rc::clone(&guard), principal });
                        let mut response = service.call(request).await?;
                        let set_by_handler = response.headers().get_all(SET_COOKIE);
                        let set_cookies =
                            guard.cookies_to_append(set_cookies, set_by_handler.filter_map(|v| v.to_str().ok()));
                        for cookie in set_cookies {
                            if let Ok(value) = HeaderValue::from_str(&cookie) {
                                response.headers_mut().append(SET_COOKIE, value);
                            }
                        }
                        Ok(response.map_into_left_body())
                    }
                }
            }
            .instrument(span),
        )
    }
}

pub(crate) fn into_response(reply: Reply) -> HttpResponse {
    let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = HttpResponse::with_body(status, reply.body);
    for (name, value) in reply.headers {
        // `from_bytes`, unlike `from_static`, cannot panic.
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value)) {
            response.headers_mut().append(name, value);
        }
    }
    response.map_into_boxed_body()
}
