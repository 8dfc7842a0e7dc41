//! `[metrics] listen`: the scrape endpoint of a real `keyport serve`,
//! after calls that succeed, fail with a reason, hit the cache and name no
//! method; linted by `promtool check metrics`.

use std::{collections::HashMap, io::Write, process::Stdio};

use keyport_proto::v1::{
    GetSessionRequest, SignInRequest, SignUpRequest, session_service_client::SessionServiceClient,
    user_service_client::UserServiceClient,
};
use tonic::Code;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::{
    TestResult,
    process::{Served, http_get},
};

const EMAIL: &str = "metrics-ann@example.com";
const PASSWORD: &str = "a-long-unusual-passphrase-42";

/// One sample of the text format: name, labels, value.
struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
}

fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|pair| !pair.is_empty())
                .filter_map(|pair| {
                    let (key, value) = pair.split_once('=')?;
                    Some((key.to_owned(), value.trim_matches('"').to_owned()))
                })
                .collect();
            Some(Sample { name: name.to_owned(), labels, value: value.parse().ok()? })
        })
        .collect()
}

/// The sum of the samples of `name` that carry every label of `labels`.
fn total(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .iter()
        .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).is_some_and(|have| have == v)))
        .map(|s| s.value)
        .sum()
}

fn promtool() -> std::path::PathBuf {
    std::env::var_os("KEYPORT_PROMTOOL").map_or_else(|| "promtool".into(), Into::into)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_listener_counts_calls_by_method_code_and_reason_and_passes_promtool() -> TestResult {
    let data = tempfile::tempdir()?;
    let served = Served::start(data.path(), &[("KEYPORT_METRICS__LISTEN", "127.0.0.1:0")]).await?;
    let metrics = served.metrics.ok_or("no metrics address logged")?;
    assert_ne!(metrics.port(), served.grpc.port());
    let channel = served.channel().await?;

    let sign_up = || SignUpRequest { email: EMAIL.into(), password: PASSWORD.into(), name: "Ann".into() };
    let token = UserServiceClient::new(channel.clone())
        .sign_up(sign_up())
        .await?
        .into_inner()
        .session
        .ok_or("no session")?
        .token;
    let taken = UserServiceClient::new(channel.clone()).sign_up(sign_up()).await.unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists);
    let wrong = SignInRequest { email: EMAIL.into(), password: "not-the-password-at-all".into() };
    let refused = SessionServiceClient::new(channel.clone()).sign_in(wrong).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    for _ in 0..3 {
        SessionServiceClient::new(channel.clone()).get_session(GetSessionRequest { token: token.clone() }).await?;
    }
    let junk = GetSessionRequest { token: "kp_junk".into() };
    assert!(SessionServiceClient::new(channel.clone()).get_session(junk).await.is_err());
    // A path Keyport does not serve, as a scanner would send.
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await?;
    let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
    let path = http::uri::PathAndQuery::from_static("/keyport.v1.UserService/NoSuchMethod");
    let unknown = grpc.unary(tonic::Request::new(HealthCheckRequest::default()), path, codec).await.unwrap_err();
    assert_eq!(unknown.code(), Code::Unimplemented);

    let (status, text) = http_get(metrics, "/metrics").await?;
    assert_eq!(status, 200, "{text}");
    let all = samples(&text);
    let requests = "keyport_rpc_requests_total";
    let user = [("service", "keyport.v1.UserService")];
    let calls = |method: &str, code: &str| {
        total(&all, requests, &[user[0], ("method", method), ("code", code)])
            + total(&all, requests, &[("service", "keyport.v1.SessionService"), ("method", method), ("code", code)])
    };
    assert_eq!(calls("SignUp", "OK"), 1.0, "{text}");
    assert_eq!(calls("SignUp", "ALREADY_EXISTS"), 1.0);
    assert_eq!(calls("SignIn", "UNAUTHENTICATED"), 1.0);
    assert_eq!(calls("GetSession", "OK"), 3.0);
    assert_eq!(calls("GetSession", "UNAUTHENTICATED"), 1.0);
    let errors = "keyport_rpc_errors_total";
    assert_eq!(total(&all, errors, &[("method", "SignUp"), ("reason", "EMAIL_TAKEN")]), 1.0, "{text}");
    assert_eq!(total(&all, errors, &[("method", "SignIn"), ("reason", "INVALID_CREDENTIALS")]), 1.0);
    assert_eq!(total(&all, errors, &[("method", "GetSession"), ("reason", "UNAUTHENTICATED")]), 1.0);
    // The scanner's path is counted, under no name of its own.
    assert_eq!(total(&all, requests, &[("service", "unknown"), ("method", "unknown"), ("code", "UNIMPLEMENTED")]), 1.0);
    assert!(!text.contains("NoSuchMethod"));
    // Every call timed: the histogram's count matches the counter's.
    let timed = total(&all, "keyport_rpc_duration_seconds_count", &[("method", "GetSession")]);
    assert_eq!(timed, 4.0);
    // The cache served the repeats; the first read (and the sign-up's) missed.
    let lookups = "keyport_session_cache_lookups_total";
    assert!(total(&all, lookups, &[("kind", "session"), ("result", "hit")]) >= 2.0, "{text}");
    assert!(total(&all, lookups, &[("kind", "session"), ("result", "miss")]) >= 1.0);
    assert!(total(&all, "keyport_session_cache_entries", &[]) >= 1.0);
    // Hashing: sign-up and sign-in waited (briefly) for a thread.
    assert!(total(&all, "keyport_hashing_wait_seconds_count", &[]) >= 3.0, "{text}");
    assert!(total(&all, "keyport_db_max_connections", &[]) >= 1.0);
    assert!(all.iter().any(|s| s.name == "keyport_db_connections" && s.labels.contains_key("state")));
    assert_eq!(total(&all, "keyport_build_info", &[("version", env!("CARGO_PKG_VERSION"))]), 1.0);
    assert!(total(&all, "process_resident_memory_bytes", &[]) > 1e6, "{text}");
    assert!(total(&all, "process_open_fds", &[]) >= 3.0);
    // Nothing a caller sent ends up in a label.
    for secret in [EMAIL, &token, PASSWORD, "kp_junk"] {
        assert!(!text.contains(secret), "{secret} appears in the metrics");
    }

    // Prometheus' own linter: names, types, units, HELP texts.
    let mut lint = std::process::Command::new(promtool())
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run promtool ({e}): install Debian's `prometheus` or set KEYPORT_PROMTOOL"))?;
    lint.stdin.take().ok_or("no stdin")?.write_all(text.as_bytes())?;
    let linted = lint.wait_with_output()?;
    let report = String::from_utf8_lossy(&linted.stdout).into_owned() + &String::from_utf8_lossy(&linted.stderr);
    assert!(linted.status.success() && report.trim().is_empty(), "promtool: {report}\n{text}");

    // The gRPC port does not serve them.
    let (status, body) = http_get(served.grpc, "/metrics").await?;
    assert_ne!(status, 200);
    assert!(!body.contains("keyport_rpc_requests_total"));
    let (status, _) = http_get(metrics, "/other").await?;
    assert_eq!(status, 404);
    served.kill().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_are_off_by_default_and_a_bad_address_stops_the_start() -> TestResult {
    let data = tempfile::tempdir()?;
    let served = Served::start(data.path(), &[]).await?;
    assert!(served.metrics.is_none(), "no metrics listener unless configured");
    served.kill().await?;

    for bad in ["nonsense", "127.0.0.1", "[::1]:99999"] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_keyport"))
            .arg("--data-dir")
            .arg(data.path())
            .args(["--listen", "127.0.0.1:0", "serve"])
            .env_remove("KEYPORT_CONFIG")
            .env("KEYPORT_METRICS__LISTEN", bad)
            .output()?;
        assert!(!output.status.success(), "started with metrics.listen = {bad}");
        let said = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
        assert!(said.contains("metrics.listen"), "{said}");
    }
    Ok(())
}
