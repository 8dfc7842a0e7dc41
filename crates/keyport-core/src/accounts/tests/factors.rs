//! Second factors through [`Accounts`], with the authenticator app played
//! by the test from the enrolled secret, on the manual clock: codes of
//! every step are made, not waited for.

use std::{sync::Arc, time::Duration};

use super::{Kit, PASSWORD, TestResult, kit, sign_up};
use crate::{
    Timestamp,
    accounts::{IssuedChallenge, SignedIn},
    audit::AuditKind,
    error::Error,
    oauth::OAuthOutcome,
    second_factor::{Assurance, FactorAnswer, TotpSecret, TotpStep},
    session::{Principal, SessionGrant},
};

const EMAIL: &str = "ann@example.com";
const STEP: Duration = Duration::from_secs(30);

/// A user with the app on, as the test's "phone" sees it.
struct Enrolled {
    secret: TotpSecret,
    backup_codes: Vec<String>,
    caller: Principal,
}

impl Kit {
    fn now(&self) -> Timestamp {
        self.accounts.now()
    }

    fn code(&self, secret: &TotpSecret, offset: i64) -> String {
        secret.code_at(TotpStep(TotpStep::at(self.now()).0 + offset)).unwrap_or_default()
    }

    async fn principal(&self, grant: &SessionGrant) -> Result<Principal, Error> {
        self.accounts.authenticate(&grant.token).await
    }

    async fn challenge(&self) -> Result<IssuedChallenge, Box<dyn std::error::Error>> {
        match self.accounts.sign_in(EMAIL, PASSWORD, &self.client).await? {
            SignedIn::Challenge(challenge) => Ok(challenge),
            SignedIn::Session(_) => Err("a user with a second factor got a session".into()),
        }
    }

    async fn complete(&self, challenge: &IssuedChallenge, answer: FactorAnswer<'_>) -> Result<SessionGrant, Error> {
        Ok(self.accounts.complete_sign_in(&challenge.challenge, answer, &self.client).await?.grant)
    }

    /// Signs Ann up and turns her app on with the code of the current step.
    async fn enrolled(&self) -> Result<Enrolled, Box<dyn std::error::Error>> {
        let grant = sign_up(self, EMAIL, PASSWORD, "Ann").await?;
        let caller = self.principal(&grant).await?;
        let enrollment = self.accounts.enroll_totp(&caller).await?;
        assert!(enrollment.otpauth_uri.starts_with("otpauth://totp/Keyport:ann%40example.com?"));
        assert!(enrollment.qr_code_svg.starts_with("<?xml") && enrollment.qr_code_svg.contains("<svg"));
        let secret = TotpSecret::from_base32(&enrollment.secret).ok_or("the secret is not base32")?;
        let (backup_codes, session) = self.accounts.confirm_totp(&caller, &self.code(&secret, 0), &self.client).await?;
        assert_eq!(session.assurance, Assurance::Aal2);
        let caller = self.principal(&grant).await?;
        assert!(caller.user.two_factor_enabled);
        assert_eq!(caller.session.assurance, Assurance::Aal2, "the confirming session passed the factor");
        Ok(Enrolled { secret, backup_codes, caller })
    }
}

fn is<T: std::fmt::Debug>(result: Result<T, Error>, expected: fn(&Error) -> bool) -> bool {
    match result {
        Err(error) => expected(&error),
        Ok(value) => panic!("expected an error, got {value:?}"),
    }
}

#[tokio::test]
async fn every_first_factor_of_a_user_with_an_app_answers_a_challenge() -> TestResult {
    let kit = kit()?;
    let enrolled = kit.enrolled().await?;
    let challenge = kit.challenge().await?;
    assert!(challenge.challenge.starts_with("kpc_"));
    assert_eq!(challenge.expires_at, kit.now().saturating_add(Duration::from_secs(300)));

    // The provider's identity has Ann's verified address: linked, then challenged.
    let caller = &enrolled.caller;
    let flow = kit.accounts.start_oauth("idp", super::REDIRECT_URI, Some(caller), &kit.client).await?;
    kit.accounts.finish_oauth(&kit.callback(&flow), &kit.client).await?;
    let flow = kit.accounts.start_oauth("idp", super::REDIRECT_URI, None, &kit.client).await?;
    let outcome = kit.accounts.finish_oauth(&kit.callback(&flow), &kit.client).await?;
    assert!(matches!(outcome, OAuthOutcome::Challenged(_)), "{outcome:?}");
    assert_eq!(kit.audited(AuditKind::SignInChallenged)?, 2);
    Ok(())
}

