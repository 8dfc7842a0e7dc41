//! The flows through the user's mailbox, against a real SMTP server
//! (Mailpit): verifying an address, resetting a forgotten password, the
//! notice of a password change, and the courier's delivery promises (once,
//! after an outage, by one replica of several).

use std::{sync::Arc, time::Duration};

use keyport_proto::v1::{
    ChangePasswordRequest, GetCurrentUserRequest, RequestEmailVerificationRequest, RequestPasswordResetRequest,
    ResetPasswordRequest, VerifyEmailRequest,
};
use keyport_tests::{
    Backend, TestServer,
    grpc::{authed, reason},
    mailpit::{Mailpit, PUBLIC_BASE_URL},
    server::PASSWORD,
};
use tokio::sync::Barrier;
use tonic::{Code, Request};

use crate::{TestResult, on_both_backends};

on_both_backends!(
    resets_a_forgotten_password_through_the_mailbox,
    reset_links_are_single_use_short_lived_and_voided_by_newer_ones,
    a_password_change_voids_reset_links_and_sends_a_notice,
    unknown_and_passwordless_addresses_get_the_same_answer_and_no_mail,
    of_parallel_resets_with_one_link_exactly_one_succeeds,
    verifies_an_address_through_the_mailbox,
    verifies_with_the_mailed_code_in_the_session_that_asked,
    bad_tokens_are_refused_with_one_reason,
    a_message_queued_while_smtp_is_down_is_delivered_once_it_is_back,
);

const NEW_PASSWORD: &str = "a fresh passphrase for today";
const RESET_PATH: &str = "/reset-password";
const VERIFY_PATH: &str = "/verify-email";

async fn with_mail(backend: Backend) -> Result<(TestServer, Mailpit), Box<dyn std::error::Error + Send + Sync>> {
    let mailpit = Mailpit::start().await?;
    let server = TestServer::start_with(backend, |config| mailpit.configure(&mut config.mail)).await?;
    Ok((server, mailpit))
}

fn reset_request(email: &str) -> RequestPasswordResetRequest {
    RequestPasswordResetRequest { email: email.into() }
}

fn reset(token: &str, password: &str) -> ResetPasswordRequest {
    ResetPasswordRequest { token: token.into(), new_password: password.into() }
}

/// Requests a reset for `email` and returns the token of reset mail number `nth`.
async fn reset_token(
    server: &TestServer,
    mailpit: &Mailpit,
    email: &str,
    nth: usize,
) -> Result<String, Box<dyn std::error::Error + Send + Sync>> {
    server.users().request_password_reset(reset_request(email)).await?;
    let mails = mailpit.wait_for(email, nth).await?;
    Ok(mails[0].token(RESET_PATH).ok_or("no reset link in the mail")?)
}

async fn resets_a_forgotten_password_through_the_mailbox(backend: Backend) -> TestResult {
    let (server, mailpit) = with_mail(backend).await?;
    let laptop = server.sign_up("ann@example.com").await?;
    let phone = server.sign_in("ann@example.com", PASSWORD).await?;

    // Headers a proxy or an attacker may set must not shape the link.
    let mut request = Request::new(reset_request("Ann@Example.com"));
    request.metadata_mut().insert("x-forwarded-host", "evil.test".parse()?);
    server.users().request_password_reset(request).await?;
    let mail = mailpit.wait_for("ann@example.com", 1).await?.remove(0);
    assert!(mail.subject.contains("Reset"), "{}", mail.subject);
    assert_eq!(mail.from.address, "no-reply@keyport.test");
    assert!(mail.text.contains(&format!("{PUBLIC_BASE_URL}{RESET_PATH}?token=kpm_")), "{}", mail.text);
    assert!(!mail.text.contains("evil.test") && !mail.html.contains("evil.test"));
    assert!(mail.html.contains("token=kpm_"), "{}", mail.html);
    let token = mail.token(RESET_PATH).ok_or("no link")?;

    let response = server.users().reset_password(reset(&token, NEW_PASSWORD)).await?.into_inner();
    assert_eq!(response.revoked_sessions, 2, "a reset ends every session");
    for token in [&laptop, &phone] {
        assert_eq!(server.session_reason(token).await, "UNAUTHENTICATED");
    }
    assert_eq!(reason(&server.sign_in("ann@example.com", PASSWORD).await.unwrap_err()), "INVALID_CREDENTIALS");
    let fresh = server.sign_in("ann@example.com", NEW_PASSWORD).await?;
    let user = server.users().get_current_user(authed(GetCurrentUserRequest {}, &fresh)).await?.into_inner();
    assert!(user.user.ok_or("no user")?.email_verified, "the link proved the mailbox");

    // The owner hears of it; the link is spent.
    let mails = mailpit.wait_for("ann@example.com", 2).await?;
    assert!(mails[0].subject.contains("password was changed"), "{}", mails[0].subject);
    let replay = server.users().reset_password(reset(&token, "yet another passphrase")).await.unwrap_err();
    assert_eq!((replay.code(), reason(&replay).as_str()), (Code::InvalidArgument, "EMAIL_TOKEN_INVALID"));
    server.sign_in("ann@example.com", NEW_PASSWORD).await?;
    Ok(())
}

