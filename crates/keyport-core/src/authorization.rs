//! Permissions and roles: what a principal may do.
//!
//! A permission is `resource:action` (`posts:write`): lower-case ASCII
//! letters, digits, `_`, `-` and `.`, each part 1 to 64 characters. The
//! catalogue ([`Roles::permissions`]) names every permission there is; a
//! role grants some of them, by name, by `resource:*` or by `*` (all). A
//! check names exact permissions, and a name outside the catalogue is an
//! error ([`Error::PermissionUnknown`]), not a silent deny: a typo in an
//! app must fail loudly, not lock everyone out or, worse, in.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, RwLock},
};

use crate::{
    error::{Error, FieldViolation, Result},
    store::StoredRole,
};

/// Most permissions one check may name.
pub const MAX_CHECKED: usize = 32;
const MAX_PART: usize = 64;

/// The role every user has.
pub const USER_ROLE: &str = "user";
/// The role of administrators.
pub const ADMIN_ROLE: &str = "admin";

/// The permissions Keyport's own administration needs; every catalogue has
/// them, and the default `admin` role has all permissions.
pub const BUILT_IN_PERMISSIONS: &[&str] =
    &["audit:read", "sessions:revoke", "users:impersonate", "users:read", "users:write"];

/// The catalogue of permissions and the roles that grant them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roles {
    permissions: BTreeSet<String>,
    roles: BTreeMap<String, Vec<Grant>>,
}

/// What one entry of a role grants.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Grant {
    /// Every permission.
    All,
    /// Every action on a resource (`resource:*`).
    Resource(String),
    /// One permission.
    One(String),
}

impl Grant {
    fn covers(&self, permission: &str) -> bool {
        match self {
            Self::All => true,
            Self::Resource(resource) => permission.split_once(':').is_some_and(|(of, _)| of == resource),
            Self::One(one) => one == permission,
        }
    }
}

impl Default for Roles {
    /// The built-in permissions; `user` grants nothing, `admin` everything.
    fn default() -> Self {
        let roles = [(USER_ROLE.to_owned(), Vec::new()), (ADMIN_ROLE.to_owned(), vec!["*".to_owned()])];
        match Self::new(&[], roles) {
            Ok(roles) => roles,
            // The built-ins are valid; an empty catalogue is the fallback.
            Err(_) => Self { permissions: BTreeSet::new(), roles: BTreeMap::new() },
        }
    }
}

