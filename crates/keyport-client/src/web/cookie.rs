//! The session cookie: secure defaults, one place that writes `Set-Cookie`.

use std::time::{Duration, SystemTime};

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};

/// The cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Sent on same-site requests and top-level navigations.
    Lax,
    /// Sent on same-site requests only.
    Strict,
    /// Sent everywhere (needs `Secure`).
    None,
}

/// How the session cookie is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CookieSettings {
    /// Cookie name [default: `__Host-keyport_session`]. The `__Host-` prefix
    /// makes browsers insist on `Secure`, `Path=/` and no `Domain`.
    pub name: String,
    /// Send only over HTTPS (and to `localhost`) [default: true].
    pub secure: bool,
    /// Hide from JavaScript [default: true].
    pub http_only: bool,
    /// [default: Lax].
    pub same_site: SameSite,
    /// [default: `/`].
    pub path: String,
}

impl Default for CookieSettings {
    fn default() -> Self {
        Self {
            name: "__Host-keyport_session".into(),
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            path: "/".into(),
        }
    }
}

impl CookieSettings {
    /// `Set-Cookie` value carrying `token` until `expires_at`.
    #[expect(clippy::disallowed_methods, reason = "Max-Age counts from now on the browser's wall clock")]
    pub fn issue(&self, token: &str, expires_at: SystemTime) -> String {
        let max_age = expires_at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO).as_secs();
        format!("{}={token}; {}; Max-Age={max_age}", self.name, self.attributes())
    }

    /// `Set-Cookie` value that deletes the cookie.
    pub fn clear(&self) -> String {
        format!("{}=; {}; Max-Age=0", self.name, self.attributes())
    }

    /// `Set-Cookie` value binding an OAuth flow to this browser for 10 minutes.
    /// `SameSite=Lax` still sends it on the provider's top-level redirect back.
    pub fn issue_oauth_binding(&self, binding: &str) -> String {
        format!("{}={binding}; {}; Max-Age=600", self.oauth_binding_name(), self.binding_attributes())
    }

    /// `Set-Cookie` value deleting the OAuth binding cookie.
    pub fn clear_oauth_binding(&self) -> String {
        format!("{}=; {}; Max-Age=0", self.oauth_binding_name(), self.binding_attributes())
    }

    /// The OAuth binding in a `Cookie` request header, if present.
    pub fn read_oauth_binding<'a>(&self, cookie_header: &'a str) -> Option<&'a str> {
        read_named(cookie_header, &self.oauth_binding_name())
    }

    /// `Set-Cookie` value binding an email sign-in to this browser for 10
    /// minutes (the longest a sign-in link or code works).
    pub fn issue_email_binding(&self, binding: &str) -> String {
        format!("{}={binding}; {}; Max-Age=600", self.email_binding_name(), self.binding_attributes())
    }

    /// `Set-Cookie` value deleting the email sign-in binding cookie.
    pub fn clear_email_binding(&self) -> String {
        format!("{}=; {}; Max-Age=0", self.email_binding_name(), self.binding_attributes())
    }

    /// The email sign-in binding in a `Cookie` request header, if present.
    pub fn read_email_binding<'a>(&self, cookie_header: &'a str) -> Option<&'a str> {
        read_named(cookie_header, &self.email_binding_name())
    }

    /// `Set-Cookie` value keeping a sign-in's second-factor challenge in
    /// this browser until it expires (at most 10 minutes), with the passkey
    /// request it offers, if any, for the page that asks for the factor
    /// (after a `.`, base64url: the challenge itself has no `.`).
    #[expect(clippy::disallowed_methods, reason = "Max-Age counts from now on the browser's wall clock")]
    pub fn issue_challenge(&self, challenge: &str, passkey_options: Option<&str>, expires_at: SystemTime) -> String {
        let max_age = expires_at.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO).as_secs().min(600);
        let options =
            passkey_options.map(|options| format!(".{}", URL_SAFE_NO_PAD.encode(options))).unwrap_or_default();
        format!("{}={challenge}{options}; {}; Max-Age={max_age}", self.challenge_name(), self.binding_attributes())
    }

    /// `Set-Cookie` value that deletes the challenge cookie.
    pub fn clear_challenge(&self) -> String {
        format!("{}=; {}; Max-Age=0", self.challenge_name(), self.binding_attributes())
    }

    /// The challenge in a `Cookie` request header, if set.
    pub fn read_challenge<'a>(&self, cookie_header: &'a str) -> Option<&'a str> {
        let value = read_named(cookie_header, &self.challenge_name())?;
        Some(value.split_once('.').map_or(value, |(challenge, _)| challenge))
    }

    /// The passkey request options the challenge cookie carries, if any.
    pub fn read_challenge_passkey_options(&self, cookie_header: &str) -> Option<String> {
        let (_, options) = read_named(cookie_header, &self.challenge_name())?.split_once('.')?;
        String::from_utf8(URL_SAFE_NO_PAD.decode(options).ok()?).ok()
    }

    /// `Set-Cookie` value binding a passkey sign-in's ceremony to this
    /// browser for 5 minutes (the ceremony's lifetime).
    pub fn issue_passkey_ceremony(&self, ceremony: &str) -> String {
        format!("{}={ceremony}; {}; Max-Age=300", self.passkey_name(), self.binding_attributes())
    }

    /// `Set-Cookie` value deleting the passkey ceremony cookie.
    pub fn clear_passkey_ceremony(&self) -> String {
        format!("{}=; {}; Max-Age=0", self.passkey_name(), self.binding_attributes())
    }

    /// The passkey sign-in's ceremony in a `Cookie` request header, if set.
    pub fn read_passkey_ceremony<'a>(&self, cookie_header: &'a str) -> Option<&'a str> {
        read_named(cookie_header, &self.passkey_name())
    }

    fn passkey_name(&self) -> String {
        self.binding_name("keyport_passkey")
    }

    fn challenge_name(&self) -> String {
        self.binding_name("keyport_challenge")
    }

    fn oauth_binding_name(&self) -> String {
        self.binding_name("keyport_oauth")
    }

    fn email_binding_name(&self) -> String {
        self.binding_name("keyport_email")
    }

    /// `base`, with the `__Host-` prefix when the session cookie has it.
    fn binding_name(&self, base: &str) -> String {
        let prefix = if self.name.starts_with("__Host-") { "__Host-" } else { "" };
        format!("{prefix}{base}")
    }

    fn binding_attributes(&self) -> String {
        // Lax, whatever the session cookie uses: Strict would drop it on the
        // provider's redirect back.
        let secure = if self.secure || self.name.starts_with("__Host-") { "; Secure" } else { "" };
        format!("Path=/; HttpOnly{secure}; SameSite=Lax")
    }

    /// The cookie's value in a `Cookie` request header, if present.
    pub fn read<'a>(&self, cookie_header: &'a str) -> Option<&'a str> {
        cookie_header
            .split(';')
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.name)
            .map(|(_, value)| value.trim_matches('"'))
            .filter(|value| !value.is_empty())
    }

    fn attributes(&self) -> String {
        // The `__Host-` prefix is void without these; enforce them.
        let host_only = self.name.starts_with("__Host-");
        let path = if host_only { "/" } else { &self.path };
        let mut attributes = format!("Path={path}");
        if self.http_only {
            attributes.push_str("; HttpOnly");
        }
        if self.secure || host_only || self.same_site == SameSite::None {
            attributes.push_str("; Secure");
        }
        attributes.push_str(match self.same_site {
            SameSite::Lax => "; SameSite=Lax",
            SameSite::Strict => "; SameSite=Strict",
            SameSite::None => "; SameSite=None",
        });
        attributes
    }
}

