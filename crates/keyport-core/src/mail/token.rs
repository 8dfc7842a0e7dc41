//! One-time email tokens: `kpm_<secret>`.
//!
//! The secret is 256 random bits. Only its SHA-256 is stored, as the row's
//! key: a token is found by its hash, which reveals nothing about other
//! tokens, and a leaked table cannot be turned back into links. The `kpm_`
//! prefix lets secret scanners spot leaked links.

use std::fmt;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

use crate::{
    clock::Timestamp,
    email::Email,
    error::{Error, Result},
    user::UserId,
};

/// Prefix of every email token.
pub const MAIL_TOKEN_PREFIX: &str = "kpm_";
const SECRET_BYTES: usize = 32;
/// Exact length of a well-formed token.
pub const MAIL_TOKEN_LEN: usize = MAIL_TOKEN_PREFIX.len() + 43;

/// What a token lets its holder do. A token of one purpose is never
/// accepted for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TokenPurpose {
    /// Mark the address it was sent to as verified.
    VerifyEmail,
    /// Set a new password.
    ResetPassword,
    /// Move the account to the address the token was sent to.
    ChangeEmail,
    /// Set a first password (a mailed code, keyed by the session that asked).
    SetPassword,
    /// Mark the address verified with a mailed code, keyed by the session
    /// that asked (the link's token is [`TokenPurpose::VerifyEmail`]).
    VerifyEmailCode,
}

impl TokenPurpose {
    /// Stable name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::ResetPassword => "reset_password",
            Self::ChangeEmail => "change_email",
            Self::SetPassword => "set_password",
            Self::VerifyEmailCode => "verify_email_code",
        }
    }

    /// Reads a name written by [`TokenPurpose::as_str`].
    pub fn parse(name: &str) -> Option<Self> {
        [Self::VerifyEmail, Self::ResetPassword, Self::ChangeEmail, Self::SetPassword, Self::VerifyEmailCode]
            .into_iter()
            .find(|purpose| purpose.as_str() == name)
    }
}

/// A token as it appears in a mail. Its secret never reaches storage.
pub struct MailToken(String);

impl MailToken {
    /// A fresh token from the operating system's CSPRNG.
    pub fn generate() -> Result<Self> {
        let mut secret = [0u8; SECRET_BYTES];
        getrandom::fill(&mut secret).map_err(|e| Error::Internal(format!("randomness: {e}")))?;
        Ok(Self(URL_SAFE_NO_PAD.encode(secret)))
    }

    /// Parses a token sent by a client. Any deviation from the format is
    /// [`Error::EmailTokenInvalid`], the same answer as for an unknown token.
    pub fn parse(raw: &str) -> Result<Self> {
        let secret = raw.strip_prefix(MAIL_TOKEN_PREFIX).filter(|_| raw.len() == MAIL_TOKEN_LEN);
        match secret {
            Some(secret)
                if secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                    && URL_SAFE_NO_PAD.decode(secret).is_ok() =>
            {
                Ok(Self(secret.to_owned()))
            }
            _ => Err(Error::EmailTokenInvalid),
        }
    }

    /// SHA-256 of the token, as stored.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// The token's wire form. Handle with care: it is a credential.
    pub fn expose(&self) -> String {
        format!("{MAIL_TOKEN_PREFIX}{}", self.0)
    }
}

impl fmt::Debug for MailToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MailToken(..)")
    }
}

/// A stored email token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailToken {
    /// SHA-256 of the token.
    pub hash: [u8; 32],
    /// What it is for.
    pub purpose: TokenPurpose,
    /// Whose it is.
    pub user_id: UserId,
    /// The address it was sent to: it is void once the user's email differs
    /// (for a change of address: the new address, to move to).
    pub email: Email,
    /// When it was issued.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_tokens_parse_back_to_the_same_hash() {
        let token = MailToken::generate().unwrap();
        let wire = token.expose();
        assert_eq!(wire.len(), MAIL_TOKEN_LEN);
        assert_eq!(MailToken::parse(&wire).unwrap().hash(), token.hash());
        assert_ne!(MailToken::generate().unwrap().hash(), token.hash());
    }

    #[test]
    fn malformed_tokens_are_invalid() {
        let good = MailToken::generate().unwrap().expose();
        for bad in [
            String::new(),
            "kpm_".to_owned(),
            good[..good.len() - 1].to_owned(),
            format!("{good}A"),
            good.replacen("kpm_", "kp_x", 1),
            format!("kpm_{}", "*".repeat(43)),
            "x".repeat(100_000),
        ] {
            assert!(matches!(MailToken::parse(&bad), Err(Error::EmailTokenInvalid)), "{bad:?}");
        }
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let token = MailToken::generate().unwrap();
        assert!(!format!("{token:?}").contains(&token.expose()[4..]));
    }

    #[test]
    fn purposes_round_trip_by_name() {
        for purpose in [TokenPurpose::VerifyEmail, TokenPurpose::ResetPassword] {
            assert_eq!(TokenPurpose::parse(purpose.as_str()), Some(purpose));
        }
        assert_eq!(TokenPurpose::parse("sign_in"), None);
    }
}
