//! Route rules, in the spirit of Clerk's `createRouteMatcher`: patterns
//! mapped to what a request needs; first match wins; unmatched is public.

use std::{
    fmt,
    sync::Arc,
    time::{Duration, SystemTime},
};

pub use super::pattern::PatternError;
use super::pattern::{NormalPath, Pattern, normalise};
use crate::principal::{Assurance, Principal};

/// What a route needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Anyone; a valid session is still recognised.
    Public,
    /// A valid session.
    Authenticated,
    /// A valid session of a user with this role.
    Role(String),
    /// A session that passed a second factor ([`Assurance::Aal2`]). A user
    /// without one is refused too: the step-up page offers to set one up.
    Aal2,
    /// A session whose user proved who they are within this long (the
    /// sign-in, or a step-up): with a second factor, an AAL2 session, as
    /// Keyport's own sensitive calls require.
    Fresh(Duration),
    /// A valid session whose roles grant every one of these permissions
    /// (`resource:action`). Keyport decides, through `Authorize`; the
    /// session cache answers again until an event drops the session.
    AllPermissions(Vec<String>),
    /// A valid session whose roles grant at least one of these permissions.
    AnyPermission(Vec<String>),
    /// A valid session of a user with at least one of these roles.
    AnyRole(Vec<String>),
    /// A valid session of a user with every one of these roles.
    AllRoles(Vec<String>),
    /// A valid session that the app's own predicate accepts.
    Check(Predicate),
    /// A valid session allowed every one of these permissions in the
    /// organization the request names (`from`): by the user's roles, or by
    /// their role in it. A user who is not a member gets no more than their
    /// own roles: refused. API keys are not scoped to organizations.
    PermissionsInOrganization {
        /// The permissions, each `resource:action`.
        permissions: Vec<String>,
        /// Where the request names the organization.
        from: OrganizationFrom,
    },
}

/// Where a request names its organization, for
/// [`Access::PermissionsInOrganization`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrganizationFrom {
    /// A path segment, counted from 0 (`/orgs/{id}/billing`: 1).
    Segment(usize),
    /// A request header (`x-organization-id`).
    Header(String),
}

impl OrganizationFrom {
    /// The organization id `path` and `header` name, if any (not checked:
    /// Keyport refuses a malformed one).
    pub fn organization<'r>(&self, path: &'r str, header: impl Fn(&str) -> Option<&'r str>) -> Option<&'r str> {
        let named = match self {
            Self::Segment(index) => path.split('/').filter(|segment| !segment.is_empty()).nth(*index),
            Self::Header(name) => header(name).map(str::trim),
        };
        named.filter(|id| !id.is_empty())
    }
}

/// An app's own rule over the principal, for [`Access::Check`]; two are
/// equal when they are the same closure.
#[derive(Clone)]
pub struct Predicate {
    name: String,
    accepts: Arc<dyn Fn(&Principal) -> bool + Send + Sync>,
}

impl Predicate {
    /// A predicate called `name` (for logs and `Debug`) that allows a
    /// principal when `accepts` says so.
    pub fn new(name: impl Into<String>, accepts: impl Fn(&Principal) -> bool + Send + Sync + 'static) -> Self {
        Self { name: name.into(), accepts: Arc::new(accepts) }
    }

    /// Whether `principal` passes.
    pub fn accepts(&self, principal: &Principal) -> bool {
        (self.accepts)(principal)
    }
}

impl fmt::Debug for Predicate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Predicate({})", self.name)
    }
}

impl PartialEq for Predicate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.accepts, &other.accepts)
    }
}

impl Eq for Predicate {}

impl Access {
    /// Whether `principal` has the assurance this access needs, judged at
    /// `now` (wall-clock time: `authenticated_at` is the server's).
    pub fn assurance_met(&self, principal: &Principal, now: SystemTime) -> bool {
        match self {
            Self::Aal2 => principal.assurance == Assurance::Aal2,
            Self::Fresh(max_age) => {
                let age = now.duration_since(principal.authenticated_at).unwrap_or(Duration::ZERO);
                let factor_passed = !principal.two_factor_enabled || principal.assurance == Assurance::Aal2;
                factor_passed && age <= *max_age
            }
            _ => true,
        }
    }

