//! Access tokens: short-lived JWTs (RFC 9068, `typ` `at+jwt`) that services
//! verify offline against Keyport's published keys (a JWKS), for the
//! services that cannot call Keyport on every request.
//!
//! Keys rotate without a gap. A new key is made once the signing one is
//! `rotate_after` old and published `publish_ahead` before it signs, so a
//! verifier that caches the JWKS that long already holds it; the old key
//! stays published until the last token it signed has expired. The private
//! halves are stored sealed ([`crate::second_factor::FactorKeys`]).
//!
//! This module is the pure part (keys, claims, which key signs and which are
//! published when); `Accounts::issue_access_token` does the I/O.

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::{
    clock::Timestamp,
    error::{Error, Result},
};

/// Audiences a server may be configured with at most.
pub const MAX_AUDIENCES: usize = 32;
/// Longest audience name.
pub const MAX_AUDIENCE_CHARS: usize = 256;
/// Longest lifetime a configuration may give access tokens.
pub const MAX_TTL: Duration = Duration::from_secs(3600);

/// How access tokens are signed: the JWS `alg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SigningAlgorithm {
    /// Ed25519 (`EdDSA`): small, fast, deterministic signatures.
    #[default]
    EdDsa,
    /// ECDSA on P-256 with SHA-256 (`ES256`), for verifiers without Ed25519.
    Es256,
}

impl SigningAlgorithm {
    /// The JWS name (`EdDSA`, `ES256`).
    pub fn name(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
        }
    }

    /// The algorithm named `name`, if it is one of these.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "EdDSA" => Some(Self::EdDsa),
            "ES256" => Some(Self::Es256),
            _ => None,
        }
    }

    fn jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::EdDsa => jsonwebtoken::Algorithm::EdDSA,
            Self::Es256 => jsonwebtoken::Algorithm::ES256,
        }
    }
}

/// The `[access_tokens]` rules. Off while `issuer` is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenPolicy {
    /// The `iss` claim: who verifiers expect to have issued a token.
    pub issuer: String,
    /// The `aud` values tokens may be issued for; the first is the default.
    pub audiences: Vec<String>,
    /// How long a token is valid (never past its session's expiry).
    pub ttl: Duration,
    /// How new keys sign.
    pub algorithm: SigningAlgorithm,
    /// Age at which the signing key is replaced.
    pub rotate_after: Duration,
    /// How long before it signs a new key is published; also how long
    /// verifiers may cache the JWKS.
    pub publish_ahead: Duration,
    /// Whether tokens carry the permissions the user's roles grant.
    pub include_permissions: bool,
}

impl Default for AccessTokenPolicy {
    fn default() -> Self {
        Self {
            issuer: String::new(),
            audiences: Vec::new(),
            ttl: Duration::from_secs(900),
            algorithm: SigningAlgorithm::EdDsa,
            rotate_after: Duration::from_secs(30 * 24 * 3600),
            publish_ahead: Duration::from_secs(300),
            include_permissions: false,
        }
    }
}

impl AccessTokenPolicy {
    /// Whether this server issues access tokens.
    pub fn enabled(&self) -> bool {
        !self.issuer.is_empty()
    }

    /// The audience a request for `asked` gets: `asked` if configured, the
    /// default one if empty.
    pub fn audience<'a>(&'a self, asked: &'a str) -> Result<&'a str> {
        if !self.enabled() {
            return Err(Error::AccessTokensDisabled);
        }
        if asked.is_empty() {
            return self.audiences.first().map(String::as_str).ok_or(Error::AccessTokensDisabled);
        }
        // The configured list is short; a plain comparison leaks nothing
        // secret (audiences are public names).
        self.audiences.iter().find(|audience| *audience == asked).map(String::as_str).ok_or(Error::AudienceNotAllowed)
    }
}

/// A signing key as stored: the public half as a JWK, the private half
/// sealed and bound to its `kid`.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    /// The key id (`kid`): its RFC 7638 thumbprint.
    pub kid: String,
    /// Its place in the rotation: each key is one more than the last.
    pub generation: i64,
    /// How it signs.
    pub algorithm: SigningAlgorithm,
    /// The PKCS#8 private key, sealed.
    pub sealed_private_key: String,
    /// The public key as a JWK (JSON, with `kid`, `alg` and `use`).
    pub public_jwk: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it starts signing (published from `created_at`).
    pub activates_at: Timestamp,
}

impl std::fmt::Debug for StoredSigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSigningKey")
            .field("kid", &self.kid)
            .field("generation", &self.generation)
            .field("algorithm", &self.algorithm)
            .field("activates_at", &self.activates_at)
            .finish_non_exhaustive()
    }
}

