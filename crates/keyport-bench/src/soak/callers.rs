//! The soak's callers, one role each: readers validate sessions (the bulk of
//! the calls), signers sign password users in, a sign-up caller creates
//! fresh users, an OAuth caller plays sign-in flows through the OIDC
//! provider, a revoker ends the sessions the ring pushes out (or leaves
//! them to expire), and a prober asks about those sessions later.
//!
//! Every answer is judged and counted; a caller returns an error only for
//! a fault of the benchmark itself, never for an answer of the server.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use keyport_proto::v1::o_auth_service_client::OAuthServiceClient;
use keyport_proto::v1::session_service_client::SessionServiceClient;
use keyport_proto::v1::user_service_client::UserServiceClient;
use keyport_proto::v1::{
    FinishOAuthRequest, GetSessionRequest, RevokeSessionRequest, SignInRequest, SignOutRequest, SignUpRequest,
    StartOAuthRequest, finish_o_auth_response, sign_in_response,
};
use keyport_tests::grpc::authed;
use keyport_tests::oidc::{Login, OidcProvider};
use tokio::time::{Interval, MissedTickBehavior};
use tonic::transport::Channel;

use crate::soak::sessions::{Account, CROSS_REPLICA_LIMIT, EXPIRED_ABSOLUTE, Pool, Probe, Tracked, describe};
use crate::soak::tally::{Outcome, Rpc, Tally};
use crate::{BoxError, workload};

/// `SignIn`s per second of each signer: enough to keep sessions turning
/// over, far below what the hashing pool takes, so that nothing is refused.
pub(crate) const SIGN_IN_INTERVAL: Duration = Duration::from_millis(100);
/// Between two sign-ups of fresh users.
pub(crate) const SIGN_UP_INTERVAL: Duration = Duration::from_millis(250);
/// Between two OAuth flows (each is several HTTP round trips to Node).
pub(crate) const OAUTH_INTERVAL: Duration = Duration::from_millis(500);
/// How long an idle revoker or prober waits before looking again.
const IDLE_POLL: Duration = Duration::from_millis(5);
/// One retired session in this many is abandoned to expire, not revoked.
pub(crate) const ABANDON_EVERY: usize = 4;
/// The OAuth provider id the servers are configured with.
pub(crate) const PROVIDER_ID: &str = "soak";
/// The redirect URI of the flows; never requested (the provider's answer
/// is read from the redirect to it).
pub(crate) const REDIRECT_URI: &str = "http://127.0.0.1:9/oauth/callback";

/// What a caller does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// `GetSession` over the ring and the pinned sessions, as fast as answered.
    Reader,
    /// `SignIn` of existing password users, paced.
    SignIn,
    /// `SignUp` of fresh users, paced.
    SignUp,
    /// OAuth sign-in flows through the OIDC provider, paced; started on one
    /// process and finished on the next, as behind a load balancer.
    OAuth,
    /// `SignOut` or `RevokeSession` of retired sessions, or abandons them.
    Revoker,
    /// `GetSession` of revoked sessions on the other replicas, and of
    /// abandoned ones after their expiry.
    Prober,
}

/// What every caller of one soak shares.
pub(crate) struct Shared {
    /// Sessions and accounts.
    pub(crate) pool: Pool,
    /// Server processes (1 on SQLite, 2 replicas on PostgreSQL).
    pub(crate) processes: usize,
    /// The OIDC provider the servers are configured with.
    pub(crate) oidc: OidcProvider,
    /// The provider signs in whoever was named last: one browser part at a time.
    provider_turn: tokio::sync::Mutex<()>,
    next_identity: AtomicUsize,
}

impl Shared {
    /// State for a soak against `processes` processes.
    pub(crate) fn new(processes: usize, oidc: OidcProvider) -> Self {
        Self {
            pool: Pool::default(),
            processes: processes.max(1),
            oidc,
            provider_turn: tokio::sync::Mutex::new(()),
            next_identity: AtomicUsize::new(0),
        }
    }
}

/// One caller's clients, one of each service per server process.
pub(crate) struct Clients {
    sessions: Vec<SessionServiceClient<Channel>>,
    users: Vec<UserServiceClient<Channel>>,
    oauth: Vec<OAuthServiceClient<Channel>>,
}

impl Clients {
    /// Clients of caller `caller` over `connections` (per process, its
    /// connections), which the callers share round-robin.
    pub(crate) fn new(connections: &[Vec<Channel>], caller: usize) -> Result<Self, BoxError> {
        let channels: Vec<Channel> =
            connections.iter().map(|of_one| workload::channel_for(of_one, caller)).collect::<Result<_, _>>()?;
        Ok(Self {
            sessions: channels.iter().cloned().map(SessionServiceClient::new).collect(),
            users: channels.iter().cloned().map(UserServiceClient::new).collect(),
            oauth: channels.into_iter().map(OAuthServiceClient::new).collect(),
        })
    }
}

