//! What each call's answer was, for the metrics and the call's span:
//! calls by code, latency, and refusals by Keyport's reason.
//!
//! A layer inside gRPC-web, so that browser calls are observed like the
//! others, and outside the answer rewrites, so that it sees what callers
//! receive. Only methods Keyport serves get their own names; any other
//! path is `unknown`, so a scanner cannot grow the label set. Without a
//! metrics recorder the counters are no-ops; without a trace exporter the
//! span fields go nowhere.

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::OnceLock,
    task::{Context, Poll},
};

use http::{HeaderMap, Request, Response};
use keyport_proto::v1::ErrorReason;
use prost::Message;
use tokio::time::Instant;
use tonic::body::Body;
use tonic_types::StatusExt;
use tower::{Layer, Service};

/// gRPC calls answered, by `service`, `method` and `code`.
pub(crate) const REQUESTS: &str = "keyport_rpc_requests_total";
/// Time to the response headers (for a stream: until it starts), by `service` and `method`.
pub(crate) const DURATION: &str = "keyport_rpc_duration_seconds";
/// Refused calls by `service`, `method` and `reason`.
pub(crate) const ERRORS: &str = "keyport_rpc_errors_total";

/// gRPC status code names, indexed by code.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// A method's labels.
#[derive(Debug, Clone, Copy)]
struct Method {
    service: &'static str,
    method: &'static str,
}

const UNKNOWN: Method = Method { service: "unknown", method: "unknown" };

/// Every method served, by request path (`/keyport.v1.UserService/SignUp`).
fn methods() -> &'static HashMap<String, (String, String)> {
    static METHODS: OnceLock<HashMap<String, (String, String)>> = OnceLock::new();
    METHODS.get_or_init(|| {
        let mut methods = HashMap::new();
        for set in [keyport_proto::FILE_DESCRIPTOR_SET, tonic_health::pb::FILE_DESCRIPTOR_SET] {
            let Ok(set) = prost_types::FileDescriptorSet::decode(set) else { continue };
            for file in set.file {
                for service in &file.service {
                    let service_name = format!("{}.{}", file.package(), service.name());
                    for method in &service.method {
                        let path = format!("/{service_name}/{}", method.name());
                        methods.insert(path, (service_name.clone(), method.name().to_owned()));
                    }
                }
            }
        }
        for service in ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"] {
            let path = format!("/{service}/ServerReflectionInfo");
            methods.insert(path, (service.to_owned(), "ServerReflectionInfo".to_owned()));
        }
        methods
    })
}

fn method_of(path: &str) -> Method {
    methods()
        .get(path)
        .map(|(service, method)| Method { service: service.as_str(), method: method.as_str() })
        .unwrap_or(UNKNOWN)
}

/// The service and method names of a request path, `unknown` for a path
/// Keyport does not serve.
pub(crate) fn names_of(path: &str) -> (&'static str, &'static str) {
    let Method { service, method } = method_of(path);
    (service, method)
}

/// Observes every call; see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RpcObserverLayer;

impl<S> Layer<S> for RpcObserverLayer {
    type Service = RpcObserver<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcObserver { inner }
    }
}

/// The service of [`RpcObserverLayer`].
#[derive(Debug, Clone)]
pub(crate) struct RpcObserver<S> {
    inner: S,
}

impl<S> Service<Request<Body>> for RpcObserver<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Measured<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let method = method_of(request.uri().path());
        Measured { inner: self.inner.call(request), call: Some((method, Instant::now())) }
    }
}

pin_project_lite::pin_project! {
    /// A call being answered; records it when answered, or as `CANCELLED`
    /// when the caller left first (the future is dropped).
    pub(crate) struct Measured<F> {
        #[pin]
        inner: F,
        call: Option<(Method, Instant)>,
    }

    impl<F> PinnedDrop for Measured<F> {
        fn drop(this: Pin<&mut Self>) {
            if let Some((method, started)) = this.project().call.take() {
                record(method, started, 1, None);
            }
        }
    }
}

impl<F, E> Future for Measured<F>
where
    F: Future<Output = Result<Response<Body>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let answer = std::task::ready!(this.inner.poll(cx));
        if let Some((method, started)) = this.call.take() {
            match &answer {
                Ok(response) => {
                    let headers = response.headers();
                    record(method, started, code_of(headers), Some(headers));
                }
                // The transport failed the call; it gets no gRPC answer.
                Err(_) => {
                    record(method, started, 2, None);
                    tracing::Span::current().record("rpc.grpc.status_code", 2);
                }
            }
        }
        Poll::Ready(answer)
    }
}

/// The code of a trailers-only answer; OK when the status comes later, in
/// trailers (a normal answer, or a stream that has started).
fn code_of(headers: &HeaderMap) -> usize {
    headers
        .get("grpc-status")
        .and_then(|status| status.to_str().ok()?.parse::<usize>().ok())
        .filter(|code| *code < CODES.len())
        .unwrap_or(0)
}

/// Records one answered call; `headers` are absent when the call ended
/// without an answer (cancelled, or failed in the transport).
fn record(method: Method, started: Instant, code: usize, headers: Option<&HeaderMap>) {
    let Method { service, method } = method;
    let code_name = CODES.get(code).copied().unwrap_or("UNKNOWN");
    metrics::counter!(REQUESTS, "service" => service, "method" => method, "code" => code_name).increment(1);
    metrics::histogram!(DURATION, "service" => service, "method" => method).record(started.elapsed().as_secs_f64());
    let reason = if code == 0 { None } else { headers.and_then(reason_of) };
    if let Some(reason) = reason {
        metrics::counter!(ERRORS, "service" => service, "method" => method, "reason" => reason).increment(1);
    }
    // Answered calls are observed while their span is entered (tonic enters
    // it around each poll); a dropped call's span is not current here.
    if headers.is_some() {
        let span = tracing::Span::current();
        span.record("rpc.grpc.status_code", code);
        if let Some(reason) = reason {
            span.record("keyport.reason", reason);
        }
    }
}

/// Keyport's reason in an error answer's details, if it is one of ours.
fn reason_of(headers: &HeaderMap) -> Option<&'static str> {
    let status = tonic::Status::from_header_map(headers)?;
    let info = status.get_error_details().error_info()?.clone();
    let reason = ErrorReason::from_str_name(&format!("ERROR_REASON_{}", info.reason))?;
    reason.as_str_name().strip_prefix("ERROR_REASON_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_methods_have_their_own_labels_and_others_are_unknown() {
        let sign_up = method_of("/keyport.v1.UserService/SignUp");
        assert_eq!((sign_up.service, sign_up.method), ("keyport.v1.UserService", "SignUp"));
        let check = method_of("/grpc.health.v1.Health/Check");
        assert_eq!((check.service, check.method), ("grpc.health.v1.Health", "Check"));
        for path in ["/keyport.v1.UserService/Nope", "/x/y", "", "/keyport.v1.UserService/SignUp/extra"] {
            assert_eq!(method_of(path).service, "unknown", "{path}");
        }
    }

    #[test]
    fn codes_and_reasons_come_from_the_answer() {
        let refused = crate::status::malformed_request().into_http::<Body>();
        assert_eq!(CODES[code_of(refused.headers())], "INVALID_ARGUMENT");
        assert_eq!(reason_of(refused.headers()), Some("MALFORMED_REQUEST"));
        let foreign = tonic::Status::internal("no details").into_http::<Body>();
        assert_eq!(reason_of(foreign.headers()), None);
        assert_eq!(code_of(&HeaderMap::new()), 0);
    }
}
