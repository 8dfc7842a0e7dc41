//! Errors from Keyport, with the server's stable reason as an enum.

use keyport_proto::v1::ErrorReason;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The stable reason Keyport gives for a failure (`google.rpc.ErrorInfo.reason`),
/// one per value of the proto's `keyport.v1.ErrorReason`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// Wrong email or password.
    InvalidCredentials,
    /// The email is taken.
    EmailTaken,
    /// The new password is too short.
    WeakPassword,
    /// The password is too long.
    PasswordTooLong,
    /// The new password is one of the most common passwords.
    PasswordTooCommon,
    /// The new password is or contains the account's email.
    PasswordContainsEmail,
    /// A request field is invalid; see [`Error::field_violations`].
    InvalidArgument,
    /// The request message is not valid protobuf for its RPC.
    MalformedRequest,
    /// No valid session: missing, malformed, unknown or revoked token.
    Unauthenticated,
    /// The session expired.
    SessionExpired,
    /// No such session of the caller.
    SessionNotFound,
    /// Too many failed attempts.
    RateLimited,
    /// Keyport is overloaded.
    ResourceExhausted,
    /// The caller may not do this.
    PermissionDenied,
    /// Keyport or its database is unreachable.
    Unavailable,
    /// No social sign-in provider has that id.
    OAuthProviderUnknown,
    /// The redirect URI is not allowed, or differs from the flow's start.
    RedirectUriNotAllowed,
    /// The OAuth state or binding is missing, wrong, replayed or expired.
    OAuthStateInvalid,
    /// The provider refused, or the code exchange failed.
    OAuthProviderError,
    /// The provider's id_token failed verification.
    OAuthIdTokenInvalid,
    /// The provider identity's email belongs to an account it may not join.
    AccountLinkRefused,
    /// The provider identity is linked to another user.
    AlreadyLinked,
    /// The caller has no such linked account.
    LinkedAccountNotFound,
    /// Unlinking would leave the user no way to sign in.
    LastSignInMethod,
    /// The verification or reset link is unknown, used, replaced, expired
    /// or for another purpose: ask for a new one.
    EmailTokenInvalid,
    /// The server has no mail delivery configured.
    MailDisabled,
    /// The password was right, but the address must be verified before
    /// signing in: offer to send a new link.
    EmailNotVerified,
    /// A sensitive change needs a recent sign-in (the account has no
    /// password to confirm it with): sign in again and retry.
    ReauthenticationRequired,
    /// The sign-in challenge is unknown, used, expired or out of answers:
    /// sign in again from the first factor.
    SignInChallengeInvalid,
    /// The second factor's answer is wrong, reused or malformed.
    SecondFactorInvalid,
    /// A sensitive call needs a session that passed a second factor
    /// recently: step up (`TwoFactorService.StepUp`) and retry.
    StepUpRequired,
    /// The authenticator app is already on.
    SecondFactorAlreadyEnrolled,
    /// The call needs a second factor the user does not have on.
    SecondFactorNotEnrolled,
    /// The server has no passkeys configured.
    PasskeysDisabled,
    /// A passkey ceremony failed (used, expired, another session's, or an
    /// answer that does not verify): start a new one.
    PasskeyInvalid,
    /// No such passkey among the caller's.
    PasskeyNotFound,
    /// `Authorize` named a permission outside the server's catalogue (or
    /// not `resource:action`): a bug in the app, not a deny.
    PermissionUnknown,
    /// The credentials were right, but an admin banned the account.
    UserBanned,
    /// An admin call named a user that does not exist.
    UserNotFound,
    /// No such API key among the caller's (or the service account's).
    ApiKeyNotFound,
    /// The API key is past its expiry: create or rotate a new one.
    ApiKeyExpired,
    /// A call named a service account that does not exist.
    ServiceAccountNotFound,
    /// An API key was presented where only a session is accepted.
    ApiKeyNotAccepted,
    /// No such organization among the caller's.
    OrganizationNotFound,
    /// The user is not a member of the organization.
    MemberNotFound,
    /// The invitation is unknown, used, expired or for another address.
    InvitationInvalid,
    /// The owner cannot leave or be removed: transfer the ownership first.
    LastOwner,
    /// Another organization has the slug.
    SlugTaken,
    /// The server issues no access tokens (`[access_tokens]` has no issuer).
    AccessTokensDisabled,
    /// The audience is not one of the server's `access_tokens.audiences`.
    AudienceNotAllowed,
    /// `WatchSessionEvents` ended because events may have been lost: flush
    /// and subscribe again.
    EventsLost,
    /// An internal error on the server.
    Internal,
    /// A reason this SDK does not know yet, or none at all.
    Other(String),
}

