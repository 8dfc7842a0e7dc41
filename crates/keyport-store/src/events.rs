//! Session events across replicas, through PostgreSQL itself: each replica
//! `NOTIFY`s what it changed, in the transaction of the change (see
//! [`crate::write::notify`]), and `LISTEN`s for what the others changed, so
//! no second system is needed to keep every replica's caches in step.
//!
//! A listening connection can also go quiet without failing (a network
//! partition leaves TCP waiting for hours). So each replica sends itself a
//! heartbeat through the channel every [`HEARTBEAT`]; when none has come
//! back for [`STALL_AFTER`], it reports [`Relayed::Stalled`], and caches stop
//! trusting what they hold until the relay is back. That bounds how long a
//! revocation on another replica can go unseen, whatever fails.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use keyport_core::{
    api_key::ApiKeyId,
    events::{SessionEvent, UserChange},
    token::SessionId,
    user::UserId,
};
use sea_orm::sqlx::{self, PgPool, postgres::PgListener};
use uuid::Uuid;
// Heartbeat ages on tokio's clock, which tests can pause.
use tokio::time::Instant;

use crate::{backend::Backend, store::SeaStore};

/// The PostgreSQL channel Keyport's replicas talk on.
pub(crate) const CHANNEL: &str = "keyport_session_events";
/// How often a replica sends itself a heartbeat through the channel.
pub const HEARTBEAT: Duration = Duration::from_millis(250);
/// How long without a heartbeat back before the relay counts as stalled.
pub const STALL_AFTER: Duration = Duration::from_millis(1000);
/// Round trips of this replica's heartbeats through PostgreSQL: how late
/// the other replicas' events arrive.
pub const RELAY_LAG: &str = "keyport_event_relay_lag_seconds";
/// The detail field of a heartbeat notification.
const HEARTBEAT_KIND: &str = "heartbeat";

/// What the relay hands to its replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relayed {
    /// Another replica published this event.
    Event(SessionEvent),
    /// The listening connection dropped and came back: events may have been
    /// missed, so every subscriber must start over.
    Resync,
    /// No heartbeat came back for [`STALL_AFTER`]: other replicas' events may
    /// not be arriving. Followed by [`Relayed::Resync`] once they do again.
    Stalled,
}

/// Sends this replica's events to the others and receives theirs.
#[derive(Debug, Clone)]
pub struct PgEventRelay {
    pool: PgPool,
    /// Marks this replica's own notifications, which it already delivered.
    origin: String,
}

impl PgEventRelay {
    /// A relay over `store`'s pool; `None` unless the store is PostgreSQL.
    pub fn new(store: &SeaStore) -> Option<Self> {
        (store.backend() == Backend::Postgres).then(|| Self {
            pool: store.connection().get_postgres_connection_pool().clone(),
            origin: store.origin().to_owned(),
        })
    }

    /// Listens for the other replicas' events until the pool closes, handing
    /// each to `deliver`; reconnects on its own, reports gaps as
    /// [`Relayed::Resync`] and silence as [`Relayed::Stalled`].
    pub async fn listen(self, deliver: impl Fn(Relayed) + Send + Sync + 'static) {
        let deliver = Arc::new(deliver);
        let echo =
            Arc::new(Echo { last: Mutex::new(Instant::now()), sent: Mutex::new(None), stalled: Default::default() });
        let heartbeats = tokio::spawn(self.clone().send_heartbeats(echo.clone(), deliver.clone()));
        let _stop_heartbeats = AbortOnDrop(heartbeats);
        let mut backoff = Duration::from_millis(100);
        loop {
            let mut listener = match self.subscribe().await {
                Ok(listener) => listener,
                Err(error) => {
                    tracing::warn!(%error, ?backoff, "cannot listen for session events; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            backoff = Duration::from_millis(100);
            loop {
                match listener.try_recv().await {
                    Ok(Some(notification)) => match decode(&self.origin, notification.payload()) {
                        Decoded::Event(event) => deliver(Relayed::Event(event)),
                        Decoded::OwnHeartbeat => {
                            if echo.came_back() {
                                tracing::info!("session event relay is live again; asking subscribers to resync");
                                deliver(Relayed::Resync);
                            }
                        }
                        Decoded::Ignored => {}
                    },
                    Ok(None) => {
                        tracing::warn!("session event listener reconnected; asking subscribers to resync");
                        deliver(Relayed::Resync);
                    }
                    Err(sqlx::Error::PoolClosed) => return,
                    Err(error) => {
                        tracing::warn!(%error, "session event listener failed; asking subscribers to resync");
                        deliver(Relayed::Resync);
                        break;
                    }
                }
            }
        }
    }

    /// Sends a heartbeat every [`HEARTBEAT`] and reports a stall when none
    /// has come back for [`STALL_AFTER`].
    async fn send_heartbeats(self, echo: Arc<Echo>, deliver: Arc<impl Fn(Relayed) + Send + Sync + 'static>) {
        let payload = format!("{}\t{HEARTBEAT_KIND}", self.origin);
        let mut ticker = tokio::time::interval(HEARTBEAT);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if echo.is_overdue() {
                tracing::warn!(silence = ?STALL_AFTER, "session event relay stalled; server caches off until it is back");
                deliver(Relayed::Stalled);
            }
            echo.sending();
            let send = sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(&payload).execute(&self.pool);
            if let Ok(Err(error)) = tokio::time::timeout(HEARTBEAT, send).await {
                tracing::debug!(%error, "could not send a session event heartbeat");
            }
        }
    }

    async fn subscribe(&self) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(listener)
    }
}

/// When this replica last heard its own heartbeat, and whether it has said
/// the relay is stalled.
struct Echo {
    last: Mutex<Instant>,
    /// When the heartbeat in flight was sent, to time its round trip.
    sent: Mutex<Option<Instant>>,
    stalled: std::sync::atomic::AtomicBool,
}

impl Echo {
    /// Notes that a heartbeat is being sent.
    fn sending(&self) {
        if let Ok(mut sent) = self.sent.lock() {
            *sent = Some(Instant::now());
        }
    }

