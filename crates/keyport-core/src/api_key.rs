//! API keys and the service accounts that own them: long-lived credentials
//! of machine callers.
//!
//! A key is `kpa_<id>.<secret>`, built as a session token is (see
//! [`crate::token`]): the id finds the key, only SHA-256 of the secret is
//! stored, and the fixed prefix lets secret scanners find a leaked key. A
//! key allows the permissions of its scopes that its owner's roles grant at
//! the time of the check, so it never outgrows its owner.
//!
//! The use cases are in `accounts/api_keys.rs` and
//! `accounts/service_accounts.rs`; storage is [`crate::store::ApiKeyStore`].

use std::{fmt, time::Duration};

use uuid::Uuid;

use crate::{
    clock::Timestamp,
    error::{Error, Result},
    token::{SESSION_ID_LEN, SecretHash, is_encoded, random_parts, split_parts},
    user::{User, UserId},
};

/// Prefix of every API key.
pub const API_KEY_PREFIX: &str = "kpa_";

/// Whether `raw` looks like an API key rather than a session token: what
/// decides which check a credential gets. Not a validation.
pub fn is_api_key(raw: &str) -> bool {
    raw.starts_with(API_KEY_PREFIX)
}

/// Public identifier of an API key (the lookup half of the key).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ApiKeyId(String);

impl ApiKeyId {
    /// Validates a key id sent by a client.
    pub fn parse(raw: &str) -> Result<Self> {
        if raw.is_empty() {
            return Err(Error::invalid("api_key_id", "must not be empty"));
        }
        if !is_encoded(raw, SESSION_ID_LEN) {
            return Err(Error::invalid("api_key_id", "is not an API key id"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// Wraps an id read back from storage.
    pub fn from_trusted(id: String) -> Self {
        Self(id)
    }

    /// The encoded id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ApiKeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An API key as handed to its creator, once. Its secret never reaches
/// storage.
pub struct ApiKeyToken {
    id: ApiKeyId,
    secret: String,
}

impl ApiKeyToken {
    /// A fresh key from the operating system's CSPRNG.
    pub fn generate() -> Result<Self> {
        let (id, secret) = random_parts()?;
        Ok(Self { id: ApiKeyId(id), secret })
    }

    /// Parses a key sent by a client; any deviation from the exact format is
    /// [`Error::Unauthenticated`].
    pub fn parse(raw: &str) -> Result<Self> {
        let (id, secret) = split_parts(raw, API_KEY_PREFIX).ok_or(Error::Unauthenticated)?;
        Ok(Self { id: ApiKeyId(id.to_owned()), secret: secret.to_owned() })
    }

    /// The key this token opens.
    pub fn id(&self) -> &ApiKeyId {
        &self.id
    }

    /// SHA-256 of the secret, as stored.
    pub fn secret_hash(&self) -> SecretHash {
        SecretHash::of(&self.secret)
    }

    /// The key's wire form. Handle with care: it is a bearer credential.
    pub fn expose(&self) -> String {
        format!("{API_KEY_PREFIX}{}.{}", self.id, self.secret)
    }
}

impl fmt::Debug for ApiKeyToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyToken").field("id", &self.id).finish_non_exhaustive()
    }
}

/// Stable identifier of a service account (UUIDv7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceAccountId(pub Uuid);

impl ServiceAccountId {
    /// A fresh id for a service account created at `at`.
    pub fn generate(at: Timestamp) -> Self {
        Self(at.uuid_v7())
    }

    /// Validates an id sent by a client: a UUID in canonical
    /// (lower-case, hyphenated) form.
    pub fn parse(raw: &str) -> Result<Self> {
        match Uuid::try_parse(raw) {
            Ok(id) if id.hyphenated().to_string() == raw => Ok(Self(id)),
            _ => Err(Error::invalid("service_account_id", "is not a service account id")),
        }
    }
}

impl fmt::Display for ServiceAccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Who owns a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyOwner {
    /// A user, for their own scripts and integrations.
    User(UserId),
    /// A service account.
    ServiceAccount(ServiceAccountId),
}

impl KeyOwner {
    /// The owner's id, whichever kind it is (ids never collide: both are
    /// UUIDv7 drawn at random).
    pub fn id(&self) -> Uuid {
        match self {
            Self::User(id) => id.0,
            Self::ServiceAccount(id) => id.0,
        }
    }
}

/// A stored API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Public id, the lookup half of the key.
    pub id: ApiKeyId,
    /// What the key is for.
    pub name: String,
    /// SHA-256 of the key's secret.
    pub secret_hash: SecretHash,
    /// Who owns it.
    pub owner: KeyOwner,
    /// The permissions it may use, sorted; each from the catalogue when the
    /// key was created.
    pub scopes: Vec<String>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it stops working; `None` for never.
    pub expires_at: Option<Timestamp>,
    /// When it was last used, to within the policy's interval.
    pub last_used_at: Option<Timestamp>,
    /// Most checks per minute; 0 for no limit of its own.
    pub rate_limit_per_minute: u32,
    /// The key that replaced this one, while this one works out its grace.
    pub replaced_by: Option<ApiKeyId>,
}

impl ApiKey {
    /// Whether the key is past its expiry at `now`.
    pub fn is_expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }
}

/// A non-human principal that owns keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceAccount {
    /// Its id.
    pub id: ServiceAccountId,
    /// Its unique name.
    pub name: String,
    /// What it is for.
    pub description: String,
    /// Its roles, sorted and unique.
    pub roles: Vec<String>,
    /// When it was created.
    pub created_at: Timestamp,
}

