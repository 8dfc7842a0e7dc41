"""What the session caches know, shared by the thread and the asyncio one.

:class:`CacheState` holds the cached answers and applies the events of
``WatchSessionEvents``; it does no I/O. The two caches around it
(:class:`keyport.cache.SessionCache` on a thread,
:class:`keyport.cache.AsyncSessionCache` on an asyncio task) only feed it
the stream and ask Keyport on a miss.

The rules, the same as the Rust client's ``SessionCache``:

- Entries are served only while the stream is live (after its ``ready``).
  Going live or dark flushes everything, so a missed event can never leave
  a revoked session valid.
- Every event and every change of liveness bumps a generation counter. A
  miss takes a ticket (the generation) *before* asking Keyport and its
  answer is cached only if the generation is still the ticket: an answer
  that was in flight while any event arrived may predate that event.
- An answer lives for ``min(cache_ttl hint, max_ttl)``; at most
  ``max_entries`` are kept.
"""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, FrozenSet, Optional, Sequence, Set, Tuple

from keyport.api_keys import API_KEY_PREFIX
from keyport.v1 import authorization_service_pb2, session_pb2, session_service_pb2, user_pb2

from .refusals import Refusals

__all__ = ["CacheConfig", "CacheState", "CacheStats", "Decision", "Principal", "SessionCheck", "session_id_of"]

#: A monotonic clock, in seconds.
Clock = Callable[[], float]


@dataclass(frozen=True)
class CacheConfig:
    """How a session cache behaves; the defaults are the Rust client's."""

    #: Sessions kept at most.
    max_entries: int = 100_000
    #: Longest an entry is served, in seconds, whatever the server's hint.
    max_ttl: float = 60.0
    #: Seconds of silence after which the stream counts as dead (the server
    #: sends a heartbeat every 15 s).
    heartbeat_timeout: float = 40.0
    #: Seconds to wait before subscribing again after the stream ended.
    reconnect_delay: float = 0.25
    #: Seconds a token Keyport refused as unknown, revoked or expired is
    #: refused again without asking (it cannot become valid); 0 always asks.
    refusal_ttl: float = 30.0
    #: Refused tokens remembered at most.
    max_refusals: int = 10_000
    #: Seconds between health checks (``grpc.health.v1``) of the server the
    #: stream is on: a frozen server keeps its stream open and silent, which
    #: only the heartbeat timeout would notice otherwise. 0 turns them off.
    liveness_interval: float = 1.0

    def __post_init__(self) -> None:
        if self.max_entries < 0 or self.max_refusals < 0:
            raise ValueError("max_entries and max_refusals must not be negative")
        if self.heartbeat_timeout <= 0 or self.reconnect_delay < 0 or self.max_ttl < 0 or self.refusal_ttl < 0:
            raise ValueError("heartbeat_timeout must be positive; the other durations not negative")


@dataclass(frozen=True)
class Principal:
    """Who a valid token belongs to: Keyport's ``Session`` and ``User``.

    For an API key checked with ``authorize`` the session is empty and the
    user is the key's owner (empty for a service account's key).
    """

    session: session_pb2.Session
    user: user_pb2.User

    @property
    def user_id(self) -> str:
        """The user's id."""
        return self.user.id

    @property
    def session_id(self) -> str:
        """The session's id."""
        return self.session.id

    @property
    def email(self) -> str:
        """The user's email address."""
        return self.user.email

    @property
    def roles(self) -> Tuple[str, ...]:
        """The user's roles."""
        return tuple(self.user.roles)


@dataclass(frozen=True)
class SessionCheck:
    """A valid session, as a cache answers it."""

    #: Who the token belongs to (shared with the cache entry).
    principal: Principal
    #: Keyport pushed the session's expiry forward on this call: a web app
    #: re-issues its cookie. Always false on a cache hit.
    refreshed: bool = False


@dataclass(frozen=True)
class Decision:
    """A permission check answered by a cache's ``authorize``."""

    #: Who is asking (shared with the cache entry).
    principal: Principal
    #: Per asked permission, in the order asked: allowed or not.
    allowed: Tuple[bool, ...]
    #: Keyport pushed the session's expiry forward: re-issue the cookie.
    refreshed: bool = False

    @property
    def all(self) -> bool:
        """Whether every asked permission is allowed."""
        return all(self.allowed)


@dataclass(frozen=True)
class CacheStats:
    """A snapshot of a cache, for metrics and health pages."""

    #: Sessions cached now.
    entries: int
    #: Refused tokens remembered now.
    refusals: int
    #: Whether the event stream is up (entries are served only then).
    live: bool
    #: Answers served from the cache.
    hits: int
    #: Tokens Keyport was asked about.
    misses: int
    #: Refusals served without asking Keyport.
    refusal_hits: int
    #: Times the stream went live (1 + resubscriptions).
    subscriptions: int
    #: Attempts to subscribe that failed (Keyport down, or refusing the stream).
    subscribe_failures: int
    #: Events applied (heartbeats excluded).
    events: int


