//! The OAuth use cases: start and finish a flow (sign in, sign up or link
//! with a provider), list and unlink linked accounts. The area's types and
//! rules are in [`crate::oauth`].

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use subtle::ConstantTimeEq;

use super::Accounts;
use crate::{
    audit::{AuditEvent, AuditKind},
    email::Email,
    error::{Error, Result},
    oauth::{
        Callback, ExternalIdentity, IdentityProvider, LinkedAccount, OAuthFlow, OAuthOutcome, ProviderInfo,
        StartedFlow, secret_hash,
    },
    session::{ClientInfo, Principal, SessionGrant},
    store::{SessionBasis, StoreError, UnlinkOutcome},
    throttle::budget::PublicAction,
    user::{DEFAULT_ROLE, User, UserId, parse_name},
};

/// Longest `state`, `binding` or `code` accepted from a callback.
const MAX_CALLBACK_PARAM: usize = 2048;

impl Accounts {
    /// The configured providers.
    pub fn oauth_providers(&self) -> Vec<ProviderInfo> {
        self.providers.iter().map(|provider| provider.info().clone()).collect()
    }

    /// Starts a flow with `provider_id`; with `link_to`, the flow links the
    /// identity to that signed-in user instead of signing in.
    pub async fn start_oauth(
        &self,
        provider_id: &str,
        redirect_uri: &str,
        link_to: Option<&Principal>,
        client: &ClientInfo,
    ) -> Result<StartedFlow> {
        self.admit(PublicAction::StartOAuth, client).await?;
        if let Some(caller) = link_to {
            self.refuse_impersonated(caller)?;
        }
        let provider = self.provider(provider_id)?;
        if !self.config.oauth.redirect_uris.iter().any(|allowed| allowed == redirect_uri) {
            return Err(Error::RedirectUriNotAllowed);
        }
        let request = provider.authorization_request(redirect_uri).await?;
        let binding = random_secret()?;
        let now = self.clock.now();
        let flow = OAuthFlow {
            state_hash: secret_hash(&request.state),
            binding_hash: secret_hash(&binding),
            provider_id: provider_id.to_owned(),
            redirect_uri: redirect_uri.to_owned(),
            pkce_verifier: request.pkce_verifier,
            nonce: request.nonce,
            link_user: link_to.map(|principal| principal.user.id),
            created_at: now,
            expires_at: now.saturating_add(self.config.oauth.flow_lifetime),
        };
        self.oauth_store().create_oauth_flow(&flow).await?;
        Ok(StartedFlow { authorization_url: request.url, state: request.state, binding, expires_at: flow.expires_at })
    }

    /// Finishes a flow: checks it, exchanges the code, then signs in, signs
    /// up or links. Every failure is audited.
    pub async fn finish_oauth(&self, callback: &Callback, client: &ClientInfo) -> Result<OAuthOutcome> {
        self.admit(PublicAction::FinishOAuth, client).await?;
        let result = self.finish(callback, client).await;
        if let Err(error) = &result {
            let audit = AuditEvent::new(AuditKind::OAuthFailed, self.clock.now(), client).detail(audit_detail(error));
            self.audit_store().record_audit(&audit).await?;
        }
        result
    }

    /// The caller's linked accounts, oldest first.
    pub async fn list_linked_accounts(&self, caller: &Principal) -> Result<Vec<LinkedAccount>> {
        Ok(self.oauth_store().list_linked_accounts(caller.user.id).await?)
    }

    /// Unlinks one of the caller's accounts, unless it is their last way in.
    pub async fn unlink_account(
        &self,
        caller: &Principal,
        provider_id: &str,
        subject: &str,
        client: &ClientInfo,
    ) -> Result<()> {
        self.refuse_impersonated(caller)?;
        let audit = AuditEvent::new(AuditKind::AccountUnlinked, self.clock.now(), client)
            .user(caller.user.id)
            .detail(format!("{provider_id}:{subject}"));
        match self.oauth_store().unlink_account(caller.user.id, provider_id, subject, &audit).await? {
            UnlinkOutcome::Unlinked => Ok(()),
            UnlinkOutcome::NotFound => Err(Error::LinkedAccountNotFound),
            UnlinkOutcome::LastSignInMethod => Err(Error::LastSignInMethod),
        }
    }

    async fn finish(&self, callback: &Callback, client: &ClientInfo) -> Result<OAuthOutcome> {
        let flow = self.take_flow(callback).await?;
        if callback.redirect_uri != flow.redirect_uri {
            return Err(Error::RedirectUriNotAllowed);
        }
        if !callback.error.is_empty() {
            let error: String = callback.error.chars().filter(char::is_ascii_graphic).take(64).collect();
            return Err(Error::OAuthProviderError(format!("the provider answered {error}")));
        }
        if callback.code.is_empty() || callback.code.len() > MAX_CALLBACK_PARAM {
            return Err(Error::OAuthProviderError("the callback carries no usable code".into()));
        }
        let provider = self.provider(&flow.provider_id)?;
        let external =
            provider.exchange(&callback.code, &flow.redirect_uri, &flow.pkce_verifier, flow.nonce.as_deref()).await?;
        match flow.link_user {
            Some(user_id) => self.link(user_id, &flow.provider_id, external, client).await.map(OAuthOutcome::Linked),
            None => self.sign_in_external(&flow.provider_id, external, client).await,
        }
    }

