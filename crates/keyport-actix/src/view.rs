//! Actix requests as the framework-free guard sees them.

use actix_web::{HttpRequest, http::header};
use keyport_client::web::RequestView;

/// A request's head, borrowed. Both the middleware (through
/// `ServiceRequest::request`) and the extractors see an [`HttpRequest`].
pub(crate) struct HttpRequestView<'a>(pub(crate) &'a HttpRequest);

impl RequestView for HttpRequestView<'_> {
    fn method(&self) -> &str {
        self.0.method().as_str()
    }

    fn path(&self) -> &str {
        // The URI's own path: `HttpRequest::match_info` may be rewritten by scopes.
        self.0.uri().path()
    }

    fn query(&self) -> Option<&str> {
        self.0.uri().query()
    }

    fn header(&self, name: &str) -> Option<&str> {
        let headers = self.0.headers();
        // The guard's hot headers by constant, sparing a parse of the name.
        let value = match name {
            "authorization" => headers.get(header::AUTHORIZATION),
            "cookie" => headers.get(header::COOKIE),
            _ => headers.get(name),
        };
        // UTF-8, not `to_str`'s visible ASCII: another app's cookie with a
        // UTF-8 value must not hide the session cookie beside it.
        value.and_then(|value| std::str::from_utf8(value.as_bytes()).ok())
    }

    fn peer_ip(&self) -> Option<String> {
        self.0.peer_addr().map(|addr| addr.ip().to_string())
    }
}
