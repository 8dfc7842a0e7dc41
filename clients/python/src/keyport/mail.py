"""Helpers for the flows through the user's mailbox (``docs/mail.md``).

Keyport mails links (``mail.public_base_url`` + a page's path +
``?token=kpm_...``) and, for email sign-in and a few other flows, a
six-digit code. The web app's pages take the token or the code and call
Keyport with it. These helpers cover the parts every such page repeats:

- :func:`token_from_link`: the token of a mailed link, from the URL the
  page was opened with (``/reset-password``, ``/verify-email``,
  ``/change-email``, ``/sign-in/email``);
- :func:`email_sign_in_cookie`, :func:`email_sign_in_binding` and
  :func:`clear_email_sign_in_cookie`: keep the ``binding`` of
  ``StartEmailSignIn`` in the browser that asked, which
  ``FinishEmailSignIn`` needs, in the cookie the Go SDK and the Rust
  middleware use (:data:`EMAIL_SIGN_IN_COOKIE_NAME`).

They do not call Keyport: the RPCs stay the generated ones on
:class:`keyport.KeyportClient`.
"""

from __future__ import annotations

import datetime
import math
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Union

from google.protobuf import timestamp_pb2

from keyport.v1 import session_service_pb2

__all__ = [
    "EMAIL_SIGN_IN_COOKIE_NAME",
    "SetCookie",
    "clear_email_sign_in_cookie",
    "email_sign_in_binding",
    "email_sign_in_cookie",
    "token_from_link",
]

#: Name of the cookie that :func:`email_sign_in_cookie` writes and
#: :func:`email_sign_in_binding` reads; the Go SDK and the Rust middleware
#: use the same one. The ``__Host-`` prefix makes browsers insist on
#: ``Secure``, ``Path=/`` and no ``Domain``.
EMAIL_SIGN_IN_COOKIE_NAME = "__Host-keyport_email"

#: The longest an email sign-in's link and code work (``mail.sign_in_ttl_secs``
#: is capped at 10 minutes).
_MAX_EMAIL_SIGN_IN = datetime.timedelta(minutes=10)

#: What RFC 6265 allows in a cookie value without quotes (``cookie-octet``).
_COOKIE_OCTETS = frozenset(chr(c) for c in range(0x21, 0x7F)) - set('",;\\')


def token_from_link(link: str) -> Optional[str]:
    """Returns the token of a link Keyport mailed.

    That is the value of the link's ``token`` query parameter, such as
    ``"kpm_..."``: what ``VerifyEmail``, ``ResetPassword``,
    ``ConfirmEmailChange`` and ``FinishEmailSignIn`` take. A page's handler
    passes it the URL it was opened with::

        token = token_from_link(request.url)  # /reset-password?token=kpm_...
        if token is None:
            ...  # "this link is incomplete: request a new one"

    Args:
        link: The link, absolute (``"https://app.example.com/reset-password?token=kpm_..."``)
            or just the path and query of a request
            (``"/reset-password?token=kpm_..."``). Spaces around it, from a
            link pasted into a form, are ignored. A bare query string needs
            its ``?``.

    Returns:
        The token, percent-decoded and without surrounding spaces; ``None``
        when ``link`` does not parse or has no ``token`` parameter, an empty
        one or more than one. It does not check the token itself: Keyport
        does, and answers ``EMAIL_TOKEN_INVALID`` for one that is malformed,
        unknown, used, replaced or expired.
    """
    try:
        query = urllib.parse.urlsplit(link.strip()).query
        tokens = urllib.parse.parse_qs(query, keep_blank_values=True).get("token", [])
    except ValueError:  # e.g. an unclosed "[" in the host
        return None
    if len(tokens) != 1 or not tokens[0].strip():
        return None
    return tokens[0].strip()


@dataclass(frozen=True)
class SetCookie:
    """A cookie to send to the browser, with the attributes it must have.

    Send it with :meth:`header` (a ``Set-Cookie`` header value) or, in
    Flask/Werkzeug, Django, Starlette or FastAPI, with
    ``response.set_cookie(**cookie.set_cookie_kwargs())``.

    Attributes:
        name: The cookie's name.
        value: Its value; empty for a cookie that deletes the browser's.
        max_age: Seconds until the browser drops it; ``0`` deletes it now.
        path: Always ``"/"``: the ``__Host-`` prefix needs it.
        secure: Always ``True``: sent over HTTPS only (browsers make an
            exception for ``http://localhost``).
        http_only: Always ``True``: hidden from JavaScript.
        same_site: Always ``"Lax"``: ``Strict`` would not be sent when the
            user opens a mailed link from their mail client.
    """

    name: str
    value: str
    max_age: int
    path: str = field(default="/", init=False)
    secure: bool = field(default=True, init=False)
    http_only: bool = field(default=True, init=False)
    same_site: str = field(default="Lax", init=False)

    def header(self) -> str:
        """The ``Set-Cookie`` header value, as the Rust middleware writes it.

        For example ``__Host-keyport_email=av_...; Path=/; HttpOnly; Secure;
        SameSite=Lax; Max-Age=600``.
        """
        attributes = [f"{self.name}={self.value}", f"Path={self.path}"]
        if self.http_only:
            attributes.append("HttpOnly")
        if self.secure:
            attributes.append("Secure")
        attributes += [f"SameSite={self.same_site}", f"Max-Age={self.max_age}"]
        return "; ".join(attributes)

    def set_cookie_kwargs(self) -> Dict[str, Any]:
        """Keyword arguments for a web framework's ``response.set_cookie``.

        The names are those of Flask/Werkzeug, Django and Starlette/FastAPI:
        ``key``, ``value``, ``max_age``, ``path``, ``secure``, ``httponly``
        and ``samesite``.
        """
        return {
            "key": self.name,
            "value": self.value,
            "max_age": self.max_age,
            "path": self.path,
            "secure": self.secure,
            "httponly": self.http_only,
            "samesite": self.same_site,
        }


