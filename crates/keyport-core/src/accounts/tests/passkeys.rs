//! Passkeys through [`Accounts`] on the memory store, with a software
//! passkey: the rules the SQL store's tests check end to end, kept by the
//! store the use cases' unit tests run on.

use std::time::Duration;

use super::{PASSKEY_ORIGIN, PASSWORD, TestResult, kit, sign_up};
use crate::{
    accounts::SignedIn,
    error::Error,
    second_factor::{Assurance, FactorAnswer, FactorKind, soft_passkey::SoftKey},
};

const EMAIL: &str = "ann@example.com";

#[tokio::test]
async fn a_passkey_registers_signs_in_alone_answers_challenges_and_goes() -> TestResult {
    let kit = kit()?;
    let grant = sign_up(&kit, EMAIL, PASSWORD, "Ann").await?;
    let caller = kit.accounts.authenticate(&grant.token).await?;
    let other = sign_up_again(&kit).await?;
    let mut key = SoftKey::at(PASSKEY_ORIGIN).map_err(|e| e.to_string())?;

    let started = kit.accounts.start_passkey_registration(&caller).await?;
    let credential = key.register(&started.options).map_err(|e| e.to_string())?;
    let (passkey, session) =
        kit.accounts.finish_passkey_registration(&caller, &started.ceremony, &credential, "", &kit.client).await?;
    assert_eq!((passkey.name.as_str(), session.assurance), ("Passkey", Assurance::Aal2));
    assert!(matches!(kit.accounts.authenticate(&other).await, Err(Error::Unauthenticated)), "other sessions end");
    // The ceremony worked once.
    let again = kit.accounts.finish_passkey_registration(&caller, &started.ceremony, &credential, "", &kit.client);
    assert!(matches!(again.await, Err(Error::PasskeyInvalid)));

    // Alone, it signs in at AAL2; its ceremony works once.
    let started = kit.accounts.start_passkey_sign_in(&kit.client).await?;
    let answer = key.sign_discoverable(&started.options).map_err(|e| e.to_string())?;
    let grant = kit.accounts.finish_passkey_sign_in(&started.ceremony, &answer, &kit.client).await?;
    assert_eq!(grant.session.assurance, Assurance::Aal2);
    let replayed = kit.accounts.finish_passkey_sign_in(&started.ceremony, &answer, &kit.client).await;
    assert!(matches!(replayed, Err(Error::PasskeyInvalid)));

    // As the second factor of a password: offered alone, answered once.
    let SignedIn::Challenge(challenge) = kit.accounts.sign_in(EMAIL, PASSWORD, &kit.client).await? else {
        return Err("a user with a passkey got a session from a password".into());
    };
    assert_eq!(challenge.factors, [FactorKind::Passkey]);
    let options = challenge.passkey_options.ok_or("no passkey request")?;
    let answer = key.sign(&options).map_err(|e| e.to_string())?;
    let completed = kit
        .accounts
        .complete_sign_in(
            &challenge.challenge,
            FactorAnswer::Passkey { ceremony: None, credential: &answer },
            &kit.client,
        )
        .await?;
    assert_eq!(completed.grant.session.assurance, Assurance::Aal2);

    // An older answer after a newer one is a counter going back.
    let first = kit.accounts.start_passkey_sign_in(&kit.client).await?;
    let second = kit.accounts.start_passkey_sign_in(&kit.client).await?;
    let older = key.sign_discoverable(&first.options).map_err(|e| e.to_string())?;
    let newer = key.sign_discoverable(&second.options).map_err(|e| e.to_string())?;
    kit.accounts.finish_passkey_sign_in(&second.ceremony, &newer, &kit.client).await?;
    let went_back = kit.accounts.finish_passkey_sign_in(&first.ceremony, &older, &kit.client).await;
    assert!(matches!(went_back, Err(Error::PasskeyInvalid)));

    // Expired ceremonies are refused and swept.
    let late = kit.accounts.start_passkey_sign_in(&kit.client).await?;
    let answer = key.sign_discoverable(&late.options).map_err(|e| e.to_string())?;
    kit.clock.advance(Duration::from_secs(301));
    assert!(matches!(
        kit.accounts.finish_passkey_sign_in(&late.ceremony, &answer, &kit.client).await,
        Err(Error::PasskeyInvalid)
    ));
    // Every other ceremony was taken by its finish, right or wrong.
    assert_eq!(kit.accounts.sweep_expired().await?.ceremonies, 1, "the late one");

    // Deleting the last factor needs a recent one (past 10 minutes now),
    // then leaves AAL1.
    kit.clock.advance(Duration::from_secs(300));
    let holder = kit.accounts.authenticate(&completed.grant.token).await?;
    assert!(matches!(
        kit.accounts.delete_passkey(&holder, &passkey.id.to_string(), &kit.client).await,
        Err(Error::StepUpRequired)
    ));
    let fresh = kit.accounts.start_passkey_sign_in(&kit.client).await?;
    let answer = key.sign_discoverable(&fresh.options).map_err(|e| e.to_string())?;
    let fresh = kit.accounts.finish_passkey_sign_in(&fresh.ceremony, &answer, &kit.client).await?;
    let holder = kit.accounts.authenticate(&fresh.token).await?;
    let unknown = kit.accounts.delete_passkey(&holder, "not-an-id", &kit.client).await;
    assert!(matches!(unknown, Err(Error::PasskeyNotFound)));
    kit.accounts.delete_passkey(&holder, &passkey.id.to_string(), &kit.client).await?;
    assert!(kit.accounts.list_passkeys(&holder).await?.is_empty());
    assert!(matches!(kit.accounts.sign_in(EMAIL, PASSWORD, &kit.client).await?, SignedIn::Session(_)));
    Ok(())
}

/// A second session of Ann's.
async fn sign_up_again(kit: &super::Kit) -> Result<String, Error> {
    match kit.accounts.sign_in(EMAIL, PASSWORD, &kit.client).await? {
        SignedIn::Session(grant) => Ok(grant.token),
        SignedIn::Challenge(_) => Err(Error::Internal("no second factor yet".into())),
    }
}