#[tokio::test]
async fn a_code_works_once_and_no_earlier_step_after_it() -> TestResult {
    let kit = kit()?;
    let enrolled = kit.enrolled().await?;
    let secret = &enrolled.secret;
    let challenge = kit.challenge().await?;
    // The confirmation used this step's code.
    let same_step = kit.code(secret, 0);
    assert!(is(kit.complete(&challenge, FactorAnswer::Totp(&same_step)).await, |e| matches!(
        e,
        Error::SecondFactorInvalid
    )));

    kit.clock.advance(STEP);
    let next = kit.code(secret, 1);
    let grant = kit.complete(&challenge, FactorAnswer::Totp(&next)).await?;
    assert_eq!(grant.session.assurance, Assurance::Aal2);
    assert_eq!(grant.session.authenticated_at, kit.now());

    // Replays: the used step, the current one (earlier than the used next
    // one), the previous one; and the spent challenge.
    let again = kit.challenge().await?;
    for (what, code) in [("used", next.clone()), ("current", kit.code(secret, 0)), ("previous", kit.code(secret, -1))] {
        let result = kit.complete(&again, FactorAnswer::Totp(&code)).await;
        assert!(is(result, |e| matches!(e, Error::SecondFactorInvalid)), "{what}");
    }
    let replay = kit.complete(&challenge, FactorAnswer::Totp(&kit.code(secret, 2))).await;
    assert!(is(replay, |e| matches!(e, Error::SignInChallengeInvalid)), "a challenge works once");
    Ok(())
}

#[tokio::test]
async fn wrong_answers_use_up_the_challenge_and_it_expires() -> TestResult {
    let kit = kit()?;
    let enrolled = kit.enrolled().await?;
    kit.clock.advance(STEP);
    let challenge = kit.challenge().await?;
    for bad in ["000000", "", "12345", "abcdef", "0000000"] {
        let result = kit.complete(&challenge, FactorAnswer::Totp(bad)).await;
        assert!(is(result, |e| matches!(e, Error::SecondFactorInvalid)), "{bad:?}");
    }
    let right = kit.code(&enrolled.secret, 0);
    let result = kit.complete(&challenge, FactorAnswer::Totp(&right)).await;
    assert!(is(result, |e| matches!(e, Error::SignInChallengeInvalid)), "five answers and it is void");
    assert_eq!(kit.audited(AuditKind::SecondFactorFailed)?, 5);

    let late = kit.challenge().await?;
    kit.clock.advance(Duration::from_secs(301));
    let result = kit.complete(&late, FactorAnswer::Totp(&kit.code(&enrolled.secret, 0))).await;
    assert!(is(result, |e| matches!(e, Error::SignInChallengeInvalid)), "expired");
    for bad in ["", "kpc_", "kpc_AAAA", &"x".repeat(10_000), &late.challenge.replace("kpc_", "kpm_")] {
        let result =
            kit.complete(&IssuedChallenge { challenge: bad.into(), ..late_copy(&late) }, FactorAnswer::Totp("1")).await;
        assert!(is(result, |e| matches!(e, Error::SignInChallengeInvalid)), "{bad:?}");
    }
    Ok(())
}

fn late_copy(challenge: &IssuedChallenge) -> IssuedChallenge {
    IssuedChallenge {
        challenge: challenge.challenge.clone(),
        factors: challenge.factors.clone(),
        expires_at: challenge.expires_at,
        passkey_options: challenge.passkey_options.clone(),
    }
}

#[tokio::test]
async fn backup_codes_work_once_and_regenerating_voids_the_old_set() -> TestResult {
    let kit = kit()?;
    let enrolled = kit.enrolled().await?;
    assert_eq!(enrolled.backup_codes.len(), 10);
    let first = &enrolled.backup_codes[0];
    let completed = kit
        .accounts
        .complete_sign_in(
            &kit.challenge().await?.challenge,
            FactorAnswer::BackupCode(&first.to_uppercase()),
            &kit.client,
        )
        .await?;
    assert_eq!(completed.backup_codes_left, 9);
    let reused = kit.complete(&kit.challenge().await?, FactorAnswer::BackupCode(first)).await;
    assert!(is(reused, |e| matches!(e, Error::SecondFactorInvalid)));

    let fresh = kit.principal(&completed.grant).await?;
    let new_set = kit.accounts.regenerate_backup_codes(&fresh, &kit.client).await?;
    assert_eq!(kit.accounts.list_factors(&fresh).await?.backup_codes_left, 10);
    let old = kit.complete(&kit.challenge().await?, FactorAnswer::BackupCode(&enrolled.backup_codes[1])).await;
    assert!(is(old, |e| matches!(e, Error::SecondFactorInvalid)), "the old set is void");
    kit.complete(&kit.challenge().await?, FactorAnswer::BackupCode(&new_set[0])).await?;
    Ok(())
}

