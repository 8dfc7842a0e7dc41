//! The challenge a sign-in answers instead of a session when the user has
//! a second factor: `kpc_` and 256 random bits, of which storage keeps the
//! SHA-256. It proves the first factor, so it is single-use, short-lived
//! and takes a bounded number of answers.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::{
    clock::Timestamp,
    error::{Error, Result},
    session::ClientInfo,
    user::UserId,
};

/// Prefix of every challenge.
pub const CHALLENGE_PREFIX: &str = "kpc_";
const SECRET_BYTES: usize = 32;
const CHALLENGE_LEN: usize = CHALLENGE_PREFIX.len() + 43;
/// Answers, right or wrong, a challenge takes before it is void.
pub const MAX_CHALLENGE_ANSWERS: u32 = 5;

/// A challenge as handed to the client. Its secret never reaches storage.
pub struct ChallengeToken(String);

impl ChallengeToken {
    /// A fresh challenge from the operating system's CSPRNG.
    pub fn generate() -> Result<Self> {
        let mut secret = [0u8; SECRET_BYTES];
        getrandom::fill(&mut secret).map_err(|e| Error::Internal(format!("randomness: {e}")))?;
        Ok(Self(URL_SAFE_NO_PAD.encode(secret)))
    }

    /// Parses a challenge sent by a client; anything malformed is
    /// [`Error::SignInChallengeInvalid`], like an unknown one.
    pub fn parse(raw: &str) -> Result<Self> {
        let secret = raw.strip_prefix(CHALLENGE_PREFIX).filter(|_| raw.len() == CHALLENGE_LEN);
        match secret {
            Some(secret) if URL_SAFE_NO_PAD.decode(secret).is_ok_and(|bytes| bytes.len() == SECRET_BYTES) => {
                Ok(Self(secret.to_owned()))
            }
            _ => Err(Error::SignInChallengeInvalid),
        }
    }

    /// SHA-256 of the secret, as stored.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// The wire form. Handle with care: it stands for a passed first factor.
    pub fn expose(&self) -> String {
        format!("{CHALLENGE_PREFIX}{}", self.0)
    }
}

impl fmt::Debug for ChallengeToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChallengeToken(..)")
    }
}

/// A pending sign-in challenge, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignInChallenge {
    /// SHA-256 of the challenge's secret.
    pub hash: [u8; 32],
    /// Who passed the first factor.
    pub user_id: UserId,
    /// How: `password`, `oauth:<provider>` or `email`, for the audit trail.
    pub first_factor: String,
    /// Answers taken so far.
    pub attempts: u32,
    /// Where the first factor was passed from; the session gets it.
    pub client: ClientInfo,
    /// When the first factor was passed.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_anything_else() {
        let token = ChallengeToken::generate().unwrap();
        let wire = token.expose();
        assert_eq!(wire.len(), CHALLENGE_LEN);
        assert_eq!(ChallengeToken::parse(&wire).unwrap().hash(), token.hash());
        let other = ChallengeToken::generate().unwrap().expose();
        for bad in [String::new(), "kpc_".into(), wire.replace("kpc_", "kpm_"), format!("{wire}A"), "x".repeat(10_000)]
        {
            assert!(matches!(ChallengeToken::parse(&bad), Err(Error::SignInChallengeInvalid)), "{bad:?}");
        }
        assert_ne!(ChallengeToken::parse(&other).unwrap().hash(), token.hash());
    }
}
