"""Python client for Keyport, the gRPC identity service.

The generated code for the API lives in :mod:`keyport.v1` (messages in the
``*_pb2`` modules, stubs in ``*_service_pb2_grpc``). This package adds a
small hand-written layer:

- :class:`KeyportClient`: a channel with the ``UserService``,
  ``SessionService``, ``TwoFactorService``, ``PasskeyService``,
  ``AuthorizationService``, ``AdminService``, ``ApiKeyService`` and
  ``OrganizationService`` stubs, a default deadline
  (:data:`DEFAULT_TIMEOUT`, 2 s), TLS/mTLS, and a context manager that
  closes it; :class:`AsyncKeyportClient` is the same over ``grpc.aio``;
- :func:`bearer_metadata`: the ``authorization: Bearer <token>`` metadata
  that user-scoped RPCs need, and :func:`forwarded_client_metadata`, which
  tells Keyport the end user's address and user agent;
- :func:`error_reason`, :func:`error_info`, :func:`field_violations` and
  :func:`retry_delay`: Keyport's ``google.rpc`` error details of a failed
  call;
- :class:`Reason`, the reasons, and :class:`KeyportError` with a subclass
  per reason (:class:`InvalidCredentials`, :class:`RateLimited`, ...), which
  :class:`KeyportClient` raises for the errors Keyport answers;
- :func:`token_from_link`, and :func:`email_sign_in_cookie`,
  :func:`email_sign_in_binding` and :func:`clear_email_sign_in_cookie`
  (:class:`SetCookie`): the pieces the web app's pages for mailed links and
  codes repeat (:mod:`keyport.mail`);
- :func:`sign_in_challenge`: the second-factor challenge a sign-in answers
  for a user with an authenticator app or a passkey, and
  :func:`challenge_cookie`, :func:`challenge_from_cookie`,
  :func:`challenge_passkey_options_from_cookie` and
  :func:`clear_challenge_cookie`, which keep it in the browser that signed
  in (:mod:`keyport.factors`);
- :func:`passkey_ceremony_cookie`, :func:`passkey_ceremony_from_cookie` and
  :func:`clear_passkey_ceremony_cookie`: keep a passkey sign-in's ceremony
  in the browser that started it (:mod:`keyport.passkeys`);
- :func:`list_all_users` and :func:`list_all_users_async`: every page of
  ``AdminService.ListUsers`` for an admin (:mod:`keyport.admin`);
- :func:`is_api_key` and :data:`API_KEY_PREFIX`: tell an API key
  (``kpa_...``) from a session token (:mod:`keyport.api_keys`).

For apps and services that check their callers (imported on their own, so
that a plain client loads none of it):

- :mod:`keyport.cache`: ``SessionCache`` (thread) and ``AsyncSessionCache``
  (asyncio), revocation-aware caches fed by ``WatchSessionEvents``;
- :mod:`keyport.web`: the request guard, with ASGI
  (:mod:`keyport.web.asgi`), FastAPI (:mod:`keyport.web.fastapi`) and WSGI
  (:mod:`keyport.web.wsgi`) adapters;
- :mod:`keyport.grpc_auth`: server interceptors for ``grpc`` and ``grpc.aio``;
- :mod:`keyport.jwt`: verification of Keyport's access tokens (the ``jwt`` extra).
"""

