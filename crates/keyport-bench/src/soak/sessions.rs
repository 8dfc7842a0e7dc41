//! The sessions a soak holds, what it did with each (revoked it, left it to
//! expire), and so which answer about one is right at a given moment.
//!
//! New sessions go into a ring that the readers validate over and over;
//! each one a new session pushes out is retired: revoked, or abandoned to
//! expire. A few are pinned instead: validated until their absolute
//! lifetime ends, so that expiry is exercised under load too.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use keyport_proto::v1::SessionGrant;
use keyport_tests::grpc::reason;
use tonic::{Code, Status};

use crate::load::code_name;
use crate::soak::tally::Outcome;

/// `sessions.expires_in_secs` of the soak's servers: short, so that
/// abandoned sessions expire within the run.
pub(crate) const EXPIRES_IN: Duration = Duration::from_secs(30);
/// `sessions.update_age_secs`: validation pushes the expiry forward at most this often.
pub(crate) const UPDATE_AGE: Duration = Duration::from_secs(10);
/// `sessions.absolute_lifetime_secs`: pinned sessions reach it within the run.
pub(crate) const ABSOLUTE_LIFETIME: Duration = Duration::from_secs(90);
/// Sessions the readers validate, besides the pinned ones.
const RING: usize = 256;
/// Sessions kept until their absolute lifetime ends.
const PINNED: usize = 16;
/// One read in this many goes to a pinned session.
const PINNED_EVERY: usize = 32;
/// Leeway for the distance between the soak's clock and the server's
/// decision (both on this machine; the margin covers a call in flight).
const CLOCK_SLACK: Duration = Duration::from_secs(1);
/// After a revocation answered OK, another replica may serve the session
/// from its cache this long at most (DESIGN.md: revocation seen by any
/// replica within 100 ms); its own replica must refuse at once.
pub(crate) const CROSS_REPLICA_LIMIT: Duration = Duration::from_millis(100);
/// The expected refusal of a session past its absolute lifetime.
pub(crate) const EXPIRED_ABSOLUTE: &str = "expired (absolute lifetime)";

/// A user of the soak: a password account, or an identity at the OIDC provider.
#[derive(Debug)]
pub(crate) struct Account {
    /// The email address.
    pub(crate) email: String,
    /// The password; `None` for an identity that signs in through OAuth only.
    pub(crate) password: Option<String>,
    /// The newest session, which `RevokeSession` of an older one is sent with
    /// (a user may revoke only their own sessions).
    latest: Mutex<Weak<Tracked>>,
}

impl Account {
    /// A new account with no session yet.
    pub(crate) fn new(email: String, password: Option<String>) -> Arc<Self> {
        Arc::new(Self { email, password, latest: Mutex::new(Weak::new()) })
    }

    /// The newest session, when it is neither `except` nor retired nor
    /// near its end: one to authenticate a `RevokeSession` with.
    pub(crate) fn other_live_session(&self, except: &Tracked, now: Instant) -> Option<Arc<Tracked>> {
        let latest = lock(&self.latest).upgrade()?;
        let usable = !std::ptr::eq(latest.as_ref(), except)
            && latest.revoking_since.get().is_none()
            && latest.abandoned_at.get().is_none()
            && latest.absolute_expiry > now + ABSOLUTE_LIFETIME / 4;
        usable.then_some(latest)
    }
}

/// A session the soak was granted, and what it did with it since.
#[derive(Debug)]
pub(crate) struct Tracked {
    /// The session token.
    pub(crate) token: String,
    /// The session id, for `RevokeSession`.
    pub(crate) id: String,
    /// Whose session it is.
    pub(crate) account: Arc<Account>,
    /// When its absolute lifetime ends, on this process's clock.
    absolute_expiry: Instant,
    /// Set just before its revocation is sent: from then on a refusal is expected.
    revoking_since: OnceLock<Instant>,
    /// When its revocation was answered OK, and by which process.
    revoked: OnceLock<(Instant, usize)>,
    /// When the soak stopped validating it, leaving it to expire.
    abandoned_at: OnceLock<Instant>,
}