impl Reason {
    fn parse(reason: &str) -> Self {
        keyport_proto::reason::parse(reason).map_or_else(|| Self::Other(reason.to_owned()), Self::from)
    }

    /// The reason as Keyport sends it (`INVALID_CREDENTIALS`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Other(other) => other,
            named => keyport_proto::reason::wire_name(named.to_proto()),
        }
    }

    /// The proto value of a named reason; [`Reason::Other`] has none.
    fn to_proto(&self) -> ErrorReason {
        match self {
            Self::InvalidCredentials => ErrorReason::InvalidCredentials,
            Self::EmailTaken => ErrorReason::EmailTaken,
            Self::WeakPassword => ErrorReason::WeakPassword,
            Self::PasswordTooLong => ErrorReason::PasswordTooLong,
            Self::PasswordTooCommon => ErrorReason::PasswordTooCommon,
            Self::PasswordContainsEmail => ErrorReason::PasswordContainsEmail,
            Self::InvalidArgument => ErrorReason::InvalidArgument,
            Self::MalformedRequest => ErrorReason::MalformedRequest,
            Self::Unauthenticated => ErrorReason::Unauthenticated,
            Self::SessionExpired => ErrorReason::SessionExpired,
            Self::SessionNotFound => ErrorReason::SessionNotFound,
            Self::RateLimited => ErrorReason::RateLimited,
            Self::ResourceExhausted => ErrorReason::ResourceExhausted,
            Self::PermissionDenied => ErrorReason::PermissionDenied,
            Self::Unavailable => ErrorReason::Unavailable,
            Self::OAuthProviderUnknown => ErrorReason::OauthProviderUnknown,
            Self::RedirectUriNotAllowed => ErrorReason::RedirectUriNotAllowed,
            Self::OAuthStateInvalid => ErrorReason::OauthStateInvalid,
            Self::OAuthProviderError => ErrorReason::OauthProviderError,
            Self::OAuthIdTokenInvalid => ErrorReason::OauthIdTokenInvalid,
            Self::AccountLinkRefused => ErrorReason::AccountLinkRefused,
            Self::AlreadyLinked => ErrorReason::AlreadyLinked,
            Self::LinkedAccountNotFound => ErrorReason::LinkedAccountNotFound,
            Self::LastSignInMethod => ErrorReason::LastSignInMethod,
            Self::EmailTokenInvalid => ErrorReason::EmailTokenInvalid,
            Self::MailDisabled => ErrorReason::MailDisabled,
            Self::EmailNotVerified => ErrorReason::EmailNotVerified,
            Self::ReauthenticationRequired => ErrorReason::ReauthenticationRequired,
            Self::SignInChallengeInvalid => ErrorReason::SignInChallengeInvalid,
            Self::SecondFactorInvalid => ErrorReason::SecondFactorInvalid,
            Self::StepUpRequired => ErrorReason::StepUpRequired,
            Self::SecondFactorAlreadyEnrolled => ErrorReason::SecondFactorAlreadyEnrolled,
            Self::SecondFactorNotEnrolled => ErrorReason::SecondFactorNotEnrolled,
            Self::PasskeysDisabled => ErrorReason::PasskeysDisabled,
            Self::PasskeyInvalid => ErrorReason::PasskeyInvalid,
            Self::PasskeyNotFound => ErrorReason::PasskeyNotFound,
            Self::PermissionUnknown => ErrorReason::PermissionUnknown,
            Self::UserBanned => ErrorReason::UserBanned,
            Self::UserNotFound => ErrorReason::UserNotFound,
            Self::ApiKeyNotFound => ErrorReason::ApiKeyNotFound,
            Self::ApiKeyExpired => ErrorReason::ApiKeyExpired,
            Self::ServiceAccountNotFound => ErrorReason::ServiceAccountNotFound,
            Self::ApiKeyNotAccepted => ErrorReason::ApiKeyNotAccepted,
            Self::OrganizationNotFound => ErrorReason::OrganizationNotFound,
            Self::MemberNotFound => ErrorReason::MemberNotFound,
            Self::InvitationInvalid => ErrorReason::InvitationInvalid,
            Self::LastOwner => ErrorReason::LastOwner,
            Self::SlugTaken => ErrorReason::SlugTaken,
            Self::AccessTokensDisabled => ErrorReason::AccessTokensDisabled,
            Self::AudienceNotAllowed => ErrorReason::AudienceNotAllowed,
            Self::EventsLost => ErrorReason::EventsLost,
            Self::Internal => ErrorReason::Internal,
            Self::Other(_) => ErrorReason::Unspecified,
        }
    }

    /// Reason for a status that carries no `ErrorInfo` (e.g. from the transport).
    fn from_code(code: Code) -> Self {
        match code {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled => Self::Unavailable,
            Code::Unauthenticated => Self::Unauthenticated,
            Code::PermissionDenied => Self::PermissionDenied,
            Code::ResourceExhausted => Self::ResourceExhausted,
            Code::InvalidArgument | Code::OutOfRange => Self::InvalidArgument,
            Code::Internal => Self::Internal,
            other => Self::Other(format!("{other:?}")),
        }
    }
}

