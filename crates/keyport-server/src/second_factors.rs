//! `[second_factors]`: the keys that seal TOTP secrets at rest, and the
//! freshness and lifetime rules; `[passkeys]`: the WebAuthn relying party.
//!
//! On SQLite with no key configured, Keyport creates one in the data
//! directory (`second-factor.key`, readable by its owner only), so the
//! embedded default needs no setup. On PostgreSQL every replica must seal
//! and open with the same key, so it must be configured: starting without
//! one is an error that says so.

use std::{path::Path, time::Duration};

use keyport_core::second_factor::{FactorKey, FactorKeys, FactorSettings, PasskeySettings, RelyingParty};
use serde::{Deserialize, Serialize};

/// Name of the key file created in the data directory.
pub const KEY_FILE: &str = "second-factor.key";

/// The `[second_factors]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecondFactorsConfig {
    /// The name authenticator apps show next to the account.
    pub issuer: String,
    /// How recent a second factor must be for a sensitive call (and a
    /// sign-in for `EnrollTotp`), in seconds.
    pub fresh_for_secs: u64,
    /// How long a sign-in challenge works, in seconds (at most 600).
    pub challenge_ttl_secs: u64,
    /// The key that seals TOTP secrets: 32 bytes in base64
    /// (`openssl rand -base64 32`). Empty: on SQLite a key file in
    /// `data_dir`, on PostgreSQL an error.
    pub encryption_key: String,
    /// Earlier keys, still used to open secrets sealed with them.
    pub previous_keys: Vec<String>,
}

impl Default for SecondFactorsConfig {
    fn default() -> Self {
        let defaults = FactorSettings::default();
        Self {
            issuer: defaults.issuer,
            fresh_for_secs: defaults.fresh_for.as_secs(),
            challenge_ttl_secs: defaults.challenge_ttl.as_secs(),
            encryption_key: String::new(),
            previous_keys: Vec::new(),
        }
    }
}

/// The `[passkeys]` section: off until `rp_id` is set.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasskeysConfig {
    /// The relying-party id: the registrable domain passkeys are bound to
    /// (`example.com`, or `localhost` for development). Empty: passkeys off.
    pub rp_id: String,
    /// The name authenticators show; empty: `second_factors.issuer`.
    pub rp_name: String,
    /// The web origins allowed to run ceremonies
    /// (`https://app.example.com`), each the id or under it.
    pub origins: Vec<String>,
}

impl PasskeysConfig {
    /// The relying party, when passkeys are on. Ceremonies last `ttl`.
    pub fn relying_party(&self, issuer: &str, ttl: Duration) -> Result<Option<RelyingParty>, SecondFactorsError> {
        if self.rp_id.is_empty() {
            return Ok(None);
        }
        let rp_name = if self.rp_name.is_empty() { issuer } else { &self.rp_name };
        let settings =
            PasskeySettings { rp_id: self.rp_id.clone(), rp_name: rp_name.to_owned(), origins: self.origins.clone() };
        RelyingParty::new(&settings, ttl).map(Some).map_err(SecondFactorsError::Passkeys)
    }
}

/// Why the second-factor settings are unusable.
#[derive(Debug, thiserror::Error)]
pub enum SecondFactorsError {
    /// A key is malformed.
    #[error("second_factors.{field}: {problem}")]
    BadKey {
        /// The setting.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// PostgreSQL without a shared key.
    #[error(
        "second_factors.encryption_key must be set on PostgreSQL (the same key on every replica): \
         generate one with `openssl rand -base64 32`"
    )]
    KeyRequired,
    /// `[passkeys]` is wrong.
    #[error("{0}")]
    Passkeys(String),
    /// The key file could not be read or written.
    #[error("second-factor key file {path}: {cause}")]
    KeyFile {
        /// The file.
        path: String,
        /// Why.
        cause: std::io::Error,
    },
}

