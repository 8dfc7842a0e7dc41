//! The transport around the services: message limits, malformed messages,
//! gRPC-web, health, reflection, graceful shutdown, and a database that goes
//! away and comes back.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use keyport_proto::v1::{GetSessionRequest, SignUpRequest};
use keyport_tests::{
    Backend, TestServer,
    grpc::{call_raw, reason},
    pg::PgCluster,
    server::PASSWORD,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
use tonic_reflection::pb::{v1, v1alpha};

use crate::{TestResult, on_both_backends};

on_both_backends!(
    refuses_oversized_messages,
    refuses_malformed_messages_with_a_reason,
    answers_oversized_grpc_web_requests_after_reading_them,
    reports_health_and_reflects_its_api,
    drains_in_flight_calls_on_shutdown
);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const SIGN_UP: &str = "/keyport.v1.UserService/SignUp";

async fn refuses_oversized_messages(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let huge =
        SignUpRequest { email: "ann@example.com".into(), password: PASSWORD.into(), name: "n".repeat(100 * 1024) };
    let status = server.users().sign_up(huge).await.unwrap_err();
    assert!(matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted), "{status:?}");
    assert_eq!(server.count("users").await?, 0);
    // The connection stays usable.
    server.sign_up("ann@example.com").await?;
    Ok(())
}

async fn reports_health_and_reflects_its_api(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    for service in ["", "keyport.v1.UserService", "keyport.v1.SessionService"] {
        let check = server.health().check(HealthCheckRequest { service: service.into() }).await?.into_inner();
        assert_eq!(check.status(), ServingStatus::Serving, "{service:?}");
    }
    let status = server.health().check(HealthCheckRequest { service: "nope.Service".into() }).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // Every service of the API (reflection lists each one in the proto
    // files) is registered: health, like routing, reads the registry.
    let api: Vec<String> =
        reflected_v1(&server).await?.into_iter().filter(|name| name.starts_with("keyport.v1.")).collect();
    assert!(api.len() >= 3, "{api:?}");
    for service in &api {
        let check = server.health().check(HealthCheckRequest { service: service.clone() }).await?.into_inner();
        assert_eq!(check.status(), ServingStatus::Serving, "{service} is in the proto but not registered");
    }
    for (version, names) in [("v1", reflected_v1(&server).await?), ("v1alpha", reflected_v1alpha(&server).await?)] {
        for expected in ["keyport.v1.UserService", "keyport.v1.SessionService", "grpc.health.v1.Health"] {
            assert!(names.iter().any(|name| name == expected), "{version}: {expected} missing from {names:?}");
        }
    }
    Ok(())
}

/// Services listed by `grpc.reflection.v1`.
async fn reflected_v1(server: &TestServer) -> Result<Vec<String>, BoxError> {
    use v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let list = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut reflection = ServerReflectionClient::new(server.channel());
    let mut answers = reflection.server_reflection_info(tokio_stream::once(list)).await?.into_inner();
    let answer = answers.message().await?.ok_or("no reflection answer")?;
    let Some(MessageResponse::ListServicesResponse(services)) = answer.message_response else {
        return Err("unexpected reflection answer".into());
    };
    Ok(services.service.into_iter().map(|s| s.name).collect())
}

/// Services listed by `grpc.reflection.v1alpha`, which many tools still speak.
async fn reflected_v1alpha(server: &TestServer) -> Result<Vec<String>, BoxError> {
    use v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let list = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut reflection = ServerReflectionClient::new(server.channel());
    let mut answers = reflection.server_reflection_info(tokio_stream::once(list)).await?.into_inner();
    let answer = answers.message().await?.ok_or("no reflection answer")?;
    let Some(MessageResponse::ListServicesResponse(services)) = answer.message_response else {
        return Err("unexpected reflection answer".into());
    };
    Ok(services.service.into_iter().map(|s| s.name).collect())
}

/// `SignUpRequest`s that are not valid protobuf, each in its own way.
fn malformed_sign_ups() -> Vec<(&'static str, Vec<u8>)> {
    // Field 1 (email) is a string: tag 0x0a, a length, the bytes.
    let valid_rest = [&[0x12, 0x08][..], &PASSWORD.as_bytes()[..8]].concat();
    vec![
        ("invalid UTF-8 in a string", [&[0x0a, 0x02, 0xff, 0xfe][..], &valid_rest].concat()),
        ("wrong wire type", vec![0x08, 0x01]),
        ("huge length prefix", vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, b'a', b'b']),
        // Unknown field 15 as ever deeper groups, past prost's recursion limit.
        ("deep nesting", vec![(15 << 3) | 3; 200]),
        ("truncated varint", vec![0x0a, 0x80]),
    ]
}

