"""Offline verification of Keyport's access tokens (JWTs, RFC 9068 ``at+jwt``).

A service that is handed an access token (``SessionService.IssueAccessToken``)
checks it without calling Keyport: :class:`AccessTokenVerifier` fetches the
JSON Web Key Set (``GET /.well-known/jwks.json`` on Keyport's port, or
``SessionService.GetJwks``), keeps it for its ``max-age``, and checks each
token's signature, ``typ``, ``iss``, ``aud``, ``exp`` and ``nbf``::

    verifier = AccessTokenVerifier.from_url(
        "http://127.0.0.1:50051/.well-known/jwks.json", issuer="https://auth.example.com", audience="orders"
    )
    claims = verifier.verify(token)  # AccessTokenClaims, or raises InvalidAccessToken
    print(claims.subject, claims.session_id, claims.roles)

Only ``EdDSA`` (Ed25519) and ``ES256`` (P-256) are accepted, and only with a
key of that type and curve: never ``none``, never an HMAC algorithm (which
would let the public key act as a shared secret), never RSA. A token signed
with a key the set does not have makes the verifier fetch the set again,
at most once per ``refetch_interval`` (30 s): a new key is picked up at
once, and a flood of made-up ``kid`` values costs one fetch per interval.

A token stays valid until it expires, whatever happens to its session:
that is the price of checking offline; keep Keyport's ``ttl_secs`` short.
Needs the ``jwt`` extra (``PyJWT[crypto]``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime
import json
import re
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import jwt
from jwt.exceptions import (
    InvalidAudienceError,
    InvalidIssuerError,
    InvalidSignatureError,
    MissingRequiredClaimError,
    PyJWTError,
)

from keyport.client import KeyportClient
from keyport.v1 import session_service_pb2

__all__ = ["AccessTokenClaims", "AccessTokenVerifier", "InvalidAccessToken", "JwksUnavailable"]

#: The algorithms accepted, with the key type and curve each must be used with.
ALLOWED_ALGORITHMS: Mapping[str, Tuple[str, str]] = {"EdDSA": ("OKP", "Ed25519"), "ES256": ("EC", "P-256")}
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+")
#: The claims every Keyport access token has.
REQUIRED_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "nbf", "jti", "sid")

#: Fetches the key set: returns its JSON and how long it may be kept (seconds, or ``None``).
JwksSource = Callable[[], Tuple[str, Optional[float]]]


class InvalidAccessToken(Exception):
    """A token that does not verify; ``reason`` says why (for logs and metrics).

    Reasons: ``MALFORMED``, ``WRONG_TYPE``, ``ALGORITHM_NOT_ALLOWED``,
    ``UNKNOWN_KEY``, ``KEY_MISMATCH``, ``BAD_SIGNATURE``, ``EXPIRED``,
    ``NOT_YET_VALID``, ``WRONG_ISSUER``, ``WRONG_AUDIENCE``,
    ``MISSING_CLAIM``, ``JWKS_UNAVAILABLE``.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


class JwksUnavailable(InvalidAccessToken):
    """The key set could not be fetched (and none is cached): fail closed."""

    def __init__(self, message: str) -> None:
        super().__init__("JWKS_UNAVAILABLE", message)


@dataclass(frozen=True)
class AccessTokenClaims:
    """What a verified access token says."""

    #: ``sub``: the user's id.
    subject: str
    #: ``sid``: the session the token was issued from.
    session_id: str
    #: ``roles``: the user's roles when it was issued.
    roles: Tuple[str, ...]
    #: ``permissions``: what those roles grant (only when Keyport's
    #: ``include_permissions`` is on; empty otherwise).
    permissions: Tuple[str, ...]
    #: ``exp``, ``iat``, ``nbf`` (UTC).
    expires_at: datetime.datetime
    issued_at: datetime.datetime
    not_before: datetime.datetime
    #: ``jti``: this token's unique id.
    token_id: str
    #: ``iss`` and ``aud``.
    issuer: str
    audience: str
    #: ``act.sub``: the admin impersonating the user, if any.
    actor: Optional[str] = None
    #: Every claim, as decoded.
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


def _utc(seconds: Any) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(float(seconds), datetime.timezone.utc)


def _strings(value: Any) -> Tuple[str, ...]:
    return tuple(str(item) for item in value) if isinstance(value, list) else ()


def _max_age(cache_control: Optional[str]) -> Optional[float]:
    match = re.search(r"max-age=(\d+)", cache_control or "")
    return float(match.group(1)) if match else None


@dataclass(frozen=True)
class _Key:
    jwk: jwt.PyJWK
    #: As the set states them: the key must be of the type and curve of
    #: the token's algorithm.
    kty: str
    crv: str
    alg: str


