"""Helpers of the cache, guard and interceptor tests: the server settings they
need, users with two sessions, revocations, and waiting for a condition."""

from __future__ import annotations

import socket
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from keyport import KeyportClient, bearer_metadata
from keyport.v1 import session_service_pb2, user_service_pb2

from .support import PASSWORD, unique_email

#: ``WatchSessionEvents`` answers only peers in ``server.trusted_proxies``:
#: the tests' caches connect from 127.0.0.1.
TRUSTED_LOOPBACK_ENV = {"KEYPORT_SERVER__TRUSTED_PROXIES": '["127.0.0.1"]'}
#: A server that trusts nobody with the stream.
UNTRUSTED_ENV = {"KEYPORT_SERVER__TRUSTED_PROXIES": "[]"}
#: A server whose sessions expire 2 s after their last use.
SHORT_SESSIONS_ENV = {
    **TRUSTED_LOOPBACK_ENV,
    "KEYPORT_SESSIONS__EXPIRES_IN_SECS": "2",
    "KEYPORT_SESSIONS__UPDATE_AGE_SECS": "3600",
}
#: A server that slides a session's expiry on every use at least 1 s after
#: the last slide.
SLIDING_SESSIONS_ENV = {**TRUSTED_LOOPBACK_ENV, "KEYPORT_SESSIONS__UPDATE_AGE_SECS": "1"}


@dataclass
class TwoSessions:
    """A user signed in twice: ``laptop`` revokes ``phone``."""

    email: str
    user_id: str
    laptop: str
    phone: str


def two_sessions(client: KeyportClient) -> TwoSessions:
    """A new user with two sessions."""
    email = unique_email("guarded")
    signed_up = client.users.SignUp(user_service_pb2.SignUpRequest(email=email, password=PASSWORD, name="Ada"))
    signed_in = client.sessions.SignIn(session_service_pb2.SignInRequest(email=email, password=PASSWORD))
    return TwoSessions(email, signed_up.user.id, signed_up.session.token, signed_in.session.token)


def session_id(token: str) -> str:
    """The session id inside ``kp_<id>.<secret>``."""
    return token[len("kp_") :].split(".", 1)[0]


def revoke(client: KeyportClient, by: str, token: str) -> None:
    """Revokes ``token``'s session through Keyport, with the session ``by``."""
    client.sessions.RevokeSession(
        session_service_pb2.RevokeSessionRequest(session_id=session_id(token)), metadata=bearer_metadata(by)
    )


def wait_for(condition: Callable[[], bool], timeout: float = 10.0, what: str = "the condition") -> None:
    """Polls ``condition`` until it holds; fails after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout}s")
        time.sleep(0.005)


def unused_address() -> str:
    """A loopback address nobody listens on (bound and released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def delete_sessions_behind_its_back(data_dir: Path) -> None:
    """Deletes every session row of a stopped server's SQLite database: no
    event is ever sent for them."""
    with sqlite3.connect(data_dir / "keyport.db") as db:
        db.execute("DELETE FROM sessions")