from keyport._version import __version__
from keyport.admin import list_all_users, list_all_users_async
from keyport.aio import AsyncKeyportClient
from keyport.api_keys import API_KEY_PREFIX, is_api_key
from keyport.client import (
    DEFAULT_TIMEOUT,
    KeyportClient,
    Metadata,
    bearer_metadata,
    forwarded_client_metadata,
)
from keyport.errors import (
    ERROR_DOMAIN,
    AccessTokensDisabled,
    AccountLinkRefused,
    AlreadyLinked,
    ApiKeyExpired,
    ApiKeyNotAccepted,
    ApiKeyNotFound,
    AudienceNotAllowed,
    EmailTaken,
    EmailTokenInvalid,
    EventsLost,
    Internal,
    InvalidArgument,
    InvalidCredentials,
    InvitationInvalid,
    KeyportError,
    LastOwner,
    LastSignInMethod,
    LinkedAccountNotFound,
    EmailNotVerified,
    MailDisabled,
    MalformedRequest,
    MemberNotFound,
    OAuthIdTokenInvalid,
    OAuthProviderError,
    OAuthProviderUnknown,
    OAuthStateInvalid,
    OrganizationNotFound,
    PasskeyInvalid,
    PasskeyNotFound,
    PasskeysDisabled,
    PasswordContainsEmail,
    PasswordTooCommon,
    PasswordTooLong,
    PermissionDenied,
    PermissionUnknown,
    RateLimited,
    ReauthenticationRequired,
    Reason,
    RedirectUriNotAllowed,
    ResourceExhausted,
    SecondFactorAlreadyEnrolled,
    SecondFactorInvalid,
    SecondFactorNotEnrolled,
    ServiceAccountNotFound,
    SessionExpired,
    SessionNotFound,
    SignInChallengeInvalid,
    SlugTaken,
    StepUpRequired,
    Unauthenticated,
    Unavailable,
    UserBanned,
    UserNotFound,
    WeakPassword,
    error_info,
    error_reason,
    field_violations,
    retry_delay,
)
from keyport.factors import (
    CHALLENGE_COOKIE_NAME,
    challenge_cookie,
    challenge_from_cookie,
    challenge_passkey_options_from_cookie,
    clear_challenge_cookie,
    sign_in_challenge,
)
from keyport.mail import (
    EMAIL_SIGN_IN_COOKIE_NAME,
    SetCookie,
    clear_email_sign_in_cookie,
    email_sign_in_binding,
    email_sign_in_cookie,
    token_from_link,
)
from keyport.passkeys import (
    PASSKEY_CEREMONY_COOKIE_NAME,
    clear_passkey_ceremony_cookie,
    passkey_ceremony_cookie,
    passkey_ceremony_from_cookie,
)

__all__ = [
    "API_KEY_PREFIX",
    "AccessTokensDisabled",
    "AccountLinkRefused",
    "AlreadyLinked",
    "AsyncKeyportClient",
    "ApiKeyExpired",
    "ApiKeyNotAccepted",
    "ApiKeyNotFound",
    "AudienceNotAllowed",
    "CHALLENGE_COOKIE_NAME",
    "DEFAULT_TIMEOUT",
    "EMAIL_SIGN_IN_COOKIE_NAME",
    "ERROR_DOMAIN",
    "EmailTaken",
    "EmailTokenInvalid",
    "EventsLost",
    "Internal",
    "InvalidArgument",
    "InvalidCredentials",
    "InvitationInvalid",
    "KeyportClient",
    "KeyportError",
    "LastOwner",
    "LastSignInMethod",
    "LinkedAccountNotFound",
    "EmailNotVerified",
    "MailDisabled",
    "MalformedRequest",
    "MemberNotFound",
    "Metadata",
    "OAuthIdTokenInvalid",
    "OAuthProviderError",
    "OAuthProviderUnknown",
    "OAuthStateInvalid",
    "OrganizationNotFound",
    "PASSKEY_CEREMONY_COOKIE_NAME",
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
    "SetCookie",
    "SignInChallengeInvalid",
    "SlugTaken",
    "StepUpRequired",
    "Unauthenticated",
    "Unavailable",
    "UserBanned",
    "UserNotFound",
    "WeakPassword",
    "__version__",
    "bearer_metadata",
    "challenge_cookie",
    "challenge_from_cookie",
    "challenge_passkey_options_from_cookie",
    "clear_challenge_cookie",
    "clear_passkey_ceremony_cookie",
    "clear_email_sign_in_cookie",
    "email_sign_in_binding",
    "email_sign_in_cookie",
    "error_info",
    "error_reason",
    "field_violations",
    "forwarded_client_metadata",
    "is_api_key",
    "list_all_users",
    "list_all_users_async",
    "passkey_ceremony_cookie",
    "passkey_ceremony_from_cookie",
    "retry_delay",
    "sign_in_challenge",
    "token_from_link",
]