async fn reset_links_are_single_use_short_lived_and_voided_by_newer_ones(backend: Backend) -> TestResult {
    let (server, mailpit) = with_mail(backend).await?;
    server.sign_up("ann@example.com").await?;
    let first = reset_token(&server, &mailpit, "ann@example.com", 1).await?;
    let second = reset_token(&server, &mailpit, "ann@example.com", 2).await?;
    assert_ne!(first, second);
    let voided = server.users().reset_password(reset(&first, NEW_PASSWORD)).await.unwrap_err();
    assert_eq!(reason(&voided), "EMAIL_TOKEN_INVALID", "a newer link voids the older");

    // A weak password leaves the link usable; an expired link is dead.
    let weak = server.users().reset_password(reset(&second, "short")).await.unwrap_err();
    assert_eq!(reason(&weak), "WEAK_PASSWORD");
    let common = server.users().reset_password(reset(&second, "password123")).await.unwrap_err();
    assert_eq!(reason(&common), "PASSWORD_TOO_COMMON");
    server.clock.advance(Duration::from_secs(3601));
    let expired = server.users().reset_password(reset(&second, NEW_PASSWORD)).await.unwrap_err();
    assert_eq!(reason(&expired), "EMAIL_TOKEN_INVALID");
    server.sign_in("ann@example.com", PASSWORD).await?;
    Ok(())
}

async fn a_password_change_voids_reset_links_and_sends_a_notice(backend: Backend) -> TestResult {
    let (server, mailpit) = with_mail(backend).await?;
    let session = server.sign_up("ann@example.com").await?;
    let token = reset_token(&server, &mailpit, "ann@example.com", 1).await?;
    let change = ChangePasswordRequest { current_password: PASSWORD.into(), new_password: NEW_PASSWORD.into() };
    server.users().change_password(authed(change, &session)).await?;
    let mails = mailpit.wait_for("ann@example.com", 2).await?;
    assert!(mails[0].subject.contains("password was changed"), "{}", mails[0].subject);
    let stale = server.users().reset_password(reset(&token, "an attacker's passphrase")).await.unwrap_err();
    assert_eq!(reason(&stale), "EMAIL_TOKEN_INVALID");
    server.sign_in("ann@example.com", NEW_PASSWORD).await?;
    Ok(())
}

async fn unknown_and_passwordless_addresses_get_the_same_answer_and_no_mail(backend: Backend) -> TestResult {
    let (server, mailpit) = with_mail(backend).await?;
    server.sign_up("ann@example.com").await?;
    let known = server.users().request_password_reset(reset_request("ann@example.com")).await?.into_inner();
    let unknown = server.users().request_password_reset(reset_request("nobody@example.com")).await?.into_inner();
    assert_eq!(known, unknown);
    mailpit.wait_for("ann@example.com", 1).await?;
    // The known address's mail is out; the unknown one never had a row.
    assert_eq!(server.scalar("SELECT COUNT(*) FROM mail_outbox WHERE recipient = 'nobody@example.com'").await?, 0);
    assert!(mailpit.messages_to("nobody@example.com").await?.is_empty());

    for bad in ["", "not an address", &format!("{}@example.com", "a".repeat(300))] {
        let status = server.users().request_password_reset(reset_request(bad)).await.unwrap_err();
        assert_eq!(reason(&status), "INVALID_ARGUMENT", "{bad:?}");
    }
    Ok(())
}

