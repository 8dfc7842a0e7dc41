"""The asyncio client: :class:`AsyncKeyportClient`, over ``grpc.aio``.

It is :class:`keyport.KeyportClient` for asyncio: the same generated stubs,
on a ``grpc.aio`` channel, with the same default deadline
(:data:`keyport.DEFAULT_TIMEOUT`) and Keyport's errors raised as the same
:class:`keyport.KeyportError` subclasses::

    async with AsyncKeyportClient("127.0.0.1:50051") as keyport:
        try:
            await keyport.sessions.SignIn(SignInRequest(email=email, password=password))
        except keyport.errors.RateLimited as err:
            await asyncio.sleep(err.retry_delay.total_seconds() if err.retry_delay else 60)
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Generator, Optional, Sequence, Tuple, Type, TypeVar

import grpc
import grpc.aio

from keyport.client import DEFAULT_TIMEOUT, _channel_arguments, _translate
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

if TYPE_CHECKING:
    from keyport.v1.admin_service_pb2_grpc import AdminServiceAsyncStub
    from keyport.v1.api_key_service_pb2_grpc import ApiKeyServiceAsyncStub
    from keyport.v1.authorization_service_pb2_grpc import AuthorizationServiceAsyncStub
    from keyport.v1.organization_service_pb2_grpc import OrganizationServiceAsyncStub
    from keyport.v1.passkey_service_pb2_grpc import PasskeyServiceAsyncStub
    from keyport.v1.session_service_pb2_grpc import SessionServiceAsyncStub
    from keyport.v1.two_factor_service_pb2_grpc import TwoFactorServiceAsyncStub
    from keyport.v1.user_service_pb2_grpc import UserServiceAsyncStub

__all__ = ["AsyncKeyportClient"]

_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


class _AioDefaultTimeout(grpc.aio.UnaryUnaryClientInterceptor):
    """Gives every unary call without its own timeout a default deadline."""

    def __init__(self, timeout: float) -> None:
        self._timeout = timeout

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, _Request], Awaitable[grpc.aio.UnaryUnaryCall[_Request, _Response]]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: _Request,
    ) -> grpc.aio.UnaryUnaryCall[_Request, _Response]:
        """Fills in the default timeout, then continues the call."""
        if client_call_details.timeout is None:
            client_call_details = grpc.aio.ClientCallDetails(
                client_call_details.method,
                self._timeout,
                client_call_details.metadata,
                client_call_details.credentials,
                client_call_details.wait_for_ready,
            )
        return await continuation(client_call_details, request)


class _TranslatedAioCall(grpc.aio.UnaryUnaryCall):  # type: ignore[type-arg]
    """A ``grpc.aio`` unary call whose error is raised as :class:`keyport.KeyportError`.

    Awaiting it (what ``await stub.Method(...)`` does) raises the subclass
    of the reason Keyport answered; everything else is the call's own.
    """

    def __init__(self, call: grpc.aio.UnaryUnaryCall) -> None:  # type: ignore[type-arg]
        self._call = call

    def __await__(self) -> Generator[Any, None, Any]:
        try:
            response = yield from self._call.__await__()
        except grpc.RpcError as err:
            translated = _translate(err)
            if translated is err:
                raise
            raise translated from None
        return response

    def cancelled(self) -> bool:
        return self._call.cancelled()

    def done(self) -> bool:
        return self._call.done()

    def time_remaining(self) -> Optional[float]:
        return self._call.time_remaining()

    def cancel(self) -> bool:
        return self._call.cancel()

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self._call.add_done_callback(lambda _: callback(self))

    async def initial_metadata(self) -> Any:
        return await self._call.initial_metadata()

    async def trailing_metadata(self) -> Any:
        return await self._call.trailing_metadata()

    async def code(self) -> grpc.StatusCode:
        return await self._call.code()

    async def details(self) -> str:
        return await self._call.details()

    async def wait_for_connection(self) -> None:
        await self._call.wait_for_connection()


class _AioKeyportErrors(grpc.aio.UnaryUnaryClientInterceptor):
    """Raises Keyport's errors of unary calls as :class:`keyport.KeyportError` subclasses."""

    async def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.aio.ClientCallDetails, _Request], Awaitable[grpc.aio.UnaryUnaryCall[_Request, _Response]]],
        client_call_details: grpc.aio.ClientCallDetails,
        request: _Request,
    ) -> grpc.aio.UnaryUnaryCall[_Request, _Response]:
        """Continues the call and wraps it."""
        return _TranslatedAioCall(await continuation(client_call_details, request))