async fn refuses_malformed_messages_with_a_reason(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    for (case, message) in malformed_sign_ups() {
        let status = call_raw(server.channel(), SIGN_UP, message).await.unwrap_err();
        assert_eq!(
            (status.code(), reason(&status).as_str()),
            (Code::InvalidArgument, "MALFORMED_REQUEST"),
            "{case}: {status:?}"
        );
        assert!(!status.message().contains("Protobuf"), "{case}: the decoder's text stays private: {status:?}");
    }
    // gRPC-web gets the same answer.
    let (_, message) = &malformed_sign_ups()[0];
    let answer = grpc_web_sign_up(server.addr, &grpc_frame(message), Body::Sized, Pace::AtOnce).await?;
    assert_eq!(answer.header("grpc-status"), Some("3"), "{answer:?}");
    assert!(answer.header("grpc-status-details-bin").is_some(), "with ErrorInfo: {answer:?}");
    assert_eq!(server.count("users").await?, 0, "nothing was written");
    // The connection is still usable.
    server.sign_up("ann@example.com").await?;
    Ok(())
}

async fn answers_oversized_grpc_web_requests_after_reading_them(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    // Announces 4 MiB (the limit is 64 KiB) and sends them, in slow chunks,
    // as a Node client does: it is still writing when the server refuses.
    let announced = 4 * 1024 * 1024;
    let mut body = Vec::with_capacity(5 + announced);
    body.push(0);
    body.extend_from_slice(&u32::try_from(announced)?.to_be_bytes());
    body.resize(5 + announced, b'x');
    for (framing, pace) in [(Body::Sized, Pace::Slow), (Body::Chunked, Pace::Slow), (Body::Sized, Pace::AtOnce)] {
        let answer = grpc_web_sign_up(server.addr, &body, framing, pace).await?;
        assert_eq!(answer.status_line, "HTTP/1.1 200 OK", "{framing:?} {pace:?}: {answer:?}");
        assert_eq!(answer.header("grpc-status"), Some("11"), "{framing:?} {pace:?}: OUT_OF_RANGE: {answer:?}");
    }
    assert_eq!(server.count("users").await?, 0);
    Ok(())
}

/// A gRPC length-prefixed frame around `message`.
fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut frame = vec![0];
    frame.extend_from_slice(&u32::try_from(message.len()).unwrap_or(u32::MAX).to_be_bytes());
    frame.extend_from_slice(message);
    frame
}

/// How a request body is framed on HTTP/1.1.
#[derive(Debug, Clone, Copy)]
enum Body {
    /// With `Content-Length`.
    Sized,
    /// `Transfer-Encoding: chunked`, no length.
    Chunked,
}

/// How fast a request body is written.
#[derive(Debug, Clone, Copy)]
enum Pace {
    AtOnce,
    /// 64 KiB at a time with a pause in between, so that the server answers
    /// (or hangs up) while the client is still writing.
    Slow,
}

