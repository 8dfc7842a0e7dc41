//! The gRPC services: each RPC reads its request, calls [`Accounts`], and
//! converts the answer. No rules live here.

mod admin;
mod api_key;
mod authorization;
mod oauth;
mod organization;
mod passkey;
mod session;
mod two_factor;
mod user;
mod watch_events;

use keyport_core::{
    Accounts, Principal,
    accounts::Admin,
    api_key::{KeyPrincipal, is_api_key},
};
use keyport_proto::v1::{
    admin_service_server::AdminServiceServer, api_key_service_server::ApiKeyServiceServer,
    authorization_service_server::AuthorizationServiceServer, o_auth_service_server::OAuthServiceServer,
    organization_service_server::OrganizationServiceServer, passkey_service_server::PasskeyServiceServer,
    session_service_server::SessionServiceServer, two_factor_service_server::TwoFactorServiceServer,
    user_service_server::UserServiceServer,
};
use tokio::sync::watch;
use tonic::{Request, Status};

pub use self::{
    admin::AdminApi, api_key::ApiKeyApi, authorization::AuthorizationApi, oauth::OAuthApi,
    organization::OrganizationApi, passkey::PasskeyApi, session::SessionApi, two_factor::TwoFactorApi, user::UserApi,
    watch_events::EventStream,
};
use crate::{caller::ClientResolver, caller::bearer_token, events::EventBus, registry::Registry, status::to_status};

/// Every API service Keyport serves, each refusing requests over
/// `max_message_bytes`. A new service is one line here.
pub(crate) fn registry(shared: &Shared, max_message_bytes: usize) -> Registry {
    Registry::new()
        .with(UserServiceServer::new(UserApi(shared.clone())).max_decoding_message_size(max_message_bytes))
        .with(SessionServiceServer::new(SessionApi(shared.clone())).max_decoding_message_size(max_message_bytes))
        .with(OAuthServiceServer::new(OAuthApi(shared.clone())).max_decoding_message_size(max_message_bytes))
        .with(TwoFactorServiceServer::new(TwoFactorApi(shared.clone())).max_decoding_message_size(max_message_bytes))
        .with(PasskeyServiceServer::new(PasskeyApi(shared.clone())).max_decoding_message_size(max_message_bytes))
        .with(
            AuthorizationServiceServer::new(AuthorizationApi(shared.clone()))
                .max_decoding_message_size(max_message_bytes),
        )
        .with(AdminServiceServer::new(AdminApi(shared.clone())).max_decoding_message_size(max_message_bytes))
        .with(ApiKeyServiceServer::new(ApiKeyApi(shared.clone())).max_decoding_message_size(max_message_bytes))
        .with(
            OrganizationServiceServer::new(OrganizationApi(shared.clone()))
                .max_decoding_message_size(max_message_bytes),
        )
}

/// What every service needs: the use cases and how to read callers.
#[derive(Clone)]
pub struct Shared {
    /// The use cases.
    pub accounts: Accounts,
    /// Reads the end user's address and agent.
    pub clients: ClientResolver,
    /// Session events for `WatchSessionEvents`.
    pub(crate) events: EventBus,
    /// Turns true when the server begins to shut down; ends event streams.
    pub(crate) stopping: watch::Receiver<bool>,
}

/// The caller of an admin RPC: a session, or an API key.
pub(crate) enum AdminCaller {
    Session(Principal),
    Key(KeyPrincipal),
}

impl AdminCaller {
    /// The caller as the use cases take it.
    pub(crate) fn admin(&self) -> Admin<'_> {
        match self {
            Self::Session(principal) => Admin::Session(principal),
            Self::Key(key) => Admin::Key(key),
        }
    }
}

impl Shared {
    /// The caller of an admin RPC, from its bearer credential: a session
    /// token or an API key.
    async fn admin_caller<T>(&self, request: &Request<T>) -> Result<AdminCaller, Status> {
        let token = bearer_token(request.metadata()).map_err(to_status)?;
        if is_api_key(token) {
            return self.accounts.authenticate_key(token).await.map(AdminCaller::Key).map_err(to_status);
        }
        self.accounts.authenticate(token).await.map(AdminCaller::Session).map_err(to_status)
    }

    /// The principal behind a user-scoped call, from its bearer token.
    async fn caller<T>(&self, request: &Request<T>) -> Result<Principal, Status> {
        let token = bearer_token(request.metadata()).map_err(to_status)?;
        let principal = self.accounts.authenticate(token).await.map_err(to_status)?;
        crate::telemetry::record_user(&principal.user.id);
        Ok(principal)
    }
}
