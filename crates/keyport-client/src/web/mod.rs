//! The framework-free core of Keyport's web middleware.
//!
//! `keyport-axum` and `keyport-actix` adapt their frameworks' requests to
//! [`RequestView`], ask a [`Guard`] for an [`Outcome`], and turn that into a
//! response; their `Auth` extractors deref to [`Auth`], the steps a handler
//! takes (sign-in, sign-up, sign-out, social sign-in, sessions).
//! Everything that decides — where the token comes from, which
//! routes need what, CSRF, redirects, cookies — lives here, once.

mod auth;
mod cookie;
mod guard;
mod pattern;
mod redirect;
mod reply;
mod rules;

pub use auth::{Auth, Denied};
pub use cookie::{CookieSettings, SameSite};
pub use guard::{FirstFactor, Guard, Outcome, Reply, RequestView, SignedUp};
pub use redirect::safe_return_path;
pub use reply::{Refusal, RefusalContext, RefusalPage};
pub use rules::{Access, OrganizationFrom, PatternError, Predicate, RouteRules};

use std::{sync::Arc, time::Duration};

/// Everything the middleware is configured with.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The session cookie.
    pub cookie: CookieSettings,
    /// Which routes need what.
    pub rules: RouteRules,
    /// Where browsers are sent to sign in [default: `/sign-in`].
    pub sign_in_path: String,
    /// Query parameter carrying the path to return to [default: `return_to`].
    pub return_param: String,
    /// Where browsers lacking a route's role are sent; `None` shows a plain
    /// 403 page [default: `None`].
    pub forbidden_path: Option<String>,
    /// Where browsers lacking a route's second factor or recent proof are
    /// sent, with the page to return to [default: `/sign-in/step-up`].
    pub step_up_path: String,
    /// Origins allowed to send cookie-authenticated unsafe requests
    /// (`https://app.example.com`). Empty: the request's own `Host` only.
    pub allowed_origins: Vec<String>,
    /// Believe `X-Forwarded-For` for the client address (only behind a
    /// proxy that sets it) [default: false].
    pub trust_forwarded_for: bool,
    /// Longest a public route waits for Keyport to check an uncached token
    /// before it is served signed out [default: 250 ms].
    pub public_wait: Duration,
    /// Longest a protected route waits for Keyport before it answers 503
    /// [default: 1 s].
    pub protected_wait: Duration,
    /// The app's own refusal responses [default: none, the built-in ones].
    pub refusal_page: Option<RefusalPage>,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            cookie: CookieSettings::default(),
            rules: RouteRules::default(),
            sign_in_path: "/sign-in".into(),
            return_param: "return_to".into(),
            forbidden_path: None,
            step_up_path: "/sign-in/step-up".into(),
            allowed_origins: Vec::new(),
            trust_forwarded_for: false,
            public_wait: Duration::from_millis(250),
            protected_wait: Duration::from_secs(1),
            refusal_page: None,
        }
    }
}

impl AuthSettings {
    /// Settings with these route rules and defaults for the rest.
    pub fn new(rules: RouteRules) -> Self {
        Self { rules, ..Self::default() }
    }

    /// Uses `cookie` for the session cookie.
    pub fn with_cookie(mut self, cookie: CookieSettings) -> Self {
        self.cookie = cookie;
        self
    }

    /// Sends browsers to `path` to sign in.
    pub fn with_sign_in_path(mut self, path: impl Into<String>) -> Self {
        self.sign_in_path = path.into();
        self
    }

    /// Sends browsers lacking a route's role to `path`.
    pub fn with_forbidden_path(mut self, path: impl Into<String>) -> Self {
        self.forbidden_path = Some(path.into());
        self
    }

    /// Allows cookie-authenticated unsafe requests from `origin` too.
    pub fn allow_origin(mut self, origin: impl Into<String>) -> Self {
        self.allowed_origins.push(origin.into().trim_end_matches('/').to_owned());
        self
    }

    /// Believes `X-Forwarded-For` for the client address.
    pub fn trust_forwarded_for(mut self, trust: bool) -> Self {
        self.trust_forwarded_for = trust;
        self
    }

    /// How long public and protected routes wait for Keyport on a token the
    /// cache does not hold.
    pub fn with_waits(mut self, public: Duration, protected: Duration) -> Self {
        self.public_wait = public;
        self.protected_wait = protected;
        self
    }

    /// Answers refusals with `page` where it returns a reply.
    pub fn with_refusal_page(mut self, page: RefusalPage) -> Self {
        self.refusal_page = Some(page);
        self
    }

    /// Shares the settings between workers.
    pub fn shared(self) -> Arc<Self> {
        Arc::new(self)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        future::Future,
        task::{Context, Poll, Waker},
    };

    /// An offline guard never waits, so one poll finishes its checks and steps.
    pub(super) fn now<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        match future.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(output) => output,
            Poll::Pending => unreachable!("an offline guard waited"),
        }
    }
}
