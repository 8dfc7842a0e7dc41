"""The gRPC server interceptors in front of a real service (``grpc.health.v1``,
whose ``Check`` also answers the caller's email in its trailing metadata),
with a live Keyport behind them."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, AsyncIterator, Iterator, List, Optional, Tuple

import grpc
import grpc.aio
import pytest
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from keyport import AsyncKeyportClient, KeyportClient, error_reason
from keyport.cache import AsyncSessionCache, CacheConfig, SessionCache
from keyport.grpc_auth import AsyncKeyportServerInterceptor, KeyportServerInterceptor, current_principal

from .conftest import running_keyport
from .guarded import TRUSTED_LOOPBACK_ENV, revoke, two_sessions, unused_address, wait_for
from .support import KeyportServer

FAST = CacheConfig(reconnect_delay=0.02)
JUNK = "kp_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
CHECK = health_pb2.HealthCheckRequest()

#: A ``grpc.health.v1`` stub (its type stubs declare no methods).
HealthStub = Any


class WhoamiHealth(health.HealthServicer):
    """The health service, telling its caller who they are."""

    def Check(self, request: health_pb2.HealthCheckRequest, context: grpc.ServicerContext) -> health_pb2.HealthCheckResponse:
        principal = current_principal()
        assert principal is not None, "the interceptor ran first"
        context.set_trailing_metadata((("x-caller-email", principal.email),))
        response: health_pb2.HealthCheckResponse = super().Check(request, context)
        return response


class AsyncWhoamiHealth(health_aio.HealthServicer):
    """:class:`WhoamiHealth` for ``grpc.aio``."""

    async def Check(self, request: health_pb2.HealthCheckRequest, context: Any) -> health_pb2.HealthCheckResponse:
        principal = current_principal()
        assert principal is not None, "the interceptor ran first"
        context.set_trailing_metadata((("x-caller-email", principal.email),))
        return await super().Check(request, context)


@pytest.fixture(scope="module")
def keyport(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyportServer]:
    with running_keyport(tmp_path_factory.mktemp("keyport-grpc-auth"), TRUSTED_LOOPBACK_ENV) as server:
        yield server


@pytest.fixture(scope="module")
def keyport_client(keyport: KeyportServer) -> Iterator[KeyportClient]:
    with KeyportClient(keyport.address, timeout=10) as client:
        yield client


@pytest.fixture(scope="module")
def cache(keyport_client: KeyportClient) -> Iterator[SessionCache]:
    with SessionCache(keyport_client, FAST) as session_cache:
        assert session_cache.wait_until_live()
        yield session_cache


@contextlib.contextmanager
def service(interceptor: grpc.ServerInterceptor) -> Iterator[HealthStub]:
    """The health service behind ``interceptor`` on 127.0.0.1:0, and a stub for it."""
    server = grpc.server(ThreadPoolExecutor(max_workers=8), interceptors=[interceptor])
    health_pb2_grpc.add_HealthServicer_to_server(WhoamiHealth(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield health_pb2_grpc.HealthStub(channel)
    finally:
        server.stop(None)


def call(stub: HealthStub, token: Optional[str]) -> Tuple[int, str]:
    """Calls ``Check`` as ``token``; returns the serving status and the caller's email."""
    metadata = () if token is None else (("authorization", f"Bearer {token}"),)
    response, outcome = stub.Check.with_call(CHECK, metadata=metadata, timeout=10)
    email = dict(outcome.trailing_metadata() or ()).get("x-caller-email", "")
    return response.status, str(email)


def refused(stub: HealthStub, token: Optional[str]) -> Tuple[grpc.StatusCode, Optional[str]]:
    """Calls ``Check`` as ``token``, expecting a refusal; returns its code and reason."""
    with pytest.raises(grpc.RpcError) as raised:
        call(stub, token)
    err = raised.value
    assert isinstance(err, grpc.Call)
    return err.code(), error_reason(err)


