"""What both caches send Keyport: requests, forwarded metadata, the health probe."""

from __future__ import annotations

from typing import Optional, Sequence

import grpc

from keyport.client import DEFAULT_TIMEOUT, Metadata
from keyport.errors import KeyportError
from keyport.v1 import authorization_service_pb2, session_service_pb2

#: The health service every Keyport serves (``grpc.health.v1``).
HEALTH_CHECK_METHOD = "/grpc.health.v1.Health/Check"
#: ``HealthCheckRequest{service: ""}``, encoded: the whole server.
HEALTH_CHECK_REQUEST = b""
#: ``HealthCheckResponse{status: SERVING}``, encoded.
SERVING = b"\x08\x01"

WATCH_REQUEST = session_service_pb2.WatchSessionEventsRequest()


def forwarded(client_ip: Optional[str], user_agent: Optional[str]) -> Metadata:
    """``x-keyport-client-ip`` / ``x-keyport-user-agent`` metadata; a value
    metadata cannot carry is left out rather than failing the request."""
    entries = []
    for key, value in (("x-keyport-client-ip", client_ip), ("x-keyport-user-agent", user_agent)):
        if value and value.isascii() and value.isprintable() and len(value) <= 1024:
            entries.append((key, value))
    return tuple(entries)


def get_session_request(token: str) -> session_service_pb2.GetSessionRequest:
    """The ``GetSession`` request of ``token``."""
    return session_service_pb2.GetSessionRequest(token=token)


def authorize_request(token: str, permissions: Sequence[str]) -> authorization_service_pb2.AuthorizeRequest:
    """The ``Authorize`` request of ``token`` and ``permissions``."""
    return authorization_service_pb2.AuthorizeRequest(token=token, permissions=list(permissions))


def probe_timeout(timeout: Optional[float]) -> float:
    """The deadline of a health probe: the client's, else the default."""
    return timeout if timeout is not None else DEFAULT_TIMEOUT


def is_unreachable(error: BaseException) -> bool:
    """Whether ``error`` says Keyport could not be reached (no reason: the
    transport, or a deadline), rather than a verdict of Keyport's."""
    if isinstance(error, KeyportError) or not isinstance(error, grpc.RpcError):
        return False
    code = getattr(error, "code", None)
    return callable(code) and code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
