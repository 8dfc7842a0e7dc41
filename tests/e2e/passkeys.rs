//! Passkeys through the real server on both stores: registration, the
//! passkey alone as a sign-in, the passkey as the second factor of a
//! password sign-in and of a step-up, management of one's own passkeys,
//! and every way a ceremony can be bad, replayed or raced. The
//! authenticator is webauthn-authenticator-rs's software passkey (real
//! keys, real signatures); `examples/browser-test` runs the same in
//! Chromium with its virtual authenticator.

use std::{sync::Arc, time::Duration};

use keyport_core::second_factor::soft_passkey::SoftKey;
use keyport_proto::v1::{
    AssuranceLevel, CompleteSignInRequest, DeletePasskeyRequest, FinishPasskeyRegistrationRequest,
    FinishPasskeySignInRequest, GetCurrentUserRequest, GetSessionRequest, ListFactorsRequest, ListPasskeysRequest,
    Passkey, PasskeyAssertion, RenamePasskeyRequest, SecondFactor, SignInRequest, StartPasskeyRegistrationRequest,
    StartPasskeySignInRequest, StartPasskeyStepUpRequest, StepUpRequest, UserChange, WatchSessionEventsRequest,
    complete_sign_in_request::Answer, passkey_service_client::PasskeyServiceClient, sign_in_response::Outcome,
    step_up_request, two_factor_service_client::TwoFactorServiceClient, watch_session_events_response::Event,
};
use keyport_tests::{
    Backend, TestServer,
    grpc::{authed, reason},
    server::{PASSWORD, TEST_PASSKEY_ORIGIN},
};
use tokio::sync::Barrier;
use tonic::{Code, Status, transport::Channel};

use crate::{TestResult, on_both_backends};

on_both_backends!(
    registers_and_manages_only_ones_own_passkeys,
    signs_in_with_the_passkey_alone,
    answers_the_second_factor_of_a_password_sign_in,
    steps_a_session_up_and_guards_deletion,
    bad_input_gets_stable_reasons,
    a_counter_that_goes_backwards_is_refused,
    of_parallel_finishes_with_one_answer_one_signs_in,
    a_finish_cancelled_mid_flight_leaves_the_passkey_usable,
    another_replica_signs_in_with_a_passkey_registered_here,
);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn passkeys(server: &TestServer) -> PasskeyServiceClient<Channel> {
    PasskeyServiceClient::new(server.channel())
}

