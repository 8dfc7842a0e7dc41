"""The conformance app, built with each web adapter and served for real.

Routes, the same in every adapter:

- ``GET /me``: needs a session; answers ``me:<email>:<session id>``;
- ``GET /posts``: needs ``posts:read``; answers ``posts:<email>``;
- ``GET /drafts``: needs ``posts:write`` (which ``user`` lacks); ``drafts:<email>``;
- ``GET /public``: optional; answers ``public:<email|anonymous>``.

Adapters: ``asgi`` (Starlette routes, each behind a
:class:`~keyport.web.asgi.KeyportMiddleware` sharing one asyncio cache,
under uvicorn), ``fastapi`` (one optional middleware and the
``Depends(...)`` dependencies, under uvicorn) and ``wsgi``
(:class:`~keyport.web.wsgi.KeyportWSGIMiddleware` over the sync cache,
under a threading ``wsgiref`` server). Each listens on 127.0.0.1:0, in a
process of its own (``python -m tests.web_apps <adapter> <keyport address>
<cache config JSON>``), so that the test's own threads never hold the GIL
the app needs. Two unguarded routes let the tests look into its cache:
``GET /_cache/stats`` (the :class:`~keyport.cache.CacheStats` as JSON) and
``GET /_cache/lookup`` (whether the bearer token is cached: ``yes``/``no``).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import dataclasses
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Union
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from keyport import AsyncKeyportClient, KeyportClient
from keyport.cache import AsyncSessionCache, CacheConfig, CacheStats, Principal, SessionCache

ADAPTERS = ("asgi", "fastapi", "wsgi")

#: What the apps' caches use: quick to resubscribe after a break.
APP_CACHE = CacheConfig(reconnect_delay=0.02)


def _introspect(cache: Union[SessionCache, AsyncSessionCache], path: str, authorization: str) -> Optional[bytes]:
    """The body of an introspection route, or ``None`` for any other path."""
    if path == "/_cache/stats":
        return json.dumps(dataclasses.asdict(cache.stats())).encode()
    if path == "/_cache/lookup":
        token = authorization.partition(" ")[2]
        return b"yes" if cache.lookup(token) is not None else b"no"
    return None


class RemoteCache:
    """The app's cache, seen through its introspection routes."""

    def __init__(self, url: str) -> None:
        self._url = url

    def _get(self, path: str, headers: Optional[Dict[str, str]] = None) -> bytes:
        import urllib.request

        request = urllib.request.Request(self._url + path, headers=headers or {})
        with urllib.request.urlopen(request, timeout=10) as response:
            body: bytes = response.read()
            return body

    def stats(self) -> CacheStats:
        """The cache's stats."""
        return CacheStats(**json.loads(self._get("/_cache/stats")))

    @property
    def live(self) -> bool:
        """Whether its stream is live."""
        return self.stats().live

    def lookup(self, token: str) -> Optional[bool]:
        """``True`` when ``token`` is cached, else ``None``."""
        return True if self._get("/_cache/lookup", {"authorization": f"Bearer {token}"}) == b"yes" else None


@dataclass
class ServedApp:
    """A conformance app listening for real, and a view of the cache behind it."""

    url: str
    cache: RemoteCache


def _text(principal: Optional[Principal], route: str) -> str:
    if route == "me":
        assert principal is not None
        return f"me:{principal.email}:{principal.session_id}"
    if route == "public":
        return f"public:{principal.email if principal else 'anonymous'}"
    assert principal is not None
    return f"{route}:{principal.email}"


def _asgi_app(cache: AsyncSessionCache) -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from keyport.web.asgi import KeyportMiddleware, Receive, Scope, Send

    def route(name: str) -> Any:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            response = PlainTextResponse(_text(scope["state"]["principal"], name))
            await response(scope, receive, send)

        return app

    def guarded(path: str, name: str, **options: Any) -> Route:
        # A Route whose endpoint is an ASGI app (not a function) runs it as is.
        return Route(path, KeyportMiddleware(route(name), cache, **options))

    return _with_introspection(cache, Starlette(
        routes=[
            guarded("/me", "me"),
            guarded("/posts", "posts", permissions=["posts:read"]),
            guarded("/drafts", "drafts", permissions=["posts:write"]),
            guarded("/public", "public", optional=True),
        ]
    ))


