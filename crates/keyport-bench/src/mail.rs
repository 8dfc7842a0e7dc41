//! The mail section: `RequestPasswordReset` for known and unknown addresses
//! side by side (the answer must not tell them apart), and the courier's
//! throughput into a real SMTP server (Mailpit).

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use keyport_proto::v1::{RequestPasswordResetRequest, user_service_client::UserServiceClient};
use keyport_tests::mailpit::{FROM, Mailpit, PUBLIC_BASE_URL};
use tokio::task::JoinSet;
use tonic::transport::Channel;

use crate::{BoxError, server::ServerProcess, workload};

/// How long the fresh server may take to report SERVING.
const SERVING_LIMIT: Duration = Duration::from_secs(30);

/// Alternating known/unknown calls of the latency comparison, each kind.
const ROUNDS: usize = 1_000;
/// Users whose addresses are "known".
const USERS: usize = 100;
/// Mails queued at once for the courier's throughput.
const BURST: usize = 1_000;
/// Concurrent callers that queue the burst.
const BURST_CALLERS: usize = 16;
/// Longest wait for the courier to deliver everything.
const DRAIN_LIMIT: Duration = Duration::from_secs(300);

/// What the mail section measured.
#[derive(Debug)]
pub(crate) struct MailBench {
    /// `RequestPasswordReset` latency for addresses with an account, in µs.
    known: Histogram<u64>,
    /// The same for addresses without one, in µs.
    unknown: Histogram<u64>,
    /// For each `mail.max_connections` tried: from the first call of the
    /// burst to the last of its mails in Mailpit.
    bursts: Vec<(u32, Duration)>,
}

/// SMTP connections of the courier: the default, and one as the baseline.
const CONNECTIONS: [u32; 2] = [4, 1];

type Latencies = (Histogram<u64>, Histogram<u64>);

/// Runs the section: each setting of [`CONNECTIONS`] against a fresh
/// `keyport` sending to a fresh Mailpit, the latency comparison on the first.
pub(crate) async fn mail(bin: &Path) -> Result<MailBench, BoxError> {
    let mut latency = None;
    let mut bursts = Vec::new();
    for connections in CONNECTIONS {
        let (measured, burst) = run(bin, connections, latency.is_none()).await?;
        latency = latency.or(measured);
        bursts.push((connections, burst));
    }
    let (known, unknown) = latency.ok_or("no latency measured")?;
    Ok(MailBench { known, unknown, bursts })
}

async fn run(bin: &Path, connections: u32, measure_latency: bool) -> Result<(Option<Latencies>, Duration), BoxError> {
    let mailpit = Mailpit::start().await?;
    let env = [
        ("KEYPORT_MAIL__SMTP_HOST", "127.0.0.1".to_owned()),
        ("KEYPORT_MAIL__SMTP_PORT", mailpit.smtp_port().to_string()),
        ("KEYPORT_MAIL__SECURITY", "none".to_owned()),
        ("KEYPORT_MAIL__FROM", FROM.to_owned()),
        ("KEYPORT_MAIL__PUBLIC_BASE_URL", PUBLIC_BASE_URL.to_owned()),
        // Every known address gets many mails here, on purpose.
        ("KEYPORT_MAIL__PER_RECIPIENT_BURST", "0".to_owned()),
        ("KEYPORT_MAIL__MAX_CONNECTIONS", connections.to_string()),
    ];
    let mut server = ServerProcess::spawn_with(bin, &env)?;
    server.wait_serving(SERVING_LIMIT).await?;
    let channels = workload::connect(server.addr(), 4).await?;
    let users = workload::sign_up_users(&channels, USERS).await?;
    let known: Arc<[String]> = users.into_iter().map(|user| user.email).collect();
    let latency = if measure_latency { Some(compare(&channels, &known, &mailpit).await?) } else { None };

    eprintln!("courier, {connections} SMTP connections: {BURST} mails queued by {BURST_CALLERS} callers");
    let before = mailpit.total().await?;
    let started = Instant::now();
    let mut callers = JoinSet::new();
    for caller in 0..BURST_CALLERS {
        let mut client = UserServiceClient::new(channels[caller % channels.len()].clone());
        let known = Arc::clone(&known);
        callers.spawn(async move {
            for n in (caller..BURST).step_by(BURST_CALLERS) {
                let email = known[n % known.len()].clone();
                client.request_password_reset(RequestPasswordResetRequest { email }).await?;
            }
            Ok::<_, tonic::Status>(())
        });
    }
    while let Some(done) = callers.join_next().await {
        done??;
    }
    wait_for_total(&mailpit, before + BURST as u64).await?;
    let delivered_in = started.elapsed();
    server.ensure_running()?;
    Ok((latency, delivered_in))
}

