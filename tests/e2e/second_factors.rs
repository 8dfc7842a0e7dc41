//! `TwoFactorService` and `CompleteSignIn`: an authenticator app (TOTP) and
//! backup codes, through the real server on both stores. The test plays the
//! app from the enrolled secret, at the server's manual clock: codes of any
//! step are computed, never waited for.

use std::{sync::Arc, time::Duration};

use keyport_core::{
    Clock,
    second_factor::{FactorKey, TotpSecret, TotpStep},
};
use keyport_proto::v1::{
    AssuranceLevel, ChangePasswordRequest, CompleteSignInRequest, ConfirmTotpRequest, DeleteCurrentUserRequest,
    DisableTotpRequest, EnrollTotpRequest, GetCurrentUserRequest, GetSessionRequest, ListFactorsRequest,
    RegenerateBackupCodesRequest, SecondFactor, SignInChallenge, SignInRequest, StepUpRequest,
    complete_sign_in_request::Answer, sign_in_response::Outcome, step_up_request,
    two_factor_service_client::TwoFactorServiceClient,
};
use keyport_tests::{
    Backend, TestServer,
    grpc::{authed, reason},
    server::PASSWORD,
};
use tokio::sync::Barrier;
use tonic::{Code, Status, transport::Channel};

use crate::{TestResult, on_both_backends};

on_both_backends!(
    signs_in_only_past_the_factor_once_enrolled,
    codes_work_once_and_no_earlier_step_after_them,
    backup_codes_work_once_and_regenerating_voids_them,
    sensitive_calls_need_a_recent_second_factor,
    bad_input_gets_stable_reasons,
    of_parallel_completions_with_one_code_one_signs_in,
    another_replica_opens_the_secret_and_honours_the_factor,
    turning_the_app_off_ends_other_sessions,
    a_completion_cancelled_mid_flight_uses_up_all_or_nothing,
    a_rotated_key_opens_old_secrets_and_seals_them_again,
    the_mailbox_is_a_first_factor_and_mail_calls_need_a_recent_second,
    parallel_confirmations_and_step_ups_with_one_code_succeed_once,
);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const STEP: Duration = Duration::from_secs(30);

fn factors(server: &TestServer) -> TwoFactorServiceClient<Channel> {
    TwoFactorServiceClient::new(server.channel())
}

/// A user with the app on, and what the phone and the printed sheet hold.
pub(crate) struct Enrolled {
    pub(crate) email: String,
    pub(crate) token: String,
    secret: TotpSecret,
    pub(crate) backup_codes: Vec<String>,
}

impl Enrolled {
    /// The app's code `offset` steps from `server`'s now.
    pub(crate) fn code(&self, server: &TestServer, offset: i64) -> String {
        let step = TotpStep(TotpStep::at(server.clock.now()).0 + offset);
        self.secret.code_at(step).unwrap_or_default()
    }
}

pub(crate) async fn enrolled(server: &TestServer, email: &str) -> Result<Enrolled, BoxError> {
    let token = server.sign_up(email).await?;
    let started = factors(server).enroll_totp(authed(EnrollTotpRequest {}, &token)).await?.into_inner();
    assert!(started.otpauth_uri.starts_with("otpauth://totp/Keyport:"), "{}", started.otpauth_uri);
    let svg = String::from_utf8(started.qr_code_svg)?;
    assert!(svg.contains("<svg"), "a QR code image: {svg:.80}");
    let secret = TotpSecret::from_base32(&started.secret).ok_or("the secret is not base32")?;
    // Sealed at rest: the secret appears nowhere in the table.
    let in_clear = format!("SELECT COUNT(*) FROM totp_factors WHERE sealed_secret LIKE '%{}%'", started.secret);
    assert_eq!(server.scalar(&in_clear).await?, 0);
    let enrolled = Enrolled { email: email.to_owned(), token, secret, backup_codes: Vec::new() };
    let confirm = ConfirmTotpRequest { code: enrolled.code(server, 0) };
    let confirmed = factors(server).confirm_totp(authed(confirm, &enrolled.token)).await?.into_inner();
    let session = confirmed.session.ok_or("no session")?;
    assert_eq!(session.assurance_level(), AssuranceLevel::Aal2, "the confirming session passed the factor");
    Ok(Enrolled { backup_codes: confirmed.backup_codes, ..enrolled })
}