/// The value of cookie `name` in a `Cookie` request header, if set.
fn read_named<'a>(cookie_header: &'a str, name: &str) -> Option<&'a str> {
    cookie_header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(cookie, _)| *cookie == name)
        .map(|(_, value)| value)
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[expect(clippy::disallowed_methods, reason = "Max-Age is relative to the wall clock")]
    fn issues_with_secure_defaults() {
        let cookie = CookieSettings::default().issue("kp_a.b", SystemTime::now() + Duration::from_secs(3600));
        assert!(cookie.starts_with("__Host-keyport_session=kp_a.b; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age="));
        let max_age: u64 = cookie.rsplit('=').next().unwrap().parse().unwrap();
        assert!((3590..=3600).contains(&max_age));
    }

    #[test]
    fn host_prefix_forces_its_rules() {
        let settings = CookieSettings { secure: false, path: "/app".into(), ..CookieSettings::default() };
        assert!(settings.clear().contains("Path=/; HttpOnly; Secure"));
    }

    #[test]
    fn reads_its_own_cookie_only() {
        let settings = CookieSettings::default();
        assert_eq!(settings.read("a=1; __Host-keyport_session=kp_x.y; b=2"), Some("kp_x.y"));
        assert_eq!(settings.read("keyport_session=kp_x.y"), None);
        assert_eq!(settings.read("__Host-keyport_session="), None);
    }

    #[test]
    #[expect(clippy::disallowed_methods, reason = "Max-Age is relative to the wall clock")]
    fn the_challenge_cookie_carries_its_passkey_request() {
        let settings = CookieSettings::default();
        let expires = SystemTime::now() + Duration::from_secs(300);
        let options = r#"{"challenge":"abc","allowCredentials":[{"id":"x;y=z"}]}"#;
        let set = settings.issue_challenge("kpc_secret", Some(options), expires);
        let value = set.split(';').next().unwrap().trim_start_matches("__Host-keyport_challenge=");
        assert!(value.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)), "cookie-safe: {value}");
        let header = format!("a=1; __Host-keyport_challenge={value}");
        assert_eq!(settings.read_challenge(&header), Some("kpc_secret"));
        assert_eq!(settings.read_challenge_passkey_options(&header).as_deref(), Some(options));
        // Without passkeys: the challenge alone, and no request.
        let plain = settings.issue_challenge("kpc_secret", None, expires);
        let header = plain.split(';').next().unwrap();
        assert_eq!(settings.read_challenge(header), Some("kpc_secret"));
        assert_eq!(settings.read_challenge_passkey_options(header), None);
        assert_eq!(settings.read_challenge_passkey_options("__Host-keyport_challenge=kpc_x.%%%"), None);
    }

    #[test]
    fn the_passkey_ceremony_cookie_is_a_short_lived_binding() {
        let settings = CookieSettings::default();
        let set = settings.issue_passkey_ceremony("kpk_abc");
        assert_eq!(set, "__Host-keyport_passkey=kpk_abc; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=300");
        assert_eq!(settings.read_passkey_ceremony("__Host-keyport_passkey=kpk_abc; x=1"), Some("kpk_abc"));
        assert!(settings.clear_passkey_ceremony().ends_with("Max-Age=0"));
        let plain = CookieSettings { name: "session".into(), secure: false, ..CookieSettings::default() };
        assert!(
            plain
                .issue_passkey_ceremony("kpk_abc")
                .starts_with("keyport_passkey=kpk_abc; Path=/; HttpOnly; SameSite=Lax")
        );
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::CookieSettings;

    proptest! {
        /// Any `Cookie` header reads without panicking, and what is read is
        /// the value of the session cookie itself, never of another cookie
        /// whose name merely ends or starts the same.
        #[test]
        fn the_session_cookie_is_read_from_any_header(
            others in prop::collection::vec(("[a-zA-Z_-]{1,20}", "[ -~]{0,20}"), 0..5),
            token in "kp_[A-Za-z0-9_-]{22}\\.[A-Za-z0-9_-]{43}",
            position in 0usize..6,
        ) {
            let settings = CookieSettings::default();
            let mut pairs: Vec<String> = others
                .iter()
                .filter(|(name, _)| *name != settings.name)
                .map(|(name, value)| format!("{name}={}", value.replace(';', ",")))
                .collect();
            pairs.push(format!("x{}=decoy", settings.name));
            let at = position.min(pairs.len());
            pairs.insert(at, format!("{}={token}", settings.name));
            let header = pairs.join("; ");
            prop_assert_eq!(settings.read(&header), Some(token.as_str()), "{}", header);
        }

        /// Junk never panics.
        #[test]
        fn junk_headers_are_read_safely(header in "\\PC{0,80}") {
            let _ = CookieSettings::default().read(&header);
        }
    }
}