fn factors(server: &TestServer) -> TwoFactorServiceClient<Channel> {
    TwoFactorServiceClient::new(server.channel())
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

/// Registers `key` for `token`'s user, named `name`.
async fn register(server: &TestServer, token: &str, key: &mut SoftKey, name: &str) -> Result<Passkey, BoxError> {
    let started =
        passkeys(server).start_passkey_registration(authed(StartPasskeyRegistrationRequest {}, token)).await?;
    let started = started.into_inner();
    let options: serde_json::Value = serde_json::from_str(&started.options)?;
    assert_eq!(options["user"]["displayName"], "Test User", "the authenticator shows the user's name");
    assert_eq!(options["authenticatorSelection"]["userVerification"], "required");
    let credential = key.register(&started.options)?;
    let finish = FinishPasskeyRegistrationRequest { ceremony: started.ceremony, credential, name: name.into() };
    let finished = passkeys(server).finish_passkey_registration(authed(finish, token)).await?.into_inner();
    let session = finished.session.ok_or("no session")?;
    assert_eq!(session.assurance_level(), AssuranceLevel::Aal2, "registering passed the passkey");
    Ok(finished.passkey.ok_or("no passkey")?)
}

/// A passkey sign-in: the ceremony and the discoverable answer.
async fn passkey_sign_in(server: &TestServer, key: &mut SoftKey) -> Result<Result<String, Status>, BoxError> {
    let started = server.sessions().start_passkey_sign_in(StartPasskeySignInRequest {}).await?.into_inner();
    let credential = key.sign_discoverable(&started.options)?;
    Ok(finish_sign_in(server, &started.ceremony, &credential).await)
}

async fn finish_sign_in(server: &TestServer, ceremony: &str, credential: &str) -> Result<String, Status> {
    let request = FinishPasskeySignInRequest { ceremony: ceremony.into(), credential: credential.into() };
    let grant = server.sessions().finish_passkey_sign_in(request).await?.into_inner().session;
    Ok(grant.map(|grant| grant.token).unwrap_or_default())
}

async fn assurance(server: &TestServer, token: &str) -> Result<AssuranceLevel, BoxError> {
    let session = server.sessions().get_session(GetSessionRequest { token: token.into() }).await?.into_inner();
    Ok(session.session.ok_or("no session")?.assurance_level())
}

async fn registers_and_manages_only_ones_own_passkeys(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let token = server.sign_up("ada@example.com").await?;
    let other_session = server.sign_in("ada@example.com", PASSWORD).await?;
    let mut key = SoftKey::at(TEST_PASSKEY_ORIGIN)?;
    let passkey = register(&server, &token, &mut key, "  Laptop  ").await?;
    assert_eq!(passkey.name, "Laptop", "trimmed");
    assert!(passkey.last_used_at.is_none());
    // A new factor ends the other sessions (ASVS 7.4.3) and turns the flag on.
    assert_eq!(server.session_reason(&other_session).await, "UNAUTHENTICATED");
    let me = server.users().get_current_user(authed(GetCurrentUserRequest {}, &token)).await?.into_inner();
    assert!(me.user.ok_or("no user")?.two_factor_enabled);
    let listed = factors(&server).list_factors(authed(ListFactorsRequest {}, &token)).await?.into_inner();
    assert_eq!((listed.totp_enabled, listed.passkeys), (false, 1));
    // Only the public key is kept; the audit trail has the registration.
    assert_eq!(server.scalar("SELECT COUNT(*) FROM passkeys").await?, 1);
    assert_eq!(server.scalar("SELECT COUNT(*) FROM audit_events WHERE kind = 'passkey_added'").await?, 1);

    // A second passkey; the same authenticator credential twice is refused.
    let second = register(&server, &token, &mut SoftKey::at(TEST_PASSKEY_ORIGIN)?, "").await?;
    assert_eq!(second.name, "Passkey", "an empty name is named for the user");
    let renamed = passkeys(&server)
        .rename_passkey(authed(RenamePasskeyRequest { id: second.id.clone(), name: "Phone".into() }, &token))
        .await?
        .into_inner();
    assert_eq!(renamed.passkey.ok_or("no passkey")?.name, "Phone");
    let listed = passkeys(&server).list_passkeys(authed(ListPasskeysRequest {}, &token)).await?.into_inner();
    let names: Vec<_> = listed.passkeys.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Laptop", "Phone"], "oldest first");

    // Another user sees none of them and can change none of them
    // (Better Auth GHSA-4vcf-q4xf-f48m): the same answer as an unknown id.
    let eve = server.sign_up("eve@example.com").await?;
    let theirs = passkeys(&server).list_passkeys(authed(ListPasskeysRequest {}, &eve)).await?.into_inner();
    assert!(theirs.passkeys.is_empty());
    let rename = RenamePasskeyRequest { id: passkey.id.clone(), name: "mine now".into() };
    refused(
        passkeys(&server).rename_passkey(authed(rename, &eve)).await,
        Code::NotFound,
        "PASSKEY_NOT_FOUND",
        "rename",
    );
    let delete = DeletePasskeyRequest { id: passkey.id.clone() };
    refused(
        passkeys(&server).delete_passkey(authed(delete, &eve)).await,
        Code::NotFound,
        "PASSKEY_NOT_FOUND",
        "delete",
    );
    let unknown = DeletePasskeyRequest { id: uuid::Uuid::now_v7().to_string() };
    refused(
        passkeys(&server).delete_passkey(authed(unknown, &eve)).await,
        Code::NotFound,
        "PASSKEY_NOT_FOUND",
        "unknown",
    );
    assert_eq!(server.scalar("SELECT COUNT(*) FROM passkeys").await?, 2);

    // Deleting both: the flag goes with the last, and the session is AAL1.
    let survivor = server.sign_in("ada@example.com", PASSWORD).await;
    assert!(survivor.is_err(), "a password alone no longer signs in");
    for id in [passkey.id, second.id] {
        passkeys(&server).delete_passkey(authed(DeletePasskeyRequest { id }, &token)).await?;
    }
    assert_eq!(assurance(&server, &token).await?, AssuranceLevel::Aal1);
    server.sign_in("ada@example.com", PASSWORD).await?;
    assert_eq!(server.scalar("SELECT COUNT(*) FROM audit_events WHERE kind = 'passkey_deleted'").await?, 2);
    Ok(())
}

async fn signs_in_with_the_passkey_alone(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let token = server.sign_up("ada@example.com").await?;
    let mut key = SoftKey::at(TEST_PASSKEY_ORIGIN)?;
    register(&server, &token, &mut key, "Laptop").await?;

    let started = server.sessions().start_passkey_sign_in(StartPasskeySignInRequest {}).await?.into_inner();
    assert!(started.ceremony.starts_with("kpk_"), "{}", started.ceremony);
    let options: serde_json::Value = serde_json::from_str(&started.options)?;
    assert_eq!(options["rpId"], "localhost");
    assert_eq!(options["userVerification"], "required");
    let credential = key.sign_discoverable(&started.options)?;
    let signed_in = finish_sign_in(&server, &started.ceremony, &credential).await?;
    assert_eq!(assurance(&server, &signed_in).await?, AssuranceLevel::Aal2, "a passkey is two factors");
    let listed = passkeys(&server).list_passkeys(authed(ListPasskeysRequest {}, &signed_in)).await?.into_inner();
    assert!(listed.passkeys[0].last_used_at.is_some(), "last use recorded");

    // The ceremony worked once: the same answer again is refused.
    refused(
        finish_sign_in(&server, &started.ceremony, &credential).await,
        Code::Unauthenticated,
        "PASSKEY_INVALID",
        "replay",
    );
    // An answer to one ceremony does not finish another.
    let other = server.sessions().start_passkey_sign_in(StartPasskeySignInRequest {}).await?.into_inner();
    refused(
        finish_sign_in(&server, &other.ceremony, &credential).await,
        Code::Unauthenticated,
        "PASSKEY_INVALID",
        "another ceremony",
    );
    // The same key signing for an origin outside `passkeys.origins` (a
    // subdomain the relying-party id covers, but not allowed) is refused.
    key.set_origin("https://evil.localhost")?;
    let started = server.sessions().start_passkey_sign_in(StartPasskeySignInRequest {}).await?.into_inner();
    let phished = key.sign_discoverable(&started.options)?;
    refused(
        finish_sign_in(&server, &started.ceremony, &phished).await,
        Code::Unauthenticated,
        "PASSKEY_INVALID",
        "phishing origin",
    );
    key.set_origin(TEST_PASSKEY_ORIGIN)?;
    // A key the server never saw.
    let started = server.sessions().start_passkey_sign_in(StartPasskeySignInRequest {}).await?.into_inner();
    let mut stranger = SoftKey::at(TEST_PASSKEY_ORIGIN)?;
    let elsewhere = TestServer::start(backend).await?;
    let bob = elsewhere.sign_up("bob@example.com").await?;
    register(&elsewhere, &bob, &mut stranger, "Elsewhere").await?;
    refused(
        finish_sign_in(&server, &started.ceremony, &stranger.sign_discoverable(&started.options)?).await,
        Code::Unauthenticated,
        "PASSKEY_INVALID",
        "unknown credential",
    );
    // A genuine assertion whose user handle names someone else.
    let eve = server.sign_up("eve@example.com").await?;
    let eve_id = server.users().get_current_user(authed(GetCurrentUserRequest {}, &eve)).await?.into_inner();
    let eve_id = uuid::Uuid::parse_str(&eve_id.user.ok_or("no user")?.id)?;
    let started = server.sessions().start_passkey_sign_in(StartPasskeySignInRequest {}).await?.into_inner();
    let forged = key.sign_discoverable(&started.options)?;
    let mut forged: serde_json::Value = serde_json::from_str(&forged)?;
    forged["response"]["userHandle"] = serde_json::Value::String(base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        eve_id.as_bytes(),
    ));
    refused(
        finish_sign_in(&server, &started.ceremony, &forged.to_string()).await,
        Code::Unauthenticated,
        "PASSKEY_INVALID",
        "user handle of another",
    );
    assert!(
        server.scalar("SELECT COUNT(*) FROM audit_events WHERE kind = 'sign_in_failed' AND detail = 'passkey'").await?
            >= 3
    );
    Ok(())
}

