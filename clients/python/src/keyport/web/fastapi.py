"""FastAPI dependencies over :class:`keyport.web.asgi.KeyportMiddleware`.

Add the middleware with ``optional=True`` and let each route say what it
needs::

    app = FastAPI()
    app.add_middleware(KeyportMiddleware, address="127.0.0.1:50051", optional=True)

    @app.get("/me")
    async def me(principal: Principal = Depends(require_session)) -> dict:
        return {"email": principal.email}

    @app.get("/posts")
    async def posts(principal: Principal = Depends(require_permissions("posts:read"))) -> list:
        ...

A refused request raises ``HTTPException`` with the guard's status and
``detail={"error": reason, "message": ...}``. Needs the ``fastapi`` extra.
"""

from __future__ import annotations

from typing import Awaitable, Callable, Optional

from fastapi import HTTPException, Request

from keyport.cache import Principal

from .asgi import SCOPE_KEY, KeyportMiddleware
from .guard import Refused

__all__ = ["optional_session", "require_permissions", "require_session"]


def _refuse(refused: Refused) -> HTTPException:
    headers = dict(refused.headers())
    headers.pop("content-type", None)
    return HTTPException(refused.status, detail={"error": refused.reason, "message": refused.message}, headers=headers)


def _middleware(request: Request) -> KeyportMiddleware:
    middleware = request.scope.get(SCOPE_KEY)
    if not isinstance(middleware, KeyportMiddleware):
        # A route outside the middleware: a wiring bug, not the caller's fault.
        raise RuntimeError("keyport.web.fastapi dependencies need KeyportMiddleware in front of the app")
    return middleware


async def optional_session(request: Request) -> Optional[Principal]:
    """The request's principal, or ``None`` when it has no valid session."""
    _middleware(request)
    principal = request.scope.get("state", {}).get("principal")
    return principal if isinstance(principal, Principal) else None


async def require_session(request: Request) -> Principal:
    """The request's principal; raises ``HTTPException`` (401, or 503 when
    Keyport is unavailable) when it has no valid session."""
    _middleware(request)
    state = request.scope.get("state", {})
    principal = state.get("principal")
    if isinstance(principal, Principal):
        return principal
    refusal = state.get("keyport_refusal")
    raise _refuse(refusal if isinstance(refusal, Refused) else Refused(401, "UNAUTHENTICATED", "sign in first"))


def require_permissions(*permissions: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency needing a session with every one of ``permissions``
    (``resource:action``, decided by Keyport's ``Authorize`` and cached with
    the session); 403 ``FORBIDDEN`` without one."""
    if not permissions:
        raise ValueError("require_permissions needs at least one permission")

    async def dependency(request: Request) -> Principal:
        outcome = await _middleware(request).check(request.scope, permissions)
        if isinstance(outcome, Refused):
            raise _refuse(outcome)
        return outcome.principal

    dependency.__name__ = f"require_permissions({', '.join(permissions)})"
    return dependency


