"""gRPC server interceptors for services that authenticate their callers through Keyport.

:class:`KeyportServerInterceptor` (``grpc.server``, over the sync
:class:`keyport.cache.SessionCache`) and :class:`AsyncKeyportServerInterceptor`
(``grpc.aio.server``, over :class:`keyport.cache.AsyncSessionCache`) read
the caller's token from the ``authorization: Bearer <token>`` metadata,
check it through the cache (so a hit costs no call, and a revocation
reaches the next call once its event arrives), decide the permissions they
were given, and make the :class:`~keyport.cache.Principal` the handler's
:func:`current_principal`. A refused call answers ``UNAUTHENTICATED`` or
``PERMISSION_DENIED`` with Keyport's reason as a ``google.rpc.ErrorInfo``
(domain ``keyport.dev``) in ``grpc-status-details-bin``, as Keyport itself
and the Rust ``KeyportGrpcLayer`` do; Keyport down answers ``UNAVAILABLE``:
it fails closed::

    server = grpc.server(
        ThreadPoolExecutor(max_workers=16),
        interceptors=[KeyportServerInterceptor(cache, permissions=["reports:read"])],
    )

    class Reports(ReportsServicer):
        def Get(self, request, context):
            principal = current_principal()  # never None behind the interceptor
"""

from __future__ import annotations

import contextvars
import inspect
from typing import Any, Awaitable, Callable, Iterator, Optional, Sequence, Tuple

import grpc
import grpc.aio
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from keyport.cache import AsyncSessionCache, Principal, SessionCache
from keyport.cache.state import session_id_of
from keyport.errors import ERROR_DOMAIN, KeyportError, Reason
from keyport.web.guard import MAX_TOKEN_LENGTH

__all__ = ["AsyncKeyportServerInterceptor", "KeyportServerInterceptor", "current_principal"]

_PRINCIPAL: contextvars.ContextVar[Optional[Principal]] = contextvars.ContextVar("keyport_principal", default=None)


def current_principal() -> Optional[Principal]:
    """The caller of the call being served behind a Keyport interceptor
    (``None`` outside one)."""
    return _PRINCIPAL.get()


#: Why a call is refused: the status code, Keyport's reason, a message.
_Refusal = Tuple[grpc.StatusCode, str, str]


def _status(refusal: _Refusal) -> grpc.Status:
    """The refusal as a status carrying ``ErrorInfo`` in ``grpc-status-details-bin``."""
    code, reason, message = refusal
    status = status_pb2.Status(code=getattr(code_pb2, code.name), message=message)
    status.details.add().Pack(error_details_pb2.ErrorInfo(reason=reason, domain=ERROR_DOMAIN))
    return rpc_status.to_status(status)


def _bearer(metadata: Optional[Sequence[Tuple[str, Any]]]) -> Optional[str]:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            token = token.strip()
            if scheme.lower() == "bearer" and token:
                return token
    return None


def _refuse_early(token: Optional[str]) -> Optional[_Refusal]:
    """A refusal that needs no call: no token, or not a token's shape."""
    if token is None:
        return grpc.StatusCode.UNAUTHENTICATED, Reason.UNAUTHENTICATED.value, "no bearer token"
    if len(token) > MAX_TOKEN_LENGTH or not token.isascii() or session_id_of(token) is None:
        return grpc.StatusCode.UNAUTHENTICATED, Reason.UNAUTHENTICATED.value, "malformed token"
    return None


def _forwarded(error: grpc.RpcError) -> _Refusal:
    """Keyport's refusal, passed on with its reason; Keyport unreachable is
    ``UNAVAILABLE`` (failing closed)."""
    if not isinstance(error, KeyportError):
        return grpc.StatusCode.UNAVAILABLE, Reason.UNAVAILABLE.value, "Keyport unavailable"
    code = error.code()
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        code = grpc.StatusCode.UNAVAILABLE
    elif code not in (
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ):
        # A malformed request or an unknown permission is this service's
        # bug; the caller cannot fix it.
        code = grpc.StatusCode.INTERNAL
    return code, error.reason, error.details() or error.reason


_LACKS_PERMISSION: _Refusal = (
    grpc.StatusCode.PERMISSION_DENIED,
    Reason.PERMISSION_DENIED.value,
    "the caller lacks a permission this service needs",
)


def _wrap_handler(handler: Optional[grpc.RpcMethodHandler[Any, Any]], wrap: Callable[[Any, bool], Any]) -> Any:
    """``handler`` with its behaviour passed through ``wrap(behaviour, streams_responses)``."""
    if handler is None:
        return None
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(
            wrap(handler.unary_unary, False), handler.request_deserializer, handler.response_serializer
        )
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(
            wrap(handler.unary_stream, True), handler.request_deserializer, handler.response_serializer
        )
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(
            wrap(handler.stream_unary, False), handler.request_deserializer, handler.response_serializer
        )
    return grpc.stream_stream_rpc_method_handler(
        wrap(handler.stream_stream, True), handler.request_deserializer, handler.response_serializer
    )