/// `RequestPasswordReset` latencies of known and unknown addresses: one
/// caller, alternating which goes first; then waits for the known ones' mails.
async fn compare(channels: &[Channel], known: &[String], mailpit: &Mailpit) -> Result<Latencies, BoxError> {
    eprintln!("RequestPasswordReset, 1 caller, {ROUNDS} known and {ROUNDS} unknown addresses, alternating");
    let mut client = UserServiceClient::new(channels[0].clone());
    let mut known_latency = Histogram::new(3)?;
    let mut unknown_latency = Histogram::new(3)?;
    for round in 0..ROUNDS {
        let unknown = format!("nobody{round}@bench.test");
        let pair = [(&known[round % known.len()], true), (&unknown, false)];
        let order = if round % 2 == 0 { [0, 1] } else { [1, 0] };
        for index in order {
            let (email, is_known) = pair[index];
            let started = Instant::now();
            client.request_password_reset(RequestPasswordResetRequest { email: email.clone() }).await?;
            let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
            if is_known { known_latency.record(micros)? } else { unknown_latency.record(micros)? }
        }
    }
    wait_for_total(mailpit, ROUNDS as u64).await?;
    Ok((known_latency, unknown_latency))
}

async fn wait_for_total(mailpit: &Mailpit, total: u64) -> Result<(), BoxError> {
    let deadline = Instant::now() + DRAIN_LIMIT;
    while mailpit.total().await? < total {
        if Instant::now() > deadline {
            return Err(
                format!("Mailpit holds {} of {total} mails after {DRAIN_LIMIT:?}", mailpit.total().await?).into()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The section as Markdown.
pub(crate) fn render(bench: &MailBench) -> String {
    let mut out = String::new();
    let ms = |histogram: &Histogram<u64>, quantile: f64| histogram.value_at_quantile(quantile) as f64 / 1000.0;
    let _ = writeln!(out, "## Mail: RequestPasswordReset, known against unknown addresses\n");
    let _ = writeln!(
        out,
        "One caller, {ROUNDS} calls of each kind, alternating which goes first; a known address has an account \
         with a password (its token and mail are written after the answer), an unknown one has none.\n"
    );
    let _ = writeln!(
        out,
        "| address | calls | median (ms) | p90 (ms) | p99 (ms) | max (ms) |\n|---|---:|---:|---:|---:|---:|"
    );
    for (name, histogram) in [("known", &bench.known), ("unknown", &bench.unknown)] {
        let _ = writeln!(
            out,
            "| {name} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
            histogram.len(),
            ms(histogram, 0.5),
            ms(histogram, 0.9),
            ms(histogram, 0.99),
            histogram.max() as f64 / 1000.0
        );
    }
    let difference = ms(&bench.known, 0.5) - ms(&bench.unknown, 0.5);
    let _ = writeln!(out, "\nMedian difference (known - unknown): {difference:+.3} ms.\n");
    let _ = writeln!(out, "## Mail: courier throughput into Mailpit\n");
    let _ = writeln!(
        out,
        "{BURST} reset mails queued by {BURST_CALLERS} callers; from the first call until Mailpit held the last. \
         One replica (one courier) on SQLite, with `mail.max_connections` SMTP connections (1 is the baseline).\n"
    );
    let _ = writeln!(out, "| `max_connections` | seconds | mails/s |\n|---:|---:|---:|");
    for (connections, took) in &bench.bursts {
        let seconds = took.as_secs_f64();
        let _ = writeln!(out, "| {connections} | {seconds:.2} | {:.0} |", BURST as f64 / seconds);
    }
    let _ = writeln!(out);
    out
}