impl Roles {
    /// The catalogue `permissions` (with [`BUILT_IN_PERMISSIONS`]) and the
    /// `roles`, each a list of grants: a permission of the catalogue,
    /// `resource:*` for a resource of it, or `*`. `user` and `admin` exist
    /// even if not listed (`admin` then grants `*`). Anything malformed or
    /// naming what the catalogue lacks is an error that says where.
    pub fn new(
        permissions: &[String],
        roles: impl IntoIterator<Item = (String, Vec<String>)>,
    ) -> std::result::Result<Self, String> {
        let mut catalogue: BTreeSet<String> = BUILT_IN_PERMISSIONS.iter().map(|p| (*p).to_owned()).collect();
        for permission in permissions {
            check_permission(permission).map_err(|problem| format!("permission {permission:?}: {problem}"))?;
            catalogue.insert(permission.clone());
        }
        let mut parsed = BTreeMap::new();
        for (role, grants) in roles {
            check_part(&role).map_err(|problem| format!("role {role:?}: {problem}"))?;
            let grants = grants
                .iter()
                .map(|grant| {
                    parse_grant(grant, &catalogue).map_err(|problem| format!("role {role:?}: {grant:?} {problem}"))
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            parsed.insert(role, grants);
        }
        parsed.entry(USER_ROLE.to_owned()).or_default();
        parsed.entry(ADMIN_ROLE.to_owned()).or_insert_with(|| vec![Grant::All]);
        Ok(Self { permissions: catalogue, roles: parsed })
    }

    /// Every permission there is, sorted.
    pub fn permissions(&self) -> impl Iterator<Item = &str> {
        self.permissions.iter().map(String::as_str)
    }

    /// Whether `role` is defined.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.contains_key(role)
    }

    /// The permissions `roles` grant together, sorted. Roles that are not
    /// defined (any more) grant nothing.
    pub fn granted<'a>(&'a self, roles: &'a [String]) -> Vec<&'a str> {
        self.permissions().filter(|permission| self.allows(roles, permission)).collect()
    }

    /// Decides each of `asked` for a principal with `roles`, in order.
    /// Fails as [`Roles::check`] does.
    pub fn decide(&self, roles: &[String], asked: &[String]) -> Result<Vec<bool>> {
        self.check(asked)?;
        Ok(self.decisions(roles, asked))
    }

    /// Fails on an empty or oversized list, a malformed name, or one the
    /// catalogue lacks; allocates nothing when all is well.
    pub fn check(&self, asked: &[String]) -> Result<()> {
        if asked.is_empty() || asked.len() > MAX_CHECKED {
            let description = format!("must name 1 to {MAX_CHECKED} permissions");
            return Err(Error::InvalidArgument(vec![FieldViolation::new("permissions", description)]));
        }
        match asked.iter().find(|permission| !self.permissions.contains(*permission)) {
            // The catalogue holds only well-formed names.
            Some(unknown) => Err(Error::PermissionUnknown(unknown.chars().take(2 * MAX_PART + 1).collect())),
            None => Ok(()),
        }
    }

    /// The decisions for `asked`, [checked](Roles::check) before: a name
    /// outside the catalogue is denied.
    pub fn decisions(&self, roles: &[String], asked: &[String]) -> Vec<bool> {
        asked.iter().map(|permission| self.grants(roles, permission)).collect()
    }

    /// Whether `roles` grant `permission`, a permission of the catalogue
    /// (anything else is denied).
    pub fn grants(&self, roles: &[String], permission: &str) -> bool {
        self.permissions.contains(permission) && self.allows(roles, permission)
    }

    fn allows(&self, roles: &[String], permission: &str) -> bool {
        roles.iter().filter_map(|role| self.roles.get(role)).flatten().any(|grant| grant.covers(permission))
    }
}

/// The roles in force: the configuration's, and those admins define at run
/// time ([`crate::store::RoleStore`]), swapped whole when the run-time ones
/// change, so that each check reads one consistent set.
#[derive(Debug)]
pub struct RoleBook {
    permissions: Vec<String>,
    configured: BTreeMap<String, Vec<String>>,
    current: RwLock<Arc<Roles>>,
}

impl Default for RoleBook {
    /// The built-in permissions; `user` grants nothing, `admin` everything.
    fn default() -> Self {
        let configured = [(USER_ROLE.to_owned(), Vec::new()), (ADMIN_ROLE.to_owned(), vec!["*".to_owned()])];
        Self { permissions: Vec::new(), configured: configured.into(), current: RwLock::new(Arc::default()) }
    }
}

impl RoleBook {
    /// The catalogue `permissions` and the configuration's `roles`, as
    /// [`Roles::new`] checks them; no run-time role yet.
    pub fn new(permissions: Vec<String>, roles: BTreeMap<String, Vec<String>>) -> std::result::Result<Self, String> {
        let current = Roles::new(&permissions, roles.clone())?;
        let mut configured = roles;
        configured.entry(USER_ROLE.to_owned()).or_default();
        configured.entry(ADMIN_ROLE.to_owned()).or_insert_with(|| vec!["*".to_owned()]);
        Ok(Self { permissions, configured, current: RwLock::new(Arc::new(current)) })
    }