pub(crate) async fn challenge(server: &TestServer, email: &str) -> Result<SignInChallenge, BoxError> {
    let request = SignInRequest { email: email.into(), password: PASSWORD.into() };
    match server.sessions().sign_in(request).await?.into_inner().outcome {
        Some(Outcome::Challenge(challenge)) => Ok(challenge),
        Some(Outcome::Session(_)) => Err("a user with a second factor got a session".into()),
        None => Err("no outcome".into()),
    }
}

pub(crate) async fn complete(server: &TestServer, challenge: &str, answer: Answer) -> Result<String, Status> {
    let request = CompleteSignInRequest { challenge: challenge.into(), answer: Some(answer) };
    let response = server.sessions().complete_sign_in(request).await?.into_inner();
    Ok(response.session.map(|grant| grant.token).unwrap_or_default())
}

fn refused<T: std::fmt::Debug>(result: Result<T, Status>, code: Code, expected: &str, what: &str) {
    match result {
        Err(status) => {
            assert_eq!(status.code(), code, "{what}: {status:?}");
            assert_eq!(reason(&status), expected, "{what}: {status:?}");
        }
        Ok(value) => panic!("{what}: expected {expected}, got {value:?}"),
    }
}

async fn signs_in_only_past_the_factor_once_enrolled(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let ada = enrolled(&server, "ada@example.com").await?;
    assert_eq!(ada.backup_codes.len(), 10);
    let me = server.users().get_current_user(authed(GetCurrentUserRequest {}, &ada.token)).await?.into_inner();
    assert!(me.user.ok_or("no user")?.two_factor_enabled);
    let listed = factors(&server).list_factors(authed(ListFactorsRequest {}, &ada.token)).await?.into_inner();
    assert!(listed.totp_enabled && listed.totp_enabled_at.is_some());
    assert_eq!(listed.backup_codes_left, 10);

    let sessions_before = server.count("sessions").await?;
    let challenge = challenge(&server, &ada.email).await?;
    assert!(challenge.challenge.starts_with("kpc_"));
    assert_eq!(challenge.factors, [i32::from(SecondFactor::Totp), i32::from(SecondFactor::BackupCode)]);
    assert_eq!(server.count("sessions").await?, sessions_before, "a password alone creates no session");

    server.clock.advance(STEP);
    let token = complete(&server, &challenge.challenge, Answer::TotpCode(ada.code(&server, 0))).await?;
    let session = server.sessions().get_session(GetSessionRequest { token }).await?.into_inner();
    let session = session.session.ok_or("no session")?;
    assert_eq!(session.assurance_level(), AssuranceLevel::Aal2);
    assert_eq!(session.authenticated_at.map(|t| t.seconds), Some(server.clock.now().unix_millis() / 1000));
    Ok(())
}