/// A freshly made key pair: the private half in PKCS#8 DER (wiped when
/// dropped), the public one as a JWK.
pub struct NewKeyPair {
    /// The key id: the JWK's RFC 7638 thumbprint.
    pub kid: String,
    /// PKCS#8 DER of the private key.
    pub private_der: Zeroizing<Vec<u8>>,
    /// The public JWK, `kid`, `alg` and `use` included.
    pub public_jwk: String,
}

impl NewKeyPair {
    /// A random key pair for `algorithm`.
    pub fn generate(algorithm: SigningAlgorithm) -> Result<Self> {
        let randomness = |e: getrandom::Error| Error::Internal(format!("randomness: {e}"));
        let encoding = |e: &dyn std::fmt::Display| Error::Internal(format!("encoding a signing key: {e}"));
        let mut seed = Zeroizing::new([0u8; 32]);
        let (private_der, members) = match algorithm {
            SigningAlgorithm::EdDsa => {
                use ed25519_dalek::pkcs8::EncodePrivateKey;
                getrandom::fill(seed.as_mut()).map_err(randomness)?;
                let key = ed25519_dalek::SigningKey::from_bytes(&seed);
                let der = key.to_pkcs8_der().map_err(|e| encoding(&e))?;
                let x = URL_SAFE_NO_PAD.encode(key.verifying_key().as_bytes());
                (der.as_bytes().to_vec(), vec![("crv", "Ed25519".to_owned()), ("kty", "OKP".to_owned()), ("x", x)])
            }
            SigningAlgorithm::Es256 => {
                use p256::pkcs8::EncodePrivateKey;
                // A random scalar; the rare value outside the curve's order
                // is drawn again.
                let key = loop {
                    getrandom::fill(seed.as_mut()).map_err(randomness)?;
                    if let Ok(key) = p256::SecretKey::from_slice(seed.as_ref()) {
                        break key;
                    }
                };
                let der = key.to_pkcs8_der().map_err(|e| encoding(&e))?;
                // SEC 1 uncompressed: 0x04, then x and y of 32 bytes each.
                let point = key.public_key().to_sec1_bytes();
                let (x, y) = match point.split_first() {
                    Some((4, coordinates)) if coordinates.len() == 64 => coordinates.split_at(32),
                    _ => return Err(Error::Internal("a P-256 public key not in uncompressed form".into())),
                };
                let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
                (
                    der.as_bytes().to_vec(),
                    vec![("crv", "P-256".to_owned()), ("kty", "EC".to_owned()), ("x", x), ("y", y)],
                )
            }
        };
        let kid = thumbprint(&members);
        let mut jwk = serde_json::Map::new();
        for (name, value) in members {
            jwk.insert(name.to_owned(), value.into());
        }
        jwk.insert("kid".into(), kid.clone().into());
        jwk.insert("alg".into(), algorithm.name().into());
        jwk.insert("use".into(), "sig".into());
        Ok(Self {
            kid,
            private_der: Zeroizing::new(private_der),
            public_jwk: serde_json::Value::Object(jwk).to_string(),
        })
    }
}

/// RFC 7638: SHA-256 of the required members, in order, without spaces.
fn thumbprint(sorted_members: &[(&str, String)]) -> String {
    let members: Vec<String> = sorted_members
        .iter()
        .map(|(name, value)| format!("\"{name}\":{}", serde_json::Value::from(value.as_str())))
        .collect();
    URL_SAFE_NO_PAD.encode(Sha256::digest(format!("{{{}}}", members.join(","))))
}

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenClaims {
    /// The issuer (`access_tokens.issuer`).
    pub iss: String,
    /// The user id.
    pub sub: String,
    /// The one service the token is for.
    pub aud: String,
    /// Expiry, in seconds since the Unix epoch.
    pub exp: i64,
    /// Issue time.
    pub iat: i64,
    /// Not valid before (the issue time).
    pub nbf: i64,
    /// A unique id, for verifiers that log or deny-list tokens.
    pub jti: String,
    /// The session the token was issued from.
    pub sid: String,
    /// The user's roles.
    pub roles: Vec<String>,
    /// The permissions the roles grant, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
    /// The admin acting as the user in an impersonation session (RFC 8693).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
}

/// The acting party of a delegated token (RFC 8693 `act`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The actor's user id.
    pub sub: String,
}