/// One caller: its role, home process, clients and counts.
pub(crate) struct Caller {
    role: Role,
    home: usize,
    clients: Clients,
    shared: Arc<Shared>,
    tally: Tally,
    cursor: usize,
    /// The OAuth identity signed up last, which the next flow signs in again.
    returning: Option<(Arc<Account>, String)>,
}

impl Caller {
    /// Caller number `index`, sending mostly to process `home`, counting into `tally`.
    pub(crate) fn new(
        role: Role,
        index: usize,
        home: usize,
        clients: Clients,
        shared: Arc<Shared>,
        tally: Tally,
    ) -> Self {
        // Readers start far apart in the ring.
        let cursor = index.wrapping_mul(7919);
        Self { role, home, clients, shared, tally, cursor, returning: None }
    }

    /// Runs the role until `until`, sending no call after it; returns what it counted.
    pub(crate) async fn run(mut self, until: Instant) -> Result<Tally, BoxError> {
        match self.role {
            Role::Reader => {
                while Instant::now() < until {
                    let Some(session) = self.shared.pool.read(self.cursor) else {
                        tokio::time::sleep(IDLE_POLL).await;
                        continue;
                    };
                    self.cursor = self.cursor.wrapping_add(1);
                    self.get_session(self.home, &session).await?;
                }
            }
            Role::SignIn => {
                let mut ticks = pace(SIGN_IN_INTERVAL);
                while tick(&mut ticks, until).await {
                    self.sign_in().await?;
                }
            }
            Role::SignUp => {
                let mut ticks = pace(SIGN_UP_INTERVAL);
                while tick(&mut ticks, until).await {
                    self.sign_up().await?;
                }
            }
            Role::OAuth => {
                let mut ticks = pace(OAUTH_INTERVAL);
                while tick(&mut ticks, until).await {
                    self.oauth_flow().await?;
                }
            }
            Role::Revoker => {
                while Instant::now() < until {
                    match self.shared.pool.next_retired() {
                        Some(session) => self.retire(session).await?,
                        None => tokio::time::sleep(IDLE_POLL).await,
                    }
                }
            }
            Role::Prober => loop {
                let now = Instant::now();
                if now >= until {
                    break;
                }
                match self.shared.pool.due_probe(now) {
                    Ok(probe) => self.get_session(probe.process, &probe.session).await?,
                    Err(next) => {
                        let wake = next.unwrap_or(now + IDLE_POLL).min(now + IDLE_POLL).min(until);
                        tokio::time::sleep_until(wake.into()).await;
                    }
                }
            },
        }
        Ok(self.tally)
    }

    /// Creates the users and sessions the soak starts with: `sign_ups` fresh
    /// users, then `sign_ins` more sessions of theirs; fails on any answer
    /// but OK.
    pub(crate) async fn seed(mut self, sign_ups: usize, sign_ins: usize) -> Result<(), BoxError> {
        for _ in 0..sign_ups {
            self.sign_up().await?;
        }
        for _ in 0..sign_ins {
            self.sign_in().await?;
        }
        let total = self.tally.total()?;
        match total.unexpected.keys().next() {
            Some(why) => Err(format!("seeding the soak failed: {why}").into()),
            None => Ok(()),
        }
    }

    /// Validates `session` on `process` and counts the judged answer.
    async fn get_session(&mut self, process: usize, session: &Arc<Tracked>) -> Result<(), BoxError> {
        let sent = Instant::now();
        let request = GetSessionRequest { token: session.token.clone() };
        let answer = self.clients.sessions[process].get_session(request).await;
        let timeout = workload::REQUEST_TIMEOUT;
        let outcome = match &answer {
            Ok(response) => {
                let id = response.get_ref().session.as_ref().map_or("", |session| session.id.as_str());
                session.judge(Ok(id), process, sent, timeout)
            }
            Err(status) => session.judge(Err(status), process, sent, timeout),
        };
        if outcome == Outcome::Expected(EXPIRED_ABSOLUTE) {
            self.shared.pool.unpin(session);
        }
        self.tally.record(process, Rpc::GetSession, sent, outcome)
    }

