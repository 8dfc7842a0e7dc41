"""The request guard: who is calling, or why the request is refused.

Framework-free: :func:`authenticate_request` (sync cache) and
:func:`authenticate_request_async` (asyncio cache) take what a request
carries (its ``Authorization`` and ``Cookie`` headers, the client's address
and user agent) and answer :class:`Authenticated` or :class:`Refused`. The
adapters (:mod:`keyport.web.asgi`, :mod:`keyport.web.fastapi`,
:mod:`keyport.web.wsgi`) are thin layers over them.

As in the Rust guard: the token is ``Authorization: Bearer <token>``, else
the session cookie (``__Host-keyport_session``); an API key (``kpa_...``)
is never a session (check keys with ``Authorize``). Keyport unreachable
fails closed (503, ``AUTH_UNAVAILABLE``), never letting the request
through. A cookie whose session Keyport refused is cleared, and one whose
expiry Keyport slid forward is re-issued.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass
from typing import NamedTuple, Optional, Sequence, Tuple, Union

import grpc

from keyport.api_keys import is_api_key
from keyport.cache import AsyncSessionCache, Decision, Principal, SessionCache
from keyport.cache.state import session_id_of
from keyport.errors import KeyportError, Reason

__all__ = [
    "MAX_TOKEN_LENGTH",
    "Authenticated",
    "CookieSettings",
    "Credentials",
    "Refused",
    "Outcome",
    "authenticate_request",
    "authenticate_cached",
    "authenticate_request_async",
    "client_ip_from",
    "read_credentials",
]

#: Longest token the guard sends to Keyport; anything longer is refused as
#: malformed without a call (Keyport's are under 100 characters).
MAX_TOKEN_LENGTH = 512


@dataclass(frozen=True)
class CookieSettings:
    """How the session cookie is read and written (the Rust defaults)."""

    #: The ``__Host-`` prefix makes browsers insist on ``Secure``, ``Path=/``
    #: and no ``Domain``.
    name: str = "__Host-keyport_session"
    #: Send only over HTTPS (and to ``localhost``).
    secure: bool = True
    #: Hide from JavaScript.
    http_only: bool = True
    #: ``Lax``, ``Strict`` or ``None``.
    same_site: str = "Lax"
    #: The cookie's path (always ``/`` for a ``__Host-`` name).
    path: str = "/"

    def read(self, cookie_header: str) -> Optional[str]:
        """The session token in a ``Cookie`` request header, if any."""
        for pair in cookie_header.split(";"):
            name, sep, value = pair.strip().partition("=")
            if sep and name == self.name:
                value = value.strip().strip('"')
                return value or None
        return None

    def issue(self, token: str, expires_at: datetime.datetime) -> str:
        """The ``Set-Cookie`` value carrying ``token`` until ``expires_at`` (aware, UTC)."""
        now = datetime.datetime.now(datetime.timezone.utc)
        max_age = max(0, int((expires_at - now).total_seconds()))
        return f"{self.name}={token}; {self._attributes()}; Max-Age={max_age}"

    def clear(self) -> str:
        """The ``Set-Cookie`` value deleting the cookie."""
        return f"{self.name}=; {self._attributes()}; Max-Age=0"

    def _attributes(self) -> str:
        # The `__Host-` prefix is void without these; enforce them.
        host_only = self.name.startswith("__Host-")
        parts = [f"Path={'/' if host_only else self.path}"]
        if self.http_only:
            parts.append("HttpOnly")
        if self.secure or host_only or self.same_site == "None":
            parts.append("Secure")
        parts.append(f"SameSite={self.same_site}")
        return "; ".join(parts)


#: The default cookie settings.
DEFAULT_COOKIE = CookieSettings()


class Credentials(NamedTuple):
    """The token a request presents and where it came from."""

    token: str
    #: ``"bearer"`` or ``"cookie"``.
    source: str


# Outcomes are NamedTuples rather than frozen dataclasses: one is made per
# request, and a tuple is several times cheaper to build.
class Authenticated(NamedTuple):
    """A request with a valid session (and every required permission)."""

    principal: Principal
    #: ``Set-Cookie`` values to add to the response: the cookie re-issued
    #: when Keyport slid the session's expiry forward.
    set_cookies: Tuple[str, ...] = ()
    #: Keyport's decision of the required permissions, if any were asked.
    decision: Optional[Decision] = None


class Refused(NamedTuple):
    """A request the guard refuses, with the stable reason to tell the caller."""

    #: HTTP status: 401 (no valid session), 403 (missing permission), 500
    #: (a permission outside Keyport's catalogue), 503 (Keyport unavailable).
    status: int
    #: ``UNAUTHENTICATED``, ``SESSION_EXPIRED``, ``API_KEY_NOT_ACCEPTED``,
    #: ``FORBIDDEN``, ``PERMISSION_UNKNOWN`` or ``AUTH_UNAVAILABLE``.
    reason: str
    #: A short message for people (not for branching).
    message: str
    #: ``Set-Cookie`` values to send anyway (clearing a dead cookie).
    set_cookies: Tuple[str, ...] = ()
    #: Whether the request presented any credentials at all.
    had_credentials: bool = True

    def body(self) -> bytes:
        """The JSON body ``{"error": reason, "message": message}``."""
        return json.dumps({"error": self.reason, "message": self.message}).encode()

    def headers(self) -> Tuple[Tuple[str, str], ...]:
        """Response headers (without ``Set-Cookie``): JSON, not cached, and
        ``WWW-Authenticate`` on 401 or ``Retry-After`` on 503."""
        headers: Tuple[Tuple[str, str], ...] = (("content-type", "application/json"), ("cache-control", "no-store"))
        if self.status == 401:
            headers += (("www-authenticate", f'Bearer error="invalid_token", error_description="{self.reason}"'),)
        elif self.status == 503:
            headers += (("retry-after", "5"),)
        return headers


#: What the guard answers.
Outcome = Union[Authenticated, Refused]


def read_credentials(
    authorization: Optional[str], cookie: Optional[str], cookie_settings: CookieSettings = DEFAULT_COOKIE
) -> Optional[Credentials]:
    """The token of a request: ``Authorization: Bearer``, else the session cookie.

    Any other scheme (``Basic`` from a site behind basic auth) is not
    Keyport's and leaves the cookie in charge. A cookie never carries an API
    key: one there would be an ambient credential, so it is ignored.
    """
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer":
            return Credentials(token.strip(), "bearer")
    if cookie:
        token_in_cookie = cookie_settings.read(cookie)
        if token_in_cookie and not is_api_key(token_in_cookie):
            return Credentials(token_in_cookie, "cookie")
    return None


def client_ip_from(peer_ip: Optional[str], forwarded_for: Optional[str], trust_forwarded_for: bool) -> Optional[str]:
    """The end user's address: the right-most ``X-Forwarded-For`` entry (the
    one our own proxy appended) when the app sits behind one, else the peer."""
    if trust_forwarded_for and forwarded_for:
        last = forwarded_for.rsplit(",", 1)[-1].strip()
        if last:
            return last
    return peer_ip


def _malformed(token: str) -> bool:
    """Not a session token's shape: refused without asking Keyport."""
    # isprintable() refuses every ASCII whitespace but the space.
    return (
        len(token) > MAX_TOKEN_LENGTH
        or not token.isascii()
        or not token.isprintable()
        or " " in token
        or session_id_of(token) is None
    )


