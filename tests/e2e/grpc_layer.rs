//! `keyport_client::grpc::KeyportGrpcLayer` in front of a tonic service (an
//! internal one, here the health service), through a live Keyport: no token,
//! a bad one, one without the permission, a good one (whose principal the
//! handler sees), a revocation reaching the next call, and Keyport down.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use keyport_client::{CacheConfig, KeyportClient, Principal, SessionCache, grpc::KeyportGrpcLayer};
use keyport_proto::v1::RevokeSessionRequest;
use keyport_tests::{Backend, TestServer, grpc::authed};
use tonic::{Code, Request, Status, transport::Channel};

use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::{TestResult, authorization::refused};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `reports:read` for admins only.
fn configure(config: &mut keyport_server::config::Config) {
    config.authorization.permissions = vec!["reports:read".into()];
}

/// The internal service behind the layer; every principal its handler saw.
async fn internal_service(cache: SessionCache) -> Result<(SocketAddr, Arc<Mutex<Vec<String>>>), BoxError> {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&seen);
    // Runs after the layer, as a handler would: the principal is there.
    let handler_view = move |request: http::Request<tonic::body::Body>| {
        if let (Some(principal), Ok(mut seen)) = (request.extensions().get::<Principal>(), recorded.lock()) {
            seen.push(principal.email.clone());
        }
        request
    };
    let (_, health) = tonic_health::server::health_reporter();
    let layers = tower::ServiceBuilder::new()
        .layer(KeyportGrpcLayer::new(cache).requiring(&["reports:read"]))
        .map_request(handler_view);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    tokio::spawn(tonic::transport::Server::builder().layer(layers).add_service(health).serve_with_incoming(incoming));
    Ok((address, seen))
}

async fn check(channel: &Channel, token: Option<&str>) -> Result<(), Status> {
    let request = HealthCheckRequest { service: String::new() };
    let request = match token {
        Some(token) => authed(request, token),
        None => Request::new(request),
    };
    HealthClient::new(channel.clone()).check(request).await.map(drop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_grpc_service_authenticates_its_callers_through_keyport() -> TestResult {
    let keyport = TestServer::start_with(Backend::Sqlite, configure).await?;
    let client = KeyportClient::builder(format!("http://{}", keyport.addr)).build()?;
    let cache = SessionCache::start(client, CacheConfig::default());
    tokio::time::timeout(Duration::from_secs(5), async {
        while !cache.is_live() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await?;
    let (address, seen) = internal_service(cache.clone()).await?;
    let channel = Channel::from_shared(format!("http://{address}"))?.connect().await?;

    refused(check(&channel, None).await, Code::Unauthenticated, "UNAUTHENTICATED", "no token");
    refused(check(&channel, Some("kp_AAAA.BBBB")).await, Code::Unauthenticated, "UNAUTHENTICATED", "a junk token");
    let ann = keyport.sign_up("ann@example.com").await?;
    refused(check(&channel, Some(&ann)).await, Code::PermissionDenied, "PERMISSION_DENIED", "without the permission");
    keyport.sign_up("root@example.com").await?;
    let sql = "UPDATE users SET roles = 'admin user' WHERE email = 'root@example.com'";
    sea_orm::ConnectionTrait::execute_unprepared(&keyport.db, sql).await?;
    let root = keyport.sign_in("root@example.com", keyport_tests::server::PASSWORD).await?;
    check(&channel, Some(&root)).await?;
    let misses = cache.stats().misses;
    check(&channel, Some(&root)).await?;
    assert_eq!(cache.stats().misses, misses, "the second call is a cache hit");
    assert_eq!(*seen.lock().map_err(|_| "poisoned")?, ["root@example.com", "root@example.com"], "the handler saw them");

    // Revoked through Keyport: once the event is in, the next call fails.
    let root_id = keyport_tests::server::session_id(&root);
    let other = keyport.sign_in("root@example.com", keyport_tests::server::PASSWORD).await?;
    keyport.sessions().revoke_session(authed(RevokeSessionRequest { session_id: root_id }, &other)).await?;
    tokio::time::timeout(Duration::from_secs(10), async {
        while cache.lookup(&root).is_some() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await
    .map_err(|_| "the revocation never reached the cache")?;
    refused(check(&channel, Some(&root)).await, Code::Unauthenticated, "UNAUTHENTICATED", "revoked");

    // Keyport down: the service fails closed.
    keyport.stop().await?;
    let down = check(&channel, Some(&other)).await;
    assert!(matches!(&down, Err(status) if status.code() == Code::Unavailable), "{down:?}");
    Ok(())
}
