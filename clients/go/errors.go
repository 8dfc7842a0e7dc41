package keyport

import (
	"errors"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
)

// ErrorDomain is the google.rpc.ErrorInfo domain of Keyport's errors.
const ErrorDomain = "keyport.dev"

// Stable error reasons that Keyport puts in google.rpc.ErrorInfo.Reason: one
// per value of the proto's keyport.v1.ErrorReason (see
// [keyportv1.ErrorReason]), named as sent, without the ERROR_REASON_ prefix.
// The package's tests check the two lists match. Each RPC's comment in the
// proto files lists the reasons it returns.
const (
	// ReasonInvalidArgument: the request is malformed (empty, oversized or
	// invalid field); the error also carries google.rpc.BadRequest field
	// violations, see [FieldViolations].
	ReasonInvalidArgument = "INVALID_ARGUMENT"
	// ReasonInvalidCredentials: wrong email or password (the two are not
	// told apart).
	ReasonInvalidCredentials = "INVALID_CREDENTIALS"
	// ReasonEmailTaken: SignUp with an email that already has an account.
	ReasonEmailTaken = "EMAIL_TAKEN"
	// ReasonWeakPassword: the password is shorter than the minimum.
	ReasonWeakPassword = "WEAK_PASSWORD"
	// ReasonPasswordTooLong: the password is longer than the maximum.
	ReasonPasswordTooLong = "PASSWORD_TOO_LONG"
	// ReasonPasswordTooCommon: the new password is one of the 100,000 most
	// common passwords (compared without case).
	ReasonPasswordTooCommon = "PASSWORD_TOO_COMMON"
	// ReasonPasswordContainsEmail: the new password is, or contains, the
	// account's email address.
	ReasonPasswordContainsEmail = "PASSWORD_CONTAINS_EMAIL"
	// ReasonMalformedRequest: the request message is not valid protobuf for
	// its RPC (a bug in the caller or a tampered request).
	ReasonMalformedRequest = "MALFORMED_REQUEST"
	// ReasonUnauthenticated: no, malformed, unknown or revoked session token.
	ReasonUnauthenticated = "UNAUTHENTICATED"
	// ReasonSessionExpired: the session token was valid but has expired.
	ReasonSessionExpired = "SESSION_EXPIRED"
	// ReasonSessionNotFound: RevokeSession with an id that is not one of the
	// caller's sessions.
	ReasonSessionNotFound = "SESSION_NOT_FOUND"
	// ReasonRateLimited: too many failed attempts for this account or
	// address; retry later.
	ReasonRateLimited = "RATE_LIMITED"
	// ReasonResourceExhausted: the server is overloaded (for example its
	// password hashing pool is saturated); retry later with backoff.
	ReasonResourceExhausted = "RESOURCE_EXHAUSTED"
	// ReasonPermissionDenied: the caller may not do this (for example
	// WatchSessionEvents from a peer that is not a trusted proxy).
	ReasonPermissionDenied = "PERMISSION_DENIED"
	// ReasonUnavailable: Keyport cannot reach its database; retry later.
	// A connection failure is codes.Unavailable too, but without a reason.
	ReasonUnavailable = "UNAVAILABLE"
	// ReasonInternal: an internal server error; the cause is only in the
	// server's log.
	ReasonInternal = "INTERNAL"

	// ReasonOAuthProviderUnknown: StartOAuth with a provider id that is not
	// configured.
	ReasonOAuthProviderUnknown = "OAUTH_PROVIDER_UNKNOWN"
	// ReasonRedirectURINotAllowed: the redirect URI is not exactly one of
	// the server's oauth.redirect_uris, or FinishOAuth used another one than
	// StartOAuth.
	ReasonRedirectURINotAllowed = "REDIRECT_URI_NOT_ALLOWED"
	// ReasonOAuthStateInvalid: FinishOAuth with a state or binding that is
	// missing, wrong, replayed or expired; start the flow again.
	ReasonOAuthStateInvalid = "OAUTH_STATE_INVALID"
	// ReasonOAuthProviderError: the provider refused (e.g. the user
	// cancelled) or could not be reached, or the code exchange failed.
	ReasonOAuthProviderError = "OAUTH_PROVIDER_ERROR"
	// ReasonOAuthIDTokenInvalid: the provider's id_token failed verification.
	ReasonOAuthIDTokenInvalid = "OAUTH_ID_TOKEN_INVALID"
	// ReasonAccountLinkRefused: the provider's email belongs to a Keyport
	// user the identity may not join automatically; the user should sign in
	// and link the provider explicitly.
	ReasonAccountLinkRefused = "ACCOUNT_LINK_REFUSED"
	// ReasonAlreadyLinked: the provider identity is linked to another user.
	ReasonAlreadyLinked = "ALREADY_LINKED"
	// ReasonLinkedAccountNotFound: UnlinkAccount of an identity the caller
	// does not have.
	ReasonLinkedAccountNotFound = "LINKED_ACCOUNT_NOT_FOUND"
	// ReasonLastSignInMethod: UnlinkAccount of the caller's only way to sign
	// in.
	ReasonLastSignInMethod = "LAST_SIGN_IN_METHOD"
	// ReasonEmailTokenInvalid: a mailed link's token or code that is
	// malformed, empty, unknown, used, replaced by a newer one, expired,
	// meant for another purpose, from another session or browser, or for an
	// address the account no longer has (VerifyEmail, ResetPassword,
	// ConfirmEmailChange, SetPassword, FinishEmailSignIn, whose binding
	// counts too); ask for a new link or code.
	ReasonEmailTokenInvalid = "EMAIL_TOKEN_INVALID"
	// ReasonMailDisabled: the call needs to send mail
	// (RequestEmailVerification, RequestPasswordReset, RequestEmailChange,
	// RequestPasswordSetup, StartEmailSignIn) and the server has no mail
	// delivery configured.
	ReasonMailDisabled = "MAIL_DISABLED"
	// ReasonEmailNotVerified: SignIn with the right password for an
	// unverified address, on a server that requires verified addresses.
	ReasonEmailNotVerified = "EMAIL_NOT_VERIFIED"
	// ReasonReauthenticationRequired: a sensitive change from an account
	// without a password needs a recent sign-in.
	ReasonReauthenticationRequired = "REAUTHENTICATION_REQUIRED"
	// ReasonSignInChallengeInvalid: CompleteSignIn with a challenge that is
	// empty, malformed, unknown, used, expired or out of answers; sign in
	// again from the first factor.
	ReasonSignInChallengeInvalid = "SIGN_IN_CHALLENGE_INVALID"
	// ReasonSecondFactorInvalid: a second factor's answer (a TOTP or backup
	// code, or a passkey's answer to a sign-in challenge) is wrong, reused
	// or malformed.
	ReasonSecondFactorInvalid = "SECOND_FACTOR_INVALID"
	// ReasonStepUpRequired: a sensitive call from a user with a second
	// factor, on a session that is not AAL2 or whose authenticated_at is too
	// old; pass a factor with StepUp and retry.
	ReasonStepUpRequired = "STEP_UP_REQUIRED"
	// ReasonSecondFactorAlreadyEnrolled: EnrollTotp for a user whose
	// authenticator app is already on; disable it first.
	ReasonSecondFactorAlreadyEnrolled = "SECOND_FACTOR_ALREADY_ENROLLED"
	// ReasonSecondFactorNotEnrolled: the call needs a second factor the user
	// does not have on (ConfirmTotp without EnrollTotp, DisableTotp, StepUp,
	// RegenerateBackupCodes).
	ReasonSecondFactorNotEnrolled = "SECOND_FACTOR_NOT_ENROLLED"
	// ReasonPasskeysDisabled: a passkey call on a server without a
	// [passkeys] section.
	ReasonPasskeysDisabled = "PASSKEYS_DISABLED"
	// ReasonPasskeyInvalid: a passkey ceremony that is empty, malformed,
	// unknown, used, expired or another session's, or an authenticator's
	// answer that is malformed, for another ceremony or origin, from an
	// unknown passkey, or does not verify (FinishPasskeySignIn,
	// FinishPasskeyRegistration, StepUp); start a new ceremony.
	ReasonPasskeyInvalid = "PASSKEY_INVALID"
	// ReasonPasskeyNotFound: RenamePasskey or DeletePasskey with an id that
	// is not one of the caller's passkeys.
	ReasonPasskeyNotFound = "PASSKEY_NOT_FOUND"
	// ReasonPermissionUnknown: Authorize named a permission outside the
	// server's catalogue (authorization.permissions and the built-in ones),
	// or one that is not resource:action; fix the name, or add it to the
	// catalogue.
	ReasonPermissionUnknown = "PERMISSION_UNKNOWN"
	// ReasonUserBanned: the credentials were right, but an admin banned the
	// account (AdminService.BanUser); no sign-in succeeds while the ban
	// lasts. Sent only after the first factor checked out: a wrong password
	// is still [ReasonInvalidCredentials].
	ReasonUserBanned = "USER_BANNED"
	// ReasonUserNotFound: an AdminService call named a well-formed user id
	// that no user has (a malformed one is [ReasonInvalidArgument]).
	ReasonUserNotFound = "USER_NOT_FOUND"

	// ReasonAPIKeyNotFound: RevokeApiKey or RotateApiKey named a key that
	// is not one of the caller's (or the named service account's); another
	// owner's key answers the same as an unknown one (a malformed id is
	// [ReasonInvalidArgument]).
	ReasonAPIKeyNotFound = "API_KEY_NOT_FOUND"
	// ReasonAPIKeyExpired: an API key past its expiry (or past the grace of
	// its rotation) was presented; create a new one.
	ReasonAPIKeyExpired = "API_KEY_EXPIRED"
	// ReasonServiceAccountNotFound: a call named a well-formed service
	// account id that no service account has.
	ReasonServiceAccountNotFound = "SERVICE_ACCOUNT_NOT_FOUND"
	// ReasonAPIKeyNotAccepted: an API key was presented where only a
	// session is accepted (GetSession, the user's own account, sessions,
	// factors and keys); check keys with Authorize.
	ReasonAPIKeyNotAccepted = "API_KEY_NOT_ACCEPTED"

	// ReasonOrganizationNotFound: no such organization among the caller's;
	// one they are not a member of answers the same as an unknown one (a
	// malformed id is [ReasonInvalidArgument]).
	ReasonOrganizationNotFound = "ORGANIZATION_NOT_FOUND"
	// ReasonMemberNotFound: the user named is not a member of the
	// organization (SetMemberRole, RemoveMember, TransferOwnership).
	ReasonMemberNotFound = "MEMBER_NOT_FOUND"
	// ReasonInvitationInvalid: the invitation is unknown, revoked, used,
	// expired, or for another address than the caller's verified one; ask
	// for a new one.
	ReasonInvitationInvalid = "INVITATION_INVALID"
	// ReasonLastOwner: the organization's owner cannot leave it or be
	// removed (nor given another role), nor delete their account while
	// they own one (DeleteCurrentUser); transfer the ownership first
	// (TransferOwnership), or delete the organization.
	ReasonLastOwner = "LAST_OWNER"
	// ReasonSlugTaken: CreateOrganization with a slug another organization
	// has.
	ReasonSlugTaken = "SLUG_TAKEN"
	// ReasonAccessTokensDisabled: IssueAccessToken or GetJwks on a server
	// that issues no access tokens ([access_tokens] has no issuer).
	ReasonAccessTokensDisabled = "ACCESS_TOKENS_DISABLED"
	// ReasonAudienceNotAllowed: IssueAccessToken for an audience that is
	// not one of the server's access_tokens.audiences.
	ReasonAudienceNotAllowed = "AUDIENCE_NOT_ALLOWED"
	// ReasonEventsLost: a WatchSessionEvents stream ended because events
	// may have been lost; flush what was cached from it and subscribe again.
	ReasonEventsLost = "EVENTS_LOST"
)

