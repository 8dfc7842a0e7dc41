//! Session tokens: `kp_<id>.<secret>`.
//!
//! The id (128 random bits) finds the session; the secret (256 random bits)
//! proves possession. Only SHA-256 of the secret is stored, and it is
//! compared in constant time, so a leaked database cannot be replayed as
//! tokens and a timing side channel reveals nothing. The fixed `kp_` prefix
//! lets secret scanners spot leaked tokens.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::{Error, Result};

/// Prefix of every session token.
pub const TOKEN_PREFIX: &str = "kp_";
const ID_BYTES: usize = 16;
const SECRET_BYTES: usize = 32;
/// Length of an encoded session id.
pub const SESSION_ID_LEN: usize = 22;
const SECRET_LEN: usize = 43;
/// Exact length of a well-formed token; anything else is rejected unread.
pub const TOKEN_LEN: usize = TOKEN_PREFIX.len() + SESSION_ID_LEN + 1 + SECRET_LEN;

/// Public identifier of a session (the lookup half of a token).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(String);

impl SessionId {
    /// Validates a session id sent by a client.
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.is_empty() {
            return Err(Error::invalid("session_id", "must not be empty"));
        }
        if !is_encoded(raw, SESSION_ID_LEN) {
            return Err(Error::invalid("session_id", "is not a session id"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// Wraps an id read back from storage.
    pub fn from_trusted(id: String) -> Self {
        Self(id)
    }

    /// The encoded id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// SHA-256 of a session secret: what storage keeps instead of the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash(pub [u8; 32]);

impl SecretHash {
    /// SHA-256 of `secret`.
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Constant-time equality, so a mismatch takes as long as a match.
    pub fn verify(&self, other: &SecretHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretHash(..)")
    }
}

/// A session token as handed to a client. Its secret never reaches storage.
pub struct SessionToken {
    id: SessionId,
    secret: String,
}

impl SessionToken {
    /// A fresh token from the operating system's CSPRNG.
    pub fn generate() -> Result<Self> {
        let (id, secret) = random_parts()?;
        Ok(Self { id: SessionId(id), secret })
    }

    /// Parses a token sent by a client. Any deviation from the exact format
    /// is [`Error::Unauthenticated`]: a bad token tells the caller nothing.
    pub fn parse(raw: &str) -> Result<Self> {
        let (id, secret) = split_parts(raw, TOKEN_PREFIX).ok_or(Error::Unauthenticated)?;
        Ok(Self { id: SessionId(id.to_owned()), secret: secret.to_owned() })
    }

    /// The session this token opens.
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// SHA-256 of the secret, as stored.
    pub fn secret_hash(&self) -> SecretHash {
        SecretHash::of(&self.secret)
    }

    /// The token's wire form. Handle with care: it is a bearer credential.
    pub fn expose(&self) -> String {
        format!("{TOKEN_PREFIX}{}.{}", self.id, self.secret)
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionToken").field("id", &self.id).finish_non_exhaustive()
    }
}

/// A fresh random id (128 bits) and secret (256 bits), encoded: the two
/// halves of every `<prefix><id>.<secret>` credential.
pub(crate) fn random_parts() -> Result<(String, String)> {
    let mut id = [0u8; ID_BYTES];
    let mut secret = [0u8; SECRET_BYTES];
    getrandom::fill(&mut id).map_err(|e| Error::Internal(format!("randomness: {e}")))?;
    getrandom::fill(&mut secret).map_err(|e| Error::Internal(format!("randomness: {e}")))?;
    Ok((URL_SAFE_NO_PAD.encode(id), URL_SAFE_NO_PAD.encode(secret)))
}

/// The id and secret of `<prefix><id>.<secret>`, if `raw` is exactly that.
pub(crate) fn split_parts<'a>(raw: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    if raw.len() != prefix.len() + SESSION_ID_LEN + 1 + SECRET_LEN {
        return None;
    }
    let (id, secret) = raw.strip_prefix(prefix)?.split_once('.')?;
    (is_encoded(id, SESSION_ID_LEN) && is_encoded(secret, SECRET_LEN)).then_some((id, secret))
}

/// Whether `s` is `len` characters of unpadded base64url that decode cleanly.
pub(crate) fn is_encoded(s: &str, len: usize) -> bool {
    s.len() == len
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        && URL_SAFE_NO_PAD.decode(s).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_back() {
        let token = SessionToken::generate().unwrap();
        let wire = token.expose();
        assert_eq!(wire.len(), TOKEN_LEN);
        assert!(wire.starts_with("kp_"));
        let parsed = SessionToken::parse(&wire).unwrap();
        assert_eq!(parsed.id(), token.id());
        assert!(parsed.secret_hash().verify(&token.secret_hash()));
    }

    #[test]
    fn tokens_are_unique() {
        let a = SessionToken::generate().unwrap().expose();
        let b = SessionToken::generate().unwrap().expose();
        assert_ne!(a, b);
    }

    #[test]
    fn malformed_tokens_are_unauthenticated() {
        let good = SessionToken::generate().unwrap().expose();
        let cases = [
            String::new(),
            "kp_".to_owned(),
            good[..good.len() - 1].to_owned(),
            format!("{good}A"),
            good.replacen("kp_", "xx_", 1),
            good.replacen('.', "!", 1),
            good.replacen('.', "A", 1),
            format!("kp_{}", "=".repeat(TOKEN_LEN - 3)),
            "x".repeat(10_000),
        ];
        for bad in cases {
            assert!(matches!(SessionToken::parse(&bad), Err(Error::Unauthenticated)), "{bad:?}");
        }
    }

    #[test]
    fn a_different_secret_does_not_verify() {
        let token = SessionToken::generate().unwrap();
        let other = SessionToken::generate().unwrap();
        assert!(!token.secret_hash().verify(&other.secret_hash()));
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let token = SessionToken::generate().unwrap();
        let wire = token.expose();
        let secret = wire.split_once('.').unwrap().1;
        assert!(!format!("{token:?}").contains(secret));
    }

    #[test]
    fn session_ids_are_validated() {
        let token = SessionToken::generate().unwrap();
        assert!(SessionId::parse(token.id().as_str()).is_ok());
        assert!(SessionId::parse("").is_err());
        assert!(SessionId::parse("short").is_err());
        assert!(SessionId::parse(&"*".repeat(SESSION_ID_LEN)).is_err());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// A client's token either is exactly the format or is
        /// `Unauthenticated`: never a panic, never another error.
        #[test]
        fn any_string_parses_or_is_unauthenticated(raw in "\\PC{0,100}|kp_[A-Za-z0-9_.=+/-]{0,80}") {
            match SessionToken::parse(&raw) {
                Ok(token) => prop_assert_eq!(token.expose(), raw),
                Err(error) => prop_assert!(matches!(error, Error::Unauthenticated), "{error:?}"),
            }
        }

        /// Changing any one character of a real token makes it another
        /// token or no token: never the same session with the same secret.
        /// Every position of each case is changed in turn, so that a
        /// character the parser or the hash ignored is found in one case.
        #[test]
        fn a_changed_character_is_another_token(
            replacements in proptest::collection::vec(
                prop_oneof![3 => "[A-Za-z0-9_-]", 1 => "[ -~]"], TOKEN_LEN,
            ),
        ) {
            let token = SessionToken::generate().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let wire: Vec<char> = token.expose().chars().collect();
            prop_assert_eq!(wire.len(), TOKEN_LEN);
            for (index, replacement) in replacements.iter().enumerate() {
                let new = replacement.chars().next().unwrap_or('A');
                if wire[index] == new {
                    continue;
                }
                let mut changed = wire.clone();
                changed[index] = new;
                let changed: String = changed.into_iter().collect();
                if let Ok(parsed) = SessionToken::parse(&changed) {
                    prop_assert!(
                        parsed.id() != token.id() || !parsed.secret_hash().verify(&token.secret_hash()),
                        "{changed} opens the same session"
                    );
                }
            }
        }
    }
}
