//! The responses the guard sends instead of the handler: why it refused
//! ([`Refusal`]), the default pages, and the app's hook to replace them.

use std::{fmt, sync::Arc};

use super::guard::Reply;

/// Why the guard answered a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No valid session on a route that needs one. `reason` is
    /// `UNAUTHENTICATED` or `SESSION_EXPIRED`.
    Unauthenticated {
        /// The stable reason.
        reason: &'static str,
    },
    /// A session without the role the route needs.
    Forbidden,
    /// A cookie-authenticated unsafe request from another site (CSRF).
    CrossSite,
    /// Keyport did not answer in time on a route that needs a session.
    Unavailable,
    /// A session without the second factor or the recent proof the route
    /// needs ([`RouteRules::require_aal2`], [`RouteRules::require_fresh`]).
    ///
    /// [`RouteRules::require_aal2`]: super::RouteRules::require_aal2
    /// [`RouteRules::require_fresh`]: super::RouteRules::require_fresh
    StepUpRequired,
    /// A route rule names a permission Keyport's catalogue does not have
    /// (`PERMISSION_UNKNOWN`): the app's configuration is wrong. 500.
    Misconfigured,
}

impl Refusal {
    /// The stable reason, as sent in JSON bodies.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unauthenticated { reason } => reason,
            Self::Forbidden => "FORBIDDEN",
            Self::CrossSite => "CSRF_REJECTED",
            Self::Unavailable => "AUTH_UNAVAILABLE",
            Self::StepUpRequired => "STEP_UP_REQUIRED",
            Self::Misconfigured => "PERMISSION_UNKNOWN",
        }
    }
}

/// What a [`RefusalPage`] hook is told about a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefusalContext<'a> {
    /// Why.
    pub refusal: Refusal,
    /// A browser loading a page (answer with HTML or a redirect), rather
    /// than an API call (answer with JSON).
    pub browser: bool,
    /// The request's path.
    pub path: &'a str,
}

/// The app's own responses to refusals: return `None` to keep the default.
/// The guard still adds its `Set-Cookie` headers (clearing a dead cookie)
/// and, on 401, `WWW-Authenticate`.
#[derive(Clone)]
pub struct RefusalPage(Arc<PageFn>);

type PageFn = dyn Fn(&RefusalContext<'_>) -> Option<Reply> + Send + Sync;

impl RefusalPage {
    /// A hook calling `page`.
    pub fn new(page: impl Fn(&RefusalContext<'_>) -> Option<Reply> + Send + Sync + 'static) -> Self {
        Self(Arc::new(page))
    }

    pub(crate) fn reply(&self, context: &RefusalContext<'_>) -> Option<Reply> {
        (self.0)(context)
    }
}

impl fmt::Debug for RefusalPage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefusalPage(..)")
    }
}

impl Reply {
    /// A JSON body `{"error": reason, "message": message}`, not cached.
    pub fn json(status: u16, reason: &str, message: &str) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".into()), ("cache-control", "no-store".into())],
            body: format!(r#"{{"error":"{reason}","message":"{message}"}}"#),
        }
    }

    /// An HTML page, not cached.
    pub fn html(status: u16, body: impl Into<String>) -> Self {
        Self {
            status,
            headers: vec![("content-type", "text/html; charset=utf-8".into()), ("cache-control", "no-store".into())],
            body: body.into(),
        }
    }

    /// A `303 See Other` to `location`.
    pub fn see_other(location: impl Into<String>) -> Self {
        Self { status: 303, headers: vec![("location", location.into())], body: String::new() }
    }
}

/// The default page for a browser, when there is no redirect to make.
pub(crate) fn default_page(refusal: Refusal) -> Reply {
    let (status, title, text) = match refusal {
        Refusal::Forbidden => (403, "Forbidden", "Your account lacks the role or permission this page needs."),
        Refusal::Misconfigured => (500, "Server error", "This page's access rule is misconfigured."),
        Refusal::CrossSite => (403, "Forbidden", "This request came from another site and was refused."),
        Refusal::Unavailable => (503, "Unavailable", "Signing in is unavailable right now. Try again in a moment."),
        Refusal::Unauthenticated { .. } => (401, "Sign in", "Sign in to see this page."),
        Refusal::StepUpRequired => (403, "Verify it is you", "This page needs a recent two-step verification."),
    };
    let reason = refusal.reason();
    let page =
        format!("<!doctype html><title>{title}</title><h1>{title}</h1><p>{text}</p><p><code>{reason}</code></p>");
    let mut reply = Reply::html(status, page);
    if refusal == Refusal::Unavailable {
        reply.headers.push(("retry-after", "5".into()));
    }
    reply
}

/// The default JSON for an API client.
pub(crate) fn default_json(refusal: Refusal) -> Reply {
    let message = match refusal {
        Refusal::Unauthenticated { .. } => "sign in first",
        Refusal::Forbidden => "missing role or permission",
        Refusal::Misconfigured => "the route names a permission Keyport does not know",
        Refusal::CrossSite => "cross-origin request refused",
        Refusal::Unavailable => "authentication is unavailable",
        Refusal::StepUpRequired => "pass a second factor again",
    };
    let status = match refusal {
        Refusal::Unauthenticated { .. } => 401,
        Refusal::Forbidden | Refusal::CrossSite => 403,
        Refusal::Unavailable => 503,
        Refusal::StepUpRequired => 401,
        Refusal::Misconfigured => 500,
    };
    let mut reply = Reply::json(status, refusal.reason(), message);
    if refusal == Refusal::StepUpRequired {
        // RFC 9470: the token is valid but its authentication is not enough.
        reply.headers.push(("www-authenticate", r#"Bearer error="insufficient_user_authentication""#.into()));
    }
    reply
}