/// Signs `claims` with `key` (PKCS#8 DER of `algorithm`) under `kid`.
pub fn sign(claims: &AccessTokenClaims, algorithm: SigningAlgorithm, kid: &str, private_der: &[u8]) -> Result<String> {
    let mut header = jsonwebtoken::Header::new(algorithm.jsonwebtoken());
    header.typ = Some("at+jwt".into());
    header.kid = Some(kid.to_owned());
    let key = match algorithm {
        SigningAlgorithm::EdDsa => jsonwebtoken::EncodingKey::from_ed_der(private_der),
        SigningAlgorithm::Es256 => jsonwebtoken::EncodingKey::from_ec_der(private_der),
    };
    jsonwebtoken::encode(&header, claims, &key).map_err(|e| Error::Internal(format!("signing an access token: {e}")))
}

/// A random `jti`.
pub fn token_id() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("randomness: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// The stored keys, read at one moment: which signs, which are published,
/// whether a new one is due and which may go.
#[derive(Debug, Clone, Copy)]
pub struct Keyset<'a> {
    keys: &'a [StoredSigningKey],
}

impl<'a> Keyset<'a> {
    /// `keys` in any order.
    pub fn new(keys: &'a [StoredSigningKey]) -> Self {
        Self { keys }
    }

    /// The key that signs at `now`: the newest that has activated, or
    /// while none has, the oldest. (A replica whose clock is behind the one
    /// that made the first key must still sign with it.)
    pub fn signer(&self, now: Timestamp) -> Option<&'a StoredSigningKey> {
        let activated = self.keys.iter().filter(|key| key.activates_at <= now).max_by_key(|key| key.generation);
        activated.or_else(|| self.keys.iter().min_by_key(|key| key.generation))
    }

    /// The newest key of all, activated or not.
    fn newest(&self) -> Option<&'a StoredSigningKey> {
        self.keys.iter().max_by_key(|key| key.generation)
    }

    /// When `key` stopped signing: when the next key activated.
    fn retired_at(&self, key: &StoredSigningKey) -> Option<Timestamp> {
        self.keys
            .iter()
            .filter(|other| other.generation > key.generation)
            .min_by_key(|other| other.generation)
            .map(|next| next.activates_at)
    }

    /// Whether `key` may still verify a token at `now`: it signs, will
    /// sign, or signed a token that may not have expired yet (`ttl`).
    fn live(&self, key: &StoredSigningKey, now: Timestamp, ttl: Duration) -> bool {
        self.retired_at(key).is_none_or(|retired| retired.saturating_add(ttl) > now)
    }

    /// The keys a verifier needs at `now`, oldest first.
    pub fn published(&self, now: Timestamp, ttl: Duration) -> Vec<&'a StoredSigningKey> {
        let mut keys: Vec<_> = self.keys.iter().filter(|key| self.live(key, now, ttl)).collect();
        keys.sort_by_key(|key| key.generation);
        keys
    }

    /// Whether a new key should be made at `now`: there is none, or the
    /// newest has signed for `rotate_after`, or signs with another
    /// algorithm than configured. A key already waiting to activate is
    /// never replaced.
    pub fn rotation_due(&self, now: Timestamp, policy: &AccessTokenPolicy) -> bool {
        let Some(newest) = self.newest() else { return true };
        if newest.activates_at > now {
            return false;
        }
        newest.algorithm != policy.algorithm || newest.activates_at.saturating_add(policy.rotate_after) <= now
    }

    /// The next key's generation and when it activates: at once for the
    /// first key (nothing could have cached it), else `publish_ahead` on.
    pub fn next(&self, now: Timestamp, policy: &AccessTokenPolicy) -> (i64, Timestamp) {
        match self.newest() {
            None => (1, now),
            Some(newest) => (newest.generation + 1, now.saturating_add(policy.publish_ahead)),
        }
    }

    /// The lowest generation still live at `now`: every key below it may
    /// be deleted.
    pub fn oldest_live(&self, now: Timestamp, ttl: Duration) -> Option<i64> {
        self.published(now, ttl).first().map(|key| key.generation)
    }
}

