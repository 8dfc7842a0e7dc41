//! The event bus behind `WatchSessionEvents`: one broadcast channel per
//! process, fed by this replica's use cases and, on PostgreSQL, by the other
//! replicas through [`PgEventRelay`].
//!
//! Order matters for every event: this replica's session cache drops what
//! the event makes stale *before* any subscriber hears of it. A subscriber
//! (a web app's cache) that drops a session and asks again must never get
//! the stale answer back. Own events are applied by the use cases before
//! they publish; relayed ones in [`EventBus::relay`], before they are sent on.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicBool, Ordering},
};

use keyport_core::{
    Accounts,
    events::{EventPublisher, SessionEvent},
};
use keyport_store::events::{PgEventRelay, Relayed};
use tokio::sync::broadcast;

/// Events buffered per subscriber; one that falls further behind is cut off
/// and must resynchronise.
const CAPACITY: usize = 4096;

/// What subscribers receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BusMessage {
    /// An event to pass on; this replica's cache has applied it already.
    Event(SessionEvent),
    /// Events may have been lost: end every stream so caches start over.
    Resync,
}

/// Fans session events out to every `WatchSessionEvents` stream.
#[derive(Debug, Clone)]
pub(crate) struct EventBus {
    sender: broadcast::Sender<BusMessage>,
    /// False while other replicas' events may not be arriving (relay
    /// stalled or reconnecting): streams are refused, since a cache fed by
    /// them would miss revocations.
    live: Arc<AtomicBool>,
}

impl EventBus {
    /// A bus with no subscribers yet.
    pub(crate) fn new() -> Self {
        let (sender, _) = broadcast::channel(CAPACITY);
        Self { sender, live: Arc::new(AtomicBool::new(true)) }
    }

    /// A new subscription; it sees every message sent after this call.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.sender.subscribe()
    }

    /// Open subscriptions (`WatchSessionEvents` streams).
    pub(crate) fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }

    /// Whether events from every replica are arriving.
    pub(crate) fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    /// Relays the other replicas' events until the database pool closes:
    /// each is applied to this replica's cache, then sent to subscribers.
    pub(crate) async fn relay(self, relay: PgEventRelay, cache: CacheHealth) {
        relay
            .listen(move |relayed| match relayed {
                Relayed::Event(SessionEvent::RolesChanged) => {
                    // Subscribers drop their decisions on this event and ask
                    // again: this replica must answer with the new roles.
                    let (accounts, sender) = (cache.accounts.clone(), self.sender.clone());
                    tokio::spawn(async move {
                        for attempt in 1..=10 {
                            match accounts.reload_roles().await {
                                Ok(()) => break,
                                Err(error) => tracing::warn!(%error, attempt, "cannot read the run-time roles yet"),
                            }
                            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        }
                        let _ = sender.send(BusMessage::Event(SessionEvent::RolesChanged));
                    });
                }
                Relayed::Event(event) => {
                    cache.accounts.apply_remote_event(&event);
                    let _ = self.sender.send(BusMessage::Event(event));
                }
                Relayed::Resync => {
                    cache.set_relay_live(true);
                    self.live.store(true, Ordering::Release);
                    let _ = self.sender.send(BusMessage::Resync);
                }
                Relayed::Stalled => {
                    self.live.store(false, Ordering::Release);
                    cache.set_relay_live(false);
                    let _ = self.sender.send(BusMessage::Resync);
                }
            })
            .await;
    }
}

impl EventPublisher for EventBus {
    fn publish(&self, event: SessionEvent) {
        // The store has told the other replicas, in the change's own
        // transaction. No subscriber is not an error: nobody caches now.
        let _ = self.sender.send(BusMessage::Event(event));
    }
}

/// Whether this replica's session cache may be trusted: only while the
/// database answers and (on PostgreSQL) the other replicas' events arrive,
/// since revocations travel through both. Every change empties the cache.
#[derive(Clone)]
pub(crate) struct CacheHealth {
    accounts: Accounts,
    /// (database reachable, relay live)
    state: Arc<Mutex<(bool, bool)>>,
}

impl CacheHealth {
    /// Both healthy, as at start.
    pub(crate) fn new(accounts: Accounts) -> Self {
        Self { accounts, state: Arc::new(Mutex::new((true, true))) }
    }

    /// The database became reachable, or stopped being.
    pub(crate) fn set_database_reachable(&self, reachable: bool) {
        self.update(|state| state.0 = reachable);
    }

    /// The relay of other replicas' events came back, or stalled.
    pub(crate) fn set_relay_live(&self, live: bool) {
        self.update(|state| state.1 = live);
    }

    fn update(&self, change: impl FnOnce(&mut (bool, bool))) {
        let Ok(mut state) = self.state.lock() else { return };
        change(&mut state);
        // Under the lock, so concurrent updates cannot apply out of order.
        self.accounts.reset_session_cache(state.0 && state.1);
    }
}
