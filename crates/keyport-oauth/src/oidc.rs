//! OpenID Connect providers, through the `openidconnect` crate.

use std::time::Duration;

use async_trait::async_trait;
use keyport_core::oauth::{AuthorizationRequest, ExternalIdentity, IdentityProvider, ProviderError, ProviderInfo};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, OAuth2TokenResponse,
    PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
    core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata},
    reqwest,
};
// tokio's clock (which tests can pause) for the metadata's age.
use tokio::sync::RwLock;
use tokio::time::Instant;

use crate::settings::{ResolvedSettings, SettingsError};

/// How long discovery (and the JWKS in it) is trusted before refetching.
const METADATA_TTL: Duration = Duration::from_secs(3600);

/// A generic OpenID Connect provider.
pub(crate) struct OidcProvider {
    info: ProviderInfo,
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: ClientSecret,
    scopes: Vec<String>,
    http: reqwest::Client,
    metadata: RwLock<Option<(CoreProviderMetadata, Instant)>>,
}

impl OidcProvider {
    pub(crate) fn new(
        info: ProviderInfo,
        issuer: &str,
        settings: &ResolvedSettings,
        http: reqwest::Client,
    ) -> Result<Self, SettingsError> {
        let issuer =
            IssuerUrl::new(issuer.to_owned()).map_err(|e| SettingsError(format!("{}: issuer: {e}", info.id)))?;
        Ok(Self {
            info,
            issuer,
            client_id: ClientId::new(settings.client_id.clone()),
            client_secret: ClientSecret::new(settings.client_secret.clone()),
            scopes: settings.scopes.iter().filter(|s| *s != "openid").cloned().collect(),
            http,
            metadata: RwLock::new(None),
        })
    }

    /// Discovery, cached for an hour; refetched after a failure.
    async fn metadata(&self) -> Result<CoreProviderMetadata, ProviderError> {
        if let Some((metadata, fetched)) = self.metadata.read().await.as_ref()
            && fetched.elapsed() < METADATA_TTL
        {
            return Ok(metadata.clone());
        }
        let metadata = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| ProviderError::Unavailable(format!("discovery of {}: {e}", self.issuer.as_str())))?;
        *self.metadata.write().await = Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    fn redirect(redirect_uri: &str) -> Result<RedirectUrl, ProviderError> {
        RedirectUrl::new(redirect_uri.to_owned()).map_err(|e| ProviderError::Refused(format!("redirect URI: {e}")))
    }
}

#[async_trait]
impl IdentityProvider for OidcProvider {
    fn info(&self) -> &ProviderInfo {
        &self.info
    }

    async fn authorization_request(&self, redirect_uri: &str) -> Result<AuthorizationRequest, ProviderError> {
        let client = CoreClient::from_provider_metadata(
            self.metadata().await?,
            self.client_id.clone(),
            Some(self.client_secret.clone()),
        )
        .set_redirect_uri(Self::redirect(redirect_uri)?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request =
            client.authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random);
        for scope in &self.scopes {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
        Ok(AuthorizationRequest {
            url: url.to_string(),
            state: state.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            nonce: Some(nonce.secret().clone()),
        })
    }

    async fn exchange(
        &self,
        code: &str,
        redirect_uri: &str,
        pkce_verifier: &str,
        nonce: Option<&str>,
    ) -> Result<ExternalIdentity, ProviderError> {
        let nonce =
            Nonce::new(nonce.ok_or_else(|| ProviderError::InvalidIdToken("flow has no nonce".into()))?.to_owned());
        let client = CoreClient::from_provider_metadata(
            self.metadata().await?,
            self.client_id.clone(),
            Some(self.client_secret.clone()),
        )
        .set_redirect_uri(Self::redirect(redirect_uri)?);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| ProviderError::Refused(format!("token endpoint: {e}")))?
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_owned()))
            .request_async(&self.http)
            .await
            .map_err(|e| ProviderError::Refused(format!("code exchange: {e}")))?;
        let id_token = response.id_token().ok_or_else(|| ProviderError::InvalidIdToken("no id_token".into()))?;
        let verifier = client.id_token_verifier();
        let claims = id_token.claims(&verifier, &nonce).map_err(|e| ProviderError::InvalidIdToken(e.to_string()))?;
        // The access token must be the one the id_token was issued with.
        if let Some(expected) = claims.access_token_hash() {
            let algorithm = id_token.signing_alg().map_err(|e| ProviderError::InvalidIdToken(e.to_string()))?;
            let key = id_token.signing_key(&verifier).map_err(|e| ProviderError::InvalidIdToken(e.to_string()))?;
            let actual = AccessTokenHash::from_token(response.access_token(), algorithm, key)
                .map_err(|e| ProviderError::InvalidIdToken(e.to_string()))?;
            if actual != *expected {
                return Err(ProviderError::InvalidIdToken("at_hash does not match the access token".into()));
            }
        }
        Ok(ExternalIdentity {
            subject: claims.subject().to_string(),
            email: claims.email().map(|email| email.to_string()),
            email_verified: claims.email_verified().unwrap_or(false),
            name: claims.name().and_then(|name| name.get(None)).map(|name| name.to_string()),
        })
    }
}
