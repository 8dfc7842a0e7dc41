//! Sessions and their sliding expiry.
//!
//! The use cases are in `accounts/sessions.rs` (on [`crate::Accounts`]),
//! their storage is [`crate::store::SessionStore`].

use std::time::Duration;

use crate::{
    clock::Timestamp,
    organization::OrganizationId,
    second_factor::Assurance,
    token::{SecretHash, SessionId},
    user::{User, UserId},
};

/// How long sessions live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionPolicy {
    /// Idle lifetime: a session unused for this long expires.
    pub expires_in: Duration,
    /// Use pushes the expiry forward at most once per this interval, so that
    /// validating a session is a pure read nearly always.
    pub update_age: Duration,
    /// Hard cap on a session's life, however often it is used.
    pub absolute_lifetime: Duration,
}

impl Default for SessionPolicy {
    fn default() -> Self {
        const DAY: Duration = Duration::from_secs(24 * 60 * 60);
        Self { expires_in: 7 * DAY, update_age: DAY, absolute_lifetime: 30 * DAY }
    }
}

/// Where a request came from, as far as Keyport can tell.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientInfo {
    /// The end user's IP address.
    pub ip_address: Option<String>,
    /// The end user's user agent.
    pub user_agent: Option<String>,
}

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Public id, the lookup half of the token.
    pub id: SessionId,
    /// Owner.
    pub user_id: UserId,
    /// SHA-256 of the token's secret.
    pub secret_hash: SecretHash,
    /// Sign-in time.
    pub created_at: Timestamp,
    /// Idle expiry; pushed forward by use.
    pub expires_at: Timestamp,
    /// Hard expiry.
    pub absolute_expires_at: Timestamp,
    /// When `expires_at` was last pushed forward.
    pub refreshed_at: Timestamp,
    /// Where the session was created from.
    pub client: ClientInfo,
    /// How strongly the user proved who they are.
    pub assurance: Assurance,
    /// When the user last proved it: the sign-in, or a later step-up.
    pub authenticated_at: Timestamp,
    /// The admin acting as the user, for a session opened by
    /// impersonation: such a session changes no credential and ends early.
    pub impersonator: Option<UserId>,
    /// The organization the session works in, chosen by its user;
    /// `Authorize` without an organization decides in it.
    pub active_organization: Option<OrganizationId>,
}

/// A new session as handed to its user.
#[derive(Debug)]
pub struct SessionGrant {
    /// The bearer token; shown once.
    pub token: String,
    /// The session.
    pub session: Session,
    /// Its user.
    pub user: User,
}

/// A validated session and its user: who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The caller's session.
    pub session: Session,
    /// The caller.
    pub user: User,
    /// True when validating pushed the session's expiry forward.
    pub refreshed: bool,
    /// How long a subscribed cache may reuse this answer.
    pub cache_ttl: Duration,
}

/// What validating a session at a given time decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Past its idle or absolute expiry.
    Expired,
    /// Valid; nothing to write.
    Valid,
    /// Valid, and due for its expiry to move to `expires_at`.
    Refresh {
        /// The new idle expiry.
        expires_at: Timestamp,
    },
}

impl SessionPolicy {
    /// Expiry times of a session created at `now`: (idle, absolute).
    pub fn expiries_from(&self, now: Timestamp) -> (Timestamp, Timestamp) {
        let absolute = now.saturating_add(self.absolute_lifetime);
        (now.saturating_add(self.expires_in).min(absolute), absolute)
    }

    /// Decides whether `session` is usable at `now` and whether its expiry
    /// should slide.
    pub fn freshness(&self, session: &Session, now: Timestamp) -> Freshness {
        if now >= session.expires_at || now >= session.absolute_expires_at {
            return Freshness::Expired;
        }
        let next = now.saturating_add(self.expires_in).min(session.absolute_expires_at);
        if now.duration_since(session.refreshed_at) >= self.update_age && next > session.expires_at {
            Freshness::Refresh { expires_at: next }
        } else {
            Freshness::Valid
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn policy() -> SessionPolicy {
        SessionPolicy { expires_in: 10 * HOUR, update_age: HOUR, absolute_lifetime: 24 * HOUR }
    }

    fn session_at(created: Timestamp) -> Session {
        let (expires_at, absolute_expires_at) = policy().expiries_from(created);
        Session {
            id: SessionId::from_trusted("id".into()),
            user_id: crate::user::UserId::generate(created),
            secret_hash: SecretHash([0; 32]),
            created_at: created,
            expires_at,
            absolute_expires_at,
            refreshed_at: created,
            client: ClientInfo::default(),
            assurance: Assurance::Aal1,
            authenticated_at: created,
            impersonator: None,
            active_organization: None,
        }
    }

    const T0: Timestamp = Timestamp::from_unix_millis(1_700_000_000_000);

    #[test]
    fn fresh_sessions_need_no_write() {
        let s = session_at(T0);
        assert_eq!(policy().freshness(&s, T0), Freshness::Valid);
        assert_eq!(policy().freshness(&s, T0.saturating_add(HOUR / 2)), Freshness::Valid);
    }

    #[test]
    fn use_after_update_age_slides_the_expiry() {
        let s = session_at(T0);
        let now = T0.saturating_add(2 * HOUR);
        assert_eq!(policy().freshness(&s, now), Freshness::Refresh { expires_at: now.saturating_add(10 * HOUR) });
    }

    #[test]
    fn idle_sessions_expire() {
        let s = session_at(T0);
        assert_eq!(policy().freshness(&s, T0.saturating_add(10 * HOUR)), Freshness::Expired);
        assert_eq!(
            policy().freshness(&s, T0.saturating_add(10 * HOUR).saturating_add(Duration::from_millis(1))),
            Freshness::Expired
        );
        assert_ne!(policy().freshness(&s, T0.saturating_add(10 * HOUR - Duration::from_millis(1))), Freshness::Expired);
    }

    #[test]
    fn sliding_never_passes_the_absolute_lifetime() {
        let mut s = session_at(T0);
        let now = T0.saturating_add(20 * HOUR);
        s.expires_at = now.saturating_add(HOUR);
        s.refreshed_at = now.saturating_add(Duration::ZERO);
        let later = now.saturating_add(2 * HOUR);
        s.expires_at = later.saturating_add(HOUR);
        let outcome = policy().freshness(&s, later);
        assert_eq!(outcome, Freshness::Refresh { expires_at: s.absolute_expires_at });
        assert_eq!(policy().freshness(&s, T0.saturating_add(24 * HOUR)), Freshness::Expired);
    }
}

/// What a sign-up did.
#[derive(Debug)]
pub enum SignUpOutcome {
    /// The account exists and is signed in.
    SignedIn(Box<SessionGrant>),
    /// The server requires verified addresses: a link (or, if the address
    /// had an account, a notice) is on its way to the address. Nobody is
    /// signed in, and nothing says whether the account is new.
    VerificationSent,
}

impl SignUpOutcome {
    /// The session, when the sign-up signed in.
    pub fn into_grant(self) -> Option<SessionGrant> {
        match self {
            Self::SignedIn(grant) => Some(*grant),
            Self::VerificationSent => None,
        }
    }
}
