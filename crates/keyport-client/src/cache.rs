//! [`SessionCache`]: validated sessions kept in memory, dropped the moment
//! Keyport says they were revoked.
//!
//! The cache serves entries only while its `WatchSessionEvents` stream is
//! live. When the stream breaks it stops serving and flushes, and when it is
//! back (`ready`) it starts empty: a missed event can therefore never leave a
//! revoked session valid. An answer that was in flight while any event
//! arrived is not cached, since it may predate that event.
//!
//! Permission decisions ([`SessionCache::authorize`]) ride on the same
//! entries: an `Authorize` answer caches the session with every permission
//! its roles grant, so later checks of that session are answered here, and
//! drop with it on any event about the session or its user. A name is
//! decided here only once Keyport confirmed it is in its catalogue (an
//! unknown one stays an error, never a silent deny).
//!
//! With several endpoints the stream is on one of them; when that one stops
//! answering (the stream breaks, falls silent, or any call of the client
//! finds the endpoint down), the cache goes dark and subscribes again through
//! another, starting empty as after any break.

use std::{
    collections::{HashMap, HashSet},
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use keyport_proto::v1::watch_session_events_response::Event;

use crate::{
    authorization::Authorized,
    client::{ClientInfo, EventSubscription, KeyportClient},
    clock::{Clock, SystemClock},
    error::Error,
    principal::{Principal, ValidatedSession},
    refusals::Refusals,
};

/// How the cache behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheConfig {
    /// Sessions kept at most.
    pub max_entries: usize,
    /// Longest an entry is served, whatever the server's hint.
    pub max_ttl: Duration,
    /// A stream silent for this long counts as dead (the server sends a
    /// heartbeat every 15 s).
    pub heartbeat_timeout: Duration,
    /// Pause before subscribing again after the stream ends.
    pub reconnect_delay: Duration,
    /// How long a token Keyport refused as unknown, revoked or expired is
    /// refused without asking again (it cannot become valid); zero to always
    /// ask.
    pub refusal_ttl: Duration,
    /// Refused tokens remembered at most.
    pub max_refusals: usize,
    /// How often the endpoint the stream is on is asked for its health
    /// (`grpc.health.v1`). One that does not answer within the client's
    /// request timeout counts as down and the cache goes dark: a frozen
    /// server keeps its stream open and silent, which only the heartbeat
    /// timeout would notice otherwise.
    pub liveness_interval: Duration,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            max_ttl: Duration::from_secs(60),
            heartbeat_timeout: Duration::from_secs(40),
            reconnect_delay: Duration::from_millis(250),
            refusal_ttl: Duration::from_secs(30),
            max_refusals: 10_000,
            liveness_interval: Duration::from_secs(1),
        }
    }
}

/// A revocation-aware cache of `GetSession` answers in front of a client.
#[derive(Debug, Clone)]
pub struct SessionCache {
    inner: Arc<Inner>,
    client: KeyportClient,
}

#[derive(Debug)]
struct Inner {
    config: CacheConfig,
    /// True while the event stream is subscribed; entries are served only then.
    live: AtomicBool,
    /// Bumped by every event and every change of `live`.
    epoch: AtomicU64,
    entries: Mutex<Entries>,
    refusals: Refusals,
    counters: Counters,
    /// What entry lifetimes are measured by.
    clock: Arc<dyn Clock>,
}

/// What the cache has done since it started, for metrics.
#[derive(Debug, Default)]
struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    refusal_hits: AtomicU64,
    subscriptions: AtomicU64,
    subscribe_failures: AtomicU64,
}

/// A snapshot of the cache, for metrics and health pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Sessions cached now.
    pub entries: usize,
    /// Refused tokens remembered now.
    pub refusals: usize,
    /// Whether the event stream is up (entries are served only then).
    pub live: bool,
    /// Answers served from the cache.
    pub hits: u64,
    /// Tokens Keyport was asked about.
    pub misses: u64,
    /// Refusals served without asking Keyport.
    pub refusal_hits: u64,
    /// Times the event stream went live (1 + resubscriptions).
    pub subscriptions: u64,
    /// Attempts to subscribe that failed (Keyport down, or refusing this
    /// caller the stream).
    pub subscribe_failures: u64,
}

#[derive(Debug, Default)]
struct Entries {
    by_session: HashMap<String, Entry>,
    by_user: HashMap<String, HashSet<String>>,
    /// Permission names Keyport decided (so its catalogue has them), since
    /// the stream went live: a restart that changed the catalogue breaks
    /// the stream, which empties this too.
    known: HashSet<String>,
}

