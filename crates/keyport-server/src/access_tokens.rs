//! `[access_tokens]`: signed JWTs for services that verify offline, and the
//! JWKS they verify with, served at `GET /.well-known/jwks.json` on the
//! gRPC port (plain HTTP/1.1 or HTTP/2, TLS when the port has it).

use std::{
    task::{Context, Poll},
    time::Duration,
};

use futures::{FutureExt, future::BoxFuture};
use http::{Method, Request, Response, StatusCode, header};
use keyport_core::{
    Accounts, Error,
    access_token::{AccessTokenPolicy, MAX_AUDIENCE_CHARS, MAX_AUDIENCES, MAX_TTL, SigningAlgorithm},
};
use serde::{Deserialize, Serialize};
use tonic::body::Body;
use tower::{Layer, Service};

/// Where the JWKS is served.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The `[access_tokens]` section: off until `issuer` is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AccessTokensConfig {
    /// The `iss` of every token, usually this server's public URL
    /// (`https://auth.example.com`). Empty: no access tokens.
    pub issuer: String,
    /// The services tokens may be issued for (`aud`); the first is the
    /// default. At least one when `issuer` is set.
    pub audiences: Vec<String>,
    /// How long a token is valid, in seconds (at most 3600; never past the
    /// session's own expiry).
    pub ttl_secs: u64,
    /// `EdDSA` (Ed25519) or `ES256` (P-256).
    pub algorithm: String,
    /// A new signing key is made once the current one is this old.
    pub rotate_after_secs: u64,
    /// How long verifiers may cache the JWKS (its `Cache-Control`); a new
    /// key is published this long before it signs.
    pub jwks_max_age_secs: u64,
    /// Whether tokens carry the `permissions` the user's roles grant (their
    /// `roles` always).
    pub include_permissions: bool,
}

impl Default for AccessTokensConfig {
    fn default() -> Self {
        let policy = AccessTokenPolicy::default();
        Self {
            issuer: policy.issuer,
            audiences: policy.audiences,
            ttl_secs: policy.ttl.as_secs(),
            algorithm: policy.algorithm.name().to_owned(),
            rotate_after_secs: policy.rotate_after.as_secs(),
            jwks_max_age_secs: policy.publish_ahead.as_secs(),
            include_permissions: policy.include_permissions,
        }
    }
}

impl AccessTokensConfig {
    /// The policy these settings describe, or what is wrong with them.
    pub fn policy(&self) -> Result<AccessTokenPolicy, String> {
        let problem = |what: String| format!("access_tokens: {what}");
        let algorithm = SigningAlgorithm::parse(&self.algorithm)
            .ok_or_else(|| problem(format!("algorithm must be EdDSA or ES256, not {:?}", self.algorithm)))?;
        let ttl = Duration::from_secs(self.ttl_secs);
        if ttl.is_zero() || ttl > MAX_TTL {
            return Err(problem(format!("ttl_secs must be between 1 and {}", MAX_TTL.as_secs())));
        }
        if self.rotate_after_secs == 0 {
            return Err(problem("rotate_after_secs must be at least 1".into()));
        }
        if !self.issuer.is_empty() {
            if self.audiences.is_empty() || self.audiences.len() > MAX_AUDIENCES {
                return Err(problem(format!("audiences must list 1 to {MAX_AUDIENCES} services")));
            }
            if let Some(bad) = self.audiences.iter().find(|audience| {
                audience.is_empty()
                    || audience.chars().count() > MAX_AUDIENCE_CHARS
                    || audience.chars().any(char::is_control)
            }) {
                return Err(problem(format!(
                    "audience {bad:?} must be 1 to {MAX_AUDIENCE_CHARS} printable characters"
                )));
            }
        }
        Ok(AccessTokenPolicy {
            issuer: self.issuer.clone(),
            audiences: self.audiences.clone(),
            ttl,
            algorithm,
            rotate_after: Duration::from_secs(self.rotate_after_secs),
            publish_ahead: Duration::from_secs(self.jwks_max_age_secs),
            include_permissions: self.include_permissions,
        })
    }
}

