"""Keyport's error reasons, and exceptions keyed by them.

Every error Keyport raises is a gRPC status with a ``google.rpc.ErrorInfo``
detail of domain ``keyport.dev`` whose ``reason`` is stable. This module
reads those details (:func:`error_reason`, :func:`error_info`,
:func:`field_violations`, :func:`retry_delay`), names the reasons
(:class:`Reason`), and turns a
failed call into the :class:`KeyportError` subclass of its reason
(:meth:`KeyportError.from_rpc_error`), which :class:`keyport.KeyportClient`
and :class:`keyport.AsyncKeyportClient` raise for every failed unary call
that Keyport answered.
"""

from __future__ import annotations

import datetime
import enum
from typing import Any, Callable, Dict, List, Optional, Tuple, Type, cast

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = [
    "ERROR_DOMAIN",
    "AccessTokensDisabled",
    "AccountLinkRefused",
    "AlreadyLinked",
    "ApiKeyExpired",
    "ApiKeyNotAccepted",
    "ApiKeyNotFound",
    "AudienceNotAllowed",
    "EmailTaken",
    "EmailTokenInvalid",
    "EmailNotVerified",
    "EventsLost",
    "Internal",
    "InvalidArgument",
    "InvalidCredentials",
    "InvitationInvalid",
    "KeyportError",
    "LastOwner",
    "LastSignInMethod",
    "LinkedAccountNotFound",
    "MailDisabled",
    "MalformedRequest",
    "MemberNotFound",
    "OAuthIdTokenInvalid",
    "OAuthProviderError",
    "OAuthProviderUnknown",
    "OAuthStateInvalid",
    "OrganizationNotFound",
    "PasskeyInvalid",
    "PasskeyNotFound",
    "PasskeysDisabled",
    "PasswordContainsEmail",
    "PasswordTooCommon",
    "PasswordTooLong",
    "PermissionDenied",
    "PermissionUnknown",
    "RateLimited",
    "ReauthenticationRequired",
    "Reason",
    "RedirectUriNotAllowed",
    "ResourceExhausted",
    "SecondFactorAlreadyEnrolled",
    "SecondFactorInvalid",
    "SecondFactorNotEnrolled",
    "ServiceAccountNotFound",
    "SessionExpired",
    "SessionNotFound",
    "SignInChallengeInvalid",
    "SlugTaken",
    "StepUpRequired",
    "Unauthenticated",
    "Unavailable",
    "UserBanned",
    "UserNotFound",
    "WeakPassword",
    "error_info",
    "error_reason",
    "field_violations",
    "retry_delay",
]

#: ``ErrorInfo.domain`` of every error that Keyport itself raises.
ERROR_DOMAIN = "keyport.dev"