def test_an_authenticated_caller_reaches_the_handler(cache: SessionCache, keyport_client: KeyportClient) -> None:
    user = two_sessions(keyport_client)
    with service(KeyportServerInterceptor(cache)) as stub:
        assert call(stub, user.laptop) == (health_pb2.HealthCheckResponse.SERVING, user.email)
        hits = cache.stats().hits
        call(stub, user.laptop)
        assert cache.stats().hits == hits + 1, "the second call is a cache hit"


def test_streams_see_the_principal_too(cache: SessionCache, keyport_client: KeyportClient) -> None:
    user = two_sessions(keyport_client)
    with service(KeyportServerInterceptor(cache)) as stub:
        updates = stub.Watch(CHECK, metadata=(("authorization", f"Bearer {user.laptop}"),), timeout=10)
        assert next(updates).status == health_pb2.HealthCheckResponse.SERVING
        updates.cancel()
        with pytest.raises(grpc.RpcError) as raised:
            next(stub.Watch(CHECK, timeout=10))
        assert error_reason(raised.value) == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    "token",
    [None, "", "garbage", "kp_", "kp_" + "A" * 5000 + ".B", JUNK],
    ids=["none", "empty", "garbage", "no-dot", "oversized", "unknown"],
)
def test_a_caller_without_a_valid_token_is_refused(cache: SessionCache, token: Optional[str]) -> None:
    with service(KeyportServerInterceptor(cache)) as stub:
        assert refused(stub, token) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")


def test_an_api_key_is_not_a_session(cache: SessionCache) -> None:
    with service(KeyportServerInterceptor(cache)) as stub:
        code, reason = refused(stub, "kpa_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB")
        assert code == grpc.StatusCode.UNAUTHENTICATED and reason in ("API_KEY_NOT_ACCEPTED", "UNAUTHENTICATED")


def test_a_revoked_token_is_refused(cache: SessionCache, keyport_client: KeyportClient) -> None:
    user = two_sessions(keyport_client)
    with service(KeyportServerInterceptor(cache)) as stub:
        assert call(stub, user.phone)[1] == user.email
        revoke(keyport_client, by=user.laptop, token=user.phone)
        wait_for(lambda: cache.lookup(user.phone) is None, what="the revocation reaching the cache")
        assert refused(stub, user.phone) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")


def test_parallel_callers_racing_a_revocation(cache: SessionCache, keyport_client: KeyportClient) -> None:
    """16 callers behind a barrier, each calling until refused, while the
    session is revoked: every call started after the event reached the cache
    is refused, and each caller sees its own principal until then."""
    user = two_sessions(keyport_client)
    barrier = threading.Barrier(17)
    revoked = threading.Event()
    late_passes: List[str] = []

    def caller() -> int:
        barrier.wait()
        served = 0
        while True:
            after_event = revoked.is_set()
            try:
                _, email = call(stub, user.phone)
            except grpc.RpcError as err:
                assert error_reason(err) == "UNAUTHENTICATED", err
                return served
            assert email == user.email
            served += 1
            if after_event:
                late_passes.append(email)
            if served > 10_000:
                return served

    with service(KeyportServerInterceptor(cache)) as stub, ThreadPoolExecutor(max_workers=16) as pool:
        assert call(stub, user.phone)[1] == user.email
        calls = [pool.submit(caller) for _ in range(16)]
        barrier.wait()
        revoke(keyport_client, by=user.laptop, token=user.phone)
        wait_for(lambda: cache.lookup(user.phone) is None, what="the revocation reaching the cache")
        revoked.set()
        served = [future.result(timeout=30) for future in calls]
    assert late_passes == [], f"{len(late_passes)} calls passed after the revocation reached the cache"
    assert all(count < 10_000 for count in served), "every caller was refused in the end"