// Sentinel errors, one per reason, for errors.Is:
//
//	if errors.Is(err, keyport.ErrSessionExpired) { ... }
//
// An error that a client of [Dial] returns for a call Keyport answered is
// an [*Error], which matches the sentinel of its reason (and no other);
// [WrapError] makes one of a gRPC error of a connection of your own
// ([NewFromConn]). Each sentinel's Error() is "keyport: " and its reason.
var (
	// ErrInvalidArgument is the sentinel of [ReasonInvalidArgument].
	ErrInvalidArgument error = &reasonSentinel{ReasonInvalidArgument}
	// ErrInvalidCredentials is the sentinel of [ReasonInvalidCredentials].
	ErrInvalidCredentials error = &reasonSentinel{ReasonInvalidCredentials}
	// ErrEmailTaken is the sentinel of [ReasonEmailTaken].
	ErrEmailTaken error = &reasonSentinel{ReasonEmailTaken}
	// ErrWeakPassword is the sentinel of [ReasonWeakPassword].
	ErrWeakPassword error = &reasonSentinel{ReasonWeakPassword}
	// ErrPasswordTooLong is the sentinel of [ReasonPasswordTooLong].
	ErrPasswordTooLong error = &reasonSentinel{ReasonPasswordTooLong}
	// ErrPasswordTooCommon is the sentinel of [ReasonPasswordTooCommon].
	ErrPasswordTooCommon error = &reasonSentinel{ReasonPasswordTooCommon}
	// ErrPasswordContainsEmail is the sentinel of [ReasonPasswordContainsEmail].
	ErrPasswordContainsEmail error = &reasonSentinel{ReasonPasswordContainsEmail}
	// ErrMalformedRequest is the sentinel of [ReasonMalformedRequest].
	ErrMalformedRequest error = &reasonSentinel{ReasonMalformedRequest}
	// ErrUnauthenticated is the sentinel of [ReasonUnauthenticated].
	ErrUnauthenticated error = &reasonSentinel{ReasonUnauthenticated}
	// ErrSessionExpired is the sentinel of [ReasonSessionExpired].
	ErrSessionExpired error = &reasonSentinel{ReasonSessionExpired}
	// ErrSessionNotFound is the sentinel of [ReasonSessionNotFound].
	ErrSessionNotFound error = &reasonSentinel{ReasonSessionNotFound}
	// ErrRateLimited is the sentinel of [ReasonRateLimited].
	ErrRateLimited error = &reasonSentinel{ReasonRateLimited}
	// ErrResourceExhausted is the sentinel of [ReasonResourceExhausted].
	ErrResourceExhausted error = &reasonSentinel{ReasonResourceExhausted}
	// ErrPermissionDenied is the sentinel of [ReasonPermissionDenied].
	ErrPermissionDenied error = &reasonSentinel{ReasonPermissionDenied}
	// ErrUnavailable is the sentinel of [ReasonUnavailable].
	ErrUnavailable error = &reasonSentinel{ReasonUnavailable}
	// ErrInternal is the sentinel of [ReasonInternal].
	ErrInternal error = &reasonSentinel{ReasonInternal}
	// ErrOAuthProviderUnknown is the sentinel of [ReasonOAuthProviderUnknown].
	ErrOAuthProviderUnknown error = &reasonSentinel{ReasonOAuthProviderUnknown}
	// ErrRedirectURINotAllowed is the sentinel of [ReasonRedirectURINotAllowed].
	ErrRedirectURINotAllowed error = &reasonSentinel{ReasonRedirectURINotAllowed}
	// ErrOAuthStateInvalid is the sentinel of [ReasonOAuthStateInvalid].
	ErrOAuthStateInvalid error = &reasonSentinel{ReasonOAuthStateInvalid}
	// ErrOAuthProviderError is the sentinel of [ReasonOAuthProviderError].
	ErrOAuthProviderError error = &reasonSentinel{ReasonOAuthProviderError}
	// ErrOAuthIDTokenInvalid is the sentinel of [ReasonOAuthIDTokenInvalid].
	ErrOAuthIDTokenInvalid error = &reasonSentinel{ReasonOAuthIDTokenInvalid}
	// ErrAccountLinkRefused is the sentinel of [ReasonAccountLinkRefused].
	ErrAccountLinkRefused error = &reasonSentinel{ReasonAccountLinkRefused}
	// ErrAlreadyLinked is the sentinel of [ReasonAlreadyLinked].
	ErrAlreadyLinked error = &reasonSentinel{ReasonAlreadyLinked}
	// ErrLinkedAccountNotFound is the sentinel of [ReasonLinkedAccountNotFound].
	ErrLinkedAccountNotFound error = &reasonSentinel{ReasonLinkedAccountNotFound}
	// ErrLastSignInMethod is the sentinel of [ReasonLastSignInMethod].
	ErrLastSignInMethod error = &reasonSentinel{ReasonLastSignInMethod}
	// ErrEmailTokenInvalid is the sentinel of [ReasonEmailTokenInvalid].
	ErrEmailTokenInvalid error = &reasonSentinel{ReasonEmailTokenInvalid}
	// ErrMailDisabled is the sentinel of [ReasonMailDisabled].
	ErrMailDisabled error = &reasonSentinel{ReasonMailDisabled}
	// ErrEmailNotVerified is the sentinel of [ReasonEmailNotVerified].
	ErrEmailNotVerified error = &reasonSentinel{ReasonEmailNotVerified}
	// ErrReauthenticationRequired is the sentinel of [ReasonReauthenticationRequired].
	ErrReauthenticationRequired error = &reasonSentinel{ReasonReauthenticationRequired}
	// ErrSignInChallengeInvalid is the sentinel of [ReasonSignInChallengeInvalid].
	ErrSignInChallengeInvalid error = &reasonSentinel{ReasonSignInChallengeInvalid}
	// ErrSecondFactorInvalid is the sentinel of [ReasonSecondFactorInvalid].
	ErrSecondFactorInvalid error = &reasonSentinel{ReasonSecondFactorInvalid}
	// ErrStepUpRequired is the sentinel of [ReasonStepUpRequired].
	ErrStepUpRequired error = &reasonSentinel{ReasonStepUpRequired}
	// ErrSecondFactorAlreadyEnrolled is the sentinel of [ReasonSecondFactorAlreadyEnrolled].
	ErrSecondFactorAlreadyEnrolled error = &reasonSentinel{ReasonSecondFactorAlreadyEnrolled}
	// ErrSecondFactorNotEnrolled is the sentinel of [ReasonSecondFactorNotEnrolled].
	ErrSecondFactorNotEnrolled error = &reasonSentinel{ReasonSecondFactorNotEnrolled}
	// ErrPasskeysDisabled is the sentinel of [ReasonPasskeysDisabled].
	ErrPasskeysDisabled error = &reasonSentinel{ReasonPasskeysDisabled}
	// ErrPasskeyInvalid is the sentinel of [ReasonPasskeyInvalid].
	ErrPasskeyInvalid error = &reasonSentinel{ReasonPasskeyInvalid}
	// ErrPasskeyNotFound is the sentinel of [ReasonPasskeyNotFound].
	ErrPasskeyNotFound error = &reasonSentinel{ReasonPasskeyNotFound}
	// ErrPermissionUnknown is the sentinel of [ReasonPermissionUnknown].
	ErrPermissionUnknown error = &reasonSentinel{ReasonPermissionUnknown}
	// ErrUserBanned is the sentinel of [ReasonUserBanned].
	ErrUserBanned error = &reasonSentinel{ReasonUserBanned}
	// ErrUserNotFound is the sentinel of [ReasonUserNotFound].
	ErrUserNotFound error = &reasonSentinel{ReasonUserNotFound}
	// ErrAPIKeyNotFound is the sentinel of [ReasonAPIKeyNotFound].
	ErrAPIKeyNotFound error = &reasonSentinel{ReasonAPIKeyNotFound}
	// ErrAPIKeyExpired is the sentinel of [ReasonAPIKeyExpired].
	ErrAPIKeyExpired error = &reasonSentinel{ReasonAPIKeyExpired}
	// ErrServiceAccountNotFound is the sentinel of [ReasonServiceAccountNotFound].
	ErrServiceAccountNotFound error = &reasonSentinel{ReasonServiceAccountNotFound}
	// ErrAPIKeyNotAccepted is the sentinel of [ReasonAPIKeyNotAccepted].
	ErrAPIKeyNotAccepted error = &reasonSentinel{ReasonAPIKeyNotAccepted}
	// ErrOrganizationNotFound is the sentinel of [ReasonOrganizationNotFound].
	ErrOrganizationNotFound error = &reasonSentinel{ReasonOrganizationNotFound}
	// ErrMemberNotFound is the sentinel of [ReasonMemberNotFound].
	ErrMemberNotFound error = &reasonSentinel{ReasonMemberNotFound}
	// ErrInvitationInvalid is the sentinel of [ReasonInvitationInvalid].
	ErrInvitationInvalid error = &reasonSentinel{ReasonInvitationInvalid}
	// ErrLastOwner is the sentinel of [ReasonLastOwner].
	ErrLastOwner error = &reasonSentinel{ReasonLastOwner}
	// ErrSlugTaken is the sentinel of [ReasonSlugTaken].
	ErrSlugTaken error = &reasonSentinel{ReasonSlugTaken}
	// ErrAccessTokensDisabled is the sentinel of [ReasonAccessTokensDisabled].
	ErrAccessTokensDisabled error = &reasonSentinel{ReasonAccessTokensDisabled}
	// ErrAudienceNotAllowed is the sentinel of [ReasonAudienceNotAllowed].
	ErrAudienceNotAllowed error = &reasonSentinel{ReasonAudienceNotAllowed}
	// ErrEventsLost is the sentinel of [ReasonEventsLost].
	ErrEventsLost error = &reasonSentinel{ReasonEventsLost}
)