class Reason(str, enum.Enum):
    """The stable reasons Keyport sends in ``ErrorInfo.reason``.

    One member per value of the proto's ``keyport.v1.ErrorReason``
    (:mod:`keyport.v1.errors_pb2`), named as sent: without its
    ``ERROR_REASON_`` prefix. The SDK's tests check the two lists match.

    Members are strings, so ``error_reason(err) == Reason.EMAIL_TAKEN``
    works; ``.value`` is the plain string. A newer server may send a reason
    not listed here.
    """

    #: Malformed, empty or oversized input; see :func:`field_violations`.
    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    #: The password is shorter than the server's minimum.
    WEAK_PASSWORD = "WEAK_PASSWORD"
    #: The password is longer than the server's maximum.
    PASSWORD_TOO_LONG = "PASSWORD_TOO_LONG"
    #: The new password is one of the 100,000 most common passwords.
    PASSWORD_TOO_COMMON = "PASSWORD_TOO_COMMON"
    #: The new password is, or contains, the account's email address.
    PASSWORD_CONTAINS_EMAIL = "PASSWORD_CONTAINS_EMAIL"
    #: ``SignUp`` with an email address that already has an account.
    EMAIL_TAKEN = "EMAIL_TAKEN"
    #: Unknown email or wrong password (deliberately indistinguishable).
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    #: No, malformed, unknown or revoked session token.
    UNAUTHENTICATED = "UNAUTHENTICATED"
    #: The session token was valid but its session has expired.
    SESSION_EXPIRED = "SESSION_EXPIRED"
    #: The caller may not do this (``WatchSessionEvents`` from an untrusted peer).
    PERMISSION_DENIED = "PERMISSION_DENIED"
    #: ``RevokeSession`` of an id that is not one of the caller's sessions.
    SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
    #: The request message is not valid protobuf for its RPC.
    MALFORMED_REQUEST = "MALFORMED_REQUEST"
    #: Too many failed sign-ins; the status also carries ``RetryInfo``.
    RATE_LIMITED = "RATE_LIMITED"
    #: The server is overloaded (password hashing saturated); retry later.
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    #: Keyport cannot reach its database; retry later.
    UNAVAILABLE = "UNAVAILABLE"
    #: An internal error; the cause is only in the server's log.
    INTERNAL = "INTERNAL"
    #: ``StartOAuth`` with a provider id that is not configured.
    OAUTH_PROVIDER_UNKNOWN = "OAUTH_PROVIDER_UNKNOWN"
    #: The redirect URI is not exactly in the server's list, or not the flow's.
    REDIRECT_URI_NOT_ALLOWED = "REDIRECT_URI_NOT_ALLOWED"
    #: ``FinishOAuth`` with a missing, wrong, replayed or expired state or binding.
    OAUTH_STATE_INVALID = "OAUTH_STATE_INVALID"
    #: The provider refused or was unreachable, or the code exchange failed.
    OAUTH_PROVIDER_ERROR = "OAUTH_PROVIDER_ERROR"
    #: The provider's id_token failed verification.
    OAUTH_ID_TOKEN_INVALID = "OAUTH_ID_TOKEN_INVALID"
    #: The email has a Keyport account that may not be joined automatically.
    ACCOUNT_LINK_REFUSED = "ACCOUNT_LINK_REFUSED"
    #: The provider identity is linked to another user.
    ALREADY_LINKED = "ALREADY_LINKED"
    #: ``UnlinkAccount`` of an identity the caller does not have.
    LINKED_ACCOUNT_NOT_FOUND = "LINKED_ACCOUNT_NOT_FOUND"
    #: ``UnlinkAccount`` of the caller's only way to sign in.
    LAST_SIGN_IN_METHOD = "LAST_SIGN_IN_METHOD"
    #: A verification or password-reset link's token is unknown, used,
    #: replaced or expired: request a new link.
    EMAIL_TOKEN_INVALID = "EMAIL_TOKEN_INVALID"
    #: The call needs to send mail and the server has no mail delivery configured.
    MAIL_DISABLED = "MAIL_DISABLED"
    #: ``SignIn`` with the right password for an unverified address, on a
    #: server that requires verified addresses: offer a new link.
    EMAIL_NOT_VERIFIED = "EMAIL_NOT_VERIFIED"
    #: A sensitive change from an account without a password needs a recent
    #: sign-in: sign in again and retry.
    REAUTHENTICATION_REQUIRED = "REAUTHENTICATION_REQUIRED"
    #: ``CompleteSignIn`` with a challenge that is empty, malformed, unknown,
    #: used, expired or out of answers: sign in again from the first factor.
    SIGN_IN_CHALLENGE_INVALID = "SIGN_IN_CHALLENGE_INVALID"
    #: A second factor's answer (a TOTP or backup code, or a passkey's
    #: answer to a sign-in challenge) is wrong, reused or malformed.
    SECOND_FACTOR_INVALID = "SECOND_FACTOR_INVALID"
    #: A sensitive call from a user with a second factor needs a fresh
    #: ``AAL2`` session: pass a factor with ``StepUp`` and retry.
    STEP_UP_REQUIRED = "STEP_UP_REQUIRED"
    #: ``EnrollTotp`` for a user whose authenticator app is already on:
    #: disable it first.
    SECOND_FACTOR_ALREADY_ENROLLED = "SECOND_FACTOR_ALREADY_ENROLLED"
    #: The call needs a second factor the user does not have on.
    SECOND_FACTOR_NOT_ENROLLED = "SECOND_FACTOR_NOT_ENROLLED"
    #: The server has no ``[passkeys]`` section, so passkey calls are off.
    PASSKEYS_DISABLED = "PASSKEYS_DISABLED"
    #: A passkey ceremony is empty, malformed, unknown, used, expired or
    #: another session's, or the authenticator's answer does not verify:
    #: start a new ceremony.
    PASSKEY_INVALID = "PASSKEY_INVALID"
    #: ``RenamePasskey`` or ``DeletePasskey`` with an id that is not one of
    #: the caller's passkeys.
    PASSKEY_NOT_FOUND = "PASSKEY_NOT_FOUND"
    #: ``Authorize`` named a permission outside the server's catalogue, or
    #: one that is not ``resource:action``: fix the name, or add it to the
    #: catalogue.
    PERMISSION_UNKNOWN = "PERMISSION_UNKNOWN"
    #: ``SignIn`` (or any sign-in) with the right credentials for an account
    #: an admin banned: no sign-in succeeds while the ban lasts
    #: (``AdminService.BanUser``).
    USER_BANNED = "USER_BANNED"
    #: An admin call named a well-formed user id that no user has.
    USER_NOT_FOUND = "USER_NOT_FOUND"
    #: ``RevokeApiKey`` or ``RotateApiKey`` named a key that is not one of
    #: the caller's (or the named service account's): another owner's key
    #: answers the same as an unknown one.
    API_KEY_NOT_FOUND = "API_KEY_NOT_FOUND"
    #: An API key past its expiry was presented: create a new one.
    API_KEY_EXPIRED = "API_KEY_EXPIRED"
    #: A call named a well-formed service account id that no service
    #: account has.
    SERVICE_ACCOUNT_NOT_FOUND = "SERVICE_ACCOUNT_NOT_FOUND"
    #: An API key was presented where only a session is accepted
    #: (``GetSession``, the user's own account, sessions, factors and keys):
    #: check keys with ``Authorize``.
    API_KEY_NOT_ACCEPTED = "API_KEY_NOT_ACCEPTED"
    #: No such organization among the caller's: one they are not a member
    #: of answers the same as an unknown one.
    ORGANIZATION_NOT_FOUND = "ORGANIZATION_NOT_FOUND"
    #: The user named is not a member of the organization.
    MEMBER_NOT_FOUND = "MEMBER_NOT_FOUND"
    #: The invitation is unknown, revoked, used, expired, or for another
    #: address than the caller's verified one: ask for a new one.
    INVITATION_INVALID = "INVITATION_INVALID"
    #: The organization's owner cannot leave it or be removed, nor delete
    #: their account while they own one (``DeleteCurrentUser``): transfer
    #: the ownership first (``TransferOwnership``), or delete it.
    LAST_OWNER = "LAST_OWNER"
    #: Another organization has this slug.
    SLUG_TAKEN = "SLUG_TAKEN"
    #: This server issues no access tokens (``[access_tokens]`` has no
    #: ``issuer``).
    ACCESS_TOKENS_DISABLED = "ACCESS_TOKENS_DISABLED"
    #: The audience asked of ``IssueAccessToken`` is not one of the server's
    #: ``access_tokens.audiences``.
    AUDIENCE_NOT_ALLOWED = "AUDIENCE_NOT_ALLOWED"
    #: ``WatchSessionEvents`` ended because events may have been lost: flush
    #: what was cached from the stream and subscribe again.
    EVENTS_LOST = "EVENTS_LOST"