    /// Signs the next password user in on the home process.
    async fn sign_in(&mut self) -> Result<(), BoxError> {
        let Some(account) = self.shared.pool.account(self.cursor) else {
            return Err("no password users to sign in".into());
        };
        self.cursor = self.cursor.wrapping_add(1);
        let password = account.password.clone().unwrap_or_default();
        let request = SignInRequest { email: account.email.clone(), password };
        let sent = Instant::now();
        let outcome = match self.clients.sessions[self.home].sign_in(request).await {
            Ok(response) => match response.into_inner().outcome {
                Some(sign_in_response::Outcome::Session(grant)) => self.keep("SignIn", grant, account),
                Some(sign_in_response::Outcome::Challenge(_)) => {
                    Outcome::Unexpected("SignIn: answered a second-factor challenge".into())
                }
                None => Outcome::Unexpected("SignIn: answered without a session".into()),
            },
            Err(status) => Outcome::Unexpected(format!("SignIn: {}", describe(&status))),
        };
        self.tally.record(self.home, Rpc::SignIn, sent, outcome)
    }

    /// Signs up a fresh password user on the home process.
    async fn sign_up(&mut self) -> Result<(), BoxError> {
        let number = self.shared.pool.next_account_number();
        let account = Account::new(format!("soak-{number}@example.com"), Some(format!("soak-password-{number}")));
        let password = account.password.clone().unwrap_or_default();
        let request = SignUpRequest { email: account.email.clone(), password, name: String::new() };
        let sent = Instant::now();
        let outcome = match self.clients.users[self.home].sign_up(request).await {
            Ok(response) => match response.into_inner().session {
                Some(grant) => {
                    let outcome = self.keep("SignUp", grant, Arc::clone(&account));
                    if outcome == Outcome::Ok {
                        self.shared.pool.add_account(account);
                    }
                    outcome
                }
                None => Outcome::Unexpected("SignUp: answered without a session".into()),
            },
            Err(status) => Outcome::Unexpected(format!("SignUp: {}", describe(&status))),
        };
        self.tally.record(self.home, Rpc::SignUp, sent, outcome)
    }

    /// Adds the session of a grant to the pool.
    fn keep(&self, rpc: &str, grant: keyport_proto::v1::SessionGrant, account: Arc<Account>) -> Outcome {
        match Tracked::from_grant(grant, account) {
            Ok(session) => {
                self.shared.pool.add_session(session);
                Outcome::Ok
            }
            Err(why) => Outcome::Unexpected(format!("{rpc}: {why}")),
        }
    }

    /// One OAuth sign-in: `StartOAuth` on the home process, the browser's
    /// part at the provider, `FinishOAuth` on the next process. Every other
    /// flow brings the previous identity back, so both the sign-up of a new
    /// identity and the sign-in of a known one run.
    async fn oauth_flow(&mut self) -> Result<(), BoxError> {
        let (start_on, finish_on) = (self.home, (self.home + 1) % self.shared.processes);
        let (account, subject, new_user) = match self.returning.take() {
            Some((account, subject)) => (account, subject, false),
            None => {
                let number = self.shared.next_identity.fetch_add(1, Ordering::Relaxed);
                let account = Account::new(format!("soak-oidc-{number}@example.com"), None);
                (account, format!("soak-subject-{number}"), true)
            }
        };

        let sent = Instant::now();
        let request =
            StartOAuthRequest { provider_id: PROVIDER_ID.into(), redirect_uri: REDIRECT_URI.into(), link: false };
        let started = match self.clients.oauth[start_on].start_o_auth(request).await {
            Ok(response) => {
                self.tally.record(start_on, Rpc::StartOAuth, sent, Outcome::Ok)?;
                response.into_inner()
            }
            Err(status) => {
                let outcome = Outcome::Unexpected(format!("StartOAuth: {}", describe(&status)));
                return self.tally.record(start_on, Rpc::StartOAuth, sent, outcome);
            }
        };

        let sent = Instant::now();
        let login =
            Login { sub: subject.clone(), email: account.email.clone(), email_verified: true, name: "Soak".into() };
        let callback = {
            let _turn = self.shared.provider_turn.lock().await;
            match self.shared.oidc.next_login(&login).await {
                Ok(()) => self.shared.oidc.follow(&started.authorization_url).await.map_err(|_| "no callback"),
                Err(_) => Err("next-login refused"),
            }
        };
        let (code, state) = match callback {
            Ok(callback) => match (callback.code, callback.state, callback.error) {
                (Some(code), Some(state), None) => (code, state),
                (_, _, error) => {
                    let error = error.unwrap_or_else(|| "no code or state".into());
                    let outcome = Outcome::Unexpected(format!("OIDC provider: callback with {error}"));
                    return self.tally.record(start_on, Rpc::Provider, sent, outcome);
                }
            },
            Err(why) => {
                let outcome = Outcome::Unexpected(format!("OIDC provider: {why}"));
                return self.tally.record(start_on, Rpc::Provider, sent, outcome);
            }
        };
        self.tally.record(start_on, Rpc::Provider, sent, Outcome::Ok)?;

        let sent = Instant::now();
        let request = FinishOAuthRequest {
            state,
            code,
            redirect_uri: REDIRECT_URI.into(),
            binding: started.binding,
            error: String::new(),
        };
        let outcome = match self.clients.oauth[finish_on].finish_o_auth(request).await {
            Ok(response) => {
                let response = response.into_inner();
                match response.outcome {
                    Some(_) if response.new_user != new_user => Outcome::Unexpected(format!(
                        "FinishOAuth: new_user = {} for a {} identity",
                        response.new_user,
                        if new_user { "new" } else { "known" }
                    )),
                    Some(finish_o_auth_response::Outcome::Session(grant)) => {
                        let outcome = self.keep("FinishOAuth", grant, Arc::clone(&account));
                        // A new identity comes back in the next flow, once it exists.
                        if new_user && outcome == Outcome::Ok {
                            self.returning = Some((account, subject));
                        }
                        outcome
                    }
                    Some(_) => Outcome::Unexpected("FinishOAuth: answered without a session".into()),
                    None => Outcome::Unexpected("FinishOAuth: answered nothing".into()),
                }
            }
            Err(status) => Outcome::Unexpected(format!("FinishOAuth: {}", describe(&status))),
        };
        self.tally.record(finish_on, Rpc::FinishOAuth, sent, outcome)
    }

