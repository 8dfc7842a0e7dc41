//! The throttling rules, counted in memory. The same scenarios run against
//! the shared PostgreSQL table in `tests/e2e/counters.rs`.

use std::sync::Arc;

use super::*;
use crate::clock::ManualClock;

fn throttle(requests: Rate) -> (Throttle, Arc<ManualClock>) {
    let clock = Arc::new(ManualClock::starting_now());
    let limits = SignInLimits { per_account: 3, per_ip: 5, window: Duration::from_secs(60) };
    (Throttle::new(clock.clone(), requests, limits), clock)
}

async fn reserve(throttle: &Throttle, account: &str, ip: Option<&str>) -> std::result::Result<Attempt, Refusal> {
    throttle.reserve_sign_in(account, ip).await.unwrap()
}

fn retry_after(result: Result<()>) -> Option<Duration> {
    match result {
        Err(Error::RateLimited { retry_after }) => Some(retry_after),
        _ => None,
    }
}

#[tokio::test]
async fn past_its_free_failures_an_account_waits_a_doubling_delay() {
    let (throttle, clock) = throttle(Rate::OFF);
    for _ in 0..3 {
        let _failed = reserve(&throttle, "a@b.co", None).await.unwrap();
    }
    assert!(reserve(&throttle, "other@b.co", None).await.is_ok());
    // 1 s, then 2 s, 4 s, ... after each further failure.
    for delay in [1, 2, 4, 8, 16, 32] {
        let refusal = reserve(&throttle, "a@b.co", None).await.unwrap_err();
        assert_eq!(refusal.retry_after, Duration::from_secs(delay));
        clock.advance(Duration::from_secs(delay) - Duration::from_millis(1));
        assert!(reserve(&throttle, "a@b.co", None).await.is_err(), "not before {delay} s");
        clock.advance(Duration::from_millis(1));
        let _failed = reserve(&throttle, "a@b.co", None).await.unwrap();
    }
    // Capped at the window (60 s here), never a lock.
    assert_eq!(reserve(&throttle, "a@b.co", None).await.unwrap_err().retry_after, Duration::from_secs(60));
    clock.advance(Duration::from_secs(60));
    let _failed = reserve(&throttle, "a@b.co", None).await.unwrap();
    // A window without attempts forgets the failures.
    clock.advance(Duration::from_secs(60));
    for _ in 0..3 {
        let _failed = reserve(&throttle, "a@b.co", None).await.unwrap();
    }
}

#[tokio::test]
async fn an_ipv6_network_is_one_address() {
    let (throttle, _) = throttle(Rate::OFF);
    for i in 0..5 {
        let _failed = reserve(&throttle, &format!("user{i}@b.co"), Some(&format!("2001:db8:1:2::{i}"))).await.unwrap();
    }
    assert!(reserve(&throttle, "fresh@b.co", Some("2001:db8:1:2:ffff::1")).await.is_err());
    assert!(reserve(&throttle, "fresh@b.co", Some("2001:db8:1:3::1")).await.is_ok());
}

#[tokio::test]
async fn an_address_is_limited_across_accounts() {
    let (throttle, _) = throttle(Rate::OFF);
    for i in 0..5 {
        let _failed = reserve(&throttle, &format!("user{i}@b.co"), Some("10.0.0.1")).await.unwrap();
    }
    assert!(reserve(&throttle, "fresh@b.co", Some("10.0.0.1")).await.is_err());
    assert!(reserve(&throttle, "fresh@b.co", Some("10.0.0.2")).await.is_ok());
}

#[tokio::test]
async fn success_refunds_only_its_own_attempt() {
    let (throttle, _) = throttle(Rate::OFF);
    for _ in 0..2 {
        let _failed = reserve(&throttle, "a@b.co", Some("10.0.0.1")).await.unwrap();
    }
    for _ in 0..5 {
        let attempt = reserve(&throttle, "a@b.co", Some("10.0.0.1")).await.unwrap();
        throttle.refund(attempt).await;
    }
    // The two failures still count: one more reaches the limit of 3.
    let _failed = reserve(&throttle, "a@b.co", Some("10.0.0.1")).await.unwrap();
    assert!(reserve(&throttle, "a@b.co", Some("10.0.0.1")).await.is_err());
    // The address has 3 failures of its 5.
    let _failed = reserve(&throttle, "z@b.co", Some("10.0.0.1")).await.unwrap();
    let _failed = reserve(&throttle, "y@b.co", Some("10.0.0.1")).await.unwrap();
    assert!(reserve(&throttle, "x@b.co", Some("10.0.0.1")).await.is_err());
}