async fn answers_the_second_factor_of_a_password_sign_in(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let token = server.sign_up("ada@example.com").await?;
    let mut key = SoftKey::at(TEST_PASSKEY_ORIGIN)?;
    register(&server, &token, &mut key, "Laptop").await?;

    let challenge = password_challenge(&server).await?;
    assert_eq!(challenge.factors, [i32::from(SecondFactor::Passkey)], "only what the user has");
    let options: serde_json::Value = serde_json::from_str(&challenge.passkey_options)?;
    let allowed = options["allowCredentials"].as_array().ok_or("no allowCredentials")?;
    assert_eq!(allowed.len(), 1, "lists the user's passkey");
    let credential = key.sign(&challenge.passkey_options)?;
    let completed = complete(&server, &challenge.challenge, Answer::PasskeyCredential(credential.clone())).await?;
    assert_eq!(assurance(&server, &completed).await?, AssuranceLevel::Aal2);

    // The answer belongs to that challenge: replayed on a new one it is a
    // wrong answer, and the new challenge still takes a right one.
    let next = password_challenge(&server).await?;
    refused(
        complete(&server, &next.challenge, Answer::PasskeyCredential(credential)).await,
        Code::Unauthenticated,
        "SECOND_FACTOR_INVALID",
        "an answer to another challenge",
    );
    refused(
        complete(&server, &next.challenge, Answer::TotpCode("123456".into())).await,
        Code::Unauthenticated,
        "SECOND_FACTOR_INVALID",
        "a factor the user does not have",
    );
    complete(&server, &next.challenge, Answer::PasskeyCredential(key.sign(&next.passkey_options)?)).await?;
    // A challenge works once.
    let used = complete(&server, &next.challenge, Answer::PasskeyCredential(key.sign(&next.passkey_options)?)).await;
    refused(used, Code::InvalidArgument, "SIGN_IN_CHALLENGE_INVALID", "used challenge");
    Ok(())
}

