//! The event bus behind `WatchSessionEvents`: one broadcast channel per
//! process, fed by this replica's use cases and, on PostgreSQL, by the other
//! replicas through [`PgEventRelay`].

use keyport_core::events::{EventPublisher, SessionEvent};
use keyport_store::events::{PgEventRelay, Relayed};
use tokio::sync::broadcast;

/// Events buffered per subscriber; one that falls further behind is cut off
/// and must resynchronise.
const CAPACITY: usize = 4096;

/// What subscribers receive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum BusMessage {
    /// An event of this replica's, to pass on.
    Event(SessionEvent),
    /// Another replica's event, to pass on and to apply to this replica's
    /// session cache (its own events were applied before publishing).
    Relayed(SessionEvent),
    /// Events may have been lost: end every stream so caches start over.
    Resync,
}

/// Fans session events out to every `WatchSessionEvents` stream.
#[derive(Debug, Clone)]
pub(crate) struct EventBus {
    sender: broadcast::Sender<BusMessage>,
    relay: Option<PgEventRelay>,
}

impl EventBus {
    /// A bus that also relays through PostgreSQL when `relay` is given, and
    /// starts listening to the other replicas.
    pub(crate) fn new(relay: Option<PgEventRelay>) -> Self {
        let (sender, _) = broadcast::channel(CAPACITY);
        if let Some(relay) = relay.clone() {
            let sender = sender.clone();
            tokio::spawn(relay.listen(move |relayed| {
                let message = match relayed {
                    Relayed::Event(event) => BusMessage::Relayed(event),
                    Relayed::Resync => BusMessage::Resync,
                };
                let _ = sender.send(message);
            }));
        }
        Self { sender, relay }
    }

    /// A new subscription; it sees every message sent after this call.
    pub(crate) fn subscribe(&self) -> broadcast::Receiver<BusMessage> {
        self.sender.subscribe()
    }
}

impl EventPublisher for EventBus {
    fn publish(&self, event: SessionEvent) {
        if let Some(relay) = &self.relay {
            relay.notify(&event);
        }
        // No subscriber is not an error: nobody caches sessions right now.
        let _ = self.sender.send(BusMessage::Event(event));
    }
}
