"""``KeyportMiddleware``: the guard as pure ASGI middleware (Starlette, FastAPI, ...).

Each HTTP request is checked through an :class:`keyport.cache.AsyncSessionCache`;
the principal goes into ``scope["state"]["principal"]`` (Starlette's
``request.state.principal``). Refused requests get the guard's JSON
(``{"error": reason, "message": ...}``: 401, 403, 500 or 503) and never
reach the app; with ``optional=True`` they reach it anonymously
(``principal`` is ``None``, the refusal is in ``state["keyport_refusal"]``)
so that :func:`keyport.web.fastapi.require_session` decides per route::

    app = FastAPI()
    app.add_middleware(KeyportMiddleware, address="127.0.0.1:50051")
"""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Dict, List, MutableMapping, Optional, Sequence, Tuple

from keyport.aio import AsyncKeyportClient
from keyport.cache import AsyncSessionCache, CacheConfig

from .guard import (
    DEFAULT_COOKIE,
    CookieSettings,
    Outcome,
    Refused,
    authenticate_cached,
    authenticate_request_async,
    client_ip_from,
)

__all__ = ["KeyportMiddleware", "Scope", "Receive", "Send", "ASGIApp"]

#: ASGI types, spelled out to need no framework.
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Where the middleware puts itself in the scope, for the FastAPI dependencies.
SCOPE_KEY = "keyport.middleware"


class KeyportMiddleware:
    """Authenticates every HTTP request through Keyport before the app sees it."""

    def __init__(
        self,
        app: ASGIApp,
        cache: Optional[AsyncSessionCache] = None,
        *,
        address: Optional[str] = None,
        cache_config: CacheConfig = CacheConfig(),
        optional: bool = False,
        permissions: Sequence[str] = (),
        cookie_settings: CookieSettings = DEFAULT_COOKIE,
        trust_forwarded_for: bool = False,
    ) -> None:
        """Wraps ``app``.

        Args:
            app: The ASGI app.
            cache: The cache to check with. Without one the middleware makes
                its own, for Keyport at ``address``, on the first request
                (inside the event loop) and closes it at lifespan shutdown.
            address: ``host:port`` of Keyport, when no ``cache`` is given.
            cache_config: Settings of the cache it makes.
            optional: Let refused requests through anonymously (the routes
                decide, e.g. with :func:`keyport.web.fastapi.require_session`).
            permissions: Permissions every request also needs (403 without).
            cookie_settings: The session cookie's name and attributes.
            trust_forwarded_for: The app is behind a proxy that appends the
                client's address to ``X-Forwarded-For``: forward that one.
        """
        if cache is None and address is None:
            raise ValueError("KeyportMiddleware needs a cache or an address")
        self.app = app
        self._cache = cache
        self._address = address
        self._cache_config = cache_config
        self._owned: Optional[AsyncKeyportClient] = None
        self._lock: Optional[asyncio.Lock] = None
        self.optional = optional
        self.permissions = tuple(permissions)
        self.cookie_settings = cookie_settings
        self.trust_forwarded_for = trust_forwarded_for

    async def cache(self) -> AsyncSessionCache:
        """The cache in use (made on first use when the middleware owns it)."""
        if self._cache is not None:
            return self._cache
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self._cache is None:
                assert self._address is not None
                self._owned = AsyncKeyportClient(self._address)
                self._cache = AsyncSessionCache(self._owned, self._cache_config)
        return self._cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, self._on_shutdown(receive), send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        outcome = await self.check(scope, self.permissions)
        state = scope.setdefault("state", {})
        scope[SCOPE_KEY] = self
        if isinstance(outcome, Refused):
            state["principal"], state["keyport_refusal"] = None, outcome
            if not self.optional:
                await send_refusal(send, outcome)
                return
        else:
            state["principal"], state["keyport_refusal"] = outcome.principal, None
        if not outcome.set_cookies:
            await self.app(scope, receive, send)
            return
        await self.app(scope, receive, _with_cookies(send, outcome.set_cookies))

    async def check(self, scope: Scope, permissions: Sequence[str]) -> Outcome:
        """Runs the guard over the request of ``scope``."""
        headers = _headers(scope)
        if self._cache is not None:
            # A hit (or a refusal without a call) awaits nothing.
            answered = authenticate_cached(
                self._cache,
                authorization=headers.get("authorization"),
                cookie=headers.get("cookie"),
                permissions=permissions,
                cookie_settings=self.cookie_settings,
            )
            if answered is not None:
                return answered
        client = scope.get("client")
        peer = client[0] if client else None
        cache = self._cache if self._cache is not None else await self.cache()
        return await authenticate_request_async(
            cache,
            authorization=headers.get("authorization"),
            cookie=headers.get("cookie"),
            client_ip=client_ip_from(peer, headers.get("x-forwarded-for"), self.trust_forwarded_for),
            user_agent=headers.get("user-agent"),
            permissions=permissions,
            cookie_settings=self.cookie_settings,
        )

    def _on_shutdown(self, receive: Receive) -> Receive:
        async def receiving() -> Message:
            message = await receive()
            if message.get("type") == "lifespan.shutdown":
                await self.aclose()
            return message

        return receiving

    async def aclose(self) -> None:
        """Closes the cache and client the middleware made (not one it was given)."""
        if self._owned is not None and self._cache is not None:
            await self._cache.close()
            await self._owned.close()
            self._owned, self._cache = None, None


#: The request headers the guard reads.
_WANTED = frozenset((b"authorization", b"cookie", b"user-agent", b"x-forwarded-for"))


def _headers(scope: Scope) -> Dict[str, str]:
    # The first of each header the guard reads; latin-1 as HTTP/1.1 bytes
    # are. ASGI servers send names lower-cased.
    headers: Dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", ()):
        if raw_name in _WANTED:
            name = raw_name.decode("latin-1")
            if name not in headers:
                headers[name] = raw_value.decode("latin-1")
    return headers


def _with_cookies(send: Send, cookies: Tuple[str, ...]) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            extra = [(b"set-cookie", cookie.encode("latin-1")) for cookie in cookies]
            message["headers"] = [*message.get("headers", ()), *extra]
        await send(message)

    return sending


async def send_refusal(send: Send, refused: Refused) -> None:
    """Answers a request with the guard's refusal."""
    body = refused.body()
    headers: List[Tuple[bytes, bytes]] = [(name.encode(), value.encode("latin-1")) for name, value in refused.headers()]
    headers.append((b"content-length", str(len(body)).encode()))
    headers.extend((b"set-cookie", cookie.encode("latin-1")) for cookie in refused.set_cookies)
    await send({"type": "http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