#[derive(Debug)]
struct Entry {
    token: String,
    // Shared with every request it answers: a hit costs a reference count,
    // not a copy of the principal's strings.
    principal: Arc<Principal>,
    cache_ttl: Duration,
    valid_until: Instant,
    /// Every permission the session's roles grant, sorted; `None` when the
    /// entry came from `GetSession`, which does not say.
    granted: Option<Arc<[String]>>,
    /// What the session is allowed in each organization it was checked in,
    /// sorted: the user's roles and their role there together.
    in_organizations: HashMap<String, Arc<[String]>>,
}

/// A permission check answered by [`SessionCache::authorize`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Who is asking (shared with the cache entry).
    pub principal: Arc<Principal>,
    /// Per asked permission, in the order asked: allowed or not.
    pub allowed: Vec<bool>,
    /// Keyport pushed the session's expiry forward: re-issue the cookie.
    pub refreshed: bool,
}

impl Decision {
    /// Whether every asked permission is allowed.
    pub fn all(&self) -> bool {
        self.allowed.iter().all(|allowed| *allowed)
    }

    /// Whether any asked permission is allowed.
    pub fn any(&self) -> bool {
        self.allowed.iter().any(|allowed| *allowed)
    }
}

impl SessionCache {
    /// A cache in front of `client`, subscribing to its event stream in the
    /// background for as long as the cache (or a clone) lives.
    pub fn start(client: KeyportClient, config: CacheConfig) -> Self {
        Self::start_with_clock(client, config, Arc::new(SystemClock))
    }

    /// Like [`SessionCache::start`], with entry lifetimes read from `clock`
    /// (a [`ManualClock`](crate::ManualClock) in tests).
    pub fn start_with_clock(client: KeyportClient, config: CacheConfig, clock: Arc<dyn Clock>) -> Self {
        let cache = Self::detached(client, config, clock);
        tokio::spawn(watch(Arc::downgrade(&cache.inner), cache.client.clone()));
        cache
    }

    /// A cache that does not subscribe (so it is never live on its own).
    fn detached(client: KeyportClient, config: CacheConfig, clock: Arc<dyn Clock>) -> Self {
        let inner = Arc::new(Inner {
            config,
            live: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            entries: Mutex::default(),
            refusals: Refusals::new(config.refusal_ttl, config.max_refusals, clock.clone()),
            counters: Counters::default(),
            clock,
        });
        Self { inner, client }
    }

    /// The client behind the cache.
    pub fn client(&self) -> &KeyportClient {
        &self.client
    }

    /// Whether the event stream is up, so that entries are being served.
    pub fn is_live(&self) -> bool {
        self.inner.live.load(Ordering::Acquire)
    }

    /// Validates `token`: from the cache when possible, else by asking Keyport.
    /// A token Keyport refused as unknown, revoked or expired is refused
    /// again without a call for [`CacheConfig::refusal_ttl`].
    pub async fn get_session(&self, token: &str, client: &ClientInfo) -> Result<ValidatedSession, Error> {
        if let Some(hit) = self.lookup(token) {
            return Ok(hit);
        }
        let (answer, ticket) = self.ask(token, self.client.get_session(token, client)).await?;
        self.insert(token, &answer, ticket);
        Ok(answer)
    }

    /// A miss: the remembered refusal of `token`, else Keyport's answer to
    /// `call` (counted), with the epoch ticket taken before it was asked;
    /// a refusal it answers is remembered.
    async fn ask<T>(&self, token: &str, call: impl Future<Output = Result<T, Error>>) -> Result<(T, u64), Error> {
        let counters = &self.inner.counters;
        if let Some(refused) = self.inner.refusals.get(token) {
            counters.refusal_hits.fetch_add(1, Ordering::Relaxed);
            return Err(refused);
        }
        counters.misses.fetch_add(1, Ordering::Relaxed);
        let ticket = self.inner.epoch.load(Ordering::Acquire);
        match call.await {
            Ok(answer) => Ok((answer, ticket)),
            Err(error) => {
                self.inner.refusals.remember(token, &error);
                Err(error)
            }
        }
    }