/// Exhaustive, so a reason added to the proto does not compile until this
/// client names it.
impl From<ErrorReason> for Reason {
    fn from(reason: ErrorReason) -> Self {
        match reason {
            ErrorReason::InvalidCredentials => Self::InvalidCredentials,
            ErrorReason::EmailTaken => Self::EmailTaken,
            ErrorReason::WeakPassword => Self::WeakPassword,
            ErrorReason::PasswordTooLong => Self::PasswordTooLong,
            ErrorReason::PasswordTooCommon => Self::PasswordTooCommon,
            ErrorReason::PasswordContainsEmail => Self::PasswordContainsEmail,
            ErrorReason::InvalidArgument => Self::InvalidArgument,
            ErrorReason::MalformedRequest => Self::MalformedRequest,
            ErrorReason::Unauthenticated => Self::Unauthenticated,
            ErrorReason::SessionExpired => Self::SessionExpired,
            ErrorReason::SessionNotFound => Self::SessionNotFound,
            ErrorReason::RateLimited => Self::RateLimited,
            ErrorReason::ResourceExhausted => Self::ResourceExhausted,
            ErrorReason::PermissionDenied => Self::PermissionDenied,
            ErrorReason::Unavailable => Self::Unavailable,
            ErrorReason::OauthProviderUnknown => Self::OAuthProviderUnknown,
            ErrorReason::RedirectUriNotAllowed => Self::RedirectUriNotAllowed,
            ErrorReason::OauthStateInvalid => Self::OAuthStateInvalid,
            ErrorReason::OauthProviderError => Self::OAuthProviderError,
            ErrorReason::OauthIdTokenInvalid => Self::OAuthIdTokenInvalid,
            ErrorReason::AccountLinkRefused => Self::AccountLinkRefused,
            ErrorReason::AlreadyLinked => Self::AlreadyLinked,
            ErrorReason::LinkedAccountNotFound => Self::LinkedAccountNotFound,
            ErrorReason::LastSignInMethod => Self::LastSignInMethod,
            ErrorReason::EmailTokenInvalid => Self::EmailTokenInvalid,
            ErrorReason::MailDisabled => Self::MailDisabled,
            ErrorReason::EmailNotVerified => Self::EmailNotVerified,
            ErrorReason::ReauthenticationRequired => Self::ReauthenticationRequired,
            ErrorReason::SignInChallengeInvalid => Self::SignInChallengeInvalid,
            ErrorReason::SecondFactorInvalid => Self::SecondFactorInvalid,
            ErrorReason::StepUpRequired => Self::StepUpRequired,
            ErrorReason::SecondFactorAlreadyEnrolled => Self::SecondFactorAlreadyEnrolled,
            ErrorReason::SecondFactorNotEnrolled => Self::SecondFactorNotEnrolled,
            ErrorReason::PasskeysDisabled => Self::PasskeysDisabled,
            ErrorReason::PasskeyInvalid => Self::PasskeyInvalid,
            ErrorReason::PasskeyNotFound => Self::PasskeyNotFound,
            ErrorReason::PermissionUnknown => Self::PermissionUnknown,
            ErrorReason::UserBanned => Self::UserBanned,
            ErrorReason::UserNotFound => Self::UserNotFound,
            ErrorReason::ApiKeyNotFound => Self::ApiKeyNotFound,
            ErrorReason::ApiKeyExpired => Self::ApiKeyExpired,
            ErrorReason::ServiceAccountNotFound => Self::ServiceAccountNotFound,
            ErrorReason::ApiKeyNotAccepted => Self::ApiKeyNotAccepted,
            ErrorReason::OrganizationNotFound => Self::OrganizationNotFound,
            ErrorReason::MemberNotFound => Self::MemberNotFound,
            ErrorReason::InvitationInvalid => Self::InvitationInvalid,
            ErrorReason::LastOwner => Self::LastOwner,
            ErrorReason::SlugTaken => Self::SlugTaken,
            ErrorReason::AccessTokensDisabled => Self::AccessTokensDisabled,
            ErrorReason::AudienceNotAllowed => Self::AudienceNotAllowed,
            ErrorReason::EventsLost => Self::EventsLost,
            ErrorReason::Internal => Self::Internal,
            ErrorReason::Unspecified => Self::Other(String::new()),
        }
    }
}