    /// The permissions this access has Keyport decide, if any.
    pub fn permissions(&self) -> Option<&[String]> {
        match self {
            Self::AllPermissions(permissions)
            | Self::AnyPermission(permissions)
            | Self::PermissionsInOrganization { permissions, .. } => Some(permissions),
            _ => None,
        }
    }

    /// Where this access finds its organization, if it is decided in one.
    pub fn organization_from(&self) -> Option<&OrganizationFrom> {
        match self {
            Self::PermissionsInOrganization { from, .. } => Some(from),
            _ => None,
        }
    }

    /// Whether `principal`'s roles meet this access (true for accesses that
    /// are not about roles).
    pub fn roles_met(&self, principal: &Principal) -> bool {
        match self {
            Self::Role(role) => principal.has_role(role),
            Self::AnyRole(roles) => roles.iter().any(|role| principal.has_role(role)),
            Self::AllRoles(roles) => roles.iter().all(|role| principal.has_role(role)),
            Self::Check(predicate) => predicate.accepts(principal),
            _ => true,
        }
    }

    /// Whether Keyport's `decisions` of [`Access::permissions`] (in order)
    /// meet this access (true for accesses that are not about permissions).
    pub fn permissions_met(&self, decisions: &[bool]) -> bool {
        match self {
            Self::AllPermissions(_) | Self::PermissionsInOrganization { .. } => {
                !decisions.is_empty() && decisions.iter().all(|allowed| *allowed)
            }
            Self::AnyPermission(_) => decisions.iter().any(|allowed| *allowed),
            _ => true,
        }
    }

    /// Why this access cannot be a rule, if it cannot: an empty role or
    /// list, or a permission that is not `resource:action`.
    fn problem(&self) -> Option<String> {
        let names = match self {
            Self::Role(role) => std::slice::from_ref(role),
            Self::AnyRole(roles) | Self::AllRoles(roles) => roles,
            Self::AllPermissions(permissions)
            | Self::AnyPermission(permissions)
            | Self::PermissionsInOrganization { permissions, .. } => {
                if let Some(bad) = permissions.iter().find(|p| !is_permission(p)) {
                    return Some(format!("the permission {bad:?} is not `resource:action`"));
                }
                permissions
            }
            _ => return None,
        };
        if names.is_empty() {
            return Some("the list is empty".into());
        }
        names.iter().any(String::is_empty).then(|| "the role is empty".into())
    }
}

/// Whether `name` has the shape of a permission: `resource:action`, each
/// part 1-64 of `a-z 0-9 _ - .` (Keyport checks it is in its catalogue).
fn is_permission(name: &str) -> bool {
    let part = |p: &str| {
        (1..=64).contains(&p.len())
            && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.'))
    };
    name.split_once(':').is_some_and(|(resource, action)| part(resource) && part(action))
}

/// Ordered `(pattern, access)` pairs. The pattern syntax is in
/// `docs/middleware.md` ("Route rules"): `/exact`, `*` (one segment, or a
/// glob within one: `*.pdf`), `**` (any number of segments, anywhere),
/// `:param` and `{param}` (one segment), `{*rest}` (like `**`), and Clerk's
/// groups `(.*)` and `(a|b)`.
///
/// A pattern outside that syntax is refused when the rules are built: the
/// builder methods panic (as Axum's `Router::route` does on a bad path), and
/// [`RouteRules::try_add`] returns the error, for patterns read from config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteRules {
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    pattern: Pattern,
    /// The methods it applies to, upper-case; empty for every method.
    methods: Vec<String>,
    access: Access,
}

impl RouteRules {
    /// No rules: everything public.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires a session on `pattern`.
    ///
    /// # Panics
    ///
    /// If `pattern` is not valid; the message says why.
    pub fn protect(self, pattern: &str) -> Self {
        self.add(pattern, Access::Authenticated)
    }

