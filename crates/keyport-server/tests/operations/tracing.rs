//! `[tracing] otlp_endpoint`: the spans of a real `keyport serve`, received
//! by an OTLP/gRPC collector the test runs (the official
//! `opentelemetry-proto` service), joined to the caller's `traceparent`,
//! carrying codes, reasons and user ids but no secret.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use keyport_proto::v1::{
    GetCurrentUserRequest, SignInRequest, SignUpRequest, session_service_client::SessionServiceClient,
    user_service_client::UserServiceClient,
};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value,
    trace::v1::{Span, span::SpanKind},
};
use tokio::net::TcpListener;

use crate::{TestResult, process::Served};

const EMAIL: &str = "traced-ann@example.com";
const PASSWORD: &str = "a-long-unusual-passphrase-42";
const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_ID: &str = "00f067aa0ba902b7";

/// An OTLP/gRPC trace collector that keeps what it is sent.
#[derive(Clone, Default)]
struct Collector {
    received: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.received.lock().map_err(|_| tonic::Status::internal("poisoned"))?.push(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

impl Collector {
    async fn start() -> Result<(Self, SocketAddr), Box<dyn std::error::Error + Send + Sync>> {
        let collector = Self::default();
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let service = TraceServiceServer::new(collector.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        Ok((collector, address))
    }

    fn spans(&self) -> Vec<Span> {
        let received = self.received.lock().map(|r| r.clone()).unwrap_or_default();
        received
            .into_iter()
            .flat_map(|request| request.resource_spans)
            .flat_map(|resource| resource.scope_spans)
            .flat_map(|scope| scope.spans)
            .collect()
    }

    /// Waits for the spans named `name`, `count` of them.
    async fn wait_for(&self, name: &str, count: usize) -> Result<Vec<Span>, String> {
        for _ in 0..200 {
            let found: Vec<Span> = self.spans().into_iter().filter(|span| span.name == name).collect();
            if found.len() >= count {
                return Ok(found);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("no {name} span; received {:?}", self.spans().iter().map(|s| &s.name).collect::<Vec<_>>()))
    }
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    let value = span.attributes.iter().find(|kv| kv.key == key)?.value.as_ref()?.value.as_ref()?;
    Some(match value {
        Value::StringValue(text) => text.clone(),
        Value::IntValue(number) => number.to_string(),
        Value::BoolValue(flag) => flag.to_string(),
        other => format!("{other:?}"),
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_the_collector_joined_to_the_callers_trace_with_codes_and_no_secrets() -> TestResult {
    let (collector, address) = Collector::start().await?;
    let data = tempfile::tempdir()?;
    let endpoint = format!("http://{address}");
    let env = [("KEYPORT_TRACING__OTLP_ENDPOINT", endpoint.as_str()), ("OTEL_BSP_SCHEDULE_DELAY", "100")];
    let served = Served::start(data.path(), &env).await?;
    let channel = served.channel().await?;

    let mut sign_up =
        tonic::Request::new(SignUpRequest { email: EMAIL.into(), password: PASSWORD.into(), name: "Ann".into() });
    sign_up.metadata_mut().insert("traceparent", format!("00-{TRACE_ID}-{PARENT_ID}-01").parse()?);
    let signed_up = UserServiceClient::new(channel.clone()).sign_up(sign_up).await?.into_inner();
    let token = signed_up.session.ok_or("no session")?.token;
    let user_id = signed_up.user.ok_or("no user")?.id;
    let wrong = SignInRequest { email: EMAIL.into(), password: "not-the-password-at-all".into() };
    assert!(SessionServiceClient::new(channel.clone()).sign_in(wrong).await.is_err());
    let mut me = tonic::Request::new(GetCurrentUserRequest::default());
    me.metadata_mut().insert("authorization", format!("Bearer {token}").parse()?);
    UserServiceClient::new(channel.clone()).get_current_user(me).await?;

    let sign_up = collector.wait_for("keyport.v1.UserService/SignUp", 1).await?.remove(0);
    assert_eq!(hex(&sign_up.trace_id), TRACE_ID, "the caller's trace is continued");
    assert_eq!(hex(&sign_up.parent_span_id), PARENT_ID, "as a child of the caller's span");
    assert_eq!(sign_up.kind, SpanKind::Server as i32);
    assert_eq!(attribute(&sign_up, "rpc.system").as_deref(), Some("grpc"));
    assert_eq!(attribute(&sign_up, "rpc.service").as_deref(), Some("keyport.v1.UserService"));
    assert_eq!(attribute(&sign_up, "rpc.method").as_deref(), Some("SignUp"));
    assert_eq!(attribute(&sign_up, "rpc.grpc.status_code").as_deref(), Some("0"));

    let sign_in = collector.wait_for("keyport.v1.SessionService/SignIn", 1).await?.remove(0);
    assert_ne!(hex(&sign_in.trace_id), TRACE_ID, "a call without traceparent starts its own trace");
    assert!(sign_in.parent_span_id.is_empty());
    assert_eq!(attribute(&sign_in, "rpc.grpc.status_code").as_deref(), Some("16"));
    assert_eq!(attribute(&sign_in, "keyport.reason").as_deref(), Some("INVALID_CREDENTIALS"));

    let me = collector.wait_for("keyport.v1.UserService/GetCurrentUser", 1).await?.remove(0);
    assert_eq!(attribute(&me, "enduser.id"), Some(user_id), "the authenticated user is named by id");

    // keyport-client forwards the trace context it is given, as the web
    // middleware and the gRPC layer do with their request's headers.
    let client = keyport_client::KeyportClient::builder(format!("http://{}", served.grpc)).build()?;
    let other_trace = "0af7651916cd43dd8448eb211c80319c";
    let parent = format!("00-{other_trace}-b7ad6b7169203331-01");
    let info = keyport_client::ClientInfo::default().with_trace_context(Some(&parent), Some("vendor=x"));
    client.get_session(&token, &info).await?;
    let checks = collector.wait_for("keyport.v1.SessionService/GetSession", 1).await?;
    assert!(
        checks.iter().any(|span| hex(&span.trace_id) == other_trace && hex(&span.parent_span_id) == "b7ad6b7169203331"),
        "the client's call joins the trace it was given"
    );

    let received = format!("{:?}", collector.received.lock().map_err(|_| "poisoned")?);
    assert!(received.contains("\"keyport\""), "service.name is keyport");
    for secret in [EMAIL, PASSWORD, token.as_str(), "not-the-password-at-all"] {
        assert!(!received.contains(secret), "{secret} was exported");
    }
    served.kill().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_collector_costs_no_call_and_a_bad_endpoint_stops_the_start() -> TestResult {
    // Nothing listens there: spans are dropped, calls are answered.
    let closed = TcpListener::bind("127.0.0.1:0").await?.local_addr()?;
    let endpoint = format!("http://{closed}");
    let data = tempfile::tempdir()?;
    let served = Served::start(data.path(), &[("KEYPORT_TRACING__OTLP_ENDPOINT", endpoint.as_str())]).await?;
    let channel = served.channel().await?;
    for n in 0..5 {
        let request =
            SignUpRequest { email: format!("n{n}@example.com"), password: PASSWORD.into(), name: String::new() };
        UserServiceClient::new(channel.clone()).sign_up(request).await?;
    }
    served.kill().await?;

    for (key, bad) in [("KEYPORT_TRACING__OTLP_ENDPOINT", "collector:4317"), ("KEYPORT_TRACING__SAMPLE_PERCENT", "101")]
    {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_keyport"))
            .arg("--data-dir")
            .arg(data.path())
            .args(["--listen", "127.0.0.1:0", "serve"])
            .env_remove("KEYPORT_CONFIG")
            .env("KEYPORT_TRACING__OTLP_ENDPOINT", "http://127.0.0.1:4317")
            .env(key, bad)
            .output()?;
        assert!(!output.status.success(), "started with {key}={bad}");
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(said.contains("tracing."), "{said}");
    }
    Ok(())
}