#[tokio::test]
async fn sensitive_calls_need_a_recent_second_factor() -> TestResult {
    let kit = kit()?;
    let enrolled = kit.enrolled().await?;
    // The confirming session passed the factor, 10 minutes ago.
    kit.clock.advance(Duration::from_secs(601));
    let stale = &enrolled.caller;
    for (name, result) in [
        (
            "change_password",
            kit.accounts.change_password(stale, PASSWORD, "a new passphrase", &kit.client).await.map(drop),
        ),
        ("delete_current_user", kit.accounts.delete_current_user(stale, PASSWORD, &kit.client).await),
        ("disable_totp", kit.accounts.disable_totp(stale, &kit.client).await.map(drop)),
        ("regenerate_backup_codes", kit.accounts.regenerate_backup_codes(stale, &kit.client).await.map(drop)),
    ] {
        assert!(is(result, |e| matches!(e, Error::StepUpRequired)), "{name}: 10 minutes after the factor");
    }
    let enroll = kit.accounts.enroll_totp(stale).await;
    assert!(is(enroll, |e| matches!(e, Error::ReauthenticationRequired)), "enrolling needs a recent sign-in");

    kit.clock.advance(STEP);
    let session = kit.accounts.step_up(stale, FactorAnswer::Totp(&kit.code(&enrolled.secret, 0)), &kit.client).await?;
    assert_eq!(session.authenticated_at, kit.now());
    let stepped = Principal { session, ..stale.clone() };
    assert_eq!(kit.accounts.change_password(&stepped, PASSWORD, "a new passphrase", &kit.client).await?, 0);
    Ok(())
}

#[tokio::test]
async fn an_aal1_session_of_a_user_with_an_app_must_step_up() -> TestResult {
    let kit = kit()?;
    let enrolled = kit.enrolled().await?;
    let grant = sign_up(&kit, "bob@example.com", PASSWORD, "Bob").await?;
    let bob = kit.principal(&grant).await?;
    // Bob has no app: nothing to step up to, and his calls pass.
    assert!(is(kit.accounts.step_up(&bob, FactorAnswer::Totp("123456"), &kit.client).await, |e| matches!(
        e,
        Error::SecondFactorNotEnrolled
    )));
    assert!(is(kit.accounts.disable_totp(&bob, &kit.client).await, |e| matches!(e, Error::SecondFactorNotEnrolled)));
    assert!(is(kit.accounts.confirm_totp(&bob, "123456", &kit.client).await, |e| matches!(
        e,
        Error::SecondFactorNotEnrolled
    )));

    // Ann's AAL1 session, as a session from before the factor would be.
    let aal1 = Principal {
        session: crate::session::Session { assurance: Assurance::Aal1, ..enrolled.caller.session.clone() },
        ..enrolled.caller.clone()
    };
    assert!(is(kit.accounts.change_password(&aal1, PASSWORD, "a new passphrase", &kit.client).await, |e| matches!(
        e,
        Error::StepUpRequired
    )));
    assert!(is(kit.accounts.enroll_totp(&enrolled.caller).await, |e| matches!(e, Error::SecondFactorAlreadyEnrolled)));
    Ok(())
}

#[tokio::test]
async fn turning_the_app_off_ends_other_sessions_and_sign_in_needs_no_factor_again() -> TestResult {
    let kit = kit()?;
    let enrolled = kit.enrolled().await?;
    kit.clock.advance(STEP);
    let other = kit.complete(&kit.challenge().await?, FactorAnswer::Totp(&kit.code(&enrolled.secret, 0))).await?;
    let ended = kit.accounts.disable_totp(&enrolled.caller, &kit.client).await?;
    assert_eq!(ended, 1);
    assert!(kit.principal(&other).await.is_err(), "the other session ended");
    let signed_in = kit.accounts.sign_in(EMAIL, PASSWORD, &kit.client).await?;
    assert!(matches!(signed_in, SignedIn::Session(_)));
    assert_eq!(kit.accounts.list_factors(&enrolled.caller).await?.backup_codes_left, 0);
    assert_eq!(kit.audited(AuditKind::TotpDisabled)?, 1);
    Ok(())
}

#[tokio::test]
async fn of_parallel_completions_with_one_code_exactly_one_signs_in() -> TestResult {
    let kit = Arc::new(kit()?);
    let enrolled = kit.enrolled().await?;
    kit.clock.advance(STEP);
    let code = kit.code(&enrolled.secret, 0);
    // One challenge and one code, and separate challenges sharing the code.
    let challenge = Arc::new(kit.challenge().await?);
    let mut others = Vec::new();
    for _ in 0..4 {
        others.push(Arc::new(kit.challenge().await?));
    }
    let barrier = Arc::new(tokio::sync::Barrier::new(8));
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (kit, barrier, code) = (kit.clone(), barrier.clone(), code.clone());
        let challenge = if i < 4 { challenge.clone() } else { others[i - 4].clone() };
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            kit.complete(&challenge, FactorAnswer::Totp(&code)).await.is_ok()
        }));
    }
    let mut won = 0;
    for task in tasks {
        won += usize::from(task.await?);
    }
    assert_eq!(won, 1, "one code, one session");
    Ok(())
}

#[tokio::test]
async fn a_password_change_voids_pending_challenges() -> TestResult {
    let kit = kit()?;
    let enrolled = kit.enrolled().await?;
    let challenge = kit.challenge().await?;
    kit.accounts.change_password(&enrolled.caller, PASSWORD, "a new passphrase", &kit.client).await?;
    kit.clock.advance(STEP);
    let result = kit.complete(&challenge, FactorAnswer::Totp(&kit.code(&enrolled.secret, 0))).await;
    assert!(is(result, |e| matches!(e, Error::SignInChallengeInvalid)));
    Ok(())
}
