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
/// Entries held before the first sweep of stale ones.
const FIRST_SWEEP: usize = 1_024;

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
    /// The size at which an insert next sweeps out what is older than the
    /// ttl (at least [`FIRST_SWEEP`]). Without it a session read once
    /// stayed until the cache filled, so a server's memory grew with every
    /// session it had served (the soak of issue 16). Each sweep waits for
    /// twice what the last one kept: O(1) per insert, and at most about
    /// twice the live entries held.
    sweep_at: usize,
}

impl Entries {
    fn len(&self) -> usize {
        self.by_session.len() + self.by_key.len() + self.memberships.len()
    }

    /// Makes room for an entry cached at `now`: sweeps out the stale
    /// entries when due, and clears everything at [`MAX_ENTRIES`] live.
    fn make_room(&mut self, now: Timestamp, ttl: Duration) {
        if self.len() < self.sweep_at.clamp(FIRST_SWEEP, MAX_ENTRIES) {
            return;
        }
        let fresh = |cached_at: &Timestamp| now.duration_since(*cached_at) < ttl;
        self.by_session.retain(|_, (_, _, cached_at)| fresh(cached_at));
        self.by_key.retain(|_, (_, _, cached_at)| fresh(cached_at));
        self.memberships.retain(|_, roles| {
            roles.retain(|_, (_, cached_at)| fresh(cached_at));
            !roles.is_empty()
        });
        let (by_session, by_key) = (&self.by_session, &self.by_key);
        self.by_user.retain(|_, ids| {
            ids.retain(|id| by_session.contains_key(id));
            !ids.is_empty()
        });
        self.keys_by_owner.retain(|_, ids| {
            ids.retain(|id| by_key.contains_key(id));
            !ids.is_empty()
        });
        if self.len() >= MAX_ENTRIES {
            *self = Self::default();
        }
        self.sweep_at = 2 * self.len();
    }

    fn remove_session(&mut self, id: &SessionId) {
        let Some((_, user, _)) = self.by_session.remove(id) else { return };
        if let Some(ids) = self.by_user.get_mut(&user.id) {
            ids.remove(id);
            if ids.is_empty() {
                self.by_user.remove(&user.id);
            }
        }
    }

    fn remove_key(&mut self, id: &ApiKeyId) {
        let Some((key, _, _)) = self.by_key.remove(id) else { return };
        let owner = key.owner.id();
        if let Some(ids) = self.keys_by_owner.get_mut(&owner) {
            ids.remove(id);
            if ids.is_empty() {
                self.keys_by_owner.remove(&owner);
            }
        }
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
        entries.make_room(now, self.ttl);
        entries.by_user.entry(user.id).or_default().insert(session.id.clone());
        entries.by_session.insert(session.id.clone(), (session.clone(), user.clone(), now));
    }

