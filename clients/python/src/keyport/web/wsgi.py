"""``KeyportWSGIMiddleware``: the guard as WSGI middleware (Flask, Django, ...).

Each request is checked through a sync :class:`keyport.cache.SessionCache`;
the principal goes into ``environ["keyport.principal"]`` (Flask:
``request.environ``), refused requests get the guard's JSON, or, with
``optional=True``, reach the app with ``None`` there and the refusal in
``environ["keyport.refusal"]``::

    app.wsgi_app = KeyportWSGIMiddleware(app.wsgi_app, cache)
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from keyport.cache import SessionCache

from .guard import DEFAULT_COOKIE, CookieSettings, Refused, authenticate_request, client_ip_from

__all__ = ["KeyportWSGIMiddleware"]

StartResponse = Callable[..., Any]
WSGIApp = Callable[[Dict[str, Any], StartResponse], Iterable[bytes]]

_REASONS = {401: "Unauthorized", 403: "Forbidden", 500: "Internal Server Error", 503: "Service Unavailable"}


class KeyportWSGIMiddleware:
    """Authenticates every request through Keyport before the app sees it."""

    def __init__(
        self,
        app: WSGIApp,
        cache: SessionCache,
        *,
        optional: bool = False,
        permissions: Sequence[str] = (),
        cookie_settings: CookieSettings = DEFAULT_COOKIE,
        trust_forwarded_for: bool = False,
    ) -> None:
        """Wraps ``app``; the arguments are those of :class:`keyport.web.asgi.KeyportMiddleware`."""
        self.app = app
        self.cache = cache
        self.optional = optional
        self.permissions = tuple(permissions)
        self.cookie_settings = cookie_settings
        self.trust_forwarded_for = trust_forwarded_for

    def __call__(self, environ: Dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        outcome = authenticate_request(
            self.cache,
            authorization=environ.get("HTTP_AUTHORIZATION"),
            cookie=environ.get("HTTP_COOKIE"),
            client_ip=client_ip_from(
                environ.get("REMOTE_ADDR"), environ.get("HTTP_X_FORWARDED_FOR"), self.trust_forwarded_for
            ),
            user_agent=environ.get("HTTP_USER_AGENT"),
            permissions=self.permissions,
            cookie_settings=self.cookie_settings,
        )
        if isinstance(outcome, Refused):
            environ["keyport.principal"], environ["keyport.refusal"] = None, outcome
            if not self.optional:
                return _refusal(outcome, start_response)
        else:
            environ["keyport.principal"], environ["keyport.refusal"] = outcome.principal, None
        cookies = outcome.set_cookies
        if not cookies:
            return self.app(environ, start_response)

        def with_cookies(status: str, headers: List[Tuple[str, str]], exc_info: Optional[Any] = None) -> Any:
            return start_response(status, [*headers, *(("Set-Cookie", cookie) for cookie in cookies)], exc_info)

        return self.app(environ, with_cookies)


def _refusal(refused: Refused, start_response: StartResponse) -> Iterable[bytes]:
    body = refused.body()
    headers = [*refused.headers(), ("content-length", str(len(body)))]
    headers.extend(("set-cookie", cookie) for cookie in refused.set_cookies)
    start_response(f"{refused.status} {_REASONS.get(refused.status, 'Refused')}", headers)
    return [body]