impl SecondFactorsConfig {
    /// The rules without the keys (those need I/O: [`Self::keys`]).
    pub fn rules(&self) -> FactorSettings {
        FactorSettings {
            issuer: self.issuer.clone(),
            fresh_for: Duration::from_secs(self.fresh_for_secs),
            challenge_ttl: Duration::from_secs(self.challenge_ttl_secs.min(600)),
            keys: None,
            ..FactorSettings::default()
        }
    }

    /// The sealing keys. `data_dir` is where the key file lives when no key
    /// is configured; `None` (PostgreSQL) requires one.
    pub fn keys(&self, data_dir: Option<&Path>) -> Result<FactorKeys, SecondFactorsError> {
        let current = if self.encryption_key.is_empty() {
            let dir = data_dir.ok_or(SecondFactorsError::KeyRequired)?;
            key_from_file(&dir.join(KEY_FILE))?
        } else {
            FactorKey::from_base64(&self.encryption_key)
                .map_err(|problem| SecondFactorsError::BadKey { field: "encryption_key", problem })?
        };
        let previous = self
            .previous_keys
            .iter()
            .map(|key| FactorKey::from_base64(key))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|problem| SecondFactorsError::BadKey { field: "previous_keys", problem })?;
        Ok(FactorKeys::new(current, previous))
    }
}

/// The key in `path`, created (owner-only) when missing.
fn key_from_file(path: &Path) -> Result<FactorKey, SecondFactorsError> {
    let failed = |cause| SecondFactorsError::KeyFile { path: path.display().to_string(), cause };
    let encoded = match std::fs::read_to_string(path) {
        Ok(encoded) => encoded,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let encoded = FactorKey::generate_base64().map_err(|e| failed(std::io::Error::other(e.to_string())))?;
            write_private(path, &encoded).map_err(failed)?;
            tracing::info!(path = %path.display(), "created the key that seals TOTP secrets; back it up with the database");
            encoded
        }
        Err(error) => return Err(failed(error)),
    };
    FactorKey::from_base64(&encoded).map_err(|problem| SecondFactorsError::BadKey { field: "encryption_key", problem })
}

/// Writes a new file readable by its owner only; refuses to overwrite, so
/// two processes starting at once cannot each write their own key.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => file.write_all(contents.as_bytes()),
        // Another process won the race: its key is the one.
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_gets_a_key_file_once_and_postgres_must_configure_one() {
        let dir = tempfile::tempdir().unwrap();
        let config = SecondFactorsConfig::default();
        let first = config.keys(Some(dir.path())).unwrap();
        let again = config.keys(Some(dir.path())).unwrap();
        let user = keyport_core::user::UserId::generate(keyport_core::Timestamp::from_unix_millis(1));
        let secret = keyport_core::second_factor::TotpSecret::generate().unwrap();
        let sealed = first.seal(&secret, user).unwrap();
        assert!(again.open(&sealed, user).is_ok(), "the file's key is reused, not replaced");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(KEY_FILE)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(config.keys(None), Err(SecondFactorsError::KeyRequired)));
    }

    #[test]
    fn configured_keys_must_be_32_bytes_of_base64() {
        let bad = SecondFactorsConfig { encryption_key: "short".into(), ..SecondFactorsConfig::default() };
        assert!(matches!(bad.keys(None), Err(SecondFactorsError::BadKey { field: "encryption_key", .. })));
        let key = FactorKey::generate_base64().unwrap();
        let previous = SecondFactorsConfig {
            encryption_key: key.clone(),
            previous_keys: vec!["nope".into()],
            ..SecondFactorsConfig::default()
        };
        assert!(matches!(previous.keys(None), Err(SecondFactorsError::BadKey { field: "previous_keys", .. })));
        let good = SecondFactorsConfig { encryption_key: key, ..SecondFactorsConfig::default() };
        assert!(good.keys(None).is_ok());
    }
}