impl Tracked {
    /// The session of a `SignIn`, `SignUp` or `FinishOAuth` answer.
    pub(crate) fn from_grant(grant: SessionGrant, account: Arc<Account>) -> Result<Arc<Self>, String> {
        let session = grant.session.ok_or("a grant without its session")?;
        let end = session.absolute_expires_at.ok_or("a session without absolute_expires_at")?;
        let end = u64::try_from(end.seconds)
            .ok()
            .map(|seconds| UNIX_EPOCH + Duration::new(seconds, u32::try_from(end.nanos).unwrap_or(0)))
            .ok_or("a session whose absolute_expires_at is before 1970")?;
        // As an Instant: the checks below compare it with send and answer times.
        let left = end.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO);
        Ok(Arc::new(Self {
            token: grant.token,
            id: session.id,
            account,
            absolute_expiry: Instant::now() + left,
            revoking_since: OnceLock::new(),
            revoked: OnceLock::new(),
            abandoned_at: OnceLock::new(),
        }))
    }

    /// Whether its absolute lifetime has ended (or nearly: it is no use to revoke it).
    pub(crate) fn expired_by(&self, at: Instant) -> bool {
        at + CLOCK_SLACK >= self.absolute_expiry
    }

    /// Records that its revocation is about to be sent.
    pub(crate) fn revoking(&self) {
        let _ = self.revoking_since.set(Instant::now());
    }

    /// Records that `process` answered its revocation OK.
    pub(crate) fn revoked_by(&self, process: usize) {
        let _ = self.revoked.set((Instant::now(), process));
    }

    /// Records that the soak stopped validating it.
    pub(crate) fn abandon(&self) {
        let _ = self.abandoned_at.set(Instant::now());
    }

    /// When a session abandoned now has certainly expired: its last
    /// validation (by a reader still in flight) pushed its expiry forward
    /// at most to then plus [`EXPIRES_IN`].
    pub(crate) fn idle_deadline(request_timeout: Duration) -> Duration {
        EXPIRES_IN + request_timeout + CLOCK_SLACK
    }

    /// Judges `process`'s answer, sent at `sent`, to a `GetSession` of this
    /// session: the session id it answered with, or its refusal.
    pub(crate) fn judge(
        &self,
        answer: Result<&str, &Status>,
        process: usize,
        sent: Instant,
        request_timeout: Duration,
    ) -> Outcome {
        let answered = Instant::now();
        match answer {
            Ok(id) if id != self.id => Outcome::Unexpected("GetSession: answered with another session".into()),
            Ok(_) => {
                if let Some(&(at, by)) = self.revoked.get()
                    && sent > at
                    && (by == process || sent > at + CROSS_REPLICA_LIMIT)
                {
                    let which = if by == process { "by the process that revoked it" } else { "past 100 ms" };
                    return Outcome::Unexpected(format!("GetSession: accepted a revoked session {which}"));
                }
                if sent > self.absolute_expiry + CLOCK_SLACK {
                    return Outcome::Unexpected("GetSession: accepted a session past its absolute lifetime".into());
                }
                if let Some(&at) = self.abandoned_at.get()
                    && sent > at + Self::idle_deadline(request_timeout)
                {
                    return Outcome::Unexpected("GetSession: accepted a session idle past expires_in".into());
                }
                Outcome::Ok
            }
            Err(status) if status.code() == Code::Unauthenticated => {
                if self.revoking_since.get().is_some_and(|since| *since <= answered) {
                    return Outcome::Expected("revoked");
                }
                if self.expired_by(answered) {
                    return Outcome::Expected(EXPIRED_ABSOLUTE);
                }
                // Its last refresh was at most UPDATE_AGE before it was abandoned.
                let idle_expiry = EXPIRES_IN.saturating_sub(UPDATE_AGE + CLOCK_SLACK);
                if self.abandoned_at.get().is_some_and(|at| answered >= *at + idle_expiry) {
                    return Outcome::Expected("expired (idle)");
                }
                Outcome::Unexpected(format!("GetSession: {} for a live session", describe(status)))
            }
            Err(status) => Outcome::Unexpected(format!("GetSession: {}", describe(status))),
        }
    }
}

/// A status as counted: its code and Keyport's reason.
pub(crate) fn describe(status: &Status) -> String {
    match reason(status) {
        reason if reason.is_empty() => code_name(status.code()).to_owned(),
        reason => format!("{} ({reason})", code_name(status.code())),
    }
}

/// A `GetSession` the prober sends later, to `process`.
#[derive(Debug)]
pub(crate) struct Probe {
    /// Not before this.
    pub(crate) due: Instant,
    /// The session to ask about.
    pub(crate) session: Arc<Tracked>,
    /// The process to ask.
    pub(crate) process: usize,
}