    /// Takes the flow of `callback.state` (once), then checks its binding
    /// and age. A wrong binding burns the flow.
    async fn take_flow(&self, callback: &Callback) -> Result<OAuthFlow> {
        let sane = |value: &str| !value.is_empty() && value.len() <= MAX_CALLBACK_PARAM;
        if !sane(&callback.state) || !sane(&callback.binding) {
            return Err(Error::OAuthStateInvalid);
        }
        let flow =
            self.oauth_store().take_oauth_flow(&secret_hash(&callback.state)).await?.ok_or(Error::OAuthStateInvalid)?;
        let bound: bool = flow.binding_hash.ct_eq(&secret_hash(&callback.binding)).into();
        if !bound || self.clock.now() >= flow.expires_at {
            return Err(Error::OAuthStateInvalid);
        }
        Ok(flow)
    }

    async fn link(
        &self,
        user_id: UserId,
        provider_id: &str,
        external: ExternalIdentity,
        client: &ClientInfo,
    ) -> Result<LinkedAccount> {
        if let Some((account, _)) = self.oauth_store().find_linked_account(provider_id, &external.subject).await? {
            return if account.user_id == user_id { Ok(account) } else { Err(Error::AlreadyLinked) };
        }
        let account = LinkedAccount {
            provider_id: provider_id.to_owned(),
            subject: external.subject,
            user_id,
            email: external.email.unwrap_or_default(),
            linked_at: self.clock.now(),
        };
        let audit = AuditEvent::new(AuditKind::AccountLinked, account.linked_at, client)
            .user(user_id)
            .detail(format!("{provider_id}:{}", account.subject));
        match self.oauth_store().link_account(&account, &audit).await {
            Ok(()) => Ok(account),
            Err(StoreError::Conflict(_)) => Err(Error::AlreadyLinked),
            Err(other) => Err(other.into()),
        }
    }

    async fn sign_in_external(
        &self,
        provider_id: &str,
        external: ExternalIdentity,
        client: &ClientInfo,
    ) -> Result<OAuthOutcome> {
        let now = self.clock.now();
        if let Some((_, user)) = self.oauth_store().find_linked_account(provider_id, &external.subject).await? {
            return self.external_session(user, provider_id, client).await;
        }
        let raw_email = external.email.as_deref().unwrap_or_default();
        let email = Email::parse("email", raw_email)
            .map_err(|_| Error::OAuthProviderError("the provider shared no usable email".into()))?;
        if let Some(user) = self.user_store().find_user_by_email(&email).await? {
            // Joining an existing account is account takeover unless both
            // sides proved they own the address.
            let may_link = self.config.oauth.link_verified_emails && external.email_verified && user.email_verified;
            if !may_link {
                return Err(Error::AccountLinkRefused);
            }
            self.link(user.id, provider_id, external, client).await?;
            return self.external_session(user, provider_id, client).await;
        }

        let user = User {
            id: UserId::generate(now),
            email,
            name: parse_name(external.name.as_deref().unwrap_or_default()).unwrap_or_default(),
            email_verified: external.email_verified,
            roles: vec![DEFAULT_ROLE.to_owned()],
            created_at: now,
            updated_at: now,
            two_factor_enabled: false,
            ban: None,
        };
        let account = LinkedAccount {
            provider_id: provider_id.to_owned(),
            subject: external.subject,
            user_id: user.id,
            email: user.email.to_string(),
            linked_at: now,
        };
        let (token, session) = self.new_session(&user, client)?;
        let audit =
            AuditEvent::new(AuditKind::OAuthSignUp, now, client).user(user.id).session(&session.id).detail(provider_id);
        match self.oauth_store().create_oauth_user(&user, &account, &session, &audit).await {
            Ok(()) => Ok(OAuthOutcome::SignedIn {
                grant: SessionGrant { token: token.expose(), session, user },
                new_user: true,
            }),
            // Someone took the email or the identity in the meantime.
            Err(StoreError::Conflict(_)) => Err(Error::AccountLinkRefused),
            Err(other) => Err(other.into()),
        }
    }

    /// A new session for a returning user.
    async fn external_session(&self, user: User, provider_id: &str, client: &ClientInfo) -> Result<OAuthOutcome> {
        let first_factor = format!("oauth:{provider_id}");
        if let Some(challenge) =
            self.challenge_for(&user, &first_factor, SessionBasis::User, Error::Unauthenticated, client).await?
        {
            return Ok(OAuthOutcome::Challenged(challenge));
        }
        let (token, session) = self.new_session(&user, client)?;
        let audit = AuditEvent::new(AuditKind::OAuthSignIn, self.clock.now(), client)
            .user(user.id)
            .session(&session.id)
            .detail(provider_id);
        // On its own task, as a password sign-in's: a caller that goes away
        // cannot leave the transaction open with the user's row locked.
        let created = {
            let (accounts, session) = (self.clone(), session.clone());
            self.to_completion(async move {
                Ok(accounts.session_store().create_session(&session, SessionBasis::User, &audit).await?)
            })
            .await?
        };
        // Deleted while the provider was being asked: nobody to sign in.
        if !created {
            return Err(self.refused_sign_in(user.id, Error::Unauthenticated).await?);
        }
        Ok(OAuthOutcome::SignedIn { grant: SessionGrant { token: token.expose(), session, user }, new_user: false })
    }

    fn provider(&self, id: &str) -> Result<&Arc<dyn IdentityProvider>> {
        self.providers.iter().find(|provider| provider.info().id == id).ok_or(Error::OAuthProviderUnknown)
    }
}

fn random_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| Error::Internal(format!("randomness: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// What the audit trail keeps of a failed flow: the error's message, which
/// may quote the provider, capped so a callback cannot fill the table.
fn audit_detail(error: &Error) -> String {
    const MAX_CHARS: usize = 200;
    error.to_string().chars().take(MAX_CHARS).collect()
}
