//! What the soak's callers count: per server process and minute, answers by
//! RPC, latencies of `GetSession` and `SignIn`, and errors split into the
//! expected (a refusal the soak caused) and the unexpected (anything else).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::BoxError;

/// One row of the report covers this much of the soak.
pub(crate) const MINUTE: Duration = Duration::from_secs(60);
/// Longest latency the histograms hold, in microseconds; longer ones are clamped.
const MAX_LATENCY_US: u64 = 60_000_000;
/// Significant decimal digits kept by the histograms.
const SIGNIFICANT_DIGITS: u8 = 3;

/// The calls the soak makes, as counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Rpc {
    /// `SessionService.GetSession`.
    GetSession,
    /// `SessionService.SignIn` with a password.
    SignIn,
    /// `UserService.SignUp` of a fresh user.
    SignUp,
    /// `SessionService.SignOut`.
    SignOut,
    /// `SessionService.RevokeSession`.
    RevokeSession,
    /// `OAuthService.StartOAuth`.
    StartOAuth,
    /// `OAuthService.FinishOAuth`.
    FinishOAuth,
    /// The browser's part of an OAuth flow, at the OIDC provider (not Keyport).
    Provider,
}

impl Rpc {
    /// The name shown in the report.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Rpc::GetSession => "GetSession",
            Rpc::SignIn => "SignIn",
            Rpc::SignUp => "SignUp",
            Rpc::SignOut => "SignOut",
            Rpc::RevokeSession => "RevokeSession",
            Rpc::StartOAuth => "StartOAuth",
            Rpc::FinishOAuth => "FinishOAuth",
            Rpc::Provider => "OIDC provider (browser part)",
        }
    }
}

/// How one answer was judged.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The answer a correct server gives.
    Ok,
    /// A refusal the soak caused and expects, by kind: a session it revoked,
    /// or one past its lifetime.
    Expected(&'static str),
    /// Anything else, described without tokens or ids so that equal
    /// failures count together.
    Unexpected(String),
}

/// The answers to one RPC.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RpcCount {
    /// Judged [`Outcome::Ok`].
    pub(crate) ok: u64,
    /// Judged [`Outcome::Expected`].
    pub(crate) expected: u64,
    /// Judged [`Outcome::Unexpected`].
    pub(crate) unexpected: u64,
}

impl RpcCount {
    /// Every answer.
    pub(crate) fn calls(&self) -> u64 {
        self.ok + self.expected + self.unexpected
    }

    fn add(&mut self, other: &RpcCount) {
        self.ok += other.ok;
        self.expected += other.expected;
        self.unexpected += other.unexpected;
    }
}

/// What was counted for one server process in one minute (or, merged, in several).
#[derive(Debug, Default)]
pub(crate) struct Cell {
    /// Answers by RPC.
    pub(crate) rpcs: BTreeMap<Rpc, RpcCount>,
    /// Latencies of `GetSession` answers judged OK, in µs.
    pub(crate) get_session_us: Option<Histogram<u64>>,
    /// Latencies of `SignIn` answers judged OK, in µs.
    pub(crate) sign_in_us: Option<Histogram<u64>>,
    /// Expected errors by kind.
    pub(crate) expected: BTreeMap<&'static str, u64>,
    /// Unexpected errors by description.
    pub(crate) unexpected: BTreeMap<String, u64>,
}

impl Cell {
    /// Answers of the server process: every RPC but the provider's part of
    /// OAuth flows (whose errors still count in the error totals).
    pub(crate) fn calls(&self) -> u64 {
        self.rpcs.iter().filter(|(rpc, _)| **rpc != Rpc::Provider).map(|(_, count)| count.calls()).sum()
    }

    /// Expected errors of every kind.
    pub(crate) fn expected_errors(&self) -> u64 {
        self.expected.values().sum()
    }

    /// Unexpected errors of every kind.
    pub(crate) fn unexpected_errors(&self) -> u64 {
        self.unexpected.values().sum()
    }

    /// Adds `other`'s counts to these.
    pub(crate) fn merge(&mut self, other: &Cell) -> Result<(), BoxError> {
        for (rpc, count) in &other.rpcs {
            self.rpcs.entry(*rpc).or_default().add(count);
        }
        merge_histogram(&mut self.get_session_us, other.get_session_us.as_ref())?;
        merge_histogram(&mut self.sign_in_us, other.sign_in_us.as_ref())?;
        for (kind, count) in &other.expected {
            *self.expected.entry(kind).or_default() += count;
        }
        for (why, count) in &other.unexpected {
            *self.unexpected.entry(why.clone()).or_default() += count;
        }
        Ok(())
    }
}

