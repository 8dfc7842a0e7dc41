//! The domain error: every way a Keyport operation can fail.
//!
//! The server sends each variant with a stable reason from the proto's
//! `ErrorReason` (`keyport-server/src/status.rs` maps them, exhaustively), so
//! a new variant needs a reason there before it compiles.

use std::time::Duration;

/// Result of a domain operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// The request field, as named in the API (`email`, `password`, ...).
    pub field: &'static str,
    /// What is wrong with it, for a developer reading the error.
    pub description: String,
}

impl FieldViolation {
    /// A violation of `field` described by `description`.
    pub fn new(field: &'static str, description: impl Into<String>) -> Self {
        Self { field, description: description.into() }
    }
}

/// Why an operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Some request fields are invalid.
    #[error("invalid argument: {0:?}")]
    InvalidArgument(Vec<FieldViolation>),
    /// The new password is shorter than the policy's minimum.
    #[error("password must have at least {min_length} characters")]
    WeakPassword {
        /// The minimum length in characters.
        min_length: usize,
    },
    /// The password is longer than the policy's maximum.
    #[error("password must have at most {max_length} characters")]
    PasswordTooLong {
        /// The maximum length in characters.
        max_length: usize,
    },
    /// The new password is one of the most common passwords.
    #[error("password is too common")]
    PasswordTooCommon,
    /// The new password is, or contains, the account's email.
    #[error("password must not contain the email address")]
    PasswordContainsEmail,
    /// Another account already uses this email.
    #[error("email is already taken")]
    EmailTaken,
    /// Email or password is wrong; deliberately does not say which.
    #[error("invalid email or password")]
    InvalidCredentials,
    /// No valid session: token missing, malformed, unknown or revoked.
    #[error("not authenticated")]
    Unauthenticated,
    /// The session existed but its time is up.
    #[error("session expired")]
    SessionExpired,
    /// The caller may not do this.
    #[error("permission denied")]
    PermissionDenied,
    /// The caller has no session with that id.
    #[error("session not found")]
    SessionNotFound,
    /// No OAuth provider has that id.
    #[error("unknown OAuth provider")]
    OAuthProviderUnknown,
    /// The redirect URI is not in the allow-list, or differs from the start.
    #[error("redirect URI not allowed")]
    RedirectUriNotAllowed,
    /// The OAuth state or binding is missing, wrong, replayed or expired.
    #[error("OAuth state invalid")]
    OAuthStateInvalid,
    /// The provider refused, or the code exchange failed.
    #[error("OAuth provider error: {0}")]
    OAuthProviderError(String),
    /// The provider's id_token failed verification.
    #[error("id_token invalid: {0}")]
    OAuthIdTokenInvalid(String),
    /// The external identity's email belongs to a user it may not be linked to automatically.
    #[error("account link refused")]
    AccountLinkRefused,
    /// The external identity is linked to another user.
    #[error("already linked to another user")]
    AlreadyLinked,
    /// The caller has no such linked account.
    #[error("linked account not found")]
    LinkedAccountNotFound,
    /// Unlinking would leave the user no way to sign in.
    #[error("last sign-in method")]
    LastSignInMethod,
    /// The email token is unknown, used, replaced by a newer one, expired,
    /// of another purpose, or for an address the user no longer has; one
    /// answer for all, so a token reveals nothing about others.
    #[error("email token invalid")]
    EmailTokenInvalid,
    /// The password is right, but the account's address is not verified
    /// and this server requires it before sign-in.
    #[error("the email address is not verified yet")]
    EmailNotVerified,
    /// A sensitive change needs proof of who the caller is: a password
    /// account gives its password; an account without one signs in again
    /// (a fresh session) first.
    #[error("sign in again to do this")]
    ReauthenticationRequired,
    /// The sign-in challenge is malformed, unknown, used, expired or out
    /// of answers: sign in again.
    #[error("sign-in challenge invalid")]
    SignInChallengeInvalid,
    /// The second factor's answer is wrong, reused or malformed.
    #[error("second factor invalid")]
    SecondFactorInvalid,
    /// A sensitive call from a user with a second factor needs a session
    /// that passed it recently.
    #[error("pass a second factor again to do this")]
    StepUpRequired,
    /// The authenticator app is already on.
    #[error("second factor already enrolled")]
    SecondFactorAlreadyEnrolled,
    /// The call needs a second factor the user does not have on.
    #[error("second factor not enrolled")]
    SecondFactorNotEnrolled,
    /// This server has no `[passkeys]` configured.
    #[error("passkeys are not configured")]
    PasskeysDisabled,
    /// A passkey ceremony or the authenticator's answer to it failed.
    #[error("the passkey ceremony failed: start a new one")]
    PasskeyInvalid,
    /// No such passkey among the caller's.
    #[error("passkey not found")]
    PasskeyNotFound,
    /// A check named a permission that is not in the catalogue.
    #[error("unknown permission {0:?}")]
    PermissionUnknown(String),
    /// The account is banned: the credentials were right, and the sign-in
    /// is refused while the ban lasts.
    #[error("this account is suspended")]
    UserBanned,
    /// An admin call named a user that does not exist.
    #[error("user not found")]
    UserNotFound,
    /// No such API key among the owner's.
    #[error("API key not found")]
    ApiKeyNotFound,
    /// The API key is past its expiry.
    #[error("the API key has expired")]
    ApiKeyExpired,
    /// A call named a service account that does not exist.
    #[error("service account not found")]
    ServiceAccountNotFound,
    /// An API key was presented where only a session is accepted.
    #[error("an API key is not accepted here: this call needs a session")]
    ApiKeyNotAccepted,
    /// No such organization among the caller's.
    #[error("organization not found")]
    OrganizationNotFound,
    /// The user is not a member of the organization.
    #[error("member not found")]
    MemberNotFound,
    /// The invitation is unknown, used, expired or for another address.
    #[error("the invitation is not valid: ask for a new one")]
    InvitationInvalid,
    /// The owner cannot leave or be removed before handing over.
    #[error("the owner must transfer the ownership first")]
    LastOwner,
    /// Another organization has the slug.
    #[error("the slug is taken")]
    SlugTaken,
    /// This server issues no access tokens.
    #[error("access tokens are not enabled on this server")]
    AccessTokensDisabled,
    /// The audience is not one the server issues access tokens for.
    #[error("access tokens are not issued for this audience")]
    AudienceNotAllowed,
    /// The call needs to send mail and this server has no mail configured.
    #[error("mail delivery is not configured")]
    MailDisabled,
    /// Too many failed attempts; try again later.
    #[error("too many attempts, retry in {retry_after:?}")]
    RateLimited {
        /// How long until an attempt may succeed again.
        retry_after: Duration,
    },
    /// Keyport is too busy to take the request now (e.g. the password
    /// hashing pool is saturated).
    #[error("server overloaded")]
    Overloaded,
    /// The database cannot be reached.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else; the cause is logged, never shown to callers.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// A single-field [`Error::InvalidArgument`].
    pub fn invalid(field: &'static str, description: impl Into<String>) -> Self {
        Self::InvalidArgument(vec![FieldViolation::new(field, description)])
    }
}
