""":class:`SessionCache`: the session cache of the sync client, fed by a thread.

A background thread holds a ``WatchSessionEvents`` stream open and applies
its events to the :class:`~keyport.cache.state.CacheState`; a second one
watches that stream for silence and probes the server's health, cancelling
the stream when either fails. Lookups take one lock briefly and never wait
for the threads.
"""

from __future__ import annotations

import threading
import time
from types import TracebackType
from typing import Any, Callable, Optional, Sequence, Type

import grpc

from keyport.client import KeyportClient

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

__all__ = ["SessionCache"]


class SessionCache:
    """A revocation-aware cache of ``GetSession`` and ``Authorize`` answers
    in front of a :class:`keyport.KeyportClient`.

    It subscribes to ``WatchSessionEvents`` at once (Keyport answers it only
    to peers in its ``server.trusted_proxies``) and serves entries only
    while that stream is live; until then, and whenever the stream breaks,
    every check asks Keyport. Close it (or use it as a context manager) to
    stop its threads::

        with KeyportClient(address) as client, SessionCache(client) as cache:
            check = cache.get_session(token, client_ip=ip, user_agent=agent)
            print(check.principal.email)
    """

    def __init__(self, client: KeyportClient, config: CacheConfig = CacheConfig(), *, clock: Clock = time.monotonic) -> None:
        """Starts the cache in front of ``client`` (which it does not close)."""
        self.client = client
        self.config = config
        self.state = CacheState(config, clock)
        self._closed = threading.Event()
        self._call_lock = threading.Lock()
        self._call: Optional[Any] = None
        self._last_message = time.monotonic()
        self._health: Callable[..., Any] = client.channel.unary_unary(HEALTH_CHECK_METHOD)
        self._watcher = threading.Thread(target=self._watch, name="keyport-session-events", daemon=True)
        self._monitor = threading.Thread(target=self._monitor_stream, name="keyport-session-liveness", daemon=True)
        self._watcher.start()
        self._monitor.start()

    # -- checks -----------------------------------------------------------

    def get_session(self, token: str, *, client_ip: Optional[str] = None, user_agent: Optional[str] = None) -> SessionCheck:
        """Validates ``token``: from the cache when possible, else with ``GetSession``.

        ``client_ip`` and ``user_agent`` are forwarded to Keyport on a miss.
        Raises the client's errors: a :class:`keyport.KeyportError` subclass
        for Keyport's refusal (``Unauthenticated``, ``SessionExpired``, ...;
        the final ones are remembered for ``refusal_ttl``), a plain
        ``grpc.RpcError`` when Keyport could not be reached (never cached).
        """
        hit = self.state.lookup_check(token)
        if hit is not None:
            return hit
        self._raise_remembered(token)
        ticket = self.state.count_miss()
        try:
            answer = self.client.sessions.GetSession(get_session_request(token), metadata=forwarded(client_ip, user_agent))
        except grpc.RpcError as err:
            self._failed(token, err)
            raise
        return SessionCheck(self.state.insert_session(token, answer, ticket), answer.refreshed)

    def authorize(
        self,
        token: str,
        permissions: Sequence[str],
        *,
        client_ip: Optional[str] = None,
        user_agent: Optional[str] = None,
    ) -> Decision:
        """Decides ``permissions`` (``resource:action``) for ``token``: from
        the cache when the session's grants are cached and Keyport decided
        every name before, else with one ``Authorize`` call whose answer is
        cached. Raises as :meth:`get_session` does (``PermissionUnknown``
        for a name outside Keyport's catalogue)."""
        decision = self.state.decide_cached(token, permissions)
        if decision is not None:
            return decision
        self._raise_remembered(token)
        ticket = self.state.count_miss()
        try:
            answer = self.client.authorization.Authorize(
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

    def wait_until_live(self, timeout: float = 10.0) -> bool:
        """Waits up to ``timeout`` seconds for the stream; returns whether it is live."""
        deadline = time.monotonic() + timeout
        while not self.state.live:
            if time.monotonic() >= deadline or self._closed.is_set():
                return False
            time.sleep(0.005)
        return True

    def _raise_remembered(self, token: str) -> None:
        refusal = self.state.refused(token)
        if refusal is not None:
            raise refusal

    def _failed(self, token: str, err: grpc.RpcError) -> None:
        self.state.refusals.remember(token, err)
        if is_unreachable(err):
            # The stream's server may be gone without the stream knowing yet.
            self._break_stream()

    # -- the stream -------------------------------------------------------

    def _watch(self) -> None:
        """Keeps the cache subscribed until it is closed."""
        while not self._closed.is_set():
            call = self.client.sessions.WatchSessionEvents(WATCH_REQUEST)
            with self._call_lock:
                self._call = call
                self._last_message = time.monotonic()
            if self._closed.is_set():
                call.cancel()
            went_live = False
            try:
                for message in call:
                    self._last_message = time.monotonic()
                    went_live = went_live or message.WhichOneof("event") == "ready"
                    self.state.apply(message)
                self.state.set_live(False)
            except grpc.RpcError:
                if went_live:
                    self.state.set_live(False)
                else:
                    self.state.subscribe_failed()
            finally:
                with self._call_lock:
                    self._call = None
            self._closed.wait(self.config.reconnect_delay)

    def _monitor_stream(self) -> None:
        """Cancels a stream that fell silent, or whose server stops answering."""
        # Often enough to notice silence within a quarter of its timeout.
        interval = min(self.config.liveness_interval or float("inf"), self.config.heartbeat_timeout / 4)
        while not self._closed.wait(interval):
            with self._call_lock:
                call, last = self._call, self._last_message
            if call is None:
                continue
            if time.monotonic() - last > self.config.heartbeat_timeout or not self._healthy():
                self._break_stream()

    def _healthy(self) -> bool:
        if not self.config.liveness_interval or not self.state.live:
            return True
        try:
            answer = self._health(HEALTH_CHECK_REQUEST, timeout=probe_timeout(self.client.timeout))
        except grpc.RpcError:
            return False
        return bool(answer == SERVING)

    def _break_stream(self) -> None:
        """Goes dark at once and ends the stream, so that it resubscribes."""
        self.state.set_live(False)
        with self._call_lock:
            if self._call is not None:
                self._call.cancel()

    # -- lifetime ---------------------------------------------------------

    def close(self) -> None:
        """Stops the threads (the client stays open)."""
        self._closed.set()
        self._break_stream()
        self._watcher.join(timeout=5)
        self._monitor.join(timeout=5)

    def __enter__(self) -> SessionCache:
        return self

    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SessionCache({self.client.address!r}, live={self.state.live})"
