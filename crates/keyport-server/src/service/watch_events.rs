//! `SessionService.WatchSessionEvents`: the bus, as a gRPC server stream.

use std::time::Duration;

use keyport_core::events::{SessionEvent, UserChange};
use keyport_proto::v1::{self, watch_session_events_response::Event};
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::Shared;
use crate::events::BusMessage;

/// How often an idle stream proves it is alive.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// The stream type of `WatchSessionEvents`.
pub type EventStream = ReceiverStream<Result<v1::WatchSessionEventsResponse, Status>>;

/// Subscribes to the bus and streams from it until the client leaves, the
/// server stops, or the subscription lags (then `ABORTED`: resynchronise).
pub(crate) fn stream(shared: &Shared) -> EventStream {
    // Subscribe before `ready` goes out, so nothing after it can be missed.
    let mut bus = shared.events.subscribe();
    let mut stopping = shared.stopping.clone();
    let (sender, receiver) = mpsc::channel(64);
    tokio::spawn(async move {
        if sender.send(Ok(message(Event::Ready(v1::StreamReady {})))).await.is_err() {
            return;
        }
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + HEARTBEAT, HEARTBEAT);
        loop {
            let next = tokio::select! {
                received = bus.recv() => match received {
                    Ok(BusMessage::Event(event)) => Ok(message(event_of(event))),
                    Ok(BusMessage::Resync) => Err(Status::aborted("session events may have been lost; resynchronise")),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "event subscriber fell behind; cutting it off");
                        Err(Status::aborted("subscriber fell behind; resynchronise"))
                    }
                    Err(RecvError::Closed) => return,
                },
                _ = heartbeat.tick() => Ok(message(Event::Heartbeat(v1::Heartbeat {}))),
                _ = stopping.wait_for(|stopping| *stopping) => return,
            };
            let fatal = next.is_err();
            if sender.send(next).await.is_err() || fatal {
                return;
            }
        }
    });
    ReceiverStream::new(receiver)
}

fn message(event: Event) -> v1::WatchSessionEventsResponse {
    v1::WatchSessionEventsResponse { event: Some(event) }
}

fn event_of(event: SessionEvent) -> Event {
    match event {
        SessionEvent::SessionRevoked { session_id, user_id } => Event::SessionRevoked(v1::SessionRevoked {
            session_id: session_id.to_string(),
            user_id: user_id.to_string(),
        }),
        SessionEvent::UserChanged { user_id, change } => {
            Event::UserChanged(v1::UserChanged { user_id: user_id.to_string(), change: user_change(change).into() })
        }
    }
}

fn user_change(change: UserChange) -> v1::UserChange {
    match change {
        UserChange::Profile => v1::UserChange::Profile,
        UserChange::Password => v1::UserChange::Password,
        UserChange::Roles => v1::UserChange::Roles,
        UserChange::Banned => v1::UserChange::Banned,
        UserChange::Deleted => v1::UserChange::Deleted,
        UserChange::SessionsRevoked => v1::UserChange::SessionsRevoked,
    }
}