/// The counts of one caller, or of all of them once merged, by process and minute.
#[derive(Debug)]
pub(crate) struct Tally {
    started: Instant,
    minutes: usize,
    cells: BTreeMap<(usize, usize), Cell>,
}

impl Tally {
    /// An empty tally of a soak that started at `started` and lasts `minutes`.
    pub(crate) fn new(started: Instant, minutes: usize) -> Self {
        Self { started, minutes: minutes.max(1), cells: BTreeMap::new() }
    }

    /// Counts an answer of `process` to `rpc`, sent at `sent`, judged `outcome`.
    pub(crate) fn record(&mut self, process: usize, rpc: Rpc, sent: Instant, outcome: Outcome) -> Result<(), BoxError> {
        let answered = Instant::now();
        let cell = self.cells.entry((process, self.minute_of(answered))).or_default();
        let count = cell.rpcs.entry(rpc).or_default();
        match outcome {
            Outcome::Ok => {
                count.ok += 1;
                let slot = match rpc {
                    Rpc::GetSession => Some(&mut cell.get_session_us),
                    Rpc::SignIn => Some(&mut cell.sign_in_us),
                    _ => None,
                };
                if let Some(slot) = slot {
                    let micros = u64::try_from(answered.duration_since(sent).as_micros()).unwrap_or(u64::MAX);
                    histogram(slot)?.saturating_record(micros.max(1));
                }
            }
            Outcome::Expected(kind) => {
                count.expected += 1;
                *cell.expected.entry(kind).or_default() += 1;
            }
            Outcome::Unexpected(why) => {
                count.unexpected += 1;
                *cell.unexpected.entry(why).or_default() += 1;
            }
        }
        Ok(())
    }

    /// Adds another caller's counts to these.
    pub(crate) fn merge(&mut self, other: Tally) -> Result<(), BoxError> {
        for (key, cell) in other.cells {
            self.cells.entry(key).or_default().merge(&cell)?;
        }
        Ok(())
    }

    /// What `process` answered in minute `minute` (from 0), if anything.
    pub(crate) fn cell(&self, process: usize, minute: usize) -> Option<&Cell> {
        self.cells.get(&(process, minute))
    }

    /// Everything counted, all processes and minutes together.
    pub(crate) fn total(&self) -> Result<Cell, BoxError> {
        let mut total = Cell::default();
        for cell in self.cells.values() {
            total.merge(cell)?;
        }
        Ok(total)
    }

    /// The minute an answer at `at` belongs to. Answers after the last
    /// minute (calls that were in flight at the end) count in it rather
    /// than not at all.
    fn minute_of(&self, at: Instant) -> usize {
        let elapsed = at.saturating_duration_since(self.started).as_secs() / MINUTE.as_secs();
        usize::try_from(elapsed).unwrap_or(usize::MAX).min(self.minutes - 1)
    }
}

/// The histogram in `slot`, created on first use: most cells never hold one.
fn histogram(slot: &mut Option<Histogram<u64>>) -> Result<&mut Histogram<u64>, BoxError> {
    if slot.is_none() {
        *slot = Some(Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGNIFICANT_DIGITS)?);
    }
    slot.as_mut().ok_or_else(|| "histogram vanished".into())
}

fn merge_histogram(into: &mut Option<Histogram<u64>>, from: Option<&Histogram<u64>>) -> Result<(), BoxError> {
    if let Some(from) = from {
        histogram(into)?.add(from)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_after_the_end_count_in_the_last_minute() {
        let started = Instant::now() - 3 * MINUTE;
        let mut tally = Tally::new(started, 2);
        tally.record(1, Rpc::SignOut, Instant::now(), Outcome::Unexpected("SignOut: INTERNAL".into())).unwrap();
        let cell = tally.cell(1, 1).expect("the last minute");
        assert_eq!((cell.calls(), cell.unexpected_errors()), (1, 1));
    }

    #[test]
    fn merged_tallies_keep_every_count_and_latency() {
        let started = Instant::now();
        let (mut one, mut other) = (Tally::new(started, 1), Tally::new(started, 1));
        one.record(0, Rpc::GetSession, started, Outcome::Ok).unwrap();
        other.record(0, Rpc::GetSession, started, Outcome::Expected("revoked")).unwrap();
        other.record(0, Rpc::Provider, started, Outcome::Unexpected("OIDC provider: no callback".into())).unwrap();
        one.merge(other).unwrap();
        let cell = one.cell(0, 0).expect("minute 1");
        assert_eq!(cell.calls(), 2, "the provider's part is not a call of the server");
        assert_eq!((cell.expected_errors(), cell.unexpected_errors()), (1, 1));
        assert_eq!(cell.get_session_us.as_ref().map(Histogram::len), Some(1));
    }
}
