//! GitHub: OAuth2 with PKCE through the `oauth2` crate, then the user API
//! for the id and the primary verified email.

use async_trait::async_trait;
use keyport_core::oauth::{AuthorizationRequest, ExternalIdentity, IdentityProvider, ProviderError, ProviderInfo};
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, PkceCodeChallenge, PkceCodeVerifier,
    RedirectUrl, Scope, TokenResponse, TokenUrl, basic::BasicClient,
};
use openidconnect::reqwest;
use serde::Deserialize;

use crate::settings::{ResolvedSettings, SettingsError};

/// GitHub, or a GitHub Enterprise server.
pub(crate) struct GitHubProvider {
    info: ProviderInfo,
    client_id: ClientId,
    client_secret: ClientSecret,
    authorize_url: AuthUrl,
    token_url: TokenUrl,
    api_base_url: String,
    scopes: Vec<String>,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct GitHubUser {
    id: u64,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct GitHubEmail {
    email: String,
    primary: bool,
    verified: bool,
}

impl GitHubProvider {
    pub(crate) fn new(
        settings: &ResolvedSettings,
        authorize_url: &str,
        token_url: &str,
        api_base_url: &str,
        http: reqwest::Client,
    ) -> Result<Self, SettingsError> {
        let id = &settings.info.id;
        Ok(Self {
            info: settings.info.clone(),
            client_id: ClientId::new(settings.client_id.clone()),
            client_secret: ClientSecret::new(settings.client_secret.clone()),
            authorize_url: AuthUrl::new(authorize_url.to_owned())
                .map_err(|e| SettingsError(format!("{id}: authorize_url: {e}")))?,
            token_url: TokenUrl::new(token_url.to_owned())
                .map_err(|e| SettingsError(format!("{id}: token_url: {e}")))?,
            api_base_url: api_base_url.to_owned(),
            scopes: settings.scopes.clone(),
            http,
        })
    }

    async fn api<T: for<'de> Deserialize<'de>>(&self, path: &str, token: &str) -> Result<T, ProviderError> {
        let response = self
            .http
            .get(format!("{}{path}", self.api_base_url))
            .bearer_auth(token)
            .header("accept", "application/vnd.github+json")
            .header("user-agent", "keyport")
            .send()
            .await
            .map_err(|e| ProviderError::Unavailable(format!("GitHub API {path}: {e}")))?;
        if !response.status().is_success() {
            return Err(ProviderError::Refused(format!("GitHub API {path}: HTTP {}", response.status())));
        }
        let body = response.bytes().await.map_err(|e| ProviderError::Unavailable(format!("GitHub API {path}: {e}")))?;
        serde_json::from_slice(&body).map_err(|e| ProviderError::Refused(format!("GitHub API {path}: {e}")))
    }
}

#[async_trait]
impl IdentityProvider for GitHubProvider {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    async fn authorization_request(&self, redirect_uri: &str) -> Result<AuthorizationRequest, ProviderError> {
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| ProviderError::Refused(format!("redirect URI: {e}")))?;
        let client = BasicClient::new(self.client_id.clone())
            .set_auth_uri(self.authorize_url.clone())
            .set_redirect_uri(redirect);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client.authorize_url(CsrfToken::new_random);
        for scope in &self.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state) = request.set_pkce_challenge(challenge).url();
        Ok(AuthorizationRequest {
            url: url.to_string(),
            state: state.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            nonce: None,
        })
    }

    async fn exchange(
        &self,
        code: &str,
        redirect_uri: &str,
        pkce_verifier: &str,
        _nonce: Option<&str>,
    ) -> Result<ExternalIdentity, ProviderError> {
        let redirect = RedirectUrl::new(redirect_uri.to_owned())
            .map_err(|e| ProviderError::Refused(format!("redirect URI: {e}")))?;
        let client = BasicClient::new(self.client_id.clone())
            .set_client_secret(self.client_secret.clone())
            .set_token_uri(self.token_url.clone())
            .set_redirect_uri(redirect)
            // GitHub reads the client credentials from the form body.
            .set_auth_type(AuthType::RequestBody);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| ProviderError::Refused(format!("code exchange: {e}")))?;
        let token = response.access_token().secret();
        let user: GitHubUser = self.api("/user", token).await?;
        let emails: Vec<GitHubEmail> = self.api("/user/emails", token).await?;
        let primary = emails.into_iter().find(|email| email.primary);
        Ok(ExternalIdentity {
            subject: user.id.to_string(),
            email_verified: primary.as_ref().is_some_and(|email| email.verified),
            email: primary.map(|email| email.email),
            name: user.name,
        })
    }
}