class _Check:
    """One request's check: what to do before and after asking the cache."""

    def __init__(self, credentials: Optional[Credentials], cookie_settings: CookieSettings) -> None:
        self.credentials = credentials
        self.cookie_settings = cookie_settings

    def refuse_early(self) -> Optional[Refused]:
        """A refusal that needs no call: no token, an API key, a malformed token."""
        credentials = self.credentials
        if credentials is None or not credentials.token:
            return Refused(401, "UNAUTHENTICATED", "sign in first", had_credentials=credentials is not None)
        if is_api_key(credentials.token):
            return Refused(401, "API_KEY_NOT_ACCEPTED", "an API key is not a session")
        if _malformed(credentials.token):
            return self._unauthenticated("UNAUTHENTICATED", "malformed session token")
        return None

    def _unauthenticated(self, reason: str, message: str) -> Refused:
        # A dead cookie is cleared, so the browser stops sending it.
        clear = (self.cookie_settings.clear(),) if self.credentials and self.credentials.source == "cookie" else ()
        return Refused(401, reason, message, clear)

    def refused(self, error: grpc.RpcError) -> Refused:
        """The refusal of a check that raised ``error``."""
        if not isinstance(error, KeyportError):
            # Keyport never answered: fail closed, and keep the cookie.
            return Refused(503, "AUTH_UNAVAILABLE", "Keyport unavailable")
        if error.reason == Reason.PERMISSION_UNKNOWN:
            return Refused(500, "PERMISSION_UNKNOWN", "the route names a permission Keyport does not know")
        if error.reason in (Reason.UNAVAILABLE, Reason.RESOURCE_EXHAUSTED, Reason.INTERNAL):
            return Refused(503, "AUTH_UNAVAILABLE", "Keyport unavailable")
        if error.code() == grpc.StatusCode.UNAUTHENTICATED:
            return self._unauthenticated(error.reason, "the session is not valid")
        # Anything else (a malformed request, say) is no valid session either.
        return self._unauthenticated(error.reason or "UNAUTHENTICATED", "the session could not be checked")

    def allowed(self, principal: Principal, refreshed: bool, decision: Optional[Decision]) -> Outcome:
        """The outcome of a valid session (and decision, if permissions were asked)."""
        assert self.credentials is not None
        cookies: Tuple[str, ...] = ()
        if refreshed and self.credentials.source == "cookie":
            expires_at = principal.session.expires_at.ToDatetime(tzinfo=datetime.timezone.utc)
            cookies = (self.cookie_settings.issue(self.credentials.token, expires_at),)
        if decision is not None and not decision.all:
            return Refused(403, "FORBIDDEN", "missing permission", cookies)
        return Authenticated(principal, cookies, decision)


