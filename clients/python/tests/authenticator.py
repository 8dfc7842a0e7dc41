"""The authenticator app, for the tests.

RFC 6238 TOTP codes (HMAC-SHA-1, 30-second steps, six digits) from the
base32 secret of ``EnrollTotp``, and a user enrolled with them. The server
runs on the real clock: :func:`enroll` confirms with the current step's
code, and a sign-in then completes with :func:`next_totp`, since Keyport
accepts one step of drift and refuses a step already used.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time
from dataclasses import dataclass
from typing import List, Optional

from keyport import KeyportClient, bearer_metadata
from keyport.v1 import session_pb2, two_factor_service_pb2, user_service_pb2

from .support import PASSWORD, unique_email

#: Seconds per TOTP step.
STEP_SECS = 30


def totp(secret: str, at: Optional[float] = None) -> str:
    """The six-digit code the app shows at ``at`` (Unix seconds; default now)."""
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    counter = int((time.time() if at is None else at) // STEP_SECS)
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    binary = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{binary % 1_000_000:06d}"


def next_totp(secret: str) -> str:
    """The code of the next step, computed now: what ``CompleteSignIn`` takes after ``ConfirmTotp``."""
    return totp(secret, time.time() + STEP_SECS)


def wrong_totp(secret: str) -> str:
    """A six-digit code that is none of the codes of the steps around now."""
    now = time.time()
    near = {totp(secret, now + offset * STEP_SECS) for offset in range(-2, 3)}
    return next(code for code in ("000000", "111111", "222222", "333333", "444444", "555555") if code not in near)


@dataclass
class Enrolled:
    """A user with the app on: the secret the phone holds and the printed backup codes."""

    email: str
    token: str
    secret: str
    backup_codes: List[str]
    #: The session of ``ConfirmTotp``.
    session: session_pb2.Session


def enroll(client: KeyportClient, prefix: str) -> Enrolled:
    """Signs up a user and turns the authenticator app on with the current step's code."""
    email = unique_email(prefix)
    token = client.users.SignUp(user_service_pb2.SignUpRequest(email=email, password=PASSWORD)).session.token
    started = client.two_factor.EnrollTotp(two_factor_service_pb2.EnrollTotpRequest(), metadata=bearer_metadata(token))
    confirmed = client.two_factor.ConfirmTotp(
        two_factor_service_pb2.ConfirmTotpRequest(code=totp(started.secret)), metadata=bearer_metadata(token)
    )
    return Enrolled(
        email=email,
        token=token,
        secret=started.secret,
        backup_codes=list(confirmed.backup_codes),
        session=confirmed.session,
    )