    /// Drops what `event` makes stale.
    pub(crate) fn apply(&self, event: &SessionEvent) {
        let Ok(mut entries) = self.entries.lock() else { return };
        self.generation.fetch_add(1, Ordering::AcqRel);
        match event {
            SessionEvent::SessionRevoked { session_id, .. } => entries.remove_session(session_id),
            SessionEvent::UserChanged { user_id, .. } => {
                for id in entries.by_user.remove(user_id).unwrap_or_default() {
                    entries.by_session.remove(&id);
                }
                // A user's keys stand on the user's roles and ban.
                entries.remove_keys_of(&user_id.0);
                entries.memberships.remove(user_id);
            }
            SessionEvent::ApiKeysChanged { owner_id, key_id: None } => entries.remove_keys_of(owner_id),
            SessionEvent::ApiKeysChanged { key_id: Some(key_id), .. } => entries.remove_key(key_id),
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
        entries.make_room(now, self.ttl);
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
        entries.make_room(now, self.ttl);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{email::Email, second_factor::Assurance, session::ClientInfo, token::SecretHash};

    const TTL: Duration = Duration::from_secs(5);
    const T0: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);

    fn user(at: Timestamp) -> User {
        User {
            id: UserId::generate(at),
            email: Email::parse("email", "ann@example.com").expect("a valid address"),
            name: String::new(),
            email_verified: true,
            roles: vec!["user".into()],
            created_at: at,
            updated_at: at,
            two_factor_enabled: false,
            ban: None,
        }
    }

    fn session(n: usize, user: &User, at: Timestamp) -> Session {
        Session {
            id: SessionId::from_trusted(format!("session-{n}")),
            user_id: user.id,
            secret_hash: SecretHash([0; 32]),
            created_at: at,
            expires_at: at.saturating_add(Duration::from_secs(3600)),
            absolute_expires_at: at.saturating_add(Duration::from_secs(86_400)),
            refreshed_at: at,
            client: ClientInfo::default(),
            assurance: Assurance::Aal1,
            authenticated_at: at,
            impersonator: None,
            active_organization: None,
        }
    }

    /// Sessions read once each, one per millisecond, for `count`: what a
    /// server that signs users in all day sees.
    fn read_once_each(cache: &ValidatedCache, from: usize, count: usize, start: Timestamp) -> Timestamp {
        let mut now = start;
        for n in from..from + count {
            let owner = user(now);
            cache.insert(&session(n, &owner, now), &owner, now, cache.ticket());
            now = now.saturating_add(Duration::from_millis(1));
        }
        now
    }

    #[test]
    fn sessions_read_once_are_swept_once_stale() {
        let cache = ValidatedCache::new(TTL);
        // 5 s of ttl at one insert per ms: about 5,000 live at any time.
        let live = usize::try_from(TTL.as_millis()).expect("small");
        let mut now = T0;
        let mut most = 0;
        for round in 0..20 {
            now = read_once_each(&cache, round * live, live, now);
            most = most.max(cache.len());
            let entries = cache.entries.lock().expect("not poisoned");
            // The index follows the entries it points at.
            assert!(entries.by_user.len() <= entries.by_session.len());
        }
        assert!(most <= 2 * live + 1, "held {most} entries for {live} live ones");
        // Nothing fresh was swept: the last ttl's reads all still hit.
        let last = 20 * live - 1;
        let owner = cache.entries.lock().expect("not poisoned").by_session
            [&SessionId::from_trusted(format!("session-{last}"))]
            .1
            .clone();
        assert!(cache.get(&session(last, &owner, now).id, now).is_some());
    }

    #[test]
    fn a_revocation_drops_the_session_and_its_index_entry() {
        let cache = ValidatedCache::new(TTL);
        let owner = user(T0);
        let kept = session(1, &owner, T0);
        let revoked = session(2, &owner, T0);
        for session in [&kept, &revoked] {
            cache.insert(session, &owner, T0, cache.ticket());
        }
        cache.apply(&SessionEvent::SessionRevoked { session_id: revoked.id.clone(), user_id: owner.id });
        assert!(cache.get(&revoked.id, T0).is_none());
        assert!(cache.get(&kept.id, T0).is_some());
        let entries = cache.entries.lock().expect("not poisoned");
        assert_eq!(entries.by_user[&owner.id], HashSet::from([kept.id.clone()]));
        drop(entries);
        cache.apply(&SessionEvent::SessionRevoked { session_id: kept.id.clone(), user_id: owner.id });
        assert!(cache.entries.lock().expect("not poisoned").by_user.is_empty());
    }

    #[test]
    fn a_full_cache_of_live_entries_is_cleared() {
        let cache = ValidatedCache::new(Duration::from_secs(3600));
        let now = read_once_each(&cache, 0, MAX_ENTRIES, T0);
        assert_eq!(cache.len(), MAX_ENTRIES);
        read_once_each(&cache, MAX_ENTRIES, 1, now);
        assert_eq!(cache.len(), 1);
    }
}