// reasonSentinel is the type of the Err* sentinels: an [*Error] of its
// reason matches it.
type reasonSentinel struct{ reason string }

func (s *reasonSentinel) Error() string { return "keyport: " + s.reason }

// Error is a failed call that Keyport answered with a reason (a gRPC status
// with a google.rpc.ErrorInfo of domain [ErrorDomain]): what every call
// through a client of [Dial] returns for one, unary or streaming. It keeps
// the call's gRPC status, so status.FromError, status.Code, [ErrorReason],
// [ErrorInfo], [FieldViolations] and [RetryDelay] read it as they read the
// status error, and Error() is that error's text. errors.Is(err,
// keyport.ErrRateLimited) and the other sentinels match the reason;
// errors.As(err, &kerr) with a *keyport.Error gets it. Errors that never
// reached Keyport (a connection failure, a client-side deadline) carry no
// reason and stay plain gRPC status errors.
type Error struct {
	// Reason is the ErrorInfo's reason, e.g. [ReasonRateLimited]; a reason
	// this version does not know (a newer server's) matches no sentinel.
	Reason string

	status *status.Status
	err    error
}

// Error returns the text of the gRPC status error.
func (e *Error) Error() string { return e.err.Error() }

// GRPCStatus returns the call's status, for status.FromError and status.Code.
func (e *Error) GRPCStatus() *status.Status { return e.status }

