"""Helpers for second factors (``docs/second-factors.md``).

A user with an authenticator app or a passkey gets no session from a first
factor alone: ``SignIn``, ``FinishEmailSignIn`` and ``FinishOAuth`` answer a
``SignInChallenge``, and ``CompleteSignIn`` with the challenge and a TOTP
code, a backup code or a passkey's answer issues the (``AAL2``) session.
:func:`sign_in_challenge` tells the two answers apart;
:func:`challenge_cookie`, :func:`challenge_from_cookie`,
:func:`challenge_passkey_options_from_cookie` and
:func:`clear_challenge_cookie` keep the challenge (and its passkey request)
in the browser that signed in, between the sign-in page and the code page,
in the cookie the Go and TypeScript SDKs and the Rust middleware use
(:data:`CHALLENGE_COOKIE_NAME`).

They do not call Keyport: the RPCs stay the generated ones on
:class:`keyport.KeyportClient` (``sessions.CompleteSignIn``, and
``two_factor`` for enrolment and ``StepUp``).
"""

from __future__ import annotations

import base64
import binascii
import datetime
from typing import Mapping, Optional, Union

from keyport.mail import SetCookie, _cookie_value, _step_cookie
from keyport.v1 import oauth_service_pb2, session_pb2, session_service_pb2

__all__ = [
    "CHALLENGE_COOKIE_NAME",
    "challenge_cookie",
    "challenge_from_cookie",
    "challenge_passkey_options_from_cookie",
    "clear_challenge_cookie",
    "sign_in_challenge",
]

#: Name of the cookie that :func:`challenge_cookie` writes and
#: :func:`challenge_from_cookie` reads; the Go and TypeScript SDKs and the
#: Rust middleware use the same one. The ``__Host-`` prefix makes browsers
#: insist on ``Secure``, ``Path=/`` and no ``Domain``.
CHALLENGE_COOKIE_NAME = "__Host-keyport_challenge"

#: The longest the challenge cookie lasts, as in the Rust middleware (a
#: challenge works for 5 minutes).
_MAX_CHALLENGE = datetime.timedelta(minutes=10)


def sign_in_challenge(
    response: Union[
        session_service_pb2.SignInResponse,
        session_service_pb2.FinishEmailSignInResponse,
        oauth_service_pb2.FinishOAuthResponse,
    ],
) -> Optional[session_pb2.SignInChallenge]:
    """Returns the second-factor challenge of a sign-in's answer, if it is one.

    A challenge means the user has a second factor: the sign-in finishes
    with ``CompleteSignIn``::

        response = keyport.sessions.SignIn(SignInRequest(email=email, password=password))
        challenge = sign_in_challenge(response)
        if challenge is not None:
            # Keep the challenge in this browser (challenge_cookie), and ask for the code.
            grant = keyport.sessions.CompleteSignIn(
                CompleteSignInRequest(challenge=challenge.challenge, totp_code=code)
            ).session

    Args:
        response: The response of ``SignIn``, ``FinishEmailSignIn`` or
            ``FinishOAuth``.

    Returns:
        The challenge (``challenge`` is ``"kpc_..."``, ``factors`` the
        factors the user can answer with, ``expires_at`` when it stops
        working, and ``passkey_options`` the WebAuthn request options for
        ``navigator.credentials.get`` when ``factors`` has
        ``SECOND_FACTOR_PASSKEY``, else ``""``), or ``None`` when the response is not a challenge: it holds
        a session (or, for ``FinishOAuth``, a linked account).
    """
    return response.challenge if response.HasField("challenge") else None