def _rich_status(err: grpc.RpcError) -> Optional[status_pb2.Status]:
    """Decodes the ``grpc-status-details-bin`` trailer of a failed call.

    Returns ``None`` when the error carries no rich status, is not a call
    (so has no trailers), or its rich status contradicts the call's own
    code or message (a proxy rewrote it, so its details cannot be trusted).
    """
    if not hasattr(err, "trailing_metadata"):
        return None
    try:
        # Sync errors are grpc.Call; grpc.aio's AioRpcError is not, but has
        # the same code()/details()/trailing_metadata() that from_call reads.
        status: Optional[status_pb2.Status] = rpc_status.from_call(cast(grpc.Call, err))
    except (ValueError, AttributeError, TypeError):
        return None
    return status


def error_info(err: grpc.RpcError, domain: Optional[str] = ERROR_DOMAIN) -> Optional[error_details_pb2.ErrorInfo]:
    """Returns the ``google.rpc.ErrorInfo`` detail of a failed call.

    Works for errors raised by synchronous stubs and by ``grpc.aio`` stubs,
    and for :class:`KeyportError`.

    Args:
        err: The error raised by a stub call.
        domain: Only an ``ErrorInfo`` of this domain counts; Keyport's is
            :data:`ERROR_DOMAIN`. ``None`` accepts any domain.

    Returns:
        The first matching ``ErrorInfo``, or ``None`` if the call carried
        none (for example a transport failure such as ``UNAVAILABLE`` that
        never reached Keyport).
    """
    status = _rich_status(err)
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            if detail.Unpack(info) and (domain is None or info.domain == domain):
                return info
    return None


