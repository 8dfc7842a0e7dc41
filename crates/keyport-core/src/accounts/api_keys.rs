//! API keys: created, listed, revoked and rotated by their owner (a user
//! for their own keys, an admin for a service account's), and checked.

use std::time::Duration;

use super::{Accounts, admin::Admin};
use crate::{
    api_key::{
        ApiKey, ApiKeyId, ApiKeyToken, KeyHolder, KeyOwner, KeyPrincipal, MAX_ROTATION_GRACE, MIN_LIFETIME,
        ServiceAccount, ServiceAccountId, parse_key_name,
    },
    audit::{AuditEvent, AuditKind},
    authorization::MAX_CHECKED,
    error::{Error, FieldViolation, Result},
    events::SessionEvent,
    session::{ClientInfo, Principal},
    store::{ApiKeyStore, KeyRefusal},
};

/// Whose keys a call acts on.
#[derive(Debug, Clone, Copy)]
pub enum Keyring<'a> {
    /// The signed-in caller's own keys.
    Own(&'a Principal),
    /// A service account's keys, managed by an admin.
    ServiceAccount {
        /// Who is asking.
        admin: Admin<'a>,
        /// The service account, as the request names it.
        id: &'a str,
    },
}

/// What a new key should be.
#[derive(Debug, Clone, Default)]
pub struct NewApiKey {
    /// What it is for.
    pub name: String,
    /// The permissions it may use.
    pub scopes: Vec<String>,
    /// How long it works; `None` for the policy's default.
    pub expires_in: Option<Duration>,
    /// Most checks per minute; 0 for no limit of its own.
    pub rate_limit_per_minute: u32,
}

/// A key just created, with its secret: shown this once.
#[derive(Debug)]
pub struct CreatedApiKey {
    /// The key as stored.
    pub key: ApiKey,
    /// The key itself (`kpa_...`).
    pub secret: String,
}

/// Highest per-key rate limit accepted.
pub const MAX_KEY_RATE_PER_MINUTE: u32 = 1_000_000;

/// A keyring resolved: whose keys, what their roles are, and how its
/// audit entries start.
struct Owner {
    owner: KeyOwner,
    roles: Vec<String>,
    audit: AuditEvent,
}

impl Accounts {
    /// Checks an API key: its secret, its owner (a banned user's keys do
    /// not work), its expiry and its own rate limit. Records its use at
    /// most once per [`ApiKeyPolicy::last_used_interval`].
    ///
    /// [`ApiKeyPolicy::last_used_interval`]: crate::api_key::ApiKeyPolicy::last_used_interval
    pub async fn authenticate_key(&self, raw: &str) -> Result<KeyPrincipal> {
        let token = ApiKeyToken::parse(raw)?;
        let now = self.clock.now();
        // Taken before the read, as for sessions: a read that raced an
        // event is not kept.
        let ticket = self.cache.ticket();
        let (mut key, holder) = match self.cache.get_key(token.id(), now) {
            Some(cached) => cached,
            None => {
                let found = self.api_key_store().find_api_key(token.id()).await?.ok_or(Error::Unauthenticated)?;
                self.cache.insert_key(&found.0, &found.1, now, ticket);
                found
            }
        };
        if !key.secret_hash.verify(&token.secret_hash()) {
            return Err(Error::Unauthenticated);
        }
        if matches!(&holder, KeyHolder::User(user) if user.ban_at(now).is_some()) {
            return Err(Error::Unauthenticated);
        }
        if key.is_expired(now) {
            return Err(Error::ApiKeyExpired);
        }
        if key.rate_limit_per_minute > 0 {
            self.throttle.admit_key(key.id.as_str(), key.rate_limit_per_minute).await?;
        }
        let interval = self.config.api_keys.last_used_interval;
        if key.last_used_at.is_none_or(|at| now.duration_since(at) >= interval) {
            // Bookkeeping: a failed write must not refuse a good key.
            let since = now.saturating_sub(interval);
            match self.api_key_store().touch_api_key(&key.id, now, since).await {
                Ok(()) => {
                    // So that the cached copy does not write again at once.
                    key.last_used_at = Some(now);
                    self.cache.insert_key(&key, &holder, now, ticket);
                }
                Err(error) => tracing::warn!(%error, key = %key.id, "cannot record an API key's use"),
            }
        }
        let cache_ttl = match (key.rate_limit_per_minute, key.expires_at) {
            (0, Some(expires_at)) => self.config.session_cache_ttl.min(expires_at.duration_since(now)),
            (0, None) => self.config.session_cache_ttl,
            _ => Duration::ZERO,
        };
        Ok(KeyPrincipal { key, holder, cache_ttl })
    }