async fn password_challenge(server: &TestServer) -> Result<keyport_proto::v1::SignInChallenge, BoxError> {
    let request = SignInRequest { email: "ada@example.com".into(), password: PASSWORD.into() };
    match server.sessions().sign_in(request).await?.into_inner().outcome {
        Some(Outcome::Challenge(challenge)) => Ok(challenge),
        other => Err(format!("expected a challenge, got {other:?}").into()),
    }
}

async fn complete(server: &TestServer, challenge: &str, answer: Answer) -> Result<String, Status> {
    let request = CompleteSignInRequest { challenge: challenge.into(), answer: Some(answer) };
    let response = server.sessions().complete_sign_in(request).await?.into_inner();
    Ok(response.session.map(|grant| grant.token).unwrap_or_default())
}

async fn step_up(server: &TestServer, token: &str, ceremony: &str, credential: &str) -> Result<(), Status> {
    let assertion = PasskeyAssertion { ceremony: ceremony.into(), credential: credential.into() };
    let request = StepUpRequest { answer: Some(step_up_request::Answer::Passkey(assertion)) };
    factors(server).step_up(authed(request, token)).await.map(drop)
}

async fn steps_a_session_up_and_guards_deletion(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let token = server.sign_up("ada@example.com").await?;
    let mut key = SoftKey::at(TEST_PASSKEY_ORIGIN)?;
    let passkey = register(&server, &token, &mut key, "Laptop").await?;
    // Past the freshness window: deleting the factor, or adding one, needs a step-up.
    server.clock.advance(Duration::from_secs(601));
    let delete = || DeletePasskeyRequest { id: passkey.id.clone() };
    refused(
        passkeys(&server).delete_passkey(authed(delete(), &token)).await,
        Code::FailedPrecondition,
        "STEP_UP_REQUIRED",
        "stale delete",
    );
    refused(
        passkeys(&server).start_passkey_registration(authed(StartPasskeyRegistrationRequest {}, &token)).await,
        Code::FailedPrecondition,
        "REAUTHENTICATION_REQUIRED",
        "stale registration",
    );

    let other = server.sign_in("ada@example.com", PASSWORD).await;
    assert!(other.is_err(), "a password alone is not a session");
    let second = passkey_sign_in(&server, &mut key).await??;
    let started =
        factors(&server).start_passkey_step_up(authed(StartPasskeyStepUpRequest {}, &token)).await?.into_inner();
    let credential = key.sign(&started.options)?;
    // Bound to the session that started it.
    refused(
        step_up(&server, &second, &started.ceremony, &credential).await,
        Code::Unauthenticated,
        "PASSKEY_INVALID",
        "another session's ceremony",
    );
    step_up(&server, &token, &started.ceremony, &credential).await?;
    refused(
        step_up(&server, &token, &started.ceremony, &credential).await,
        Code::Unauthenticated,
        "PASSKEY_INVALID",
        "used ceremony",
    );
    assert_eq!(assurance(&server, &token).await?, AssuranceLevel::Aal2);
    let deleted = passkeys(&server).delete_passkey(authed(delete(), &token)).await?.into_inner();
    assert_eq!(deleted.revoked_sessions, 1, "the other session ended");
    assert_eq!(server.session_reason(&second).await, "UNAUTHENTICATED");
    refused(
        factors(&server).start_passkey_step_up(authed(StartPasskeyStepUpRequest {}, &token)).await,
        Code::FailedPrecondition,
        "SECOND_FACTOR_NOT_ENROLLED",
        "no passkey left",
    );
    Ok(())
}

