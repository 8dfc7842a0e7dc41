//! The Markdown report: the machine, the command, one table per kind of
//! measurement, and the design targets marked met or not met.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tonic::Code;

use crate::load::{LoadResult, Timing};
use crate::workload::SIGN_UP_CONCURRENCY;

/// Target: `GetSession` requests per second at 64 concurrent callers, at least.
const TARGET_GET_SESSION_RATE: f64 = 15_000.0;
/// Target: `GetSession` p99 at 64 concurrent callers, at most, in milliseconds.
const TARGET_GET_SESSION_P99_MS: f64 = 5.0;
/// Target: `GetSession` p99 during a sign-in flood, at most, in milliseconds.
const TARGET_FLOOD_P99_MS: f64 = 20.0;
/// Target: start to SERVING, at most, in milliseconds.
const TARGET_START_MS: f64 = 200.0;
/// Target: idle resident set size, at most, in MB (10^6 bytes).
const TARGET_IDLE_RSS_MB: f64 = 30.0;

/// How the run was configured.
#[derive(Debug)]
pub(crate) struct Settings {
    /// The `keyport` binary that was measured.
    pub(crate) keyport_bin: PathBuf,
    /// Warm-up and measured window of every load step.
    pub(crate) timing: Timing,
    /// HTTP/2 connections the callers shared.
    pub(crate) connections: usize,
    /// Users signed up (and session tokens cycled over).
    pub(crate) users: usize,
    /// `RUST_LOG` of the server.
    pub(crate) server_log_filter: String,
    /// `KEYPORT_*` configuration variables the server inherited.
    pub(crate) server_env: Vec<String>,
}

/// One fresh start of the server.
#[derive(Debug)]
pub(crate) struct StartSample {
    /// From spawning the process to the first SERVING health answer.
    pub(crate) to_serving: Duration,
    /// Resident set size after about a second idle, in MB (10^6 bytes).
    pub(crate) idle_rss_mb: f64,
}

/// `GetSession` measured while a `SignIn` flood ran alongside.
#[derive(Debug)]
pub(crate) struct Flood {
    /// The measured `GetSession` callers.
    pub(crate) get_session: LoadResult,
    /// The flooding `SignIn` loops.
    pub(crate) sign_in: LoadResult,
}

/// Everything one run measured; sections that did not run stay empty.
#[derive(Debug)]
pub(crate) struct Report {
    settings: Settings,
    date: String,
    command: String,
    load_average: Option<String>,
    /// Fresh starts: start to SERVING and idle RSS.
    pub(crate) startup: Option<Vec<StartSample>>,
    /// Health `Check` at 64 callers.
    pub(crate) baseline: Option<LoadResult>,
    /// How long signing up the users took (4 at a time, before the load steps).
    pub(crate) sign_up: Option<Duration>,
    /// `GetSession` steps, in order of concurrency.
    pub(crate) get_session: Vec<LoadResult>,
    /// `SignIn` with correct passwords.
    pub(crate) sign_in: Option<LoadResult>,
    /// `GetSession` during a sign-in flood.
    pub(crate) flood: Option<Flood>,
}

impl Report {
    /// An empty report for a run with `settings`, stamped with the current time and command line.
    pub(crate) fn new(settings: Settings) -> Self {
        let args: Vec<String> = std::env::args().collect();
        Self {
            settings,
            date: utc(SystemTime::now()),
            command: args.join(" "),
            load_average: load_average(),
            startup: None,
            baseline: None,
            sign_up: None,
            get_session: Vec::new(),
            sign_in: None,
            flood: None,
        }
    }