async fn codes_work_once_and_no_earlier_step_after_them(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let ada = enrolled(&server, "ada@example.com").await?;
    let first = challenge(&server, &ada.email).await?;
    let used_by_confirmation = ada.code(&server, 0);
    let result = complete(&server, &first.challenge, Answer::TotpCode(used_by_confirmation)).await;
    refused(result, Code::Unauthenticated, "SECOND_FACTOR_INVALID", "the confirmation's code");

    // One step of drift ahead is accepted; after it, the current and the
    // previous steps' codes are earlier steps.
    let ahead = ada.code(&server, 1);
    complete(&server, &first.challenge, Answer::TotpCode(ahead.clone())).await?;
    let second = challenge(&server, &ada.email).await?;
    for (what, code) in [("reused", ahead), ("current", ada.code(&server, 0)), ("previous", ada.code(&server, -1))] {
        let result = complete(&server, &second.challenge, Answer::TotpCode(code)).await;
        refused(result, Code::Unauthenticated, "SECOND_FACTOR_INVALID", what);
    }
    let far = ada.code(&server, 5);
    let result = complete(&server, &second.challenge, Answer::TotpCode(far)).await;
    refused(result, Code::Unauthenticated, "SECOND_FACTOR_INVALID", "five steps ahead");
    // Four wrong answers so far, one left; then the challenge is spent.
    server.clock.advance(2 * STEP);
    complete(&server, &second.challenge, Answer::TotpCode(ada.code(&server, 0))).await?;
    let replay = complete(&server, &first.challenge, Answer::TotpCode(ada.code(&server, 1))).await;
    refused(replay, Code::InvalidArgument, "SIGN_IN_CHALLENGE_INVALID", "a used challenge");

    let late = challenge(&server, &ada.email).await?;
    server.clock.advance(Duration::from_secs(301));
    let expired = complete(&server, &late.challenge, Answer::TotpCode(ada.code(&server, 0))).await;
    refused(expired, Code::InvalidArgument, "SIGN_IN_CHALLENGE_INVALID", "an expired challenge");
    Ok(())
}

async fn backup_codes_work_once_and_regenerating_voids_them(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let ada = enrolled(&server, "ada@example.com").await?;
    let code = ada.backup_codes[0].to_uppercase().replace('-', " ");
    let request = CompleteSignInRequest {
        challenge: challenge(&server, &ada.email).await?.challenge,
        answer: Some(Answer::BackupCode(code.clone())),
    };
    let completed = server.sessions().complete_sign_in(request).await?.into_inner();
    assert_eq!(completed.backup_codes_left, 9);
    let token = completed.session.ok_or("no session")?.token;
    let again = complete(&server, &challenge(&server, &ada.email).await?.challenge, Answer::BackupCode(code)).await;
    refused(again, Code::Unauthenticated, "SECOND_FACTOR_INVALID", "a used backup code");

    let fresh = factors(&server).regenerate_backup_codes(authed(RegenerateBackupCodesRequest {}, &token)).await?;
    let fresh = fresh.into_inner().backup_codes;
    assert_eq!(fresh.len(), 10);
    let old = Answer::BackupCode(ada.backup_codes[1].clone());
    let old = complete(&server, &challenge(&server, &ada.email).await?.challenge, old).await;
    refused(old, Code::Unauthenticated, "SECOND_FACTOR_INVALID", "a code of the old set");
    complete(&server, &challenge(&server, &ada.email).await?.challenge, Answer::BackupCode(fresh[0].clone())).await?;
    Ok(())
}

async fn sensitive_calls_need_a_recent_second_factor(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let ada = enrolled(&server, "ada@example.com").await?;
    server.clock.advance(Duration::from_secs(601));
    let token = &ada.token;
    let (users, mut two) = (server.users(), factors(&server));
    let change =
        || ChangePasswordRequest { current_password: PASSWORD.into(), new_password: "a new passphrase".into() };
    refused(
        users.clone().change_password(authed(change(), token)).await,
        Code::FailedPrecondition,
        "STEP_UP_REQUIRED",
        "ChangePassword",
    );
    let delete = DeleteCurrentUserRequest { password: PASSWORD.into() };
    refused(
        users.clone().delete_current_user(authed(delete, token)).await,
        Code::FailedPrecondition,
        "STEP_UP_REQUIRED",
        "DeleteCurrentUser",
    );
    refused(
        two.disable_totp(authed(DisableTotpRequest {}, token)).await,
        Code::FailedPrecondition,
        "STEP_UP_REQUIRED",
        "DisableTotp",
    );
    let regenerate = two.regenerate_backup_codes(authed(RegenerateBackupCodesRequest {}, token)).await;
    refused(regenerate, Code::FailedPrecondition, "STEP_UP_REQUIRED", "RegenerateBackupCodes");
    let enroll = two.enroll_totp(authed(EnrollTotpRequest {}, token)).await;
    refused(enroll, Code::FailedPrecondition, "REAUTHENTICATION_REQUIRED", "EnrollTotp on an old sign-in");

    let wrong = StepUpRequest { answer: Some(step_up_request::Answer::TotpCode("000000".into())) };
    refused(two.step_up(authed(wrong, token)).await, Code::Unauthenticated, "SECOND_FACTOR_INVALID", "a wrong step-up");
    let right = StepUpRequest { answer: Some(step_up_request::Answer::BackupCode(ada.backup_codes[3].clone())) };
    let stepped = two.step_up(authed(right, token)).await?.into_inner().session.ok_or("no session")?;
    assert_eq!(stepped.assurance_level(), AssuranceLevel::Aal2);
    users.clone().change_password(authed(change(), token)).await?;
    Ok(())
}

