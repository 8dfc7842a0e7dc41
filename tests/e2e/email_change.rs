//! `RequestEmailChange` / `ConfirmEmailChange`: moving an account to another
//! address through the new mailbox, with a notice to the old one.

use std::{sync::Arc, time::Duration};

use tokio::sync::Barrier;

use keyport_proto::v1::{
    ConfirmEmailChangeRequest, FinishEmailSignInRequest, GetCurrentUserRequest, RequestEmailChangeRequest,
    StartEmailSignInRequest, finish_email_sign_in_request::Proof,
};
use keyport_tests::{
    Backend, TestServer,
    grpc::{authed, reason},
    mailpit::Mailpit,
    server::PASSWORD,
};

use crate::{TestResult, on_both_backends};

on_both_backends!(
    moves_the_account_once_the_new_address_confirms,
    confirming_can_end_every_session,
    a_taken_address_gets_nothing_and_a_late_taker_wins,
    of_parallel_confirmations_with_one_link_exactly_one_moves_the_account,
    an_account_without_a_password_needs_a_fresh_session,
);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const LINK_PATH: &str = "/change-email";

async fn with_mail(backend: Backend) -> Result<(TestServer, Mailpit), BoxError> {
    let mailpit = Mailpit::start().await?;
    let server = TestServer::start_with(backend, |config| {
        mailpit.configure(&mut config.mail);
        config.sign_up.by_email = true;
    })
    .await?;
    Ok((server, mailpit))
}

fn change(new_email: &str, password: &str) -> RequestEmailChangeRequest {
    RequestEmailChangeRequest { new_email: new_email.into(), password: password.into() }
}

fn confirm(token: &str, end_sessions: bool) -> ConfirmEmailChangeRequest {
    ConfirmEmailChangeRequest { token: token.into(), end_sessions }
}

async fn current_email(server: &TestServer, session: &str) -> Result<String, BoxError> {
    let user = server.users().get_current_user(authed(GetCurrentUserRequest {}, session)).await?.into_inner();
    Ok(user.user.ok_or("no user")?.email)
}

async fn moves_the_account_once_the_new_address_confirms(backend: Backend) -> TestResult {
    let (server, mailpit) = with_mail(backend).await?;
    let session = server.sign_up("ann@example.com").await?;
    let wrong = server.users().request_email_change(authed(change("ann@new.example", "not it!!"), &session)).await;
    assert_eq!(reason(&wrong.unwrap_err()), "INVALID_CREDENTIALS");
    for bad in ["", "not an address", "ANN@example.com"] {
        let status = server.users().request_email_change(authed(change(bad, PASSWORD), &session)).await.unwrap_err();
        assert_eq!(reason(&status), "INVALID_ARGUMENT", "{bad:?}");
    }
    server.users().request_email_change(authed(change("Ann@New.example", PASSWORD), &session)).await?;

    let link = mailpit.wait_for("ann@new.example", 1).await?.remove(0);
    let notice = mailpit.wait_for("ann@example.com", 1).await?.remove(0);
    assert!(notice.subject.contains("being changed"), "{}", notice.subject);
    assert!(!notice.text.contains("kpm_"), "the old address gets no token");
    let token = link.token(LINK_PATH).ok_or("no link")?;
    // Nothing moved yet.
    assert_eq!(current_email(&server, &session).await?, "ann@example.com");
    server.sign_in("ann@example.com", PASSWORD).await?;

    let confirmed = server.users().confirm_email_change(confirm(&token, false)).await?.into_inner();
    let user = confirmed.user.ok_or("no user")?;
    assert_eq!((user.email.as_str(), user.email_verified, confirmed.revoked_sessions), ("ann@new.example", true, 0));
    assert_eq!(current_email(&server, &session).await?, "ann@new.example", "caches see the new address at once");
    server.sign_in("ann@new.example", PASSWORD).await?;
    assert_eq!(reason(&server.sign_in("ann@example.com", PASSWORD).await.unwrap_err()), "INVALID_CREDENTIALS");
    let replay = server.users().confirm_email_change(confirm(&token, false)).await.unwrap_err();
    assert_eq!(reason(&replay), "EMAIL_TOKEN_INVALID");
    Ok(())
}