class AsyncKeyportClient:
    """A ``grpc.aio`` channel to Keyport with its generated service stubs.

    :class:`keyport.KeyportClient` for asyncio, with the same stubs
    (:attr:`users`, :attr:`sessions`, :attr:`two_factor`, :attr:`passkeys`,
    :attr:`authorization`, :attr:`admin`, :attr:`api_keys`,
    :attr:`organizations`), whose unary calls are awaited. A failed unary
    call that Keyport answered raises the :class:`keyport.KeyportError`
    subclass of its reason (``InvalidCredentials``, ``RateLimited``, ...),
    itself a :class:`grpc.RpcError` (but not a ``grpc.aio.AioRpcError``:
    catch ``grpc.RpcError``); one that never reached Keyport raises a plain
    ``grpc.aio.AioRpcError``. Server streams raise plain
    ``grpc.aio.AioRpcError`` (see :meth:`keyport.KeyportError.from_rpc_error`).

    Use it as an async context manager, or await :meth:`close`::

        async with AsyncKeyportClient("127.0.0.1:50051", timeout=5) as client:
            reply = await client.sessions.SignIn(SignInRequest(email=..., password=...))

    Attributes:
        channel: The ``grpc.aio`` channel, with the default-timeout and
            error interceptors: stubs built on it (``OAuthServiceStub``)
            behave like :attr:`users` and :attr:`sessions`.
        timeout: The default deadline in seconds, or ``None``.
    """

    channel: grpc.aio.Channel
    users: UserServiceAsyncStub
    sessions: SessionServiceAsyncStub
    two_factor: TwoFactorServiceAsyncStub
    passkeys: PasskeyServiceAsyncStub
    authorization: AuthorizationServiceAsyncStub
    admin: AdminServiceAsyncStub
    api_keys: ApiKeyServiceAsyncStub
    organizations: OrganizationServiceAsyncStub

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
        """Opens a ``grpc.aio`` channel to Keyport; call it inside a running event loop.

        The arguments are :class:`keyport.KeyportClient`'s: ``timeout`` is
        the default deadline in seconds of every unary call that passes no
        ``timeout=`` of its own (:data:`keyport.DEFAULT_TIMEOUT`, 2 s,
        unless given; ``None`` for none; streams never get it).

        Raises:
            ValueError: As :class:`keyport.KeyportClient` does.
        """
        credentials, channel_options = _channel_arguments(
            tls=tls,
            timeout=timeout,
            root_certificates=root_certificates,
            private_key=private_key,
            certificate_chain=certificate_chain,
            options=options,
        )
        interceptors: Tuple[grpc.aio.ClientInterceptor, ...] = (_AioKeyportErrors(),)
        if timeout is not None:
            interceptors += (_AioDefaultTimeout(timeout),)
        if credentials is not None:
            self.channel = grpc.aio.secure_channel(address, credentials, options=channel_options, interceptors=interceptors)
        else:
            self.channel = grpc.aio.insecure_channel(address, options=channel_options, interceptors=interceptors)

        self.address = address
        self.timeout = timeout
        self.users = user_service_pb2_grpc.UserServiceStub(self.channel)
        self.sessions = session_service_pb2_grpc.SessionServiceStub(self.channel)
        self.two_factor = two_factor_service_pb2_grpc.TwoFactorServiceStub(self.channel)
        self.passkeys = passkey_service_pb2_grpc.PasskeyServiceStub(self.channel)
        self.authorization = authorization_service_pb2_grpc.AuthorizationServiceStub(self.channel)
        self.admin = admin_service_pb2_grpc.AdminServiceStub(self.channel)
        self.api_keys = api_key_service_pb2_grpc.ApiKeyServiceStub(self.channel)
        self.organizations = organization_service_pb2_grpc.OrganizationServiceStub(self.channel)

    async def close(self, grace: Optional[float] = None) -> None:
        """Closes the channel; calls in flight end after ``grace`` seconds (at once by default)."""
        await self.channel.close(grace)

    async def __aenter__(self) -> AsyncKeyportClient:
        """Returns the client itself."""
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        """Closes the channel."""
        await self.close()

    def __repr__(self) -> str:
        """Shows the address and the default timeout."""
        return f"AsyncKeyportClient(address={self.address!r}, timeout={self.timeout!r})"
