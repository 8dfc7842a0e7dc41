//! The transport around the services: message limits, health, reflection,
//! graceful shutdown, and a database that goes away and comes back.

use std::time::{Duration, Instant};

use keyport_proto::v1::{GetSessionRequest, SignUpRequest};
use keyport_tests::{Backend, TestServer, grpc::reason, pg::PgCluster, server::PASSWORD};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
use tonic_reflection::pb::v1::{
    ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
    server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
};

use crate::{TestResult, on_both_backends};

on_both_backends!(refuses_oversized_messages, reports_health_and_reflects_its_api, drains_in_flight_calls_on_shutdown);

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

    let mut reflection = ServerReflectionClient::new(server.channel());
    let list = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection.server_reflection_info(tokio_stream::once(list)).await?.into_inner();
    let answer = answers.message().await?.ok_or("no reflection answer")?;
    let Some(MessageResponse::ListServicesResponse(services)) = answer.message_response else {
        return Err("unexpected reflection answer".into());
    };
    let names: Vec<String> = services.service.into_iter().map(|s| s.name).collect();
    for expected in ["keyport.v1.UserService", "keyport.v1.SessionService", "grpc.health.v1.Health"] {
        assert!(names.iter().any(|name| name == expected), "{expected} missing from {names:?}");
    }
    Ok(())
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
    tokio::time::sleep(Duration::from_millis(200)).await;
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