    /// Records a heartbeat; true when it ends a stall.
    fn came_back(&self) -> bool {
        let now = Instant::now();
        if let Some(sent) = self.sent.lock().ok().and_then(|mut sent| sent.take()) {
            metrics::histogram!(RELAY_LAG).record(now.duration_since(sent).as_secs_f64());
        }
        if let Ok(mut last) = self.last.lock() {
            *last = now;
        }
        self.stalled.swap(false, std::sync::atomic::Ordering::AcqRel)
    }

    /// True once per stall: the first time the silence exceeds [`STALL_AFTER`].
    fn is_overdue(&self) -> bool {
        let silent = self.last.lock().map(|last| last.elapsed() > STALL_AFTER).unwrap_or(true);
        silent && !self.stalled.swap(true, std::sync::atomic::Ordering::AcqRel)
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What a notification turned out to be.
#[derive(Debug, PartialEq, Eq)]
enum Decoded {
    /// Another replica's event.
    Event(SessionEvent),
    /// This replica's heartbeat, back through the channel.
    OwnHeartbeat,
    /// This replica's own event, another's heartbeat, or something malformed.
    Ignored,
}

/// The kind of [`SessionEvent::RolesChanged`], which has no user.
const ROLES_KIND: &str = "roles";
/// The kind of [`SessionEvent::ApiKeysChanged`]: the owner's id, then the
/// key's (empty for all of the owner's).
const KEYS_KIND: &str = "api_keys";

/// `origin \t kind \t user_id \t detail`, where detail is the session id or
/// the kind of user change.
pub(crate) fn encode(origin: &str, event: &SessionEvent) -> String {
    match event {
        SessionEvent::SessionRevoked { session_id, user_id } => format!("{origin}\tsession\t{user_id}\t{session_id}"),
        SessionEvent::UserChanged { user_id, change } => format!("{origin}\tuser\t{user_id}\t{}", change.as_str()),
        SessionEvent::RolesChanged => format!("{origin}\t{ROLES_KIND}"),
        SessionEvent::ApiKeysChanged { owner_id, key_id } => {
            let key_id = key_id.as_ref().map(ApiKeyId::as_str).unwrap_or_default();
            format!("{origin}\t{KEYS_KIND}\t{owner_id}\t{key_id}")
        }
    }
}

/// Reads a notification of the channel.
fn decode(own_origin: &str, payload: &str) -> Decoded {
    let mut fields = payload.split('\t');
    let (Some(origin), Some(kind)) = (fields.next(), fields.next()) else { return Decoded::Ignored };
    match (origin == own_origin, kind) {
        (true, HEARTBEAT_KIND) => Decoded::OwnHeartbeat,
        (true, _) | (false, HEARTBEAT_KIND) => Decoded::Ignored,
        (false, _) => decode_event(kind, fields.next(), fields.next()).map_or(Decoded::Ignored, Decoded::Event),
    }
}

fn decode_event(kind: &str, user_id: Option<&str>, detail: Option<&str>) -> Option<SessionEvent> {
    if kind == ROLES_KIND {
        return Some(SessionEvent::RolesChanged);
    }
    let owner = Uuid::parse_str(user_id?).ok()?;
    let detail = detail?;
    if kind == KEYS_KIND {
        let key_id = match detail {
            "" => None,
            id => Some(ApiKeyId::parse(id).ok()?),
        };
        return Some(SessionEvent::ApiKeysChanged { owner_id: owner, key_id });
    }
    let user_id = UserId(owner);
    match kind {
        "session" => Some(SessionEvent::SessionRevoked { session_id: SessionId::parse(detail).ok()?, user_id }),
        "user" => Some(SessionEvent::UserChanged { user_id, change: UserChange::parse(detail)? }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_between_replicas_but_not_to_their_origin() {
        let user_id = UserId::generate(keyport_core::Timestamp::from_unix_millis(1));
        let events = [
            SessionEvent::SessionRevoked { session_id: SessionId::from_trusted("A".repeat(22)), user_id },
            SessionEvent::UserChanged { user_id, change: UserChange::Deleted },
            SessionEvent::RolesChanged,
            SessionEvent::ApiKeysChanged { owner_id: user_id.0, key_id: None },
            SessionEvent::ApiKeysChanged {
                owner_id: user_id.0,
                key_id: Some(ApiKeyId::from_trusted(format!("{}A", "B".repeat(21)))),
            },
        ];
        for event in events {
            let payload = encode("replica-a", &event);
            assert_eq!(decode("replica-b", &payload), Decoded::Event(event));
            assert_eq!(decode("replica-a", &payload), Decoded::Ignored);
        }
    }

    #[test]
    fn only_a_replica_own_heartbeats_count_for_it() {
        assert_eq!(decode("replica-a", "replica-a\theartbeat"), Decoded::OwnHeartbeat);
        assert_eq!(decode("replica-b", "replica-a\theartbeat"), Decoded::Ignored);
    }

    #[test]
    fn malformed_payloads_are_ignored() {
        for payload in ["", "x", "o\tsession\tnot-a-uuid\tid", "o\tweird\t0190d2b4-0000-7000-8000-000000000000\tx"] {
            assert_eq!(decode("me", payload), Decoded::Ignored, "{payload:?}");
        }
    }
}
