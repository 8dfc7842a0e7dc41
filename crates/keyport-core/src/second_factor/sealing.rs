//! Secrets sealed at rest (TOTP secrets, access-token signing keys) with
//! XChaCha20-Poly1305 under a key from the
//! configuration, bound to their user (the user id is the associated data,
//! so a sealed secret copied to another user's row does not open).
//!
//! A sealed secret names its key by an id derived from the key, so keys can
//! rotate: the current key seals, and it and the previous keys open.

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD, engine::general_purpose::URL_SAFE_NO_PAD};
use chacha20poly1305::{
    Key, XChaCha20Poly1305, XNonce,
    aead::{Aead, KeyInit, Payload},
};
use sha2::{Digest, Sha256};

use super::TotpSecret;
use crate::{
    error::{Error, Result},
    user::UserId,
};

const VERSION: &str = "v1";
const NONCE_BYTES: usize = 24;

/// One 256-bit sealing key.
#[derive(Clone)]
pub struct FactorKey {
    id: String,
    key: Key,
}

impl FactorKey {
    /// A key from its configured form: 32 bytes in standard base64.
    pub fn from_base64(encoded: &str) -> std::result::Result<Self, String> {
        let bytes = STANDARD
            .decode(encoded.trim())
            .map_err(|_| "a second-factor key must be 32 bytes in base64 (`openssl rand -base64 32`)".to_owned())?;
        Self::from_bytes(&bytes)
    }

    /// A key from 32 raw bytes.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, String> {
        if bytes.len() != 32 {
            return Err(format!("a second-factor key must be 32 bytes, not {}", bytes.len()));
        }
        let digest = Sha256::digest(bytes);
        let id = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self { id, key: *Key::from_slice(bytes) })
    }

    /// A fresh random key, in its configured form (for a key file).
    pub fn generate_base64() -> Result<String> {
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("randomness: {e}")))?;
        Ok(STANDARD.encode(bytes))
    }

    /// The key's public id (the first 8 hex digits of its SHA-256), as
    /// written in each sealed secret.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Debug for FactorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FactorKey({})", self.id)
    }
}

/// The current key and the previous ones.
#[derive(Debug, Clone)]
pub struct FactorKeys {
    current: FactorKey,
    previous: Vec<FactorKey>,
}

/// A sealed TOTP secret, as stored: `v1.<key id>.<nonce and ciphertext>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret(pub String);

impl FactorKeys {
    /// `current` seals; it and `previous` open.
    pub fn new(current: FactorKey, previous: Vec<FactorKey>) -> Self {
        Self { current, previous }
    }

    /// Seals `secret` for `user`.
    pub fn seal(&self, secret: &TotpSecret, user: UserId) -> Result<SealedSecret> {
        self.seal_bytes(secret.as_bytes(), user.0.as_bytes()).map(SealedSecret)
    }

    /// Seals `plain`, bound to `context` (the associated data: the same
    /// context must be given to open it), as `v1.<key id>.<body>`. Also
    /// seals the access-token signing keys, bound to their `kid`.
    pub fn seal_bytes(&self, plain: &[u8], context: &[u8]) -> Result<String> {
        let mut nonce = [0u8; NONCE_BYTES];
        getrandom::fill(&mut nonce).map_err(|e| Error::Internal(format!("randomness: {e}")))?;
        let cipher = XChaCha20Poly1305::new(&self.current.key);
        let payload = Payload { msg: plain, aad: context };
        let sealed = cipher
            .encrypt(XNonce::from_slice(&nonce), payload)
            .map_err(|_| Error::Internal("sealing failed".into()))?;
        let mut body = nonce.to_vec();
        body.extend_from_slice(&sealed);
        Ok(format!("{VERSION}.{}.{}", self.current.id, URL_SAFE_NO_PAD.encode(body)))
    }

    /// Whether `sealed` was sealed with the current key (else it is due to be
    /// sealed again: [`FactorKeys::seal`]).
    pub fn is_current(&self, sealed: &SealedSecret) -> bool {
        sealed.0.split('.').nth(1) == Some(self.current.id.as_str())
    }