/// A failed call to Keyport.
#[derive(Debug, Clone, thiserror::Error)]
#[error("keyport: {code:?} {reason:?}: {message}")]
pub struct Error {
    code: Code,
    reason: Reason,
    message: String,
    field_violations: Vec<(String, String)>,
}

impl Error {
    /// The stable reason.
    pub fn reason(&self) -> &Reason {
        &self.reason
    }

    /// The gRPC status code.
    pub fn code(&self) -> Code {
        self.code
    }

    /// The server's message, for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Invalid fields as (field, description), for [`Reason::InvalidArgument`].
    pub fn field_violations(&self) -> &[(String, String)] {
        &self.field_violations
    }

    /// Whether Keyport could not be reached or answered it is unavailable:
    /// the call may succeed later, and the web middleware fails closed.
    pub fn is_unavailable(&self) -> bool {
        self.reason == Reason::Unavailable
    }
}

impl From<Status> for Error {
    fn from(status: Status) -> Self {
        let details = status.get_error_details();
        // A connection that failed (refused, TLS handshake) is a transport
        // error, whatever code tonic gave it.
        let transport_failure = std::error::Error::source(&status)
            .is_some_and(|source| source.downcast_ref::<tonic::transport::Error>().is_some());
        let reason = details
            .error_info()
            .map(|info| Reason::parse(&info.reason))
            .unwrap_or_else(|| if transport_failure { Reason::Unavailable } else { Reason::from_code(status.code()) });
        let field_violations = details
            .bad_request()
            .map(|bad| bad.field_violations.iter().map(|v| (v.field.clone(), v.description.clone())).collect())
            .unwrap_or_default();
        Self { code: status.code(), reason, message: status.message().to_owned(), field_violations }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use tonic_types::ErrorDetails;

    use super::*;

    #[test]
    fn reads_the_reason_from_error_info() {
        let details =
            ErrorDetails::with_error_info("INVALID_CREDENTIALS", "keyport.dev", HashMap::<String, String>::new());
        let status = Status::with_error_details(Code::Unauthenticated, "nope", details);
        assert_eq!(Error::from(status).reason(), &Reason::InvalidCredentials);
    }

    #[test]
    fn every_proto_reason_is_named_and_round_trips() {
        for proto in keyport_proto::reason::every() {
            let reason = Reason::from(proto);
            assert!(!matches!(reason, Reason::Other(_)), "{proto:?} has no name");
            assert_eq!(reason.as_str(), keyport_proto::reason::wire_name(proto));
            assert_eq!(Reason::parse(reason.as_str()), reason);
        }
        assert_eq!(Reason::parse("NEW_REASON"), Reason::Other("NEW_REASON".into()));
        assert_eq!(Reason::parse("NEW_REASON").as_str(), "NEW_REASON");
    }

    #[test]
    fn falls_back_to_the_code_without_details() {
        assert_eq!(Error::from(Status::unavailable("down")).reason(), &Reason::Unavailable);
        assert!(Error::from(Status::unavailable("down")).is_unavailable());
        assert_eq!(Error::from(Status::not_found("x")).reason(), &Reason::Other("NotFound".into()));
    }
}
