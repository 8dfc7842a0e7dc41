//! [`KeyportGrpcLayer`]: a tower layer for tonic servers (an internal
//! service) that authenticates every call's end user through Keyport.
//!
//! It reads the caller's token from the `authorization: Bearer <token>`
//! metadata, checks it through a [`SessionCache`] (so a hit costs no call,
//! and a revocation reaches the next call at once), decides the
//! permissions the layer was given, and puts the [`Principal`] in the
//! request's extensions for the handler (`request.extensions().get::<Principal>()`).
//! A refused call answers `UNAUTHENTICATED` or `PERMISSION_DENIED` with
//! Keyport's reason in `google.rpc.ErrorInfo`; Keyport down answers
//! `UNAVAILABLE`: it fails closed.
//!
//! ```no_run
//! # async fn run(cache: keyport_client::SessionCache) -> Result<(), Box<dyn std::error::Error>> {
//! use keyport_client::grpc::KeyportGrpcLayer;
//! let (_, health) = tonic_health::server::health_reporter();
//! tonic::transport::Server::builder()
//!     .layer(KeyportGrpcLayer::new(cache).requiring(&["reports:read"]))
//!     .add_service(health)
//!     .serve("127.0.0.1:50052".parse()?)
//!     .await?;
//! # Ok(()) }
//! ```

use std::{
    collections::HashMap,
    sync::Arc,
    task::{Context, Poll},
};

use futures::future::BoxFuture;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    cache::SessionCache,
    client::ClientInfo,
    error::{Error, Reason},
    principal::Principal,
};

/// The layer: every call needs a valid session and, if given, every one of
/// the permissions.
#[derive(Debug, Clone)]
pub struct KeyportGrpcLayer {
    cache: SessionCache,
    permissions: Arc<[String]>,
}

impl KeyportGrpcLayer {
    /// Calls need a valid session, checked through `cache`.
    pub fn new(cache: SessionCache) -> Self {
        Self { cache, permissions: Arc::from(Vec::new()) }
    }

    /// Calls also need every one of `permissions` (`resource:action`),
    /// decided by Keyport (`Authorize`) and cached with the session.
    pub fn requiring(mut self, permissions: &[&str]) -> Self {
        self.permissions = permissions.iter().map(|permission| (*permission).to_owned()).collect();
        self
    }
}

impl<S> tower_layer::Layer<S> for KeyportGrpcLayer {
    type Service = KeyportGrpc<S>;

    fn layer(&self, inner: S) -> Self::Service {
        KeyportGrpc { inner, cache: self.cache.clone(), permissions: Arc::clone(&self.permissions) }
    }
}

/// The service [`KeyportGrpcLayer`] wraps around a tonic service.
#[derive(Debug, Clone)]
pub struct KeyportGrpc<S> {
    inner: S,
    cache: SessionCache,
    permissions: Arc<[String]>,
}

impl<S, B> tower_service::Service<http::Request<B>> for KeyportGrpc<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The clone that was polled ready serves this call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let (cache, permissions) = (self.cache.clone(), Arc::clone(&self.permissions));
        Box::pin(async move {
            match check(&cache, &permissions, request.headers()).await {
                Ok(principal) => {
                    request.extensions_mut().insert(principal);
                    inner.call(request).await
                }
                Err(status) => Ok(status.into_http()),
            }
        })
    }
}

/// The principal behind `headers`' bearer token, or the status refusing it.
async fn check(cache: &SessionCache, permissions: &[String], headers: &http::HeaderMap) -> Result<Principal, Status> {
    let Some(token) = bearer(headers) else {
        return Err(refusal(Code::Unauthenticated, Reason::Unauthenticated, "no bearer token"));
    };
    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok());
    let client = ClientInfo::default().with_trace_context(header("traceparent"), header("tracestate"));
    if permissions.is_empty() {
        return cache.get_session(token, &client).await.map(|session| session.principal).map_err(forwarded);
    }
    let asked: Vec<&str> = permissions.iter().map(String::as_str).collect();
    let decision = cache.authorize(token, &asked, &client).await.map_err(forwarded)?;
    if decision.all() {
        Ok(Principal::clone(&decision.principal))
    } else {
        Err(refusal(
            Code::PermissionDenied,
            Reason::PermissionDenied,
            "the caller lacks a permission this service needs",
        ))
    }
}

fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let (scheme, token) = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim()).filter(|token| !token.is_empty())
}

/// Keyport's refusal, passed on with its reason; Keyport unreachable is
/// `UNAVAILABLE` (failing closed).
fn forwarded(error: Error) -> Status {
    let code = match error.code() {
        Code::Unauthenticated | Code::PermissionDenied | Code::ResourceExhausted => error.code(),
        Code::Unavailable | Code::DeadlineExceeded => Code::Unavailable,
        // A malformed request or an unknown permission is this service's
        // bug; the caller cannot fix it.
        _ => Code::Internal,
    };
    refusal(code, error.reason().clone(), error.message())
}

fn refusal(code: Code, reason: Reason, message: &str) -> Status {
    let details = ErrorDetails::with_error_info(reason.as_str(), "keyport.dev", HashMap::<String, String>::new());
    Status::with_error_details(code, message, details)
}