async fn confirming_can_end_every_session(backend: Backend) -> TestResult {
    let (server, mailpit) = with_mail(backend).await?;
    let session = server.sign_up("ann@example.com").await?;
    let other = server.sign_in("ann@example.com", PASSWORD).await?;
    server.users().request_email_change(authed(change("ann@new.example", PASSWORD), &session)).await?;
    let token = mailpit.wait_for("ann@new.example", 1).await?[0].token(LINK_PATH).ok_or("no link")?;
    let confirmed = server.users().confirm_email_change(confirm(&token, true)).await?.into_inner();
    assert_eq!(confirmed.revoked_sessions, 2);
    for token in [&session, &other] {
        assert_eq!(server.session_reason(token).await, "UNAUTHENTICATED");
    }
    Ok(())
}

async fn a_taken_address_gets_nothing_and_a_late_taker_wins(backend: Backend) -> TestResult {
    let (server, mailpit) = with_mail(backend).await?;
    let session = server.sign_up("ann@example.com").await?;
    server.sign_up("bob@example.com").await?;
    server.users().request_email_change(authed(change("bob@example.com", PASSWORD), &session)).await?;
    server.users().request_email_change(authed(change("free@example.com", PASSWORD), &session)).await?;
    let token = mailpit.wait_for("free@example.com", 1).await?[0].token(LINK_PATH).ok_or("no link")?;
    assert!(mailpit.messages_to("bob@example.com").await?.is_empty(), "the taken address got nothing");

    // Someone signs up with the address before Ann confirms.
    server.sign_up("free@example.com").await?;
    let late = server.users().confirm_email_change(confirm(&token, true)).await.unwrap_err();
    assert_eq!(reason(&late), "EMAIL_TAKEN");
    assert_eq!(current_email(&server, &session).await?, "ann@example.com", "nothing changed, no session ended");
    Ok(())
}

