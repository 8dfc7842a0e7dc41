//! `sign_up.require_email_verification`: sign-up answers the same for new
//! and taken addresses (the owner of a taken one gets a notice), and a
//! password account signs in only once its address is verified.

use std::sync::Arc;

use keyport_proto::v1::{RequestEmailVerificationRequest, SignUpRequest, SignUpResponse, VerifyEmailRequest};
use keyport_tests::{
    Backend, TestServer,
    grpc::reason,
    mailpit::{Mailpit, PUBLIC_BASE_URL},
    server::PASSWORD,
};
use tokio::sync::Barrier;

use crate::{TestResult, on_both_backends};

on_both_backends!(
    sign_up_answers_alike_for_new_and_taken_addresses,
    an_unverified_account_signs_in_once_verified,
    a_new_link_goes_only_to_unverified_accounts,
    parallel_sign_ups_of_one_address_make_one_account,
);

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn strict(backend: Backend) -> Result<(TestServer, Mailpit), BoxError> {
    let mailpit = Mailpit::start().await?;
    let server = TestServer::start_with(backend, |config| {
        mailpit.configure(&mut config.mail);
        config.sign_up.require_email_verification = true;
    })
    .await?;
    Ok((server, mailpit))
}

fn sign_up(email: &str, password: &str) -> SignUpRequest {
    SignUpRequest { email: email.into(), password: password.into(), name: "Ann".into() }
}

async fn sign_up_answers_alike_for_new_and_taken_addresses(backend: Backend) -> TestResult {
    let (server, mailpit) = strict(backend).await?;
    let new = server.users().sign_up(sign_up("ann@example.com", PASSWORD)).await?.into_inner();
    let taken = server.users().sign_up(sign_up("Ann@Example.com", "another passphrase here")).await?.into_inner();
    let expected = SignUpResponse { user: None, session: None, verification_required: true };
    assert_eq!((&new, &taken), (&expected, &expected));

    let mails = mailpit.wait_for("ann@example.com", 2).await?;
    let (notice, link) = (&mails[0], &mails[1]);
    assert!(link.token("/verify-email").is_some(), "{}", link.text);
    assert!(notice.subject.contains("tried to sign up"), "{}", notice.subject);
    assert!(notice.text.contains(&format!("{PUBLIC_BASE_URL}/forgot-password")), "{}", notice.text);
    assert!(notice.token("/verify-email").is_none() && !notice.text.contains("kpm_"), "a notice carries no token");
    // The second sign-up changed nothing: one account, the first password.
    assert_eq!(server.count("users").await?, 1);
    let refused = server.sign_in("ann@example.com", "another passphrase here").await.unwrap_err();
    assert_eq!(reason(&refused), "INVALID_CREDENTIALS");
    Ok(())
}

async fn an_unverified_account_signs_in_once_verified(backend: Backend) -> TestResult {
    let (server, mailpit) = strict(backend).await?;
    server.users().sign_up(sign_up("ann@example.com", PASSWORD)).await?;
    // A wrong password says nothing about verification.
    assert_eq!(reason(&server.sign_in("ann@example.com", "wrong password!").await.unwrap_err()), "INVALID_CREDENTIALS");
    let unverified = server.sign_in("ann@example.com", PASSWORD).await.unwrap_err();
    assert_eq!(reason(&unverified), "EMAIL_NOT_VERIFIED");
    assert_eq!(server.count("sessions").await?, 0);

    let token = mailpit.wait_for("ann@example.com", 1).await?[0].token("/verify-email").ok_or("no link")?;
    let verified = server.users().verify_email(VerifyEmailRequest { token, code: String::new() }).await?.into_inner();
    assert!(verified.user.ok_or("no user")?.email_verified);
    let session = server.sign_in("ann@example.com", PASSWORD).await?;
    assert_eq!(server.session_reason(&session).await, "OK");
    Ok(())
}

async fn a_new_link_goes_only_to_unverified_accounts(backend: Backend) -> TestResult {
    let (server, mailpit) = strict(backend).await?;
    server.users().sign_up(sign_up("ann@example.com", PASSWORD)).await?;
    mailpit.wait_for("ann@example.com", 1).await?;
    for email in ["ann@example.com", "nobody@example.com"] {
        let request = RequestEmailVerificationRequest { email: email.into() };
        server.users().request_email_verification(request).await?;
    }
    let mails = mailpit.wait_for("ann@example.com", 2).await?;
    let (newest, first) = (mails[0].token("/verify-email"), mails[1].token("/verify-email"));
    assert!(newest.is_some() && newest != first);
    // The newer link voided the first.
    let stale = server
        .users()
        .verify_email(VerifyEmailRequest { token: first.unwrap_or_default(), code: String::new() })
        .await
        .unwrap_err();
    assert_eq!(reason(&stale), "EMAIL_TOKEN_INVALID");
    server.users().verify_email(VerifyEmailRequest { token: newest.unwrap_or_default(), code: String::new() }).await?;
    assert_eq!(server.scalar("SELECT COUNT(*) FROM mail_outbox WHERE recipient = 'nobody@example.com'").await?, 0);

    // Verified: no more links.
    server
        .users()
        .request_email_verification(RequestEmailVerificationRequest { email: "ann@example.com".into() })
        .await?;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(mailpit.messages_to("ann@example.com").await?.len(), 2);
    Ok(())
}

async fn parallel_sign_ups_of_one_address_make_one_account(backend: Backend) -> TestResult {
    const CALLERS: usize = 6;
    let (server, mailpit) = strict(backend).await?;
    let barrier = Arc::new(Barrier::new(CALLERS));
    let mut calls = Vec::new();
    for n in 0..CALLERS {
        let (mut users, barrier) = (server.users(), barrier.clone());
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            users.sign_up(sign_up("ann@example.com", &format!("parallel passphrase {n}"))).await
        }));
    }
    for call in calls {
        assert!(call.await??.into_inner().verification_required);
    }
    assert_eq!(server.count("users").await?, 1);
    assert_eq!(server.count("email_tokens").await?, 1);
    // One link, and notices within the recipient's cap (3 mails at once).
    mailpit.wait_for("ann@example.com", 1).await?;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mails = mailpit.messages_to("ann@example.com").await?;
    assert_eq!(mails.iter().filter(|mail| mail.token("/verify-email").is_some()).count(), 1);
    assert!(mails.len() <= 3, "{} mails", mails.len());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requiring_verification_without_mail_does_not_start() -> TestResult {
    let started =
        TestServer::start_with(Backend::Sqlite, |config| config.sign_up.require_email_verification = true).await;
    let error = started.err().ok_or("started without mail")?.to_string();
    assert!(error.contains("require_email_verification"), "{error}");
    Ok(())
}
