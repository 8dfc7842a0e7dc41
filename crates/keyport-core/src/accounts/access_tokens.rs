//! Access tokens issued from sessions (`IssueAccessToken`), and the keys
//! that verify them (`GetJwks`): see [`crate::access_token`] for the rules.

use std::{sync::Arc, time::Duration};

use tokio::sync::Mutex;

use super::Accounts;
use crate::{
    access_token::{AccessTokenClaims, Actor, Keyset, NewKeyPair, StoredSigningKey, jwks_json, sign, token_id},
    clock::Timestamp,
    error::{Error, Result},
    store::SigningKeyStore,
};

/// How long this process reuses the keys it read. A key another replica
/// made is seen within this, well before it signs (`publish_ahead`).
const RELOAD_EVERY: Duration = Duration::from_secs(10);

/// The signing keys as last read from storage, shared by the clones of an
/// [`Accounts`]. One caller at a time reads (or rotates) them.
#[derive(Default)]
pub(super) struct SigningKeys {
    loaded: Mutex<Option<Arc<LoadedKeys>>>,
}

struct LoadedKeys {
    keys: Vec<StoredSigningKey>,
    read_at: Timestamp,
}

/// A signed access token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedAccessToken {
    /// The JWT.
    pub token: String,
    /// Its `exp`.
    pub expires_at: Timestamp,
}

/// The published keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwks {
    /// The JWKS document.
    pub json: String,
    /// How long verifiers may cache it.
    pub max_age: Duration,
}

impl Accounts {
    /// Signs an access token for the holder of session `token`, for
    /// `audience` (empty: the default one). It is valid for the configured
    /// lifetime, never past the session's own expiry.
    pub async fn issue_access_token(&self, token: &str, audience: &str) -> Result<IssuedAccessToken> {
        let policy = &self.config.access_tokens;
        let audience = policy.audience(audience)?.to_owned();
        let principal = self.authenticate(token).await?;
        let now = self.clock.now();
        let loaded = self.signing_keys(now).await?;
        let key =
            Keyset::new(&loaded.keys).signer(now).ok_or_else(|| Error::Internal("no signing key is active".into()))?;
        let private_der = self.factor_keys()?.open_bytes(&key.sealed_private_key, key.kid.as_bytes())?;
        let session = &principal.session;
        let expires_at = now.saturating_add(policy.ttl).min(session.expires_at).min(session.absolute_expires_at);
        let seconds = |at: Timestamp| at.unix_millis().div_euclid(1000);
        let permissions = policy.include_permissions.then(|| {
            self.config.roles.current().granted(&principal.user.roles).into_iter().map(str::to_owned).collect()
        });
        let claims = AccessTokenClaims {
            iss: policy.issuer.clone(),
            sub: principal.user.id.to_string(),
            aud: audience,
            exp: seconds(expires_at),
            iat: seconds(now),
            nbf: seconds(now),
            jti: token_id()?,
            sid: session.id.to_string(),
            roles: principal.user.roles.clone(),
            permissions,
            act: session.impersonator.map(|admin| Actor { sub: admin.to_string() }),
        };
        let token = sign(&claims, key.algorithm, &key.kid, &private_der)?;
        Ok(IssuedAccessToken { token, expires_at: Timestamp::from_unix_millis(claims.exp * 1000) })
    }

    /// The keys that verify access tokens now, as a JWKS.
    pub async fn jwks(&self) -> Result<Jwks> {
        let policy = &self.config.access_tokens;
        if !policy.enabled() {
            return Err(Error::AccessTokensDisabled);
        }
        let now = self.clock.now();
        let loaded = self.signing_keys(now).await?;
        let json = jwks_json(&Keyset::new(&loaded.keys).published(now, policy.ttl))?;
        Ok(Jwks { json, max_age: policy.publish_ahead })
    }

    /// Deletes the keys no token they signed can still need; how many.
    pub(super) async fn sweep_signing_keys(&self) -> Result<u64> {
        if !self.config.access_tokens.enabled() {
            return Ok(0);
        }
        let keys = self.signing_key_store().signing_keys().await?;
        match Keyset::new(&keys).oldest_live(self.clock.now(), self.config.access_tokens.ttl) {
            Some(generation) => Ok(self.signing_key_store().delete_signing_keys_below(generation).await?),
            None => Ok(0),
        }
    }

    /// The keys, read again when older than [`RELOAD_EVERY`], with a new one
    /// made first when rotation is due.
    async fn signing_keys(&self, now: Timestamp) -> Result<Arc<LoadedKeys>> {
        let policy = &self.config.access_tokens;
        let mut loaded = self.signing_keys.loaded.lock().await;
        if let Some(keys) = loaded.as_ref()
            && now < keys.read_at.saturating_add(RELOAD_EVERY)
            && !Keyset::new(&keys.keys).rotation_due(now, policy)
        {
            return Ok(keys.clone());
        }
        let mut keys = self.signing_key_store().signing_keys().await?;
        if Keyset::new(&keys).rotation_due(now, policy) {
            self.add_signing_key(&keys, now).await?;
            keys = self.signing_key_store().signing_keys().await?;
        }
        let fresh = Arc::new(LoadedKeys { keys, read_at: now });
        *loaded = Some(fresh.clone());
        Ok(fresh)
    }

    /// Makes, seals and stores the next key. Another replica may store its
    /// own first (the generation is unique): then that one is the next key.
    async fn add_signing_key(&self, keys: &[StoredSigningKey], now: Timestamp) -> Result<()> {
        let policy = &self.config.access_tokens;
        let (generation, activates_at) = Keyset::new(keys).next(now, policy);
        let pair = NewKeyPair::generate(policy.algorithm)?;
        let key = StoredSigningKey {
            sealed_private_key: self.factor_keys()?.seal_bytes(&pair.private_der, pair.kid.as_bytes())?,
            kid: pair.kid,
            generation,
            algorithm: policy.algorithm,
            public_jwk: pair.public_jwk,
            created_at: now,
            activates_at,
        };
        // On its own task: a caller that goes away mid-insert leaves no
        // connection or transaction behind.
        let accounts = self.clone();
        let added = self.to_completion(async move { Ok(accounts.signing_key_store().insert_signing_key(&key).await?) });
        if added.await? {
            tracing::info!(generation, "made a new access-token signing key");
        }
        Ok(())
    }

    fn signing_key_store(&self) -> &dyn SigningKeyStore {
        self.store.as_ref()
    }
}