async fn an_account_without_a_password_needs_a_fresh_session(backend: Backend) -> TestResult {
    let (server, mailpit) = with_mail(backend).await?;
    let start = StartEmailSignInRequest { email: "new@example.com".into() };
    let binding = server.sessions().start_email_sign_in(start).await?.into_inner().binding;
    let code =
        mailpit.wait_for("new@example.com", 1).await?[0].subject.rsplit(' ').next().unwrap_or_default().to_owned();
    let finish = FinishEmailSignInRequest { binding, proof: Some(Proof::Code(code)) };
    let session = server.sessions().finish_email_sign_in(finish).await?.into_inner().session.ok_or("no session")?.token;

    server.users().request_email_change(authed(change("moved@example.com", ""), &session)).await?;
    mailpit.wait_for("moved@example.com", 1).await?;
    server.clock.advance(Duration::from_secs(11 * 60));
    let stale = server.users().request_email_change(authed(change("again@example.com", ""), &session)).await;
    assert_eq!(reason(&stale.unwrap_err()), "REAUTHENTICATION_REQUIRED");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_account_without_a_password_sets_one_with_a_mailed_code() -> TestResult {
    first_password(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_account_without_a_password_sets_one_with_a_mailed_code() -> TestResult {
    first_password(Backend::Postgres).await
}

/// Signs `email` in by mail (creating the account); returns the session token.
async fn mailbox_session(server: &TestServer, mailpit: &Mailpit, email: &str, nth: usize) -> Result<String, BoxError> {
    let start = StartEmailSignInRequest { email: email.into() };
    let binding = server.sessions().start_email_sign_in(start).await?.into_inner().binding;
    let code = mailpit.wait_for(email, nth).await?[0].subject.rsplit(' ').next().unwrap_or_default().to_owned();
    let finish = FinishEmailSignInRequest { binding, proof: Some(Proof::Code(code)) };
    Ok(server.sessions().finish_email_sign_in(finish).await?.into_inner().session.ok_or("no session")?.token)
}

async fn first_password(backend: Backend) -> TestResult {
    use keyport_proto::v1::{RequestPasswordSetupRequest, SetPasswordRequest};
    let (server, mailpit) = with_mail(backend).await?;
    let session = mailbox_session(&server, &mailpit, "new@example.com", 1).await?;
    let other = mailbox_session(&server, &mailpit, "new@example.com", 2).await?;
    server.users().request_password_setup(authed(RequestPasswordSetupRequest {}, &session)).await?;
    let code =
        mailpit.wait_for("new@example.com", 3).await?[0].subject.rsplit(' ').next().unwrap_or_default().to_owned();
    assert!(code.len() == 6, "{code}");
    let set = |code: &str, password: &str| SetPasswordRequest { code: code.into(), new_password: password.into() };

    // Only in the session that asked, and only the right code.
    let elsewhere = server.users().set_password(authed(set(&code, "a first passphrase"), &other)).await.unwrap_err();
    assert_eq!(reason(&elsewhere), "EMAIL_TOKEN_INVALID");
    let wrong = if code == "000000" { "000001" } else { "000000" };
    let guess = server.users().set_password(authed(set(wrong, "a first passphrase"), &session)).await.unwrap_err();
    assert_eq!(reason(&guess), "EMAIL_TOKEN_INVALID");
    let weak = server.users().set_password(authed(set(&code, "short"), &session)).await.unwrap_err();
    assert_eq!(reason(&weak), "WEAK_PASSWORD");

    server.users().set_password(authed(set(&code, "a first passphrase"), &session)).await?;
    server.sign_in("new@example.com", "a first passphrase").await?;
    assert_eq!(server.session_reason(&other).await, "OK", "other sessions stay");
    let notice = mailpit.wait_for("new@example.com", 4).await?.remove(0);
    assert!(notice.subject.contains("password was changed"), "{}", notice.subject);
    // Once: the account has a password now.
    let again = server.users().set_password(authed(set(&code, "another passphrase"), &session)).await.unwrap_err();
    assert_eq!(reason(&again), "INVALID_ARGUMENT");
    let again = server.users().request_password_setup(authed(RequestPasswordSetupRequest {}, &session)).await;
    assert_eq!(reason(&again.unwrap_err()), "INVALID_ARGUMENT");

    // A stale session of another passwordless account must sign in again first.
    let stale = mailbox_session(&server, &mailpit, "late@example.com", 1).await?;
    server.clock.advance(Duration::from_secs(11 * 60));
    let refused = server.users().request_password_setup(authed(RequestPasswordSetupRequest {}, &stale)).await;
    assert_eq!(reason(&refused.unwrap_err()), "REAUTHENTICATION_REQUIRED");
    Ok(())
}

async fn of_parallel_confirmations_with_one_link_exactly_one_moves_the_account(backend: Backend) -> TestResult {
    const CALLERS: usize = 6;
    let (server, mailpit) = with_mail(backend).await?;
    let session = server.sign_up("ann@example.com").await?;
    server.users().request_email_change(authed(change("ann@new.example", PASSWORD), &session)).await?;
    let token = mailpit.wait_for("ann@new.example", 1).await?[0].token(LINK_PATH).ok_or("no link")?;
    let barrier = Arc::new(Barrier::new(CALLERS));
    let mut calls = Vec::new();
    for _ in 0..CALLERS {
        let (mut users, barrier, request) = (server.users(), barrier.clone(), confirm(&token, false));
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            users.confirm_email_change(request).await
        }));
    }
    let mut moved = 0;
    for call in calls {
        match call.await? {
            Ok(_) => moved += 1,
            Err(status) => assert_eq!(reason(&status), "EMAIL_TOKEN_INVALID"),
        }
    }
    assert_eq!(moved, 1);
    assert_eq!(current_email(&server, &session).await?, "ann@new.example");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_parallel_set_passwords_with_one_code_set_one() -> TestResult {
    parallel_set_passwords(Backend::Sqlite).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_parallel_set_passwords_with_one_code_set_one() -> TestResult {
    parallel_set_passwords(Backend::Postgres).await
}

async fn parallel_set_passwords(backend: Backend) -> TestResult {
    use keyport_proto::v1::{RequestPasswordSetupRequest, SetPasswordRequest};
    const CALLERS: usize = 4;
    let (server, mailpit) = with_mail(backend).await?;
    let session = mailbox_session(&server, &mailpit, "new@example.com", 1).await?;
    server.users().request_password_setup(authed(RequestPasswordSetupRequest {}, &session)).await?;
    let code =
        mailpit.wait_for("new@example.com", 2).await?[0].subject.rsplit(' ').next().unwrap_or_default().to_owned();
    let barrier = Arc::new(Barrier::new(CALLERS));
    let mut calls = Vec::new();
    for n in 0..CALLERS {
        let request = authed(
            SetPasswordRequest { code: code.clone(), new_password: format!("parallel passphrase {n}") },
            &session,
        );
        let (mut users, barrier) = (server.users(), barrier.clone());
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            users.set_password(request).await.map(|_| n)
        }));
    }
    let mut winners = Vec::new();
    for call in calls {
        match call.await? {
            Ok(n) => winners.push(n),
            // Losers find the code used, or the password already set.
            Err(status) => {
                assert!(["EMAIL_TOKEN_INVALID", "INVALID_ARGUMENT"].contains(&reason(&status).as_str()), "{status:?}")
            }
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    server.sign_in("new@example.com", &format!("parallel passphrase {}", winners[0])).await?;
    assert_eq!(server.count("passwords").await?, 1);
    Ok(())
}