    /// Requires `role` on `pattern`.
    ///
    /// # Panics
    ///
    /// If `pattern` is not valid or `role` is empty.
    pub fn require_role(self, pattern: &str, role: impl Into<String>) -> Self {
        self.add(pattern, Access::Role(role.into()))
    }

    /// Requires a session that passed a second factor on `pattern`; others
    /// are refused with `STEP_UP_REQUIRED` (browsers go to the step-up page).
    ///
    /// # Panics
    ///
    /// If `pattern` is not valid.
    pub fn require_aal2(self, pattern: &str) -> Self {
        self.add(pattern, Access::Aal2)
    }

    /// Requires, on `pattern`, that the user proved who they are within
    /// `max_age` (and, with a second factor, passed it): for pages that
    /// change credentials or money. Others get `STEP_UP_REQUIRED`.
    ///
    /// # Panics
    ///
    /// If `pattern` is not valid.
    pub fn require_fresh(self, pattern: &str, max_age: Duration) -> Self {
        self.add(pattern, Access::Fresh(max_age))
    }

    /// Requires, on `pattern`, a session whose roles grant `permission`
    /// (`resource:action`, in Keyport's catalogue). Others get `FORBIDDEN`;
    /// a name outside the catalogue answers 500 (`PERMISSION_UNKNOWN`),
    /// never a silent deny.
    ///
    /// # Panics
    ///
    /// If `pattern` is not valid or `permission` is not `resource:action`.
    pub fn require_permission(self, pattern: &str, permission: impl Into<String>) -> Self {
        self.add(pattern, Access::AllPermissions(vec![permission.into()]))
    }

    /// Requires, on `pattern`, every one of `permissions`.
    ///
    /// # Panics
    ///
    /// If `pattern` is not valid, or the list is empty or has a name that is
    /// not `resource:action`.
    pub fn require_all_permissions(self, pattern: &str, permissions: &[&str]) -> Self {
        self.add(pattern, Access::AllPermissions(owned(permissions)))
    }

    /// Requires, on `pattern`, at least one of `permissions`.
    ///
    /// # Panics
    ///
    /// As [`RouteRules::require_all_permissions`].
    pub fn require_any_permission(self, pattern: &str, permissions: &[&str]) -> Self {
        self.add(pattern, Access::AnyPermission(owned(permissions)))
    }

    /// Requires, on `pattern`, `permission` in the organization the request
    /// names (`from`): allowed by the user's roles or by their role in it
    /// ([`Access::PermissionsInOrganization`]).
    ///
    /// # Panics
    ///
    /// If `pattern` is not valid, or `permission` is not `resource:action`.
    pub fn require_permission_in_org(
        self,
        pattern: &str,
        permission: impl Into<String>,
        from: OrganizationFrom,
    ) -> Self {
        self.add(pattern, Access::PermissionsInOrganization { permissions: vec![permission.into()], from })
    }

    /// Requires, on `pattern`, at least one of `roles`.
    ///
    /// # Panics
    ///
    /// If `pattern` is not valid, or the list is empty or has an empty role.
    pub fn require_any_role(self, pattern: &str, roles: &[&str]) -> Self {
        self.add(pattern, Access::AnyRole(owned(roles)))
    }

    /// Requires, on `pattern`, every one of `roles`.
    ///
    /// # Panics
    ///
    /// As [`RouteRules::require_any_role`].
    pub fn require_all_roles(self, pattern: &str, roles: &[&str]) -> Self {
        self.add(pattern, Access::AllRoles(owned(roles)))
    }

    /// Requires, on `pattern`, a session that `predicate` accepts (called
    /// `name` in logs), e.g. `|p| p.email_verified`.
    ///
    /// # Panics
    ///
    /// If `pattern` is not valid.
    pub fn require(
        self,
        pattern: &str,
        name: &str,
        predicate: impl Fn(&Principal) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.add(pattern, Access::Check(Predicate::new(name, predicate)))
    }

