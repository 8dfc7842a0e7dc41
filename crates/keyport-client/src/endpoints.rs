//! [`Endpoints`]: one lazily connected channel per Keyport endpoint, a health
//! mark on each, and the rules for which endpoint a call goes to.
//!
//! Why not tonic's `Channel::balance_list`: with one of two endpoints killed
//! it kept sending about half the calls there (19 of 40 failed with "tcp
//! connect error"), and with one frozen, about half waited their full
//! deadline (21 of 40), call after call. Its lazy connections report ready
//! even when they cannot connect, so the balancer never evicts them. Here a
//! failed endpoint is avoided at once and probed in the background until it
//! answers its health check again.

use std::{
    sync::{
        Arc, Weak,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::sync::watch;
use tonic::{Status, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

/// Whether an endpoint answers, as far as this client knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Health {
    /// It answered last time (or was not tried yet).
    Up,
    /// A call or probe got no answer from it. `refused`: the connection was
    /// refused, so trying again costs a round trip rather than a deadline.
    Down {
        /// The last failure was a refused connection.
        refused: bool,
    },
}

/// What a failed attempt says about the endpoint it went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Failure {
    /// No connection could be made (refused, connect timeout, TLS handshake):
    /// the request never left, so any call may go to another endpoint.
    NotSent {
        /// The connection was refused.
        refused: bool,
    },
    /// The request may have reached the server but no answer came: the
    /// connection broke, or the deadline passed.
    NoAnswer,
    /// The server answered with an error status.
    Answered,
}

impl Failure {
    /// Reads a failed call's status: the transport attaches its error as the
    /// status's source, while a status the server sent has none.
    pub(crate) fn of(status: &Status) -> Self {
        let mut source = std::error::Error::source(status);
        if source.is_none() {
            return Self::Answered;
        }
        let mut not_sent = false;
        while let Some(error) = source {
            if error.downcast_ref::<tonic::ConnectError>().is_some() {
                not_sent = true;
            }
            if not_sent
                && error
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == std::io::ErrorKind::ConnectionRefused)
            {
                return Self::NotSent { refused: true };
            }
            source = error.source();
        }
        if not_sent { Self::NotSent { refused: false } } else { Self::NoAnswer }
    }

    /// The mark an endpoint gets after this failure, if any.
    fn health(self) -> Option<Health> {
        match self {
            Self::NotSent { refused } => Some(Health::Down { refused }),
            Self::NoAnswer => Some(Health::Down { refused: false }),
            Self::Answered => None,
        }
    }
}

/// How a down endpoint is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Probing {
    /// Wait before the first probe; doubled after each failed one.
    pub(crate) first_delay: Duration,
    /// Longest wait between probes.
    pub(crate) max_delay: Duration,
    /// Deadline of one probe (a `grpc.health.v1` check).
    pub(crate) timeout: Duration,
}

/// The endpoints of one client. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    endpoints: Vec<Endpoint>,
    /// Round-robin position of the next call.
    next: AtomicUsize,
    probing: Probing,
}

#[derive(Debug)]
struct Endpoint {
    uri: String,
    channel: Channel,
    health: watch::Sender<Health>,
}

/// One endpoint of an [`Endpoints`], by position.
pub(crate) type EndpointId = usize;

impl Endpoints {
    /// Endpoints from (URI, channel) pairs; `None` if there are none.
    pub(crate) fn new(channels: Vec<(String, Channel)>, probing: Probing) -> Option<Self> {
        let endpoints: Vec<Endpoint> = channels
            .into_iter()
            .map(|(uri, channel)| Endpoint { uri, channel, health: watch::Sender::new(Health::Up) })
            .collect();
        if endpoints.is_empty() {
            return None;
        }
        Some(Self { shared: Arc::new(Shared { endpoints, next: AtomicUsize::new(0), probing }) })
    }

    /// The endpoint a call tries next, skipping those it `tried` already.
    pub(crate) fn pick(&self, tried: &[EndpointId]) -> Option<EndpointId> {
        let health: Vec<Health> = self.shared.endpoints.iter().map(|e| *e.health.borrow()).collect();
        let start = self.shared.next.fetch_add(1, Ordering::Relaxed);
        choose(start, &health, tried)
    }

    /// The channel of `id`.
    pub(crate) fn channel(&self, id: EndpointId) -> Channel {
        let endpoints = &self.shared.endpoints;
        // Never empty (see `new`), and ids come from `pick`.
        endpoints[id % endpoints.len()].channel.clone()
    }

    /// The channel of an endpoint that is up, if any, else of the first.
    pub(crate) fn any_channel(&self) -> Channel {
        self.channel(self.pick(&[]).unwrap_or(0))
    }