async fn bad_input_gets_stable_reasons(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let token = server.sign_up("ada@example.com").await?;
    let mut key = SoftKey::at(TEST_PASSKEY_ORIGIN)?;
    let passkey = register(&server, &token, &mut key, "Laptop").await?;
    let started = server.sessions().start_passkey_sign_in(StartPasskeySignInRequest {}).await?.into_inner();
    let good = key.sign_discoverable(&started.options)?;
    // Under the transport's 64 KiB message limit, over the answer's 16 KiB.
    let huge = "x".repeat(20_000);
    let sign_in_refusals = [
        ("", good.as_str(), "empty ceremony"),
        ("kpk_short", good.as_str(), "malformed ceremony"),
        ("kpc_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", good.as_str(), "wrong kind of token"),
        (started.ceremony.as_str(), "", "empty credential"),
        (started.ceremony.as_str(), "{not json", "malformed credential"),
        (started.ceremony.as_str(), huge.as_str(), "oversized credential"),
        (started.ceremony.as_str(), "{\"id\":\"AAAA\",\"rawId\":\"AAAA\",\"type\":\"public-key\"}", "wrong shape"),
    ];
    for (ceremony, credential, what) in sign_in_refusals {
        refused(finish_sign_in(&server, ceremony, credential).await, Code::Unauthenticated, "PASSKEY_INVALID", what);
    }
    // A bad answer used the ceremony up: the good one no longer works.
    refused(
        finish_sign_in(&server, &started.ceremony, &good).await,
        Code::Unauthenticated,
        "PASSKEY_INVALID",
        "after a bad answer",
    );

    // Expired: 5 minutes and a second later.
    let started = server.sessions().start_passkey_sign_in(StartPasskeySignInRequest {}).await?.into_inner();
    let answer = key.sign_discoverable(&started.options)?;
    server.clock.advance(Duration::from_secs(301));
    refused(
        finish_sign_in(&server, &started.ceremony, &answer).await,
        Code::Unauthenticated,
        "PASSKEY_INVALID",
        "expired",
    );

    // A registration ceremony is not a sign-in one, and vice versa.
    let token = passkey_sign_in(&server, &mut key).await??;
    let registration = passkeys(&server)
        .start_passkey_registration(authed(StartPasskeyRegistrationRequest {}, &token))
        .await?
        .into_inner();
    refused(
        finish_sign_in(&server, &registration.ceremony, &good).await,
        Code::Unauthenticated,
        "PASSKEY_INVALID",
        "wrong purpose",
    );
    let sign_in = server.sessions().start_passkey_sign_in(StartPasskeySignInRequest {}).await?.into_inner();
    let finish =
        FinishPasskeyRegistrationRequest { ceremony: sign_in.ceremony, credential: "{}".into(), name: String::new() };
    refused(
        passkeys(&server).finish_passkey_registration(authed(finish, &token)).await,
        Code::Unauthenticated,
        "PASSKEY_INVALID",
        "sign-in ceremony to register",
    );
    let finish = FinishPasskeyRegistrationRequest {
        ceremony: registration.ceremony.clone(),
        credential: "{\"id\":1}".into(),
        name: "x".repeat(65),
    };
    refused(
        passkeys(&server).finish_passkey_registration(authed(finish, &token)).await,
        Code::InvalidArgument,
        "INVALID_ARGUMENT",
        "long name",
    );
    for (name, what) in [("", "empty name"), ("x\u{7}y", "control character"), (&*"n".repeat(65), "65 characters")] {
        let rename = RenamePasskeyRequest { id: passkey.id.clone(), name: name.into() };
        refused(
            passkeys(&server).rename_passkey(authed(rename, &token)).await,
            Code::InvalidArgument,
            "INVALID_ARGUMENT",
            what,
        );
    }
    for id in ["", "not-a-uuid", &huge] {
        let delete = DeletePasskeyRequest { id: id.into() };
        refused(
            passkeys(&server).delete_passkey(authed(delete, &token)).await,
            Code::NotFound,
            "PASSKEY_NOT_FOUND",
            "bad id",
        );
    }
    // No session: nothing.
    refused(
        passkeys(&server).list_passkeys(ListPasskeysRequest {}).await,
        Code::Unauthenticated,
        "UNAUTHENTICATED",
        "no token",
    );
    assert_eq!(server.scalar("SELECT COUNT(*) FROM passkeys").await?, 1, "nothing half-written");

    // A server without `[passkeys]` says so.
    let off = TestServer::start_with(backend, |config| config.passkeys = Default::default()).await?;
    refused(
        off.sessions().start_passkey_sign_in(StartPasskeySignInRequest {}).await,
        Code::FailedPrecondition,
        "PASSKEYS_DISABLED",
        "off",
    );
    let other = off.sign_up("bob@example.com").await?;
    refused(
        passkeys(&off).list_passkeys(authed(ListPasskeysRequest {}, &other)).await,
        Code::FailedPrecondition,
        "PASSKEYS_DISABLED",
        "off list",
    );
    Ok(())
}