    /// The report as Markdown.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        self.render_header(&mut out);
        self.render_startup(&mut out);
        self.render_load(&mut out);
        self.render_targets(&mut out);
        out
    }

    fn render_header(&self, out: &mut String) {
        let settings = &self.settings;
        let cargo_args = self.command.split_once(' ').map_or("", |(_, rest)| rest);
        let _ = writeln!(out, "# Keyport benchmark report\n");
        let _ = writeln!(out, "| | |\n|---|---|");
        let _ = writeln!(out, "| date | {} |", self.date);
        let _ = writeln!(out, "| machine | {}, {} CPUs (nproc) |", cpu_model(), nproc());
        if let Some(load) = &self.load_average {
            let _ = writeln!(out, "| load average at start | {load} (1, 5, 15 min) |");
        }
        let _ = writeln!(out, "| command | `{}` |", self.command);
        let _ = writeln!(out, "| same as | `cargo run --release -p keyport-bench -- {cargo_args}` |");
        if let Some(revision) = git_revision() {
            let _ = writeln!(out, "| working tree | `{revision}` |");
        }
        let built = std::fs::metadata(&settings.keyport_bin)
            .and_then(|meta| meta.modified())
            .map_or_else(|_| String::new(), |modified| format!(" (built {})", utc(modified)));
        let _ = writeln!(out, "| keyport binary | `{}`{built} |", settings.keyport_bin.display());
        let _ = writeln!(
            out,
            "| load steps | {} s measured after {} s warm-up; {} HTTP/2 connections; {} users; server `RUST_LOG={}` |",
            settings.timing.duration.as_secs(),
            settings.timing.warmup.as_secs(),
            settings.connections,
            settings.users,
            settings.server_log_filter,
        );
        let config = if settings.server_env.is_empty() {
            "defaults (no `KEYPORT_*` variables set)".to_owned()
        } else {
            settings.server_env.iter().map(|var| format!("`{var}`")).collect::<Vec<_>>().join(", ")
        };
        let _ = writeln!(out, "| server configuration | {config} |");
        let _ = writeln!(out, "\nServer and load generator share the machine; everything is on loopback.\n");
    }

    fn render_startup(&self, out: &mut String) {
        let Some(samples) = &self.startup else { return };
        let _ = writeln!(out, "## Start to SERVING and idle RSS\n");
        let _ = writeln!(
            out,
            "Each start: a fresh, empty data directory; time from spawning `keyport serve` to the first \
             SERVING answer of the health `Check` RPC (polled every 1 ms); then `VmRSS` after 1 s idle.\n"
        );
        let _ = writeln!(out, "| start | to SERVING (ms) | idle RSS (MB) |\n|---|---:|---:|");
        for (index, sample) in samples.iter().enumerate() {
            let _ = writeln!(out, "| {} | {:.1} | {:.1} |", index + 1, millis(sample.to_serving), sample.idle_rss_mb);
        }
        if let (Some(start), Some(rss)) = (median_start_ms(samples), median_rss_mb(samples)) {
            let _ = writeln!(out, "| **median** | **{start:.1}** | **{rss:.1}** |");
        }
        out.push('\n');
    }

    fn render_load(&self, out: &mut String) {
        let mut rows: Vec<(&str, &LoadResult)> = Vec::new();
        if let Some(baseline) = &self.baseline {
            rows.push(("health `Check` (baseline: a handler that does nothing)", baseline));
        }
        rows.extend(self.get_session.iter().map(|result| ("`GetSession`", result)));
        if let Some(sign_in) = &self.sign_in {
            rows.push(("`SignIn`, correct password", sign_in));
        }
        if let Some(flood) = &self.flood {
            rows.push(("`GetSession` during the sign-in flood", &flood.get_session));
            rows.push(("`SignIn` flood (running alongside)", &flood.sign_in));
        }
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(out, "## Throughput and latency\n");
        let _ = writeln!(
            out,
            "Closed loop: each caller sends its next request when the previous one is answered. Only \
             status OK counts as success; latencies are those of successful calls, completed inside the \
             measured window. CPU: average cores kept busy during the window by the server, by this \
             load generator (the flood rows share one process, so theirs is the same) and by anything \
             else on the machine, which skews the numbers when it is not near zero.\n"
        );
        let _ = writeln!(
            out,
            "| scenario | callers | ok/s | p50 (ms) | p99 (ms) | p99.9 (ms) | errors | CPU server / bench / other (cores) | server RSS after (MB) |\n\
             |---|---:|---:|---:|---:|---:|---|---:|---:|"
        );
        for (scenario, result) in rows {
            let cpu = result.cpu.map_or_else(
                || "n/a".to_owned(),
                |cpu| format!("{:.2} / {:.2} / {:.2}", cpu.server, cpu.bench, cpu.other),
            );
            let rss = result.server_rss_mb.map_or_else(|| "n/a".to_owned(), |rss| format!("{rss:.1}"));
            let _ = writeln!(
                out,
                "| {scenario} | {} | {} | {:.2} | {:.2} | {:.2} | {} | {cpu} | {rss} |",
                result.callers,
                thousands(result.ok_per_second()),
                result.latency_ms(0.5),
                result.latency_ms(0.99),
                result.latency_ms(0.999),
                error_summary(result),
            );
        }
        if let (Some(baseline), Some(top)) = (&self.baseline, self.get_session.last()) {
            let share = 100.0 * top.ok_per_second() / baseline.ok_per_second().max(f64::MIN_POSITIVE);
            let _ = writeln!(
                out,
                "\n`GetSession` at {} callers runs at {share:.0} % of the do-nothing baseline.",
                top.callers
            );
        }
        if let Some(took) = self.sign_up {
            let _ = writeln!(
                out,
                "\nSet-up: {} users signed up ({} at a time) in {:.1} s before the load steps.",
                self.settings.users,
                SIGN_UP_CONCURRENCY,
                took.as_secs_f64()
            );
        }
        if let Some(sign_in) = &self.sign_in {
            let _ = writeln!(out, "\n{}", turned_away("`SignIn`", sign_in));
        }
        if let Some(flood) = &self.flood {
            let _ = writeln!(out, "\n{}", turned_away("`SignIn` flood", &flood.sign_in));
        }
        out.push('\n');
    }

    fn render_targets(&self, out: &mut String) {
        let mut rows: Vec<(String, String, bool)> = Vec::new();
        if let Some(top) = self.get_session.last() {
            let clean = top.error_count() == 0;
            let rate = top.ok_per_second();
            rows.push((
                format!("`GetSession`, {} callers: >= {} /s", top.callers, thousands(TARGET_GET_SESSION_RATE)),
                with_errors(format!("{} /s", thousands(rate)), top),
                clean && rate >= TARGET_GET_SESSION_RATE,
            ));
            let p99 = top.latency_ms(0.99);
            rows.push((
                format!("`GetSession`, {} callers: p99 <= {TARGET_GET_SESSION_P99_MS} ms", top.callers),
                with_errors(format!("{p99:.2} ms"), top),
                clean && p99 <= TARGET_GET_SESSION_P99_MS,
            ));
        }
        if let Some(flood) = &self.flood {
            let p99 = flood.get_session.latency_ms(0.99);
            rows.push((
                format!("`GetSession` p99 during the sign-in flood <= {TARGET_FLOOD_P99_MS} ms"),
                with_errors(format!("{p99:.2} ms"), &flood.get_session),
                flood.get_session.error_count() == 0 && p99 <= TARGET_FLOOD_P99_MS,
            ));
        }
        if let Some(samples) = &self.startup {
            if let Some(start) = median_start_ms(samples) {
                rows.push((
                    format!("start to SERVING <= {TARGET_START_MS} ms (median)"),
                    format!("{start:.1} ms"),
                    start <= TARGET_START_MS,
                ));
            }
            if let Some(rss) = median_rss_mb(samples) {
                rows.push((
                    format!("idle RSS <= {TARGET_IDLE_RSS_MB} MB (median)"),
                    format!("{rss:.1} MB"),
                    rss <= TARGET_IDLE_RSS_MB,
                ));
            }
        }
        if rows.is_empty() {
            return;
        }
        let _ = writeln!(out, "## Targets (from DESIGN.md)\n");
        let _ = writeln!(out, "| target | measured | |\n|---|---:|---|");
        for (target, measured, met) in rows {
            let _ = writeln!(out, "| {target} | {measured} | {} |", if met { "met" } else { "**not met**" });
        }
        out.push('\n');
    }
}

