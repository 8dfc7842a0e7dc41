//! Provider configuration, as written in Keyport's config file.

use keyport_core::oauth::{ProviderInfo, ProviderKind};
use serde::{Deserialize, Serialize};

/// A provider configuration that cannot work.
#[derive(Debug, thiserror::Error)]
#[error("OAuth provider configuration: {0}")]
pub struct SettingsError(pub String);

/// The protocol a configured provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKindSetting {
    /// Any OpenID Connect provider; needs `issuer`.
    Oidc,
    /// Google: OpenID Connect at `https://accounts.google.com`.
    Google,
    /// GitHub's OAuth2 and user API.
    Github,
}

/// One `[[oauth.providers]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSettings {
    /// Stable id used in API calls and stored with linked accounts.
    pub id: String,
    /// Protocol.
    pub kind: ProviderKindSetting,
    /// Name for the "Sign in with ..." button [default: from the id].
    #[serde(default)]
    pub display_name: String,
    /// OpenID Connect issuer URL (discovery at `/.well-known/openid-configuration`).
    #[serde(default)]
    pub issuer: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret; prefer `client_secret_env`.
    #[serde(default)]
    pub client_secret: String,
    /// Name of an environment variable holding the client secret.
    #[serde(default)]
    pub client_secret_env: String,
    /// Scopes to request [default: `openid email profile`, or GitHub's `read:user user:email`].
    #[serde(default)]
    pub scopes: Vec<String>,
    /// GitHub: authorization endpoint [default: GitHub's].
    #[serde(default)]
    pub authorize_url: String,
    /// GitHub: token endpoint [default: GitHub's].
    #[serde(default)]
    pub token_url: String,
    /// GitHub: REST API base [default: `https://api.github.com`].
    #[serde(default)]
    pub api_base_url: String,
}

/// Settings with defaults applied and the secret read.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedSettings {
    pub(crate) info: ProviderInfo,
    pub(crate) kind: Resolved,
    pub(crate) client_id: String,
    pub(crate) client_secret: String,
    pub(crate) scopes: Vec<String>,
}

/// Protocol-specific endpoints.
#[derive(Debug, Clone)]
pub(crate) enum Resolved {
    Oidc { issuer: String },
    GitHub { authorize_url: String, token_url: String, api_base_url: String },
}

impl ProviderSettings {
    pub(crate) fn resolve(&self) -> Result<ResolvedSettings, SettingsError> {
        let valid_id = !self.id.is_empty()
            && self.id.len() <= 64
            && self.id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !valid_id {
            return Err(SettingsError(format!("provider id {:?} must be 1-64 of a-z 0-9 - _", self.id)));
        }
        let client_secret = if self.client_secret_env.is_empty() {
            self.client_secret.clone()
        } else {
            std::env::var(&self.client_secret_env).map_err(|_| {
                SettingsError(format!("{}: environment variable {} is not set", self.id, self.client_secret_env))
            })?
        };
        let or = |value: &str, default: &str| if value.is_empty() { default.to_owned() } else { value.to_owned() };
        let (kind, protocol, default_scopes): (Resolved, ProviderKind, &[&str]) = match self.kind {
            ProviderKindSetting::Oidc if self.issuer.is_empty() => {
                return Err(SettingsError(format!("{}: an oidc provider needs `issuer`", self.id)));
            }
            ProviderKindSetting::Oidc => {
                (Resolved::Oidc { issuer: self.issuer.clone() }, ProviderKind::Oidc, &["openid", "email", "profile"])
            }
            ProviderKindSetting::Google => (
                Resolved::Oidc { issuer: or(&self.issuer, "https://accounts.google.com") },
                ProviderKind::Oidc,
                &["openid", "email", "profile"],
            ),
            ProviderKindSetting::Github => (
                Resolved::GitHub {
                    authorize_url: or(&self.authorize_url, "https://github.com/login/oauth/authorize"),
                    token_url: or(&self.token_url, "https://github.com/login/oauth/access_token"),
                    api_base_url: or(&self.api_base_url, "https://api.github.com").trim_end_matches('/').to_owned(),
                },
                ProviderKind::GitHub,
                &["read:user", "user:email"],
            ),
        };
        let scopes = if self.scopes.is_empty() {
            default_scopes.iter().map(|s| (*s).to_owned()).collect()
        } else {
            self.scopes.clone()
        };
        Ok(ResolvedSettings {
            info: ProviderInfo { id: self.id.clone(), display_name: or(&self.display_name, &self.id), kind: protocol },
            kind,
            client_id: self.client_id.clone(),
            client_secret,
            scopes,
        })
    }
}
