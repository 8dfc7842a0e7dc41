//! Route patterns: parsed once, refused when not understood, matched against
//! a normalised path.
//!
//! A rule that silently matches nothing leaves its routes public, so every
//! character of a pattern must mean something known; anything else is a
//! [`PatternError`] when the rules are built, never a public route at run time.

use std::borrow::Cow;

use regex::Regex;

/// A route pattern, compiled.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    source: String,
    regex: Regex,
    /// The plain-text forms most rules take, matched without the regex
    /// (whose per-thread cache costs more than the match on a hot path).
    text: Option<Text>,
}

/// A pattern of plain text, with at most a trailing `(.*)` or `/(.*)`.
#[derive(Debug, Clone)]
enum Text {
    /// `/a/b`: exactly this path.
    Exact(String),
    /// `/a(.*)`: any path starting with this text.
    Prefix(String),
    /// `/a/(.*)`: this path or any below it.
    Subtree(String),
}

impl Text {
    /// The plain-text form of `segments` (a pattern after its leading `/`,
    /// already validated), if it has one.
    fn of(segments: &str) -> Option<Self> {
        let plain = |text: &str| text.chars().all(|c| c == '/' || is_literal(c));
        // Normalised paths have no trailing `/`, and the root is "".
        let path = |text: &str| if text.is_empty() { String::new() } else { format!("/{text}") };
        if let Some(parent) = segments.strip_suffix("/(.*)") {
            return plain(parent).then(|| Self::Subtree(path(parent)));
        }
        if let Some(prefix) = segments.strip_suffix("(.*)") {
            return plain(prefix).then(|| Self::Prefix(path(prefix)));
        }
        plain(segments).then(|| Self::Exact(path(segments)))
    }

    fn matches(&self, path: &str) -> bool {
        match self {
            Self::Exact(text) => path == text,
            Self::Prefix(text) => path.starts_with(text.as_str()),
            Self::Subtree(text) => {
                path.strip_prefix(text.as_str()).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            }
        }
    }
}

/// Why a route pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("route pattern `{pattern}`: {problem}")]
pub struct PatternError {
    /// The pattern as written.
    pub pattern: String,
    /// What is wrong with it, and what to write instead.
    pub problem: String,
}

impl Pattern {
    /// Parses `source` (syntax in `docs/middleware.md`, "Route rules").
    pub(crate) fn parse(source: &str) -> Result<Self, PatternError> {
        let refuse = |problem: String| PatternError { pattern: source.to_owned(), problem };
        let Some(rest) = source.strip_prefix('/') else {
            return Err(refuse("must start with `/`".into()));
        };
        let mut regex = String::from("^");
        // A trailing `/` adds nothing: paths are matched without one.
        let segments = rest.strip_suffix('/').unwrap_or(rest);
        for segment in segments.split('/').filter(|_| !segments.is_empty()) {
            regex.push_str(&segment_regex(segment).map_err(refuse)?);
        }
        regex.push('$');
        let regex = Regex::new(&regex).map_err(|e| refuse(format!("internal error: {e}")))?;
        Ok(Self { source: source.to_owned(), regex, text: Text::of(segments) })
    }

    /// The pattern as written.
    pub(crate) fn source(&self) -> &str {
        &self.source
    }