/// The head of an HTTP/1.1 response.
#[derive(Debug)]
struct Answer {
    status_line: String,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

/// POSTs `body` as a gRPC-web `SignUp` over raw HTTP/1.1 and reads the
/// response head. A failed write means the server stopped reading.
async fn grpc_web_sign_up(addr: SocketAddr, body: &[u8], framing: Body, pace: Pace) -> Result<Answer, BoxError> {
    let mut socket = TcpStream::connect(addr).await?;
    let length = match framing {
        Body::Sized => format!("content-length: {}", body.len()),
        Body::Chunked => "transfer-encoding: chunked".to_owned(),
    };
    let head = format!(
        "POST {SIGN_UP} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/grpc-web+proto\r\nx-grpc-web: 1\r\n{length}\r\n\r\n"
    );
    socket.write_all(head.as_bytes()).await?;
    let chunk_size = match pace {
        Pace::AtOnce => body.len().max(1),
        Pace::Slow => 64 * 1024,
    };
    for chunk in body.chunks(chunk_size) {
        let written = match framing {
            Body::Sized => socket.write_all(chunk).await,
            Body::Chunked => {
                socket.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await?;
                socket.write_all(chunk).await?;
                socket.write_all(b"\r\n").await
            }
        };
        written.map_err(|error| format!("writing the body failed ({error}): the server stopped reading"))?;
        if let Pace::Slow = pace {
            // Pacing only; nothing is measured.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    if let Body::Chunked = framing {
        socket.write_all(b"0\r\n\r\n").await?;
    }
    let mut received = Vec::new();
    let mut buf = [0; 4096];
    let end = loop {
        if let Some(end) = received.windows(4).position(|window| window == b"\r\n\r\n") {
            break end;
        }
        let read = tokio::time::timeout(Duration::from_secs(30), socket.read(&mut buf)).await??;
        if read == 0 {
            return Err("the server closed the connection without answering".into());
        }
        received.extend_from_slice(&buf[..read]);
    };
    let head = String::from_utf8_lossy(&received[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(key, value)| (key.trim().to_owned(), value.trim().to_owned()))
        .collect();
    Ok(Answer { status_line, headers })
}

async fn drains_in_flight_calls_on_shutdown(backend: Backend) -> TestResult {
    // A deliberately slow hash keeps the sign-up in flight while we stop.
    let server = TestServer::start_with(backend, |config| {
        config.hashing.memory_kib = 128 * 1024;
        config.hashing.iterations = 4;
    })
    .await?;
    let mut users = server.users();
    let call = tokio::spawn(async move {
        users
            .sign_up(SignUpRequest { email: "ann@example.com".into(), password: PASSWORD.into(), name: String::new() })
            .await
    });
    // Stop only once the sign-up is inside the server, hashing.
    let hashing = async {
        while server.accounts.hashes_running() == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), hashing).await?;
    let db = server.db.clone();
    server.stop().await?;
    let response = call.await?;
    assert!(response.is_ok(), "the in-flight call completed: {response:?}");
    let backend = sea_orm::ConnectionTrait::get_database_backend(&db);
    let row = sea_orm::ConnectionTrait::query_one_raw(
        &db,
        sea_orm::Statement::from_string(backend, "SELECT COUNT(*) FROM users"),
    )
    .await?
    .ok_or("no row")?;
    assert_eq!(row.try_get_by_index::<i64>(0)?, 1);
    Ok(())
}

async fn wait_for_health(server: &TestServer, wanted: ServingStatus) -> TestResult {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let status = server.health().check(HealthCheckRequest { service: String::new() }).await?.into_inner().status();
        if status == wanted {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("health stayed {status:?}, wanted {wanted:?}").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// PostgreSQL only: an embedded SQLite file cannot become unreachable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_flips_health_and_recovers() -> TestResult {
    let cluster = tokio::task::spawn_blocking(PgCluster::start).await??;
    let server = TestServer::start_on_cluster(&cluster, |config| config.database.acquire_timeout_ms = 500).await?;
    let token = server.sign_up("ann@example.com").await?;
    wait_for_health(&server, ServingStatus::Serving).await?;

    let cluster = std::sync::Arc::new(cluster);
    let stopping = cluster.clone();
    tokio::task::spawn_blocking(move || stopping.stop()).await??;
    wait_for_health(&server, ServingStatus::NotServing).await?;
    // The process is alive all the same: a liveness probe must not restart it.
    let alive = HealthCheckRequest { service: keyport_server::LIVENESS.into() };
    assert_eq!(server.health().check(alive).await?.into_inner().status(), ServingStatus::Serving);

    let status = server.sessions().get_session(GetSessionRequest { token: token.clone() }).await.unwrap_err();
    assert_eq!((status.code(), reason(&status).as_str()), (Code::Unavailable, "UNAVAILABLE"));
    let bob = SignUpRequest { email: "bob@example.com".into(), password: PASSWORD.into(), name: String::new() };
    let status = server.users().sign_up(bob.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);

    let starting = cluster.clone();
    tokio::task::spawn_blocking(move || starting.start_again()).await??;
    wait_for_health(&server, ServingStatus::Serving).await?;

    server.sessions().get_session(GetSessionRequest { token }).await?;
    assert_eq!(server.scalar("SELECT COUNT(*) FROM users WHERE email = 'bob@example.com'").await?, 0);
    server.users().sign_up(bob).await?;
    Ok(())
}