/// Answers `GET /.well-known/jwks.json` ahead of gRPC (gRPC-web would
/// refuse a plain HTTP/1.1 request); every other request goes on.
#[derive(Clone)]
pub(crate) struct JwksLayer {
    accounts: Accounts,
}

impl JwksLayer {
    /// Serves the keys of `accounts`.
    pub(crate) fn new(accounts: Accounts) -> Self {
        Self { accounts }
    }
}

impl<S> Layer<S> for JwksLayer {
    type Service = Jwks<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Jwks { inner, accounts: self.accounts.clone() }
    }
}

/// The service of [`JwksLayer`].
#[derive(Clone)]
pub(crate) struct Jwks<S> {
    inner: S,
    accounts: Accounts,
}

impl<S> Service<Request<Body>> for Jwks<S>
where
    S: Service<Request<Body>, Response = Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Response<Body>, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if request.uri().path() != JWKS_PATH {
            return self.inner.call(request).boxed();
        }
        let accounts = self.accounts.clone();
        let method = request.method().clone();
        async move { Ok(jwks_response(&accounts, &method).await) }.boxed()
    }
}

async fn jwks_response(accounts: &Accounts, method: &Method) -> Response<Body> {
    let reply = |status: StatusCode, headers: &[(header::HeaderName, String)], body: String| {
        let mut response = Response::builder().status(status);
        for (name, value) in headers {
            response = response.header(name, value);
        }
        let body = if method == Method::HEAD { Body::empty() } else { Body::new(body) };
        response.body(body).unwrap_or_else(|_| Response::new(Body::empty()))
    };
    if method != Method::GET && method != Method::HEAD {
        return reply(StatusCode::METHOD_NOT_ALLOWED, &[(header::ALLOW, "GET, HEAD".into())], String::new());
    }
    match accounts.jwks().await {
        Ok(jwks) => reply(
            StatusCode::OK,
            &[
                (header::CONTENT_TYPE, "application/jwk-set+json".into()),
                (header::CACHE_CONTROL, format!("public, max-age={}", jwks.max_age.as_secs())),
            ],
            jwks.json,
        ),
        Err(Error::AccessTokensDisabled) => {
            reply(StatusCode::NOT_FOUND, &[], "access tokens are not enabled on this server\n".into())
        }
        Err(error) => {
            tracing::error!(%error, "serving the JWKS failed");
            reply(StatusCode::SERVICE_UNAVAILABLE, &[(header::RETRY_AFTER, "1".into())], "try again\n".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_checked_when_on() {
        let defaults = AccessTokensConfig::default();
        assert!(!defaults.policy().unwrap().enabled());
        let on = AccessTokensConfig {
            issuer: "https://auth.example.com".into(),
            audiences: vec!["orders".into()],
            ..defaults.clone()
        };
        assert!(on.policy().unwrap().enabled());
        let refused = |config: AccessTokensConfig| config.policy().unwrap_err();
        assert!(refused(AccessTokensConfig { audiences: vec![], ..on.clone() }).contains("audiences"));
        assert!(refused(AccessTokensConfig { audiences: vec![String::new()], ..on.clone() }).contains("audience"));
        assert!(refused(AccessTokensConfig { audiences: vec!["a\nb".into()], ..on.clone() }).contains("audience"));
        assert!(refused(AccessTokensConfig { algorithm: "HS256".into(), ..on.clone() }).contains("algorithm"));
        assert!(refused(AccessTokensConfig { algorithm: "none".into(), ..on.clone() }).contains("algorithm"));
        assert!(refused(AccessTokensConfig { ttl_secs: 0, ..on.clone() }).contains("ttl_secs"));
        assert!(refused(AccessTokensConfig { ttl_secs: 3601, ..on.clone() }).contains("ttl_secs"));
        assert!(refused(AccessTokensConfig { rotate_after_secs: 0, ..on }).contains("rotate_after_secs"));
    }
}