#[tokio::test]
async fn a_refund_after_the_run_started_afresh_is_ignored() {
    let (throttle, clock) = throttle(Rate::OFF);
    let early = reserve(&throttle, "a@b.co", None).await.unwrap();
    clock.advance(Duration::from_secs(60));
    for _ in 0..3 {
        let _failed = reserve(&throttle, "a@b.co", None).await.unwrap();
    }
    throttle.refund(early).await;
    assert!(reserve(&throttle, "a@b.co", None).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_parallel_attempts_gets_exactly_the_limit() {
    let (throttle, _) = throttle(Rate::OFF);
    let barrier = Arc::new(tokio::sync::Barrier::new(32));
    let callers: Vec<_> = (0..32)
        .map(|_| {
            let (throttle, barrier) = (throttle.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                throttle.reserve_sign_in("a@b.co", None).await.unwrap().is_ok()
            })
        })
        .collect();
    let mut admitted = 0;
    for caller in callers {
        admitted += usize::from(caller.await.unwrap());
    }
    assert_eq!(admitted, 3);
}

#[tokio::test]
async fn refusals_are_counted_and_milestones_are_sparse() {
    let (throttle, _) = throttle(Rate::OFF);
    for _ in 0..3 {
        let _failed = reserve(&throttle, "a@b.co", None).await.unwrap();
    }
    let mut milestones = Vec::new();
    for _ in 0..1000 {
        if let Err(refusal) = reserve(&throttle, "a@b.co", None).await
            && refusal.is_milestone()
        {
            milestones.push(refusal.refused);
        }
    }
    assert_eq!(milestones, [1, 10, 100, 1000]);
}

#[tokio::test]
async fn request_budgets_are_per_action_and_address() {
    let (throttle, clock) = throttle(Rate::per_minute(2, 60));
    for _ in 0..2 {
        throttle.admit(PublicAction::SignUp, Some("203.0.113.7")).await.unwrap();
    }
    assert_eq!(
        retry_after(throttle.admit(PublicAction::SignUp, Some("203.0.113.7")).await),
        Some(Duration::from_secs(1))
    );
    throttle.admit(PublicAction::SignIn, Some("203.0.113.7")).await.unwrap();
    throttle.admit(PublicAction::SignUp, Some("203.0.113.8")).await.unwrap();
    clock.advance(Duration::from_secs(1));
    throttle.admit(PublicAction::SignUp, Some("203.0.113.7")).await.unwrap();
}

#[tokio::test]
async fn zero_turns_the_budgets_off() {
    let (throttle, _) = throttle(Rate::per_minute(0, 60));
    for _ in 0..1_000 {
        throttle.admit(PublicAction::SignUp, Some("203.0.113.7")).await.unwrap();
    }
}

#[tokio::test]
async fn mail_is_capped_per_recipient_once_a_cap_is_set() {
    let (throttle, _) = throttle(Rate::OFF);
    let email = Email::parse("email", "a@b.co").unwrap();
    for _ in 0..10 {
        throttle.admit_mail_to(&email).await.unwrap();
    }
    let throttle = throttle.capping_mail(Rate { burst: 2, interval: Duration::from_secs(600) });
    for _ in 0..2 {
        throttle.admit_mail_to(&email).await.unwrap();
    }
    assert_eq!(retry_after(throttle.admit_mail_to(&email).await), Some(Duration::from_secs(600)));
}

#[tokio::test]
async fn the_sweep_deletes_only_what_limits_nothing() {
    let (throttle, clock) = throttle(Rate::per_minute(1, 1));
    throttle.admit(PublicAction::SignUp, Some("203.0.113.7")).await.unwrap();
    let _failed = reserve(&throttle, "a@b.co", None).await.unwrap();
    assert_eq!(throttle.sweep().await.unwrap(), 0);
    clock.advance(Duration::from_secs(60));
    assert_eq!(throttle.sweep().await.unwrap(), 2);
}