    /// Creates a key on `keyring` and returns it with its secret. The
    /// scopes must be permissions the owner's roles grant now; a user's own
    /// key needs a recent sign-in (and second factor, if they have one).
    pub async fn create_api_key(
        &self,
        keyring: Keyring<'_>,
        new: NewApiKey,
        client: &ClientInfo,
    ) -> Result<CreatedApiKey> {
        let owner = self.changing(keyring, client).await?;
        self.require_fresh(keyring)?;
        let now = self.clock.now();
        let name = parse_key_name(&new.name);
        let scopes = self.checked_scopes(keyring, &owner.roles, new.scopes);
        let (name, scopes) = super::collect_violations(name, scopes)?;
        let expires_in = match new.expires_in {
            None => self.config.api_keys.default_lifetime,
            Some(wanted) if wanted < MIN_LIFETIME || wanted > self.config.api_keys.max_lifetime => {
                return Err(Error::invalid("expires_in", "must be at least a minute and at most the longest allowed"));
            }
            Some(wanted) => Some(wanted),
        };
        if new.rate_limit_per_minute > MAX_KEY_RATE_PER_MINUTE {
            return Err(Error::invalid("rate_limit_per_minute", "must be at most 1000000"));
        }
        let token = ApiKeyToken::generate()?;
        let key = ApiKey {
            id: token.id().clone(),
            name,
            secret_hash: token.secret_hash(),
            owner: owner.owner,
            scopes,
            created_at: now,
            expires_at: expires_in.map(|lifetime| now.saturating_add(lifetime)),
            last_used_at: None,
            rate_limit_per_minute: new.rate_limit_per_minute,
            replaced_by: None,
        };
        let detail = format!("{}:{}:{}", key.id, key.name, key.scopes.join(" "));
        let audit = with_detail(owner.audit, AuditKind::ApiKeyCreated, detail);
        let (accounts, stored, max) = (self.clone(), key.clone(), self.config.api_keys.max_per_owner);
        let refused =
            self.to_completion(async move { Ok(accounts.api_key_store().insert_api_key(&stored, max, &audit).await?) });
        match refused.await? {
            Ok(()) => Ok(CreatedApiKey { key, secret: token.expose() }),
            Err(KeyRefusal::TooMany) => Err(Error::InvalidArgument(vec![FieldViolation::new(
                "api_key",
                format!("the owner already has {max} keys: revoke one first"),
            )])),
            Err(KeyRefusal::OwnerGone) => Err(owner_gone(keyring)),
        }
    }

    /// The keys of `keyring`, newest first.
    pub async fn list_api_keys(&self, keyring: Keyring<'_>) -> Result<Vec<ApiKey>> {
        let owner = match keyring {
            Keyring::Own(caller) => KeyOwner::User(caller.user.id),
            Keyring::ServiceAccount { admin, id } => {
                self.require(admin, "users:read")?;
                let account = self.find_service_account(id).await?;
                KeyOwner::ServiceAccount(account.id)
            }
        };
        Ok(self.api_key_store().list_api_keys(owner).await?)
    }

    /// Revokes the key `id` of `keyring`, at once everywhere. A key of
    /// someone else is [`Error::ApiKeyNotFound`], as an unknown one.
    pub async fn revoke_api_key(&self, keyring: Keyring<'_>, id: &str, client: &ClientInfo) -> Result<()> {
        let id = ApiKeyId::parse(id)?;
        let owner = self.changing(keyring, client).await?;
        let audit = with_detail(owner.audit, AuditKind::ApiKeyRevoked, id.to_string());
        let event = SessionEvent::ApiKeysChanged { owner_id: owner.owner.id(), key_id: Some(id.clone()) };
        let revoked = self
            .write_and_publish(event, move |accounts, event| async move {
                Ok(accounts.api_key_store().delete_api_key(owner.owner, &id, &audit, &event).await?)
            })
            .await?;
        if revoked { Ok(()) } else { Err(Error::ApiKeyNotFound) }
    }

    /// Replaces the key `id` of `keyring` with a new one (same name,
    /// scopes, limit and lifetime); the old one works for `grace` more
    /// (revoked at once with none). Returns the new key with its secret,
    /// and the old one as it is now. An expired key cannot be rotated, nor
    /// one already rotated (which is working out its grace).
    pub async fn rotate_api_key(
        &self,
        keyring: Keyring<'_>,
        id: &str,
        grace: Duration,
        client: &ClientInfo,
    ) -> Result<(CreatedApiKey, ApiKey)> {
        let id = ApiKeyId::parse(id)?;
        if grace > MAX_ROTATION_GRACE {
            return Err(Error::invalid("grace", "must be at most 7 days"));
        }
        let owner = self.changing(keyring, client).await?;
        self.require_fresh(keyring)?;
        let now = self.clock.now();
        let old = match self.api_key_store().find_api_key(&id).await? {
            // Rotating must not bring an expired key back to life.
            Some((key, _)) if key.owner == owner.owner && key.is_expired(now) => return Err(Error::ApiKeyExpired),
            // One replacement per key: a second would outlive the grace.
            Some((key, _)) if key.owner == owner.owner && key.replaced_by.is_some() => {
                return Err(Error::invalid("api_key_id", "was rotated already: rotate its replacement"));
            }
            Some((key, _)) if key.owner == owner.owner => key,
            _ => return Err(Error::ApiKeyNotFound),
        };
        let token = ApiKeyToken::generate()?;
        let lifetime = old.expires_at.map(|expires_at| expires_at.duration_since(old.created_at));
        let new = ApiKey {
            id: token.id().clone(),
            secret_hash: token.secret_hash(),
            created_at: now,
            expires_at: lifetime.map(|lifetime| now.saturating_add(lifetime)),
            last_used_at: None,
            replaced_by: None,
            ..old.clone()
        };
        let old_expires_at = (!grace.is_zero())
            .then(|| now.saturating_add(grace))
            .map(|end| old.expires_at.map_or(end, |expires_at| expires_at.min(end)));
        let audit = with_detail(owner.audit, AuditKind::ApiKeyRotated, format!("{}->{}", old.id, new.id));
        // Sent either way: a shortened expiry also outdates cached answers.
        let event = SessionEvent::ApiKeysChanged { owner_id: owner.owner.id(), key_id: Some(old.id.clone()) };
        let stored = new.clone();
        let replaced = self
            .write_and_publish(event, move |accounts, event| async move {
                let store = accounts.api_key_store();
                Ok(store.rotate_api_key(owner.owner, &id, old_expires_at, &stored, &audit, &event).await?)
            })
            .await?
            .ok_or(Error::ApiKeyNotFound)?;
        Ok((CreatedApiKey { key: new, secret: token.expose() }, replaced))
    }