def error_reason(err: grpc.RpcError) -> Optional[str]:
    """Returns Keyport's stable error reason for a failed call.

    The reason is ``ErrorInfo.reason`` of domain ``keyport.dev``: one of
    :class:`Reason` (which compares equal to the string), such as
    ``INVALID_CREDENTIALS``, ``EMAIL_TAKEN`` or ``SESSION_EXPIRED``.
    Branch on it rather than on the status code or message: several reasons
    share a code (``INVALID_CREDENTIALS`` and ``SESSION_EXPIRED`` are both
    ``UNAUTHENTICATED``) and messages may change.

    Args:
        err: The error raised by a stub call.

    Returns:
        The reason, or ``None`` if the error did not come from Keyport with
        an ``ErrorInfo`` (for example a connection failure).
    """
    info = error_info(err)
    return info.reason if info is not None else None


def field_violations(err: grpc.RpcError) -> List[Tuple[str, str]]:
    """Returns the invalid request fields named by a failed call.

    Keyport attaches a ``google.rpc.BadRequest`` detail to
    ``INVALID_ARGUMENT`` errors, one violation per offending field.

    Args:
        err: The error raised by a stub call.

    Returns:
        ``(field, description)`` pairs in the server's order; empty if the
        error carries no ``BadRequest``.
    """
    status = _rich_status(err)
    if status is None:
        return []
    violations: List[Tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request):
                violations.extend((v.field, v.description) for v in bad_request.field_violations)
    return violations


def retry_delay(err: grpc.RpcError) -> Optional[datetime.timedelta]:
    """Returns how long to wait before trying a ``RATE_LIMITED`` call again.

    Keyport attaches a ``google.rpc.RetryInfo`` to ``RATE_LIMITED`` errors
    (:class:`RateLimited`, whose :attr:`RateLimited.retry_delay` is this)::

        except RateLimited as err:
            time.sleep((retry_delay(err) or datetime.timedelta(minutes=1)).total_seconds())

    Works for errors raised by synchronous stubs and by ``grpc.aio`` stubs,
    and for :class:`KeyportError`.

    Args:
        err: The error raised by a stub call.

    Returns:
        The ``retry_delay`` of the first ``RetryInfo`` that has one, or
        ``None`` if the error carries none (every other reason, and errors
        that never reached Keyport).
    """
    status = _rich_status(err)
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            if detail.Unpack(retry) and retry.HasField("retry_delay"):
                return retry.retry_delay.ToTimedelta()
    return None


