//! gRPC health that follows the database: NOT_SERVING while it cannot be
//! reached, SERVING again once it answers. One entry does not follow it:
//! [`LIVENESS`], for probes that restart a process, which a database
//! outage is no reason to do.

use std::{sync::Arc, time::Duration};

use keyport_core::Accounts;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::events::CacheHealth;

/// The health entry that answers SERVING for as long as the process
/// serves gRPC at all, whatever the database does: what a liveness probe
/// asks (`service: liveness` in Kubernetes' gRPC probe).
pub const LIVENESS: &str = "liveness";

/// Reports one status for the whole server (`""`) and each API service.
#[derive(Clone)]
pub(crate) struct Health {
    reporter: HealthReporter,
    names: Arc<[&'static str]>,
}

impl Health {
    /// Health for the services named `services` (besides the whole server).
    pub(crate) fn new(reporter: HealthReporter, services: &[&'static str]) -> Self {
        let names = std::iter::once("").chain(services.iter().copied()).collect();
        Self { reporter, names }
    }

    /// Marks the process alive ([`LIVENESS`]) and every service `status`.
    pub(crate) async fn start(&self, status: ServingStatus) {
        self.reporter.set_service_status(LIVENESS, ServingStatus::Serving).await;
        self.report(status).await;
    }

    /// Sets every reported service to `status` ([`LIVENESS`] excepted).
    pub(crate) async fn report(&self, status: ServingStatus) {
        for name in self.names.iter() {
            self.reporter.set_service_status(*name, status).await;
        }
    }
}

/// Pings the database every `interval` and keeps the health status in step,
/// logging only transitions. Runs until aborted.
pub(crate) async fn monitor(accounts: Accounts, cache: CacheHealth, health: Health, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut serving = true;
    loop {
        ticker.tick().await;
        let healthy = match tokio::time::timeout(interval.max(Duration::from_millis(500)), accounts.ping()).await {
            Ok(Ok(())) => true,
            Ok(Err(error)) => {
                if serving {
                    tracing::warn!(%error, "database unreachable; reporting NOT_SERVING");
                }
                false
            }
            Err(_) => {
                if serving {
                    tracing::warn!("database ping timed out; reporting NOT_SERVING");
                }
                false
            }
        };
        if healthy != serving {
            if healthy {
                tracing::info!("database reachable again; reporting SERVING");
            }
            // Events travel through the database: without it, cached
            // sessions could miss a revocation. Start over when it is back.
            cache.set_database_reachable(healthy);
            let status = if healthy { ServingStatus::Serving } else { ServingStatus::NotServing };
            health.report(status).await;
            serving = healthy;
        }
    }
}
