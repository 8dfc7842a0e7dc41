//! `SessionService.WatchSessionEvents`: the bus, as a gRPC server stream.

use std::time::Duration;

use keyport_proto::v1::{self, watch_session_events_response::Event};
use tokio::sync::{broadcast::error::RecvError, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use super::Shared;
use crate::{convert, events::BusMessage, status};

/// How often an idle stream proves it is alive.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// The stream type of `WatchSessionEvents`.
pub type EventStream = ReceiverStream<Result<v1::WatchSessionEventsResponse, Status>>;

/// Subscribes to the bus and streams from it until the client leaves, the
/// server stops, or the subscription lags (then `ABORTED` with reason
/// `EVENTS_LOST`: resynchronise).
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
                    Ok(BusMessage::Event(event)) => Ok(message(convert::session_event(event))),
                    Ok(BusMessage::Resync) => Err(status::events_lost("session events may have been lost; resynchronise")),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "event subscriber fell behind; cutting it off");
                        Err(status::events_lost("subscriber fell behind; resynchronise"))
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