async fn a_counter_that_goes_backwards_is_refused(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let token = server.sign_up("ada@example.com").await?;
    let mut key = SoftKey::at(TEST_PASSKEY_ORIGIN)?;
    register(&server, &token, &mut key, "Laptop").await?;
    // Two answers signed in order (counters 1 and 2), finished out of order:
    // the older counter after the newer is what a cloned key looks like.
    let first = server.sessions().start_passkey_sign_in(StartPasskeySignInRequest {}).await?.into_inner();
    let second = server.sessions().start_passkey_sign_in(StartPasskeySignInRequest {}).await?.into_inner();
    let older = key.sign_discoverable(&first.options)?;
    let newer = key.sign_discoverable(&second.options)?;
    finish_sign_in(&server, &second.ceremony, &newer).await?;
    refused(
        finish_sign_in(&server, &first.ceremony, &older).await,
        Code::Unauthenticated,
        "PASSKEY_INVALID",
        "counter went back",
    );
    passkey_sign_in(&server, &mut key).await??;
    Ok(())
}

async fn of_parallel_finishes_with_one_answer_one_signs_in(backend: Backend) -> TestResult {
    const CALLERS: usize = 6;
    let server = Arc::new(TestServer::start(backend).await?);
    let token = server.sign_up("ada@example.com").await?;
    let mut key = SoftKey::at(TEST_PASSKEY_ORIGIN)?;
    register(&server, &token, &mut key, "Laptop").await?;

    // One passwordless ceremony, one answer, N callers.
    let started = server.sessions().start_passkey_sign_in(StartPasskeySignInRequest {}).await?.into_inner();
    let answer = key.sign_discoverable(&started.options)?;
    let barrier = Arc::new(Barrier::new(CALLERS));
    let calls = (0..CALLERS).map(|_| {
        let (server, barrier, ceremony, answer) =
            (server.clone(), barrier.clone(), started.ceremony.clone(), answer.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            finish_sign_in(&server, &ceremony, &answer).await
        })
    });
    let results = futures::future::join_all(calls).await;
    let won = results.iter().filter(|result| matches!(result, Ok(Ok(_)))).count();
    assert_eq!(won, 1, "{results:?}");

    // One challenge, one passkey answer, N completions.
    let challenge = password_challenge(&server).await?;
    let answer = key.sign(&challenge.passkey_options)?;
    let barrier = Arc::new(Barrier::new(CALLERS));
    let calls = (0..CALLERS).map(|_| {
        let (server, barrier, challenge, answer) =
            (server.clone(), barrier.clone(), challenge.challenge.clone(), answer.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            complete(&server, &challenge, Answer::PasskeyCredential(answer)).await
        })
    });
    let results = futures::future::join_all(calls).await;
    let won = results.iter().filter(|result| matches!(result, Ok(Ok(_)))).count();
    assert_eq!(won, 1, "{results:?}");
    // Two sign-ins plus the registering session; nothing else.
    assert_eq!(server.count("sessions").await?, 3);

    // One registration ceremony and its answer, N finishing calls: one
    // passkey is stored.
    let bob = server.sign_up("bob@example.com").await?;
    let started = passkeys(&server)
        .start_passkey_registration(authed(StartPasskeyRegistrationRequest {}, &bob))
        .await?
        .into_inner();
    let credential = SoftKey::at(TEST_PASSKEY_ORIGIN)?.register(&started.options)?;
    let barrier = Arc::new(Barrier::new(CALLERS));
    let calls = (0..CALLERS).map(|n| {
        let (server, barrier, bob) = (server.clone(), barrier.clone(), bob.clone());
        let finish = FinishPasskeyRegistrationRequest {
            ceremony: started.ceremony.clone(),
            credential: credential.clone(),
            name: format!("key {n}"),
        };
        tokio::spawn(async move {
            barrier.wait().await;
            passkeys(&server).finish_passkey_registration(authed(finish, &bob)).await
        })
    });
    let results = futures::future::join_all(calls).await;
    let won = results.iter().filter(|result| matches!(result, Ok(Ok(_)))).count();
    assert_eq!(won, 1, "{results:?}");
    let listed = passkeys(&server).list_passkeys(authed(ListPasskeysRequest {}, &bob)).await?.into_inner();
    assert_eq!(listed.passkeys.len(), 1);
    Ok(())
}