    /// Decides `permissions` for `token`: here when the session's granted
    /// permissions are cached and Keyport confirmed every name, else with
    /// one `Authorize` call, whose answer is cached (session and granted
    /// permissions) as a `GetSession` answer would be. Refusals of the
    /// token are remembered as [`SessionCache::get_session`] remembers them.
    pub async fn authorize(&self, token: &str, permissions: &[&str], client: &ClientInfo) -> Result<Decision, Error> {
        if let Some(hit) = self.decide_cached(token, permissions) {
            return Ok(hit);
        }
        let (answer, ticket) = self.ask(token, self.client.authorize(token, permissions, client)).await?;
        let principal = Arc::new(answer.principal.clone());
        self.insert_authorized(token, &answer, Arc::clone(&principal), ticket);
        let allowed = answer.decisions.iter().map(|(_, allowed)| *allowed).collect();
        Ok(Decision { principal, allowed, refreshed: answer.refreshed })
    }

    /// A decision of `permissions` for `token` from the cache alone, if the
    /// stream is live, the session's granted permissions are cached, and
    /// every name is one Keyport decided before.
    pub fn decide_cached(&self, token: &str, permissions: &[&str]) -> Option<Decision> {
        let entries = self.inner.entries.lock().ok()?;
        if !permissions.iter().all(|permission| entries.known.contains(*permission)) {
            return None;
        }
        self.hit(&entries, token, |entry| {
            let granted = entry.granted.as_ref()?;
            let allowed = permissions.iter().map(|p| granted.binary_search_by(|g| g.as_str().cmp(p)).is_ok()).collect();
            Some(Decision { principal: Arc::clone(&entry.principal), allowed, refreshed: false })
        })
        .flatten()
    }

    /// Decides `permissions` for `token` in the organization
    /// `organization_id`, as [`SessionCache::authorize`] does outside one:
    /// here when this session's answer in that organization is cached,
    /// else with one `Authorize` call naming it.
    pub async fn authorize_in(
        &self,
        token: &str,
        organization_id: &str,
        permissions: &[&str],
        client: &ClientInfo,
    ) -> Result<Decision, Error> {
        if let Some(hit) = self.decide_cached_in(token, organization_id, permissions) {
            return Ok(hit);
        }
        let call = self.client.authorize_in(token, organization_id, permissions, client);
        let (answer, ticket) = self.ask(token, call).await?;
        let principal = Arc::new(answer.principal.clone());
        self.insert_in_organization(token, organization_id, &answer, Arc::clone(&principal), ticket);
        let allowed = answer.decisions.iter().map(|(_, allowed)| *allowed).collect();
        Ok(Decision { principal, allowed, refreshed: answer.refreshed })
    }

    /// [`SessionCache::decide_cached`] in the organization `organization_id`.
    pub fn decide_cached_in(&self, token: &str, organization_id: &str, permissions: &[&str]) -> Option<Decision> {
        let entries = self.inner.entries.lock().ok()?;
        if !permissions.iter().all(|permission| entries.known.contains(*permission)) {
            return None;
        }
        self.hit(&entries, token, |entry| {
            let granted = entry.in_organizations.get(organization_id)?;
            let allowed = permissions.iter().map(|p| granted.binary_search_by(|g| g.as_str().cmp(p)).is_ok()).collect();
            Some(Decision { principal: Arc::clone(&entry.principal), allowed, refreshed: false })
        })
        .flatten()
    }

    /// Caches an `Authorize` answer in an organization: added to the
    /// session's entry (made, without the grants outside organizations,
    /// if there is none).
    fn insert_in_organization(
        &self,
        token: &str,
        organization_id: &str,
        answer: &Authorized,
        principal: Arc<Principal>,
        ticket: u64,
    ) {
        let mut granted = answer.granted.clone();
        granted.sort_unstable();
        let known = answer.decisions.iter().map(|(permission, _)| permission.as_str());
        let scope = Scope::Organization(organization_id, granted.into());
        self.insert_entry(token, principal, answer.cache_ttl, scope, known, ticket);
    }

    /// What the cache holds and has done.
    pub fn stats(&self) -> CacheStats {
        let counters = &self.inner.counters;
        CacheStats {
            entries: self.len(),
            refusals: self.inner.refusals.len(),
            live: self.is_live(),
            hits: counters.hits.load(Ordering::Relaxed),
            misses: counters.misses.load(Ordering::Relaxed),
            refusal_hits: counters.refusal_hits.load(Ordering::Relaxed),
            subscriptions: counters.subscriptions.load(Ordering::Relaxed),
            subscribe_failures: counters.subscribe_failures.load(Ordering::Relaxed),
        }
    }

