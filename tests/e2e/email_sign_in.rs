//! `StartEmailSignIn` / `FinishEmailSignIn`: signing in with a mailed link
//! or code, bound to the browser that asked, against a real SMTP server.

use std::{sync::Arc, time::Duration};

use keyport_proto::v1::{
    FinishEmailSignInRequest, GetCurrentUserRequest, StartEmailSignInRequest, finish_email_sign_in_request::Proof,
};
use keyport_tests::{
    Backend, TestServer,
    grpc::{authed, reason},
    mailpit::{Delivered, Mailpit},
};
use tokio::sync::Barrier;
use tonic::Code;

use crate::{TestResult, on_both_backends};

on_both_backends!(
    signs_in_with_the_code_or_the_link_once,
    another_browsers_binding_is_refused,
    wrong_codes_use_up_five_attempts_even_in_parallel,
    of_parallel_right_codes_exactly_one_signs_in,
    unknown_addresses_get_the_same_answer_and_sign_up_only_when_allowed,
    codes_expire_and_a_newer_start_voids_the_older,
);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const LINK_PATH: &str = "/sign-in/email";

async fn with_mail(backend: Backend, by_email: bool) -> Result<(TestServer, Mailpit), BoxError> {
    let mailpit = Mailpit::start().await?;
    let server = TestServer::start_with(backend, |config| {
        mailpit.configure(&mut config.mail);
        config.mail.per_recipient_burst = 0;
        config.sign_up.by_email = by_email;
    })
    .await?;
    Ok((server, mailpit))
}

/// Starts a sign-in for `email`; returns the binding.
async fn start(server: &TestServer, email: &str) -> Result<String, BoxError> {
    let request = StartEmailSignInRequest { email: email.into() };
    Ok(server.sessions().start_email_sign_in(request).await?.into_inner().binding)
}

fn finish(binding: &str, proof: Proof) -> FinishEmailSignInRequest {
    FinishEmailSignInRequest { binding: binding.into(), proof: Some(proof) }
}

/// The six-digit code of a sign-in mail (the end of its subject).
fn code(mail: &Delivered) -> String {
    mail.subject.rsplit(' ').next().unwrap_or_default().to_owned()
}

async fn signs_in_with_the_code_or_the_link_once(backend: Backend) -> TestResult {
    let (server, mailpit) = with_mail(backend, false).await?;
    server.sign_up("ann@example.com").await?;

    let binding = start(&server, "Ann@Example.com").await?;
    assert!(binding.len() >= 43, "{binding}");
    let mail = mailpit.wait_for("ann@example.com", 1).await?.remove(0);
    let code = code(&mail);
    assert!(code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()), "{}", mail.subject);
    assert!(mail.text.contains(&code) && mail.html.contains(&code));
    let spaced = format!("{} {}", &code[..3], &code[3..]);
    let signed_in = server.sessions().finish_email_sign_in(finish(&binding, Proof::Code(spaced))).await?.into_inner();
    assert!(!signed_in.new_user);
    let token = signed_in.session.ok_or("no session")?.token;
    let user = server.users().get_current_user(authed(GetCurrentUserRequest {}, &token)).await?.into_inner();
    assert!(user.user.ok_or("no user")?.email_verified, "the mailbox is proven");
    let again = server.sessions().finish_email_sign_in(finish(&binding, Proof::Code(code))).await.unwrap_err();
    assert_eq!((again.code(), reason(&again).as_str()), (Code::InvalidArgument, "EMAIL_TOKEN_INVALID"));

    let binding = start(&server, "ann@example.com").await?;
    let link = mailpit.wait_for("ann@example.com", 2).await?[0].token(LINK_PATH).ok_or("no link")?;
    server.sessions().finish_email_sign_in(finish(&binding, Proof::Token(link.clone()))).await?;
    let replay = server.sessions().finish_email_sign_in(finish(&binding, Proof::Token(link))).await.unwrap_err();
    assert_eq!(reason(&replay), "EMAIL_TOKEN_INVALID");
    Ok(())
}

async fn another_browsers_binding_is_refused(backend: Backend) -> TestResult {
    let (server, mailpit) = with_mail(backend, false).await?;
    server.sign_up("ann@example.com").await?;
    server.sign_up("bob@example.com").await?;
    let ann = start(&server, "ann@example.com").await?;
    let bob = start(&server, "bob@example.com").await?;
    let mail = mailpit.wait_for("ann@example.com", 1).await?.remove(0);
    let (code, link) = (code(&mail), mail.token(LINK_PATH).ok_or("no link")?);
    // One character changed, to one it never was (a fixed letter matched it one run in 64).
    let last = if ann.ends_with('A') { 'B' } else { 'A' };
    let forged = format!("{}{last}", &ann[..ann.len() - 1]);
    for binding in [bob.as_str(), forged.as_str(), "", &"x".repeat(10_000)] {
        for proof in [Proof::Code(code.clone()), Proof::Token(link.clone())] {
            let status = server.sessions().finish_email_sign_in(finish(binding, proof)).await.unwrap_err();
            assert_eq!(reason(&status), "EMAIL_TOKEN_INVALID", "binding {:.12}", binding);
        }
    }
    let no_proof = FinishEmailSignInRequest { binding: ann.clone(), proof: None };
    assert_eq!(reason(&server.sessions().finish_email_sign_in(no_proof).await.unwrap_err()), "EMAIL_TOKEN_INVALID");
    // Bob's own sign-in took two of his attempts; Ann's still works.
    server.sessions().finish_email_sign_in(finish(&ann, Proof::Code(code))).await?;
    Ok(())
}

