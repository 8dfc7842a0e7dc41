"""The session caches against a live Keyport: the thread one
(:class:`keyport.cache.SessionCache`) and the asyncio one
(:class:`keyport.cache.AsyncSessionCache`)."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Iterator

import grpc
import pytest

from keyport import AsyncKeyportClient, KeyportClient, KeyportError, SessionExpired, Unauthenticated
from keyport.cache import AsyncSessionCache, CacheConfig, SessionCache
from keyport.v1 import user_service_pb2

from .conftest import running_keyport
from .guarded import (
    SHORT_SESSIONS_ENV,
    TRUSTED_LOOPBACK_ENV,
    UNTRUSTED_ENV,
    delete_sessions_behind_its_back,
    revoke,
    two_sessions,
    unused_address,
    wait_for,
)
from .support import KeyportServer
from keyport import bearer_metadata

FAST = CacheConfig(reconnect_delay=0.02)


@pytest.fixture(scope="module")
def watched_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyportServer]:
    """A Keyport that trusts 127.0.0.1 with ``WatchSessionEvents``."""
    with running_keyport(tmp_path_factory.mktemp("keyport-watched"), TRUSTED_LOOPBACK_ENV) as server:
        yield server


@pytest.fixture(scope="module")
def watched_client(watched_server: KeyportServer) -> Iterator[KeyportClient]:
    with KeyportClient(watched_server.address, timeout=10) as client:
        yield client


@pytest.fixture
def cache(watched_client: KeyportClient) -> Iterator[SessionCache]:
    with SessionCache(watched_client, FAST) as live_cache:
        assert live_cache.wait_until_live(), "the stream came up"
        yield live_cache


def test_a_valid_session_is_asked_once_then_served_from_the_cache(cache: SessionCache, watched_client: KeyportClient) -> None:
    user = two_sessions(watched_client)
    first = cache.get_session(user.laptop, client_ip="203.0.113.7", user_agent="pytest")
    assert first.principal.email == user.email and first.principal.user_id == user.user_id
    again = cache.get_session(user.laptop)
    assert again.principal == first.principal
    stats = cache.stats()
    assert (stats.misses, stats.hits, stats.entries) == (1, 1, 1)


def test_a_revocation_drops_the_session_at_once(cache: SessionCache, watched_client: KeyportClient) -> None:
    user = two_sessions(watched_client)
    cache.get_session(user.phone)
    cache.get_session(user.laptop)
    revoke(watched_client, by=user.laptop, token=user.phone)
    wait_for(lambda: cache.lookup(user.phone) is None, what="the revocation reaching the cache")
    assert cache.live, "dropped by the event, not by a broken stream"
    with pytest.raises(Unauthenticated):
        cache.get_session(user.phone)
    assert cache.lookup(user.laptop) is not None, "the user's other session stays cached"


def test_a_change_of_the_user_drops_all_their_sessions(cache: SessionCache, watched_client: KeyportClient) -> None:
    user = two_sessions(watched_client)
    cache.get_session(user.phone)
    cache.get_session(user.laptop)
    watched_client.users.UpdateCurrentUser(
        user_service_pb2.UpdateCurrentUserRequest(name="Ada L."), metadata=bearer_metadata(user.laptop)
    )
    wait_for(lambda: cache.lookup(user.phone) is None and cache.lookup(user.laptop) is None, what="user_changed")
    assert cache.get_session(user.laptop).principal.user.name == "Ada L.", "asked again: the new profile"


def test_junk_tokens_cost_one_call(cache: SessionCache) -> None:
    junk = "kp_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
    before = cache.stats()
    for _ in range(5):
        with pytest.raises(Unauthenticated):
            cache.get_session(junk)
    after = cache.stats()
    assert after.misses - before.misses == 1
    assert after.refusal_hits - before.refusal_hits == 4


def test_permissions_are_decided_and_cached_with_the_session(cache: SessionCache, watched_client: KeyportClient) -> None:
    user = two_sessions(watched_client)
    decision = cache.authorize(user.laptop, ["posts:read", "posts:write"])
    assert decision.allowed == (True, False), "user grants posts:read only"
    misses = cache.stats().misses
    again = cache.authorize(user.laptop, ["posts:write", "posts:read"])
    assert again.allowed == (False, True) and cache.stats().misses == misses, "decided from the cache"
    with pytest.raises(KeyportError) as raised:
        cache.authorize(user.laptop, ["nothing:here"])
    assert raised.value.reason == "PERMISSION_UNKNOWN", "an unknown name is an error, never a silent deny"


def test_keyport_down_fails_and_is_never_cached() -> None:
    with KeyportClient(unused_address(), timeout=0.5) as client, SessionCache(client, FAST) as cache:
        token = "kp_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"
        for _ in range(2):
            with pytest.raises(grpc.RpcError) as raised:
                cache.get_session(token)
            assert not isinstance(raised.value, KeyportError), "no verdict of Keyport's"
        stats = cache.stats()
        assert stats.misses == 2 and stats.refusal_hits == 0, "an outage is asked again"
        assert not cache.live
        wait_for(lambda: cache.stats().subscribe_failures >= 1, what="a failed subscription")


def test_an_untrusted_peer_never_gets_the_stream(tmp_path: Path) -> None:
    with running_keyport(tmp_path, UNTRUSTED_ENV) as server:
        with KeyportClient(server.address, timeout=10) as client, SessionCache(client, FAST) as cache:
            wait_for(lambda: cache.stats().subscribe_failures >= 2, what="two refused subscriptions")
            assert not cache.live and cache.stats().subscriptions == 0
            user = two_sessions(client)
            cache.get_session(user.laptop)
            cache.get_session(user.laptop)
            assert cache.stats().misses == 2 and cache.stats().hits == 0, "a cache without the stream never serves"


def test_a_silent_stream_counts_as_dead(watched_client: KeyportClient) -> None:
    # Keyport's heartbeat comes every 15 s: a 0.3 s timeout finds it silent.
    config = CacheConfig(reconnect_delay=0.02, heartbeat_timeout=0.3, liveness_interval=0)
    with SessionCache(watched_client, config) as cache:
        wait_for(lambda: cache.stats().subscriptions >= 3, what="resubscribing after silences")


def test_a_frozen_server_is_noticed_by_the_health_probe(tmp_path: Path) -> None:
    with running_keyport(tmp_path, TRUSTED_LOOPBACK_ENV) as server:
        with KeyportClient(server.address, timeout=0.5) as client:
            config = CacheConfig(reconnect_delay=0.02, liveness_interval=0.1)
            with SessionCache(client, config) as cache:
                assert cache.wait_until_live()
                os.kill(server.process.pid, signal.SIGSTOP)
                try:
                    wait_for(lambda: not cache.live, timeout=5, what="the cache going dark")
                finally:
                    os.kill(server.process.pid, signal.SIGCONT)
                assert cache.wait_until_live(), "and back once the server answers"


def test_the_cache_resynchronises_after_a_broken_stream(tmp_path: Path) -> None:
    """A lost event must never leave a revoked session valid."""
    address = unused_address()
    with running_keyport(tmp_path, TRUSTED_LOOPBACK_ENV, listen=address) as server:
        client = KeyportClient(server.address, timeout=2)
        cache = SessionCache(client, FAST)
        assert cache.wait_until_live()
        user = two_sessions(client)
        cache.get_session(user.laptop)
        assert cache.lookup(user.laptop) is not None
    try:
        # Keyport went away; the sessions go behind its back, so no event is sent.
        wait_for(lambda: not cache.live, what="the cache going dark")
        assert cache.lookup(user.laptop) is None, "a dark cache serves nothing"
        delete_sessions_behind_its_back(tmp_path)
        with running_keyport(tmp_path, TRUSTED_LOOPBACK_ENV, listen=address):
            assert cache.wait_until_live(), "resubscribed to the restarted server"
            assert cache.lookup(user.laptop) is None, "started over after the break"
            with pytest.raises(Unauthenticated):
                cache.get_session(user.laptop)
    finally:
        cache.close()
        client.close()


def test_an_expired_session_is_refused(tmp_path: Path) -> None:
    with running_keyport(tmp_path, SHORT_SESSIONS_ENV) as server:
        with KeyportClient(server.address, timeout=10) as client, SessionCache(client, FAST) as cache:
            assert cache.wait_until_live()
            user = two_sessions(client)
            cache.get_session(user.laptop)
            # The server's hint never outlives the session: the entry goes
            # with it, and Keyport then says it expired.
            wait_for(lambda: cache.lookup(user.laptop) is None, timeout=5, what="the entry expiring")
            with pytest.raises((SessionExpired, Unauthenticated)):
                cache.get_session(user.laptop)


# -- asyncio ---------------------------------------------------------------


def test_the_asyncio_cache_serves_drops_and_refuses(watched_server: KeyportServer, watched_client: KeyportClient) -> None:
    user = two_sessions(watched_client)

    async def scenario() -> None:
        async with AsyncKeyportClient(watched_server.address, timeout=10) as client:
            async with AsyncSessionCache(client, FAST) as cache:
                assert await cache.wait_until_live()
                first = await cache.get_session(user.phone)
                assert first.principal.email == user.email
                await cache.get_session(user.phone)
                assert (cache.stats().misses, cache.stats().hits) == (1, 1)
                decision = await cache.authorize(user.laptop, ["posts:read"])
                assert decision.all
                await asyncio.to_thread(revoke, watched_client, user.laptop, user.phone)
                for _ in range(2000):
                    if cache.lookup(user.phone) is None:
                        break
                    await asyncio.sleep(0.005)
                assert cache.lookup(user.phone) is None and cache.live
                with pytest.raises(Unauthenticated):
                    await cache.get_session(user.phone)
                with pytest.raises(Unauthenticated):
                    await cache.get_session(user.phone)
                assert cache.stats().refusal_hits == 1

    asyncio.run(scenario())


def test_the_asyncio_cache_resynchronises_after_a_broken_stream(tmp_path: Path) -> None:
    address = unused_address()

    async def scenario() -> None:
        async with AsyncKeyportClient(address, timeout=2) as client:
            async with AsyncSessionCache(client, FAST) as cache:
                with running_keyport(tmp_path, TRUSTED_LOOPBACK_ENV, listen=address) as server:
                    assert await cache.wait_until_live()
                    with KeyportClient(server.address) as sync_client:
                        user = two_sessions(sync_client)
                    await cache.get_session(user.laptop)
                    assert cache.lookup(user.laptop) is not None
                for _ in range(2000):
                    if not cache.live:
                        break
                    await asyncio.sleep(0.005)
                assert not cache.live and cache.lookup(user.laptop) is None
                delete_sessions_behind_its_back(tmp_path)
                with running_keyport(tmp_path, TRUSTED_LOOPBACK_ENV, listen=address):
                    assert await cache.wait_until_live()
                    assert cache.lookup(user.laptop) is None
                    with pytest.raises(Unauthenticated):
                        await cache.get_session(user.laptop)

    asyncio.run(scenario())


def test_the_asyncio_cache_fails_closed_when_keyport_is_down() -> None:
    async def scenario() -> None:
        async with AsyncKeyportClient(unused_address(), timeout=0.5) as client:
            async with AsyncSessionCache(client, FAST) as cache:
                with pytest.raises(grpc.RpcError) as raised:
                    await cache.get_session("kp_AAAAAAAAAAAAAAAAAAAAAA.BBBB")
                assert not isinstance(raised.value, KeyportError)
                assert not cache.live

    asyncio.run(scenario())
