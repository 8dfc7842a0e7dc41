//! Route rules, in the spirit of Clerk's `createRouteMatcher`: patterns
//! mapped to what a request needs; first match wins; unmatched is public.

/// What a route needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// Anyone; a valid session is still recognised.
    Public,
    /// A valid session.
    Authenticated,
    /// A valid session of a user with this role.
    Role(String),
}

/// Ordered `(pattern, access)` pairs.
///
/// Patterns: `/exact`, `/prefix/*` (one more segment), `/prefix/**` or
/// `/prefix(.*)` (the prefix itself and anything below it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteRules {
    rules: Vec<(String, Access)>,
}

impl RouteRules {
    /// No rules: everything public.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires a session on `pattern`.
    pub fn protect(mut self, pattern: impl Into<String>) -> Self {
        self.rules.push((pattern.into(), Access::Authenticated));
        self
    }

    /// Requires `role` on `pattern`.
    pub fn require_role(mut self, pattern: impl Into<String>, role: impl Into<String>) -> Self {
        self.rules.push((pattern.into(), Access::Role(role.into())));
        self
    }

    /// Leaves `pattern` public even inside a protected prefix (put it first).
    pub fn public(mut self, pattern: impl Into<String>) -> Self {
        self.rules.push((pattern.into(), Access::Public));
        self
    }

    /// What `path` needs.
    pub fn access_for(&self, path: &str) -> &Access {
        const PUBLIC: &Access = &Access::Public;
        let path = normalise(path);
        self.rules.iter().find(|(pattern, _)| matches(pattern, &path)).map_or(PUBLIC, |(_, access)| access)
    }
}

/// Decodes percent-escapes (but `%2F`, which is data inside a segment),
/// collapses `//` and resolves `.` and `..`, so that `/%61dmin`,
/// `/admin/../admin` or `//admin` cannot slip past a rule for `/admin`:
/// frameworks that route on the decoded path would serve `/admin` for them.
fn normalise(path: &str) -> String {
    let decoded = decode_except_slash(path);
    let mut segments: Vec<&str> = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    format!("/{}", segments.join("/"))
}

fn decode_except_slash(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(index) = rest.to_ascii_lowercase().find("%2f") {
        out.push_str(&percent_encoding::percent_decode_str(&rest[..index]).decode_utf8_lossy());
        out.push_str("%2F");
        rest = &rest[index + 3..];
    }
    out.push_str(&percent_encoding::percent_decode_str(rest).decode_utf8_lossy());
    out
}

fn matches(pattern: &str, path: &str) -> bool {
    if let Some(prefix) = pattern.strip_suffix("/**").or_else(|| pattern.strip_suffix("(.*)")) {
        let prefix = prefix.trim_end_matches('/');
        return path == prefix || path.starts_with(&format!("{prefix}/")) || prefix.is_empty();
    }
    if let Some(prefix) = pattern.strip_suffix("/*") {
        return path
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
    }
    pattern.trim_end_matches('/') == path || (pattern == "/" && path == "/")
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
        assert_eq!(rules.access_for("/dashboardx"), &Access::Public, "prefixes match whole segments");
    }

    #[test]
    fn encoded_slashes_stay_inside_their_segment() {
        assert_eq!(normalise("/a%2Fb/c"), "/a%2Fb/c");
        assert_eq!(normalise("/a%2fb"), "/a%2Fb");
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