    /// A cached, unexpired answer for `token`, if the stream is live.
    pub fn lookup(&self, token: &str) -> Option<ValidatedSession> {
        self.lookup_entry(token, |entry| ValidatedSession {
            principal: Principal::clone(&entry.principal),
            refreshed: false,
            cache_ttl: entry.cache_ttl,
        })
    }

    /// Like [`SessionCache::lookup`], sharing the cached principal instead
    /// of copying it (what the web middleware does on every hit).
    pub fn lookup_shared(&self, token: &str) -> Option<Arc<Principal>> {
        self.lookup_entry(token, |entry| Arc::clone(&entry.principal))
    }

    fn lookup_entry<T>(&self, token: &str, answer: impl FnOnce(&Entry) -> T) -> Option<T> {
        let entries = self.inner.entries.lock().ok()?;
        self.hit(&entries, token, answer)
    }

    /// `answer` of `token`'s live, unexpired entry in `entries`.
    fn hit<T>(&self, entries: &Entries, token: &str, answer: impl FnOnce(&Entry) -> T) -> Option<T> {
        if !self.is_live() {
            return None;
        }
        let session_id = session_id_of(token)?;
        let entry = entries.by_session.get(session_id)?;
        // Constant time, a word at a time (`subtle` goes a byte at a time,
        // which cost more than the rest of a hit).
        let same_token = constant_time_eq::constant_time_eq(entry.token.as_bytes(), token.as_bytes());
        let hit = (same_token && self.inner.clock.now() < entry.valid_until).then(|| answer(entry));
        if hit.is_some() {
            self.inner.counters.hits.fetch_add(1, Ordering::Relaxed);
        }
        hit
    }

    /// Drops a session, e.g. right after this app revoked it.
    pub fn forget_session(&self, session_id: &str) {
        self.inner.bump();
        if let Ok(mut entries) = self.inner.entries.lock() {
            entries.remove_session(session_id);
        }
    }

    /// Drops every session of a user.
    pub fn forget_user(&self, user_id: &str) {
        self.inner.bump();
        if let Ok(mut entries) = self.inner.entries.lock() {
            entries.remove_user(user_id);
        }
    }

    /// How many sessions are cached.
    pub fn len(&self) -> usize {
        self.inner.entries.lock().map(|entries| entries.by_session.len()).unwrap_or(0)
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn insert(&self, token: &str, answer: &ValidatedSession, ticket: u64) {
        let principal = Arc::new(answer.principal.clone());
        self.insert_entry(token, principal, answer.cache_ttl, Scope::Session, std::iter::empty(), ticket);
    }

    /// Caches an `Authorize` answer: the session with its granted
    /// permissions, and the decided names as known to Keyport.
    fn insert_authorized(&self, token: &str, answer: &Authorized, principal: Arc<Principal>, ticket: u64) {
        let mut granted = answer.granted.clone();
        granted.sort_unstable();
        let known = answer.decisions.iter().map(|(permission, _)| permission.as_str());
        self.insert_entry(token, principal, answer.cache_ttl, Scope::Granted(granted.into()), known, ticket);
    }

    /// Caches `principal` for `token` under `ticket` with what `scope`
    /// says it is allowed, and `known` as names Keyport decided.
    fn insert_entry<'a>(
        &self,
        token: &str,
        principal: Arc<Principal>,
        cache_ttl: Duration,
        scope: Scope<'_>,
        known: impl Iterator<Item = &'a str>,
        ticket: u64,
    ) {
        let ttl = cache_ttl.min(self.inner.config.max_ttl);
        if ttl.is_zero() || !self.is_live() {
            return;
        }
        let Some(session_id) = session_id_of(token) else { return };
        let Ok(mut entries) = self.inner.entries.lock() else { return };
        // Checked under the lock that events take too: an event between the
        // call and here means the answer may already be stale.
        if self.inner.epoch.load(Ordering::Acquire) != ticket {
            return;
        }
        entries.known.extend(known.map(str::to_owned));
        let (granted, in_organization) = match scope {
            Scope::Session => (None, None),
            Scope::Granted(granted) => (Some(granted), None),
            Scope::Organization(organization_id, granted) => {
                // Added to the session's entry when it has one.
                if let Some(entry) = entries.by_session.get_mut(session_id)
                    && constant_time_eq::constant_time_eq(entry.token.as_bytes(), token.as_bytes())
                {
                    entry.in_organizations.insert(organization_id.to_owned(), granted);
                    return;
                }
                (None, Some((organization_id.to_owned(), granted)))
            }
        };
        if entries.by_session.len() >= self.inner.config.max_entries {
            entries.evict(self.inner.clock.now());
        }
        let user_id = principal.user_id.clone();
        entries.by_user.entry(user_id).or_default().insert(session_id.to_owned());
        let entry = Entry {
            token: token.to_owned(),
            principal,
            cache_ttl,
            valid_until: self.inner.clock.now() + ttl,
            granted,
            in_organizations: in_organization.into_iter().collect(),
        };
        entries.by_session.insert(session_id.to_owned(), entry);
    }
}

