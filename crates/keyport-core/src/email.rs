//! Email addresses: one normal form, so that `Ann@Example.com` and
//! `ann@example.com ` are the same account.

use std::fmt;

use unicode_normalization::UnicodeNormalization;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use crate::error::{Error, Result};

/// Longest address accepted, in bytes (RFC 5321 path limit less the brackets).
pub const MAX_EMAIL_BYTES: usize = 254;
const MAX_LOCAL_PART_BYTES: usize = 64;

/// The start of an address in the normal form [`Email::parse`] gives
/// (trimmed, NFKC, lower-cased), for matching stored addresses by prefix.
pub fn normalize_prefix(raw: &str) -> String {
    raw.trim().nfkc().flat_map(char::to_lowercase).collect()
}

/// A syntactically valid, normalised email address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Validates and normalises `raw`: trimmed, NFKC, lower-cased.
    ///
    /// Fails with a field violation on `field` when the address is empty,
    /// too long, or not of the form `local@domain.tld`.
    pub fn parse(field: &'static str, raw: &str) -> Result<Self> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err(Error::invalid(field, "must not be empty"));
        }
        // Invisible format characters (zero-width space, soft hyphen, bidi
        // controls) would make `ka\u{200b}te@` an account apart from `kate@`
        // that looks the same. NFKC keeps most of them, so refuse them.
        if raw.chars().any(|c| c.general_category() == GeneralCategory::Format) {
            return Err(Error::invalid(field, "must not contain invisible characters"));
        }
        // Check before normalising so an oversized input costs nothing.
        if raw.len() > MAX_EMAIL_BYTES * 4 {
            return Err(Error::invalid(field, "must be at most 254 bytes"));
        }
        let normalised: String = raw.nfkc().flat_map(char::to_lowercase).collect();
        if normalised.len() > MAX_EMAIL_BYTES {
            return Err(Error::invalid(field, "must be at most 254 bytes"));
        }
        let Some((local, domain)) = normalised.rsplit_once('@') else {
            return Err(Error::invalid(field, "must be an email address"));
        };
        if !is_valid_local_part(local) || !is_valid_domain(domain) {
            return Err(Error::invalid(field, "must be an email address"));
        }
        Ok(Self(normalised))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps an address read back from storage, where it was stored normalised.
    pub fn from_trusted(normalised: String) -> Self {
        Self(normalised)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_valid_local_part(local: &str) -> bool {
    !local.is_empty()
        && local.len() <= MAX_LOCAL_PART_BYTES
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local.chars().all(|c| {
            !c.is_whitespace()
                && !c.is_control()
                && !matches!(c, '@' | '"' | '(' | ')' | ',' | ':' | ';' | '<' | '>' | '[' | '\\' | ']')
        })
}

fn is_valid_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(raw: &str) -> Result<Email> {
        Email::parse("email", raw)
    }

    #[test]
    fn normalises_case_and_whitespace() {
        assert_eq!(parse("  Ann@Example.COM ").unwrap().as_str(), "ann@example.com");
    }

    #[test]
    fn accepts_common_forms() {
        for ok in ["a@b.co", "first.last+tag@sub.example.org", "ünï@exämple.de"] {
            assert!(parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "   ",
            "plain",
            "@example.com",
            "a@",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@b..com",
            ".a@b.com",
            "a.@b.com",
            "a@-b.com",
            "a\u{0}@b.com",
            "a@b.com\u{7}",
            "ka\u{200b}te@example.com",
            "ka\u{ad}te@example.com",
            "kate@exam\u{200d}ple.com",
            "\u{feff}kate@example.com",
            "kate\u{202e}@example.com",
            "kate@example.com\u{2060}",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidArgument(_)), "{bad:?}: {err:?}");
        }
    }

    #[test]
    fn rejects_overlong() {
        let local = "a".repeat(64);
        let domain = format!("{}.com", "b".repeat(200));
        assert!(parse(&format!("{local}@{domain}")).is_err());
        assert!(parse(&format!("{}@b.com", "a".repeat(65))).is_err());
        assert!(parse(&"x".repeat(100_000)).is_err());
    }
}