@dataclass
class _KeySet:
    keys: Dict[str, _Key]
    fetched_at: float
    max_age: Optional[float]


class AccessTokenVerifier:
    """Verifies Keyport access tokens against a cached JWKS; thread-safe."""

    def __init__(
        self,
        source: JwksSource,
        *,
        issuer: str,
        audience: str,
        leeway: float = 30.0,
        refetch_interval: float = 30.0,
        default_max_age: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """A verifier whose keys come from ``source``.

        Args:
            source: Fetches the key set (:meth:`from_url`, :meth:`from_client`).
            issuer: The ``iss`` required (Keyport's ``access_tokens.issuer``).
            audience: The ``aud`` required: this service's name.
            leeway: Seconds of clock skew allowed on ``exp`` and ``nbf``.
            refetch_interval: Least seconds between two fetches caused by
                an unknown ``kid``.
            default_max_age: How long a set without a ``max-age`` is kept.
            clock: Wall-clock seconds (``exp`` and ``nbf`` are checked
                against it, and the set's age is measured with it).
        """
        if not issuer or not audience:
            raise ValueError("issuer and audience must not be empty")
        self._source = source
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.refetch_interval = refetch_interval
        self.default_max_age = default_max_age
        self._clock = clock
        self._lock = threading.Lock()
        self._keys: Optional[_KeySet] = None
        # Only fetches caused by an unknown kid are rate-limited: the first
        # fetch and those of a stale set are not attacker-driven.
        self._last_refetch = float("-inf")
        #: Times the key set was fetched (for tests and metrics).
        self.fetches = 0

    @classmethod
    def from_url(cls, url: str, *, issuer: str, audience: str, http_timeout: float = 5.0, **options: Any) -> AccessTokenVerifier:
        """A verifier fetching ``url`` (``http(s)://<keyport>/.well-known/jwks.json``)."""
        if not url.startswith(("http://", "https://")):
            raise ValueError("the JWKS URL must be http:// or https://")

        def fetch() -> Tuple[str, Optional[float]]:
            with urllib.request.urlopen(url, timeout=http_timeout) as response:  # noqa: S310 - http(s) only, checked above
                body: bytes = response.read(1 << 20)
                return body.decode("utf-8"), _max_age(response.headers.get("cache-control"))

        return cls(fetch, issuer=issuer, audience=audience, **options)

    @classmethod
    def from_client(cls, client: KeyportClient, *, issuer: str, audience: str, **options: Any) -> AccessTokenVerifier:
        """A verifier fetching the set with ``client``'s ``SessionService.GetJwks``."""

        def fetch() -> Tuple[str, Optional[float]]:
            answer = client.sessions.GetJwks(session_service_pb2.GetJwksRequest())
            max_age = answer.max_age.seconds + answer.max_age.nanos / 1e9 if answer.HasField("max_age") else None
            return answer.jwks, max_age

        return cls(fetch, issuer=issuer, audience=audience, **options)

    # -- verifying ---------------------------------------------------------

    def verify(self, token: str) -> AccessTokenClaims:
        """The claims of ``token``; raises :class:`InvalidAccessToken` if it does not verify."""
        kid, alg = self._header(token)
        if self._needs_fetch(kid):
            self._refresh_for(kid)
        return self._decode(token, self._key(kid, alg), alg)

    async def verify_async(self, token: str) -> AccessTokenClaims:
        """:meth:`verify` for asyncio code: a fetch of the set runs in a thread."""
        kid, alg = self._header(token)
        if self._needs_fetch(kid):
            await asyncio.to_thread(self._refresh_for, kid)
        return self._decode(token, self._key(kid, alg), alg)

    def _header(self, token: str) -> Tuple[str, str]:
        if not isinstance(token, str) or not token or len(token) > 16_384 or token.count(".") != 2:
            raise InvalidAccessToken("MALFORMED", "not a compact JWS")
        # Read here rather than with jwt.get_unverified_header: PyJWT's
        # decode checks the segments again, and its check costs as much as
        # the signature.
        encoded = token.partition(".")[0]
        if not _BASE64URL.fullmatch(encoded):
            raise InvalidAccessToken("MALFORMED", "the header is not base64url")
        try:
            header = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        except (ValueError, binascii.Error):
            raise InvalidAccessToken("MALFORMED", "the header is not JSON") from None
        if not isinstance(header, dict):
            raise InvalidAccessToken("MALFORMED", "the header is not a JSON object")
        typ = str(header.get("typ", "")).lower()
        if typ not in ("at+jwt", "application/at+jwt"):
            raise InvalidAccessToken("WRONG_TYPE", f"typ {header.get('typ')!r} is not at+jwt")
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise InvalidAccessToken("ALGORITHM_NOT_ALLOWED", f"alg {alg!r} is not EdDSA or ES256")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise InvalidAccessToken("MALFORMED", "no kid")
        return kid, str(alg)

    def _key(self, kid: str, alg: str) -> Any:
        """The key ``kid`` of the set, checked against ``alg``."""
        keys = self._keys
        known = None if keys is None else keys.keys.get(kid)
        if known is None:
            raise InvalidAccessToken("UNKNOWN_KEY", "no key of the set has this kid")
        kty, crv = ALLOWED_ALGORITHMS[alg]
        if (known.kty, known.crv, known.alg) != (kty, crv, alg):
            raise InvalidAccessToken("KEY_MISMATCH", f"key {kid} is not a {kty}/{crv} key for {alg}")
        return known.jwk.key

    def _decode(self, token: str, key: Any, alg: str) -> AccessTokenClaims:
        try:
            claims: Dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                # exp and nbf are checked below, against the injected clock.
                options={"require": list(REQUIRED_CLAIMS), "verify_iat": False, "verify_exp": False, "verify_nbf": False},
            )
        except InvalidIssuerError:
            raise InvalidAccessToken("WRONG_ISSUER", "iss is not the expected issuer") from None
        except InvalidAudienceError:
            raise InvalidAccessToken("WRONG_AUDIENCE", "aud is not this service") from None
        except MissingRequiredClaimError as err:
            raise InvalidAccessToken("MISSING_CLAIM", str(err)) from None
        except InvalidSignatureError:
            raise InvalidAccessToken("BAD_SIGNATURE", "the signature does not verify") from None
        except PyJWTError as err:
            raise InvalidAccessToken("MALFORMED", str(err)) from None
        if not isinstance(claims.get("aud"), str):
            raise InvalidAccessToken("WRONG_AUDIENCE", "aud must be one string")
        exp, nbf = claims["exp"], claims["nbf"]
        if not all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in (exp, nbf)):
            raise InvalidAccessToken("MALFORMED", "exp and nbf must be numbers")
        now = self._clock()
        if now >= exp + self.leeway:
            raise InvalidAccessToken("EXPIRED", "the token expired")
        if now < nbf - self.leeway:
            raise InvalidAccessToken("NOT_YET_VALID", "the token is not valid yet")
        act = claims.get("act")
        return AccessTokenClaims(
            subject=str(claims["sub"]),
            session_id=str(claims["sid"]),
            roles=_strings(claims.get("roles")),
            permissions=_strings(claims.get("permissions")),
            expires_at=_utc(claims["exp"]),
            issued_at=_utc(claims["iat"]),
            not_before=_utc(claims["nbf"]),
            token_id=str(claims["jti"]),
            issuer=str(claims["iss"]),
            audience=str(claims["aud"]),
            actor=str(act["sub"]) if isinstance(act, dict) and "sub" in act else None,
            raw=claims,
        )

    # -- the key set ---------------------------------------------------------

    def _stale(self, keys: _KeySet) -> bool:
        max_age = keys.max_age if keys.max_age is not None else self.default_max_age
        return self._clock() - keys.fetched_at >= max_age

    def _may_refetch(self) -> bool:
        return self._clock() - self._last_refetch >= self.refetch_interval

    def _needs_fetch(self, kid: str) -> bool:
        """No set yet, a stale one, or one without ``kid`` that may be fetched again."""
        keys = self._keys
        return keys is None or self._stale(keys) or (kid not in keys.keys and self._may_refetch())

    def _refresh_for(self, kid: str) -> None:
        """Fetches the set if it is missing or stale, or lacks ``kid`` and
        the last fetch is at least ``refetch_interval`` old."""
        with self._lock:
            keys = self._keys
            if keys is not None and not self._stale(keys):
                if kid in keys.keys or not self._may_refetch():
                    return
                self._last_refetch = self._clock()
            try:
                self._keys = self._fetch_set()
            except Exception as err:  # noqa: BLE001 - any failure of the source (HTTP, gRPC, JSON)
                if keys is None:
                    raise JwksUnavailable(str(err)) from None
                # Keep the set we have (its keys still verify what they
                # signed); a new kid waits for the next interval.

    def _fetch_set(self) -> _KeySet:
        body, max_age = self._source()
        self.fetches += 1
        document = json.loads(body)
        keys: Dict[str, _Key] = {}
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            alg, kid = entry.get("alg"), entry.get("kid")
            # Keys of other algorithms (or without a kid) are not ours to use.
            if not isinstance(kid, str) or alg not in ALLOWED_ALGORITHMS:
                continue
            keys[kid] = _Key(jwt.PyJWK(entry, algorithm=alg), str(entry.get("kty")), str(entry.get("crv")), alg)
        return _KeySet(keys, self._clock(), max_age)