/// The owner of a key, as read with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyHolder {
    /// A user's key.
    User(User),
    /// A service account's key.
    ServiceAccount(ServiceAccount),
}

impl KeyHolder {
    /// The owner's roles: what the key's scopes can reach.
    pub fn roles(&self) -> &[String] {
        match self {
            Self::User(user) => &user.roles,
            Self::ServiceAccount(account) => &account.roles,
        }
    }
}

/// A validated key and its owner: who is calling with it.
#[derive(Debug, Clone)]
pub struct KeyPrincipal {
    /// The key.
    pub key: ApiKey,
    /// Its owner.
    pub holder: KeyHolder,
    /// How long a subscribed cache may reuse this answer: zero for a key
    /// with a rate limit of its own, so that every check is counted.
    pub cache_ttl: Duration,
}

/// How API keys live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiKeyPolicy {
    /// Lifetime of a key created without one; `None` for keys that do not
    /// expire unless asked to.
    pub default_lifetime: Option<Duration>,
    /// Longest lifetime a key may be given.
    pub max_lifetime: Duration,
    /// A key's last use is written at most once per this interval, so that
    /// a check is a pure read nearly always.
    pub last_used_interval: Duration,
    /// Most keys one owner may have.
    pub max_per_owner: u64,
}

impl Default for ApiKeyPolicy {
    fn default() -> Self {
        const DAY: Duration = Duration::from_secs(24 * 3600);
        Self {
            default_lifetime: Some(90 * DAY),
            max_lifetime: 366 * DAY,
            last_used_interval: Duration::from_secs(300),
            max_per_owner: 100,
        }
    }
}

/// Longest a rotated key keeps working beside its replacement.
pub const MAX_ROTATION_GRACE: Duration = Duration::from_secs(7 * 24 * 3600);
/// Shortest lifetime a key may be given.
pub const MIN_LIFETIME: Duration = Duration::from_secs(60);
/// Longest key name, in characters.
pub const MAX_KEY_NAME_CHARS: usize = 64;
/// Longest service account description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 512;

