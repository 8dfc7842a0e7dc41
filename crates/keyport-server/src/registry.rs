//! The one list of Keyport's API services. Routing and health both read it,
//! so a new service is added in one place: [`crate::service::registry`].
//! (Reflection needs no list: it describes every file of `keyport.v1`.)

use std::convert::Infallible;

use http::{Request, Response};
use tonic::{body::Body, codegen::Service, server::NamedService, service::Routes};

/// Services to serve, and their names for health reporting.
pub(crate) struct Registry {
    routes: Routes,
    names: Vec<&'static str>,
}

impl Registry {
    /// No services yet.
    pub(crate) fn new() -> Self {
        Self { routes: Routes::default(), names: Vec::new() }
    }

    /// Adds a generated service server (e.g. `UserServiceServer`).
    pub(crate) fn with<S>(mut self, service: S) -> Self
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        self.names.push(S::NAME);
        self.routes = self.routes.add_service(service);
        self
    }

    /// The full names of the services, e.g. `keyport.v1.UserService`.
    pub(crate) fn names(&self) -> &[&'static str] {
        &self.names
    }

    /// The routes, with other services (health, reflection) to serve along.
    pub(crate) fn into_routes(self) -> Routes {
        self.routes
    }
}
