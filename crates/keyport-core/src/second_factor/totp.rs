//! Authenticator-app codes (RFC 6238): HMAC-SHA-1, 30-second steps, six
//! digits, one step of clock drift either way.
//!
//! A code is accepted only for a step later than the last one the user
//! passed (storage enforces it atomically), so a code works once, and no
//! code of an earlier step works after it (the flaw of Keycloak
//! CVE-2024-7318).

use std::fmt;

use totp_rs::{Algorithm, Secret, Totp};

use crate::{
    clock::Timestamp,
    error::{Error, Result},
};

const STEP_SECS: u64 = 30;
const DIGITS: u8 = 6;
const SKEW_STEPS: u16 = 1;
/// Random bytes in a secret: 160 bits, as RFC 4226 recommends.
const SECRET_BYTES: usize = 20;

/// The index of a 30-second step since the Unix epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct TotpStep(pub i64);

/// An authenticator app's shared secret. Kept sealed at rest.
#[derive(Clone)]
pub struct TotpSecret(Vec<u8>);

impl TotpSecret {
    /// A fresh secret from the operating system's CSPRNG.
    pub fn generate() -> Result<Self> {
        let mut bytes = vec![0u8; SECRET_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("randomness: {e}")))?;
        Ok(Self(bytes))
    }

    /// Wraps bytes unsealed from storage.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// A secret from its base32 form (what [`TotpSecret::base32`] shows).
    pub fn from_base32(encoded: &str) -> Option<Self> {
        Secret::try_from_base32(encoded).ok().map(|secret| Self(secret.as_bytes().to_vec()))
    }

    /// The raw secret, for sealing.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret in base32 (no padding), for typing into an app by hand.
    pub fn base32(&self) -> String {
        Secret::from(self.0.clone()).to_base32()
    }

    /// The `otpauth://totp/...` URI an app scans, naming `account` at
    /// `issuer` (a `:`, which the format reserves, becomes `_`).
    pub fn otpauth_uri(&self, issuer: &str, account: &str) -> Result<String> {
        let label = |s: &str| s.replace(':', "_");
        self.totp(Some(label(issuer)), label(account))?
            .to_url()
            .map_err(|e| Error::Internal(format!("otpauth URI: {e}")))
    }

    /// The step `code` (six digits; spaces ignored) belongs to at `now`, one
    /// step of drift either way; `None` for a wrong or malformed code.
    pub fn matching_step(&self, code: &str, now: Timestamp) -> Option<TotpStep> {
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if code.len() != usize::from(DIGITS) || !code.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let totp = self.totp(None, String::new()).ok()?;
        let secs = u64::try_from(now.unix_millis().div_euclid(1000)).ok()?;
        // totp-rs compares codes in constant time.
        let step = totp.check(&code, secs)?;
        i64::try_from(step).ok().map(TotpStep)
    }

    /// The code of `step`: what the user's app shows during it. For tests
    /// that play the app.
    pub fn code_at(&self, step: TotpStep) -> Result<String> {
        let secs = u64::try_from(step.0).map_err(|_| Error::Internal("negative TOTP step".into()))? * STEP_SECS;
        Ok(self.totp(None, String::new())?.generate(secs).to_string())
    }

    fn totp(&self, issuer: Option<String>, account: String) -> Result<Totp> {
        totp_rs::Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(DIGITS)
            .with_skew(SKEW_STEPS)
            .with_step_duration(STEP_SECS)
            .with_secret(Secret::from(self.0.clone()))
            .with_issuer(issuer)
            .with_account_name(account)
            .build()
            .map_err(|e| Error::Internal(format!("TOTP parameters: {e}")))
    }
}

impl TotpStep {
    /// The step `now` falls in.
    pub fn at(now: Timestamp) -> Self {
        Self(now.unix_millis().div_euclid(1000).div_euclid(STEP_SECS as i64))
    }
}

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B's SHA-1 secret and its 8-digit vectors, cut to
    /// the last six digits (RFC 4226's truncation keeps the low digits).
    #[test]
    fn matches_the_rfc_test_vectors() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        for (secs, code) in
            [(59, "287082"), (1_111_111_109, "081804"), (1_234_567_890, "005924"), (2_000_000_000, "279037")]
        {
            let now = Timestamp::from_unix_millis(secs * 1000);
            assert_eq!(secret.matching_step(code, now), Some(TotpStep::at(now)), "{secs}");
            assert_eq!(secret.code_at(TotpStep::at(now)).unwrap(), code);
        }
    }

    #[test]
    fn accepts_one_step_of_drift_either_way_and_no_more() {
        let secret = TotpSecret::generate().unwrap();
        let now = Timestamp::from_unix_millis(1_700_000_000_000);
        let here = TotpStep::at(now);
        for offset in [-1, 0, 1] {
            let step = TotpStep(here.0 + offset);
            assert_eq!(secret.matching_step(&secret.code_at(step).unwrap(), now), Some(step), "{offset}");
        }
        for offset in [-3, -2, 2, 3] {
            let code = secret.code_at(TotpStep(here.0 + offset)).unwrap();
            // A far step's code may collide with a near one (1 in 10^6 per step).
            let near: Vec<String> = (-1..=1).map(|o| secret.code_at(TotpStep(here.0 + o)).unwrap()).collect();
            if !near.contains(&code) {
                assert_eq!(secret.matching_step(&code, now), None, "{offset}");
            }
        }
    }

    #[test]
    fn refuses_malformed_codes() {
        let secret = TotpSecret::generate().unwrap();
        let now = Timestamp::from_unix_millis(1_700_000_000_000);
        let code = secret.code_at(TotpStep::at(now)).unwrap();
        assert!(secret.matching_step(&format!("{} {}", &code[..3], &code[3..]), now).is_some(), "spaces are ignored");
        for bad in ["", "12345", "1234567", "abcdef", "１２３４５６", &"9".repeat(10_000)] {
            assert_eq!(secret.matching_step(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn the_uri_names_issuer_and_account_and_holds_the_secret() {
        let secret = TotpSecret::from_bytes(b"12345678901234567890".to_vec());
        let uri = secret.otpauth_uri("Keyport", "ada@example.com").unwrap();
        assert!(uri.starts_with("otpauth://totp/Keyport:ada%40example.com?"), "{uri}");
        assert!(uri.contains("secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), "{uri}");
        assert!(uri.contains("issuer=Keyport"), "{uri}");
        assert_eq!(secret.base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(TotpSecret::from_base32(&secret.base32()).map(|s| s.0), Some(secret.0.clone()));
        assert!(secret.otpauth_uri("A:B", "x:y@example.com").is_ok(), "colons are replaced");
    }
}