    /// Whether `path`, as returned by [`normalise`], matches.
    pub(crate) fn matches(&self, path: &NormalPath<'_>) -> bool {
        match &self.text {
            Some(text) => text.matches(&path.0),
            None => self.regex.is_match(&path.0),
        }
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Pattern {}

/// The regex of one segment, including the `/` before it.
fn segment_regex(segment: &str) -> Result<String, String> {
    const ONE: &str = "/[^/]+";
    const ANY_SEGMENTS: &str = "(?:/[^/]+)*";
    if segment.is_empty() {
        return Err("empty segment (`//`): write one `/`".into());
    }
    match segment {
        "*" => return Ok(ONE.into()),
        // Zero or more segments, anywhere: `/api/**/admin` is `/api/admin` too.
        "**" => return Ok(ANY_SEGMENTS.into()),
        // Clerk's `/dashboard/(.*)`: the segment and all below it, or nothing.
        "(.*)" => return Ok("(?:/.*)?".into()),
        _ => {}
    }
    if let Some(name) = segment.strip_prefix(':') {
        return param_name(name).map(|()| ONE.into());
    }
    if let Some(inner) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
        return match inner.strip_prefix('*') {
            // Axum's catch-all; like `**`, it also covers the parent path.
            Some(name) => param_name(name).map(|()| ANY_SEGMENTS.into()),
            None => param_name(inner).map(|()| ONE.into()),
        };
    }
    let mut regex = String::from("/");
    let mut chars = segment.char_indices().peekable();
    while let Some((at, c)) = chars.next() {
        match c {
            '*' if chars.peek().is_some_and(|(_, next)| *next == '*') => {
                return Err(format!("`**` in `{segment}` must be a whole segment: `/a/**/b`"));
            }
            // A glob within one segment: `/files/*.pdf`.
            '*' => regex.push_str("[^/]*"),
            '(' => {
                let end =
                    segment[at..].find(')').map(|i| at + i).ok_or_else(|| format!("unclosed `(` in `{segment}`"))?;
                regex.push_str(&group_regex(&segment[at + 1..end])?);
                while chars.next_if(|(i, _)| *i <= end).is_some() {}
            }
            ')' => return Err(format!("`)` without `(` in `{segment}`")),
            ':' | '{' | '}' => {
                return Err(format!(
                    "a parameter must be a whole segment (`/users/:id` or `/users/{{id}}`), in `{segment}`"
                ));
            }
            '%' => return Err("percent-escapes are not needed: write the decoded character".into()),
            '?' | '#' => return Err(format!("`{c}` starts a query or fragment, which rules never see")),
            '[' | ']' | '+' | '\\' | '^' | '$' | '|' => {
                return Err(format!(
                    "`{c}` is not supported (only `*`, `**`, `:param`, `{{param}}`, `(.*)` and `(a|b)` are)"
                ));
            }
            c => regex.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    Ok(regex)
}

/// `(.*)` (any characters, `/` included, as in Clerk's matcher) or
/// `(a|b|...)`: one of these literal texts.
fn group_regex(group: &str) -> Result<String, String> {
    if group == ".*" {
        return Ok(".*".into());
    }
    let mut alternatives = Vec::new();
    for alternative in group.split('|') {
        if alternative.is_empty() {
            return Err(format!("empty alternative in `({group})`"));
        }
        if let Some(c) = alternative.chars().find(|c| !is_literal(*c)) {
            return Err(format!("`{c}` in `({group})`: alternatives are plain text (or the whole group is `(.*)`)"));
        }
        alternatives.push(regex::escape(alternative));
    }
    Ok(format!("(?:{})", alternatives.join("|")))
}

fn is_literal(c: char) -> bool {
    !matches!(c, '*' | '(' | ')' | '{' | '}' | ':' | '%' | '?' | '#' | '[' | ']' | '+' | '\\' | '^' | '$' | '|' | '/')
        && !c.is_control()
}

fn param_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid { Ok(()) } else { Err(format!("`{name}` is not a parameter name (letters, digits, `_`)")) }
}

/// A path ready for matching: decoded, `.`/`..` resolved, no `//`, no
/// trailing `/`, and the root as the empty string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NormalPath<'a>(Cow<'a, str>);

/// Decodes percent-escapes (but `%2F`, which is data inside a segment),
/// collapses `//` and resolves `.` and `..`, so that `/%61dmin`,
/// `/admin/../admin` or `//admin` cannot slip past a rule for `/admin`:
/// frameworks that route on the decoded path would serve `/admin` for them.
pub(crate) fn normalise(path: &str) -> NormalPath<'_> {
    // Most paths are already normal: borrow them (one scan, no allocation).
    let trimmed = path.strip_suffix('/').unwrap_or(path);
    let is_normal = trimmed.is_empty()
        || (trimmed.starts_with('/')
            && !trimmed.contains('%')
            && trimmed[1..].split('/').all(|segment| !matches!(segment, "" | "." | "..")));
    if is_normal {
        return NormalPath(Cow::Borrowed(trimmed));
    }
    let decoded = decode_except_slash(path);
    let mut normal = String::with_capacity(decoded.len());
    let mut kept = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                if let Some(start) = kept.pop() {
                    normal.truncate(start);
                }
            }
            s => {
                kept.push(normal.len());
                normal.push('/');
                normal.push_str(s);
            }
        }
    }
    NormalPath(Cow::Owned(normal))
}