async fn bad_input_gets_stable_reasons(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let bob = server.sign_up("bob@example.com").await?;
    let mut two = factors(&server);
    // Without an app.
    let confirm = two.confirm_totp(authed(ConfirmTotpRequest { code: "123456".into() }, &bob)).await;
    refused(confirm, Code::FailedPrecondition, "SECOND_FACTOR_NOT_ENROLLED", "ConfirmTotp before EnrollTotp");
    let step_up = StepUpRequest { answer: Some(step_up_request::Answer::TotpCode("123456".into())) };
    refused(two.step_up(authed(step_up, &bob)).await, Code::FailedPrecondition, "SECOND_FACTOR_NOT_ENROLLED", "StepUp");
    let disable = two.disable_totp(authed(DisableTotpRequest {}, &bob)).await;
    refused(disable, Code::FailedPrecondition, "SECOND_FACTOR_NOT_ENROLLED", "DisableTotp");
    // No credential, a made-up one.
    refused(two.enroll_totp(EnrollTotpRequest {}).await, Code::Unauthenticated, "UNAUTHENTICATED", "no token");
    let fake = two.list_factors(authed(ListFactorsRequest {}, "kp_nope")).await;
    refused(fake, Code::Unauthenticated, "UNAUTHENTICATED", "a made-up token");

    let ada = enrolled(&server, "ada@example.com").await?;
    let again = two.enroll_totp(authed(EnrollTotpRequest {}, &ada.token)).await;
    refused(again, Code::AlreadyExists, "SECOND_FACTOR_ALREADY_ENROLLED", "EnrollTotp twice");
    let live = challenge(&server, &ada.email).await?;
    let oversized = "9".repeat(60_000);
    for (what, challenge) in [
        ("empty", String::new()),
        ("malformed", "kpc_nope".to_owned()),
        ("another kind", live.challenge.replace("kpc_", "kpm_")),
        ("oversized", format!("kpc_{oversized}")),
        ("unknown", format!("kpc_{}", "A".repeat(43))),
    ] {
        let result = complete(&server, &challenge, Answer::TotpCode(ada.code(&server, 0))).await;
        refused(result, Code::InvalidArgument, "SIGN_IN_CHALLENGE_INVALID", what);
    }
    for (what, answer) in [
        ("no answer", None),
        ("empty code", Some(Answer::TotpCode(String::new()))),
        ("letters", Some(Answer::TotpCode("abcdef".into()))),
        ("oversized code", Some(Answer::TotpCode(oversized.clone()))),
        ("oversized backup code", Some(Answer::BackupCode(oversized.clone()))),
    ] {
        let request = CompleteSignInRequest { challenge: live.challenge.clone(), answer };
        let result = server.sessions().complete_sign_in(request).await;
        refused(result, Code::Unauthenticated, "SECOND_FACTOR_INVALID", what);
    }
    Ok(())
}

