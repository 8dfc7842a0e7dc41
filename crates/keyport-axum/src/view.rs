//! Axum request parts as the framework-free guard sees them.

use http::request::Parts;
use keyport_client::web::RequestView;

/// A request's head, borrowed.
pub(crate) struct PartsView<'a>(pub(crate) &'a Parts);

impl RequestView for PartsView<'_> {
    fn method(&self) -> &str {
        self.0.method.as_str()
    }

    fn path(&self) -> &str {
        self.0.uri.path()
    }

    fn query(&self) -> Option<&str> {
        self.0.uri.query()
    }

    fn header(&self, name: &str) -> Option<&str> {
        // UTF-8, not `to_str`'s visible ASCII: another app's cookie with a
        // UTF-8 value must not hide the session cookie beside it.
        self.0.headers.get(name).and_then(|value| std::str::from_utf8(value.as_bytes()).ok())
    }

    /// What `into_make_service_with_connect_info::<SocketAddr>()` recorded.
    #[cfg(feature = "connect-info")]
    fn peer_ip(&self) -> Option<String> {
        use axum::extract::ConnectInfo;
        self.0.extensions.get::<ConnectInfo<std::net::SocketAddr>>().map(|info| info.0.ip().to_string())
    }

    /// Without axum's `ConnectInfo` there is no peer address to read: only
    /// a trusted `X-Forwarded-For` names the client.
    #[cfg(not(feature = "connect-info"))]
    fn peer_ip(&self) -> Option<String> {
        None
    }
}