    /// The roles in force now.
    pub fn current(&self) -> Arc<Roles> {
        match self.current.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Whether the configuration defines `role` (run-time roles cannot
    /// replace it).
    pub fn is_configured(&self, role: &str) -> bool {
        self.configured.contains_key(role)
    }

    /// The configuration's roles and their grants, by name.
    pub fn configured(&self) -> impl Iterator<Item = (&str, &[String])> {
        self.configured.iter().map(|(name, grants)| (name.as_str(), grants.as_slice()))
    }

    /// The permissions of the catalogue that `grants` would grant, sorted.
    pub fn granted_by(&self, grants: &[String]) -> std::result::Result<Vec<String>, String> {
        let probe = "granted-by".to_owned();
        let roles = Roles::new(&self.permissions, [(probe.clone(), grants.to_vec())])?;
        Ok(roles.granted(&[probe]).into_iter().map(str::to_owned).collect())
    }

    /// Why `grants` cannot be the grants of a role, if they cannot.
    pub fn check_grants(&self, name: &str, grants: &[String]) -> std::result::Result<(), String> {
        Roles::new(&self.permissions, [(name.to_owned(), grants.to_vec())]).map(drop)
    }

    /// Puts in force the configuration's roles with `runtime` besides. A
    /// run-time role whose grants no longer fit the catalogue (changed at
    /// a restart) grants nothing, and is logged.
    pub fn replace_runtime(&self, runtime: &[StoredRole]) {
        let mut roles = self.configured.clone();
        for role in runtime.iter().filter(|role| !self.is_configured(&role.name)) {
            let grants = match self.check_grants(&role.name, &role.grants) {
                Ok(()) => role.grants.clone(),
                Err(problem) => {
                    tracing::warn!(role = %role.name, %problem, "a run-time role no longer fits the catalogue");
                    Vec::new()
                }
            };
            roles.insert(role.name.clone(), grants);
        }
        match Roles::new(&self.permissions, roles) {
            Ok(roles) => match self.current.write() {
                Ok(mut current) => *current = Arc::new(roles),
                Err(poisoned) => *poisoned.into_inner() = Arc::new(roles),
            },
            Err(problem) => tracing::error!(%problem, "run-time roles not applied"),
        }
    }
}

fn parse_grant(grant: &str, catalogue: &BTreeSet<String>) -> std::result::Result<Grant, String> {
    if grant == "*" {
        return Ok(Grant::All);
    }
    if let Some(resource) = grant.strip_suffix(":*") {
        check_part(resource)?;
        let known = catalogue.iter().any(|p| p.split_once(':').is_some_and(|(of, _)| of == resource));
        return if known {
            Ok(Grant::Resource(resource.to_owned()))
        } else {
            Err("names no resource of the catalogue".into())
        };
    }
    check_permission(grant)?;
    if catalogue.contains(grant) { Ok(Grant::One(grant.to_owned())) } else { Err("is not in the catalogue".into()) }
}

/// Checks the `resource:action` shape.
fn check_permission(permission: &str) -> std::result::Result<(), String> {
    let (resource, action) = permission.split_once(':').ok_or("must be resource:action")?;
    check_part(resource)?;
    check_part(action)
}

fn check_part(part: &str) -> std::result::Result<(), String> {
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.');
    if part.is_empty() || part.len() > MAX_PART || !part.chars().all(allowed) {
        return Err(format!("parts must be 1 to {MAX_PART} of a-z 0-9 _ - ."));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roles() -> Roles {
        let catalogue = ["posts:read", "posts:write", "billing:read"].map(String::from);
        Roles::new(
            &catalogue,
            [
                ("user".to_owned(), vec!["posts:read".to_owned()]),
                ("editor".to_owned(), vec!["posts:*".to_owned()]),
                ("accountant".to_owned(), vec!["billing:read".to_owned()]),
            ],
        )
        .unwrap()
    }

    #[test]
    fn decides_by_name_resource_and_all() {
        let roles = roles();
        let asked = ["posts:read", "posts:write", "billing:read", "users:write"].map(String::from);
        let user = vec!["user".to_owned()];
        assert_eq!(roles.decide(&user, &asked).unwrap(), [true, false, false, false]);
        let editor = vec!["editor".to_owned(), "user".to_owned()];
        assert_eq!(roles.decide(&editor, &asked).unwrap(), [true, true, false, false]);
        let admin = vec!["admin".to_owned()];
        assert_eq!(roles.decide(&admin, &asked).unwrap(), [true; 4], "admin defaults to *");
        let gone = vec!["retired".to_owned()];
        assert_eq!(roles.decide(&gone, &asked).unwrap(), [false; 4], "an undefined role grants nothing");
        assert_eq!(roles.granted(&editor), ["posts:read", "posts:write"]);
    }

    #[test]
    fn unknown_malformed_empty_and_oversized_checks_are_errors() {
        let roles = roles();
        let user = vec!["user".to_owned()];
        for bad in ["posts:delete", "posts", "Posts:read", ":read", "posts:", "posts:*", "*", &"a".repeat(200)] {
            let result = roles.decide(&user, &[bad.to_owned()]);
            assert!(matches!(result, Err(Error::PermissionUnknown(_))), "{bad:.20}: {result:?}");
        }
        assert!(matches!(roles.decide(&user, &[]), Err(Error::InvalidArgument(_))));
        let many = vec!["posts:read".to_owned(); MAX_CHECKED + 1];
        assert!(matches!(roles.decide(&user, &many), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn configuration_mistakes_say_where() {
        let catalogue = ["posts:read".to_owned()];
        for (role, grant, expected) in [
            ("editor", "posts:write", "not in the catalogue"),
            ("editor", "wiki:*", "names no resource"),
            ("Editor", "posts:read", "role \"Editor\""),
            ("editor", "posts read", "resource:action"),
        ] {
            let error = Roles::new(&catalogue, [(role.to_owned(), vec![grant.to_owned()])]).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
        assert!(Roles::new(&["BAD".to_owned()], []).unwrap_err().contains("permission \"BAD\""));
        let defaults = Roles::default();
        assert!(defaults.has_role("user") && defaults.has_role("admin"));
        assert_eq!(defaults.granted(&["admin".to_owned()]), BUILT_IN_PERMISSIONS);
    }
}
