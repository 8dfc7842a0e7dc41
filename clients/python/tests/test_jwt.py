"""Access-token verification (:mod:`keyport.jwt`) against tokens and key sets
of a live Keyport with ``[access_tokens]``."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

import pytest

pytest.importorskip("jwt")

from keyport import AccessTokensDisabled, AudienceNotAllowed, KeyportClient  # noqa: E402
from keyport.jwt import AccessTokenVerifier, InvalidAccessToken, JwksUnavailable  # noqa: E402
from keyport.v1 import session_service_pb2  # noqa: E402

from .conftest import running_keyport  # noqa: E402
from .guarded import session_id, two_sessions, unused_address  # noqa: E402
from .support import KeyportServer  # noqa: E402

ISSUER = "https://keyport.test"
ACCESS_TOKENS_ENV = {
    "KEYPORT_ACCESS_TOKENS__ISSUER": ISSUER,
    "KEYPORT_ACCESS_TOKENS__AUDIENCES": '["orders","billing"]',
}


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyportServer]:
    """A Keyport issuing EdDSA access tokens for ``orders`` (the default) and ``billing``."""
    with running_keyport(tmp_path_factory.mktemp("keyport-jwt"), ACCESS_TOKENS_ENV) as server:
        yield server


@pytest.fixture(scope="module")
def issuer_client(issuer: KeyportServer) -> Iterator[KeyportClient]:
    with KeyportClient(issuer.address, timeout=10) as client:
        yield client


def jwks_url(server: KeyportServer) -> str:
    return f"http://{server.address}/.well-known/jwks.json"


def access_token(client: KeyportClient, session: str, audience: str = "") -> str:
    request = session_service_pb2.IssueAccessTokenRequest(token=session, audience=audience)
    return client.sessions.IssueAccessToken(request).access_token


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def parts(token: str) -> Dict[str, Any]:
    header, payload, signature = token.split(".")
    return {"header": json.loads(unb64(header)), "payload": json.loads(unb64(payload)), "signature": signature}


def forged(token: str, *, header: Optional[Dict[str, Any]] = None, payload: Optional[Dict[str, Any]] = None) -> str:
    """``token`` with its header or payload replaced, and its signature kept."""
    original = parts(token)
    encoded_header = b64(json.dumps(header or original["header"]).encode())
    encoded_payload = b64(json.dumps(payload or original["payload"]).encode())
    return f"{encoded_header}.{encoded_payload}.{original['signature']}"


def reason(verifier: AccessTokenVerifier, token: str) -> str:
    with pytest.raises(InvalidAccessToken) as raised:
        verifier.verify(token)
    return raised.value.reason


@pytest.fixture
def verifier(issuer: KeyportServer) -> AccessTokenVerifier:
    return AccessTokenVerifier.from_url(jwks_url(issuer), issuer=ISSUER, audience="orders")


def test_a_valid_token_verifies_with_its_claims(issuer_client: KeyportClient, verifier: AccessTokenVerifier) -> None:
    user = two_sessions(issuer_client)
    claims = verifier.verify(access_token(issuer_client, user.laptop))
    assert claims.subject == user.user_id
    assert claims.session_id == session_id(user.laptop)
    assert claims.roles == ("user",) and claims.permissions == ()
    assert (claims.issuer, claims.audience) == (ISSUER, "orders")
    assert 0 < (claims.expires_at - claims.issued_at).total_seconds() <= 900
    assert claims.actor is None and claims.token_id
    assert verifier.fetches == 1
    verifier.verify(access_token(issuer_client, user.phone))
    assert verifier.fetches == 1, "the key set is cached"


def test_the_key_set_also_comes_from_get_jwks(issuer_client: KeyportClient) -> None:
    user = two_sessions(issuer_client)
    verifier = AccessTokenVerifier.from_client(issuer_client, issuer=ISSUER, audience="billing")
    assert verifier.verify(access_token(issuer_client, user.laptop, "billing")).audience == "billing"


def test_verify_async(issuer_client: KeyportClient, verifier: AccessTokenVerifier) -> None:
    token = access_token(issuer_client, two_sessions(issuer_client).laptop)
    assert asyncio.run(verifier.verify_async(token)).roles == ("user",)
    with pytest.raises(InvalidAccessToken):
        asyncio.run(verifier.verify_async(forged(token, payload={**parts(token)["payload"], "sub": "someone"})))


def test_a_tampered_payload_or_signature_fails(issuer_client: KeyportClient, verifier: AccessTokenVerifier) -> None:
    token = access_token(issuer_client, two_sessions(issuer_client).laptop)
    payload = parts(token)["payload"]
    assert reason(verifier, forged(token, payload={**payload, "sub": "another-user"})) == "BAD_SIGNATURE"
    assert reason(verifier, forged(token, payload={**payload, "roles": ["admin"]})) == "BAD_SIGNATURE"
    head, body, signature = token.split(".")
    flipped = unb64(signature)
    flipped = bytes([flipped[0] ^ 1]) + flipped[1:]
    assert reason(verifier, f"{head}.{body}.{b64(flipped)}") == "BAD_SIGNATURE"
    assert reason(verifier, f"{head}.{body}.") == "BAD_SIGNATURE"


@pytest.mark.parametrize("token", ["", "garbage", "a.b", "a.b.c", "x" * 20_000, "e30.e30.e30"])
def test_malformed_tokens_fail(verifier: AccessTokenVerifier, token: str) -> None:
    assert reason(verifier, token) in ("MALFORMED", "WRONG_TYPE")


def test_the_wrong_audience_or_issuer_fails(issuer: KeyportServer, issuer_client: KeyportClient, verifier: AccessTokenVerifier) -> None:
    user = two_sessions(issuer_client)
    assert reason(verifier, access_token(issuer_client, user.laptop, "billing")) == "WRONG_AUDIENCE"
    elsewhere = AccessTokenVerifier.from_url(jwks_url(issuer), issuer="https://evil.test", audience="orders")
    assert reason(elsewhere, access_token(issuer_client, user.laptop)) == "WRONG_ISSUER"
    with pytest.raises(AudienceNotAllowed):
        access_token(issuer_client, user.laptop, "nobody-configured-this")


def test_alg_none_and_hmac_with_the_public_key_are_refused(issuer_client: KeyportClient, verifier: AccessTokenVerifier) -> None:
    token = access_token(issuer_client, two_sessions(issuer_client).laptop)
    verifier.verify(token)
    header, payload = parts(token)["header"], parts(token)["payload"]
    none_header = b64(json.dumps({**header, "alg": "none"}).encode())
    body = b64(json.dumps(payload).encode())
    assert reason(verifier, f"{none_header}.{body}.") == "ALGORITHM_NOT_ALLOWED"
    # HS256 keyed with the published public key: valid HMAC, forged token.
    jwks = json.loads(_jwks_text(issuer_client))
    public = next(key for key in jwks["keys"] if key["kid"] == header["kid"])
    for secret in (public["x"].encode(), unb64(public["x"]), json.dumps(public).encode()):
        hs_header = b64(json.dumps({**header, "alg": "HS256"}).encode())
        signature = hmac.new(secret, f"{hs_header}.{body}".encode(), hashlib.sha256).digest()
        assert reason(verifier, f"{hs_header}.{body}.{b64(signature)}") == "ALGORITHM_NOT_ALLOWED"
    rs_header = b64(json.dumps({**header, "alg": "RS256"}).encode())
    assert reason(verifier, f"{rs_header}.{body}.{parts(token)['signature']}") == "ALGORITHM_NOT_ALLOWED"
    # An allowed algorithm, but not the key's: the Ed25519 key is never used for ES256.
    es_header = b64(json.dumps({**header, "alg": "ES256"}).encode())
    assert reason(verifier, f"{es_header}.{body}.{parts(token)['signature']}") == "KEY_MISMATCH"
    typ_header = b64(json.dumps({**header, "typ": "JWT"}).encode())
    assert reason(verifier, f"{typ_header}.{body}.{parts(token)['signature']}") == "WRONG_TYPE"


def _jwks_text(client: KeyportClient) -> str:
    return client.sessions.GetJwks(session_service_pb2.GetJwksRequest()).jwks


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def test_an_unknown_kid_refetches_at_most_once_per_interval(issuer: KeyportServer, issuer_client: KeyportClient) -> None:
    clock = Clock()
    verifier = AccessTokenVerifier.from_url(jwks_url(issuer), issuer=ISSUER, audience="orders", clock=clock)
    token = access_token(issuer_client, two_sessions(issuer_client).laptop)
    verifier.verify(token)
    assert verifier.fetches == 1
    stranger = forged(token, header={**parts(token)["header"], "kid": "no-such-key"})
    assert reason(verifier, stranger) == "UNKNOWN_KEY"
    assert verifier.fetches == 2, "an unknown kid fetches the set again"
    for _ in range(5):
        assert reason(verifier, stranger) == "UNKNOWN_KEY"
    assert verifier.fetches == 2, "at most once per refetch_interval"
    verifier.verify(token)
    assert verifier.fetches == 2
    clock.now += 30
    assert reason(verifier, stranger) == "UNKNOWN_KEY"
    assert verifier.fetches == 3, "once the interval passed, once more"


def test_an_expired_token_fails(tmp_path: Path) -> None:
    env = {**ACCESS_TOKENS_ENV, "KEYPORT_ACCESS_TOKENS__TTL_SECS": "1"}
    with running_keyport(tmp_path, env) as server, KeyportClient(server.address, timeout=10) as client:
        token = access_token(client, two_sessions(client).laptop)
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        assert claims["exp"] - claims["nbf"] == 1, "the configured TTL"
        # The verifiers' clocks are pinned to the token's own times, so a
        # busy machine's slow calls cannot expire it before the first check.
        at_issue, at_expiry = Clock(), Clock()
        at_issue.now, at_expiry.now = claims["nbf"], claims["exp"]

        def verifier(clock: Clock, **options: Any) -> AccessTokenVerifier:
            return AccessTokenVerifier.from_url(jwks_url(server), issuer=ISSUER, audience="orders", clock=clock, **options)

        verifier(at_issue, leeway=0).verify(token)
        assert reason(verifier(at_expiry, leeway=0), token) == "EXPIRED"
        assert verifier(at_expiry).verify(token).subject, "within the default 30 s leeway"
        later = Clock()
        later.now += 60
        late = AccessTokenVerifier.from_url(jwks_url(server), issuer=ISSUER, audience="orders", clock=later)
        assert reason(late, token) == "EXPIRED"
        earlier = Clock()
        earlier.now -= 120
        early = AccessTokenVerifier.from_url(jwks_url(server), issuer=ISSUER, audience="orders", clock=earlier)
        assert reason(early, token) == "NOT_YET_VALID", "nbf, beyond the leeway"


def test_rotation_keeps_old_tokens_valid_and_picks_up_the_new_key(tmp_path: Path) -> None:
    env = {
        **ACCESS_TOKENS_ENV,
        "KEYPORT_ACCESS_TOKENS__ROTATE_AFTER_SECS": "2",
        "KEYPORT_ACCESS_TOKENS__JWKS_MAX_AGE_SECS": "1",
    }
    with running_keyport(tmp_path, env) as server, KeyportClient(server.address, timeout=10) as client:
        user = two_sessions(client)
        verifier = AccessTokenVerifier.from_url(jwks_url(server), issuer=ISSUER, audience="orders")
        old = access_token(client, user.laptop)
        verifier.verify(old)
        old_kid = parts(old)["header"]["kid"]
        deadline = time.monotonic() + 15
        new = old
        while parts(new)["header"]["kid"] == old_kid:
            assert time.monotonic() < deadline, "Keyport never rotated its signing key"
            time.sleep(0.5)
            new = access_token(client, user.laptop)
        assert verifier.verify(new).subject == user.user_id, "the new kid is picked up"
        assert verifier.verify(old).subject == user.user_id, "a token of the old key still verifies"
        assert old_kid in {key["kid"] for key in json.loads(_jwks_text(client))["keys"]}


def test_es256_tokens_verify_and_keep_their_curve(tmp_path: Path) -> None:
    env = {**ACCESS_TOKENS_ENV, "KEYPORT_ACCESS_TOKENS__ALGORITHM": "ES256"}
    with running_keyport(tmp_path, env) as server, KeyportClient(server.address, timeout=10) as client:
        token = access_token(client, two_sessions(client).laptop)
        assert parts(token)["header"]["alg"] == "ES256"
        verifier = AccessTokenVerifier.from_url(jwks_url(server), issuer=ISSUER, audience="orders")
        assert verifier.verify(token).roles == ("user",)
        ed_header = b64(json.dumps({**parts(token)["header"], "alg": "EdDSA"}).encode())
        head, body, signature = token.split(".")
        assert reason(verifier, f"{ed_header}.{body}.{signature}") == "KEY_MISMATCH"


def test_permissions_ride_in_the_token_when_configured(tmp_path: Path) -> None:
    env = {**ACCESS_TOKENS_ENV, "KEYPORT_ACCESS_TOKENS__INCLUDE_PERMISSIONS": "true"}
    with running_keyport(tmp_path, env) as server, KeyportClient(server.address, timeout=10) as client:
        token = access_token(client, two_sessions(client).laptop)
        verifier = AccessTokenVerifier.from_url(jwks_url(server), issuer=ISSUER, audience="orders")
        assert verifier.verify(token).permissions == ("posts:read",)


def test_no_key_set_fails_closed(tmp_path: Path) -> None:
    down = AccessTokenVerifier.from_url(f"http://{unused_address()}/.well-known/jwks.json", issuer=ISSUER, audience="orders")
    some_token = f"{b64(json.dumps({'alg': 'EdDSA', 'typ': 'at+jwt', 'kid': 'k'}).encode())}.e30.AAAA"
    with pytest.raises(JwksUnavailable) as raised:
        down.verify(some_token)
    assert raised.value.reason == "JWKS_UNAVAILABLE"
    with running_keyport(tmp_path) as server, KeyportClient(server.address, timeout=10) as client:
        with pytest.raises(AccessTokensDisabled):
            access_token(client, two_sessions(client).laptop)
        off = AccessTokenVerifier.from_url(jwks_url(server), issuer=ISSUER, audience="orders")
        with pytest.raises(JwksUnavailable):
            off.verify(some_token)


def test_the_verifier_is_configured_with_care() -> None:
    with pytest.raises(ValueError):
        AccessTokenVerifier.from_url("file:///etc/passwd", issuer=ISSUER, audience="orders")
    with pytest.raises(ValueError):
        AccessTokenVerifier.from_url("http://127.0.0.1:1/jwks", issuer="", audience="orders")


def test_the_readme_example_verifies_a_token(issuer: KeyportServer, issuer_client: KeyportClient, capsys: pytest.CaptureFixture[str]) -> None:
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    start = readme.index("## Access tokens (JWT)")
    match = re.search(r"```python\n(.*?)```", readme[start:], re.DOTALL)
    assert match
    source = match.group(1).replace("127.0.0.1:50051", issuer.address)
    user = two_sessions(issuer_client)
    exec(compile(source, "README.md", "exec"), {"access_token": access_token(issuer_client, user.laptop)})
    assert capsys.readouterr().out == f"{user.user_id} {session_id(user.laptop)} ('user',)\n"
    exec(compile(source, "README.md", "exec"), {"access_token": "garbage"})
    assert capsys.readouterr().out == "refused: MALFORMED\n"
