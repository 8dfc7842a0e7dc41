""":class:`AsyncSessionCache`: the session cache of the asyncio client, fed by a task.

One task holds a ``WatchSessionEvents`` stream open and applies its events
to the :class:`~keyport.cache.state.CacheState`; another cancels the stream
when it falls silent for ``heartbeat_timeout`` or the server stops
answering health probes. Lookups never await.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType
from typing import Any, Callable, Optional, Sequence, Set, Type

import grpc
import grpc.aio

from keyport.aio import AsyncKeyportClient

from ._calls import (
    HEALTH_CHECK_METHOD,
    HEALTH_CHECK_REQUEST,
    SERVING,
    WATCH_REQUEST,
    authorize_request,
    forwarded,
    get_session_request,
    is_unreachable,
    probe_timeout,
)
from .state import CacheConfig, CacheState, CacheStats, Clock, Decision, Principal, SessionCheck

__all__ = ["AsyncSessionCache"]




class AsyncSessionCache:
    """:class:`keyport.cache.SessionCache` for :class:`keyport.AsyncKeyportClient`.

    Make it inside the running event loop; it subscribes at once. Close it
    (or use ``async with``) to stop its tasks::

        async with AsyncKeyportClient(address) as client, AsyncSessionCache(client) as cache:
            check = await cache.get_session(token)
    """

    def __init__(
        self, client: AsyncKeyportClient, config: CacheConfig = CacheConfig(), *, clock: Clock = time.monotonic
    ) -> None:
        """Starts the cache in front of ``client`` (which it does not close); needs a running loop."""
        self.client = client
        self.config = config
        self.state = CacheState(config, clock)
        self._closed = False
        self._call: Optional[Any] = None
        self._last_message = time.monotonic()
        self._health: Callable[..., Any] = client.channel.unary_unary(HEALTH_CHECK_METHOD)
        self._tasks: Set["asyncio.Task[None]"] = {
            asyncio.get_running_loop().create_task(self._watch(), name="keyport-session-events"),
            asyncio.get_running_loop().create_task(self._monitor(), name="keyport-session-liveness"),
        }

    # -- checks -----------------------------------------------------------

    async def get_session(
        self, token: str, *, client_ip: Optional[str] = None, user_agent: Optional[str] = None
    ) -> SessionCheck:
        """Validates ``token`` as :meth:`keyport.cache.SessionCache.get_session` does."""
        hit = self.state.lookup_check(token)
        if hit is not None:
            return hit
        self._raise_remembered(token)
        ticket = self.state.count_miss()
        try:
            answer = await self.client.sessions.GetSession(
                get_session_request(token), metadata=forwarded(client_ip, user_agent)
            )
        except grpc.RpcError as err:
            self._failed(token, err)
            raise
        return SessionCheck(self.state.insert_session(token, answer, ticket), answer.refreshed)

    async def authorize(
        self,
        token: str,
        permissions: Sequence[str],
        *,
        client_ip: Optional[str] = None,
        user_agent: Optional[str] = None,
    ) -> Decision:
        """Decides ``permissions`` as :meth:`keyport.cache.SessionCache.authorize` does."""
        decision = self.state.decide_cached(token, permissions)
        if decision is not None:
            return decision
        self._raise_remembered(token)
        ticket = self.state.count_miss()
        try:
            answer = await self.client.authorization.Authorize(
                authorize_request(token, permissions), metadata=forwarded(client_ip, user_agent)
            )
        except grpc.RpcError as err:
            self._failed(token, err)
            raise
        return self.state.insert_authorized(token, answer, ticket)

    def lookup(self, token: str) -> Optional[Principal]:
        """The cached principal of ``token`` without asking Keyport, if any."""
        return self.state.lookup(token)

    def forget_session(self, session_id: str) -> None:
        """Drops a session, e.g. right after this app revoked it."""
        self.state.forget_session(session_id)

    def forget_user(self, user_id: str) -> None:
        """Drops every session of a user."""
        self.state.forget_user(user_id)

    @property
    def live(self) -> bool:
        """Whether the event stream is up, so entries are being served."""
        return self.state.live

    def stats(self) -> CacheStats:
        """What the cache holds and has done."""
        return self.state.stats()

    async def wait_until_live(self, timeout: float = 10.0) -> bool:
        """Waits up to ``timeout`` seconds for the stream; returns whether it is live."""
        deadline = time.monotonic() + timeout
        while not self.state.live:
            if time.monotonic() >= deadline or self._closed:
                return False
            await asyncio.sleep(0.005)
        return True

    def _raise_remembered(self, token: str) -> None:
        refusal = self.state.refused(token)
        if refusal is not None:
            raise refusal

    def _failed(self, token: str, err: grpc.RpcError) -> None:
        self.state.refusals.remember(token, err)
        if is_unreachable(err):
            self._break_stream()

    # -- the stream -------------------------------------------------------

    async def _watch(self) -> None:
        """Keeps the cache subscribed until it is closed."""
        while not self._closed:
            call = self.client.sessions.WatchSessionEvents(WATCH_REQUEST)
            self._call, self._last_message = call, time.monotonic()
            went_live = False
            try:
                # Read straight off the call: an event must reach the state
                # in as few loop iterations as possible (no timer task per
                # read; the monitor watches for silence).
                async for message in call:
                    self._last_message = time.monotonic()
                    went_live = went_live or message.WhichOneof("event") == "ready"
                    self.state.apply(message)
            except (grpc.RpcError, asyncio.CancelledError) as err:
                if isinstance(err, asyncio.CancelledError) and self._closed:
                    raise
            finally:
                self._call = None
                call.cancel()
                if went_live:
                    self.state.set_live(False)
                else:
                    self.state.subscribe_failed()
            await asyncio.sleep(self.config.reconnect_delay)

    async def _monitor(self) -> None:
        """Cancels a stream that fell silent, or whose server stops answering
        health checks."""
        # Often enough to notice silence within a quarter of its timeout.
        interval = min(self.config.liveness_interval or float("inf"), self.config.heartbeat_timeout / 4)
        while not self._closed:
            await asyncio.sleep(interval)
            if self._call is None:
                continue
            if time.monotonic() - self._last_message > self.config.heartbeat_timeout or not await self._healthy():
                self._break_stream()

    async def _healthy(self) -> bool:
        if not self.config.liveness_interval or not self.state.live:
            return True
        try:
            answer = await self._health(HEALTH_CHECK_REQUEST, timeout=probe_timeout(self.client.timeout))
        except grpc.RpcError:
            return False
        return bool(answer == SERVING)

    def _break_stream(self) -> None:
        """Goes dark at once and ends the stream, so that it resubscribes."""
        self.state.set_live(False)
        if self._call is not None:
            self._call.cancel()

    # -- lifetime ---------------------------------------------------------

    async def close(self) -> None:
        """Stops the tasks (the client stays open)."""
        self._closed = True
        self._break_stream()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, grpc.RpcError):
                await task

    async def __aenter__(self) -> AsyncSessionCache:
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"AsyncSessionCache({self.client.address!r}, live={self.state.live})"