fn decode_except_slash(path: &str) -> Cow<'_, str> {
    if !path.contains('%') {
        return path.into();
    }
    let mut out = String::with_capacity(path.len());
    let mut rest = path;
    while let Some(index) = rest.to_ascii_lowercase().find("%2f") {
        out.push_str(&percent_encoding::percent_decode_str(&rest[..index]).decode_utf8_lossy());
        out.push_str("%2F");
        rest = &rest[index + 3..];
    }
    out.push_str(&percent_encoding::percent_decode_str(rest).decode_utf8_lossy());
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, path: &str) -> bool {
        Pattern::parse(pattern).unwrap_or_else(|e| panic!("{e}")).matches(&normalise(path))
    }

    /// Each form, with paths it must match and paths it must not.
    #[test]
    fn every_form_matches_what_its_docs_say() {
        let table: &[(&str, &[&str], &[&str])] = &[
            ("/", &["/", "", "//", "/./", "/x/.."], &["/x"]),
            ("/exact", &["/exact", "/exact/", "//exact", "/%65xact", "/x/../exact"], &["/exactly", "/exact/x", "/"]),
            ("/api/*", &["/api/me", "/api/%2F"], &["/api", "/api/me/deeper", "/apix/me"]),
            ("/org/*/billing", &["/org/acme/billing", "/org/a%2Fb/billing"], &["/org/billing", "/org/a/b/billing"]),
            ("/users/:id", &["/users/1", "/users/%31", "/users/1/"], &["/users", "/users/1/edit"]),
            ("/users/{id}", &["/users/1", "/users/x.y"], &["/users", "/users/1/edit"]),
            ("/files/{*path}", &["/files", "/files/a", "/files/a/b"], &["/filesx", "/file"]),
            ("/files/*.pdf", &["/files/a.pdf", "/files/%61.pdf", "/files/.pdf"], &["/files/a.pdfx", "/files/a/b.pdf"]),
            ("/admin/**", &["/admin", "/admin/x", "/admin/x/y", "/%61dmin/x"], &["/adminx", "/x/admin"]),
            ("/api/**/admin", &["/api/admin", "/api/v1/admin", "/api/v1/x/admin"], &["/api/v1", "/api/admin/x"]),
            ("/**", &["/", "/a", "/a/b"], &[]),
            ("/dashboard(.*)", &["/dashboard", "/dashboard/x/y", "/dashboardx"], &["/dash", "/x/dashboard"]),
            ("/dashboard/(.*)", &["/dashboard", "/dashboard/x/y"], &["/dashboardx"]),
            ("/(api|trpc)(.*)", &["/api", "/api/x", "/trpc/x", "/trpcx"], &["/", "/apx", "/x/api"]),
            ("/(.*)", &["/", "/a/b"], &[]),
            ("/v(1|2)/users", &["/v1/users", "/v2/users"], &["/v3/users", "/v12/users"]),
            ("/café", &["/café", "/caf%C3%A9"], &["/cafe"]),
            ("/a.b", &["/a.b"], &["/axb"]),
        ];
        for (pattern, hits, misses) in table {
            for path in *hits {
                assert!(matches(pattern, path), "`{pattern}` should match `{path}`");
            }
            for path in *misses {
                assert!(!matches(pattern, path), "`{pattern}` should not match `{path}`");
            }
        }
        // The plain-text fast path answers as the regex does, on every path.
        let paths: Vec<NormalPath<'_>> =
            table.iter().flat_map(|(_, hits, misses)| hits.iter().chain(*misses)).map(|p| normalise(p)).collect();
        let mut fast = 0;
        for (source, _, _) in table {
            let pattern = Pattern::parse(source).unwrap_or_else(|e| panic!("{e}"));
            let Some(text) = &pattern.text else { continue };
            fast += 1;
            for path in &paths {
                assert_eq!(text.matches(&path.0), pattern.regex.is_match(&path.0), "`{source}` on `{}`", path.0);
            }
        }
        assert_eq!(fast, 7, "the plain-text forms in the table");
    }

    #[test]
    fn patterns_it_cannot_interpret_are_refused() {
        for pattern in [
            "",
            "admin",
            "*",
            "//admin",
            "/a**b",
            "/a/**x",
            "/users/:",
            "/users/:1d",
            "/users/{}",
            "/users/{id",
            "/users/id}",
            "/users/user-{id}",
            "/users/:id.json",
            "/(api|trpc",
            "/api)",
            "/(api|)",
            "/(a*|b)",
            "/(a/b)",
            "/users/[id]",
            "/a+",
            "/a?b",
            "/a#b",
            "/a\\b",
            "/^a$",
            "/a|b",
            "/caf%C3%A9",
        ] {
            let error = Pattern::parse(pattern).expect_err(pattern);
            assert_eq!(error.pattern, pattern);
            assert!(!error.problem.is_empty());
        }
    }

    #[test]
    fn errors_say_what_to_write() {
        let error = Pattern::parse("/users/[id]").unwrap_err();
        assert!(error.to_string().starts_with("route pattern `/users/[id]`: `[` is not supported"), "{error}");
        let error = Pattern::parse("admin").unwrap_err();
        assert_eq!(error.to_string(), "route pattern `admin`: must start with `/`");
    }

    #[test]
    fn normalising_resolves_dots_and_keeps_encoded_slashes_in_their_segment() {
        let normal = |path: &str| normalise(path).0.into_owned();
        assert_eq!(normal("/a%2Fb/c"), "/a%2Fb/c");
        assert_eq!(normal("/a%2fb"), "/a%2Fb");
        assert_eq!(normal("/a/./b/../c//"), "/a/c");
        assert_eq!(normal("/../.."), "");
        assert_eq!(normal("/x/%2e%2e/admin"), "/admin");
        assert_eq!(normal("/"), "");
        assert_eq!(normal("/a/b/"), "/a/b");
        assert_eq!(normal("a/b"), "/a/b", "no leading slash: made absolute");
        assert!(matches!(normalise("/a/b").0, Cow::Borrowed(_)), "a normal path is borrowed");
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::{Pattern, normalise};

    proptest! {
        /// Any input parses or is refused, never panics; a normalised path
        /// has no empty, `.` or `..` segment and no trailing `/`, and
        /// normalising it again changes nothing (unless decoding made a new
        /// escape, like `%%300` into `%00`: paths are decoded once, as
        /// frameworks route them).
        #[test]
        fn normalising_is_total_and_idempotent(path in "[/a-z.%2fF0-9]{0,40}") {
            let normal = normalise(&path);
            let text = normal.0.as_ref();
            prop_assert!(text.is_empty() || text.starts_with('/'), "{text:?}");
            prop_assert!(!text.ends_with('/'), "{text:?}");
            for segment in text.split('/').skip(1) {
                prop_assert!(!matches!(segment, "" | "." | ".."), "{text:?}");
            }
            if !text.contains('%') {
                let again = normalise(text);
                prop_assert_eq!(again.0.as_ref(), text);
            }
            let _ = Pattern::parse(&path);
        }

        /// A rule for `/admin/**` covers every spelling of a path under
        /// `/admin` that a framework would route there.
        #[test]
        fn no_spelling_slips_past_a_prefix_rule(
            rest in "(/[a-z0-9]{1,8}){0,3}",
            noise in prop::sample::select(vec!["", "/.", "/x/..", "//", "/./"]),
            encode_first in any::<bool>(),
        ) {
            let rule = Pattern::parse("/admin/**").map_err(|e| TestCaseError::fail(e.to_string()))?;
            let head = if encode_first { "/%61dmin" } else { "/admin" };
            let path = format!("{noise}{head}{rest}");
            prop_assert!(rule.matches(&normalise(&path)), "{path} slipped past /admin/**");
        }
    }
}
