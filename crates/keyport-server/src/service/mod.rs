//! The gRPC services: each RPC reads its request, calls [`Accounts`], and
//! converts the answer. No rules live here.

mod oauth;
mod session;
mod user;
mod watch_events;

use keyport_core::{Accounts, Principal};
use tokio::sync::watch;
use tonic::{Request, Status};

pub use self::{oauth::OAuthApi, session::SessionApi, user::UserApi, watch_events::EventStream};
use crate::{context::ClientResolver, context::bearer_token, events::EventBus, status::to_status};

/// What every service needs: the use cases and how to read callers.
#[derive(Clone)]
pub struct Shared {
    /// The use cases.
    pub identity: Accounts,
    /// Reads the end user's address and agent.
    pub clients: ClientResolver,
    /// Session events for `WatchSessionEvents`.
    pub(crate) events: EventBus,
    /// Turns true when the server begins to shut down; ends event streams.
    pub(crate) stopping: watch::Receiver<bool>,
}

impl Shared {
    /// The principal behind a user-scoped call, from its bearer token.
    async fn caller<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let token = bearer_token(request.metadata()).map_err(to_status)?;
        self.identity.authenticate(token).await.map_err(to_status)
    }
}