async fn of_parallel_resets_with_one_link_exactly_one_succeeds(backend: Backend) -> TestResult {
    const CALLERS: usize = 8;
    let (server, mailpit) = with_mail(backend).await?;
    server.sign_up("ann@example.com").await?;
    let token = reset_token(&server, &mailpit, "ann@example.com", 1).await?;
    let barrier = Arc::new(Barrier::new(CALLERS));
    let mut calls = Vec::new();
    for n in 0..CALLERS {
        let (mut users, barrier, token) = (server.users(), barrier.clone(), token.clone());
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            users.reset_password(reset(&token, &format!("parallel passphrase {n}"))).await.map(|_| n)
        }));
    }
    let mut winners = Vec::new();
    for call in calls {
        match call.await? {
            Ok(n) => winners.push(n),
            Err(status) => assert_eq!(reason(&status), "EMAIL_TOKEN_INVALID"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    server.sign_in("ann@example.com", &format!("parallel passphrase {}", winners[0])).await?;
    Ok(())
}

async fn verifies_an_address_through_the_mailbox(backend: Backend) -> TestResult {
    let (server, mailpit) = with_mail(backend).await?;
    let session = server.sign_up("ann@example.com").await?;
    server.users().request_email_verification(authed(RequestEmailVerificationRequest::default(), &session)).await?;
    let mail = mailpit.wait_for("ann@example.com", 1).await?.remove(0);
    assert!(mail.subject.contains("Verify"), "{}", mail.subject);
    let token = mail.token(VERIFY_PATH).ok_or("no verification link")?;

    // A verification link is no reset link.
    let wrong_kind = server.users().reset_password(reset(&token, NEW_PASSWORD)).await.unwrap_err();
    assert_eq!(reason(&wrong_kind), "EMAIL_TOKEN_INVALID");

    let verified = server
        .users()
        .verify_email(VerifyEmailRequest { token: token.clone(), code: String::new() })
        .await?
        .into_inner();
    assert!(verified.user.ok_or("no user")?.email_verified);
    let user = server.users().get_current_user(authed(GetCurrentUserRequest {}, &session)).await?.into_inner();
    assert!(user.user.ok_or("no user")?.email_verified, "the session sees the change at once");
    let replay = server.users().verify_email(VerifyEmailRequest { token, code: String::new() }).await.unwrap_err();
    assert_eq!(reason(&replay), "EMAIL_TOKEN_INVALID");

    // Verified already: nothing more is sent.
    server.users().request_email_verification(authed(RequestEmailVerificationRequest::default(), &session)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mailpit.messages_to("ann@example.com").await?.len(), 1);
    // Without a session the address is asked for; a bad session is refused.
    let anonymous =
        server.users().request_email_verification(RequestEmailVerificationRequest::default()).await.unwrap_err();
    assert_eq!(reason(&anonymous), "INVALID_ARGUMENT");
    let forged = authed(RequestEmailVerificationRequest { email: "ann@example.com".into() }, "kp_forged");
    assert_eq!(reason(&server.users().request_email_verification(forged).await.unwrap_err()), "UNAUTHENTICATED");
    Ok(())
}

async fn bad_tokens_are_refused_with_one_reason(backend: Backend) -> TestResult {
    let (server, mailpit) = with_mail(backend).await?;
    server.sign_up("ann@example.com").await?;
    let good = reset_token(&server, &mailpit, "ann@example.com", 1).await?;
    let unknown = format!("kpm_{}", "A".repeat(43));
    let cases =
        [String::new(), "kpm_".into(), good[..good.len() - 1].into(), format!("{good}x"), unknown, "x".repeat(60_000)];
    for bad in &cases {
        let status = server.users().reset_password(reset(bad, NEW_PASSWORD)).await.unwrap_err();
        assert_eq!(reason(&status), "EMAIL_TOKEN_INVALID", "reset with {:.20}", bad);
        let status = server
            .users()
            .verify_email(VerifyEmailRequest { token: bad.clone(), code: String::new() })
            .await
            .unwrap_err();
        assert_eq!(reason(&status), "EMAIL_TOKEN_INVALID", "verify with {:.20}", bad);
    }
    // None of them used up the good link.
    server.users().reset_password(reset(&good, NEW_PASSWORD)).await?;
    Ok(())
}

async fn a_message_queued_while_smtp_is_down_is_delivered_once_it_is_back(backend: Backend) -> TestResult {
    let (server, mut mailpit) = with_mail(backend).await?;
    let session = server.sign_up("ann@example.com").await?;
    mailpit.stop();
    server.users().request_email_verification(authed(RequestEmailVerificationRequest::default(), &session)).await?;
    // Wait for the failed attempt, then bring SMTP back and let the retry come due.
    let failed_attempt = "SELECT COUNT(*) FROM mail_outbox WHERE attempts >= 1 AND status = 'pending'";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while server.scalar(failed_attempt).await? == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the courier never tried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    mailpit.start_again().await?;
    server.clock.advance(Duration::from_secs(5));
    let mails = mailpit.wait_for("ann@example.com", 1).await?;
    assert!(mails[0].token(VERIFY_PATH).is_some());
    // Sent once, and marked so: no second copy on the next polls.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mailpit.messages_to("ann@example.com").await?.len(), 1);
    assert_eq!(server.scalar("SELECT COUNT(*) FROM mail_outbox WHERE status = 'sent' AND text_body = ''").await?, 1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_mail_the_flows_that_need_it_answer_mail_disabled() -> TestResult {
    let server = TestServer::start(Backend::Sqlite).await?;
    let session = server.sign_up("ann@example.com").await?;
    let status = server.users().request_password_reset(reset_request("ann@example.com")).await.unwrap_err();
    assert_eq!((status.code(), reason(&status).as_str()), (Code::FailedPrecondition, "MAIL_DISABLED"));
    let status = server
        .users()
        .request_email_verification(authed(RequestEmailVerificationRequest::default(), &session))
        .await
        .unwrap_err();
    assert_eq!(reason(&status), "MAIL_DISABLED");
    // A password change still works, without a notice.
    let change = ChangePasswordRequest { current_password: PASSWORD.into(), new_password: NEW_PASSWORD.into() };
    server.users().change_password(authed(change, &session)).await?;
    assert_eq!(server.count("mail_outbox").await?, 0);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_send_each_message_exactly_once() -> TestResult {
    const USERS: usize = 12;
    let mailpit = Mailpit::start().await?;
    let a = TestServer::start_with(Backend::Postgres, |config| mailpit.configure(&mut config.mail)).await?;
    let b = TestServer::replica_of_with(&a, |config| mailpit.configure(&mut config.mail)).await?;
    let mut sessions = Vec::new();
    for n in 0..USERS {
        sessions.push(a.sign_up(&format!("user{n}@example.com")).await?);
    }
    // Queued on both replicas at once; both couriers poll the one outbox.
    let barrier = Arc::new(Barrier::new(USERS));
    let mut calls = Vec::new();
    for (n, session) in sessions.into_iter().enumerate() {
        let mut users = if n % 2 == 0 { a.users() } else { b.users() };
        let barrier = barrier.clone();
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            users.request_email_verification(authed(RequestEmailVerificationRequest::default(), &session)).await
        }));
    }
    for call in calls {
        call.await??;
    }
    for n in 0..USERS {
        mailpit.wait_for(&format!("user{n}@example.com"), 1).await?;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    for n in 0..USERS {
        assert_eq!(mailpit.messages_to(&format!("user{n}@example.com")).await?.len(), 1, "user{n}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_address_gets_a_capped_number_of_link_mails() -> TestResult {
    let mailpit = Mailpit::start().await?;
    let server = TestServer::start_with(Backend::Sqlite, |config| {
        mailpit.configure(&mut config.mail);
        config.mail.per_recipient_burst = 2;
        config.mail.per_recipient_per_hour = 1;
    })
    .await?;
    let session = server.sign_up("ann@example.com").await?;
    // Resets answer alike whether or not a mail goes out.
    for _ in 0..4 {
        server.users().request_password_reset(reset_request("ann@example.com")).await?;
    }
    mailpit.wait_for("ann@example.com", 2).await?;
    let verify =
        server.users().request_email_verification(authed(RequestEmailVerificationRequest::default(), &session)).await;
    let status = verify.unwrap_err();
    assert_eq!(reason(&status), "RATE_LIMITED");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(mailpit.messages_to("ann@example.com").await?.len(), 2);
    // An hour later the address may get one more.
    server.clock.advance(Duration::from_secs(3600));
    server.users().request_email_verification(authed(RequestEmailVerificationRequest::default(), &session)).await?;
    mailpit.wait_for("ann@example.com", 3).await?;
    Ok(())
}

async fn verifies_with_the_mailed_code_in_the_session_that_asked(backend: Backend) -> TestResult {
    let (server, mailpit) = with_mail(backend).await?;
    let session = server.sign_up("ann@example.com").await?;
    let other = server.sign_in("ann@example.com", PASSWORD).await?;
    server.users().request_email_verification(authed(RequestEmailVerificationRequest::default(), &session)).await?;
    let mail = mailpit.wait_for("ann@example.com", 1).await?.remove(0);
    let code: String = mail.text.split("enter this code: ").nth(1).unwrap_or_default().chars().take(6).collect();
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()), "{}", mail.text);
    let with_code = |code: &str| VerifyEmailRequest { token: String::new(), code: code.into() };

    // Not without a session, not in another session, not a wrong code.
    let anonymous = server.users().verify_email(with_code(&code)).await.unwrap_err();
    assert_eq!(reason(&anonymous), "UNAUTHENTICATED");
    let elsewhere = server.users().verify_email(authed(with_code(&code), &other)).await.unwrap_err();
    assert_eq!(reason(&elsewhere), "EMAIL_TOKEN_INVALID");
    let wrong = if code == "000000" { "000001" } else { "000000" };
    assert_eq!(
        reason(&server.users().verify_email(authed(with_code(wrong), &session)).await.unwrap_err()),
        "EMAIL_TOKEN_INVALID"
    );

    let verified = server.users().verify_email(authed(with_code(&code), &session)).await?.into_inner();
    assert!(verified.user.ok_or("no user")?.email_verified);
    let replay = server.users().verify_email(authed(with_code(&code), &session)).await.unwrap_err();
    assert_eq!(reason(&replay), "EMAIL_TOKEN_INVALID");
    Ok(())
}