    /// Records that `id` answered.
    pub(crate) fn succeeded(&self, id: EndpointId) {
        if let Some(endpoint) = self.endpoint(id) {
            endpoint.health.send_if_modified(|health| std::mem::replace(health, Health::Up) != Health::Up);
        }
    }

    /// Records a failed attempt on `id`; a newly down endpoint gets a probe.
    pub(crate) fn failed(&self, id: EndpointId, failure: Failure) {
        let Some(mark) = failure.health() else { return };
        let Some(endpoint) = self.endpoint(id) else { return };
        let mut went_down = false;
        endpoint.health.send_if_modified(|health| {
            went_down = *health == Health::Up;
            std::mem::replace(health, mark) != mark
        });
        if went_down {
            tracing::warn!(endpoint = %endpoint.uri, ?failure, "keyport endpoint down; avoiding it until it answers a probe");
            self.probe(id);
        }
    }

    /// Asks `id` for its health; marks it down if it does not answer.
    pub(crate) async fn check_answers(&self, id: EndpointId) {
        let timeout = self.shared.probing.timeout;
        if let Err(failure) = check(&self.channel(id), timeout).await {
            self.failed(id, failure);
        }
    }

    /// Follows the health mark of `id`.
    pub(crate) fn watch(&self, id: EndpointId) -> watch::Receiver<Health> {
        self.endpoint(id).map_or_else(|| watch::Sender::new(Health::Up).subscribe(), |e| e.health.subscribe())
    }

    /// The status of a call that found no endpoint to go to.
    pub(crate) fn none_available(&self) -> Status {
        let uris: Vec<&str> = self.shared.endpoints.iter().map(|e| e.uri.as_str()).collect();
        Status::unavailable(format!("no Keyport endpoint answers ({}); probing them", uris.join(", ")))
    }

    fn endpoint(&self, id: EndpointId) -> Option<&Endpoint> {
        self.shared.endpoints.get(id)
    }

    /// Checks `id`'s health in the background, backing off, until it is up
    /// again or the client is dropped.
    fn probe(&self, id: EndpointId) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            // No runtime to probe from: let calls try it again instead.
            self.succeeded(id);
            return;
        };
        let shared = Arc::downgrade(&self.shared);
        let probing = self.shared.probing;
        runtime.spawn(probe(shared, id, probing));
    }
}

async fn probe(shared: Weak<Shared>, id: EndpointId, probing: Probing) {
    let mut delay = probing.first_delay;
    loop {
        tokio::time::sleep(delay).await;
        let Some(shared) = shared.upgrade() else { return };
        let Some(endpoint) = shared.endpoints.get(id) else { return };
        if *endpoint.health.borrow() == Health::Up {
            return;
        }
        match check(&endpoint.channel, probing.timeout).await {
            Ok(true) => {
                tracing::info!(endpoint = %endpoint.uri, "keyport endpoint answers again");
                endpoint.health.send_replace(Health::Up);
                return;
            }
            Err(failure) => {
                if let Some(mark) = failure.health() {
                    endpoint.health.send_replace(mark);
                }
            }
            // Not serving: its database is unreachable, or it is stopping.
            Ok(false) => {}
        }
        delay = (delay * 2).min(probing.max_delay);
    }
}

/// Asks `channel` for the whole server's health: whether it is SERVING, or
/// how the check failed.
async fn check(channel: &Channel, timeout: Duration) -> Result<bool, Failure> {
    let mut request = tonic::Request::new(HealthCheckRequest { service: String::new() });
    request.set_timeout(timeout);
    let mut health = HealthClient::new(channel.clone());
    match tokio::time::timeout(timeout, health.check(request)).await {
        Ok(Ok(response)) => Ok(response.get_ref().status == ServingStatus::Serving as i32),
        Ok(Err(status)) => match Failure::of(&status) {
            Failure::Answered => Ok(false),
            failure => Err(failure),
        },
        Err(_) => Err(Failure::NoAnswer),
    }
}

/// Which endpoint a call tries next: the first, in round-robin order from
/// `start`, that is up and not yet `tried` by this call; failing that, one
/// whose connection was refused (trying again costs a round trip, and it may
/// be back); else none, so that a call fails at once rather than wait out a
/// deadline on an endpoint known not to answer.
fn choose(start: usize, health: &[Health], tried: &[EndpointId]) -> Option<EndpointId> {
    let count = health.len();
    let untried = || (0..count).map(move |k| (start + k) % count).filter(|id| !tried.contains(id));
    untried()
        .find(|&id| health[id] == Health::Up)
        .or_else(|| untried().find(|&id| health[id] == Health::Down { refused: true }))
}