class KeyportError(grpc.RpcError, grpc.Call):
    """A failed call that Keyport answered with an error reason.

    :class:`keyport.KeyportClient` (and :class:`keyport.AsyncKeyportClient`)
    raises the subclass of the reason
    (:class:`InvalidCredentials`, :class:`RateLimited`, ...), or this class
    itself for a reason this version does not know. Errors that never
    reached Keyport (connection failures, client-side deadlines) carry no
    reason and stay plain :class:`grpc.RpcError`.

    It is a :class:`grpc.RpcError` and a :class:`grpc.Call`, so
    ``except grpc.RpcError``, ``err.code()``, ``err.details()`` and the
    helpers :func:`error_reason`, :func:`error_info` and
    :func:`field_violations` keep working on it.

    Attributes:
        reason: ``ErrorInfo.reason``, e.g. ``"INVALID_CREDENTIALS"``.
        metadata: ``ErrorInfo.metadata``.
        rpc_error: The error grpc raised.
    """

    #: The reason of this class; ``None`` on the base class.
    REASON: Optional[Reason] = None

    reason: str
    metadata: Dict[str, str]
    rpc_error: grpc.RpcError

    def __init__(self, rpc_error: grpc.RpcError, info: error_details_pb2.ErrorInfo) -> None:
        """Wraps ``rpc_error``, whose Keyport ``ErrorInfo`` is ``info``."""
        super().__init__(rpc_error)
        self.rpc_error = rpc_error
        self.reason = info.reason
        self.metadata = dict(info.metadata)

    @classmethod
    def from_rpc_error(cls, err: grpc.RpcError) -> Optional[KeyportError]:
        """The :class:`KeyportError` subclass instance for a failed call.

        For calls that :class:`keyport.KeyportClient` does not translate
        itself: server streams and stubs on channels of your own::

            except grpc.RpcError as err:
                raise KeyportError.from_rpc_error(err) or err

        Args:
            err: The error raised by a stub call (sync or ``grpc.aio``).

        Returns:
            ``err`` if it is a :class:`KeyportError` already; an instance of
            the class of its reason if Keyport sent one; ``None`` if the
            error carries no Keyport ``ErrorInfo``.
        """
        if isinstance(err, KeyportError):
            return err
        info = error_info(err)
        if info is None:
            return None
        error_class = _CLASSES.get(info.reason, KeyportError)
        return error_class(err, info)

    def code(self) -> grpc.StatusCode:
        """The gRPC status code."""
        return cast(grpc.Call, self.rpc_error).code()

    def details(self) -> str:
        """The status message (meant for logs, not for branching)."""
        return cast(grpc.Call, self.rpc_error).details()

    def initial_metadata(self) -> Any:
        """The call's initial metadata."""
        return cast(grpc.Call, self.rpc_error).initial_metadata()

    def trailing_metadata(self) -> Any:
        """The call's trailing metadata, with ``grpc-status-details-bin``."""
        return cast(grpc.Call, self.rpc_error).trailing_metadata()

    def is_active(self) -> bool:
        """``False``: the call is over."""
        return False

    def time_remaining(self) -> Optional[float]:  # type: ignore[override]
        """The time the call had left, as grpc reports it."""
        remaining: Optional[float] = cast(grpc.Call, self.rpc_error).time_remaining()
        return remaining

    def cancel(self) -> bool:
        """``False``: the call is over."""
        return False

    def add_callback(self, callback: Callable[[], None]) -> bool:
        """``False``: the call is over, the callback is not registered."""
        return False

    def __str__(self) -> str:
        """``<REASON> (<code>): <message>``."""
        try:
            return f"{self.reason} ({self.code().name}): {self.details()}"
        except (AttributeError, TypeError):
            return self.reason


class InvalidArgument(KeyportError):
    """``INVALID_ARGUMENT``: malformed input; see :attr:`field_violations`."""

    REASON = Reason.INVALID_ARGUMENT

    @property
    def field_violations(self) -> List[Tuple[str, str]]:
        """``(field, description)`` pairs from ``google.rpc.BadRequest``."""
        return field_violations(self)


class WeakPassword(KeyportError):
    """``WEAK_PASSWORD``: the password is shorter than the minimum."""

    REASON = Reason.WEAK_PASSWORD


class PasswordTooLong(KeyportError):
    """``PASSWORD_TOO_LONG``: the password is longer than the maximum."""

    REASON = Reason.PASSWORD_TOO_LONG


class PasswordTooCommon(KeyportError):
    """``PASSWORD_TOO_COMMON``: the new password is one of the most common."""

    REASON = Reason.PASSWORD_TOO_COMMON


class PasswordContainsEmail(KeyportError):
    """``PASSWORD_CONTAINS_EMAIL``: the new password is or contains the email."""

    REASON = Reason.PASSWORD_CONTAINS_EMAIL


class EmailTaken(KeyportError):
    """``EMAIL_TAKEN``: ``SignUp`` with an address that has an account."""

    REASON = Reason.EMAIL_TAKEN


class InvalidCredentials(KeyportError):
    """``INVALID_CREDENTIALS``: unknown email or wrong password."""

    REASON = Reason.INVALID_CREDENTIALS


class Unauthenticated(KeyportError):
    """``UNAUTHENTICATED``: no, malformed, unknown or revoked session token."""

    REASON = Reason.UNAUTHENTICATED


class SessionExpired(KeyportError):
    """``SESSION_EXPIRED``: the session's lifetime ended; sign in again."""

    REASON = Reason.SESSION_EXPIRED


class PermissionDenied(KeyportError):
    """``PERMISSION_DENIED``: e.g. ``WatchSessionEvents`` from an untrusted peer."""

    REASON = Reason.PERMISSION_DENIED


class SessionNotFound(KeyportError):
    """``SESSION_NOT_FOUND``: not one of the caller's sessions."""

    REASON = Reason.SESSION_NOT_FOUND