def challenge_cookie(challenge: session_pb2.SignInChallenge) -> SetCookie:
    """Returns the cookie that keeps a sign-in's second-factor challenge in the browser.

    The challenge stands for the passed first factor (the password, the
    mailed link or code, the provider's answer): keep it in this cookie of
    the browser that signed in, never in a page or a URL. It lasts until
    ``challenge.expires_at`` (at most 10 minutes), and the code page reads
    it back with :func:`challenge_from_cookie`. When the user has a
    passkey, the cookie also carries the challenge's ``passkey_options``
    for the code page (:func:`challenge_passkey_options_from_cookie`), after
    a ``.`` in base64url, as the Rust middleware writes it::

        challenge = sign_in_challenge(response)
        if challenge is not None:
            response.headers.add("Set-Cookie", challenge_cookie(challenge).header())
            ...  # redirect (303) to the code page

    Args:
        challenge: The challenge of :func:`sign_in_challenge`.

    Returns:
        The :data:`CHALLENGE_COOKIE_NAME` cookie with the challenge:
        ``HttpOnly``, ``Secure``, ``SameSite=Lax``, ``Path=/``, and a
        ``Max-Age`` of at least one second.

    Raises:
        ValueError: If the challenge is empty or has characters a cookie
            cannot carry, or a ``.`` (no challenge from Keyport has).
    """
    # The value is ``challenge[.options]``, so a challenge must not be empty or hold a ".".
    if not challenge.challenge or "." in challenge.challenge:
        raise ValueError('the challenge must be a non-empty cookie value without "."')
    value = challenge.challenge
    if challenge.passkey_options:
        value += "." + base64.urlsafe_b64encode(challenge.passkey_options.encode()).decode().rstrip("=")
    expires_at = challenge.expires_at if challenge.HasField("expires_at") else None
    return _step_cookie(CHALLENGE_COOKIE_NAME, value, expires_at, _MAX_CHALLENGE, "challenge")


def clear_challenge_cookie() -> SetCookie:
    """Returns the cookie that deletes the one of :func:`challenge_cookie`.

    Send it once ``CompleteSignIn`` succeeded, or raised
    ``SignInChallengeInvalid``: the challenge is spent.
    """
    return SetCookie(CHALLENGE_COOKIE_NAME, "", 0)


def challenge_from_cookie(cookies: Union[str, Mapping[str, str], None]) -> Optional[str]:
    """Returns the challenge that :func:`challenge_cookie` stored in a browser.

    The code page passes it to ``CompleteSignIn`` with the code the user
    typed::

        challenge = challenge_from_cookie(request.cookies)
        if challenge is None:
            ...  # redirect to the sign-in page
        grant = keyport.sessions.CompleteSignIn(
            CompleteSignInRequest(challenge=challenge, totp_code=code)
        ).session

    Args:
        cookies: The request's cookies: a web framework's mapping
            (``request.cookies``), or the raw ``Cookie`` header (WSGI's
            ``environ["HTTP_COOKIE"]``), or ``None`` if there is none.

    Returns:
        The challenge (``"kpc_..."``), or ``None`` when the request has no
        such cookie, or an empty one: this browser did not sign in, or the
        cookie expired with the challenge. Send the user back to sign in;
        ``CompleteSignIn`` would raise ``SignInChallengeInvalid``.
    """
    challenge = (_cookie_value(cookies, CHALLENGE_COOKIE_NAME) or "").partition(".")[0]
    return challenge or None


def challenge_passkey_options_from_cookie(cookies: Union[str, Mapping[str, str], None]) -> Optional[str]:
    """Returns the passkey request options that :func:`challenge_cookie` stored with the challenge.

    The code page offers the user's passkeys with them: it passes them to
    ``navigator.credentials.get``
    (``PublicKeyCredential.parseRequestOptionsFromJSON``), and the answer's
    ``toJSON()`` to ``CompleteSignIn`` as ``passkey_credential``.

    Args:
        cookies: The request's cookies, as for :func:`challenge_from_cookie`.

    Returns:
        The options (JSON), or ``None`` when the request has no challenge
        cookie or the challenge has no passkey (its ``passkey_options`` was
        empty): ask for a code only.
    """
    encoded = (_cookie_value(cookies, CHALLENGE_COOKIE_NAME) or "").partition(".")[2]
    if not encoded:
        return None
    try:
        options = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, ValueError):
        return None  # not written by challenge_cookie
    return options or None
