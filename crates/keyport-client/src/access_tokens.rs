//! Access tokens: [`KeyportClient::issue_access_token`] exchanges a session
//! for a short-lived JWT, and [`AccessTokenVerifier`] checks such tokens
//! offline against Keyport's published keys (fetched with `GetJwks`).
//!
//! A verified token proves who its holder was when it was issued, not that
//! the session still lives: it stays valid until it expires. Where a
//! revocation must take effect at once, check the session instead
//! ([`crate::SessionCache`]).

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use jsonwebtoken::{Algorithm, DecodingKey, Validation, jwk::JwkSet};
use keyport_proto::v1::{self, session_service_client::SessionServiceClient};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::{
    client::{ClientInfo, KeyportClient},
    clock::{Clock, SystemClock},
    error::Error,
    principal::system_time,
};

/// A signed access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedAccessToken {
    /// The JWT, for an `Authorization: Bearer` header.
    pub token: String,
    /// When it expires.
    pub expires_at: SystemTime,
}

/// Keyport's public keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksDocument {
    /// The JSON Web Key Set, as JSON.
    pub json: String,
    /// How long it may be cached.
    pub max_age: Duration,
}

impl KeyportClient {
    /// Exchanges session `token` for an access token for `audience` (empty:
    /// Keyport's default audience). Retried on `UNAVAILABLE`.
    pub async fn issue_access_token(&self, token: &str, audience: &str) -> Result<IssuedAccessToken, Error> {
        let message = v1::IssueAccessTokenRequest { token: token.to_owned(), audience: audience.to_owned() };
        let response = self
            .idempotent(|channel| {
                let request = self.request(message.clone(), None, &ClientInfo::default());
                async move { SessionServiceClient::new(channel).issue_access_token(request).await }
            })
            .await?;
        Ok(IssuedAccessToken { token: response.access_token, expires_at: system_time(response.expires_at.as_ref()) })
    }

    /// The keys that verify access tokens. Retried on `UNAVAILABLE`.
    pub async fn jwks(&self) -> Result<JwksDocument, Error> {
        let response = self
            .idempotent(|channel| {
                let request = self.request(v1::GetJwksRequest {}, None, &ClientInfo::default());
                async move { SessionServiceClient::new(channel).get_jwks(request).await }
            })
            .await?;
        Ok(JwksDocument {
            json: response.jwks,
            max_age: response.max_age.and_then(|age| Duration::try_from(age).ok()).unwrap_or_default(),
        })
    }
}

/// The claims of a verified access token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct AccessTokenClaims {
    /// The issuer.
    pub iss: String,
    /// The user id.
    pub sub: String,
    /// The audience (this service).
    pub aud: String,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: i64,
    /// Issue time.
    pub iat: i64,
    /// The token's unique id.
    pub jti: String,
    /// The session it was issued from.
    pub sid: String,
    /// The user's roles when it was issued.
    #[serde(default)]
    pub roles: Vec<String>,
    /// The permissions those roles granted, when Keyport includes them.
    #[serde(default)]
    pub permissions: Option<Vec<String>>,
    /// The admin acting as the user, for an impersonation session.
    #[serde(default)]
    pub act: Option<Actor>,
}

/// The acting party of an impersonation token.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Actor {
    /// The admin's user id.
    pub sub: String,
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Not a JWT Keyport signs: malformed, another `typ`, an algorithm
    /// outside `EdDSA`/`ES256`, or no `kid`.
    #[error("not a Keyport access token: {0}")]
    Malformed(String),
    /// Signed by no key Keyport publishes.
    #[error("the token's key is unknown")]
    UnknownKey,
    /// The signature, issuer, audience or times do not hold.
    #[error("invalid access token: {0}")]
    Invalid(jsonwebtoken::errors::Error),
    /// The keys could not be fetched, so the token's key is not known
    /// (Keyport out of reach: fail closed, and try again).
    #[error("Keyport's keys could not be fetched")]
    KeysUnavailable,
}

impl VerifyError {
    /// Whether the token itself is at fault (a 401), rather than Keyport
    /// being out of reach (a 503).
    pub fn is_token_error(&self) -> bool {
        !matches!(self, Self::KeysUnavailable)
    }
}

/// How an [`AccessTokenVerifier`] behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifierConfig {
    /// Clock skew tolerated on `exp` and `nbf`.
    pub leeway: Duration,
    /// Shortest time between two fetches caused by unknown `kid`s, so a
    /// flood of forged tokens cannot turn into a flood of fetches.
    pub min_refetch_interval: Duration,
    /// Longest the keys are kept, whatever Keyport's `max_age`.
    pub max_cache: Duration,
}

impl Default for VerifierConfig {
    fn default() -> Self {
        Self {
            leeway: Duration::from_secs(30),
            min_refetch_interval: Duration::from_secs(30),
            max_cache: Duration::from_secs(3600),
        }
    }
}

/// The only algorithms Keyport signs with; anything else (`none`, `HS*`,
/// `RS*`) is refused before a key is looked at.
const ALGORITHMS: [Algorithm; 2] = [Algorithm::EdDSA, Algorithm::ES256];

