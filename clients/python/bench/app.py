"""The benchmark's hello-world: a Starlette route, bare or behind the guard.

``python -m bench.app <bare|cached|uncached> <keyport address> <port>`` serves
it with uvicorn on 127.0.0.1:<port> (one worker). ``cached`` is
:class:`keyport.web.asgi.KeyportMiddleware` with the default cache;
``uncached`` the same with ``max_ttl=0``, so every request calls Keyport.
"""

from __future__ import annotations

import sys
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from keyport.cache import CacheConfig
from keyport.web.asgi import KeyportMiddleware


async def hello(request: Request) -> PlainTextResponse:
    """The route: a few bytes, so that the guard's cost shows."""
    return PlainTextResponse("hello")


def build(mode: str, address: str) -> Any:
    """The app of ``mode``."""
    app = Starlette(routes=[Route("/", hello)])
    if mode == "bare":
        return app
    config = CacheConfig() if mode == "cached" else CacheConfig(max_ttl=0, refusal_ttl=0)
    return KeyportMiddleware(app, address=address, cache_config=config)


def main(argv: list[str]) -> None:
    import uvicorn

    mode, address, port = argv
    uvicorn.run(build(mode, address), host="127.0.0.1", port=int(port), log_level="warning", access_log=False)


if __name__ == "__main__":
    main(sys.argv[1:])
