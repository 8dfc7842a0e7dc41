//! Request budgets per client address for the public RPCs (sign-up,
//! sign-in, social sign-in, the calls that send mail or take an email
//! token), whatever their outcome: a flood from one address is refused
//! before it costs a password hash, a mail or a call to a provider. The
//! same [`Rate`] caps the mails one recipient gets.
//!
//! Each (action, address) pair has a token bucket ([`Rate`]). IPv6
//! addresses are counted by their /64 network, which one host usually holds
//! whole.

use std::{
    net::{IpAddr, Ipv6Addr},
    time::Duration,
};

use super::CounterKey;
use crate::clock::Timestamp;

/// A public RPC with a budget of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PublicAction {
    /// `SignUp`.
    SignUp,
    /// `SignIn`.
    SignIn,
    /// `StartOAuth`.
    StartOAuth,
    /// `FinishOAuth`.
    FinishOAuth,
    /// `RequestPasswordReset`.
    RequestPasswordReset,
    /// `RequestEmailVerification`.
    RequestEmailVerification,
    /// `StartEmailSignIn`.
    StartEmailSignIn,
    /// `RequestEmailChange`.
    RequestEmailChange,
    /// `RequestPasswordSetup`.
    RequestPasswordSetup,
    /// `VerifyEmail`, `ResetPassword` and `FinishEmailSignIn`: presenting
    /// an email token or code.
    UseEmailToken,
}

/// The budget of each public RPC per client address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Requests an address may make at once, after a quiet spell. Zero
    /// turns the budgets off.
    pub burst: u32,
    /// Requests per minute an address may keep making after its burst.
    pub per_minute: u32,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self { burst: 100, per_minute: 600 }
    }
}

impl RequestLimits {
    /// The bucket rule of each (action, address) pair.
    pub fn rate(self) -> Rate {
        Rate::per_minute(self.burst, self.per_minute)
    }
}

/// A token bucket's rule, applied by the generic cell rate algorithm: a
/// burst of `burst` requests passes at once, then one per `interval`. A
/// bucket is one timestamp, when it is full again (the "theoretical arrival
/// time"), which makes it one row in a shared table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests at once, after a quiet spell.
    pub burst: u32,
    /// Time that refills one request.
    pub interval: Duration,
}

impl Rate {
    /// `burst` at once, then `per_minute`; zero in either admits everything.
    pub fn per_minute(burst: u32, per_minute: u32) -> Self {
        let interval = match per_minute {
            0 => Duration::ZERO,
            per_minute => Duration::from_secs(60) / per_minute,
        };
        Self { burst, interval }
    }

    /// A rule that admits everything.
    pub const OFF: Self = Self { burst: 0, interval: Duration::ZERO };

    /// Whether this rule admits everything.
    pub fn is_off(self) -> bool {
        self.burst == 0 || self.interval.is_zero()
    }

    /// How far ahead of `now` a bucket may be full and still admit one more.
    pub fn tolerance(self) -> Duration {
        self.interval.saturating_mul(self.burst.saturating_sub(1))
    }

    /// One request at `now` against a bucket full again at `full_at` (never
    /// used: `None`): the bucket's new full time, or how long to wait. The
    /// shared counter table runs this same rule as one SQL statement.
    pub fn take(self, full_at: Option<Timestamp>, now: Timestamp) -> Result<Timestamp, Duration> {
        let full_at = full_at.filter(|at| *at > now).unwrap_or(now);
        let waiting = full_at.duration_since(now);
        let tolerance = self.tolerance();
        if waiting > tolerance {
            return Err(waiting - tolerance);
        }
        Ok(full_at.saturating_add(self.interval))
    }
}

/// The counter of `action`'s budget for `address`: IPv4 addresses and IPv6
/// /64 networks have their own, callers whose address is unknown share one.
pub(crate) fn budget_key(action: PublicAction, address: Option<&str>) -> CounterKey {
    let network = address.and_then(network_of).map(|network| network.to_string());
    CounterKey::new(action.as_str(), network.unwrap_or_default())
}

impl PublicAction {
    /// The action's name in counter keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SignUp => "sign_up",
            Self::SignIn => "sign_in",
            Self::StartOAuth => "start_oauth",
            Self::FinishOAuth => "finish_oauth",
            Self::RequestPasswordReset => "request_password_reset",
            Self::RequestEmailVerification => "request_email_verification",
            Self::StartEmailSignIn => "start_email_sign_in",
            Self::RequestEmailChange => "request_email_change",
            Self::RequestPasswordSetup => "request_password_setup",
            Self::UseEmailToken => "use_email_token",
        }
    }
}

/// The address a budget belongs to: an IPv4 address, or an IPv6 /64.
pub(crate) fn network_of(address: &str) -> Option<IpAddr> {
    match address.parse::<IpAddr>().ok()? {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => Some(IpAddr::V4(v4)),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                Some(IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0)))
            }
        },
        v4 => Some(v4),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_one_per_interval() {
        let rate = Rate::per_minute(3, 60);
        let start = Timestamp::from_unix_millis(1_000_000);
        let mut full_at = None;
        for _ in 0..3 {
            full_at = Some(rate.take(full_at, start).unwrap());
        }
        assert_eq!(rate.take(full_at, start), Err(Duration::from_secs(1)));
        let later = start.saturating_add(Duration::from_millis(999));
        assert!(rate.take(full_at, later).is_err());
        let later = start.saturating_add(Duration::from_secs(1));
        full_at = Some(rate.take(full_at, later).unwrap());
        assert!(rate.take(full_at, later).is_err());
        // A quiet spell refills the whole burst, and no more.
        let later = later.saturating_add(Duration::from_secs(60));
        for _ in 0..3 {
            full_at = Some(rate.take(full_at, later).unwrap());
        }
        assert!(rate.take(full_at, later).is_err());
    }

    #[test]
    fn zero_turns_a_rate_off() {
        assert!(Rate::per_minute(0, 60).is_off());
        assert!(Rate::per_minute(5, 0).is_off());
        assert!(!Rate::per_minute(1, 1).is_off());
    }

    #[test]
    fn addresses_and_actions_have_budgets_of_their_own() {
        let key = |action, address| budget_key(action, address);
        assert_ne!(key(PublicAction::SignIn, Some("203.0.113.7")), key(PublicAction::SignUp, Some("203.0.113.7")));
        assert_ne!(key(PublicAction::SignIn, Some("203.0.113.7")), key(PublicAction::SignIn, Some("203.0.113.8")));
        // One IPv6 /64 is one budget; the same address mapped into IPv6 is
        // the IPv4 address.
        assert_eq!(
            key(PublicAction::SignIn, Some("2001:db8:1:2::1")),
            key(PublicAction::SignIn, Some("2001:db8:1:2:ffff::9"))
        );
        assert_ne!(
            key(PublicAction::SignIn, Some("2001:db8:1:2::1")),
            key(PublicAction::SignIn, Some("2001:db8:1:3::1"))
        );
        assert_eq!(
            key(PublicAction::SignIn, Some("::ffff:203.0.113.8")),
            key(PublicAction::SignIn, Some("203.0.113.8"))
        );
        // Unknown and unparseable addresses share one budget.
        assert_eq!(key(PublicAction::SignIn, None), key(PublicAction::SignIn, Some("not an address")));
        assert_eq!(key(PublicAction::SignIn, None), key(PublicAction::SignIn, Some("")));
    }
}