/// Verifies Keyport's access tokens offline. Cheap to clone (shared keys).
#[derive(Clone)]
pub struct AccessTokenVerifier {
    client: KeyportClient,
    issuer: String,
    audience: String,
    config: VerifierConfig,
    keys: Arc<Mutex<Keys>>,
}

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, (Algorithm, DecodingKey)>,
    /// When the set was last fetched.
    fetched_at: Option<Instant>,
    /// How long it counts as fresh (Keyport's `max_age`, capped).
    fresh_for: Duration,
    /// When a fetch was last tried, and whether it failed.
    last_attempt: Option<Instant>,
    last_failed: bool,
}

impl AccessTokenVerifier {
    /// A verifier of tokens from `issuer` for `audience`, fetching the keys
    /// through `client`.
    pub fn new(client: KeyportClient, issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Self::with_config(client, issuer, audience, VerifierConfig::default())
    }

    /// As [`Self::new`], tuned.
    pub fn with_config(
        client: KeyportClient,
        issuer: impl Into<String>,
        audience: impl Into<String>,
        config: VerifierConfig,
    ) -> Self {
        Self { client, issuer: issuer.into(), audience: audience.into(), config, keys: Arc::default() }
    }

    /// Checks `token`: header (`typ` `at+jwt`, an allowed `alg` matching
    /// its key's), signature, `iss`, `aud`, `exp` and `nbf`.
    pub async fn verify(&self, token: &str) -> Result<AccessTokenClaims, VerifyError> {
        let header = jsonwebtoken::decode_header(token).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        if !ALGORITHMS.contains(&header.alg) {
            return Err(VerifyError::Malformed(format!("algorithm {:?} is not accepted", header.alg)));
        }
        let typ = header.typ.as_deref().unwrap_or_default().to_ascii_lowercase();
        if typ != "at+jwt" && typ != "application/at+jwt" {
            return Err(VerifyError::Malformed("typ is not at+jwt".into()));
        }
        let kid = header.kid.ok_or_else(|| VerifyError::Malformed("no kid".into()))?;
        let (algorithm, key) = self.key(&kid).await?;
        if algorithm != header.alg {
            return Err(VerifyError::Malformed("the algorithm is not its key's".into()));
        }
        let mut validation = Validation::new(algorithm);
        validation.leeway = self.config.leeway.as_secs();
        validation.validate_nbf = true;
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iss", "aud", "sub"]);
        jsonwebtoken::decode::<AccessTokenClaims>(token, &key, &validation)
            .map(|data| data.claims)
            .map_err(VerifyError::Invalid)
    }

    /// The key `kid`. The set is fetched again when stale, or when the kid
    /// is unknown, but never twice within `min_refetch_interval` (after a
    /// failed fetch, [`RETRY_AFTER_FAILURE`]); a stale set that cannot be
    /// refreshed keeps serving, since keys do not go bad by age.
    async fn key(&self, kid: &str) -> Result<(Algorithm, DecodingKey), VerifyError> {
        let mut keys = self.keys.lock().await;
        let now = SystemClock.now();
        let stale = keys.fetched_at.is_none_or(|at| now.duration_since(at) >= keys.fresh_for);
        let unknown = !keys.by_kid.contains_key(kid);
        let pause = if keys.last_failed { RETRY_AFTER_FAILURE } else { self.config.min_refetch_interval };
        let may_fetch = keys.last_attempt.is_none_or(|at| now.duration_since(at) >= pause);
        if (stale || unknown) && may_fetch {
            keys.last_attempt = Some(now);
            match self.client.jwks().await {
                Ok(document) => {
                    keys.by_kid = parse_keys(&document.json)?;
                    keys.fetched_at = Some(now);
                    keys.fresh_for = document.max_age.min(self.config.max_cache);
                    keys.last_failed = false;
                }
                Err(error) => {
                    tracing::warn!(%error, "fetching Keyport's keys failed");
                    keys.last_failed = true;
                }
            }
        }
        match keys.by_kid.get(kid) {
            Some(key) => Ok(key.clone()),
            None if keys.last_failed => Err(VerifyError::KeysUnavailable),
            None => Err(VerifyError::UnknownKey),
        }
    }
}

/// How long after a failed fetch of the keys the next may be tried.
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// The usable keys of a JWKS: signing keys of an accepted algorithm.
fn parse_keys(json: &str) -> Result<HashMap<String, (Algorithm, DecodingKey)>, VerifyError> {
    let set: JwkSet = serde_json::from_str(json).map_err(|e| VerifyError::Malformed(format!("the JWKS: {e}")))?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let (Some(kid), Some(algorithm)) = (&jwk.common.key_id, jwk.common.key_algorithm) else { continue };
        let Some(algorithm) = accepted(algorithm) else { continue };
        if let Ok(key) = DecodingKey::from_jwk(jwk) {
            keys.insert(kid.clone(), (algorithm, key));
        }
    }
    Ok(keys)
}

/// The signing algorithm a JWK names, if it is one Keyport signs with.
fn accepted(algorithm: jsonwebtoken::jwk::KeyAlgorithm) -> Option<Algorithm> {
    use jsonwebtoken::jwk::KeyAlgorithm;
    match algorithm {
        KeyAlgorithm::EdDSA => Some(Algorithm::EdDSA),
        KeyAlgorithm::ES256 => Some(Algorithm::ES256),
        _ => None,
    }
}