    /// Deals with a session the ring pushed out: abandons one in
    /// [`ABANDON_EVERY`] (the prober checks it after its expiry), revokes
    /// the others with `SignOut` or, from the user's newest session,
    /// `RevokeSession`, on the processes in turn. A revoked session must be
    /// refused at once by the process that revoked it, and by the others
    /// within [`CROSS_REPLICA_LIMIT`].
    async fn retire(&mut self, session: Arc<Tracked>) -> Result<(), BoxError> {
        let turn = self.cursor;
        self.cursor = self.cursor.wrapping_add(1);
        let processes = self.shared.processes;
        // Each turn of ABANDON_EVERY (abandon, revoke, sign out, revoke) on
        // one process, the next turn on the next: every kind reaches each.
        let process = (turn / ABANDON_EVERY) % processes;
        let now = Instant::now();
        if session.expired_by(now) {
            // Nothing left to revoke; its row waits for the sweep.
            return Ok(());
        }
        if turn.is_multiple_of(ABANDON_EVERY) {
            session.abandon();
            let due = now + Tracked::idle_deadline(workload::REQUEST_TIMEOUT);
            self.shared.pool.probe_later(Probe { due, session, process });
            return Ok(());
        }

        let revoker = session.account.other_live_session(&session, now).filter(|_| turn % 2 == 1);
        let client = &mut self.clients.sessions[process];
        session.revoking();
        let sent = Instant::now();
        let (rpc, answer) = match revoker {
            Some(revoker) => {
                let request = authed(RevokeSessionRequest { session_id: session.id.clone() }, &revoker.token);
                (Rpc::RevokeSession, client.revoke_session(request).await.map(drop))
            }
            None => (Rpc::SignOut, client.sign_out(authed(SignOutRequest {}, &session.token)).await.map(drop)),
        };
        match answer {
            Ok(()) => {
                session.revoked_by(process);
                self.tally.record(process, rpc, sent, Outcome::Ok)?;
                self.get_session(process, &session).await?;
                let due = Instant::now() + CROSS_REPLICA_LIMIT + IDLE_POLL;
                for other in (0..processes).filter(|other| *other != process) {
                    self.shared.pool.probe_soon(Probe { due, session: Arc::clone(&session), process: other });
                }
                Ok(())
            }
            Err(status) => {
                let outcome = Outcome::Unexpected(format!("{}: {}", rpc.name(), describe(&status)));
                self.tally.record(process, rpc, sent, outcome)
            }
        }
    }
}

/// Ticks every `period`; a tick missed while the call ran is not made up
/// for (the server was slow: sending faster then would only pile up).
fn pace(period: Duration) -> Interval {
    let mut interval = tokio::time::interval(period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

/// Waits for the next tick; false once the soak is over.
async fn tick(interval: &mut Interval, until: Instant) -> bool {
    tokio::select! {
        _ = interval.tick() => Instant::now() < until,
        () = tokio::time::sleep_until(until.into()) => false,
    }
}