class MalformedRequest(KeyportError):
    """``MALFORMED_REQUEST``: the request is not valid protobuf for its RPC."""

    REASON = Reason.MALFORMED_REQUEST


class RateLimited(KeyportError):
    """``RATE_LIMITED``: too many failed sign-ins; wait :attr:`retry_delay`."""

    REASON = Reason.RATE_LIMITED

    @property
    def retry_delay(self) -> Optional[datetime.timedelta]:
        """How long to wait before trying again (``google.rpc.RetryInfo``); see :func:`retry_delay`."""
        return retry_delay(self)


class ResourceExhausted(KeyportError):
    """``RESOURCE_EXHAUSTED``: the server is overloaded; retry with backoff."""

    REASON = Reason.RESOURCE_EXHAUSTED


class Unavailable(KeyportError):
    """``UNAVAILABLE``: Keyport cannot reach its database; retry later."""

    REASON = Reason.UNAVAILABLE


class Internal(KeyportError):
    """``INTERNAL``: a server error; the cause is only in the server's log."""

    REASON = Reason.INTERNAL


class OAuthProviderUnknown(KeyportError):
    """``OAUTH_PROVIDER_UNKNOWN``: the provider id is not configured."""

    REASON = Reason.OAUTH_PROVIDER_UNKNOWN


class RedirectUriNotAllowed(KeyportError):
    """``REDIRECT_URI_NOT_ALLOWED``: not in the server's list, or not the flow's."""

    REASON = Reason.REDIRECT_URI_NOT_ALLOWED


class OAuthStateInvalid(KeyportError):
    """``OAUTH_STATE_INVALID``: missing, wrong, replayed or expired state; start again."""

    REASON = Reason.OAUTH_STATE_INVALID


class OAuthProviderError(KeyportError):
    """``OAUTH_PROVIDER_ERROR``: the provider refused or failed."""

    REASON = Reason.OAUTH_PROVIDER_ERROR


class OAuthIdTokenInvalid(KeyportError):
    """``OAUTH_ID_TOKEN_INVALID``: the provider's id_token failed verification."""

    REASON = Reason.OAUTH_ID_TOKEN_INVALID


class AccountLinkRefused(KeyportError):
    """``ACCOUNT_LINK_REFUSED``: sign in and link explicitly."""

    REASON = Reason.ACCOUNT_LINK_REFUSED


class AlreadyLinked(KeyportError):
    """``ALREADY_LINKED``: the provider identity belongs to another user."""

    REASON = Reason.ALREADY_LINKED


class LinkedAccountNotFound(KeyportError):
    """``LINKED_ACCOUNT_NOT_FOUND``: the caller has no such linked identity."""

    REASON = Reason.LINKED_ACCOUNT_NOT_FOUND


class LastSignInMethod(KeyportError):
    """``LAST_SIGN_IN_METHOD``: the caller's only way to sign in."""

    REASON = Reason.LAST_SIGN_IN_METHOD


class EmailTokenInvalid(KeyportError):
    """``EMAIL_TOKEN_INVALID``: the link's token is unknown, used, replaced or expired."""

    REASON = Reason.EMAIL_TOKEN_INVALID


class MailDisabled(KeyportError):
    """``MAIL_DISABLED``: the server has no mail delivery configured."""

    REASON = Reason.MAIL_DISABLED


class EmailNotVerified(KeyportError):
    """``EMAIL_NOT_VERIFIED``: the address must be verified before signing in."""

    REASON = Reason.EMAIL_NOT_VERIFIED


class ReauthenticationRequired(KeyportError):
    """``REAUTHENTICATION_REQUIRED``: sign in again before this change."""

    REASON = Reason.REAUTHENTICATION_REQUIRED


class SignInChallengeInvalid(KeyportError):
    """``SIGN_IN_CHALLENGE_INVALID``: the challenge is unknown, used or expired; sign in again."""

    REASON = Reason.SIGN_IN_CHALLENGE_INVALID


class SecondFactorInvalid(KeyportError):
    """``SECOND_FACTOR_INVALID``: the TOTP code, backup code or passkey answer is wrong, reused or malformed."""

    REASON = Reason.SECOND_FACTOR_INVALID


class StepUpRequired(KeyportError):
    """``STEP_UP_REQUIRED``: pass a second factor with ``StepUp`` and retry."""

    REASON = Reason.STEP_UP_REQUIRED


