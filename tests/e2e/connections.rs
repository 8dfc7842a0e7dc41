//! Connections: half-open sockets are closed, the connection cap holds and
//! frees up, quiet but healthy streams survive through keepalive, and peers
//! of an IPv6 listener are recognised by their IPv4 address.

use std::{net::SocketAddr, time::Duration};

use keyport_proto::v1::{
    ListSessionsRequest, SignOutRequest, SignUpRequest, WatchSessionEventsRequest, watch_session_events_response::Event,
};
use keyport_server::Config;
use keyport_tests::{Backend, TestServer, grpc::authed, server::PASSWORD};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tonic::{Request, transport::Endpoint};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::{TestResult, on_both_backends};

on_both_backends!(forwarded_addresses_are_trusted_from_ipv4_peers_of_an_ipv6_listener);

/// What a client sends first on an HTTP/2 connection without prior knowledge.
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// Longest any test here waits for the server to do what it should.
const PATIENCE: Duration = Duration::from_secs(30);

/// A short idle timeout, with pings well within it.
fn short_idle_timeout(config: &mut Config) {
    config.server.handshake_timeout_ms = 1_000;
    config.server.idle_timeout_ms = 1_000;
    config.server.http2_keepalive_interval_ms = 200;
    config.server.http2_keepalive_timeout_ms = 5_000;
}

/// Opens a socket that sends the HTTP/2 preface and then nothing.
async fn half_open(addr: SocketAddr) -> std::io::Result<TcpStream> {
    let mut socket = TcpStream::connect(addr).await?;
    socket.write_all(PREFACE).await?;
    Ok(socket)
}

/// Reads until the server closes the socket (EOF or a reset).
async fn until_closed(mut socket: TcpStream) {
    let mut buf = [0; 1024];
    while let Ok(1..) = socket.read(&mut buf).await {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_open_connections_are_closed_and_the_cap_frees_up() -> TestResult {
    const SOCKETS: usize = 100;
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        short_idle_timeout(config);
        config.server.max_connections = 40;
    })
    .await?;
    let mut sockets = Vec::new();
    for _ in 0..SOCKETS {
        sockets.push(half_open(server.addr).await?);
    }
    // Past the cap: the server's own client, connected before, still answers...
    server.health().check(HealthCheckRequest::default()).await?;
    // ...and every half-open socket is closed, those that waited in the
    // backlog included.
    let closed = tokio::time::timeout(PATIENCE, futures::future::join_all(sockets.into_iter().map(until_closed))).await;
    assert_eq!(closed.map(|all| all.len()).ok(), Some(SOCKETS), "the server left sockets open");
    // A new client gets in and is answered.
    let channel = Endpoint::from_shared(format!("http://{}", server.addr))?.timeout(PATIENCE).connect().await?;
    HealthClient::new(channel).check(HealthCheckRequest::default()).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_client_is_served_while_half_open_sockets_fill_the_cap() -> TestResult {
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        short_idle_timeout(config);
        config.server.max_connections = 10;
    })
    .await?;
    let mut sockets = Vec::new();
    for _ in 0..20 {
        sockets.push(half_open(server.addr).await?);
    }
    // It waits in the backlog until the idle timeout frees a slot.
    let channel = Endpoint::from_shared(format!("http://{}", server.addr))?
        .connect_timeout(PATIENCE)
        .timeout(PATIENCE)
        .connect()
        .await?;
    HealthClient::new(channel).check(HealthCheckRequest::default()).await?;
    drop(sockets);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_watch_streams_outlive_the_idle_timeout_through_keepalive() -> TestResult {
    let server = TestServer::start_with(Backend::Sqlite, short_idle_timeout).await?;
    let token = server.sign_up("ann@example.com").await?;
    let mut events = server.sessions().watch_session_events(WatchSessionEventsRequest {}).await?.into_inner();
    let first = events.message().await?.and_then(|m| m.event);
    assert!(matches!(first, Some(Event::Ready(_))), "{first:?}");

    // A socket opened after the stream went quiet is closed as idle: the
    // stream's connection has now said nothing but ping answers for longer.
    tokio::time::timeout(PATIENCE, until_closed(half_open(server.addr).await?)).await?;

    server.sessions().sign_out(authed(SignOutRequest {}, &token)).await?;
    let revoked = tokio::time::timeout(PATIENCE, async {
        loop {
            match events.message().await?.and_then(|m| m.event) {
                Some(Event::SessionRevoked(_)) => return Ok::<_, tonic::Status>(()),
                Some(_) => continue,
                None => return Err(tonic::Status::aborted("stream ended")),
            }
        }
    })
    .await?;
    assert!(revoked.is_ok(), "the stream is alive: {revoked:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_connections_without_keepalive_are_closed() -> TestResult {
    // The counterpart of the test above: the idle timeout does apply to the
    // stream's connection, and only pings keep it open.
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        short_idle_timeout(config);
        config.server.http2_keepalive_interval_ms = 0;
    })
    .await?;
    let mut events = server.sessions().watch_session_events(WatchSessionEventsRequest {}).await?.into_inner();
    events.message().await?;
    let ended = tokio::time::timeout(PATIENCE, events.message()).await?;
    assert!(!matches!(ended, Ok(Some(_))), "the stream ended: {ended:?}");
    Ok(())
}

async fn forwarded_addresses_are_trusted_from_ipv4_peers_of_an_ipv6_listener(backend: Backend) -> TestResult {
    let bind = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0));
    let server = TestServer::start_bound(backend, bind, |config| {
        config.server.trusted_proxies = vec![[127, 0, 0, 1].into()];
    })
    .await?;
    assert!(server.addr.is_ipv4(), "the client connects over IPv4");

    let mut sign_up =
        Request::new(SignUpRequest { email: "ann@example.com".into(), password: PASSWORD.into(), name: String::new() });
    sign_up.metadata_mut().insert("x-keyport-client-ip", "203.0.113.7".parse()?);
    let token = server.users().sign_up(sign_up).await?.into_inner().session.ok_or("no session")?.token;
    let listed = server.sessions().list_sessions(authed(ListSessionsRequest {}, &token)).await?.into_inner();
    let addresses: Vec<_> = listed.sessions.iter().map(|session| session.ip_address.as_str()).collect();
    assert_eq!(addresses, ["203.0.113.7"], "the forwarded address was believed");

    let mut events = server.sessions().watch_session_events(WatchSessionEventsRequest {}).await?.into_inner();
    let first = events.message().await?.and_then(|m| m.event);
    assert!(matches!(first, Some(Event::Ready(_))), "{first:?}");
    Ok(())
}