/// What an answer says a cached session is allowed.
enum Scope<'a> {
    /// Nothing said (a `GetSession` answer).
    Session,
    /// Outside any organization named in the call: every permission granted.
    Granted(Arc<[String]>),
    /// In the organization named: every permission allowed there.
    Organization(&'a str, Arc<[String]>),
}

impl Inner {
    fn bump(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Goes live or dark; either way starts from an empty cache.
    fn set_live(&self, live: bool) {
        if let Ok(mut entries) = self.entries.lock() {
            self.bump();
            *entries = Entries::default();
            self.live.store(live, Ordering::Release);
        }
    }

    fn apply(&self, event: Event) {
        let Ok(mut entries) = self.entries.lock() else { return };
        self.bump();
        match event {
            Event::SessionRevoked(revoked) => entries.remove_session(&revoked.session_id),
            Event::UserChanged(changed) => entries.remove_user(&changed.user_id),
            // Every cached decision may be stale; start over (the sessions
            // are still valid, but an entry is both).
            Event::RolesChanged(_) => *entries = Entries::default(),
            Event::ApiKeysChanged(changed) if changed.api_key_id.is_empty() => entries.remove_user(&changed.owner_id),
            Event::ApiKeysChanged(changed) => entries.remove_session(&key_entry(&changed.api_key_id)),
            Event::Ready(_) | Event::Heartbeat(_) => {}
        }
    }
}

impl Entries {
    fn remove_session(&mut self, session_id: &str) {
        let Some(entry) = self.by_session.remove(session_id) else { return };
        let user_id = &entry.principal.user_id;
        if let Some(sessions) = self.by_user.get_mut(user_id) {
            sessions.remove(session_id);
            if sessions.is_empty() {
                self.by_user.remove(user_id);
            }
        }
    }

    fn remove_user(&mut self, user_id: &str) {
        for session_id in self.by_user.remove(user_id).unwrap_or_default() {
            self.by_session.remove(&session_id);
        }
    }

