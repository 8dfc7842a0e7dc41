//! Backup codes: 10 single-use codes of 80 random bits each, shown once at
//! enrolment (and on regeneration), stored as SHA-256 only. 80 bits is out
//! of reach of a brute force against the hashes, so no slow hash is needed.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Codes in a set.
pub const BACKUP_CODE_COUNT: usize = 10;
/// Random bytes per code: 80 bits, 16 base32 characters.
const CODE_BYTES: usize = 10;
const CODE_CHARS: usize = 16;
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// A backup code as shown to the user: `xxxx-xxxx-xxxx-xxxx`.
#[derive(Clone, PartialEq, Eq)]
pub struct BackupCode(String);

impl BackupCode {
    /// A fresh set of [`BACKUP_CODE_COUNT`] codes.
    pub fn generate_set() -> Result<Vec<Self>> {
        (0..BACKUP_CODE_COUNT).map(|_| Self::generate()).collect()
    }

    fn generate() -> Result<Self> {
        let mut bytes = [0u8; CODE_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("randomness: {e}")))?;
        // 80 bits are exactly 16 groups of 5 bits.
        let bits = bytes.iter().fold(0u128, |acc, &b| (acc << 8) | u128::from(b));
        let chars: String = (0..CODE_CHARS)
            .map(|i| char::from(ALPHABET[((bits >> (5 * (CODE_CHARS - 1 - i))) & 31) as usize]))
            .collect();
        Ok(Self(chars))
    }

    /// The code for the user: four groups of four, dash-separated.
    pub fn display(&self) -> String {
        let groups: Vec<&str> = (0..4).map(|i| &self.0[i * 4..i * 4 + 4]).collect();
        groups.join("-")
    }

    /// SHA-256 of the code, as stored.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }
}

/// SHA-256 of a code as typed (case, spaces and dashes ignored); `None`
/// when it cannot be a backup code.
pub fn backup_code_hash(typed: &str) -> Option<[u8; 32]> {
    if typed.len() > 64 {
        return None;
    }
    let code: String =
        typed.chars().filter(|c| !c.is_whitespace() && *c != '-').map(|c| c.to_ascii_lowercase()).collect();
    (code.len() == CODE_CHARS && code.bytes().all(|b| ALPHABET.contains(&b))).then(|| BackupCode(code).hash())
}

impl fmt::Debug for BackupCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BackupCode(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_set_is_ten_distinct_codes_in_four_groups() {
        let set = BackupCode::generate_set().unwrap();
        assert_eq!(set.len(), BACKUP_CODE_COUNT);
        let shown: std::collections::HashSet<String> = set.iter().map(BackupCode::display).collect();
        assert_eq!(shown.len(), BACKUP_CODE_COUNT);
        for code in &shown {
            assert_eq!(code.len(), 19, "{code}");
            assert_eq!(code.matches('-').count(), 3, "{code}");
        }
    }

    #[test]
    fn typed_codes_hash_alike_whatever_their_case_spaces_and_dashes() {
        let code = &BackupCode::generate_set().unwrap()[0];
        let shown = code.display();
        for typed in [shown.clone(), shown.to_uppercase(), shown.replace('-', " "), shown.replace('-', "")] {
            assert_eq!(backup_code_hash(&typed), Some(code.hash()), "{typed}");
        }
    }

    #[test]
    fn refuses_what_cannot_be_a_code() {
        for bad in ["", "abcd-efgh-ijkl", "abcd-efgh-ijkl-mnop-q", "abcd-efgh-ijkl-mno1", &"a".repeat(10_000)] {
            assert_eq!(backup_code_hash(bad), None, "{bad:?}");
        }
    }
}
