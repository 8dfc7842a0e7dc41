"""Hand-written layer over the generated ``keyport.v1`` stubs.

:class:`KeyportClient` owns one gRPC channel and exposes the generated
``UserService`` and ``SessionService`` stubs on it. The helpers turn a
session token into call metadata and read Keyport's stable error reason
(``google.rpc.ErrorInfo.reason``) out of a failed call.
"""

from __future__ import annotations

import collections
from types import TracebackType
from typing import Any, Callable, List, Optional, Sequence, Tuple, Type, cast

import grpc
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from keyport.v1 import session_service_pb2_grpc, user_service_pb2_grpc

__all__ = [
    "ERROR_DOMAIN",
    "KeyportClient",
    "Metadata",
    "bearer_metadata",
    "error_info",
    "error_reason",
    "field_violations",
    "forwarded_client_metadata",
]

#: ``ErrorInfo.domain`` of every error that Keyport itself raises.
ERROR_DOMAIN = "keyport.dev"

#: gRPC call metadata: a sequence of ``(key, value)`` pairs.
Metadata = Tuple[Tuple[str, str], ...]

_USER_AGENT = "keyport-client-python/0.1.0"


def bearer_metadata(token: str) -> Metadata:
    """Returns call metadata that presents a session token.

    Pass it as ``metadata=`` to every user-scoped RPC (everything except
    ``SignUp``, ``SignIn`` and ``GetSession``)::

        client.sessions.ListSessions(ListSessionsRequest(), metadata=bearer_metadata(token))

    Args:
        token: The session token from ``SignUp`` or ``SignIn``
            (``SessionGrant.token``).

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

    Works for errors raised by synchronous stubs and by ``grpc.aio`` stubs.

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

    The reason is ``ErrorInfo.reason`` of domain ``keyport.dev``, such as
    ``INVALID_CREDENTIALS``, ``EMAIL_TAKEN``, ``WEAK_PASSWORD``,
    ``PASSWORD_TOO_LONG``, ``INVALID_ARGUMENT``, ``UNAUTHENTICATED``,
    ``SESSION_EXPIRED``, ``SESSION_NOT_FOUND``, ``RATE_LIMITED``,
    ``RESOURCE_EXHAUSTED``, ``MALFORMED_REQUEST`` (not valid protobuf) or
    ``UNAVAILABLE`` (database unreachable).
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


class KeyportClient:
    """A connection to a Keyport server with its generated service stubs.

    Call the RPCs on :attr:`users` and :attr:`sessions` with request
    messages from :mod:`keyport.v1.user_service_pb2` and
    :mod:`keyport.v1.session_service_pb2`; failures raise
    :class:`grpc.RpcError`, whose reason :func:`error_reason` reads.

    Use it as a context manager, or call :meth:`close`, to release the
    channel::

        with KeyportClient("127.0.0.1:50051", timeout=5) as client:
            reply = client.sessions.SignIn(SignInRequest(email=..., password=...))

    Attributes:
        channel: The underlying gRPC channel (with the default-timeout
            interceptor, if any).
        users: Stub of ``keyport.v1.UserService``.
        sessions: Stub of ``keyport.v1.SessionService``.
    """

    channel: grpc.Channel
    users: user_service_pb2_grpc.UserServiceStub
    sessions: session_service_pb2_grpc.SessionServiceStub

    def __init__(
        self,
        address: str,
        *,
        timeout: Optional[float] = None,
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
                does not pass its own ``timeout=``. ``None`` means no
                deadline. Streaming calls never get a default deadline.
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
        if not tls and (root_certificates or private_key or certificate_chain):
            raise ValueError("root_certificates, private_key and certificate_chain need tls=True")
        if (private_key is None) != (certificate_chain is None):
            raise ValueError("private_key and certificate_chain must be given together")
        if timeout is not None and timeout <= 0:
            raise ValueError("timeout must be positive (or None for no deadline)")

        channel_options = [("grpc.primary_user_agent", _USER_AGENT), *(options or ())]
        if tls:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=root_certificates,
                private_key=private_key,
                certificate_chain=certificate_chain,
            )
            self._raw_channel = grpc.secure_channel(address, credentials, options=channel_options)
        else:
            self._raw_channel = grpc.insecure_channel(address, options=channel_options)

        self.address = address
        self.timeout = timeout
        self.channel = (
            grpc.intercept_channel(self._raw_channel, _DefaultTimeout(timeout))
            if timeout is not None
            else self._raw_channel
        )
        self.users = user_service_pb2_grpc.UserServiceStub(self.channel)
        self.sessions = session_service_pb2_grpc.SessionServiceStub(self.channel)

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