/// `measured`, followed by the error count when the step had errors.
fn with_errors(measured: String, result: &LoadResult) -> String {
    match result.error_count() {
        0 => measured,
        errors => format!("{measured} ({errors} errors)"),
    }
}

/// `0`, or the total followed by the count of each status code.
fn error_summary(result: &LoadResult) -> String {
    let total = result.error_count();
    if total == 0 {
        return "0".to_owned();
    }
    let by_code: Vec<String> = result.errors.iter().map(|(code, calls)| format!("{code} {calls}")).collect();
    format!("{total} ({})", by_code.join(", "))
}

/// A sentence on how many `SignIn` calls the hashing pool turned away.
fn turned_away(label: &str, result: &LoadResult) -> String {
    let exhausted = result.errors_with(Code::ResourceExhausted);
    let answered = result.ok + result.error_count();
    format!(
        "{label}: {} signed in, {exhausted} turned away with RESOURCE_EXHAUSTED, of {answered} answered calls.",
        result.ok
    )
}

/// Median time to SERVING in milliseconds.
fn median_start_ms(samples: &[StartSample]) -> Option<f64> {
    median(samples.iter().map(|sample| millis(sample.to_serving)).collect())
}

/// Median idle RSS in MB.
fn median_rss_mb(samples: &[StartSample]) -> Option<f64> {
    median(samples.iter().map(|sample| sample.idle_rss_mb).collect())
}

/// The median of `values`: the middle one, or the mean of the two middle ones.
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => None,
        len if len % 2 == 1 => values.get(mid).copied(),
        _ => Some((values.get(mid - 1)? + values.get(mid)?) / 2.0),
    }
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// A rate rounded to a whole number, with thousands separators: `15,230`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// The CPU model from `/proc/cpuinfo`.
fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

/// The 1, 5 and 15 minute load averages from `/proc/loadavg`: other work on
/// the machine skews every number of a 2-core benchmark.
pub(crate) fn load_average() -> Option<String> {
    let loadavg = std::fs::read_to_string("/proc/loadavg").ok()?;
    let fields: Vec<&str> = loadavg.split_whitespace().take(3).collect();
    (fields.len() == 3).then(|| fields.join(", "))
}

/// CPUs this process may use, as `nproc` counts them.
fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// `git describe --always --dirty` of the working directory, when it is a git checkout.
fn git_revision() -> Option<String> {
    let output = Command::new("git").args(["describe", "--always", "--dirty"]).output().ok()?;
    let revision = String::from_utf8(output.stdout).ok()?.trim().to_owned();
    (output.status.success() && !revision.is_empty()).then_some(revision)
}

/// `time` as `YYYY-MM-DD HH:MM UTC`.
fn utc(time: SystemTime) -> String {
    let seconds = time.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let (year, month, day) = civil_from_days(seconds / 86_400);
    let minute_of_day = seconds % 86_400 / 60;
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02} UTC", minute_of_day / 60, minute_of_day % 60)
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 { shifted_month + 3 } else { shifted_month - 9 };
    let year = era * 400 + year_of_era + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_from_day_counts() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
    }

    #[test]
    fn rates_get_thousands_separators() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(15_230.2), "15,230");
        assert_eq!(thousands(1_234_567.0), "1,234,567");
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
