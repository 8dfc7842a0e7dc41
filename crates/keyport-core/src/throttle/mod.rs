//! Throttling: budgets of the public RPCs per client address
//! ([`budget`]), caps on the mails one address gets, and growing delays
//! after failed sign-ins ([`failures`]).
//!
//! The rules live here; the counters live in a [`CounterStore`]: this
//! process's memory ([`memory::MemoryCounters`], the default, and what an
//! SQLite deployment's one process needs), or a table that every replica
//! on PostgreSQL shares (in `keyport-store`), so that N replicas give an
//! attacker the budget of one, not N times it.

use std::{sync::Arc, time::Duration};

use sha2::{Digest, Sha256};

use crate::{
    clock::Clock,
    email::Email,
    error::{Error, Result},
    observe,
    store::CounterStore,
};

pub mod budget;
pub mod failures;
pub mod memory;

use budget::{PublicAction, Rate};
use failures::{Attempt, Refusal, SignInLimits};

/// A counter's name: what it limits (`scope`, such as `sign_up`) and whom
/// (`subject`: an address, a network or an email; empty for callers whose
/// address is unknown, who share one).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CounterKey {
    scope: &'static str,
    subject: String,
}

impl CounterKey {
    /// The counter of `subject` in `scope`.
    pub fn new(scope: &'static str, subject: impl ToString) -> Self {
        Self { scope, subject: subject.to_string() }
    }

    /// What the counter limits.
    pub fn scope(&self) -> &'static str {
        self.scope
    }

    /// Whom it limits.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The scope's counter with no subject: where a full table in memory
    /// counts new subjects, so a flood from many addresses stays limited
    /// as a whole instead of growing memory.
    pub fn overflow(&self) -> Self {
        Self { scope: self.scope, subject: String::new() }
    }

    /// SHA-256 of the scope and subject: what a shared table stores, so it
    /// holds no addresses or emails and every key has one size.
    pub fn digest(&self) -> [u8; 32] {
        let mut hasher = Sha256::new();
        hasher.update(self.scope.as_bytes());
        hasher.update([0]);
        hasher.update(self.subject.as_bytes());
        hasher.finalize().into()
    }
}

/// The throttling rules over a [`CounterStore`]: what the use cases ask
/// before they do work a flood must not get for free.
#[derive(Clone)]
pub(crate) struct Throttle {
    counters: Arc<dyn CounterStore>,
    clock: Arc<dyn Clock>,
    requests: Rate,
    recipients: Rate,
    sign_ins: SignInLimits,
}

impl Throttle {
    /// Request budgets of `requests` and sign-in limits of `sign_ins`,
    /// counted in memory, with no cap on mails yet.
    pub(crate) fn new(clock: Arc<dyn Clock>, requests: Rate, sign_ins: SignInLimits) -> Self {
        let counters = Arc::new(memory::MemoryCounters::default());
        Self { counters, clock, requests, recipients: Rate::OFF, sign_ins }
    }

    /// The same rules, counted in `counters`.
    pub(crate) fn counted_in(self, counters: Arc<dyn CounterStore>) -> Self {
        Self { counters, ..self }
    }

    /// The same rules, with `recipients` capping the mails one address gets.
    pub(crate) fn capping_mail(self, recipients: Rate) -> Self {
        Self { recipients, ..self }
    }

    /// Takes one request of `action` from the budget of `address`, or
    /// refuses with [`Error::RateLimited`] saying when one will be free.
    pub(crate) async fn admit(&self, action: PublicAction, address: Option<&str>) -> Result<()> {
        self.take(budget::budget_key(action, address), self.requests).await
    }

    /// Takes one mail from `email`'s cap, or refuses with
    /// [`Error::RateLimited`].
    /// Takes one check of the API key `key_id` from its own budget of
    /// `per_minute` (a burst of as many), shared by every replica.
    pub(crate) async fn admit_key(&self, key_id: &str, per_minute: u32) -> Result<()> {
        self.take(CounterKey::new("api_key", key_id), Rate::per_minute(per_minute, per_minute)).await
    }

    pub(crate) async fn admit_mail_to(&self, email: &Email) -> Result<()> {
        self.take(CounterKey::new("mail_to", email.as_str()), self.recipients).await
    }

    async fn take(&self, key: CounterKey, rate: Rate) -> Result<()> {
        if rate.is_off() {
            return Ok(());
        }
        match self.counters.take_token(&key, rate, self.clock.now()).await? {
            Ok(()) => Ok(()),
            Err(retry_after) => {
                observe::rate_limited(key.scope());
                Err(Error::RateLimited { retry_after })
            }
        }
    }

    /// Reserves a password attempt for `account` and the address `ip`,
    /// atomically with the check: refused when either must still wait.
    pub(crate) async fn reserve_sign_in(
        &self,
        account: &str,
        ip: Option<&str>,
    ) -> Result<std::result::Result<Attempt, Refusal>> {
        let mut keys = vec![(failures::account_key(account), self.sign_ins.per_account)];
        if let Some(ip) = ip {
            keys.push((failures::address_key(ip), self.sign_ins.per_ip));
        }
        let reserved = self.counters.reserve_attempt(&keys, self.sign_ins.window, self.clock.now()).await?;
        if reserved.is_err() {
            observe::rate_limited("failed_sign_ins");
        }
        Ok(reserved)
    }

    /// Refunds a successful attempt. Only this attempt: earlier failures
    /// stay counted, so a user's sign-in in the middle of someone's
    /// guessing does not hand them a fresh window. A refund that fails is
    /// logged, not raised: the sign-in it follows has succeeded.
    pub(crate) async fn refund(&self, attempt: Attempt) {
        if let Err(error) = self.counters.refund_attempt(&attempt).await {
            tracing::warn!(%error, "a successful attempt stays counted: its refund failed");
        }
    }

    /// Deletes counters that have nothing left to limit.
    pub(crate) async fn sweep(&self) -> Result<u64> {
        Ok(self.counters.delete_idle_counters(self.clock.now(), self.idle_after()).await?)
    }

    /// How long a failure run lasts without attempts.
    fn idle_after(&self) -> Duration {
        self.sign_ins.window
    }
}

#[cfg(test)]
mod tests;
