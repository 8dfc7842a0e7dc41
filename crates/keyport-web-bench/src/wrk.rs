//! HTTP load with `wrk` (Debian package `wrk`), parsed from its report.

use std::process::Command;

use crate::BoxError;

/// What `wrk` measured.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Load {
    /// Successful requests per second.
    pub(crate) requests_per_sec: f64,
    /// Mean latency in microseconds.
    pub(crate) mean_latency_us: f64,
    /// Responses that were not 2xx/3xx: must be zero for the run to count.
    pub(crate) errors: u64,
}

/// Runs `wrk` against `url` with `connections` for `seconds`.
pub(crate) fn run(url: &str, header: Option<&str>, connections: u32, seconds: u64) -> Result<Load, BoxError> {
    let mut command = Command::new("wrk");
    command.args(["-t1", &format!("-c{connections}"), &format!("-d{seconds}s")]);
    if let Some(header) = header {
        command.args(["-H", header]);
    }
    let output = command.arg(url).output().map_err(|e| format!("cannot run wrk (apt-get install wrk): {e}"))?;
    let report = String::from_utf8_lossy(&output.stdout);
    let requests_per_sec = number_after(&report, "Requests/sec:").ok_or_else(|| format!("no rate in {report}"))?;
    let mean_latency_us = latency_us(&report).unwrap_or(f64::NAN);
    let errors = number_after(&report, "Non-2xx or 3xx responses:").unwrap_or(0.0) as u64;
    Ok(Load { requests_per_sec, mean_latency_us, errors })
}

fn number_after(report: &str, label: &str) -> Option<f64> {
    let rest = &report[report.find(label)? + label.len()..];
    rest.split_whitespace().next()?.parse().ok()
}

/// The mean of wrk's `Latency` row, which carries a unit (`us`, `ms`, `s`).
fn latency_us(report: &str) -> Option<f64> {
    let line = report.lines().find(|line| line.trim_start().starts_with("Latency"))?;
    let mean = line.split_whitespace().nth(1)?;
    let (digits, scale) = if let Some(v) = mean.strip_suffix("us") {
        (v, 1.0)
    } else if let Some(v) = mean.strip_suffix("ms") {
        (v, 1_000.0)
    } else {
        (mean.strip_suffix('s')?, 1_000_000.0)
    };
    digits.parse::<f64>().ok().map(|v| v * scale)
}