/// Everything the soak's callers share about sessions and accounts.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    ring: RwLock<Ring>,
    pinned: RwLock<Vec<Arc<Tracked>>>,
    accounts: RwLock<Vec<Arc<Account>>>,
    retired: Mutex<VecDeque<Arc<Tracked>>>,
    // Two queues, each in order of due time since each has one delay.
    soon: Mutex<VecDeque<Probe>>,
    later: Mutex<VecDeque<Probe>>,
    next_account: AtomicUsize,
}

#[derive(Debug, Default)]
struct Ring {
    slots: Vec<Arc<Tracked>>,
    next: usize,
}

impl Pool {
    /// A number no other account of this soak has, for its email address.
    pub(crate) fn next_account_number(&self) -> usize {
        self.next_account.fetch_add(1, Ordering::Relaxed)
    }

    /// Adds a password account that signers may sign in.
    pub(crate) fn add_account(&self, account: Arc<Account>) {
        write(&self.accounts).push(account);
    }

    /// Password account number `cursor` (modulo their count).
    pub(crate) fn account(&self, cursor: usize) -> Option<Arc<Account>> {
        let accounts = read(&self.accounts);
        (!accounts.is_empty()).then(|| Arc::clone(&accounts[cursor % accounts.len()]))
    }

    /// Adds a new session: pinned while there is room, else into the ring,
    /// whose oldest session it then retires.
    pub(crate) fn add_session(&self, session: Arc<Tracked>) {
        *lock(&session.account.latest) = Arc::downgrade(&session);
        {
            let mut pinned = write(&self.pinned);
            if pinned.len() < PINNED {
                pinned.push(session);
                return;
            }
        }
        let displaced = {
            let mut ring = write(&self.ring);
            if ring.slots.len() < RING {
                ring.slots.push(session);
                None
            } else {
                let slot = ring.next % RING;
                ring.next = ring.next.wrapping_add(1);
                Some(std::mem::replace(&mut ring.slots[slot], session))
            }
        };
        if let Some(displaced) = displaced {
            lock(&self.retired).push_back(displaced);
        }
    }

    /// The session a reader validates on its `cursor`-th read.
    pub(crate) fn read(&self, cursor: usize) -> Option<Arc<Tracked>> {
        if cursor.is_multiple_of(PINNED_EVERY) {
            let pinned = read(&self.pinned);
            if !pinned.is_empty() {
                return Some(Arc::clone(&pinned[(cursor / PINNED_EVERY) % pinned.len()]));
            }
        }
        let ring = read(&self.ring);
        (!ring.slots.is_empty()).then(|| Arc::clone(&ring.slots[cursor % ring.slots.len()]))
    }

    /// Stops validating a pinned session that has expired, making room for a new one.
    pub(crate) fn unpin(&self, session: &Arc<Tracked>) {
        write(&self.pinned).retain(|pinned| !Arc::ptr_eq(pinned, session));
    }

    /// The oldest session pushed out of the ring and not yet dealt with.
    pub(crate) fn next_retired(&self) -> Option<Arc<Tracked>> {
        lock(&self.retired).pop_front()
    }

    /// Schedules a probe due soon (a revocation checked on another replica).
    pub(crate) fn probe_soon(&self, probe: Probe) {
        lock(&self.soon).push_back(probe);
    }

    /// Schedules a probe due later (an abandoned session checked after its expiry).
    pub(crate) fn probe_later(&self, probe: Probe) {
        lock(&self.later).push_back(probe);
    }

    /// The earliest probe due by `now`, or else when the next one is due.
    pub(crate) fn due_probe(&self, now: Instant) -> Result<Probe, Option<Instant>> {
        let mut next = None;
        for queue in [&self.soon, &self.later] {
            let mut queue = lock(queue);
            match queue.front().map(|probe| probe.due) {
                Some(due) if due <= now => return queue.pop_front().ok_or(None),
                Some(due) => next = Some(next.map_or(due, |next: Instant| next.min(due))),
                None => {}
            }
        }
        Err(next)
    }
}

