//! The OAuth area (social sign-in): the provider contract, OAuth flows,
//! linked accounts, and what its use cases take and give.
//!
//! One name, "oauth", for the area in every layer: this module (types and
//! rules), the use cases in `accounts/oauth.rs` (on [`crate::Accounts`]),
//! their storage [`crate::store::OAuthStore`], the provider implementations
//! in the `keyport-oauth` crate, and the gRPC `OAuthService`.
//!
//! The protocol work (PKCE, code exchange, id_token verification) is done by
//! an [`IdentityProvider`] implementation outside this crate; here live the
//! rules: flows are single-use, expire, and are bound to the browser that
//! started them; redirect URIs must match the allow-list exactly; and an
//! external identity joins an existing account only when both sides have a
//! verified email (or the signed-in user links it explicitly).

use std::time::Duration;

use async_trait::async_trait;
use sha2::{Digest, Sha256};

use crate::{clock::Timestamp, session::SessionGrant, user::UserId};

/// Protocols Keyport signs in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProviderKind {
    /// OpenID Connect.
    Oidc,
    /// GitHub's OAuth2 and user API.
    GitHub,
}

/// A configured provider, as listed to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderInfo {
    /// Stable id from the config.
    pub id: String,
    /// Name for a "Sign in with ..." button.
    pub display_name: String,
    /// Protocol.
    pub kind: ProviderKind,
}

/// The start of an authorization code flow.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    /// Where to send the browser.
    pub url: String,
    /// The `state` in `url`.
    pub state: String,
    /// The PKCE verifier whose S256 challenge is in `url`.
    pub pkce_verifier: String,
    /// The OpenID Connect nonce in `url`, if the protocol has one.
    pub nonce: Option<String>,
}

/// Who the provider says the user is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalIdentity {
    /// Stable id at the provider.
    pub subject: String,
    /// Email, if the provider shared one.
    pub email: Option<String>,
    /// Whether the provider vouches for the email.
    pub email_verified: bool,
    /// Display name, if shared.
    pub name: Option<String>,
}

/// Why a provider interaction failed.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The provider refused or the exchange failed.
    #[error("provider refused: {0}")]
    Refused(String),
    /// The id_token failed verification.
    #[error("invalid id_token: {0}")]
    InvalidIdToken(String),
    /// The provider could not be reached.
    #[error("provider unreachable: {0}")]
    Unavailable(String),
}

impl From<ProviderError> for crate::Error {
    fn from(error: ProviderError) -> Self {
        match error {
            ProviderError::Refused(cause) => Self::OAuthProviderError(cause),
            // Retryable, unlike a refusal: the caller may try again later.
            ProviderError::Unavailable(cause) => Self::Unavailable(cause),
            ProviderError::InvalidIdToken(cause) => Self::OAuthIdTokenInvalid(cause),
        }
    }
}

/// One sign-in provider.
#[async_trait]
pub trait IdentityProvider: Send + Sync + 'static {
    /// What the provider is.
    fn info(&self) -> &ProviderInfo;

    /// A fresh authorization request (new state, PKCE verifier and nonce).
    async fn authorization_request(&self, redirect_uri: &str) -> Result<AuthorizationRequest, ProviderError>;

    /// Exchanges `code` and verifies the answer (for OpenID Connect: the
    /// id_token's signature, issuer, audience, expiry and `nonce`).
    async fn exchange(
        &self,
        code: &str,
        redirect_uri: &str,
        pkce_verifier: &str,
        nonce: Option<&str>,
    ) -> Result<ExternalIdentity, ProviderError>;
}

/// OAuth rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthConfig {
    /// Exact redirect URIs flows may use.
    pub redirect_uris: Vec<String>,
    /// Link an external identity to an existing user with the same email
    /// when both the provider and Keyport consider the email verified.
    pub link_verified_emails: bool,
    /// How long a started flow may be finished.
    pub flow_lifetime: Duration,
}

impl Default for OAuthConfig {
    fn default() -> Self {
        Self { redirect_uris: Vec::new(), link_verified_emails: true, flow_lifetime: Duration::from_secs(10 * 60) }
    }
}

/// A started flow, as stored: only hashes of the state and binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthFlow {
    /// SHA-256 of the `state`; the lookup key.
    pub state_hash: [u8; 32],
    /// SHA-256 of the browser binding.
    pub binding_hash: [u8; 32],
    /// The provider.
    pub provider_id: String,
    /// The redirect URI used at the start.
    pub redirect_uri: String,
    /// PKCE verifier, sent at the exchange.
    pub pkce_verifier: String,
    /// OpenID Connect nonce, checked in the id_token.
    pub nonce: Option<String>,
    /// When set, the flow links to this user instead of signing in.
    pub link_user: Option<UserId>,
    /// When the flow was started.
    pub created_at: Timestamp,
    /// When it expires.
    pub expires_at: Timestamp,
}

/// An external identity linked to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkedAccount {
    /// The provider.
    pub provider_id: String,
    /// The subject at the provider.
    pub subject: String,
    /// The user.
    pub user_id: UserId,
    /// Email reported at linking.
    pub email: String,
    /// When it was linked.
    pub linked_at: Timestamp,
}

/// SHA-256 of a flow secret (state or binding).
pub fn secret_hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// A started flow, as handed to the web app.
#[derive(Debug, Clone)]
pub struct StartedFlow {
    /// Where to send the browser.
    pub authorization_url: String,
    /// The flow's state.
    pub state: String,
    /// The secret the app keeps in a cookie of this browser.
    pub binding: String,
    /// When the flow expires.
    pub expires_at: Timestamp,
}

/// What a provider's callback brought back.
#[derive(Debug, Clone, Default)]
pub struct Callback {
    /// The `state` parameter.
    pub state: String,
    /// The `code` parameter.
    pub code: String,
    /// The redirect URI the flow used.
    pub redirect_uri: String,
    /// The binding from the browser's cookie.
    pub binding: String,
    /// The provider's `error` parameter, if it refused.
    pub error: String,
}

/// How a finished flow ended.
#[derive(Debug)]
// Made once per flow and moved once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum OAuthOutcome {
    /// Signed in, or signed up when `new_user`.
    SignedIn {
        /// The new session.
        grant: SessionGrant,
        /// Whether the user was created by this sign-in.
        new_user: bool,
    },
    /// Linked to the user who started the flow.
    Linked(LinkedAccount),
    /// The user has a second factor: the sign-in finishes with
    /// [`crate::Accounts::complete_sign_in`].
    Challenged(crate::accounts::IssuedChallenge),
}
