//! The one place where a domain [`Error`] becomes a gRPC [`Status`].
//!
//! Every status carries `google.rpc.ErrorInfo` with domain [`ERROR_DOMAIN`]
//! and the error's stable reason, a value of the proto's `ErrorReason`; invalid input adds `google.rpc.BadRequest`
//! field violations, throttling adds `google.rpc.RetryInfo`. Internal causes
//! are logged here and never sent.

use std::collections::HashMap;

use keyport_core::Error;
pub use keyport_proto::reason::ERROR_DOMAIN;
use keyport_proto::{reason::wire_name, v1::ErrorReason};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The reason a domain error is sent with. Exhaustive on purpose: a new
/// [`Error`] variant does not compile until it names its reason here.
pub fn reason_of(error: &Error) -> ErrorReason {
    match error {
        Error::InvalidArgument(_) => ErrorReason::InvalidArgument,
        Error::WeakPassword { .. } => ErrorReason::WeakPassword,
        Error::PasswordTooLong { .. } => ErrorReason::PasswordTooLong,
        Error::PasswordTooCommon => ErrorReason::PasswordTooCommon,
        Error::PasswordContainsEmail => ErrorReason::PasswordContainsEmail,
        Error::EmailTaken => ErrorReason::EmailTaken,
        Error::InvalidCredentials => ErrorReason::InvalidCredentials,
        Error::Unauthenticated => ErrorReason::Unauthenticated,
        Error::SessionExpired => ErrorReason::SessionExpired,
        Error::PermissionDenied => ErrorReason::PermissionDenied,
        Error::SessionNotFound => ErrorReason::SessionNotFound,
        Error::OAuthProviderUnknown => ErrorReason::OauthProviderUnknown,
        Error::RedirectUriNotAllowed => ErrorReason::RedirectUriNotAllowed,
        Error::OAuthStateInvalid => ErrorReason::OauthStateInvalid,
        Error::OAuthProviderError(_) => ErrorReason::OauthProviderError,
        Error::OAuthIdTokenInvalid(_) => ErrorReason::OauthIdTokenInvalid,
        Error::AccountLinkRefused => ErrorReason::AccountLinkRefused,
        Error::AlreadyLinked => ErrorReason::AlreadyLinked,
        Error::LinkedAccountNotFound => ErrorReason::LinkedAccountNotFound,
        Error::LastSignInMethod => ErrorReason::LastSignInMethod,
        Error::EmailTokenInvalid => ErrorReason::EmailTokenInvalid,
        Error::MailDisabled => ErrorReason::MailDisabled,
        Error::EmailNotVerified => ErrorReason::EmailNotVerified,
        Error::ReauthenticationRequired => ErrorReason::ReauthenticationRequired,
        Error::SignInChallengeInvalid => ErrorReason::SignInChallengeInvalid,
        Error::SecondFactorInvalid => ErrorReason::SecondFactorInvalid,
        Error::StepUpRequired => ErrorReason::StepUpRequired,
        Error::SecondFactorAlreadyEnrolled => ErrorReason::SecondFactorAlreadyEnrolled,
        Error::SecondFactorNotEnrolled => ErrorReason::SecondFactorNotEnrolled,
        Error::PasskeysDisabled => ErrorReason::PasskeysDisabled,
        Error::PasskeyInvalid => ErrorReason::PasskeyInvalid,
        Error::PasskeyNotFound => ErrorReason::PasskeyNotFound,
        Error::PermissionUnknown(_) => ErrorReason::PermissionUnknown,
        Error::UserBanned => ErrorReason::UserBanned,
        Error::UserNotFound => ErrorReason::UserNotFound,
        Error::ApiKeyNotFound => ErrorReason::ApiKeyNotFound,
        Error::ApiKeyExpired => ErrorReason::ApiKeyExpired,
        Error::ServiceAccountNotFound => ErrorReason::ServiceAccountNotFound,
        Error::ApiKeyNotAccepted => ErrorReason::ApiKeyNotAccepted,
        Error::OrganizationNotFound => ErrorReason::OrganizationNotFound,
        Error::MemberNotFound => ErrorReason::MemberNotFound,
        Error::InvitationInvalid => ErrorReason::InvitationInvalid,
        Error::LastOwner => ErrorReason::LastOwner,
        Error::SlugTaken => ErrorReason::SlugTaken,
        Error::AccessTokensDisabled => ErrorReason::AccessTokensDisabled,
        Error::AudienceNotAllowed => ErrorReason::AudienceNotAllowed,
        Error::RateLimited { .. } => ErrorReason::RateLimited,
        Error::Overloaded => ErrorReason::ResourceExhausted,
        Error::Unavailable(_) => ErrorReason::Unavailable,
        Error::Internal(_) => ErrorReason::Internal,
    }
}