def email_sign_in_cookie(start: session_service_pb2.StartEmailSignInResponse) -> SetCookie:
    """Returns the cookie that keeps an email sign-in's binding in the browser.

    ``FinishEmailSignIn`` refuses the mailed link and the code without the
    ``binding`` that ``StartEmailSignIn`` returned, so a forwarded or phished
    link signs in no other browser. Send this cookie with the answer to the
    browser that asked; it lasts until ``start.expires_at`` (at most 10
    minutes), and :func:`email_sign_in_binding` reads it back::

        start = keyport.sessions.StartEmailSignIn(StartEmailSignInRequest(email=email))
        response.headers.add("Set-Cookie", email_sign_in_cookie(start).header())

    Args:
        start: The response of ``StartEmailSignIn``.

    Returns:
        The :data:`EMAIL_SIGN_IN_COOKIE_NAME` cookie with the binding:
        ``HttpOnly``, ``Secure``, ``SameSite=Lax``, ``Path=/``, and a
        ``Max-Age`` of at least one second.

    Raises:
        ValueError: If the binding is empty or has characters a cookie
            cannot carry (no binding from Keyport has).
    """
    expires_at = start.expires_at if start.HasField("expires_at") else None
    return _step_cookie(EMAIL_SIGN_IN_COOKIE_NAME, start.binding, expires_at, _MAX_EMAIL_SIGN_IN, "binding")


def clear_email_sign_in_cookie() -> SetCookie:
    """Returns the cookie that deletes the one of :func:`email_sign_in_cookie`.

    Send it once ``FinishEmailSignIn`` succeeded: the binding is spent.
    """
    return SetCookie(EMAIL_SIGN_IN_COOKIE_NAME, "", 0)


def email_sign_in_binding(cookies: Union[str, Mapping[str, str], None]) -> Optional[str]:
    """Returns the binding that :func:`email_sign_in_cookie` stored in a browser.

    Pass it to ``FinishEmailSignIn`` with the code the user typed or the
    token of the link they opened (:func:`token_from_link`).

    Args:
        cookies: The request's cookies: a web framework's mapping
            (``request.cookies``), or the raw ``Cookie`` header (WSGI's
            ``environ["HTTP_COOKIE"]``), or ``None`` if there is none.

    Returns:
        The binding, or ``None`` when the request has no such cookie, or an
        empty one: the link was opened, or the code typed, in another
        browser than the one that started the sign-in (or the cookie
        expired). Tell the user to finish where they started;
        ``FinishEmailSignIn`` would answer ``EMAIL_TOKEN_INVALID``.
    """
    return _cookie_value(cookies, EMAIL_SIGN_IN_COOKIE_NAME)


def _step_cookie(
    name: str,
    value: str,
    expires_at: Optional[timestamp_pb2.Timestamp],
    longest: datetime.timedelta,
    what: str,
) -> SetCookie:
    """The cookie ``name`` that keeps a step of a sign-in in this browser.

    It lasts until ``expires_at`` (rounded up), at most ``longest`` (and
    that long without ``expires_at``), at least one second.

    Raises:
        ValueError: If ``value`` is empty or has characters a cookie cannot
            carry; the message names ``what``.
    """
    if not value or not set(value) <= _COOKIE_OCTETS:
        raise ValueError(f"the {what} must be a non-empty cookie value")
    lifetime = longest
    if expires_at is not None:
        now = datetime.datetime.now(datetime.timezone.utc)
        lifetime = min(expires_at.ToDatetime(datetime.timezone.utc) - now, longest)
    return SetCookie(name, value, max(math.ceil(lifetime.total_seconds()), 1))


def _cookie_value(cookies: Union[str, Mapping[str, str], None], name: str) -> Optional[str]:
    """The non-empty value of cookie ``name`` in a mapping or a ``Cookie`` header, else ``None``."""
    if cookies is None:
        return None
    if isinstance(cookies, str):
        for pair in cookies.split(";"):
            key, separator, value = pair.strip().partition("=")
            if separator and key == name and value.strip():
                return value.strip()
        return None
    return cookies.get(name) or None