async fn of_parallel_completions_with_one_code_one_signs_in(backend: Backend) -> TestResult {
    let server = Arc::new(TestServer::start(backend).await?);
    let ada = enrolled(&server, "ada@example.com").await?;
    server.clock.advance(STEP);
    let code = ada.code(&server, 0);
    // Four callers share a challenge, four more have their own: one code.
    let shared = challenge(&server, &ada.email).await?.challenge;
    let mut challenges = vec![shared; 4];
    for _ in 0..4 {
        challenges.push(challenge(&server, &ada.email).await?.challenge);
    }
    let barrier = Arc::new(Barrier::new(challenges.len()));
    let tasks: Vec<_> = challenges
        .into_iter()
        .map(|challenge| {
            let (server, barrier, code) = (server.clone(), barrier.clone(), code.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                complete(&server, &challenge, Answer::TotpCode(code)).await.is_ok()
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        won += usize::from(task.await?);
    }
    assert_eq!(won, 1, "one code, one session");
    Ok(())
}

async fn another_replica_opens_the_secret_and_honours_the_factor(backend: Backend) -> TestResult {
    let a = TestServer::start(backend).await?;
    let ada = enrolled(&a, "ada@example.com").await?;
    let b = TestServer::replica_of(&a).await?;
    let challenge = challenge(&b, &ada.email).await?;
    b.clock.advance(STEP);
    let token = complete(&b, &challenge.challenge, Answer::TotpCode(ada.code(&b, 1))).await?;
    assert_eq!(a.session_reason(&token).await, "OK", "the session B issued works on A");
    Ok(())
}

async fn turning_the_app_off_ends_other_sessions(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let ada = enrolled(&server, "ada@example.com").await?;
    server.clock.advance(STEP);
    let other =
        complete(&server, &challenge(&server, &ada.email).await?.challenge, Answer::TotpCode(ada.code(&server, 0)))
            .await?;
    let ended = factors(&server).disable_totp(authed(DisableTotpRequest {}, &ada.token)).await?.into_inner();
    assert_eq!(ended.revoked_sessions, 1);
    assert_eq!(server.session_reason(&other).await, "UNAUTHENTICATED");
    let session = server.sessions().get_session(GetSessionRequest { token: ada.token.clone() }).await?.into_inner();
    assert_eq!(session.session.ok_or("no session")?.assurance_level(), AssuranceLevel::Aal1);
    server.sign_in(&ada.email, PASSWORD).await?;
    let audited =
        server.scalar("SELECT COUNT(*) FROM audit_events WHERE kind IN ('totp_enabled', 'totp_disabled')").await?;
    assert_eq!(audited, 2);
    Ok(())
}

async fn a_completion_cancelled_mid_flight_uses_up_all_or_nothing(backend: Backend) -> TestResult {
    let server = Arc::new(TestServer::start(backend).await?);
    let ada = enrolled(&server, "ada@example.com").await?;
    let sessions =
        "SELECT COUNT(*) FROM sessions WHERE user_id = (SELECT id FROM users WHERE email = 'ada@example.com')";
    for delay_ms in [0, 1, 2, 3, 5, 8, 13] {
        server.clock.advance(STEP);
        let code = ada.code(&server, 0);
        let challenge = challenge(&server, &ada.email).await?.challenge;
        let before = server.scalar(sessions).await?;
        let call = {
            let (server, challenge, code) = (server.clone(), challenge.clone(), code.clone());
            tokio::spawn(async move { complete(&server, &challenge, Answer::TotpCode(code)).await })
        };
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        call.abort();
        let first = call.await;
        // Whatever the cancelled call got to: either it signed in and its
        // challenge and code are spent, or nothing was used up and the same
        // challenge and code sign in now. Never a spent code without a session.
        let retry = complete(&server, &challenge, Answer::TotpCode(code)).await;
        let created = server.scalar(sessions).await? - before;
        assert_eq!(created, 1, "after {delay_ms} ms: first {first:?}, retry {retry:?}");
        // Refused only because the first call finished: its challenge or its
        // code is spent.
        if let Err(status) = &retry {
            let spent = ["SIGN_IN_CHALLENGE_INVALID", "SECOND_FACTOR_INVALID"];
            assert!(spent.contains(&reason(status).as_str()), "after {delay_ms} ms: {status:?}");
        }
    }
    Ok(())
}

async fn a_rotated_key_opens_old_secrets_and_seals_them_again(backend: Backend) -> TestResult {
    const OLD: &str = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE=";
    const NEW: &str = "AgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgI=";
    let server = TestServer::start_with(backend, |config| config.second_factors.encryption_key = OLD.into()).await?;
    let ada = enrolled(&server, "ada@example.com").await?;
    let sealed_with = |key: &str| {
        let id = FactorKey::from_base64(key).map(|key| key.id().to_owned()).unwrap_or_default();
        format!("SELECT COUNT(*) FROM totp_factors WHERE sealed_secret LIKE 'v1.{id}.%'")
    };
    assert_eq!(server.scalar(&sealed_with(OLD)).await?, 1);
    // The new key seals; the old one still opens, and the first code that
    // opens a secret seals it again under the new key.
    let server = server
        .restart_with(|config| {
            config.second_factors.encryption_key = NEW.into();
            config.second_factors.previous_keys = vec![OLD.into()];
        })
        .await?;
    server.clock.advance(STEP);
    complete(&server, &challenge(&server, &ada.email).await?.challenge, Answer::TotpCode(ada.code(&server, 0))).await?;
    assert_eq!(server.scalar(&sealed_with(NEW)).await?, 1, "sealed again under the new key");
    assert_eq!(server.scalar(&sealed_with(OLD)).await?, 0);

    // The old key can go. (A restart's clock starts at the present again:
    // three steps on, past the step used above.)
    let server = server
        .restart_with(|config| {
            config.second_factors.encryption_key = NEW.into();
            config.second_factors.previous_keys = Vec::new();
        })
        .await?;
    server.clock.advance(3 * STEP);
    complete(&server, &challenge(&server, &ada.email).await?.challenge, Answer::TotpCode(ada.code(&server, 0))).await?;
    Ok(())
}

async fn the_mailbox_is_a_first_factor_and_mail_calls_need_a_recent_second(backend: Backend) -> TestResult {
    use keyport_proto::v1::{
        FinishEmailSignInRequest, RequestEmailChangeRequest, RequestPasswordSetupRequest, SetPasswordRequest,
        StartEmailSignInRequest, finish_email_sign_in_request::Proof,
    };
    use keyport_tests::mailpit::Mailpit;

    let mailpit = Mailpit::start().await?;
    let server = TestServer::start_with(backend, |config| {
        mailpit.configure(&mut config.mail);
        config.sign_up.by_email = true;
    })
    .await?;
    let email = "grace@example.com";
    let mailbox = |nth: usize| {
        let (server, mailpit) = (&server, &mailpit);
        async move {
            let start = StartEmailSignInRequest { email: email.into() };
            let binding = server.sessions().start_email_sign_in(start).await?.into_inner().binding;
            let mail = mailpit.wait_for(email, nth).await?;
            let code = mail[0].subject.rsplit(' ').next().unwrap_or_default().to_owned();
            let finish = FinishEmailSignInRequest { binding, proof: Some(Proof::Code(code)) };
            Ok::<_, BoxError>(server.sessions().finish_email_sign_in(finish).await?.into_inner())
        }
    };
    // A passwordless account, then an authenticator app on it.
    let token = mailbox(1).await?.session.ok_or("no session")?.token;
    let mut two = factors(&server);
    let started = two.enroll_totp(authed(EnrollTotpRequest {}, &token)).await?.into_inner();
    let secret = TotpSecret::from_base32(&started.secret).ok_or("not base32")?;
    let code = |offset: i64| secret.code_at(TotpStep(TotpStep::at(server.clock.now()).0 + offset));
    two.confirm_totp(authed(ConfirmTotpRequest { code: code(0)? }, &token)).await?;

    // The mailbox alone signs nobody in now.
    let finished = mailbox(2).await?;
    assert!(finished.session.is_none() && finished.user.is_none(), "a session past the factor");
    let challenge = finished.challenge.ok_or("no challenge")?.challenge;
    server.clock.advance(STEP);
    complete(&server, &challenge, Answer::TotpCode(code(0)?)).await?;

    server.clock.advance(Duration::from_secs(601));
    let users = server.users();
    let change = RequestEmailChangeRequest { new_email: "grace@new.example".into(), password: String::new() };
    let result = users.clone().request_email_change(authed(change.clone(), &token)).await;
    refused(result, Code::FailedPrecondition, "STEP_UP_REQUIRED", "RequestEmailChange");
    let result = users.clone().request_password_setup(authed(RequestPasswordSetupRequest {}, &token)).await;
    refused(result, Code::FailedPrecondition, "STEP_UP_REQUIRED", "RequestPasswordSetup");
    let set = SetPasswordRequest { code: "123456".into(), new_password: "a first passphrase".into() };
    let result = users.clone().set_password(authed(set, &token)).await;
    refused(result, Code::FailedPrecondition, "STEP_UP_REQUIRED", "SetPassword");

    server.clock.advance(STEP);
    let step_up = StepUpRequest { answer: Some(step_up_request::Answer::TotpCode(code(0)?)) };
    two.step_up(authed(step_up, &token)).await?;
    users.clone().request_email_change(authed(change, &token)).await?;
    mailpit.wait_for("grace@new.example", 1).await?;
    Ok(())
}

/// Runs `call` from `n` tasks released together; counts the successes.
async fn successes<F, Fut>(n: usize, call: F) -> Result<usize, BoxError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool> + Send + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (barrier, call) = (barrier.clone(), call());
            tokio::spawn(async move {
                barrier.wait().await;
                call.await
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        won += usize::from(task.await?);
    }
    Ok(won)
}

async fn parallel_confirmations_and_step_ups_with_one_code_succeed_once(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let token = server.sign_up("ada@example.com").await?;
    let started = factors(&server).enroll_totp(authed(EnrollTotpRequest {}, &token)).await?.into_inner();
    let secret = TotpSecret::from_base32(&started.secret).ok_or("not base32")?;
    let code = secret.code_at(TotpStep::at(server.clock.now()))?;
    // Six confirmations of one enrolment with its code: one turns it on and
    // gets backup codes; the others find nothing pending.
    let confirmed = successes(6, || {
        let (mut two, request) = (factors(&server), authed(ConfirmTotpRequest { code: code.clone() }, &token));
        async move { two.confirm_totp(request).await.is_ok() }
    })
    .await?;
    assert_eq!(confirmed, 1, "one enrolment turned on once");
    let listed = factors(&server).list_factors(authed(ListFactorsRequest {}, &token)).await?.into_inner();
    assert_eq!(listed.backup_codes_left, 10, "one set of backup codes");

    // Six step-ups with one backup code: one passes, and the code is spent.
    let codes =
        factors(&server).regenerate_backup_codes(authed(RegenerateBackupCodesRequest {}, &token)).await?.into_inner();
    let backup = codes.backup_codes[0].clone();
    let stepped = successes(6, || {
        let answer = StepUpRequest { answer: Some(step_up_request::Answer::BackupCode(backup.clone())) };
        let (mut two, request) = (factors(&server), authed(answer, &token));
        async move { two.step_up(request).await.is_ok() }
    })
    .await?;
    assert_eq!(stepped, 1, "one backup code, one step-up");
    let listed = factors(&server).list_factors(authed(ListFactorsRequest {}, &token)).await?.into_inner();
    assert_eq!(listed.backup_codes_left, 9);
    Ok(())
}
