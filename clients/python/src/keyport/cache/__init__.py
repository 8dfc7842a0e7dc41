"""Revocation-aware session caches fed by ``WatchSessionEvents``.

- :class:`SessionCache`: for :class:`keyport.KeyportClient` (a background thread);
- :class:`AsyncSessionCache`: for :class:`keyport.AsyncKeyportClient` (an asyncio task);
- :class:`CacheConfig`: their settings (defaults as in the Rust client);
- :class:`Principal`, :class:`SessionCheck`, :class:`Decision`, :class:`CacheStats`: what they answer.

Both serve cached answers only while the stream is live, drop entries on
the events that invalidate them, and never cache an answer that was in
flight while an event arrived (:mod:`keyport.cache.state`).
"""

from .aio import AsyncSessionCache
from .state import CacheConfig, CacheStats, Decision, Principal, SessionCheck
from .sync import SessionCache

__all__ = ["AsyncSessionCache", "CacheConfig", "CacheStats", "Decision", "Principal", "SessionCache", "SessionCheck"]
