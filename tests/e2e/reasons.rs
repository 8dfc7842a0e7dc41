//! One list of reasons: every domain error reaches the wire with a named
//! `keyport.v1.ErrorReason`, with the gRPC code the proto documents, and
//! the Rust client names every reason it can get. The TypeScript, Python
//! and Go SDKs check their own lists against the same generated enum.

use std::{collections::BTreeSet, time::Duration};

use keyport_client::Reason;
use keyport_core::{Error, FieldViolation};
use keyport_proto::{reason, v1::ErrorReason};
use keyport_server::status;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::TestResult;

/// One of each domain error, with the code it must be sent with.
fn every_domain_error() -> Vec<(Error, Code)> {
    vec![
        (Error::InvalidArgument(vec![FieldViolation::new("email", "must not be empty")]), Code::InvalidArgument),
        (Error::WeakPassword { min_length: 8 }, Code::InvalidArgument),
        (Error::PasswordTooLong { max_length: 128 }, Code::InvalidArgument),
        (Error::PasswordTooCommon, Code::InvalidArgument),
        (Error::PasswordContainsEmail, Code::InvalidArgument),
        (Error::EmailTaken, Code::AlreadyExists),
        (Error::InvalidCredentials, Code::Unauthenticated),
        (Error::Unauthenticated, Code::Unauthenticated),
        (Error::SessionExpired, Code::Unauthenticated),
        (Error::PermissionDenied, Code::PermissionDenied),
        (Error::SessionNotFound, Code::NotFound),
        (Error::OAuthProviderUnknown, Code::NotFound),
        (Error::RedirectUriNotAllowed, Code::InvalidArgument),
        (Error::OAuthStateInvalid, Code::InvalidArgument),
        (Error::OAuthProviderError("access_denied".into()), Code::Unauthenticated),
        (Error::OAuthIdTokenInvalid("wrong aud".into()), Code::Unauthenticated),
        (Error::AccountLinkRefused, Code::FailedPrecondition),
        (Error::AlreadyLinked, Code::AlreadyExists),
        (Error::LinkedAccountNotFound, Code::NotFound),
        (Error::LastSignInMethod, Code::FailedPrecondition),
        (Error::EmailTokenInvalid, Code::InvalidArgument),
        (Error::MailDisabled, Code::FailedPrecondition),
        (Error::EmailNotVerified, Code::FailedPrecondition),
        (Error::ReauthenticationRequired, Code::FailedPrecondition),
        (Error::SignInChallengeInvalid, Code::InvalidArgument),
        (Error::SecondFactorInvalid, Code::Unauthenticated),
        (Error::StepUpRequired, Code::FailedPrecondition),
        (Error::SecondFactorAlreadyEnrolled, Code::AlreadyExists),
        (Error::SecondFactorNotEnrolled, Code::FailedPrecondition),
        (Error::PasskeysDisabled, Code::FailedPrecondition),
        (Error::PasskeyInvalid, Code::Unauthenticated),
        (Error::PasskeyNotFound, Code::NotFound),
        (Error::PermissionUnknown("posts:delete".into()), Code::InvalidArgument),
        (Error::UserBanned, Code::PermissionDenied),
        (Error::UserNotFound, Code::NotFound),
        (Error::ApiKeyNotFound, Code::NotFound),
        (Error::ApiKeyExpired, Code::Unauthenticated),
        (Error::ServiceAccountNotFound, Code::NotFound),
        (Error::ApiKeyNotAccepted, Code::Unauthenticated),
        (Error::OrganizationNotFound, Code::NotFound),
        (Error::MemberNotFound, Code::NotFound),
        (Error::InvitationInvalid, Code::FailedPrecondition),
        (Error::LastOwner, Code::FailedPrecondition),
        (Error::SlugTaken, Code::AlreadyExists),
        (Error::AccessTokensDisabled, Code::FailedPrecondition),
        (Error::AudienceNotAllowed, Code::InvalidArgument),
        (Error::RateLimited { retry_after: Duration::from_secs(30) }, Code::ResourceExhausted),
        (Error::Overloaded, Code::ResourceExhausted),
        (Error::Unavailable("connection refused".into()), Code::Unavailable),
        (Error::Internal("no such table".into()), Code::Internal),
    ]
}

fn wire_reason(status: &Status) -> String {
    status.get_error_details().error_info().map(|info| info.reason.clone()).unwrap_or_default()
}

#[test]
fn every_domain_error_is_sent_with_a_named_reason_the_client_knows() -> TestResult {
    let mut sent = BTreeSet::new();
    let domain =
        every_domain_error().into_iter().map(|(error, code)| (format!("{error:?}"), status::to_status(error), code));
    // The two reasons the gRPC layer adds, which never reach the domain.
    let layer = [
        ("malformed".to_owned(), status::malformed_request(), Code::InvalidArgument),
        ("events lost".to_owned(), status::events_lost("resynchronise"), Code::Aborted),
    ];
    for (what, status, code) in domain.chain(layer) {
        assert_eq!(status.code(), code, "{what}");
        let info = status.get_error_details().error_info().cloned();
        assert_eq!(info.as_ref().map(|info| info.domain.as_str()), Some("keyport.dev"), "{what}");
        let on_wire = wire_reason(&status);
        let proto = reason::parse(&on_wire).ok_or_else(|| format!("{what}: {on_wire:?} is not an ErrorReason"))?;
        let client = keyport_client::Error::from(status);
        assert!(!matches!(client.reason(), Reason::Other(_)), "{what}: the client does not name {on_wire}");
        assert_eq!(client.reason().as_str(), on_wire, "{what}");
        sent.insert(proto as i32);
    }
    // Every value of the enum is sent by something: none is dead, none is
    // documented without a path that produces it.
    let every: BTreeSet<i32> = reason::every().map(|reason| reason as i32).collect();
    assert_eq!(sent, every, "reasons nothing sends: {:?}", every.difference(&sent).collect::<Vec<_>>());
    assert!(!sent.contains(&(ErrorReason::Unspecified as i32)));
    Ok(())
}

#[test]
fn internal_causes_never_reach_the_wire() {
    for (error, _) in every_domain_error() {
        let status = status::to_status(error);
        for secret in ["connection refused", "no such table", "wrong aud", "access_denied"] {
            assert!(!status.message().contains(secret), "{:?} leaks {secret}", status.message());
        }
    }
}
