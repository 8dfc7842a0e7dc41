//! gRPC health that follows the database: NOT_SERVING while it cannot be
//! reached, SERVING again once it answers.

use std::time::Duration;

use keyport_core::Accounts;
use keyport_proto::v1::{
    o_auth_service_server::OAuthServiceServer, session_service_server::SessionServiceServer,
    user_service_server::UserServiceServer,
};
use tonic::server::NamedService;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::{
    events::CacheHealth,
    service::{OAuthApi, SessionApi, UserApi},
};

/// Services whose health is reported, besides the whole server (`""`).
fn service_names() -> [&'static str; 4] {
    [
        "",
        <UserServiceServer<UserApi> as NamedService>::NAME,
        <SessionServiceServer<SessionApi> as NamedService>::NAME,
        <OAuthServiceServer<OAuthApi> as NamedService>::NAME,
    ]
}

/// Sets every reported service to `status`.
pub(crate) async fn report(reporter: &HealthReporter, status: ServingStatus) {
    for name in service_names() {
        reporter.set_service_status(name, status).await;
    }
}

/// Pings the database every `interval` and keeps the health status in step,
/// logging only transitions. Runs until aborted.
pub(crate) async fn monitor(identity: Accounts, cache: CacheHealth, reporter: HealthReporter, interval: Duration) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut serving = true;
    loop {
        ticker.tick().await;
        let healthy = match tokio::time::timeout(interval.max(Duration::from_millis(500)), identity.ping()).await {
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
            report(&reporter, status).await;
            serving = healthy;
        }
    }
}