class KeyportServerInterceptor(grpc.ServerInterceptor):
    """Authenticates every call of a sync ``grpc.server`` through Keyport."""

    def __init__(self, cache: SessionCache, *, permissions: Sequence[str] = (), skip_methods: Sequence[str] = ()) -> None:
        """Calls need a valid session, checked through ``cache``.

        Args:
            cache: The session cache.
            permissions: Every one of these (``resource:action``) is also
                needed, decided by Keyport (``Authorize``) and cached with
                the session.
            skip_methods: Full method names served without a check, e.g.
                ``"/grpc.health.v1.Health/Check"`` for a load balancer.
        """
        self.cache = cache
        self.permissions = tuple(permissions)
        self.skip_methods = frozenset(skip_methods)

    def check(self, metadata: Optional[Sequence[Tuple[str, Any]]]) -> Tuple[Optional[Principal], Optional[_Refusal]]:
        """The principal behind ``metadata``'s bearer token, or the refusal."""
        token = _bearer(metadata)
        early = _refuse_early(token)
        if early is not None:
            return None, early
        assert token is not None
        try:
            if not self.permissions:
                return self.cache.get_session(token).principal, None
            decision = self.cache.authorize(token, self.permissions)
        except grpc.RpcError as error:
            return None, _forwarded(error)
        return (decision.principal, None) if decision.all else (None, _LACKS_PERMISSION)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Optional[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Optional[grpc.RpcMethodHandler[Any, Any]]:
        """Wraps the method's handler so that it runs only for an authenticated caller."""
        handler = continuation(handler_call_details)
        if handler_call_details.method in self.skip_methods:
            return handler
        metadata = handler_call_details.invocation_metadata

        def wrap(behaviour: Callable[..., Any], streams: bool) -> Callable[..., Any]:
            def guarded(request: Any, context: grpc.ServicerContext) -> Any:
                principal, refusal = self.check(metadata)
                if refusal is not None:
                    context.abort_with_status(_status(refusal))
                if streams:
                    return _streaming(principal, behaviour(request, context))
                token = _PRINCIPAL.set(principal)
                try:
                    return behaviour(request, context)
                finally:
                    _PRINCIPAL.reset(token)

            return guarded

        wrapped: Optional[grpc.RpcMethodHandler[Any, Any]] = _wrap_handler(handler, wrap)
        return wrapped


def _streaming(principal: Optional[Principal], responses: Iterator[Any]) -> Iterator[Any]:
    # grpc iterates the responses after the behaviour returned: the
    # principal is set around each step, on the thread that takes it.
    while True:
        token = _PRINCIPAL.set(principal)
        try:
            response = next(responses)
        except StopIteration:
            return
        finally:
            _PRINCIPAL.reset(token)
        yield response


class AsyncKeyportServerInterceptor(grpc.aio.ServerInterceptor):
    """Authenticates every call of a ``grpc.aio.server`` through Keyport."""

    def __init__(
        self, cache: AsyncSessionCache, *, permissions: Sequence[str] = (), skip_methods: Sequence[str] = ()
    ) -> None:
        """As :class:`KeyportServerInterceptor`, over an :class:`~keyport.cache.AsyncSessionCache`."""
        self.cache = cache
        self.permissions = tuple(permissions)
        self.skip_methods = frozenset(skip_methods)

    async def check(
        self, metadata: Optional[Sequence[Tuple[str, Any]]]
    ) -> Tuple[Optional[Principal], Optional[_Refusal]]:
        """The principal behind ``metadata``'s bearer token, or the refusal."""
        token = _bearer(metadata)
        early = _refuse_early(token)
        if early is not None:
            return None, early
        assert token is not None
        try:
            if not self.permissions:
                return (await self.cache.get_session(token)).principal, None
            decision = await self.cache.authorize(token, self.permissions)
        except grpc.RpcError as error:
            return None, _forwarded(error)
        return (decision.principal, None) if decision.all else (None, _LACKS_PERMISSION)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        """Wraps the method's handler so that it runs only for an authenticated caller."""
        handler = await continuation(handler_call_details)
        if handler_call_details.method in self.skip_methods:
            return handler
        metadata = handler_call_details.invocation_metadata

        def wrap(behaviour: Callable[..., Any], streams: bool) -> Callable[..., Any]:
            async def refuse(context: grpc.aio.ServicerContext[Any, Any], refusal: _Refusal) -> None:
                status = _status(refusal)
                await context.abort(status.code, status.details, status.trailing_metadata)

            if streams:

                async def guarded_stream(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                    principal, refusal = await self.check(metadata)
                    if refusal is not None:
                        await refuse(context, refusal)
                    # An async generator runs in the call's task: set once.
                    _PRINCIPAL.set(principal)
                    responses = behaviour(request, context)
                    if hasattr(responses, "__aiter__"):
                        async for response in responses:
                            yield response
                    elif inspect.isawaitable(responses):
                        # A handler that writes with context.write().
                        await responses
                    else:
                        for response in responses:
                            yield response

                return guarded_stream

            async def guarded(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                principal, refusal = await self.check(metadata)
                if refusal is not None:
                    await refuse(context, refusal)
                # Each call runs in a task of its own, with its own context.
                _PRINCIPAL.set(principal)
                response = behaviour(request, context)
                return await response if inspect.isawaitable(response) else response

            return guarded

        wrapped: grpc.RpcMethodHandler[Any, Any] = _wrap_handler(handler, wrap)
        return wrapped