// A poisoned lock means a caller panicked, which fails the run anyway: go on
// with the data rather than add a second failure.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(5);

    fn session(left: Duration) -> Tracked {
        Tracked {
            token: "kp_s.secret".into(),
            id: "s".into(),
            account: Account::new("a@example.com".into(), None),
            absolute_expiry: Instant::now() + left,
            revoking_since: OnceLock::new(),
            revoked: OnceLock::new(),
            abandoned_at: OnceLock::new(),
        }
    }

    fn refused() -> Status {
        Status::unauthenticated("refused")
    }

    #[test]
    fn a_live_session_must_be_accepted_as_itself() {
        let live = session(ABSOLUTE_LIFETIME);
        let now = Instant::now();
        assert_eq!(live.judge(Ok("s"), 0, now, TIMEOUT), Outcome::Ok);
        assert!(matches!(live.judge(Ok("other"), 0, now, TIMEOUT), Outcome::Unexpected(_)));
        let why = live.judge(Err(&refused()), 0, now, TIMEOUT);
        assert_eq!(why, Outcome::Unexpected("GetSession: UNAUTHENTICATED for a live session".into()));
        assert!(matches!(live.judge(Err(&Status::internal("x")), 0, now, TIMEOUT), Outcome::Unexpected(_)));
    }

    #[test]
    fn a_revoked_session_is_refused_by_its_replica_at_once_and_by_others_soon() {
        let revoked = session(ABSOLUTE_LIFETIME);
        revoked.revoking();
        assert_eq!(revoked.judge(Err(&refused()), 1, Instant::now(), TIMEOUT), Outcome::Expected("revoked"));
        revoked.revoked_by(0);
        let after = Instant::now() + Duration::from_millis(1);
        assert!(matches!(revoked.judge(Ok("s"), 0, after, TIMEOUT), Outcome::Unexpected(_)));
        assert_eq!(revoked.judge(Ok("s"), 1, after, TIMEOUT), Outcome::Ok, "within the cross-replica limit");
        let late = after + CROSS_REPLICA_LIMIT;
        assert!(matches!(revoked.judge(Ok("s"), 1, late, TIMEOUT), Outcome::Unexpected(_)));
    }

    #[test]
    fn a_refusal_before_the_revocation_began_is_unexpected() {
        let live = session(ABSOLUTE_LIFETIME);
        let refusal = live.judge(Err(&refused()), 0, Instant::now(), TIMEOUT);
        live.revoking();
        assert!(matches!(refusal, Outcome::Unexpected(_)));
    }

    #[test]
    fn past_its_absolute_lifetime_a_session_must_be_refused() {
        let expired = session(Duration::ZERO);
        let now = Instant::now();
        assert_eq!(expired.judge(Err(&refused()), 0, now, TIMEOUT), Outcome::Expected(EXPIRED_ABSOLUTE));
        assert_eq!(expired.judge(Ok("s"), 0, now, TIMEOUT), Outcome::Ok, "within the clock slack");
        let later = now + 2 * CLOCK_SLACK;
        assert!(matches!(expired.judge(Ok("s"), 0, later, TIMEOUT), Outcome::Unexpected(_)));
    }

    #[test]
    fn an_abandoned_session_expires_when_idle_long_enough() {
        let abandoned = session(ABSOLUTE_LIFETIME);
        abandoned.abandon();
        let soon = abandoned.judge(Err(&refused()), 0, Instant::now(), TIMEOUT);
        assert!(matches!(soon, Outcome::Unexpected(_)), "refused before it could have expired");
        let after = Instant::now() + Tracked::idle_deadline(TIMEOUT) + Duration::from_millis(1);
        assert!(matches!(abandoned.judge(Ok("s"), 0, after, TIMEOUT), Outcome::Unexpected(_)));
    }

    #[test]
    fn the_ring_retires_its_oldest_session_once_full() {
        let pool = Pool::default();
        let account = Account::new("a@example.com".into(), Some("pw".into()));
        let sessions: Vec<Arc<Tracked>> = (0..PINNED + RING + 1)
            .map(|index| {
                Arc::new(Tracked { id: index.to_string(), account: Arc::clone(&account), ..session(ABSOLUTE_LIFETIME) })
            })
            .collect();
        for session in &sessions {
            pool.add_session(Arc::clone(session));
        }
        let retired = pool.next_retired().expect("one retired");
        assert_eq!(retired.id, PINNED.to_string(), "the first session in the ring");
        assert!(pool.next_retired().is_none());
        let newest = sessions.last().expect("sessions");
        let other = account.other_live_session(&retired, Instant::now()).expect("the newest");
        assert!(Arc::ptr_eq(&other, newest));
        assert!(account.other_live_session(newest, Instant::now()).is_none(), "not the session itself");
    }
}
