//! Email sign-in: a started sign-in waiting for its link or its code.
//!
//! `StartEmailSignIn` hands the web app a binding (256 random bits) to keep
//! in a cookie of the browser that asked, and mails a link (a [`MailToken`])
//! and a six-digit code. Either finishes the sign-in, once, and only
//! together with the binding: a link opened in another browser, or a code
//! typed into one, is refused. Storage keeps SHA-256 of the binding and the
//! link, and of the binding with the code, so a copy of the table neither
//! finishes a sign-in nor gives the codes away to a brute force.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::MailToken;
use crate::{
    clock::Timestamp,
    email::Email,
    error::{Error, Result},
};

/// Digits in a sign-in code.
pub const CODE_DIGITS: usize = 6;
/// Proofs (links or codes) a started sign-in accepts before it is void.
pub const MAX_ATTEMPTS: u32 = 5;

/// A started email sign-in, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSignIn {
    /// SHA-256 of the binding kept by the browser.
    pub binding_hash: [u8; 32],
    /// The address signing in.
    pub email: Email,
    /// SHA-256 of the link's token.
    pub link_hash: [u8; 32],
    /// SHA-256 of the binding and the code.
    pub code_hash: [u8; 32],
    /// Proofs tried so far.
    pub attempts: u32,
    /// When it started.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// What finishes an email sign-in.
#[derive(Debug, Clone, Copy)]
pub enum SignInProof<'a> {
    /// The `token` of the mailed link.
    Link(&'a str),
    /// The mailed code, as typed (spaces are ignored).
    Code(&'a str),
}

/// A fresh six-digit code, uniform over `000000`..=`999999`.
pub fn new_code() -> Result<String> {
    const RANGE: u32 = 1_000_000;
    // Rejection sampling: the largest multiple of RANGE below 2^32 keeps
    // every code equally likely.
    const LIMIT: u32 = u32::MAX - u32::MAX % RANGE;
    loop {
        let mut bytes = [0u8; 4];
        getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("randomness: {e}")))?;
        let n = u32::from_le_bytes(bytes);
        if n < LIMIT {
            return Ok(format!("{:0width$}", n % RANGE, width = CODE_DIGITS));
        }
    }
}

/// SHA-256 of the binding and the code, as stored.
pub fn code_hash(binding: &str, code: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(binding.as_bytes());
    hasher.update(b"\0");
    hasher.update(code.as_bytes());
    hasher.finalize().into()
}

/// SHA-256 of a session's id and a code: a code mailed to a signed-in user
/// that works in that session only (verification, first password).
pub fn session_code_hash(session_id: &str, code: &str) -> [u8; 32] {
    let typed: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    let mut hasher = Sha256::new();
    hasher.update(session_id.as_bytes());
    hasher.update(b"\0");
    hasher.update(typed.as_bytes());
    hasher.finalize().into()
}

impl EmailSignIn {
    /// Whether `proof` (with the `binding` it came with) finishes this
    /// sign-in; compared in constant time.
    pub fn accepts(&self, binding: &str, proof: SignInProof<'_>) -> bool {
        match proof {
            SignInProof::Link(token) => {
                MailToken::parse(token).is_ok_and(|token| bool::from(token.hash().ct_eq(&self.link_hash)))
            }
            SignInProof::Code(typed) => {
                let code: String = typed.chars().filter(|c| !c.is_whitespace()).collect();
                code.len() == CODE_DIGITS
                    && code.bytes().all(|b| b.is_ascii_digit())
                    && bool::from(code_hash(binding, &code).ct_eq(&self.code_hash))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn started(binding: &str, token: &MailToken, code: &str) -> EmailSignIn {
        EmailSignIn {
            binding_hash: crate::oauth::secret_hash(binding),
            email: Email::parse("email", "ann@example.com").unwrap(),
            link_hash: token.hash(),
            code_hash: code_hash(binding, code),
            attempts: 0,
            created_at: Timestamp::from_unix_millis(0),
            expires_at: Timestamp::from_unix_millis(1),
        }
    }

    #[test]
    fn codes_are_six_digits() {
        for _ in 0..1_000 {
            let code = new_code().unwrap();
            assert_eq!(code.len(), 6);
            assert!(code.bytes().all(|b| b.is_ascii_digit()), "{code}");
        }
    }

    #[test]
    fn the_link_or_the_code_finishes_only_with_its_binding() {
        let token = MailToken::generate().unwrap();
        let sign_in = started("binding-a", &token, "042137");
        assert!(sign_in.accepts("binding-a", SignInProof::Link(&token.expose())));
        assert!(sign_in.accepts("binding-a", SignInProof::Code("042137")));
        assert!(sign_in.accepts("binding-a", SignInProof::Code(" 042 137 ")));
        // Another browser's binding makes the code another hash.
        assert!(!sign_in.accepts("binding-b", SignInProof::Code("042137")));
        for bad in ["", "42137", "0421370", "04213a", "042138", "０４２１３７"] {
            assert!(!sign_in.accepts("binding-a", SignInProof::Code(bad)), "{bad:?}");
        }
        let other = MailToken::generate().unwrap();
        for bad in [other.expose(), String::new(), "kpm_x".into(), "x".repeat(10_000)] {
            assert!(!sign_in.accepts("binding-a", SignInProof::Link(&bad)));
        }
    }
}