def test_permissions_are_required(cache: SessionCache, keyport_client: KeyportClient) -> None:
    user = two_sessions(keyport_client)
    with service(KeyportServerInterceptor(cache, permissions=["posts:read"])) as stub:
        assert call(stub, user.laptop)[1] == user.email
    with service(KeyportServerInterceptor(cache, permissions=["posts:read", "posts:write"])) as stub:
        assert refused(stub, user.laptop) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")
    with service(KeyportServerInterceptor(cache, permissions=["nothing:here"])) as stub:
        assert refused(stub, user.laptop) == (grpc.StatusCode.INTERNAL, "PERMISSION_UNKNOWN"), "the service's bug"


def test_skipped_methods_need_no_token(cache: SessionCache) -> None:
    interceptor = KeyportServerInterceptor(cache, skip_methods=["/grpc.health.v1.Health/Watch"])
    with service(interceptor) as stub:
        updates = stub.Watch(CHECK, timeout=10)
        assert next(updates).status == health_pb2.HealthCheckResponse.SERVING
        updates.cancel()
        assert refused(stub, None)[0] == grpc.StatusCode.UNAUTHENTICATED, "only the named method"


def test_keyport_down_fails_closed() -> None:
    with KeyportClient(unused_address(), timeout=0.5) as client, SessionCache(client, FAST) as down:
        with service(KeyportServerInterceptor(down)) as stub:
            assert refused(stub, JUNK) == (grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE")
        with service(KeyportServerInterceptor(down, permissions=["posts:read"])) as stub:
            assert refused(stub, JUNK) == (grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE")


# -- grpc.aio ----------------------------------------------------------------


@contextlib.asynccontextmanager
async def aio_service(interceptor: AsyncKeyportServerInterceptor) -> AsyncIterator[HealthStub]:
    server = grpc.aio.server(interceptors=[interceptor])
    health_pb2_grpc.add_HealthServicer_to_server(AsyncWhoamiHealth(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield health_pb2_grpc.HealthStub(channel)
    finally:
        await server.stop(None)


async def aio_refused(stub: HealthStub, token: Optional[str]) -> Tuple[grpc.StatusCode, Optional[str]]:
    metadata = () if token is None else (("authorization", f"Bearer {token}"),)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.Check(CHECK, metadata=metadata, timeout=10)
    return raised.value.code(), error_reason(raised.value)


def test_the_aio_interceptor(keyport: KeyportServer, keyport_client: KeyportClient) -> None:
    user = two_sessions(keyport_client)

    async def scenario() -> None:
        async with AsyncKeyportClient(keyport.address, timeout=10) as client:
            async with AsyncSessionCache(client, FAST) as cache:
                assert await cache.wait_until_live()
                async with aio_service(AsyncKeyportServerInterceptor(cache)) as stub:
                    metadata = (("authorization", f"Bearer {user.phone}"),)
                    call = stub.Check(CHECK, metadata=metadata, timeout=10)
                    assert (await call).status == health_pb2.HealthCheckResponse.SERVING
                    assert dict(await call.trailing_metadata())["x-caller-email"] == user.email
                    updates = stub.Watch(CHECK, metadata=metadata, timeout=10)
                    assert (await updates.read()).status == health_pb2.HealthCheckResponse.SERVING
                    updates.cancel()
                    assert await aio_refused(stub, None) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")
                    assert await aio_refused(stub, JUNK) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")
                    await asyncio.to_thread(revoke, keyport_client, user.laptop, user.phone)
                    for _ in range(2000):
                        if cache.lookup(user.phone) is None:
                            break
                        await asyncio.sleep(0.005)
                    assert await aio_refused(stub, user.phone) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")
                denied = AsyncKeyportServerInterceptor(cache, permissions=["posts:write"])
                async with aio_service(denied) as stub:
                    assert await aio_refused(stub, user.laptop) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")
        async with AsyncKeyportClient(unused_address(), timeout=0.5) as client:
            async with AsyncSessionCache(client, FAST) as down:
                async with aio_service(AsyncKeyportServerInterceptor(down)) as stub:
                    assert await aio_refused(stub, JUNK) == (grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE")

    asyncio.run(scenario())