    /// `keyring` as the owner of a change: the caller's own account (not
    /// from an impersonation session), or a service account whose roles are
    /// within the admin's reach.
    async fn changing(&self, keyring: Keyring<'_>, client: &ClientInfo) -> Result<Owner> {
        let now = self.clock.now();
        match keyring {
            Keyring::Own(caller) => {
                self.refuse_impersonated(caller)?;
                let audit = AuditEvent::new(AuditKind::ApiKeyCreated, now, client)
                    .user(caller.user.id)
                    .session(&caller.session.id);
                Ok(Owner { owner: KeyOwner::User(caller.user.id), roles: caller.user.roles.clone(), audit })
            }
            Keyring::ServiceAccount { admin, id } => {
                self.require(admin, "users:write")?;
                let account = self.find_service_account(id).await?;
                self.roles_within_reach(admin, &account.roles)?;
                let audit = self.admin_audit(admin, AuditKind::ApiKeyCreated, client, format!("{}", account.id));
                Ok(Owner { owner: KeyOwner::ServiceAccount(account.id), roles: account.roles, audit })
            }
        }
    }

    /// Refuses a user's own new key without a recent sign-in (and second
    /// factor, if they have one): a stolen session cannot mint a lasting
    /// credential.
    fn require_fresh(&self, keyring: Keyring<'_>) -> Result<()> {
        let Keyring::Own(caller) = keyring else { return Ok(()) };
        if self.clock.now().duration_since(caller.session.authenticated_at) > self.config.second_factors.fresh_for {
            return Err(Error::ReauthenticationRequired);
        }
        self.require_step_up(caller)
    }

    /// `scopes` checked for a key of an owner with `roles`: 1 to 32
    /// permissions of the catalogue, each granted to the owner now (and
    /// within an admin's reach), sorted and unique.
    fn checked_scopes(&self, keyring: Keyring<'_>, roles: &[String], mut scopes: Vec<String>) -> Result<Vec<String>> {
        if scopes.is_empty() || scopes.len() > MAX_CHECKED {
            return Err(Error::invalid("scopes", format!("must name 1 to {MAX_CHECKED} permissions")));
        }
        let defined = self.config.roles.current();
        defined.check(&scopes)?;
        if let Some(lacking) = scopes.iter().find(|scope| !defined.grants(roles, scope)) {
            return Err(Error::invalid("scopes", format!("the owner's roles do not grant {lacking}")));
        }
        if let Keyring::ServiceAccount { admin, .. } = keyring {
            self.within_reach(admin, scopes.iter().map(String::as_str))?;
        }
        scopes.sort();
        scopes.dedup();
        Ok(scopes)
    }

    /// The service account `id` names, which must exist.
    pub(super) async fn find_service_account(&self, id: &str) -> Result<ServiceAccount> {
        let id = ServiceAccountId::parse(id)?;
        self.api_key_store().find_service_account(id).await?.ok_or(Error::ServiceAccountNotFound)
    }

    pub(super) fn api_key_store(&self) -> &dyn ApiKeyStore {
        self.store.as_ref()
    }
}

/// What a refused insert means for `keyring`: the caller went, or the
/// service account did.
fn owner_gone(keyring: Keyring<'_>) -> Error {
    match keyring {
        Keyring::Own(_) => Error::Unauthenticated,
        Keyring::ServiceAccount { .. } => Error::ServiceAccountNotFound,
    }
}

/// `audit` as an entry of `kind`, its detail `detail` after what it had.
fn with_detail(mut audit: AuditEvent, kind: AuditKind, detail: String) -> AuditEvent {
    audit.kind = kind;
    let detail = match audit.detail.take() {
        Some(before) if !before.is_empty() => format!("{before} {detail}"),
        _ => detail,
    };
    audit.detail(detail)
}
