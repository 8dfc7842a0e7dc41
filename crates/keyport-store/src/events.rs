//! Session events across replicas, through PostgreSQL itself: each replica
//! `NOTIFY`s what it changed and `LISTEN`s for what the others changed, so no
//! second system is needed to keep every replica's subscribers in step.

use std::time::Duration;

use keyport_core::{
    events::{SessionEvent, UserChange},
    token::SessionId,
    user::UserId,
};
use sea_orm::sqlx::{self, PgPool, postgres::PgListener};
use uuid::Uuid;

use crate::{Backend, SeaStore};

/// The PostgreSQL channel Keyport's replicas talk on.
const CHANNEL: &str = "keyport_session_events";

/// What the relay hands to its replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relayed {
    /// Another replica published this event.
    Event(SessionEvent),
    /// The listening connection dropped and came back: events may have been
    /// missed, so every subscriber must start over.
    Resync,
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
            origin: Uuid::now_v7().simple().to_string(),
        })
    }

    /// Tells the other replicas about `event`, in the background.
    pub fn notify(&self, event: &SessionEvent) {
        let payload = encode(&self.origin, event);
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let sent = sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(&payload).execute(&pool).await;
            if let Err(error) = sent {
                // The other replicas' caches are then bounded by the cache TTL.
                tracing::error!(%error, "could not relay a session event to other replicas");
            }
        });
    }

    /// Listens for the other replicas' events until the pool closes, handing
    /// each to `deliver`; reconnects on its own and reports gaps as
    /// [`Relayed::Resync`].
    pub async fn listen(self, deliver: impl Fn(Relayed) + Send + 'static) {
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
                    Ok(Some(notification)) => {
                        if let Some(event) = decode(&self.origin, notification.payload()) {
                            deliver(Relayed::Event(event));
                        }
                    }
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

    async fn subscribe(&self) -> Result<PgListener, sqlx::Error> {
        let mut listener = PgListener::connect_with(&self.pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(listener)
    }
}

/// `origin \t kind \t user_id \t detail`, where detail is the session id or
/// the kind of user change.
fn encode(origin: &str, event: &SessionEvent) -> String {
    match event {
        SessionEvent::SessionRevoked { session_id, user_id } => format!("{origin}\tsession\t{user_id}\t{session_id}"),
        SessionEvent::UserChanged { user_id, change } => format!("{origin}\tuser\t{user_id}\t{}", change.as_str()),
    }
}

/// Reads another replica's notification; `None` for our own or malformed ones.
fn decode(own_origin: &str, payload: &str) -> Option<SessionEvent> {
    let mut fields = payload.split('\t');
    let (origin, kind, user_id, detail) = (fields.next()?, fields.next()?, fields.next()?, fields.next()?);
    if origin == own_origin {
        return None;
    }
    let user_id = UserId(Uuid::parse_str(user_id).ok()?);
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
        let user_id = UserId::generate();
        let events = [
            SessionEvent::SessionRevoked { session_id: SessionId::from_trusted("A".repeat(22)), user_id },
            SessionEvent::UserChanged { user_id, change: UserChange::Deleted },
        ];
        for event in events {
            let payload = encode("replica-a", &event);
            assert_eq!(decode("replica-b", &payload), Some(event));
            assert_eq!(decode("replica-a", &payload), None);
        }
    }

    #[test]
    fn malformed_payloads_are_ignored() {
        for payload in ["", "x", "o\tsession\tnot-a-uuid\tid", "o\tweird\t0190d2b4-0000-7000-8000-000000000000\tx"] {
            assert_eq!(decode("me", payload), None, "{payload:?}");
        }
    }
}
