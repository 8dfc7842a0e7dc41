//! Requests whose message does not decode get `INVALID_ARGUMENT` with reason
//! `MALFORMED_REQUEST`, like every other error, instead of tonic's
//! `INTERNAL` carrying the decoder's text.
//!
//! tonic decodes the request before any handler runs, so the handlers never
//! see these errors; this innermost layer rewrites the answer instead.

use std::task::{Context, Poll};

use futures::{FutureExt, future::Map};
use http::{Request, Response};
use tonic::body::Body;
use tower::{Layer, Service};

/// How prost's `DecodeError` starts when displayed (tonic-prost sends it as
/// the status message).
const DECODE_ERROR_PREFIX: &str = "failed to decode Protobuf message";

/// Rewrites decode failures of request messages; see the module docs.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct MalformedRequestLayer;

impl<S> Layer<S> for MalformedRequestLayer {
    type Service = MalformedRequest<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MalformedRequest { inner }
    }
}

/// The service of [`MalformedRequestLayer`].
#[derive(Debug, Clone)]
pub(crate) struct MalformedRequest<S> {
    inner: S,
}

type Rewrite<E> = fn(Result<Response<Body>, E>) -> Result<Response<Body>, E>;

impl<S> Service<Request<Body>> for MalformedRequest<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Map<S::Future, Rewrite<S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        self.inner.call(request).map(|result| result.map(rewrite))
    }
}

fn rewrite(response: Response<Body>) -> Response<Body> {
    // A trailers-only INTERNAL answer; the cheap check first, as it is rare.
    if response.headers().get("grpc-status").is_none_or(|status| status != "13") {
        return response;
    }
    // The message is percent-encoded on the wire; let tonic decode it.
    let Some(status) = tonic::Status::from_header_map(response.headers()) else { return response };
    if !status.message().starts_with(DECODE_ERROR_PREFIX) {
        return response;
    }
    // Useful to whoever debugs a client; not part of the API.
    tracing::debug!(decoder = status.message(), "malformed request message");
    crate::status::malformed_request().into_http()
}

#[cfg(test)]
mod tests {
    use tonic::{Code, Status};
    use tonic_types::StatusExt;

    use super::*;

    fn answer(status: Status) -> Status {
        let response = rewrite(status.into_http());
        Status::from_header_map(response.headers()).unwrap()
    }

    #[test]
    fn decode_errors_become_malformed_requests() {
        let status = answer(Status::internal("failed to decode Protobuf message: invalid wire type value: 7"));
        assert_eq!(status.code(), Code::InvalidArgument);
        let info = status.get_error_details().error_info().cloned().unwrap();
        assert_eq!((info.reason.as_str(), info.domain.as_str()), ("MALFORMED_REQUEST", "keyport.dev"));
        assert!(!status.message().contains("wire type"));
    }

    #[test]
    fn other_errors_pass_unchanged() {
        for status in [Status::internal("internal error"), Status::out_of_range("failed to decode Protobuf message")] {
            let code = status.code();
            assert_eq!(answer(status).code(), code);
        }
    }
}
