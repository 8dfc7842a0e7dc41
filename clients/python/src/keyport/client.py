"""Hand-written layer over the generated ``keyport.v1`` stubs.

:class:`KeyportClient` owns one gRPC channel and exposes the generated
``UserService``, ``SessionService``, ``TwoFactorService``,
``PasskeyService``, ``AuthorizationService``, ``AdminService``,
``ApiKeyService`` and ``OrganizationService`` stubs on it,
with a default deadline (:data:`DEFAULT_TIMEOUT`) and Keyport's errors
raised as :class:`keyport.KeyportError` subclasses
(:class:`keyport.AsyncKeyportClient` is the same over ``grpc.aio``). The
helpers turn a session token into call metadata; the error readers live in
:mod:`keyport.errors` and are re-exported here.
"""

from __future__ import annotations

import collections
from types import TracebackType
from typing import Any, Callable, List, Optional, Sequence, Tuple, Type

import grpc

from keyport._version import __version__
from keyport.errors import ERROR_DOMAIN, KeyportError, error_info, error_reason, field_violations
from keyport.v1 import (
    admin_service_pb2_grpc,
    api_key_service_pb2_grpc,
    authorization_service_pb2_grpc,
    organization_service_pb2_grpc,
    passkey_service_pb2_grpc,
    session_service_pb2_grpc,
    two_factor_service_pb2_grpc,
    user_service_pb2_grpc,
)

__all__ = [
    "DEFAULT_TIMEOUT",
    "ERROR_DOMAIN",
    "KeyportClient",
    "Metadata",
    "bearer_metadata",
    "error_info",
    "error_reason",
    "field_violations",
    "forwarded_client_metadata",
]

#: Default deadline of unary calls, in seconds: 2 s, the Rust client's
#: default request timeout (``keyport-client``'s ``request_timeout``), and
#: the TypeScript SDK's ``DEFAULT_TIMEOUT_MS`` and the Go SDK's
#: ``keyport.DefaultTimeout``.
DEFAULT_TIMEOUT = 2.0

#: gRPC call metadata: a sequence of ``(key, value)`` pairs.
Metadata = Tuple[Tuple[str, str], ...]

_USER_AGENT = f"keyport-client-python/{__version__}"


def bearer_metadata(token: str) -> Metadata:
    """Returns call metadata that presents a session token.

    Pass it as ``metadata=`` to every user-scoped RPC (everything except
    ``SignUp``, ``SignIn`` and ``GetSession``)::

        client.sessions.ListSessions(ListSessionsRequest(), metadata=bearer_metadata(token))

    ``AdminService`` calls also take an API key (``kpa_...``) whose scopes
    grant their permission; every other call raises
    :class:`keyport.ApiKeyNotAccepted` for one.

    Args:
        token: The session token from ``SignUp`` or ``SignIn``
            (``SessionGrant.token``), or an API key.

    Returns:
        ``(("authorization", "Bearer <token>"),)``.

    Raises:
        ValueError: If ``token`` is empty or contains whitespace or control
            characters or is not ASCII: no Keyport token is, and gRPC
            metadata could not carry it.
    """
    if not token:
        raise ValueError("session token must not be empty")
    if not token.isascii() or any(ch.isspace() or not ch.isprintable() for ch in token):
        raise ValueError("session token must be printable ASCII without whitespace")
    return (("authorization", f"Bearer {token}"),)


def forwarded_client_metadata(*, ip_address: Optional[str] = None, user_agent: Optional[str] = None) -> Metadata:
    """Returns call metadata that tells Keyport who the end user is.

    A web app that calls Keyport on behalf of a browser forwards the
    browser's address and user agent, so that sessions and audit events
    record them (``Session.ip_address``, ``Session.user_agent``). Keyport
    believes these entries only from peers listed in its
    ``server.trusted_proxies`` setting; from anyone else it records the
    caller's own address and ignores them.

    Combine it with other metadata by concatenation::

        metadata = bearer_metadata(token) + forwarded_client_metadata(ip_address="203.0.113.7")

    Args:
        ip_address: The end user's IP address (``x-keyport-client-ip``).
        user_agent: The end user's user agent (``x-keyport-user-agent``).

    Returns:
        One entry per given value; empty if neither is given.

    Raises:
        ValueError: If a value contains control characters or non-ASCII
            characters, which gRPC metadata cannot carry.
    """
    entries = []
    for key, value in (("x-keyport-client-ip", ip_address), ("x-keyport-user-agent", user_agent)):
        if value is None:
            continue
        if not value.isascii() or not value.isprintable():
            raise ValueError(f"{key} must be printable ASCII")
        entries.append((key, value))
    return tuple(entries)


