"""Tokens Keyport refused, remembered briefly so that junk or stale cookies
replayed on every request do not each cost a ``GetSession`` call.

A token refused as unknown, revoked or expired can never become valid again,
so serving the refusal is always right, stream or no stream. The map holds
keyed hashes, not tokens: its memory is bounded by the entry count whatever
an attacker sends.
"""

from __future__ import annotations

import hashlib
import os
import threading
from typing import Callable, Dict, Optional, Tuple

import grpc

from keyport.errors import KeyportError, Reason

#: The reasons that mean a token is dead for good.
_FINAL = frozenset({Reason.UNAUTHENTICATED.value, Reason.SESSION_EXPIRED.value})


class Refusals:
    """A bounded, thread-safe memory of final refusals, keyed by token hash."""

    def __init__(self, ttl: float, max_entries: int, clock: Callable[[], float]) -> None:
        self._ttl = ttl
        self._max_entries = max_entries
        self._clock = clock
        # Keyed per process: nobody outside can aim at a collision.
        self._key = os.urandom(32)
        self._lock = threading.Lock()
        self._entries: Dict[bytes, Tuple[grpc.RpcError, float]] = {}

    def _digest(self, token: str) -> bytes:
        return hashlib.blake2b(token.encode("utf-8", "surrogateescape"), key=self._key, digest_size=16).digest()

    def get(self, token: str) -> Optional[KeyportError]:
        """A fresh copy of the remembered refusal of ``token``, if still fresh."""
        if not self._entries:
            return None
        with self._lock:
            found = self._entries.get(self._digest(token))
        if found is None or self._clock() >= found[1]:
            return None
        # A new exception per request: one object raised in many threads
        # would share (and grow) its traceback.
        return KeyportError.from_rpc_error(found[0])

    def remember(self, token: str, error: BaseException) -> None:
        """Remembers ``error`` for ``token`` if it is a refusal that cannot change."""
        if self._ttl <= 0 or self._max_entries <= 0:
            return
        if not isinstance(error, KeyportError) or error.reason not in _FINAL:
            return
        now = self._clock()
        with self._lock:
            if len(self._entries) >= self._max_entries:
                self._entries = {k: v for k, v in self._entries.items() if v[1] > now}
                # Still full of fresh refusals (a flood of distinct junk):
                # start over rather than grow; each costs one more call at worst.
                if len(self._entries) >= self._max_entries:
                    self._entries.clear()
            self._entries[self._digest(token)] = (error.rpc_error, now + self._ttl)

    def __len__(self) -> int:
        return len(self._entries)
