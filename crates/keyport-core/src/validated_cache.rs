//! A short-lived cache of sessions read from storage, in front of the store
//! on the `GetSession` hot path.
//!
//! Entries live a few seconds, are dropped synchronously by this process's
//! own revocations and by the other replicas' events, and are served only
//! while storage is healthy (the event relay runs through it). A read that
//! raced with any event is not cached. Expiry is still checked on every hit,
//! and a hit that is due for a sliding refresh goes to storage.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use uuid::Uuid;

use crate::{
    api_key::{ApiKey, ApiKeyId, KeyHolder},
    clock::Timestamp,
    events::SessionEvent,
    observe::{self, CacheKind},
    organization::OrganizationId,
    session::Session,
    token::SessionId,
    user::{User, UserId},
};

/// Entries kept at most; beyond it the cache is cleared (cheap and rare).
const MAX_ENTRIES: usize = 100_000;

pub(crate) struct ValidatedCache {
    ttl: Duration,
    enabled: AtomicBool,
    generation: AtomicU64,
    entries: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_session: HashMap<SessionId, (Session, User, Timestamp)>,
    by_user: HashMap<UserId, HashSet<SessionId>>,
    /// API keys with their owners, and the keys of each owner (a user or a
    /// service account), for the events that name the owner.
    by_key: HashMap<ApiKeyId, (ApiKey, KeyHolder, Timestamp)>,
    keys_by_owner: HashMap<Uuid, HashSet<ApiKeyId>>,
    /// Each user's role in the organizations they were checked in (`None`:
    /// not a member), for `Authorize` in an organization. Every change to
    /// a user's memberships is a `UserChanged` event about them.
    memberships: HashMap<UserId, HashMap<OrganizationId, (Option<String>, Timestamp)>>,
}

impl Entries {
    fn len(&self) -> usize {
        self.by_session.len() + self.by_key.len() + self.memberships.len()
    }

    fn remove_keys_of(&mut self, owner: &Uuid) {
        for id in self.keys_by_owner.remove(owner).unwrap_or_default() {
            self.by_key.remove(&id);
        }
    }
}

impl ValidatedCache {
    /// A cache whose entries live `ttl`; zero disables it.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self { ttl, enabled: AtomicBool::new(!ttl.is_zero()), generation: AtomicU64::new(0), entries: Mutex::default() }
    }

    /// The ticket to present at [`ValidatedCache::insert`].
    pub(crate) fn ticket(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The cached session and user, if cached less than `ttl` before `now`.
    pub(crate) fn get(&self, id: &SessionId, now: Timestamp) -> Option<(Session, User)> {
        let hit = self.lookup(|entries| {
            let (session, user, cached_at) = entries.by_session.get(id)?;
            (now.duration_since(*cached_at) < self.ttl).then(|| (session.clone(), user.clone()))
        });
        observe::cache_lookup(CacheKind::Session, hit.is_some());
        hit
    }

    /// `read` under the lock, or `None` while the cache is off.
    fn lookup<T>(&self, read: impl FnOnce(&Entries) -> Option<T>) -> Option<T> {
        if !self.enabled.load(Ordering::Acquire) {
            return None;
        }
        read(&*self.entries.lock().ok()?)
    }

    /// Entries held now (sessions, API keys and users' memberships).
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().map(|entries| entries.len()).unwrap_or_default()
    }

    /// Caches a read made under `ticket`, unless an event came in between.
    pub(crate) fn insert(&self, session: &Session, user: &User, now: Timestamp, ticket: u64) {
        if !self.enabled.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else { return };
        if self.generation.load(Ordering::Acquire) != ticket {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            *entries = Entries::default();
        }
        entries.by_user.entry(user.id).or_default().insert(session.id.clone());
        entries.by_session.insert(session.id.clone(), (session.clone(), user.clone(), now));
    }

    /// Drops what `event` makes stale.
    pub(crate) fn apply(&self, event: &SessionEvent) {
        let Ok(mut entries) = self.entries.lock() else { return };
        self.generation.fetch_add(1, Ordering::AcqRel);
        match event {
            SessionEvent::SessionRevoked { session_id, .. } => {
                entries.by_session.remove(session_id);
            }
            SessionEvent::UserChanged { user_id, .. } => {
                for id in entries.by_user.remove(user_id).unwrap_or_default() {
                    entries.by_session.remove(&id);
                }
                // A user's keys stand on the user's roles and ban.
                entries.remove_keys_of(&user_id.0);
                entries.memberships.remove(user_id);
            }
            SessionEvent::ApiKeysChanged { owner_id, key_id: None } => entries.remove_keys_of(owner_id),
            SessionEvent::ApiKeysChanged { key_id: Some(key_id), .. } => {
                entries.by_key.remove(key_id);
            }
            // Decisions are made from the roles in force at each check.
            SessionEvent::RolesChanged => {}
        }
    }

    /// `user`'s cached role in `organization` (`Some(None)`: cached as not
    /// a member), if cached less than `ttl` before `now`.
    pub(crate) fn get_membership(
        &self,
        organization: OrganizationId,
        user: UserId,
        now: Timestamp,
    ) -> Option<Option<String>> {
        if !self.enabled.load(Ordering::Acquire) {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        let (role, cached_at) = entries.memberships.get(&user)?.get(&organization)?;
        (now.duration_since(*cached_at) < self.ttl).then(|| role.clone())
    }

    /// Caches a membership read made under `ticket`, unless an event came
    /// in between.
    pub(crate) fn insert_membership(
        &self,
        organization: OrganizationId,
        user: UserId,
        role: Option<String>,
        now: Timestamp,
        ticket: u64,
    ) {
        if !self.enabled.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else { return };
        if self.generation.load(Ordering::Acquire) != ticket {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            *entries = Entries::default();
        }
        entries.memberships.entry(user).or_default().insert(organization, (role, now));
    }

    /// The cached key and owner, if cached less than `ttl` before `now`.
    pub(crate) fn get_key(&self, id: &ApiKeyId, now: Timestamp) -> Option<(ApiKey, KeyHolder)> {
        let hit = self.lookup(|entries| {
            let (key, holder, cached_at) = entries.by_key.get(id)?;
            (now.duration_since(*cached_at) < self.ttl).then(|| (key.clone(), holder.clone()))
        });
        observe::cache_lookup(CacheKind::ApiKey, hit.is_some());
        hit
    }

    /// Caches a key read made under `ticket`, unless an event came in
    /// between.
    pub(crate) fn insert_key(&self, key: &ApiKey, holder: &KeyHolder, now: Timestamp, ticket: u64) {
        if !self.enabled.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else { return };
        if self.generation.load(Ordering::Acquire) != ticket {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            *entries = Entries::default();
        }
        entries.keys_by_owner.entry(key.owner.id()).or_default().insert(key.id.clone());
        entries.by_key.insert(key.id.clone(), (key.clone(), holder.clone(), now));
    }

    /// Drops everything and serves again only when `enabled`.
    pub(crate) fn reset(&self, enabled: bool) {
        if let Ok(mut entries) = self.entries.lock() {
            self.generation.fetch_add(1, Ordering::AcqRel);
            *entries = Entries::default();
            self.enabled.store(enabled && !self.ttl.is_zero(), Ordering::Release);
        }
    }
}