/// A key or service account name: trimmed, 1-64 characters, no control
/// characters.
pub fn parse_key_name(raw: &str) -> Result<String> {
    let name = raw.trim();
    if name.is_empty() || name.chars().count() > MAX_KEY_NAME_CHARS {
        return Err(Error::invalid("name", "must be 1-64 characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid("name", "must not contain control characters"));
    }
    Ok(name.to_owned())
}

/// A service account's name: 1-64 of `a-z 0-9 _ - .`.
pub fn parse_service_account_name(raw: &str) -> Result<String> {
    let valid = (1..=64).contains(&raw.len())
        && raw.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'-' | b'.'));
    if valid { Ok(raw.to_owned()) } else { Err(Error::invalid("name", "must be 1-64 of a-z 0-9 _ - .")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::SessionToken;

    #[test]
    fn generated_keys_parse_back() {
        let key = ApiKeyToken::generate().unwrap();
        let wire = key.expose();
        assert!(wire.starts_with("kpa_") && is_api_key(&wire));
        let parsed = ApiKeyToken::parse(&wire).unwrap();
        assert_eq!(parsed.id(), key.id());
        assert!(parsed.secret_hash().verify(&key.secret_hash()));
    }

    #[test]
    fn keys_and_session_tokens_are_not_interchangeable() {
        let session = SessionToken::generate().unwrap().expose();
        assert!(!is_api_key(&session));
        assert!(ApiKeyToken::parse(&session).is_err());
        let key = ApiKeyToken::generate().unwrap().expose();
        assert!(SessionToken::parse(&key).is_err());
    }

    #[test]
    fn malformed_keys_are_unauthenticated() {
        let good = ApiKeyToken::generate().unwrap().expose();
        let cases = [
            String::new(),
            "kpa_".to_owned(),
            good[..good.len() - 1].to_owned(),
            format!("{good}A"),
            good.replacen('.', "!", 1),
            format!("kpa_{}", "=".repeat(good.len() - 4)),
            "kpa_".to_owned() + &"x".repeat(10_000),
        ];
        for bad in cases {
            assert!(matches!(ApiKeyToken::parse(&bad), Err(Error::Unauthenticated)), "{bad:?}");
        }
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let key = ApiKeyToken::generate().unwrap();
        let wire = key.expose();
        assert!(!format!("{key:?}").contains(wire.split_once('.').unwrap().1));
    }

    #[test]
    fn ids_and_names_are_validated() {
        let key = ApiKeyToken::generate().unwrap();
        assert!(ApiKeyId::parse(key.id().as_str()).is_ok());
        for bad in ["", "short", &"*".repeat(SESSION_ID_LEN)] {
            assert!(ApiKeyId::parse(bad).is_err(), "{bad:?}");
        }
        let id = ServiceAccountId::generate(Timestamp::from_unix_millis(1_700_000_000_000));
        assert_eq!(ServiceAccountId::parse(&id.to_string()).unwrap(), id);
        assert!(ServiceAccountId::parse(&id.to_string().to_uppercase()).is_err());
        assert!(ServiceAccountId::parse("").is_err());
        assert_eq!(parse_key_name("  ci deploys ").unwrap(), "ci deploys");
        for bad in ["", "   ", "a\u{7}b", &"x".repeat(65)] {
            assert!(parse_key_name(bad).is_err(), "{bad:?}");
        }
        assert!(parse_service_account_name("billing-sync.v2").is_ok());
        for bad in ["", "Billing", "a b", &"x".repeat(65)] {
            assert!(parse_service_account_name(bad).is_err(), "{bad:?}");
        }
    }
}

#[cfg(test)]
mod properties {
    use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
    use proptest::prelude::*;

    use super::*;

    /// Length of a well-formed key: the prefix, the id, the dot, the secret.
    const KEY_LEN: usize = API_KEY_PREFIX.len() + SESSION_ID_LEN + 1 + 43;

    proptest! {
        /// A client's key either is exactly the format, and then reads back
        /// as the same id and secret, or is `Unauthenticated`: never a
        /// panic, never another error. Besides any text, the inputs are
        /// text of exactly a key's length (what passes the length check),
        /// and keys of the right shape, some with the prefix in another
        /// case or another separator (a random final character decodes
        /// cleanly one time in four to sixteen, so both outcomes occur).
        #[test]
        fn any_string_parses_exactly_or_is_unauthenticated(
            raw in prop_oneof![
                "\\PC{0,100}",
                "kpa_[A-Za-z0-9_.=+/-]{0,80}",
                "\\PC{1,70}".prop_map(|text| {
                    let mut text: String = text.chars().scan(0, |len, c| {
                        *len += c.len_utf8();
                        (*len <= KEY_LEN).then_some(c)
                    }).collect();
                    while text.len() < KEY_LEN {
                        text.push('A');
                    }
                    text
                }),
                "kpa_[A-Za-z0-9_-]{22}\\.[A-Za-z0-9_-]{43}",
                "[kK][pP][aA]_[A-Za-z0-9_-]{22}[.!][A-Za-z0-9_-]{43}",
            ]
        ) {
            match ApiKeyToken::parse(&raw) {
                Ok(key) => {
                    prop_assert_eq!(key.expose(), raw.as_str());
                    let (id, secret) = raw[API_KEY_PREFIX.len()..].split_once('.').unwrap_or_default();
                    prop_assert_eq!(key.id().as_str(), id);
                    prop_assert!(key.secret_hash().verify(&SecretHash::of(secret)));
                    prop_assert!(ApiKeyId::parse(id).is_ok(), "the id of a key is a valid key id");
                }
                Err(error) => prop_assert!(matches!(error, Error::Unauthenticated), "{error:?}"),
            }
        }

        /// Every key of the format parses, whatever its 128-bit id and
        /// 256-bit secret: the parser refuses nothing it should take.
        #[test]
        fn every_well_formed_key_parses_back(id in any::<[u8; 16]>(), secret in any::<[u8; 32]>()) {
            let (id, secret) = (URL_SAFE_NO_PAD.encode(id), URL_SAFE_NO_PAD.encode(secret));
            let wire = format!("{API_KEY_PREFIX}{id}.{secret}");
            let key = ApiKeyToken::parse(&wire).map_err(|e| TestCaseError::fail(format!("{wire}: {e:?}")))?;
            prop_assert_eq!(key.id().as_str(), id.as_str());
            prop_assert!(key.secret_hash().verify(&SecretHash::of(&secret)));
            prop_assert_eq!(key.expose(), wire);
        }

        /// Changing any one character of a real key makes it another key or
        /// no key: never the same key id with the same secret. Each case
        /// changes every position in turn, mostly to base64url characters,
        /// so that many changed keys still parse.
        #[test]
        fn a_changed_character_is_another_key(
            replacements in proptest::collection::vec(
                prop_oneof![3 => "[A-Za-z0-9_-]", 1 => "[ -~]", 1 => "\\PC"], KEY_LEN,
            ),
        ) {
            let key = ApiKeyToken::generate().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let wire: Vec<char> = key.expose().chars().collect();
            prop_assert_eq!(wire.len(), KEY_LEN);
            for (index, replacement) in replacements.iter().enumerate() {
                let new = replacement.chars().next().unwrap_or('A');
                if wire[index] == new {
                    continue;
                }
                let mut changed = wire.clone();
                changed[index] = new;
                let changed: String = changed.into_iter().collect();
                if let Ok(parsed) = ApiKeyToken::parse(&changed) {
                    prop_assert!(
                        parsed.id() != key.id() || !parsed.secret_hash().verify(&key.secret_hash()),
                        "{changed} opens the same key"
                    );
                }
            }
        }
    }
}