    /// A rule for `methods` only (`&["POST", "DELETE"]`): other methods
    /// fall through to the next matching rule. E.g. reads for everyone
    /// signed in, writes for editors:
    /// `.on(&["POST"], "/posts/**", Access::AllPermissions(..)).protect("/posts/**")`.
    ///
    /// # Panics
    ///
    /// As [`RouteRules::try_add_on`] fails.
    #[expect(clippy::panic, reason = "as `add`: a bad rule must stop the app at startup")]
    pub fn on(self, methods: &[&str], pattern: &str, access: Access) -> Self {
        self.try_add_on(methods, pattern, access).unwrap_or_else(|error| panic!("keyport: {error}"))
    }

    /// Leaves `pattern` public even inside a protected prefix (put it first).
    ///
    /// # Panics
    ///
    /// If `pattern` is not valid.
    pub fn public(self, pattern: &str) -> Self {
        self.add(pattern, Access::Public)
    }

    /// Adds a rule, or says why `pattern` (or the access: an empty role or
    /// list, a malformed permission) is refused.
    pub fn try_add(self, pattern: &str, access: Access) -> Result<Self, PatternError> {
        self.try_add_on(&[], pattern, access)
    }

    /// Adds a rule for `methods` only (every method when empty), or says
    /// why it is refused (as [`RouteRules::try_add`], or a method that is
    /// not an HTTP token).
    pub fn try_add_on(mut self, methods: &[&str], pattern: &str, access: Access) -> Result<Self, PatternError> {
        let refused = |problem: String| PatternError { pattern: pattern.to_owned(), problem };
        if let Some(problem) = access.problem() {
            return Err(refused(problem));
        }
        if let Some(bad) = methods.iter().find(|m| m.is_empty() || !m.bytes().all(|b| b.is_ascii_alphabetic())) {
            return Err(refused(format!("the method {bad:?} is not an HTTP method")));
        }
        let methods = methods.iter().map(|method| method.to_ascii_uppercase()).collect();
        self.rules.push(Rule { pattern: Pattern::parse(pattern)?, methods, access });
        Ok(self)
    }

    #[expect(
        clippy::panic,
        reason = "a pattern is code: a bad one must stop the app at startup, as Axum's `Router::route` does, never \
                  leave its routes public"
    )]
    fn add(self, pattern: &str, access: Access) -> Self {
        self.try_add(pattern, access).unwrap_or_else(|error| panic!("keyport: {error}"))
    }

    /// What a `GET` of `path` needs.
    pub fn access_for(&self, path: &str) -> &Access {
        self.access_for_request("GET", path)
    }

    /// What a `method` request of `path` needs: the first rule whose
    /// pattern matches and that applies to `method`.
    pub fn access_for_request(&self, method: &str, path: &str) -> &Access {
        self.access_for_normal(method, &normalise(path))
    }

    fn access_for_normal(&self, method: &str, path: &NormalPath<'_>) -> &Access {
        const PUBLIC: &Access = &Access::Public;
        let applies = |rule: &&Rule| {
            (rule.methods.is_empty() || rule.methods.iter().any(|m| m.eq_ignore_ascii_case(method)))
                && rule.pattern.matches(path)
        };
        self.rules.iter().find(applies).map_or(PUBLIC, |rule| &rule.access)
    }

    /// The rules, in order, as written (method-specific ones included).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Access)> {
        self.rules.iter().map(|rule| (rule.pattern.source(), &rule.access))
    }
}