async fn a_finish_cancelled_mid_flight_leaves_the_passkey_usable(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let token = server.sign_up("ada@example.com").await?;
    let mut key = SoftKey::at(TEST_PASSKEY_ORIGIN)?;
    register(&server, &token, &mut key, "Laptop").await?;
    let before = server.count("sessions").await?;
    let mut created = 0;
    for delay_ms in 0..12 {
        let started = server.sessions().start_passkey_sign_in(StartPasskeySignInRequest {}).await?.into_inner();
        let answer = key.sign_discoverable(&started.options)?;
        let call = finish_sign_in(&server, &started.ceremony, &answer);
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(delay_ms), call).await {
            created += 1;
        }
        // Whatever the cancelled call got to, the next ceremony works: the
        // counter in storage moved with a session or not at all.
        passkey_sign_in(&server, &mut key).await??;
        created += 1;
    }
    let sessions = server.count("sessions").await? - before;
    assert!((created..=24).contains(&sessions), "{created} answered, {sessions} stored");
    Ok(())
}

async fn another_replica_signs_in_with_a_passkey_registered_here(backend: Backend) -> TestResult {
    let server = TestServer::start(backend).await?;
    let token = server.sign_up("ada@example.com").await?;
    let replica = TestServer::replica_of(&server).await?;
    // Caches of the replica hear of the new factor (through PostgreSQL's
    // NOTIFY, or this process's own bus on SQLite).
    let watched = if backend == Backend::Postgres { &replica } else { &server };
    let mut events = watched.sessions().watch_session_events(WatchSessionEventsRequest {}).await?.into_inner();
    assert!(matches!(events.message().await?.and_then(|m| m.event), Some(Event::Ready(_))));
    let mut key = SoftKey::at(TEST_PASSKEY_ORIGIN)?;
    register(&server, &token, &mut key, "Laptop").await?;
    let heard = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match events.message().await?.and_then(|m| m.event) {
                Some(Event::UserChanged(changed)) => return Ok::<_, Status>(changed),
                Some(_) => continue,
                None => return Err(Status::aborted("stream ended")),
            }
        }
    })
    .await??;
    assert_eq!(heard.change(), UserChange::SecondFactor);
    // Started on one replica, finished on the other: ceremonies live in the database.
    let started = server.sessions().start_passkey_sign_in(StartPasskeySignInRequest {}).await?.into_inner();
    let answer = key.sign_discoverable(&started.options)?;
    let signed_in = finish_sign_in(&replica, &started.ceremony, &answer).await?;
    assert_eq!(assurance(&server, &signed_in).await?, AssuranceLevel::Aal2);
    let challenge = password_challenge(&replica).await?;
    complete(&server, &challenge.challenge, Answer::PasskeyCredential(key.sign(&challenge.passkey_options)?)).await?;
    Ok(())
}
