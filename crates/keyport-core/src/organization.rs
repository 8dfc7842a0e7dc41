//! Organizations: teams of users, each member with one role in each of
//! their organizations.
//!
//! An organization has exactly one owner. `owner`, `admin` and `member`
//! always exist; what a role grants of the permission catalogue inside the
//! organization is configured ([`OrganizationPolicy::roles`]), custom roles
//! included. An organization role never grants Keyport's own permissions
//! ([`BUILT_IN_PERMISSIONS`]): owning a team makes nobody an admin of
//! Keyport.
//!
//! The use cases are in `accounts/organizations.rs`; storage is
//! [`crate::store::OrganizationStore`].

use std::{collections::BTreeMap, fmt, sync::Arc, time::Duration};

use uuid::Uuid;

use crate::{
    authorization::{BUILT_IN_PERMISSIONS, Roles},
    clock::Timestamp,
    email::Email,
    error::{Error, Result},
    user::{User, UserId},
};

/// The role of an organization's one owner.
pub const OWNER: &str = "owner";
/// The role of those who manage members and invitations.
pub const ADMIN: &str = "admin";
/// The role of everyone else, by default.
pub const MEMBER: &str = "member";

/// Stable identifier of an organization (UUIDv7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrganizationId(pub Uuid);

impl OrganizationId {
    /// A fresh id for an organization created at `at`.
    pub fn generate(at: Timestamp) -> Self {
        Self(at.uuid_v7())
    }

    /// Validates an id sent by a client: a UUID in canonical form.
    pub fn parse(raw: &str) -> Result<Self> {
        parse_uuid(raw, "organization_id").map(Self)
    }
}

impl fmt::Display for OrganizationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Stable identifier of an invitation (UUIDv7): what accepting takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InvitationId(pub Uuid);

impl InvitationId {
    /// A fresh id for an invitation made at `at`.
    pub fn generate(at: Timestamp) -> Self {
        Self(at.uuid_v7())
    }

    /// Validates an id sent by a client.
    pub fn parse(raw: &str) -> Result<Self> {
        parse_uuid(raw, "invitation_id").map(Self)
    }
}

impl fmt::Display for InvitationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

fn parse_uuid(raw: &str, field: &'static str) -> Result<Uuid> {
    match Uuid::try_parse(raw) {
        Ok(id) if id.hyphenated().to_string() == raw => Ok(id),
        _ if raw.is_empty() => Err(Error::invalid(field, "must not be empty")),
        _ => Err(Error::invalid(field, "is not an id")),
    }
}

/// An organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Organization {
    /// Its id.
    pub id: OrganizationId,
    /// Its display name.
    pub name: String,
    /// Its unique handle.
    pub slug: String,
    /// When it was created.
    pub created_at: Timestamp,
}

/// A user's place in an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The organization.
    pub organization: Organization,
    /// The member.
    pub user: User,
    /// Their role in it.
    pub role: String,
    /// When they joined.
    pub joined_at: Timestamp,
}

/// An invitation to join an organization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invitation {
    /// Its id.
    pub id: InvitationId,
    /// The organization.
    pub organization_id: OrganizationId,
    /// The invited address.
    pub email: Email,
    /// The role it gives.
    pub role: String,
    /// The member who invited.
    pub invited_by: UserId,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops working.
    pub expires_at: Timestamp,
}

/// How organizations work.
#[derive(Debug, Clone)]
pub struct OrganizationPolicy {
    /// What each role grants inside an organization, over the catalogue.
    pub roles: Arc<Roles>,
    /// How long an invitation works.
    pub invitation_ttl: Duration,
    /// Most organizations one user may own.
    pub max_owned: u64,
    /// Most pending invitations of one organization.
    pub max_pending_invitations: u64,
}

impl Default for OrganizationPolicy {
    fn default() -> Self {
        let roles = default_roles().into_iter().collect::<BTreeMap<_, _>>();
        Self {
            roles: Arc::new(Roles::new(&[], roles).unwrap_or_default()),
            invitation_ttl: Duration::from_secs(7 * 24 * 3600),
            max_owned: 100,
            max_pending_invitations: 100,
        }
    }
}

impl OrganizationPolicy {
    /// Whether `role` is a role of organizations.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.has_role(role)
    }

    /// Whether `role` grants `permission` inside an organization: never one
    /// of Keyport's own.
    pub fn grants(&self, role: &str, permission: &str) -> bool {
        !BUILT_IN_PERMISSIONS.contains(&permission)
            && self.roles.grants(std::slice::from_ref(&role.to_owned()), permission)
    }
}

/// The roles organizations have by default: the owner and admins all
/// (of the apps' permissions), members nothing.
pub fn default_roles() -> [(String, Vec<String>); 3] {
    [
        (OWNER.to_owned(), vec!["*".to_owned()]),
        (ADMIN.to_owned(), vec!["*".to_owned()]),
        (MEMBER.to_owned(), Vec::new()),
    ]
}

/// Whether `role` manages an organization's members and invitations.
pub fn manages(role: &str) -> bool {
    role == OWNER || role == ADMIN
}

/// An organization's display name: trimmed, 1-64 characters, no control
/// characters.
pub fn parse_organization_name(raw: &str) -> Result<String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(Error::invalid("name", "must be 1-64 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid("name", "must not contain control characters"));
    }
    Ok(name.to_owned())
}

/// An organization's slug: 1-64 of `a-z 0-9 -`, not starting or ending
/// with `-`.
pub fn parse_slug(raw: &str) -> Result<String> {
    let valid = (1..=64).contains(&raw.len())
        && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !raw.starts_with('-')
        && !raw.ends_with('-');
    if valid { Ok(raw.to_owned()) } else { Err(Error::invalid("slug", "must be 1-64 of a-z 0-9 -")) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_slugs_and_ids_are_validated() {
        assert_eq!(parse_organization_name("  Acme  ").unwrap(), "Acme");
        for bad in ["", "  ", "a\u{0}b", &"x".repeat(65)] {
            assert!(parse_organization_name(bad).is_err(), "{bad:?}");
        }
        assert!(parse_slug("acme-2").is_ok());
        for bad in ["", "Acme", "a b", "-acme", "acme-", "a_b", &"x".repeat(65)] {
            assert!(parse_slug(bad).is_err(), "{bad:?}");
        }
        let id = OrganizationId::generate(Timestamp::from_unix_millis(1_700_000_000_000));
        assert_eq!(OrganizationId::parse(&id.to_string()).unwrap(), id);
        assert!(OrganizationId::parse(&id.to_string().to_uppercase()).is_err());
        assert!(InvitationId::parse("").is_err());
    }

    #[test]
    fn organization_roles_never_grant_keyports_own_permissions() {
        let policy = OrganizationPolicy::default();
        assert!(policy.has_role(OWNER) && policy.has_role(ADMIN) && policy.has_role(MEMBER));
        for permission in BUILT_IN_PERMISSIONS {
            assert!(!policy.grants(OWNER, permission), "{permission}");
        }
        assert!(!policy.grants(MEMBER, "users:read"));
        assert!(manages(OWNER) && manages(ADMIN) && !manages(MEMBER));
    }
}
