"""Helpers for passkeys (WebAuthn).

Every passkey ceremony is two calls: a ``Start...`` RPC answers the WebAuthn
options, JSON for the browser's ``navigator.credentials.create`` or
``.get``, and a ``ceremony`` (``kpk_...``); the finishing RPC takes the
ceremony back with the browser's answer (its ``PublicKeyCredential``'s
``toJSON()``, as a string). Each ceremony works once, for 5 minutes.

A passkey sign-in (``SessionService.StartPasskeySignIn``, then
``FinishPasskeySignIn``) has no session yet to bind its ceremony to, so it
is bound to the browser: :func:`passkey_ceremony_cookie`,
:func:`passkey_ceremony_from_cookie` and
:func:`clear_passkey_ceremony_cookie` keep it there, in the cookie the Go
and TypeScript SDKs and the Rust middleware use
(:data:`PASSKEY_CEREMONY_COOKIE_NAME`). Registration (``PasskeyService``)
and step-up (``TwoFactorService.StartPasskeyStepUp``) ceremonies are bound
to the calling session, so the page may carry those in a form field.

They do not call Keyport: the RPCs stay the generated ones on
:class:`keyport.KeyportClient` (``passkeys``, ``sessions`` and
``two_factor``).
"""

from __future__ import annotations

import datetime
from typing import Mapping, Optional, Union

from keyport.mail import SetCookie, _cookie_value, _step_cookie
from keyport.v1 import session_service_pb2

__all__ = [
    "PASSKEY_CEREMONY_COOKIE_NAME",
    "clear_passkey_ceremony_cookie",
    "passkey_ceremony_cookie",
    "passkey_ceremony_from_cookie",
]

#: Name of the cookie that :func:`passkey_ceremony_cookie` writes and
#: :func:`passkey_ceremony_from_cookie` reads; the Go and TypeScript SDKs and
#: the Rust middleware use the same one. The ``__Host-`` prefix makes
#: browsers insist on ``Secure``, ``Path=/`` and no ``Domain``.
PASSKEY_CEREMONY_COOKIE_NAME = "__Host-keyport_passkey"

#: The longest the ceremony cookie lasts: a ceremony works for 5 minutes,
#: and the Rust middleware's cookie lasts that long.
_MAX_CEREMONY = datetime.timedelta(minutes=5)


def passkey_ceremony_cookie(start: session_service_pb2.StartPasskeySignInResponse) -> SetCookie:
    """Returns the cookie that keeps a passkey sign-in's ceremony in the browser.

    ``FinishPasskeySignIn`` refuses an answer without the ceremony it was
    asked with: keep the ceremony in this cookie of the browser that
    started, never in a page. It lasts until ``start.expires_at`` (at most
    5 minutes), and :func:`passkey_ceremony_from_cookie` reads it back::

        start = keyport.sessions.StartPasskeySignIn(StartPasskeySignInRequest())
        response.set_cookie(**passkey_ceremony_cookie(start).set_cookie_kwargs())
        ...  # answer start.options (JSON) to the page

    Args:
        start: The response of ``StartPasskeySignIn``.

    Returns:
        The :data:`PASSKEY_CEREMONY_COOKIE_NAME` cookie with the ceremony:
        ``HttpOnly``, ``Secure``, ``SameSite=Lax``, ``Path=/``, and a
        ``Max-Age`` of at least one second.

    Raises:
        ValueError: If the ceremony is empty or has characters a cookie
            cannot carry (no ceremony from Keyport has).
    """
    expires_at = start.expires_at if start.HasField("expires_at") else None
    return _step_cookie(PASSKEY_CEREMONY_COOKIE_NAME, start.ceremony, expires_at, _MAX_CEREMONY, "passkey ceremony")


def clear_passkey_ceremony_cookie() -> SetCookie:
    """Returns the cookie that deletes the one of :func:`passkey_ceremony_cookie`.

    Send it with the answer of ``FinishPasskeySignIn``, whatever it was: the
    call uses the ceremony up, right or wrong.
    """
    return SetCookie(PASSKEY_CEREMONY_COOKIE_NAME, "", 0)


def passkey_ceremony_from_cookie(cookies: Union[str, Mapping[str, str], None]) -> Optional[str]:
    """Returns the ceremony that :func:`passkey_ceremony_cookie` stored in a browser.

    Pass it to ``FinishPasskeySignIn`` with the browser's answer.

    Args:
        cookies: The request's cookies: a web framework's mapping
            (``request.cookies``), or the raw ``Cookie`` header (WSGI's
            ``environ["HTTP_COOKIE"]``), or ``None`` if there is none.

    Returns:
        The ceremony (``"kpk_..."``), or ``None`` when the request has no
        such cookie, or an empty one: the sign-in started in another
        browser, or more than 5 minutes ago. Start again;
        ``FinishPasskeySignIn`` would raise ``PasskeyInvalid``.
    """
    return _cookie_value(cookies, PASSKEY_CEREMONY_COOKIE_NAME)
