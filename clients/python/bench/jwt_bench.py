"""JWT verifications per second on one core, next to the cached session check."""

from __future__ import annotations

import time
from typing import Dict

from keyport import KeyportClient
from keyport.cache import SessionCache
from keyport.jwt import AccessTokenVerifier
from keyport.v1 import session_service_pb2

#: What run.py configures on its server.
ISSUER = "https://keyport.bench"
AUDIENCE = "bench"


def _rate(call: object, seconds: float) -> float:
    assert callable(call)
    done, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(200):
            call()
        done += 200
    return done / elapsed


def verifications_per_second(address: str, session: str, seconds: float) -> Dict[str, float]:
    """EdDSA access-token verifications/s vs cached ``get_session`` hits/s, one thread each."""
    with KeyportClient(address, timeout=10) as client, SessionCache(client) as cache:
        token = client.sessions.IssueAccessToken(session_service_pb2.IssueAccessTokenRequest(token=session)).access_token
        verifier = AccessTokenVerifier.from_client(client, issuer=ISSUER, audience=AUDIENCE)
        verifier.verify(token)
        cache.wait_until_live()
        cache.get_session(session)
        jwt_rate = _rate(lambda: verifier.verify(token), seconds)
        cached_rate = _rate(lambda: cache.get_session(session), seconds)
        return {"jwt_verifications_per_s": jwt_rate, "cached_session_checks_per_s": cached_rate}
