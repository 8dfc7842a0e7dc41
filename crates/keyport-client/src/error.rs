//! Errors from Keyport, with the server's stable reason as an enum.

use tonic::{Code, Status};
use tonic_types::StatusExt;

/// The stable reason Keyport gives for a failure (`google.rpc.ErrorInfo.reason`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Wrong email or password.
    InvalidCredentials,
    /// The email is taken.
    EmailTaken,
    /// The new password is too short.
    WeakPassword,
    /// The password is too long.
    PasswordTooLong,
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
    /// An internal error on the server.
    Internal,
    /// A reason this SDK does not know yet, or none at all.
    Other(String),
}

impl Reason {
    /// Every named reason with its wire string.
    const NAMED: [(Reason, &'static str); 23] = [
        (Self::InvalidCredentials, "INVALID_CREDENTIALS"),
        (Self::EmailTaken, "EMAIL_TAKEN"),
        (Self::WeakPassword, "WEAK_PASSWORD"),
        (Self::PasswordTooLong, "PASSWORD_TOO_LONG"),
        (Self::InvalidArgument, "INVALID_ARGUMENT"),
        (Self::MalformedRequest, "MALFORMED_REQUEST"),
        (Self::Unauthenticated, "UNAUTHENTICATED"),
        (Self::SessionExpired, "SESSION_EXPIRED"),
        (Self::SessionNotFound, "SESSION_NOT_FOUND"),
        (Self::RateLimited, "RATE_LIMITED"),
        (Self::ResourceExhausted, "RESOURCE_EXHAUSTED"),
        (Self::PermissionDenied, "PERMISSION_DENIED"),
        (Self::Unavailable, "UNAVAILABLE"),
        (Self::Internal, "INTERNAL"),
        (Self::OAuthProviderUnknown, "OAUTH_PROVIDER_UNKNOWN"),
        (Self::RedirectUriNotAllowed, "REDIRECT_URI_NOT_ALLOWED"),
        (Self::OAuthStateInvalid, "OAUTH_STATE_INVALID"),
        (Self::OAuthProviderError, "OAUTH_PROVIDER_ERROR"),
        (Self::OAuthIdTokenInvalid, "OAUTH_ID_TOKEN_INVALID"),
        (Self::AccountLinkRefused, "ACCOUNT_LINK_REFUSED"),
        (Self::AlreadyLinked, "ALREADY_LINKED"),
        (Self::LinkedAccountNotFound, "LINKED_ACCOUNT_NOT_FOUND"),
        (Self::LastSignInMethod, "LAST_SIGN_IN_METHOD"),
    ];

    fn parse(reason: &str) -> Self {
        Self::NAMED
            .iter()
            .find(|(_, name)| *name == reason)
            .map_or_else(|| Self::Other(reason.to_owned()), |(known, _)| known.clone())
    }

    /// The reason as Keyport sends it (`INVALID_CREDENTIALS`, ...).
    pub fn as_str(&self) -> &str {
        match self {
            Self::Other(other) => other,
            known => Self::NAMED.iter().find(|(named, _)| named == known).map_or("", |(_, name)| name),
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
    fn every_named_reason_round_trips() {
        for (reason, name) in Reason::NAMED {
            assert_eq!(Reason::parse(name), reason);
            assert_eq!(reason.as_str(), name);
        }
        assert_eq!(Reason::parse("NEW_REASON").as_str(), "NEW_REASON");
    }

    #[test]
    fn falls_back_to_the_code_without_details() {
        assert_eq!(Error::from(Status::unavailable("down")).reason(), &Reason::Unavailable);
        assert!(Error::from(Status::unavailable("down")).is_unavailable());
        assert_eq!(Error::from(Status::not_found("x")).reason(), &Reason::Other("NotFound".into()));
    }
}