/// The JWKS document of `keys`.
pub fn jwks_json(keys: &[&StoredSigningKey]) -> Result<String> {
    let keys = keys
        .iter()
        .map(|key| serde_json::from_str::<serde_json::Value>(&key.public_jwk))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Internal(format!("a stored JWK does not parse: {e}")))?;
    Ok(serde_json::json!({ "keys": keys }).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(generation: i64, activates_at: i64) -> StoredSigningKey {
        StoredSigningKey {
            kid: format!("k{generation}"),
            generation,
            algorithm: SigningAlgorithm::EdDsa,
            sealed_private_key: String::new(),
            public_jwk: "{}".into(),
            created_at: Timestamp::from_unix_millis(activates_at),
            activates_at: Timestamp::from_unix_millis(activates_at),
        }
    }

    fn at(millis: i64) -> Timestamp {
        Timestamp::from_unix_millis(millis)
    }

    fn policy() -> AccessTokenPolicy {
        AccessTokenPolicy {
            issuer: "https://keyport.test".into(),
            audiences: vec!["orders".into(), "billing".into()],
            rotate_after: Duration::from_millis(1000),
            publish_ahead: Duration::from_millis(100),
            ..AccessTokenPolicy::default()
        }
    }

    #[test]
    fn a_new_key_is_published_before_it_signs_and_the_old_one_until_its_tokens_expire() {
        let ttl = Duration::from_millis(500);
        let keys = [key(1, 0), key(2, 1100)];
        let set = Keyset::new(&keys);
        assert_eq!(set.signer(at(1099)).unwrap().generation, 1, "the next key is not signing yet");
        assert_eq!(set.published(at(1000), ttl).len(), 2, "but is published");
        assert_eq!(set.signer(at(1100)).unwrap().generation, 2);
        assert_eq!(set.published(at(1599), ttl).len(), 2, "the old key verifies its last tokens");
        assert_eq!(set.published(at(1600), ttl).iter().map(|k| k.generation).collect::<Vec<_>>(), [2]);
        assert_eq!(set.oldest_live(at(1600), ttl), Some(2));
        let first = [key(1, 1000)];
        assert_eq!(Keyset::new(&first).signer(at(999)).unwrap().generation, 1, "a clock behind the maker's");
    }

    #[test]
    fn rotation_is_due_by_age_or_algorithm_and_never_over_a_waiting_key() {
        let policy = policy();
        assert!(Keyset::new(&[]).rotation_due(at(0), &policy), "no key yet");
        assert_eq!(Keyset::new(&[]).next(at(5), &policy), (1, at(5)), "the first key signs at once");
        let keys = [key(1, 0)];
        assert!(!Keyset::new(&keys).rotation_due(at(999), &policy));
        assert!(Keyset::new(&keys).rotation_due(at(1000), &policy));
        assert_eq!(Keyset::new(&keys).next(at(1000), &policy), (2, at(1100)));
        let waiting = [key(1, 0), key(2, 1100)];
        assert!(!Keyset::new(&waiting).rotation_due(at(1050), &policy));
        let es256 = AccessTokenPolicy { algorithm: SigningAlgorithm::Es256, ..policy };
        assert!(Keyset::new(&keys).rotation_due(at(1), &es256), "a changed algorithm rotates at once");
    }

    #[test]
    fn audiences_default_to_the_first_and_refuse_others() {
        let policy = policy();
        assert_eq!(policy.audience("").unwrap(), "orders");
        assert_eq!(policy.audience("billing").unwrap(), "billing");
        assert!(matches!(policy.audience("Orders"), Err(Error::AudienceNotAllowed)));
        assert!(matches!(AccessTokenPolicy::default().audience(""), Err(Error::AccessTokensDisabled)));
    }

    #[test]
    fn keys_of_both_algorithms_sign_tokens_their_jwk_verifies() {
        for algorithm in [SigningAlgorithm::EdDsa, SigningAlgorithm::Es256] {
            let pair = NewKeyPair::generate(algorithm).unwrap();
            let claims = AccessTokenClaims {
                iss: "https://keyport.test".into(),
                sub: "user".into(),
                aud: "orders".into(),
                exp: 4_000_000_000,
                iat: 1,
                nbf: 1,
                jti: token_id().unwrap(),
                sid: "session".into(),
                roles: vec!["admin".into()],
                permissions: None,
                act: None,
            };
            let token = sign(&claims, algorithm, &pair.kid, &pair.private_der).unwrap();
            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(&pair.public_jwk).unwrap();
            let mut validation = jsonwebtoken::Validation::new(algorithm.jsonwebtoken());
            validation.set_audience(&["orders"]);
            validation.set_issuer(&["https://keyport.test"]);
            let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
            let decoded = jsonwebtoken::decode::<AccessTokenClaims>(&token, &key, &validation).unwrap();
            assert_eq!(decoded.claims, claims);
            assert_eq!(decoded.header.kid.as_deref(), Some(pair.kid.as_str()));
            assert_eq!(decoded.header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(jwk.common.key_id.as_deref(), Some(pair.kid.as_str()));
        }
    }

    #[test]
    fn the_kid_is_the_rfc_7638_thumbprint() {
        // RFC 8037, appendix A.3: the thumbprint of its example Ed25519 key.
        let members = [
            ("crv", "Ed25519".to_owned()),
            ("kty", "OKP".to_owned()),
            ("x", "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo".to_owned()),
        ];
        assert_eq!(thumbprint(&members), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }
}
