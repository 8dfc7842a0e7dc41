//! Keyport's sign-in providers: [`keyport_core::oauth::IdentityProvider`]
//! implemented for OpenID Connect (with the `openidconnect` crate: discovery,
//! PKCE, id_token signature, `iss`, `aud`, `nonce` and expiry checks) and for
//! GitHub (with the `oauth2` crate plus GitHub's user API).
//!
//! HTTP to providers never follows redirects (SSRF) and has a timeout.

mod github;
mod oidc;
mod settings;

use std::{sync::Arc, time::Duration};

use keyport_core::oauth::IdentityProvider;
use openidconnect::reqwest;

pub use settings::{ProviderKindSetting, ProviderSettings, SettingsError};

/// Builds the providers described by `settings`.
pub fn providers(settings: &[ProviderSettings]) -> Result<Vec<Arc<dyn IdentityProvider>>, SettingsError> {
    let http = reqwest::ClientBuilder::new()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| SettingsError(format!("HTTP client: {e}")))?;
    let mut ids = std::collections::HashSet::new();
    if let Some(duplicate) = settings.iter().find(|setting| !ids.insert(setting.id.as_str())) {
        return Err(SettingsError(format!("provider id {:?} is configured twice", duplicate.id)));
    }
    settings
        .iter()
        .map(|setting| {
            let resolved = setting.resolve()?;
            let provider: Arc<dyn IdentityProvider> = match &resolved.kind {
                settings::Resolved::Oidc { issuer } => {
                    Arc::new(oidc::OidcProvider::new(resolved.info.clone(), issuer, &resolved, http.clone())?)
                }
                settings::Resolved::GitHub { authorize_url, token_url, api_base_url } => Arc::new(
                    github::GitHubProvider::new(&resolved, authorize_url, token_url, api_base_url, http.clone())?,
                ),
            };
            Ok(provider)
        })
        .collect()
}