// Unwrap returns the gRPC status error.
func (e *Error) Unwrap() error { return e.err }

// Is reports whether target is the sentinel of e's reason (for errors.Is).
func (e *Error) Is(target error) bool {
	s, ok := target.(*reasonSentinel)
	return ok && s.reason == e.Reason
}

// WrapError returns err as an [*Error] when it is (or wraps) a gRPC status
// error with a google.rpc.ErrorInfo of domain [ErrorDomain], so that
// errors.Is matches the sentinel of its reason. It returns err itself when
// it is nil, already an [*Error], or carries no Keyport reason. The clients
// of [Dial] do this for every call; use it for calls on a connection of your
// own ([NewFromConn]).
func WrapError(err error) error {
	if err == nil {
		return nil
	}
	var kerr *Error
	if errors.As(err, &kerr) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == ErrorDomain {
			return &Error{Reason: info.GetReason(), status: st, err: err}
		}
	}
	return err
}

// RetryDelay returns how long to wait before trying a call again, from the
// google.rpc.RetryInfo detail that Keyport attaches to [ReasonRateLimited]
// errors, and true; or 0 and false when err carries none (nil, another
// reason, or an error that never reached Keyport).
//
//	if delay, ok := keyport.RetryDelay(err); ok {
//		time.Sleep(delay)
//	}
func RetryDelay(err error) (time.Duration, bool) {
	if err == nil {
		return 0, false
	}
	st, ok := status.FromError(err)
	if !ok {
		return 0, false
	}
	for _, d := range st.Details() {
		if retry, ok := d.(*errdetails.RetryInfo); ok && retry.GetRetryDelay() != nil {
			return retry.GetRetryDelay().AsDuration(), true
		}
	}
	return 0, false
}