    /// Makes room: expired entries first, else an arbitrary one.
    fn evict(&mut self, now: Instant) {
        let expired: Vec<String> =
            self.by_session.iter().filter(|(_, e)| e.valid_until <= now).map(|(id, _)| id.clone()).collect();
        if expired.is_empty()
            && let Some(id) = self.by_session.keys().next().cloned()
        {
            self.remove_session(&id);
        }
        for id in expired {
            self.remove_session(&id);
        }
    }
}

/// What an entry is filed under: the session id inside `kp_<id>.<secret>`,
/// or `kpa_<id>` for an API key (never equal to a session id, which is
/// shorter).
pub(crate) fn session_id_of(token: &str) -> Option<&str> {
    if token.starts_with(API_KEY_PREFIX) {
        return token.split_once('.').map(|(prefixed_id, _)| prefixed_id);
    }
    token.strip_prefix("kp_")?.split_once('.').map(|(id, _)| id)
}

/// The entry of the API key `id`.
fn key_entry(id: &str) -> String {
    format!("{API_KEY_PREFIX}{id}")
}

/// Prefix of every API key.
pub(crate) const API_KEY_PREFIX: &str = "kpa_";

/// Keeps the cache subscribed until the cache is dropped, through whichever
/// endpoint answers: when the one it is subscribed to breaks the stream,
/// falls silent, or is found down by any call of the client, the cache goes
/// dark and subscribes again, through another endpoint if there is one.
async fn watch(cache: Weak<Inner>, client: KeyportClient) {
    loop {
        let Some(inner) = cache.upgrade() else { return };
        let CacheConfig { heartbeat_timeout, reconnect_delay, liveness_interval, .. } = inner.config;
        drop(inner);
        match client.subscribe_session_events().await {
            Ok(EventSubscription { mut events, endpoint }) => loop {
                let next = tokio::select! {
                    next = tokio::time::timeout(heartbeat_timeout, events.message()) => Some(next),
                    () = endpoint.down() => None,
                    () = endpoint.check_every(liveness_interval) => None,
                };
                let Some(inner) = cache.upgrade() else { return };
                match next {
                    Some(Ok(Ok(Some(message)))) => match message.event {
                        Some(Event::Ready(_)) => {
                            inner.counters.subscriptions.fetch_add(1, Ordering::Relaxed);
                            inner.set_live(true);
                            tracing::debug!("session cache live");
                        }
                        Some(event) => inner.apply(event),
                        None => {}
                    },
                    Some(Ok(Ok(None))) => {
                        tracing::warn!("session event stream ended; cache off until resubscribed");
                        inner.set_live(false);
                        break;
                    }
                    Some(Ok(Err(status))) => {
                        tracing::warn!(%status, "session event stream failed; cache off until resubscribed");
                        inner.set_live(false);
                        endpoint.broke(Some(&status));
                        break;
                    }
                    Some(Err(_)) => {
                        tracing::warn!("session event stream silent; cache off until resubscribed");
                        inner.set_live(false);
                        endpoint.broke(None);
                        break;
                    }
                    None => {
                        // Its events may stop at any moment without the stream
                        // saying so (a frozen server keeps the connection open).
                        tracing::warn!("session event stream's endpoint down; cache off until resubscribed");
                        inner.set_live(false);
                        break;
                    }
                }
            },
            Err(error) => {
                if let Some(inner) = cache.upgrade() {
                    inner.set_live(false);
                    inner.counters.subscribe_failures.fetch_add(1, Ordering::Relaxed);
                }
                tracing::debug!(%error, "cannot subscribe to session events yet");
            }
        }
        tokio::time::sleep(reconnect_delay).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn answer(ttl: Duration) -> ValidatedSession {
        ValidatedSession { principal: Principal::for_tests("ann@example.com", &[]), refreshed: false, cache_ttl: ttl }
    }

    /// A live cache nobody feeds events, on a clock the test moves.
    fn live_cache(config: CacheConfig) -> (SessionCache, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new());
        let client = KeyportClient::builder("http://127.0.0.1:9").build().unwrap();
        let cache = SessionCache::detached(client, config, clock.clone());
        cache.inner.set_live(true);
        (cache, clock)
    }

    #[tokio::test]
    async fn entries_live_for_the_shorter_of_the_hint_and_max_ttl() {
        let config = CacheConfig { max_ttl: Duration::from_secs(60), ..CacheConfig::default() };
        let (cache, clock) = live_cache(config);
        let ticket = cache.inner.epoch.load(Ordering::Acquire);
        cache.insert("kp_short.x", &answer(Duration::from_secs(5)), ticket);
        cache.insert("kp_long.x", &answer(Duration::from_secs(600)), ticket);
        assert!(cache.lookup("kp_short.x").is_some() && cache.lookup("kp_long.x").is_some());
        clock.advance(Duration::from_millis(4_999));
        assert!(cache.lookup("kp_short.x").is_some(), "within the server's 5 s hint");
        clock.advance(Duration::from_millis(1));
        assert!(cache.lookup("kp_short.x").is_none(), "gone at the hint");
        clock.advance(Duration::from_secs(55) - Duration::from_millis(1));
        assert!(cache.lookup("kp_long.x").is_some(), "a 600 s hint is capped");
        clock.advance(Duration::from_millis(1));
        assert!(cache.lookup("kp_long.x").is_none(), "gone at max_ttl");
        assert!(cache.lookup("kp_short.y").is_none(), "another token for the session never hits");
    }

    #[tokio::test]
    async fn nothing_is_served_or_kept_while_not_live() {
        let (cache, _clock) = live_cache(CacheConfig::default());
        let ticket = cache.inner.epoch.load(Ordering::Acquire);
        cache.insert("kp_a.x", &answer(Duration::from_secs(5)), ticket);
        cache.inner.set_live(false);
        assert!(cache.lookup("kp_a.x").is_none());
        cache.inner.set_live(true);
        let stale = cache.inner.epoch.load(Ordering::Acquire) - 1;
        cache.insert("kp_b.x", &answer(Duration::from_secs(5)), stale);
        assert!(cache.lookup("kp_b.x").is_none(), "an answer that raced an event is not kept");
    }

    fn authorized(granted: &[&str], decided: &[(&str, bool)]) -> Authorized {
        Authorized {
            decisions: decided.iter().map(|(p, allowed)| ((*p).to_owned(), *allowed)).collect(),
            principal: Principal::for_tests("ann@example.com", &["user"]),
            granted: granted.iter().map(|p| (*p).to_owned()).collect(),
            refreshed: false,
            cache_ttl: Duration::from_secs(30),
            organization: None,
        }
    }

    #[tokio::test]
    async fn decisions_in_an_organization_are_kept_apart() {
        let (cache, _clock) = live_cache(CacheConfig::default());
        let ticket = cache.inner.epoch.load(Ordering::Acquire);
        let outside = authorized(&[], &[("posts:read", false)]);
        cache.insert_authorized("kp_a.x", &outside, Arc::new(outside.principal.clone()), ticket);
        let inside = authorized(&["posts:read"], &[("posts:read", true)]);
        cache.insert_in_organization("kp_a.x", "acme", &inside, Arc::new(inside.principal.clone()), ticket);
        assert_eq!(cache.decide_cached("kp_a.x", &["posts:read"]).unwrap().allowed, [false]);
        assert_eq!(cache.decide_cached_in("kp_a.x", "acme", &["posts:read"]).unwrap().allowed, [true]);
        assert!(cache.decide_cached_in("kp_a.x", "beta", &["posts:read"]).is_none(), "another organization asks");
        assert!(cache.decide_cached_in("kp_a.y", "acme", &["posts:read"]).is_none(), "another token never hits");
        // An organization answer first makes an entry with nothing outside.
        cache.insert_in_organization("kp_b.x", "acme", &inside, Arc::new(inside.principal.clone()), ticket);
        assert!(cache.decide_cached_in("kp_b.x", "acme", &["posts:read"]).is_some());
        assert!(cache.decide_cached("kp_b.x", &["posts:read"]).is_none());
        // The user's change (a membership) drops both.
        cache.inner.apply(Event::UserChanged(keyport_proto::v1::UserChanged {
            user_id: inside.principal.user_id.clone(),
            change: keyport_proto::v1::UserChange::Organizations.into(),
        }));
        assert!(cache.decide_cached_in("kp_a.x", "acme", &["posts:read"]).is_none());
        assert!(cache.decide_cached_in("kp_b.x", "acme", &["posts:read"]).is_none());
        let stale = cache.inner.epoch.load(Ordering::Acquire) - 1;
        cache.insert_in_organization("kp_a.x", "acme", &inside, Arc::new(inside.principal.clone()), stale);
        assert!(cache.decide_cached_in("kp_a.x", "acme", &["posts:read"]).is_none(), "a raced answer is not kept");
    }

    #[tokio::test]
    async fn decisions_come_from_cached_grants_of_names_keyport_decided() {
        let (cache, clock) = live_cache(CacheConfig::default());
        let ticket = cache.inner.epoch.load(Ordering::Acquire);
        let answer = authorized(&["posts:write", "posts:read"], &[("posts:read", true)]);
        cache.insert_authorized("kp_a.x", &answer, Arc::new(answer.principal.clone()), ticket);
        let decided = cache.decide_cached("kp_a.x", &["posts:read"]).unwrap();
        assert_eq!(decided.allowed, [true]);
        assert!(cache.decide_cached("kp_a.x", &["posts:write"]).is_none(), "a name Keyport has not decided yet");
        assert!(cache.decide_cached("kp_a.y", &["posts:read"]).is_none(), "another token never hits");

        // A second session decides posts:write and billing:read (denied):
        // both names are known from then on, for every session.
        let ticket = cache.inner.epoch.load(Ordering::Acquire);
        let answer = authorized(&["posts:read"], &[("posts:write", false), ("billing:read", false)]);
        cache.insert_authorized("kp_b.x", &answer, Arc::new(answer.principal.clone()), ticket);
        assert_eq!(cache.decide_cached("kp_a.x", &["posts:write", "billing:read"]).unwrap().allowed, [true, false]);
        assert_eq!(cache.decide_cached("kp_b.x", &["posts:read", "posts:write"]).unwrap().allowed, [true, false]);

        // A session cached by GetSession has no grants to decide with.
        cache.insert("kp_c.x", &answer_for_tests(), cache.inner.epoch.load(Ordering::Acquire));
        assert!(cache.lookup("kp_c.x").is_some() && cache.decide_cached("kp_c.x", &["posts:read"]).is_none());

        // An event about the user drops their decisions; going dark forgets
        // the names (a restart may have changed the catalogue).
        cache.inner.apply(Event::UserChanged(keyport_proto::v1::UserChanged {
            user_id: answer.principal.user_id.clone(),
            change: keyport_proto::v1::UserChange::Roles.into(),
        }));
        assert!(cache.decide_cached("kp_a.x", &["posts:read"]).is_none());
        let ticket = cache.inner.epoch.load(Ordering::Acquire);
        cache.insert_authorized("kp_a.x", &answer, Arc::new(answer.principal.clone()), ticket);
        cache.inner.set_live(false);
        cache.inner.set_live(true);
        assert!(cache.inner.entries.lock().unwrap().known.is_empty());
        // A stale answer is not kept, and entries expire.
        let stale = cache.inner.epoch.load(Ordering::Acquire) - 1;
        cache.insert_authorized("kp_a.x", &answer, Arc::new(answer.principal.clone()), stale);
        assert!(cache.decide_cached("kp_a.x", &["posts:write"]).is_none());
        let ticket = cache.inner.epoch.load(Ordering::Acquire);
        cache.insert_authorized("kp_a.x", &answer, Arc::new(answer.principal.clone()), ticket);
        assert!(cache.decide_cached("kp_a.x", &["posts:write"]).is_some());
        clock.advance(Duration::from_secs(30));
        assert!(cache.decide_cached("kp_a.x", &["posts:write"]).is_none(), "gone at the TTL");
    }

    #[tokio::test]
    async fn a_change_of_the_roles_drops_every_decision() {
        let (cache, _clock) = live_cache(CacheConfig::default());
        let ticket = cache.inner.epoch.load(Ordering::Acquire);
        let answer = authorized(&["posts:read"], &[("posts:read", true)]);
        cache.insert_authorized("kp_a.x", &answer, Arc::new(answer.principal.clone()), ticket);
        assert!(cache.decide_cached("kp_a.x", &["posts:read"]).is_some());
        cache.inner.apply(Event::RolesChanged(keyport_proto::v1::RolesChanged {}));
        assert!(cache.decide_cached("kp_a.x", &["posts:read"]).is_none(), "asked again, of the new roles");
        assert!(cache.is_live(), "the stream is fine: only the answers are stale");
        let stale = cache.inner.epoch.load(Ordering::Acquire) - 1;
        cache.insert_authorized("kp_a.x", &answer, Arc::new(answer.principal.clone()), stale);
        assert!(cache.decide_cached("kp_a.x", &["posts:read"]).is_none(), "an answer from before it is not kept");
    }

    fn answer_for_tests() -> ValidatedSession {
        answer(Duration::from_secs(5))
    }

    #[test]
    fn session_ids_come_from_the_token() {
        assert_eq!(session_id_of("kp_abc.def"), Some("abc"));
        assert_eq!(session_id_of("kpa_abc.def"), Some("kpa_abc"), "a key's entry is apart from sessions'");
        assert_eq!(session_id_of("abc.def"), None);
        assert_eq!(session_id_of("kp_abc"), None);
        assert_eq!(session_id_of("kpa_abc"), None);
    }

    #[tokio::test]
    async fn key_events_drop_one_key_or_all_of_an_owner() {
        let (cache, _clock) = live_cache(CacheConfig::default());
        let answer = authorized(&["posts:read"], &[("posts:read", true)]);
        let owner = answer.principal.user_id.clone();
        for token in ["kpa_one.x", "kpa_two.x", "kp_a.x"] {
            let ticket = cache.inner.epoch.load(Ordering::Acquire);
            cache.insert_authorized(token, &answer, Arc::new(answer.principal.clone()), ticket);
        }
        let changed = |owner_id: &str, api_key_id: &str| {
            Event::ApiKeysChanged(keyport_proto::v1::ApiKeysChanged {
                owner_id: owner_id.to_owned(),
                api_key_id: api_key_id.to_owned(),
            })
        };
        cache.inner.apply(changed(&owner, "one"));
        assert!(cache.decide_cached("kpa_one.x", &["posts:read"]).is_none(), "the revoked key");
        assert!(cache.decide_cached("kpa_two.x", &["posts:read"]).is_some(), "not the owner's other key");
        cache.inner.apply(changed(&owner, ""));
        assert!(cache.decide_cached("kpa_two.x", &["posts:read"]).is_none(), "every key of the owner");
        assert!(cache.decide_cached("kp_a.x", &["posts:read"]).is_none(), "an owner entry of the same id goes too");
        // A session whose id is the key's id is another entry.
        let ticket = cache.inner.epoch.load(Ordering::Acquire);
        cache.insert_authorized("kp_one.x", &answer, Arc::new(answer.principal.clone()), ticket);
        cache.inner.apply(changed("someone-else", "one"));
        assert!(cache.decide_cached("kp_one.x", &["posts:read"]).is_some());
    }
}