fn owned(names: &[&str]) -> Vec<String> {
    names.iter().map(|name| (*name).to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> RouteRules {
        RouteRules::new()
            .public("/dashboard/help")
            .protect("/dashboard(.*)")
            .require_role("/admin/**", "admin")
            .protect("/api/*")
    }

    #[test]
    fn first_matching_rule_wins() {
        let rules = rules();
        assert_eq!(rules.access_for("/dashboard"), &Access::Authenticated);
        assert_eq!(rules.access_for("/dashboard/settings/x"), &Access::Authenticated);
        assert_eq!(rules.access_for("/dashboard/help"), &Access::Public);
        assert_eq!(rules.access_for("/admin"), &Access::Role("admin".into()));
        assert_eq!(rules.access_for("/admin/users"), &Access::Role("admin".into()));
        assert_eq!(rules.access_for("/api/me"), &Access::Authenticated);
        assert_eq!(rules.access_for("/api/me/deeper"), &Access::Public);
        assert_eq!(rules.access_for("/"), &Access::Public);
        assert_eq!(rules.access_for("/dashboardx"), &Access::Authenticated, "`(.*)` is any text, as in Clerk");
        assert_eq!(rules.access_for("/adminx"), &Access::Public, "`/**` matches whole segments");
    }

    /// The patterns that used to leave their routes public.
    #[test]
    fn the_forms_users_write_protect_their_routes() {
        let rules = RouteRules::new()
            .protect("/(api|trpc)(.*)")
            .protect("/users/{id}")
            .protect("/members/:id")
            .protect("/org/*/billing")
            .protect("/files/*.pdf")
            .require_role("/console/**/admin", "admin");
        for path in ["/trpc/x", "/api", "/users/1", "/members/1", "/org/acme/billing", "/files/a.pdf"] {
            assert_eq!(rules.access_for(path), &Access::Authenticated, "{path}");
        }
        for path in ["/console/admin", "/console/a/b/admin"] {
            assert_eq!(rules.access_for(path), &Access::Role("admin".into()), "{path}");
        }
        assert_eq!(rules.access_for("/files/a.txt"), &Access::Public);
    }

    #[test]
    fn assurance_rules_need_a_second_factor_and_a_recent_proof() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let principal = |two_factor_enabled, assurance, age_secs| Principal {
            two_factor_enabled,
            assurance,
            authenticated_at: now - Duration::from_secs(age_secs),
            ..Principal::for_tests("ann@example.com", &[])
        };
        let fresh = Access::Fresh(Duration::from_secs(600));
        for (what, principal, aal2, recent) in [
            ("no factor, just signed in", principal(false, Assurance::Aal1, 0), false, true),
            ("no factor, an hour ago", principal(false, Assurance::Aal1, 3600), false, false),
            ("factor not passed", principal(true, Assurance::Aal1, 0), false, false),
            ("factor passed now", principal(true, Assurance::Aal2, 0), true, true),
            ("factor passed an hour ago", principal(true, Assurance::Aal2, 3600), true, false),
        ] {
            assert_eq!(Access::Aal2.assurance_met(&principal, now), aal2, "{what}: aal2");
            assert_eq!(fresh.assurance_met(&principal, now), recent, "{what}: fresh");
            assert!(Access::Authenticated.assurance_met(&principal, now), "{what}");
        }
        let rules = RouteRules::new().require_aal2("/vault/**").require_fresh("/settings/*", Duration::from_secs(60));
        assert_eq!(rules.access_for("/vault/a"), &Access::Aal2);
        assert_eq!(rules.access_for("/settings/password"), &Access::Fresh(Duration::from_secs(60)));
    }

    #[test]
    fn invalid_patterns_and_empty_roles_are_refused() {
        assert_eq!(RouteRules::new().try_add("admin", Access::Authenticated).unwrap_err().pattern, "admin");
        let error = RouteRules::new().try_add("/admin", Access::Role(String::new())).unwrap_err();
        assert_eq!(error.to_string(), "route pattern `/admin`: the role is empty");
        let rules = RouteRules::new().try_add("/ok", Access::Authenticated).unwrap();
        assert_eq!(rules.iter().collect::<Vec<_>>(), [("/ok", &Access::Authenticated)]);
    }

    #[test]
    fn method_rules_apply_to_their_methods_only() {
        let write = Access::AllPermissions(vec!["posts:write".into()]);
        let rules = RouteRules::new()
            .on(&["post", "DELETE"], "/posts/**", write.clone())
            .require_permission("/posts/**", "posts:read");
        let read = Access::AllPermissions(vec!["posts:read".into()]);
        assert_eq!(rules.access_for_request("POST", "/posts/1"), &write);
        assert_eq!(rules.access_for_request("delete", "/posts/1"), &write, "methods compare case-insensitively");
        assert_eq!(rules.access_for_request("GET", "/posts/1"), &read, "other methods fall through");
        assert_eq!(rules.access_for("/posts/1"), &read);
        assert_eq!(rules.access_for_request("POST", "/other"), &Access::Public);
        assert_eq!(rules.iter().count(), 2);
    }

    #[test]
    fn role_lists_predicates_and_permission_decisions() {
        let admin = Principal::for_tests("root@example.com", &["admin", "user"]);
        let user = Principal::for_tests("ann@example.com", &["user"]);
        let any = Access::AnyRole(vec!["admin".into(), "support".into()]);
        let all = Access::AllRoles(vec!["admin".into(), "user".into()]);
        assert!(any.roles_met(&admin) && !any.roles_met(&user));
        assert!(all.roles_met(&admin) && !all.roles_met(&user));
        let verified = Access::Check(Predicate::new("verified", |p| p.email.starts_with("root")));
        assert!(verified.roles_met(&admin) && !verified.roles_met(&user));
        assert_eq!(format!("{verified:?}"), "Check(Predicate(verified))");

        let all_of = Access::AllPermissions(vec!["a:b".into(), "c:d".into()]);
        let any_of = Access::AnyPermission(vec!["a:b".into(), "c:d".into()]);
        assert_eq!(all_of.permissions(), Some(&["a:b".to_owned(), "c:d".to_owned()][..]));
        assert!(all_of.permissions_met(&[true, true]) && !all_of.permissions_met(&[true, false]));
        assert!(!all_of.permissions_met(&[]), "no decision is no permission");
        assert!(any_of.permissions_met(&[false, true]) && !any_of.permissions_met(&[false, false]));
        assert!(Access::Authenticated.permissions_met(&[]) && Access::Authenticated.permissions().is_none());
    }

    #[test]
    fn malformed_permissions_roles_and_methods_are_refused() {
        for (access, problem) in [
            (Access::AllPermissions(vec![]), "the list is empty"),
            (Access::AnyPermission(vec!["posts".into()]), "the permission \"posts\" is not `resource:action`"),
            (
                Access::AllPermissions(vec!["Posts:Read".into()]),
                "the permission \"Posts:Read\" is not `resource:action`",
            ),
            (Access::AllPermissions(vec!["posts:".into()]), "the permission \"posts:\" is not `resource:action`"),
            (Access::AnyRole(vec![]), "the list is empty"),
            (Access::AllRoles(vec!["admin".into(), String::new()]), "the role is empty"),
        ] {
            let error = RouteRules::new().try_add("/x", access.clone()).unwrap_err();
            assert_eq!(error.problem, problem, "{access:?}");
        }
        let error = RouteRules::new().try_add_on(&["GET /"], "/x", Access::Authenticated).unwrap_err();
        assert_eq!(error.problem, "the method \"GET /\" is not an HTTP method");
        assert!(RouteRules::new().try_add("/x", Access::AllPermissions(vec!["billing.v2:read-all".into()])).is_ok());
    }

    #[test]
    #[should_panic(expected = "keyport: route pattern `/posts`: the permission")]
    fn the_builder_panics_on_a_malformed_permission() {
        let _ = RouteRules::new().require_permission("/posts", "write posts");
    }

    #[test]
    #[should_panic(expected = "keyport: route pattern `/users/[id]`")]
    fn the_builder_panics_on_an_invalid_pattern() {
        let _ = RouteRules::new().protect("/users/[id]");
    }

    #[test]
    fn path_tricks_do_not_bypass_rules() {
        let rules = rules();
        for sneaky in [
            "//admin",
            "/./admin",
            "/public/../admin",
            "/admin/",
            "/admin//x",
            "/%61dmin",
            "/%61%64min/x",
            "/x/%2e%2e/admin",
        ] {
            assert_eq!(rules.access_for(sneaky), &Access::Role("admin".into()), "{sneaky}");
        }
    }
}