def _channel_arguments(
    *,
    tls: bool,
    timeout: Optional[float],
    root_certificates: Optional[bytes],
    private_key: Optional[bytes],
    certificate_chain: Optional[bytes],
    options: Optional[Sequence[Tuple[str, Any]]],
) -> Tuple[Optional[grpc.ChannelCredentials], List[Tuple[str, Any]]]:
    """Checks a client's settings; returns its credentials (``None``: plaintext) and channel options."""
    if not tls and (root_certificates or private_key or certificate_chain):
        raise ValueError("root_certificates, private_key and certificate_chain need tls=True")
    if (private_key is None) != (certificate_chain is None):
        raise ValueError("private_key and certificate_chain must be given together")
    if timeout is not None and timeout <= 0:
        raise ValueError("timeout must be positive (or None for no deadline)")
    channel_options = [("grpc.primary_user_agent", _USER_AGENT), *(options or ())]
    if not tls:
        return None, channel_options
    credentials = grpc.ssl_channel_credentials(
        root_certificates=root_certificates,
        private_key=private_key,
        certificate_chain=certificate_chain,
    )
    return credentials, channel_options


class _CallDetails(
    collections.namedtuple(
        "_CallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):
    """A ``grpc.ClientCallDetails`` with a replaced timeout."""


class _DefaultTimeout(grpc.UnaryUnaryClientInterceptor):
    """Gives every unary call without its own timeout a default deadline."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout

    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        """Fills in the default timeout, then continues the call."""
        if client_call_details.timeout is None:
            client_call_details = _CallDetails(
                client_call_details.method,
                self._timeout,
                client_call_details.metadata,
                client_call_details.credentials,
                getattr(client_call_details, "wait_for_ready", None),
                getattr(client_call_details, "compression", None),
            )
        return continuation(client_call_details, request)


def _translate(err: BaseException) -> BaseException:
    """The :class:`KeyportError` of a failed call Keyport answered, else ``err``."""
    if isinstance(err, grpc.RpcError):
        return KeyportError.from_rpc_error(err) or err
    return err


class _TranslatedCall(grpc.Call, grpc.Future):  # type: ignore[type-arg]
    """A unary call's outcome whose errors are raised as :class:`KeyportError`.

    grpc's interceptor API hands back an object that is both a ``Call`` and
    a ``Future`` and raises only when ``result()`` is called (by the stub's
    ``__call__`` and ``with_call``, or by the caller of ``.future()``); this
    wraps it so that blocking calls and futures translate alike.
    """

    def __init__(self, outcome: Any) -> None:
        self._outcome = outcome

    def result(self, timeout: Optional[float] = None) -> Any:
        try:
            return self._outcome.result(timeout)
        except grpc.RpcError as err:
            translated = _translate(err)
            if translated is err:
                raise
            raise translated from None

    def exception(self, timeout: Optional[float] = None) -> Any:
        err = self._outcome.exception(timeout)
        return None if err is None else _translate(err)

    def traceback(self, timeout: Optional[float] = None) -> Any:
        return self._outcome.traceback(timeout)

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        self._outcome.add_done_callback(lambda _: fn(self))

    def cancel(self) -> bool:
        return bool(self._outcome.cancel())

    def cancelled(self) -> bool:
        return bool(self._outcome.cancelled())

    def running(self) -> bool:
        return bool(self._outcome.running())

    def done(self) -> bool:
        return bool(self._outcome.done())

    def code(self) -> grpc.StatusCode:
        code: grpc.StatusCode = self._outcome.code()
        return code

    def details(self) -> str:
        return str(self._outcome.details())

    def initial_metadata(self) -> Any:
        return self._outcome.initial_metadata()

    def trailing_metadata(self) -> Any:
        return self._outcome.trailing_metadata()

    def is_active(self) -> bool:
        return bool(self._outcome.is_active())

    def time_remaining(self) -> Any:
        return self._outcome.time_remaining()

    def add_callback(self, callback: Callable[[], None]) -> bool:
        return bool(self._outcome.add_callback(callback))


class _KeyportErrors(grpc.UnaryUnaryClientInterceptor):
    """Raises Keyport's errors of unary calls as :class:`KeyportError` subclasses."""

    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, Any], Any],
        client_call_details: grpc.ClientCallDetails,
        request: Any,
    ) -> Any:
        """Continues the call and wraps its outcome."""
        return _TranslatedCall(continuation(client_call_details, request))


