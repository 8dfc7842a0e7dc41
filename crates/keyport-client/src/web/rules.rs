//! Route rules, in the spirit of Clerk's `createRouteMatcher`: patterns
//! mapped to what a request needs; first match wins; unmatched is public.

use std::time::{Duration, SystemTime};

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
}

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
            Self::Public | Self::Authenticated | Self::Role(_) => true,
        }
    }
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
    rules: Vec<(Pattern, Access)>,
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

    /// Leaves `pattern` public even inside a protected prefix (put it first).
    ///
    /// # Panics
    ///
    /// If `pattern` is not valid.
    pub fn public(self, pattern: &str) -> Self {
        self.add(pattern, Access::Public)
    }

    /// Adds a rule, or says why `pattern` (or an empty role) is refused.
    pub fn try_add(mut self, pattern: &str, access: Access) -> Result<Self, PatternError> {
        if access == Access::Role(String::new()) {
            return Err(PatternError { pattern: pattern.to_owned(), problem: "the role is empty".into() });
        }
        self.rules.push((Pattern::parse(pattern)?, access));
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

    /// What `path` needs.
    pub fn access_for(&self, path: &str) -> &Access {
        self.access_for_normal(&normalise(path))
    }

    fn access_for_normal(&self, path: &NormalPath<'_>) -> &Access {
        const PUBLIC: &Access = &Access::Public;
        self.rules.iter().find(|(pattern, _)| pattern.matches(path)).map_or(PUBLIC, |(_, access)| access)
    }

    /// The rules, in order, as written.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Access)> {
        self.rules.iter().map(|(pattern, access)| (pattern.source(), access))
    }
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
