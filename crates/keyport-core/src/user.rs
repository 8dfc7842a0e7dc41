//! Users and their roles.
//!
//! The use cases are in `accounts/users.rs` (on [`crate::Accounts`]), their
//! storage is [`crate::store::UserStore`].

use uuid::Uuid;

use crate::{
    clock::Timestamp,
    email::Email,
    error::{Error, Result},
};

/// Role every new user gets.
pub const DEFAULT_ROLE: &str = "user";
/// Longest display name accepted, in characters.
pub const MAX_NAME_CHARS: usize = 256;

/// A user's stable identifier (UUIDv7: sortable by creation time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(pub Uuid);

impl UserId {
    /// A fresh id for a user created at `at`.
    pub fn generate(at: Timestamp) -> Self {
        Self(at.uuid_v7())
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A user as the domain sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Stable identifier.
    pub id: UserId,
    /// Normalised, unique email address.
    pub email: Email,
    /// Display name; may be empty.
    pub name: String,
    /// Whether the user proved they own `email`.
    pub email_verified: bool,
    /// Granted roles, sorted and unique.
    pub roles: Vec<String>,
    /// When the user signed up.
    pub created_at: Timestamp,
    /// When the profile last changed.
    pub updated_at: Timestamp,
    /// Whether a second factor is on: sign-ins answer a challenge.
    pub two_factor_enabled: bool,
    /// The last ban an admin set, active or run out; `None` when never
    /// banned or unbanned since.
    pub ban: Option<Ban>,
}

impl User {
    /// The ban in force at `now`, if any.
    pub fn ban_at(&self, now: Timestamp) -> Option<&Ban> {
        self.ban.as_ref().filter(|ban| ban.is_active(now))
    }
}

/// A suspension an admin put on an account: while it lasts, every sign-in
/// is refused (after the first factor checked out) and no session exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// Why, as the admin wrote it: shown to admins, never to the user.
    pub reason: String,
    /// When it began.
    pub banned_at: Timestamp,
    /// When it ends on its own; `None` for a ban until lifted.
    pub expires_at: Option<Timestamp>,
}

impl Ban {
    /// Whether the ban is in force at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|expires_at| expires_at > now)
    }
}

/// Validates a display name: trimmed, at most [`MAX_NAME_CHARS`], no control characters.
pub fn parse_name(raw: &str) -> Result<String> {
    let name = raw.trim();
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(Error::invalid("name", "must be at most 256 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid("name", "must not contain control characters"));
    }
    Ok(name.to_owned())
}

/// Whether `role` is a well-formed role name: 1-64 of `a-z 0-9 _ - :`.
pub fn is_valid_role(role: &str) -> bool {
    (1..=64).contains(&role.len())
        && role.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b':'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  Ann  ").unwrap(), "Ann");
        assert_eq!(parse_name("").unwrap(), "");
        assert!(parse_name(&"é".repeat(256)).is_ok());
        assert!(parse_name(&"é".repeat(257)).is_err());
        assert!(parse_name("a\u{1b}[31m").is_err());
    }
}