class KeyportClient:
    """A connection to a Keyport server with its generated service stubs.

    Call the RPCs on :attr:`users`, :attr:`sessions`, :attr:`two_factor`,
    :attr:`passkeys`, :attr:`authorization`, :attr:`admin`,
    :attr:`api_keys` and :attr:`organizations` with request messages from
    :mod:`keyport.v1.user_service_pb2`,
    :mod:`keyport.v1.session_service_pb2`,
    :mod:`keyport.v1.two_factor_service_pb2`,
    :mod:`keyport.v1.passkey_service_pb2`,
    :mod:`keyport.v1.authorization_service_pb2`,
    :mod:`keyport.v1.admin_service_pb2`,
    :mod:`keyport.v1.api_key_service_pb2` and
    :mod:`keyport.v1.organization_service_pb2`. A failed unary call that Keyport
    answered raises the :class:`keyport.KeyportError` subclass of its reason
    (``InvalidCredentials``, ``RateLimited``, ...), itself a
    :class:`grpc.RpcError`; one that never reached Keyport raises a plain
    :class:`grpc.RpcError`. Server streams raise plain
    :class:`grpc.RpcError` (see :meth:`keyport.KeyportError.from_rpc_error`).
    Every unary call without a ``timeout=`` of its own gets the default
    deadline, :data:`DEFAULT_TIMEOUT` (2 s). For asyncio, use
    :class:`keyport.AsyncKeyportClient`.

    Use it as a context manager, or call :meth:`close`, to release the
    channel::

        with KeyportClient("127.0.0.1:50051", timeout=5) as client:
            reply = client.sessions.SignIn(SignInRequest(email=..., password=...))

    Attributes:
        channel: The underlying gRPC channel, with the default-timeout and
            error interceptors: stubs built on it (``OAuthServiceStub``)
            behave like :attr:`users` and :attr:`sessions`.
        users: Stub of ``keyport.v1.UserService``.
        sessions: Stub of ``keyport.v1.SessionService``.
        two_factor: Stub of ``keyport.v1.TwoFactorService``: the signed-in
            user's authenticator app (TOTP), backup codes, and ``StepUp``,
            which a sensitive call answering ``STEP_UP_REQUIRED`` needs.
        passkeys: Stub of ``keyport.v1.PasskeyService``: registering,
            listing, renaming and deleting the signed-in user's passkeys
            (WebAuthn).
        authorization: Stub of ``keyport.v1.AuthorizationService``:
            ``Authorize``, which decides the permissions a request needs for
            the holder of a session token or an API key (in the body, as
            for ``GetSession``); for a key it answers ``api_key`` and its
            owner, ``user`` (no ``session``) or ``service_account``. With
            an ``organization_id`` (or else the session's active
            organization) it also grants what the user's role there grants,
            and answers ``organization_id`` and ``organization_role``.
        admin: Stub of ``keyport.v1.AdminService``, for admins: listing
            (see :func:`keyport.list_all_users` for every page), getting,
            creating, banning, unbanning and deleting users, setting their
            roles and ending their sessions, and the service accounts that
            own API keys (``CreateServiceAccount``, ``ListServiceAccounts``,
            ``SetServiceAccountRoles``, ``DeleteServiceAccount``). Each call
            takes the admin's token (``metadata=bearer_metadata(token)``),
            or an API key whose scopes grant the permission, and needs a
            permission their roles grant (``users:read``, ``users:write``
            or ``sessions:revoke``), else raises ``PermissionDenied``; an
            unknown user id raises ``UserNotFound``, an unknown service
            account id ``ServiceAccountNotFound``.
        api_keys: Stub of ``keyport.v1.ApiKeyService``: the API keys
            (``kpa_<id>.<secret>``) of the signed-in user, or of a service
            account (``service_account_id``, for an admin):
            ``CreateApiKey`` (its ``secret`` is shown this once),
            ``ListApiKeys`` (never a secret), ``RevokeApiKey`` and
            ``RotateApiKey`` (a new key; the old one keeps working for
            ``grace``). Each call takes a session token
            (``metadata=bearer_metadata(token)``); a key as the bearer
            raises ``ApiKeyNotAccepted``, another owner's or an unknown key
            id ``ApiKeyNotFound``. See :func:`keyport.is_api_key`.
        organizations: Stub of ``keyport.v1.OrganizationService``: the
            caller's organizations (``CreateOrganization``,
            ``ListMyOrganizations``, ``RenameOrganization``,
            ``DeleteOrganization``), their members (``ListMembers``,
            ``SetMemberRole``, ``RemoveMember``, ``LeaveOrganization``,
            ``TransferOwnership``), invitations (``CreateInvitation``,
            ``ListInvitations``, ``RevokeInvitation``, ``AcceptInvitation``)
            and the session's active organization
            (``SetActiveOrganization``). Each call takes a session token
            (``metadata=bearer_metadata(token)``; a key raises
            ``ApiKeyNotAccepted``); an organization the caller is not a
            member of raises ``OrganizationNotFound``, as an unknown one.
    """

    channel: grpc.Channel
    users: user_service_pb2_grpc.UserServiceStub
    sessions: session_service_pb2_grpc.SessionServiceStub
    two_factor: two_factor_service_pb2_grpc.TwoFactorServiceStub
    passkeys: passkey_service_pb2_grpc.PasskeyServiceStub
    authorization: authorization_service_pb2_grpc.AuthorizationServiceStub
    admin: admin_service_pb2_grpc.AdminServiceStub
    api_keys: api_key_service_pb2_grpc.ApiKeyServiceStub
    organizations: organization_service_pb2_grpc.OrganizationServiceStub

    def __init__(
        self,
        address: str,
        *,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        tls: bool = False,
        root_certificates: Optional[bytes] = None,
        private_key: Optional[bytes] = None,
        certificate_chain: Optional[bytes] = None,
        options: Optional[Sequence[Tuple[str, Any]]] = None,
    ) -> None:
        """Opens a channel to Keyport.

        The channel connects lazily, on the first call.

        Args:
            address: ``host:port`` of the Keyport gRPC listener.
            timeout: Default deadline in seconds for every unary call that
                does not pass its own ``timeout=``: :data:`DEFAULT_TIMEOUT`
                (2 s, as in the Rust client and the other SDKs) unless
                given. ``None`` means no deadline. Streaming calls never get
                a default deadline.
            tls: Connect with TLS. Without it the channel is plaintext.
            root_certificates: PEM CA certificates that verify the server;
                ``None`` uses the system's roots. Needs ``tls=True``.
            private_key: PEM private key of a client certificate, for mTLS.
                Needs ``tls=True`` and ``certificate_chain``.
            certificate_chain: PEM client certificate chain, for mTLS.
                Needs ``tls=True`` and ``private_key``.
            options: Extra gRPC channel options, such as
                ``("grpc.ssl_target_name_override", "keyport.internal")``.

        Raises:
            ValueError: If certificates are given without ``tls=True``, only
                one half of the client key pair is given, or ``timeout`` is
                not positive.
        """
        credentials, channel_options = _channel_arguments(
            tls=tls,
            timeout=timeout,
            root_certificates=root_certificates,
            private_key=private_key,
            certificate_chain=certificate_chain,
            options=options,
        )
        if credentials is not None:
            self._raw_channel = grpc.secure_channel(address, credentials, options=channel_options)
        else:
            self._raw_channel = grpc.insecure_channel(address, options=channel_options)

        self.address = address
        self.timeout = timeout
        interceptors: Tuple[Any, ...] = (_KeyportErrors(),)
        if timeout is not None:
            interceptors += (_DefaultTimeout(timeout),)
        self.channel = grpc.intercept_channel(self._raw_channel, *interceptors)
        self.users = user_service_pb2_grpc.UserServiceStub(self.channel)
        self.sessions = session_service_pb2_grpc.SessionServiceStub(self.channel)
        self.two_factor = two_factor_service_pb2_grpc.TwoFactorServiceStub(self.channel)
        self.passkeys = passkey_service_pb2_grpc.PasskeyServiceStub(self.channel)
        self.authorization = authorization_service_pb2_grpc.AuthorizationServiceStub(self.channel)
        self.admin = admin_service_pb2_grpc.AdminServiceStub(self.channel)
        self.api_keys = api_key_service_pb2_grpc.ApiKeyServiceStub(self.channel)
        self.organizations = organization_service_pb2_grpc.OrganizationServiceStub(self.channel)

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled. Idempotent."""
        self._raw_channel.close()

    def __enter__(self) -> KeyportClient:
        """Returns the client itself."""
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        """Closes the channel."""
        self.close()

    def __repr__(self) -> str:
        """Shows the address and the default timeout."""
        return f"KeyportClient(address={self.address!r}, timeout={self.timeout!r})"