def authenticate_request(
    cache: SessionCache,
    *,
    authorization: Optional[str] = None,
    cookie: Optional[str] = None,
    client_ip: Optional[str] = None,
    user_agent: Optional[str] = None,
    permissions: Sequence[str] = (),
    cookie_settings: CookieSettings = DEFAULT_COOKIE,
) -> Outcome:
    """Checks a request through the sync ``cache``.

    Args:
        cache: The :class:`keyport.cache.SessionCache` to check with.
        authorization: The ``Authorization`` header, if any.
        cookie: The ``Cookie`` header, if any.
        client_ip: The end user's address, forwarded to Keyport
            (:func:`client_ip_from`).
        user_agent: The ``User-Agent`` header, forwarded to Keyport.
        permissions: Permissions the request also needs (``Authorize``);
            a session lacking one is refused with 403.
        cookie_settings: The session cookie's name and attributes.

    Returns:
        :class:`Authenticated` or :class:`Refused`.
    """
    check = _Check(read_credentials(authorization, cookie, cookie_settings), cookie_settings)
    early = check.refuse_early()
    if early is not None:
        return early
    assert check.credentials is not None
    token = check.credentials.token
    try:
        if permissions:
            decision = cache.authorize(token, permissions, client_ip=client_ip, user_agent=user_agent)
            return check.allowed(decision.principal, decision.refreshed, decision)
        session = cache.get_session(token, client_ip=client_ip, user_agent=user_agent)
    except grpc.RpcError as error:
        return check.refused(error)
    return check.allowed(session.principal, session.refreshed, None)


def authenticate_cached(
    cache: Union[SessionCache, AsyncSessionCache],
    *,
    authorization: Optional[str] = None,
    cookie: Optional[str] = None,
    permissions: Sequence[str] = (),
    cookie_settings: CookieSettings = DEFAULT_COOKIE,
) -> Optional[Outcome]:
    """The outcome of a request when it needs no call to Keyport: a cache
    hit, or a refusal of a missing or malformed token; ``None`` otherwise.

    What the asyncio adapters try first, so that a hit awaits nothing; the
    full check (:func:`authenticate_request_async`) gives the same answer.
    """
    check = _Check(read_credentials(authorization, cookie, cookie_settings), cookie_settings)
    early = check.refuse_early()
    if early is not None:
        return early
    assert check.credentials is not None
    token = check.credentials.token
    if permissions:
        decision = cache.state.decide_cached(token, permissions)
        return None if decision is None else check.allowed(decision.principal, False, decision)
    principal = cache.state.lookup(token)
    return None if principal is None else Authenticated(principal)


async def authenticate_request_async(
    cache: AsyncSessionCache,
    *,
    authorization: Optional[str] = None,
    cookie: Optional[str] = None,
    client_ip: Optional[str] = None,
    user_agent: Optional[str] = None,
    permissions: Sequence[str] = (),
    cookie_settings: CookieSettings = DEFAULT_COOKIE,
) -> Outcome:
    """:func:`authenticate_request` through the asyncio ``cache``."""
    check = _Check(read_credentials(authorization, cookie, cookie_settings), cookie_settings)
    early = check.refuse_early()
    if early is not None:
        return early
    assert check.credentials is not None
    token = check.credentials.token
    try:
        if permissions:
            decision = await cache.authorize(token, permissions, client_ip=client_ip, user_agent=user_agent)
            return check.allowed(decision.principal, decision.refreshed, decision)
        session = await cache.get_session(token, client_ip=client_ip, user_agent=user_agent)
    except grpc.RpcError as error:
        return check.refused(error)
    return check.allowed(session.principal, session.refreshed, None)
