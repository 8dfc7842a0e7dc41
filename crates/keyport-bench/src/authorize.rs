//! The authorize section: `Authorize` with two permissions against
//! `GetSession` at the same concurrency, step after step in one run, on
//! the load sections' server (DESIGN.md target: `Authorize` at 64 callers
//! >= 0.9x `GetSession`).

use std::{fmt::Write as _, sync::Arc};

use keyport_proto::v1::{AuthorizeRequest, authorization_service_client::AuthorizationServiceClient};
use tonic::{Code, transport::Channel};

use crate::{
    BoxError,
    load::{Call, LoadResult, Timing, closed_loop},
    workload::{channel_for, get_session_callers},
};

/// Keyport's own permissions: no `[authorization]` config needed.
const PERMISSIONS: [&str; 2] = ["users:read", "sessions:revoke"];
/// Target: `Authorize` throughput at the highest concurrency, of `GetSession`'s.
const TARGET_SHARE: f64 = 0.9;

/// Calls `Authorize` with `permissions`, cycling over the credentials
/// (session tokens or API keys).
pub(crate) struct Authorize {
    client: AuthorizationServiceClient<Channel>,
    tokens: Arc<[String]>,
    permissions: &'static [&'static str],
    next: usize,
}

impl Call for Authorize {
    async fn call(&mut self) -> Result<(), Code> {
        let token = self.tokens[self.next % self.tokens.len()].clone();
        self.next = self.next.wrapping_add(1);
        let request = AuthorizeRequest {
            token,
            permissions: self.permissions.iter().map(|permission| (*permission).to_owned()).collect(),
            organization_id: String::new(),
        };
        self.client.authorize(request).await.map(drop).map_err(|status| status.code())
    }
}

/// `count` callers of `Authorize` with `permissions` over `tokens`.
pub(crate) fn authorizers(
    channels: &[Channel],
    count: usize,
    tokens: &Arc<[String]>,
    permissions: &'static [&'static str],
) -> Result<Vec<Authorize>, BoxError> {
    (0..count)
        .map(|index| {
            let client = AuthorizationServiceClient::new(channel_for(channels, index)?);
            Ok(Authorize { client, tokens: Arc::clone(tokens), permissions, next: index })
        })
        .collect()
}

/// For each of `concurrency`: `GetSession`, then `Authorize`, each a load step.
pub(crate) async fn authorize(
    channels: &[Channel],
    tokens: &Arc<[String]>,
    concurrency: &[usize],
    timing: Timing,
    server_pid: u32,
) -> Result<Vec<(LoadResult, LoadResult)>, BoxError> {
    let mut pairs = Vec::new();
    for &callers in concurrency {
        eprintln!("GetSession then Authorize, {callers} callers");
        let get_session = closed_loop(get_session_callers(channels, callers, tokens)?, timing, server_pid).await?;
        let authorize = closed_loop(authorizers(channels, callers, tokens, &PERMISSIONS)?, timing, server_pid).await?;
        pairs.push((get_session, authorize));
    }
    Ok(pairs)
}

/// The section as Markdown.
pub(crate) fn render(pairs: &[(LoadResult, LoadResult)]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "## Authorize against GetSession\n");
    let _ = writeln!(
        out,
        "Closed loop, the same users' tokens; each pair of steps runs back to back. `Authorize` asks for two \
         permissions (`{}`), which the users' `user` role does not grant: the answer is a deny, decided in \
         full.\n",
        PERMISSIONS.join("`, `")
    );
    let _ = writeln!(
        out,
        "| callers | GetSession ok/s | Authorize ok/s | Authorize / GetSession | GetSession p99 (ms) | Authorize p99 (ms) | errors |\n\
         |---:|---:|---:|---:|---:|---:|---:|"
    );
    for (get_session, authorize) in pairs {
        let share = authorize.ok_per_second() / get_session.ok_per_second().max(f64::MIN_POSITIVE);
        let _ = writeln!(
            out,
            "| {} | {:.0} | {:.0} | {share:.2}x | {:.2} | {:.2} | {} |",
            authorize.callers,
            get_session.ok_per_second(),
            authorize.ok_per_second(),
            get_session.latency_ms(0.99),
            authorize.latency_ms(0.99),
            get_session.error_count() + authorize.error_count(),
        );
    }
    if let Some((get_session, authorize)) = pairs.last() {
        let share = authorize.ok_per_second() / get_session.ok_per_second().max(f64::MIN_POSITIVE);
        let verdict = if share >= TARGET_SHARE { "met" } else { "NOT met" };
        let _ = writeln!(
            out,
            "\nTarget `Authorize` >= {TARGET_SHARE}x `GetSession` at {} callers: {share:.2}x, {verdict}.",
            authorize.callers
        );
    }
    out.push('\n');
    out
}