class SecondFactorAlreadyEnrolled(KeyportError):
    """``SECOND_FACTOR_ALREADY_ENROLLED``: the authenticator app is already on."""

    REASON = Reason.SECOND_FACTOR_ALREADY_ENROLLED


class SecondFactorNotEnrolled(KeyportError):
    """``SECOND_FACTOR_NOT_ENROLLED``: the user does not have this second factor on."""

    REASON = Reason.SECOND_FACTOR_NOT_ENROLLED


class PasskeysDisabled(KeyportError):
    """``PASSKEYS_DISABLED``: the server has no ``[passkeys]`` section."""

    REASON = Reason.PASSKEYS_DISABLED


class PasskeyInvalid(KeyportError):
    """``PASSKEY_INVALID``: the passkey ceremony or the authenticator's answer does not work; start again."""

    REASON = Reason.PASSKEY_INVALID


class PasskeyNotFound(KeyportError):
    """``PASSKEY_NOT_FOUND``: the id is not one of the caller's passkeys."""

    REASON = Reason.PASSKEY_NOT_FOUND


class PermissionUnknown(KeyportError):
    """``PERMISSION_UNKNOWN``: ``Authorize`` named a permission outside the catalogue, or not ``resource:action``."""

    REASON = Reason.PERMISSION_UNKNOWN


class UserBanned(KeyportError):
    """``USER_BANNED``: the credentials were right, but an admin banned the account."""

    REASON = Reason.USER_BANNED


class UserNotFound(KeyportError):
    """``USER_NOT_FOUND``: an admin call named a user id that no user has."""

    REASON = Reason.USER_NOT_FOUND


class ApiKeyNotFound(KeyportError):
    """``API_KEY_NOT_FOUND``: the key id is not one of the caller's (or the service account's) keys."""

    REASON = Reason.API_KEY_NOT_FOUND


class ApiKeyExpired(KeyportError):
    """``API_KEY_EXPIRED``: the API key is past its expiry; create a new one."""

    REASON = Reason.API_KEY_EXPIRED


class ServiceAccountNotFound(KeyportError):
    """``SERVICE_ACCOUNT_NOT_FOUND``: the call named a service account id that no service account has."""

    REASON = Reason.SERVICE_ACCOUNT_NOT_FOUND


class ApiKeyNotAccepted(KeyportError):
    """``API_KEY_NOT_ACCEPTED``: an API key where only a session is accepted; check keys with ``Authorize``."""

    REASON = Reason.API_KEY_NOT_ACCEPTED


class OrganizationNotFound(KeyportError):
    """``ORGANIZATION_NOT_FOUND``: no such organization among the caller's (another's looks the same)."""

    REASON = Reason.ORGANIZATION_NOT_FOUND


class MemberNotFound(KeyportError):
    """``MEMBER_NOT_FOUND``: the user named is not a member of the organization."""

    REASON = Reason.MEMBER_NOT_FOUND


class InvitationInvalid(KeyportError):
    """``INVITATION_INVALID``: the invitation is unknown, revoked, used, expired or for another verified address."""

    REASON = Reason.INVITATION_INVALID


class LastOwner(KeyportError):
    """``LAST_OWNER``: the owner cannot leave or be removed; transfer the ownership first."""

    REASON = Reason.LAST_OWNER


class SlugTaken(KeyportError):
    """``SLUG_TAKEN``: another organization has this slug."""

    REASON = Reason.SLUG_TAKEN


class AccessTokensDisabled(KeyportError):
    """``ACCESS_TOKENS_DISABLED``: this server issues no access tokens."""

    REASON = Reason.ACCESS_TOKENS_DISABLED


class AudienceNotAllowed(KeyportError):
    """``AUDIENCE_NOT_ALLOWED``: the audience is not one of the server's ``access_tokens.audiences``."""

    REASON = Reason.AUDIENCE_NOT_ALLOWED


class EventsLost(KeyportError):
    """``EVENTS_LOST``: a ``WatchSessionEvents`` stream may have missed events."""

    REASON = Reason.EVENTS_LOST


def _by_reason() -> Dict[str, Type[KeyportError]]:
    classes: Dict[str, Type[KeyportError]] = {}
    for error_class in KeyportError.__subclasses__():
        assert error_class.REASON is not None
        classes[error_class.REASON.value] = error_class
    return classes


#: The exception class of each reason.
_CLASSES = _by_reason()
