//! The API keys section: `Authorize` with each user's API key against
//! `Authorize` with their session token, at the same concurrency, step
//! after step on one server of its own (whose `user` role grants
//! `users:read`, so that users may give their keys that scope).

use std::{fmt::Write as _, path::Path, sync::Arc, time::Duration};

use keyport_proto::v1::{CreateApiKeyRequest, api_key_service_client::ApiKeyServiceClient};
use tonic::Request;

use crate::{
    BoxError,
    authorize::authorizers,
    load::{LoadResult, Timing, closed_loop},
    server::ServerProcess,
    workload::{self, channel_for},
};

/// The one permission asked: granted by the role and the key's scope.
const PERMISSIONS: [&str; 1] = ["users:read"];
/// Users (each with a session and a key) the calls cycle over.
const USERS: usize = 64;
/// Connections to the server.
const CONNECTIONS: usize = 4;

/// For each of `concurrency`: `Authorize` with session tokens, then with
/// API keys, each a load step.
pub(crate) async fn api_keys(
    bin: &Path,
    concurrency: &[usize],
    timing: Timing,
) -> Result<Vec<(LoadResult, LoadResult)>, BoxError> {
    eprintln!("starting keyport for the API key section");
    let mut server =
        ServerProcess::spawn_with(bin, &[("KEYPORT_AUTHORIZATION__ROLES__USER", r#"["users:read"]"#.into())])?;
    server.wait_serving(Duration::from_secs(10)).await?;
    let channels = workload::connect(server.addr(), CONNECTIONS).await?;
    let users = workload::sign_up_users(&channels, USERS).await?;
    let mut keys = Vec::with_capacity(users.len());
    for (index, user) in users.iter().enumerate() {
        let mut request = Request::new(CreateApiKeyRequest {
            name: format!("bench {index}"),
            scopes: PERMISSIONS.map(String::from).to_vec(),
            ..Default::default()
        });
        request.metadata_mut().insert("authorization", format!("Bearer {}", user.token).parse()?);
        let created = ApiKeyServiceClient::new(channel_for(&channels, index)?).create_api_key(request).await?;
        keys.push(created.into_inner().secret);
    }
    let tokens: Arc<[String]> = users.iter().map(|user| user.token.clone()).collect();
    let keys: Arc<[String]> = keys.into();
    let mut pairs = Vec::new();
    for &callers in concurrency {
        eprintln!("Authorize with sessions then with API keys, {callers} callers");
        let sessions =
            closed_loop(authorizers(&channels, callers, &tokens, &PERMISSIONS)?, timing, server.pid()).await?;
        let with_keys =
            closed_loop(authorizers(&channels, callers, &keys, &PERMISSIONS)?, timing, server.pid()).await?;
        server.ensure_running()?;
        pairs.push((sessions, with_keys));
    }
    Ok(pairs)
}

/// The section as Markdown.
pub(crate) fn render(pairs: &[(LoadResult, LoadResult)]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Authorize with an API key against a session token\n");
    let _ = writeln!(
        out,
        "Closed loop on a server of its own, {USERS} users each with a session and an API key scoped to `{}` \
         (granted by their role, so every answer is an allow); each pair of steps runs back to back.\n",
        PERMISSIONS.join("`, `")
    );
    let _ = writeln!(
        out,
        "| callers | session ok/s | API key ok/s | key / session | session p99 (ms) | key p99 (ms) | errors |\n\
         |---:|---:|---:|---:|---:|---:|---:|"
    );
    for (sessions, keys) in pairs {
        let share = keys.ok_per_second() / sessions.ok_per_second().max(f64::MIN_POSITIVE);
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {share:.2}x | {:.2} | {:.2} | {} |",
            keys.callers,
            sessions.ok_per_second(),
            keys.ok_per_second(),
            sessions.latency_ms(0.99),
            keys.latency_ms(0.99),
            sessions.error_count() + keys.error_count(),
        );
    }
    out.push('\n');
    out
}