async fn wrong_codes_use_up_five_attempts_even_in_parallel(backend: Backend) -> TestResult {
    const GUESSES: usize = 10;
    let (server, mailpit) = with_mail(backend, false).await?;
    server.sign_up("ann@example.com").await?;
    let binding = start(&server, "ann@example.com").await?;
    let right = code(&mailpit.wait_for("ann@example.com", 1).await?[0]);
    let wrong = if right == "000000" { "000001" } else { "000000" };
    let barrier = Arc::new(Barrier::new(GUESSES));
    let mut guesses = Vec::new();
    for _ in 0..GUESSES {
        let (mut sessions, barrier, request) =
            (server.sessions(), barrier.clone(), finish(&binding, Proof::Code(wrong.into())));
        guesses.push(tokio::spawn(async move {
            barrier.wait().await;
            sessions.finish_email_sign_in(request).await
        }));
    }
    for guess in guesses {
        assert_eq!(reason(&guess.await?.unwrap_err()), "EMAIL_TOKEN_INVALID");
    }
    // Exactly five were checked (and audited); the right code now comes too late.
    assert_eq!(server.scalar("SELECT COUNT(*) FROM audit_events WHERE kind = 'email_sign_in_failed'").await?, 5);
    let late = server.sessions().finish_email_sign_in(finish(&binding, Proof::Code(right))).await.unwrap_err();
    assert_eq!(reason(&late), "EMAIL_TOKEN_INVALID");
    Ok(())
}

async fn of_parallel_right_codes_exactly_one_signs_in(backend: Backend) -> TestResult {
    const CALLERS: usize = 4;
    let (server, mailpit) = with_mail(backend, false).await?;
    server.sign_up("ann@example.com").await?;
    let binding = start(&server, "ann@example.com").await?;
    let right = code(&mailpit.wait_for("ann@example.com", 1).await?[0]);
    let barrier = Arc::new(Barrier::new(CALLERS));
    let mut calls = Vec::new();
    for _ in 0..CALLERS {
        let (mut sessions, barrier, request) =
            (server.sessions(), barrier.clone(), finish(&binding, Proof::Code(right.clone())));
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            sessions.finish_email_sign_in(request).await
        }));
    }
    let mut sessions = 0;
    for call in calls {
        match call.await? {
            Ok(_) => sessions += 1,
            Err(status) => assert_eq!(reason(&status), "EMAIL_TOKEN_INVALID"),
        }
    }
    assert_eq!(sessions, 1);
    assert_eq!(server.count("sessions").await?, 2, "the sign-up's session and one more");
    Ok(())
}

async fn unknown_addresses_get_the_same_answer_and_sign_up_only_when_allowed(backend: Backend) -> TestResult {
    let (server, mailpit) = with_mail(backend, false).await?;
    server.sign_up("ann@example.com").await?;
    let known =
        server.sessions().start_email_sign_in(StartEmailSignInRequest { email: "ann@example.com".into() }).await?;
    let unknown =
        server.sessions().start_email_sign_in(StartEmailSignInRequest { email: "nobody@example.com".into() }).await?;
    let (known, unknown) = (known.into_inner(), unknown.into_inner());
    assert_eq!(known.binding.len(), unknown.binding.len());
    assert_eq!(known.expires_at, unknown.expires_at, "same clock, same lifetime");
    mailpit.wait_for("ann@example.com", 1).await?;
    assert!(mailpit.messages_to("nobody@example.com").await?.is_empty());
    assert_eq!(server.scalar("SELECT COUNT(*) FROM email_sign_ins WHERE email = 'nobody@example.com'").await?, 0);
    for bad in ["", "not an address"] {
        let status =
            server.sessions().start_email_sign_in(StartEmailSignInRequest { email: bad.into() }).await.unwrap_err();
        assert_eq!(reason(&status), "INVALID_ARGUMENT");
    }

    // With sign-up by email, the same call makes a passwordless, verified account.
    let (server, mailpit) = with_mail(backend, true).await?;
    let binding = start(&server, "new@example.com").await?;
    let code = code(&mailpit.wait_for("new@example.com", 1).await?[0]);
    let signed_in = server.sessions().finish_email_sign_in(finish(&binding, Proof::Code(code))).await?.into_inner();
    assert!(signed_in.new_user);
    let user = signed_in.user.ok_or("no user")?;
    assert!(user.email_verified);
    assert_eq!(server.count("passwords").await?, 0, "no password");
    Ok(())
}

async fn codes_expire_and_a_newer_start_voids_the_older(backend: Backend) -> TestResult {
    let (server, mailpit) = with_mail(backend, false).await?;
    server.sign_up("ann@example.com").await?;
    let first = start(&server, "ann@example.com").await?;
    let first_code = code(&mailpit.wait_for("ann@example.com", 1).await?[0]);
    let second = start(&server, "ann@example.com").await?;
    let second_code = code(&mailpit.wait_for("ann@example.com", 2).await?[0]);
    let voided = server.sessions().finish_email_sign_in(finish(&first, Proof::Code(first_code))).await.unwrap_err();
    assert_eq!(reason(&voided), "EMAIL_TOKEN_INVALID");
    server.clock.advance(Duration::from_secs(601));
    let expired = server.sessions().finish_email_sign_in(finish(&second, Proof::Code(second_code))).await.unwrap_err();
    assert_eq!(reason(&expired), "EMAIL_TOKEN_INVALID");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_mail_email_sign_in_answers_mail_disabled() -> TestResult {
    let server = TestServer::start(Backend::Sqlite).await?;
    let request = StartEmailSignInRequest { email: "ann@example.com".into() };
    let status = server.sessions().start_email_sign_in(request).await.unwrap_err();
    assert_eq!(reason(&status), "MAIL_DISABLED");
    Ok(())
}
