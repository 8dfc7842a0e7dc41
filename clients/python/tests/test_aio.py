"""The asyncio client, :class:`keyport.AsyncKeyportClient`, against the live server."""

from __future__ import annotations

import asyncio
import datetime
import socket
import time
from typing import Iterator, Optional

import grpc
import grpc.aio
import pytest

import keyport
import keyport.errors
from keyport import DEFAULT_TIMEOUT, AsyncKeyportClient, KeyportError, bearer_metadata, retry_delay
from keyport.v1 import session_service_pb2, user_service_pb2

from .support import PASSWORD, Account, KeyportServer, unique_email


def test_it_is_exported_and_shows_its_settings() -> None:
    assert keyport.AsyncKeyportClient is AsyncKeyportClient and "AsyncKeyportClient" in keyport.__all__

    async def open_and_close() -> None:
        async with AsyncKeyportClient("127.0.0.1:1", timeout=2.5) as client:
            assert repr(client) == "AsyncKeyportClient(address='127.0.0.1:1', timeout=2.5)"
            assert isinstance(client.channel, grpc.aio.Channel)
        async with AsyncKeyportClient("127.0.0.1:1") as default:
            assert default.timeout == DEFAULT_TIMEOUT == 2.0

    asyncio.run(open_and_close())


@pytest.mark.parametrize("kwargs", [{"root_certificates": b"pem"}, {"tls": True, "private_key": b"key"}, {"timeout": 0}])
def test_it_rejects_what_keyport_client_rejects(kwargs: dict) -> None:  # type: ignore[type-arg]
    async def open_client() -> None:
        AsyncKeyportClient("127.0.0.1:1", **kwargs)

    with pytest.raises(ValueError):
        asyncio.run(open_client())


def test_failed_calls_raise_the_class_of_their_reason(keyport_server: KeyportServer, account: Account) -> None:
    async def calls() -> None:
        async with AsyncKeyportClient(keyport_server.address, timeout=10) as client:
            with pytest.raises(keyport.errors.InvalidCredentials) as wrong:
                await client.sessions.SignIn(session_service_pb2.SignInRequest(email=account.email, password="wrong password"))
            err = wrong.value
            # A grpc.RpcError and a grpc.Call, as from KeyportClient.
            assert isinstance(err, grpc.RpcError) and isinstance(err, grpc.Call)
            assert isinstance(err.rpc_error, grpc.aio.AioRpcError)
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED
            assert keyport.error_reason(err) == "INVALID_CREDENTIALS"

            with pytest.raises(keyport.errors.Unauthenticated):
                await client.sessions.GetSession(session_service_pb2.GetSessionRequest(token="kp_x.y"))
            with pytest.raises(keyport.errors.EmailTaken):
                await client.users.SignUp(user_service_pb2.SignUpRequest(email=account.email, password=PASSWORD))
            with pytest.raises(keyport.errors.InvalidArgument) as invalid:
                await client.users.SignUp(user_service_pb2.SignUpRequest(email="not an email", password=PASSWORD))
            assert [field for field, _ in invalid.value.field_violations] == ["email"]

            # And calls that work answer as the stubs do.
            listed = await client.sessions.ListSessions(
                session_service_pb2.ListSessionsRequest(), metadata=bearer_metadata(account.token)
            )
            assert [session.id for session in listed.sessions] == [account.response.session.session.id]
            call = client.sessions.GetSession(session_service_pb2.GetSessionRequest(token=account.token))
            assert (await call).session.id == account.response.session.session.id
            assert await call.code() == grpc.StatusCode.OK

    asyncio.run(calls())


def test_rate_limited_carries_the_retry_delay(rate_limited_server: KeyportServer) -> None:
    async def calls() -> None:
        async with AsyncKeyportClient(rate_limited_server.address, timeout=10) as client:
            email = unique_email("aio-limited")
            await client.users.SignUp(user_service_pb2.SignUpRequest(email=email, password=PASSWORD))
            wrong = session_service_pb2.SignInRequest(email=email, password="wrong password")
            # SIGN_IN_LIMITS_ENV: two failed attempts, then each further one waits.
            for _ in range(2):
                with pytest.raises(keyport.errors.InvalidCredentials):
                    await client.sessions.SignIn(wrong)
            try:
                await client.sessions.SignIn(wrong)
            except keyport.errors.RateLimited as err:
                assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                delay = retry_delay(err)
                assert delay is not None and datetime.timedelta(0) < delay <= datetime.timedelta(minutes=15)
                assert err.retry_delay == delay
            else:
                pytest.fail("the third failed sign-in was not RATE_LIMITED")
            # Even the right password waits.
            with pytest.raises(keyport.errors.RateLimited):
                await client.sessions.SignIn(session_service_pb2.SignInRequest(email=email, password=PASSWORD))

    asyncio.run(calls())


def test_errors_that_never_reached_keyport_stay_aio_rpc_errors() -> None:
    async def call() -> None:
        async with AsyncKeyportClient("127.0.0.1:1", timeout=5) as nowhere:
            with pytest.raises(grpc.aio.AioRpcError) as excinfo:
                await nowhere.sessions.GetSession(session_service_pb2.GetSessionRequest(token="kp_x.y"))
        assert not isinstance(excinfo.value, KeyportError)
        assert excinfo.value.code() == grpc.StatusCode.UNAVAILABLE

    asyncio.run(call())


@pytest.fixture
def silent_peer() -> Iterator[str]:
    """``host:port`` of a peer that accepts connections and never answers."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


def test_the_default_deadline_applies_to_unary_calls(silent_peer: str) -> None:
    async def elapsed(client: AsyncKeyportClient, timeout: Optional[float] = None) -> float:
        """How long a call takes to fail with DEADLINE_EXCEEDED; ``timeout`` is the call's own, if any."""
        request = session_service_pb2.GetSessionRequest(token="kp_x.y")
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as excinfo:
            if timeout is None:
                await client.sessions.GetSession(request)
            else:
                await client.sessions.GetSession(request, timeout=timeout)
        assert excinfo.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        return time.monotonic() - started

    async def calls() -> None:
        async with AsyncKeyportClient(silent_peer) as client:
            by_default, own = await asyncio.gather(elapsed(client), elapsed(client, timeout=0.3))
        assert DEFAULT_TIMEOUT - 0.1 <= by_default < DEFAULT_TIMEOUT + 3, by_default
        assert 0.2 <= own < 1.5, own
        async with AsyncKeyportClient(silent_peer, timeout=0.5) as shorter:
            assert 0.4 <= await elapsed(shorter) < 2, "the client's own default"

    asyncio.run(calls())