class _Entry:
    __slots__ = ("token", "principal", "owner_id", "valid_until", "granted", "check")

    def __init__(
        self, token: str, principal: Principal, owner_id: str, valid_until: float, granted: Optional[FrozenSet[str]]
    ) -> None:
        self.token = token
        self.principal = principal
        self.owner_id = owner_id
        self.valid_until = valid_until
        #: Every permission the session's roles grant; ``None`` when the
        #: entry came from ``GetSession``, which does not say.
        self.granted = granted
        # Made once: a hit hands out this very answer, no allocation.
        self.check = SessionCheck(principal)


@dataclass
class _Counters:
    hits: int = 0
    misses: int = 0
    refusal_hits: int = 0
    subscriptions: int = 0
    subscribe_failures: int = 0
    events: int = 0


@dataclass
class _Entries:
    by_session: Dict[str, _Entry] = field(default_factory=dict)
    by_owner: Dict[str, Set[str]] = field(default_factory=dict)
    #: Permission names Keyport decided since the stream went live (so its
    #: catalogue has them): a restart that changed the catalogue breaks the
    #: stream, which empties this too.
    known: Set[str] = field(default_factory=set)


def session_id_of(token: str) -> Optional[str]:
    """What an entry is filed under: the id in ``kp_<id>.<secret>``, or
    ``kpa_<id>`` for an API key (never equal to a session id)."""
    if token.startswith(API_KEY_PREFIX):
        prefixed_id, dot, _ = token.partition(".")
        return prefixed_id if dot else None
    if not token.startswith("kp_"):
        return None
    session_id, dot, _ = token[3:].partition(".")
    return session_id if dot and session_id else None


def _ttl_of(duration: object) -> float:
    seconds = getattr(duration, "seconds", 0)
    nanos = getattr(duration, "nanos", 0)
    return float(seconds) + float(nanos) / 1e9