    /// Opens `sealed` for `user`. A missing key (rotated out too early) or a
    /// secret sealed for someone else is an internal error: it is logged,
    /// never shown.
    pub fn open(&self, sealed: &SealedSecret, user: UserId) -> Result<TotpSecret> {
        self.open_bytes(&sealed.0, user.0.as_bytes()).map(|secret| TotpSecret::from_bytes(secret.to_vec()))
    }

    /// Opens what [`FactorKeys::seal_bytes`] sealed with `context`; wiped
    /// when dropped.
    pub fn open_bytes(&self, sealed: &str, context: &[u8]) -> Result<zeroize::Zeroizing<Vec<u8>>> {
        let broken = |why: &str| Error::Internal(format!("cannot open a sealed secret: {why}"));
        let mut parts = sealed.splitn(3, '.');
        let (Some(VERSION), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(broken("unknown format"));
        };
        let key = std::iter::once(&self.current)
            .chain(&self.previous)
            .find(|key| key.id == id)
            .ok_or_else(|| broken(&format!("key {id} is not configured")))?;
        let body = URL_SAFE_NO_PAD.decode(body).map_err(|_| broken("not base64"))?;
        if body.len() <= NONCE_BYTES {
            return Err(broken("too short"));
        }
        let (nonce, sealed) = body.split_at(NONCE_BYTES);
        let payload = Payload { msg: sealed, aad: context };
        XChaCha20Poly1305::new(&key.key)
            .decrypt(XNonce::from_slice(nonce), payload)
            .map(zeroize::Zeroizing::new)
            .map_err(|_| broken("authentication failed"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Timestamp;

    fn key() -> FactorKey {
        FactorKey::from_base64(&FactorKey::generate_base64().unwrap()).unwrap()
    }

    #[test]
    fn opens_what_it_sealed_for_the_same_user_only() {
        let keys = FactorKeys::new(key(), Vec::new());
        let secret = TotpSecret::generate().unwrap();
        let (ada, bob) =
            (UserId::generate(Timestamp::from_unix_millis(1)), UserId::generate(Timestamp::from_unix_millis(2)));
        let sealed = keys.seal(&secret, ada).unwrap();
        assert!(!sealed.0.contains(&secret.base32()));
        assert_eq!(keys.open(&sealed, ada).unwrap().as_bytes(), secret.as_bytes());
        assert!(keys.open(&sealed, bob).is_err(), "bound to its user");
        assert_ne!(keys.seal(&secret, ada).unwrap(), sealed, "a fresh nonce each time");
    }

    #[test]
    fn rotated_keys_still_open_and_unknown_or_tampered_ones_do_not() {
        let (old, new) = (key(), key());
        let user = UserId::generate(Timestamp::from_unix_millis(1));
        let secret = TotpSecret::generate().unwrap();
        let sealed = FactorKeys::new(old.clone(), Vec::new()).seal(&secret, user).unwrap();
        let rotated = FactorKeys::new(new.clone(), vec![old]);
        assert_eq!(rotated.open(&sealed, user).unwrap().as_bytes(), secret.as_bytes());
        assert!(!rotated.is_current(&sealed), "sealed with the previous key");
        assert!(rotated.is_current(&rotated.seal(&secret, user).unwrap()));
        assert!(FactorKeys::new(new, Vec::new()).open(&sealed, user).is_err(), "its key is gone");
        let mut tampered = sealed.0.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(rotated.open(&SealedSecret(tampered), user).is_err());
        for bad in ["", "v1", "v2.x.y", "v1.00000000.", "v1.00000000.!!"] {
            assert!(rotated.open(&SealedSecret(bad.into()), user).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert!(FactorKey::from_base64("not base64!").is_err());
        assert!(FactorKey::from_base64(&STANDARD.encode([0u8; 16])).is_err());
        assert!(FactorKey::from_base64(&STANDARD.encode([7u8; 32])).is_ok());
    }
}
