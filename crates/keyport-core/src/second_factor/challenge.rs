//! The challenge a sign-in answers instead of a session when the user has
//! a second factor: `kpc_` and 256 random bits, of which storage keeps the
//! SHA-256. It proves the first factor, so it is single-use, short-lived
//! and takes a bounded number of answers.

use std::fmt;

use super::one_time::OneTime;
use crate::{
    clock::Timestamp,
    error::{Error, Result},
    session::ClientInfo,
    user::UserId,
};

/// Prefix of every challenge.
pub const CHALLENGE_PREFIX: &str = "kpc_";
/// Answers, right or wrong, a challenge takes before it is void.
pub const MAX_CHALLENGE_ANSWERS: u32 = 5;

/// A challenge as handed to the client. Its secret never reaches storage.
pub struct ChallengeToken(OneTime);

impl ChallengeToken {
    /// A fresh challenge from the operating system's CSPRNG.
    pub fn generate() -> Result<Self> {
        OneTime::generate(CHALLENGE_PREFIX).map(Self)
    }

    /// Parses a challenge sent by a client; anything malformed is
    /// [`Error::SignInChallengeInvalid`], like an unknown one.
    pub fn parse(raw: &str) -> Result<Self> {
        OneTime::parse(CHALLENGE_PREFIX, raw).map(Self).ok_or(Error::SignInChallengeInvalid)
    }

    /// SHA-256 of the secret, as stored.
    pub fn hash(&self) -> [u8; 32] {
        self.0.hash()
    }

    /// The wire form. Handle with care: it stands for a passed first factor.
    pub fn expose(&self) -> String {
        self.0.expose()
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
    /// The WebAuthn state of the passkey request offered with it, when the
    /// user has passkeys.
    pub passkey_state: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_anything_else() {
        let token = ChallengeToken::generate().unwrap();
        let wire = token.expose();
        assert_eq!(wire.len(), OneTime::wire_len(CHALLENGE_PREFIX));
        assert_eq!(ChallengeToken::parse(&wire).unwrap().hash(), token.hash());
        let other = ChallengeToken::generate().unwrap().expose();
        for bad in [String::new(), "kpc_".into(), wire.replace("kpc_", "kpm_"), format!("{wire}A"), "x".repeat(10_000)]
        {
            assert!(matches!(ChallengeToken::parse(&bad), Err(Error::SignInChallengeInvalid)), "{bad:?}");
        }
        assert_ne!(ChallengeToken::parse(&other).unwrap().hash(), token.hash());
    }
}