def _with_introspection(cache: AsyncSessionCache, app: Any) -> Any:
    async def introspected(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            body = _introspect(cache, scope["path"], headers.get(b"authorization", b"").decode())
            if body is not None:
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": body})
                return
        await app(scope, receive, send)

    return introspected


def _fastapi_app(cache: AsyncSessionCache) -> Any:
    from fastapi import Depends, FastAPI, Header
    from fastapi.responses import PlainTextResponse

    from keyport.web.asgi import KeyportMiddleware
    from keyport.web.fastapi import optional_session, require_permissions, require_session

    app = FastAPI()
    app.add_middleware(KeyportMiddleware, cache=cache, optional=True)

    @app.get("/_cache/stats")
    async def stats() -> Any:
        return dataclasses.asdict(cache.stats())

    @app.get("/_cache/lookup", response_class=PlainTextResponse)
    async def lookup(authorization: str = Header("")) -> str:
        body = _introspect(cache, "/_cache/lookup", authorization)
        return (body or b"").decode()

    @app.get("/me", response_class=PlainTextResponse)
    async def me(principal: Principal = Depends(require_session)) -> str:
        return _text(principal, "me")

    @app.get("/posts", response_class=PlainTextResponse)
    async def posts(principal: Principal = Depends(require_permissions("posts:read"))) -> str:
        return _text(principal, "posts")

    @app.get("/drafts", response_class=PlainTextResponse)
    async def drafts(principal: Principal = Depends(require_permissions("posts:write"))) -> str:
        return _text(principal, "drafts")

    @app.get("/public", response_class=PlainTextResponse)
    async def public(principal: Optional[Principal] = Depends(optional_session)) -> str:
        return _text(principal, "public")

    return app


def _serve_asgi(address: str, build: Callable[[AsyncSessionCache], Any], config: CacheConfig) -> None:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))

    async def serve() -> None:
        client = AsyncKeyportClient(address, timeout=2)
        cache = AsyncSessionCache(client, config)
        server = uvicorn.Server(uvicorn.Config(build(cache), log_level="warning", lifespan="off"))
        _announce(sock.getsockname()[1])
        await server.serve(sockets=[sock])

    asyncio.run(serve())


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    request_queue_size = 128


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


def _wsgi_app(cache: SessionCache) -> Callable[..., Iterable[bytes]]:
    from keyport.web.wsgi import KeyportWSGIMiddleware

    def route(name: str) -> Callable[..., Iterable[bytes]]:
        def app(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            body = _text(environ["keyport.principal"], name).encode()
            start_response("200 OK", [("content-type", "text/plain"), ("content-length", str(len(body)))])
            return [body]

        return app

    routes = {
        "/me": KeyportWSGIMiddleware(route("me"), cache),
        "/posts": KeyportWSGIMiddleware(route("posts"), cache, permissions=["posts:read"]),
        "/drafts": KeyportWSGIMiddleware(route("drafts"), cache, permissions=["posts:write"]),
        "/public": KeyportWSGIMiddleware(route("public"), cache, optional=True),
    }

    def dispatch(environ: Dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        body = _introspect(cache, environ.get("PATH_INFO", ""), environ.get("HTTP_AUTHORIZATION", ""))
        if body is not None:
            start_response("200 OK", [("content-length", str(len(body)))])
            return [body]
        app = routes.get(environ.get("PATH_INFO", ""))
        if app is None:
            start_response("404 Not Found", [("content-length", "0")])
            return [b""]
        return app(environ, start_response)

    return dispatch


def _serve_wsgi(address: str, config: CacheConfig) -> None:
    client = KeyportClient(address, timeout=2)
    cache = SessionCache(client, config)
    server = make_server("127.0.0.1", 0, _wsgi_app(cache), server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    _announce(server.server_port)
    server.serve_forever()


def _announce(port: int) -> None:
    """Tells the test the app's port, and ends the process when the test closes stdin."""
    print(json.dumps({"port": port}), flush=True)

    def exit_on_eof() -> None:
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=exit_on_eof, daemon=True).start()


@contextlib.contextmanager
def served(adapter: str, address: str, config: CacheConfig = APP_CACHE) -> Iterator[ServedApp]:
    """Serves the conformance app of ``adapter`` against the Keyport at
    ``address``, in a process of its own."""
    if adapter not in ADAPTERS:
        raise ValueError(adapter)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.web_apps", adapter, address, json.dumps(dataclasses.asdict(config))],
        cwd=Path(__file__).resolve().parent.parent,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise AssertionError(f"the {adapter} app exited with {process.wait(10)} before serving")
        url = f"http://127.0.0.1:{json.loads(line)['port']}"
        _wait_listening(url)
        yield ServedApp(url, RemoteCache(url))
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_listening(url: str) -> None:
    cache = RemoteCache(url)
    for _ in range(1000):
        try:
            cache.stats()
            return
        except OSError:
            threading.Event().wait(0.01)
    raise AssertionError(f"{url} never answered")


def main(argv: List[str]) -> None:
    """``python -m tests.web_apps <adapter> <keyport address> <cache config JSON>``."""
    adapter, address, config_json = argv
    config = CacheConfig(**json.loads(config_json))
    if adapter == "asgi":
        _serve_asgi(address, _asgi_app, config)
    elif adapter == "fastapi":
        _serve_asgi(address, _fastapi_app, config)
    else:
        _serve_wsgi(address, config)


if __name__ == "__main__":
    main(sys.argv[1:])
