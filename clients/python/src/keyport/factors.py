"""Helpers for second factors (``docs/second-factors.md``).

A user with an authenticator app on gets no session from a first factor
alone: ``SignIn``, ``FinishEmailSignIn`` and ``FinishOAuth`` answer a
``SignInChallenge``, and ``CompleteSignIn`` with the challenge and a TOTP or
backup code issues the (``AAL2``) session. :func:`sign_in_challenge` tells
the two answers apart.

It does not call Keyport: the RPCs stay the generated ones on
:class:`keyport.KeyportClient` (``sessions.CompleteSignIn``, and
``two_factor`` for enrolment and ``StepUp``).
"""

from __future__ import annotations

from typing import Optional, Union

from keyport.v1 import oauth_service_pb2, session_pb2, session_service_pb2

__all__ = ["sign_in_challenge"]


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
            # Keep challenge.challenge in an HttpOnly cookie of this browser, and ask for the code.
            grant = keyport.sessions.CompleteSignIn(
                CompleteSignInRequest(challenge=challenge.challenge, totp_code=code)
            ).session

    Args:
        response: The response of ``SignIn``, ``FinishEmailSignIn`` or
            ``FinishOAuth``.

    Returns:
        The challenge (``challenge`` is ``"kpc_..."``, ``factors`` the
        factors the user can answer with, ``expires_at`` when it stops
        working), or ``None`` when the response is not a challenge: it holds
        a session (or, for ``FinishOAuth``, a linked account).
    """
    return response.challenge if response.HasField("challenge") else None