// ErrorInfo returns the google.rpc.ErrorInfo detail of a Keyport error: the
// first one with domain [ErrorDomain], else the first one of any domain. It
// returns nil when err is nil, is not a gRPC status error, or carries no
// ErrorInfo (for example a transport error such as Unavailable, or a
// deadline that expired on the client).
func ErrorInfo(err error) *errdetails.ErrorInfo {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	var first *errdetails.ErrorInfo
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok {
			continue
		}
		if info.GetDomain() == ErrorDomain {
			return info
		}
		if first == nil {
			first = info
		}
	}
	return first
}

// ErrorReason returns the stable reason of a Keyport error, such as
// [ReasonInvalidCredentials] or [ReasonEmailTaken], read from the
// google.rpc.ErrorInfo detail of its gRPC status (see [ErrorInfo]). It
// returns "" when err is nil or carries no ErrorInfo; branch on
// status.Code(err) in that case. errors.Is with the sentinels
// ([ErrInvalidCredentials], ...) tells the same apart.
func ErrorReason(err error) string {
	return ErrorInfo(err).GetReason()
}

// FieldViolations returns the google.rpc.BadRequest field violations of a
// Keyport error (Keyport sends them with invalid input, for example with
// [ReasonInvalidArgument]), or nil when there are none.
func FieldViolations(err error) []*errdetails.BadRequest_FieldViolation {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return nil
	}
	var out []*errdetails.BadRequest_FieldViolation
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			out = append(out, br.GetFieldViolations()...)
		}
	}
	return out
}
