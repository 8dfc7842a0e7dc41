//! A single-use secret handed to a client with a prefix that names its
//! kind (`kpc_` challenge, `kpk_` passkey ceremony): 256 random bits, of
//! which storage keeps only the SHA-256.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

const SECRET_BYTES: usize = 32;
const ENCODED_LEN: usize = 43;

/// The secret part of a prefixed one-time token.
pub(super) struct OneTime {
    prefix: &'static str,
    secret: String,
}

impl OneTime {
    /// A fresh secret from the operating system's CSPRNG.
    pub(super) fn generate(prefix: &'static str) -> Result<Self> {
        let mut secret = [0u8; SECRET_BYTES];
        getrandom::fill(&mut secret).map_err(|e| Error::Internal(format!("randomness: {e}")))?;
        Ok(Self { prefix, secret: URL_SAFE_NO_PAD.encode(secret) })
    }

    /// Parses a token sent by a client; `None` unless it is `prefix` and 43
    /// base64url characters of 32 bytes.
    pub(super) fn parse(prefix: &'static str, raw: &str) -> Option<Self> {
        let secret = raw.strip_prefix(prefix).filter(|secret| secret.len() == ENCODED_LEN)?;
        URL_SAFE_NO_PAD.decode(secret).ok().filter(|bytes| bytes.len() == SECRET_BYTES)?;
        Some(Self { prefix, secret: secret.to_owned() })
    }

    /// SHA-256 of the secret, as stored.
    pub(super) fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.secret.as_bytes()).into()
    }

    /// The wire form.
    pub(super) fn expose(&self) -> String {
        format!("{}{}", self.prefix, self.secret)
    }

    /// The wire form's length for `prefix`.
    #[cfg(test)]
    pub(super) fn wire_len(prefix: &str) -> usize {
        prefix.len() + ENCODED_LEN
    }
}