#[cfg(test)]
mod tests {
    use std::io;

    use tonic::Code;

    use super::*;

    const UP: Health = Health::Up;
    const REFUSED: Health = Health::Down { refused: true };
    const SILENT: Health = Health::Down { refused: false };

    #[test]
    fn calls_take_turns_over_endpoints_that_are_up() {
        let health = [UP, UP, UP];
        let picks: Vec<_> = (0..6).map(|start| choose(start, &health, &[])).collect();
        assert_eq!(picks, [Some(0), Some(1), Some(2), Some(0), Some(1), Some(2)]);
    }

    #[test]
    fn a_down_endpoint_is_skipped_while_another_is_up() {
        for down in [REFUSED, SILENT] {
            let health = [UP, down];
            for start in 0..4 {
                assert_eq!(choose(start, &health, &[]), Some(0), "{down:?}");
            }
        }
    }

    #[test]
    fn a_retry_goes_to_an_endpoint_the_call_has_not_tried() {
        assert_eq!(choose(0, &[UP, UP], &[0]), Some(1));
        assert_eq!(choose(1, &[UP, UP], &[1]), Some(0));
        assert_eq!(choose(0, &[UP, UP], &[0, 1]), None);
        assert_eq!(choose(0, &[UP, UP, UP], &[0, 1]), Some(2));
    }

    #[test]
    fn with_nothing_up_only_refused_endpoints_are_tried_again() {
        assert_eq!(choose(0, &[SILENT, REFUSED], &[]), Some(1));
        assert_eq!(choose(0, &[REFUSED, REFUSED], &[0]), Some(1));
        assert_eq!(choose(0, &[SILENT, SILENT], &[]), None, "a silent endpoint would cost a deadline");
        assert_eq!(choose(0, &[SILENT, REFUSED], &[1]), None);
        assert_eq!(choose(0, &[], &[]), None);
    }

    fn transport_status(error: impl std::error::Error + Send + Sync + 'static) -> Status {
        Status::from_error(Box::new(error))
    }

    #[test]
    fn a_refused_connection_means_the_request_never_left() {
        let refused = tonic::ConnectError(Box::new(io::Error::from(io::ErrorKind::ConnectionRefused)));
        let status = transport_status(refused);
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(Failure::of(&status), Failure::NotSent { refused: true });

        let timed_out = tonic::ConnectError(Box::new(io::Error::from(io::ErrorKind::TimedOut)));
        assert_eq!(Failure::of(&transport_status(timed_out)), Failure::NotSent { refused: false });
    }

    #[test]
    fn a_deadline_or_a_broken_connection_is_no_answer() {
        assert_eq!(Failure::of(&transport_status(tonic::TimeoutExpired(()))), Failure::NoAnswer);
        // A reset after the request went out: it may have been processed.
        assert_eq!(Failure::of(&transport_status(io::Error::from(io::ErrorKind::ConnectionReset))), Failure::NoAnswer);
    }

    #[test]
    fn a_status_from_the_server_is_an_answer() {
        assert_eq!(Failure::of(&Status::unavailable("database unreachable")), Failure::Answered);
        assert_eq!(Failure::of(&Status::unauthenticated("no")), Failure::Answered);
    }

    fn endpoints(count: usize) -> Endpoints {
        let channels = (0..count)
            .map(|i| {
                let uri = format!("http://127.0.0.1:{}", 1 + i);
                let channel = tonic::transport::Endpoint::from_shared(uri.clone()).map(|e| e.connect_lazy());
                (uri, channel.unwrap())
            })
            .collect();
        let probing = Probing {
            first_delay: Duration::from_secs(3600),
            max_delay: Duration::from_secs(3600),
            timeout: Duration::from_secs(1),
        };
        Endpoints::new(channels, probing).unwrap()
    }

    #[tokio::test]
    async fn marks_follow_failures_and_answers() {
        let endpoints = endpoints(2);
        let mut watch = endpoints.watch(1);
        endpoints.failed(1, Failure::Answered);
        assert_eq!(*watch.borrow_and_update(), UP, "an error answer says the endpoint is up");
        endpoints.failed(1, Failure::NoAnswer);
        assert_eq!(*watch.borrow_and_update(), SILENT);
        assert_eq!((0..4).map(|_| endpoints.pick(&[])).collect::<Vec<_>>(), [Some(0); 4]);
        endpoints.failed(1, Failure::NotSent { refused: true });
        assert_eq!(*watch.borrow_and_update(), REFUSED);
        endpoints.succeeded(1);
        assert_eq!(*watch.borrow_and_update(), UP);
    }
}