/// Converts a domain error into the status sent to the caller.
pub fn to_status(error: Error) -> Status {
    let reason = reason_of(&error);
    let mut details = error_info(reason);
    let (code, message) = match &error {
        Error::InvalidArgument(violations) => {
            for violation in violations {
                details.add_bad_request_violation(violation.field, &violation.description);
            }
            (Code::InvalidArgument, "invalid request".to_owned())
        }
        Error::WeakPassword { .. }
        | Error::PasswordTooLong { .. }
        | Error::PasswordTooCommon
        | Error::PasswordContainsEmail => (Code::InvalidArgument, error.to_string()),
        Error::EmailTaken => (Code::AlreadyExists, error.to_string()),
        Error::InvalidCredentials
        | Error::Unauthenticated
        | Error::SessionExpired
        | Error::SecondFactorInvalid
        | Error::PasskeyInvalid
        | Error::ApiKeyExpired
        | Error::ApiKeyNotAccepted => (Code::Unauthenticated, error.to_string()),
        Error::SessionNotFound
        | Error::PasskeyNotFound
        | Error::UserNotFound
        | Error::ApiKeyNotFound
        | Error::ServiceAccountNotFound
        | Error::OrganizationNotFound
        | Error::MemberNotFound => (Code::NotFound, error.to_string()),
        Error::InvitationInvalid | Error::LastOwner | Error::AccessTokensDisabled => {
            (Code::FailedPrecondition, error.to_string())
        }
        Error::AudienceNotAllowed => (Code::InvalidArgument, error.to_string()),
        Error::SlugTaken => (Code::AlreadyExists, error.to_string()),
        Error::PermissionDenied | Error::UserBanned => (Code::PermissionDenied, error.to_string()),
        Error::OAuthProviderUnknown | Error::LinkedAccountNotFound => (Code::NotFound, error.to_string()),
        Error::RedirectUriNotAllowed
        | Error::OAuthStateInvalid
        | Error::EmailTokenInvalid
        | Error::SignInChallengeInvalid
        | Error::PermissionUnknown(_) => (Code::InvalidArgument, error.to_string()),
        Error::MailDisabled
        | Error::EmailNotVerified
        | Error::ReauthenticationRequired
        | Error::StepUpRequired
        | Error::SecondFactorNotEnrolled
        | Error::PasskeysDisabled => (Code::FailedPrecondition, error.to_string()),
        Error::OAuthProviderError(cause) | Error::OAuthIdTokenInvalid(cause) => {
            // The provider's detail helps operators, not callers.
            tracing::info!(%cause, reason = wire_name(reason), "OAuth sign-in refused");
            (Code::Unauthenticated, "the provider did not confirm the sign-in".to_owned())
        }
        Error::AccountLinkRefused | Error::LastSignInMethod => (Code::FailedPrecondition, error.to_string()),
        Error::AlreadyLinked | Error::SecondFactorAlreadyEnrolled => (Code::AlreadyExists, error.to_string()),
        Error::RateLimited { retry_after } => {
            details.set_retry_info(Some(*retry_after));
            (Code::ResourceExhausted, "too many attempts, try again later".to_owned())
        }
        Error::Overloaded => (Code::ResourceExhausted, error.to_string()),
        Error::Unavailable(cause) => {
            tracing::warn!(%cause, "database unavailable");
            (Code::Unavailable, "service temporarily unavailable".to_owned())
        }
        Error::Internal(cause) => {
            tracing::error!(%cause, "internal error");
            (Code::Internal, "internal error".to_owned())
        }
    };
    Status::with_error_details(code, message, details)
}

/// The status of a request message that failed to decode. It never reaches
/// the domain, so it has no [`Error`] variant.
pub fn malformed_request() -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        "malformed request message",
        error_info(ErrorReason::MalformedRequest),
    )
}

/// The status that ends a `WatchSessionEvents` stream which may have missed
/// events: the subscriber flushes what it cached and subscribes again.
pub fn events_lost(message: &'static str) -> Status {
    Status::with_error_details(Code::Aborted, message, error_info(ErrorReason::EventsLost))
}

fn error_info(reason: ErrorReason) -> ErrorDetails {
    ErrorDetails::with_error_info(wire_name(reason), ERROR_DOMAIN, HashMap::<String, String>::new())
}

#[cfg(test)]
mod tests {
    use keyport_core::FieldViolation;

    use super::*;

    fn reason(status: &Status) -> String {
        status.get_error_details().error_info().map(|info| info.reason.clone()).unwrap_or_default()
    }

    #[test]
    fn malformed_requests_are_invalid_arguments_with_a_reason() {
        let status = malformed_request();
        assert_eq!((status.code(), reason(&status).as_str()), (Code::InvalidArgument, "MALFORMED_REQUEST"));
    }

    #[test]
    fn lost_events_abort_the_stream_with_a_reason() {
        let status = events_lost("resynchronise");
        assert_eq!((status.code(), reason(&status).as_str()), (Code::Aborted, "EVENTS_LOST"));
    }

    #[test]
    fn invalid_arguments_list_their_fields() {
        let status = to_status(Error::InvalidArgument(vec![
            FieldViolation::new("email", "must not be empty"),
            FieldViolation::new("name", "too long"),
        ]));
        let details = status.get_error_details();
        let fields: Vec<_> = details.bad_request().unwrap().field_violations.iter().map(|v| v.field.clone()).collect();
        assert_eq!(fields, ["email", "name"]);
    }

    #[test]
    fn internal_causes_stay_private() {
        let status = to_status(Error::Internal("secret table name".into()));
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("secret"));
    }
}
