//! Return paths after sign-in, validated so they can never send a user to
//! another site (no open redirect).

/// `raw` if it is a safe same-origin path to redirect to, else `None`.
///
/// Safe: starts with a single `/`, holds no backslash, no control or
/// whitespace character, and no scheme or authority however it is encoded.
pub fn safe_return_path(raw: &str) -> Option<&str> {
    if raw.is_empty() || raw.len() > 2048 || !raw.starts_with('/') {
        return None;
    }
    if raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    // What a browser or a later decoding step might see.
    let decoded = percent_encoding::percent_decode_str(raw).decode_utf8().ok()?;
    for candidate in [raw, decoded.as_ref()] {
        if candidate.starts_with("//") || candidate.contains('\\') || candidate.chars().any(char::is_control) {
            return None;
        }
    }
    Some(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_local_paths() {
        for ok in ["/", "/dashboard", "/a/b?c=d&e=%20f", "/search?q=a/b"] {
            assert_eq!(safe_return_path(ok), Some(ok), "{ok}");
        }
    }

    #[test]
    fn refuses_other_sites() {
        for bad in [
            "",
            "https://evil.example",
            "//evil.example",
            "/\\evil.example",
            "\\\\evil.example",
            "/%2F/evil.example",
            "/%5Cevil.example",
            "javascript:alert(1)",
            "/\tevil",
            " /dashboard",
            "/%0d%0aSet-Cookie:x=y",
            "dashboard",
        ] {
            assert_eq!(safe_return_path(bad), None, "{bad:?}");
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::safe_return_path;

    proptest! {
        /// Whatever comes in, what is accepted is a path on this site: one
        /// leading slash, and no decoding of it reaches another host.
        #[test]
        fn an_accepted_path_never_leaves_the_site(raw in ".{0,64}|/[/\\\\%a-zA-Z0-9:@.?#=&_-]{0,48}") {
            if let Some(path) = safe_return_path(&raw) {
                prop_assert_eq!(path, raw.as_str());
                prop_assert!(path.starts_with('/') && !path.starts_with("//"));
                prop_assert!(!path.contains('\\'));
                let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
                prop_assert!(!decoded.starts_with("//") && !decoded.contains('\\'), "{decoded}");
                prop_assert!(!path.chars().any(|c| c.is_control() || c.is_whitespace()));
            }
        }

        /// Plain local paths are kept.
        #[test]
        fn plain_local_paths_are_accepted(path in "/([a-z0-9_-]{1,16}(/[a-z0-9_-]{1,16}){0,4})?") {
            prop_assert_eq!(safe_return_path(&path), Some(path.as_str()));
        }
    }
}