class CacheState:
    """Cached answers, liveness and the generation counter; thread-safe.

    Every method takes the one lock briefly and never does I/O, so the
    asyncio cache may call it from the event loop.
    """

    def __init__(self, config: CacheConfig, clock: Clock = time.monotonic) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._live = False
        self._generation = 0
        self._entries = _Entries()
        self._counters = _Counters()
        self.refusals = Refusals(config.refusal_ttl, config.max_refusals, clock)

    # -- reading ---------------------------------------------------------

    @property
    def live(self) -> bool:
        """Whether the stream is live, so entries are served."""
        return self._live

    def ticket(self) -> int:
        """The generation now: take it before asking Keyport, pass it to ``insert_*``."""
        return self._generation

    def lookup(self, token: str) -> Optional[Principal]:
        """The cached, unexpired principal of ``token``, if the stream is live."""
        entry = self._hit(token)
        return None if entry is None else entry.principal

    def lookup_check(self, token: str) -> Optional[SessionCheck]:
        """:meth:`lookup`, as the :class:`SessionCheck` a cache hit answers."""
        entry = self._hit(token)
        return None if entry is None else entry.check

    def decide_cached(self, token: str, permissions: Sequence[str]) -> Optional[Decision]:
        """A decision of ``permissions`` from the cache alone: the session's
        grants are cached and Keyport decided every name before."""
        with self._lock:
            if not all(permission in self._entries.known for permission in permissions):
                return None
            entry = self._hit_locked(token, count=False)
            if entry is None or entry.granted is None:
                return None
            self._counters.hits += 1
            granted = entry.granted
            return Decision(entry.principal, tuple(permission in granted for permission in permissions))

    def refused(self, token: str) -> Optional[BaseException]:
        """The remembered final refusal of ``token`` (counted), if any."""
        refusal = self.refusals.get(token)
        if refusal is not None:
            with self._lock:
                self._counters.refusal_hits += 1
        return refusal

    def count_miss(self) -> int:
        """Counts a call to Keyport; returns the ticket to insert its answer with."""
        with self._lock:
            self._counters.misses += 1
            return self._generation

    def _hit(self, token: str) -> Optional[_Entry]:
        with self._lock:
            return self._hit_locked(token, count=True)

    def _hit_locked(self, token: str, *, count: bool) -> Optional[_Entry]:
        if not self._live or not token.isascii():
            return None
        session_id = session_id_of(token)
        entry = None if session_id is None else self._entries.by_session.get(session_id)
        # The id is public (it is in session lists); the whole token must
        # match, compared in constant time.
        if entry is None or not hmac.compare_digest(entry.token, token):
            return None
        if self._clock() >= entry.valid_until:
            return None
        if count:
            self._counters.hits += 1
        return entry

    def stats(self) -> CacheStats:
        """What the cache holds and has done."""
        with self._lock:
            c = self._counters
            return CacheStats(
                entries=len(self._entries.by_session),
                refusals=len(self.refusals),
                live=self._live,
                hits=c.hits,
                misses=c.misses,
                refusal_hits=c.refusal_hits,
                subscriptions=c.subscriptions,
                subscribe_failures=c.subscribe_failures,
                events=c.events,
            )

    def __len__(self) -> int:
        return len(self._entries.by_session)

    # -- answers ----------------------------------------------------------

    def insert_session(self, token: str, answer: session_service_pb2.GetSessionResponse, ticket: int) -> Principal:
        """Caches a ``GetSession`` answer taken under ``ticket``; returns its principal."""
        principal = Principal(answer.session, answer.user)
        self._insert(token, principal, answer.user.id, _ttl_of(answer.cache_ttl), None, (), ticket)
        return principal

    def insert_authorized(
        self, token: str, answer: authorization_service_pb2.AuthorizeResponse, ticket: int
    ) -> Decision:
        """Caches an ``Authorize`` answer taken under ``ticket`` (the session
        with every permission it is granted, and the decided names as known
        to Keyport); returns the decision."""
        principal = Principal(answer.session, answer.user)
        owner_id = answer.user.id or answer.service_account.id
        decided = [decision.permission for decision in answer.decisions]
        self._insert(token, principal, owner_id, _ttl_of(answer.cache_ttl), frozenset(answer.granted), decided, ticket)
        allowed = tuple(decision.allowed for decision in answer.decisions)
        return Decision(principal, allowed, answer.refreshed)

    def _insert(
        self,
        token: str,
        principal: Principal,
        owner_id: str,
        hint: float,
        granted: Optional[FrozenSet[str]],
        known: Sequence[str],
        ticket: int,
    ) -> None:
        ttl = min(hint, self.config.max_ttl)
        session_id = session_id_of(token)
        if ttl <= 0 or session_id is None or self.config.max_entries == 0:
            return
        with self._lock:
            # Checked under the lock the events take too: an event (or a
            # break) since the ticket means the answer may be stale.
            if not self._live or self._generation != ticket:
                return
            entries = self._entries
            entries.known.update(known)
            if session_id not in entries.by_session and len(entries.by_session) >= self.config.max_entries:
                self._evict_locked()
            self._remove_session_locked(session_id)
            entries.by_owner.setdefault(owner_id, set()).add(session_id)
            entries.by_session[session_id] = _Entry(token, principal, owner_id, self._clock() + ttl, granted)

    # -- events -----------------------------------------------------------

    def set_live(self, live: bool) -> None:
        """Goes live or dark; either way starts from an empty cache."""
        with self._lock:
            self._generation += 1
            self._entries = _Entries()
            if live and not self._live:
                self._counters.subscriptions += 1
            self._live = live

    def subscribe_failed(self) -> None:
        """Counts a failed attempt to subscribe (and stays dark)."""
        self.set_live(False)
        with self._lock:
            self._counters.subscribe_failures += 1

    def apply(self, message: session_service_pb2.WatchSessionEventsResponse) -> None:
        """Applies one message of the stream (``ready`` makes the cache live)."""
        kind = message.WhichOneof("event")
        if kind == "ready":
            self.set_live(True)
            return
        if kind == "heartbeat" or kind is None:
            return
        with self._lock:
            self._generation += 1
            self._counters.events += 1
            entries = self._entries
            if kind == "session_revoked":
                self._remove_session_locked(message.session_revoked.session_id)
            elif kind == "user_changed":
                self._remove_owner_locked(message.user_changed.user_id)
            elif kind == "roles_changed":
                # Every cached decision may be stale; an entry is both a
                # session and its grants, so start over.
                self._entries = _Entries()
            elif kind == "api_keys_changed":
                changed = message.api_keys_changed
                if changed.api_key_id:
                    self._remove_session_locked(API_KEY_PREFIX + changed.api_key_id)
                else:
                    self._remove_owner_locked(changed.owner_id)
            else:
                # An event this version does not know: it may invalidate
                # anything, so nothing cached is trusted any more.
                entries.by_session.clear()
                entries.by_owner.clear()

    def forget_session(self, session_id: str) -> None:
        """Drops a session, e.g. right after this app revoked it."""
        with self._lock:
            self._generation += 1
            self._remove_session_locked(session_id)

    def forget_user(self, user_id: str) -> None:
        """Drops every session of a user."""
        with self._lock:
            self._generation += 1
            self._remove_owner_locked(user_id)

    def _remove_session_locked(self, session_id: str) -> None:
        entry = self._entries.by_session.pop(session_id, None)
        if entry is None:
            return
        sessions = self._entries.by_owner.get(entry.owner_id)
        if sessions is not None:
            sessions.discard(session_id)
            if not sessions:
                del self._entries.by_owner[entry.owner_id]

    def _remove_owner_locked(self, owner_id: str) -> None:
        for session_id in self._entries.by_owner.pop(owner_id, set()):
            self._entries.by_session.pop(session_id, None)

    def _evict_locked(self) -> None:
        """Makes room: every expired entry, else the oldest inserted one."""
        now = self._clock()
        expired = [sid for sid, entry in self._entries.by_session.items() if entry.valid_until <= now]
        if not expired:
            # Dicts keep insertion order: the first is the oldest.
            expired = [next(iter(self._entries.by_session))]
        for session_id in expired:
            self._remove_session_locked(session_id)
