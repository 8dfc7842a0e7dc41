"""Passkeys: the cookie helpers on their own, then the passkey calls against a live keyport.

The shared test server has ``[passkeys]`` for ``localhost``
(:data:`tests.conftest.PASSKEYS_ENV`). No authenticator answers here: every
answer is malformed, so these tests cover the ceremonies' options and every
refusal, not a passkey that signs in.
"""

from __future__ import annotations

import base64
import http.cookies
import json
import re
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Dict, Iterator, Optional, Union

import grpc
import pytest

import keyport
from keyport import (
    KeyportClient,
    PasskeyInvalid,
    PasskeyNotFound,
    PasskeysDisabled,
    SecondFactorNotEnrolled,
    Unauthenticated,
    bearer_metadata,
)
from keyport.v1 import (
    passkey_service_pb2,
    session_pb2,
    session_service_pb2,
    two_factor_service_pb2,
    user_service_pb2,
)

from .conftest import running_keyport
from .support import PASSWORD, Account, unique_email

_KPK = "kpk_" + "x" * 43
_KPC = "kpc_" + "x" * 43
#: A well-formed ceremony that Keyport never issued.
_UNKNOWN_CEREMONY = "kpk_" + "A" * 43
#: Answers that are no ``PublicKeyCredential``, and one that only looks like one.
_MALFORMED_CREDENTIALS = ["", "not json", json.dumps({"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": {}})]


def _start(ceremony: str, expires_in: Optional[timedelta]) -> session_service_pb2.StartPasskeySignInResponse:
    start = session_service_pb2.StartPasskeySignInResponse(ceremony=ceremony)
    if expires_in is not None:
        start.expires_at.FromDatetime(datetime.now(timezone.utc) + expires_in)
    return start


# The ceremony cookie.


def test_passkey_ceremony_cookie_has_the_attributes_of_the_rust_middleware() -> None:
    cookie = keyport.passkey_ceremony_cookie(_start(_KPK, timedelta(minutes=5)))

    assert (cookie.name, cookie.value) == ("__Host-keyport_passkey", _KPK)
    assert 298 <= cookie.max_age <= 300
    assert cookie.header() == (
        f"__Host-keyport_passkey={_KPK}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age={cookie.max_age}"
    )
    jar = http.cookies.SimpleCookie()
    jar.load(cookie.header())
    morsel = jar["__Host-keyport_passkey"]
    assert (morsel.value, morsel["path"], morsel["httponly"], morsel["secure"]) == (_KPK, "/", True, True)
    assert keyport.passkey_ceremony_from_cookie(f"{cookie.name}={morsel.value}") == _KPK


@pytest.mark.parametrize(
    ("expires_in", "max_age"),
    [
        (None, 300),  # no expires_at: the cap
        (timedelta(hours=1), 300),  # capped at 5 minutes
        (timedelta(minutes=2), 120),  # until it expires
        (timedelta(seconds=90.5), 91),  # rounded up
        (timedelta(seconds=-30), 1),  # expired already: still a cookie, Keyport refuses it
    ],
)
def test_passkey_ceremony_cookie_lasts_until_expires_at_at_most_5_minutes(
    expires_in: Optional[timedelta], max_age: int
) -> None:
    cookie = keyport.passkey_ceremony_cookie(_start(_KPK, expires_in))
    assert max_age - 1 <= cookie.max_age <= max_age


@pytest.mark.parametrize("value", ["", "kpk a", "kpk;a", 'kpk"a', "kpk,a", "\u00e9"])
def test_passkey_ceremony_cookie_refuses_what_a_cookie_cannot_carry(value: str) -> None:
    with pytest.raises(ValueError, match="passkey ceremony"):
        keyport.passkey_ceremony_cookie(_start(value, None))


def test_clear_passkey_ceremony_cookie_deletes_it() -> None:
    cleared = keyport.clear_passkey_ceremony_cookie()
    assert cleared.header() == "__Host-keyport_passkey=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0"
    assert cleared.set_cookie_kwargs()["max_age"] == 0


@pytest.mark.parametrize(
    ("cookies", "ceremony"),
    [
        ("__Host-keyport_passkey=kpk_x", "kpk_x"),
        ("a=1; __Host-keyport_challenge=kpc_x; __Host-keyport_passkey=kpk_x ; __Host-keyport_session=kp_a.b", "kpk_x"),
        ({"__Host-keyport_passkey": "kpk_x", "__Host-keyport_email": "av_x"}, "kpk_x"),
        ("__Host-keyport_passkey=; __Host-keyport_passkey=kpk_x", "kpk_x"),
        ("a=1; __Host-keyport_challenge=kpc_x", None),
        ("keyport_passkey=kpk_x; x__Host-keyport_passkey=kpk_x", None),
        ("__Host-keyport_passkey=", None),
        ("", None),
        ({"__Host-keyport_passkey": ""}, None),
        (None, None),
    ],
)
def test_passkey_ceremony_from_cookie_reads_the_cookie(
    cookies: Union[str, Dict[str, str], None], ceremony: Optional[str]
) -> None:
    assert keyport.passkey_ceremony_from_cookie(cookies) == ceremony


def test_passkey_ceremony_cookie_is_not_the_challenge_cookie() -> None:
    header = "__Host-keyport_challenge=kpc_x; __Host-keyport_passkey=kpk_x"
    assert keyport.passkey_ceremony_from_cookie(header) == "kpk_x"
    assert keyport.challenge_from_cookie(header) == "kpc_x"
    assert keyport.challenge_from_cookie("__Host-keyport_passkey=kpk_x") is None


def test_passkey_helpers_are_exported() -> None:
    names = {
        "PASSKEY_CEREMONY_COOKIE_NAME",
        "clear_passkey_ceremony_cookie",
        "passkey_ceremony_cookie",
        "passkey_ceremony_from_cookie",
        "challenge_passkey_options_from_cookie",
        "PasskeyInvalid",
        "PasskeyNotFound",
        "PasskeysDisabled",
    }
    assert names <= set(keyport.__all__)
    assert keyport.PASSKEY_CEREMONY_COOKIE_NAME == "__Host-keyport_passkey"


# The challenge cookie's passkey request.

_OPTIONS = json.dumps({"challenge": "c2lnbg", "rpId": "localhost", "allowCredentials": [{"id": "a+b/c"}], "n": "Zo\u00eb"})


def test_challenge_cookie_carries_the_passkey_options_as_the_rust_middleware_writes_them() -> None:
    challenge = session_pb2.SignInChallenge(challenge=_KPC, passkey_options=_OPTIONS)
    cookie = keyport.challenge_cookie(challenge)
    encoded = base64.urlsafe_b64encode(_OPTIONS.encode()).decode().rstrip("=")
    assert cookie.value == f"{_KPC}.{encoded}"
    header = f"a=1; {cookie.name}={cookie.value}; b=2"
    assert keyport.challenge_from_cookie(header) == _KPC, "the challenge alone"
    assert keyport.challenge_passkey_options_from_cookie(header) == _OPTIONS, "the options, UTF-8 intact"
    assert keyport.challenge_passkey_options_from_cookie({cookie.name: cookie.value}) == _OPTIONS


@pytest.mark.parametrize(
    "cookies",
    [
        f"__Host-keyport_challenge={_KPC}",
        f"__Host-keyport_challenge={_KPC}.",
        f"__Host-keyport_challenge={_KPC}.%%%",
        f"__Host-keyport_challenge={_KPC}._w",  # not UTF-8
        "__Host-keyport_passkey=kpk_x",
        "",
        None,
    ],
)
def test_challenge_passkey_options_are_none_without_a_passkey(cookies: Optional[str]) -> None:
    assert keyport.challenge_passkey_options_from_cookie(cookies) is None


def test_challenge_cookie_without_passkey_options_is_the_challenge_alone() -> None:
    cookie = keyport.challenge_cookie(session_pb2.SignInChallenge(challenge=_KPC))
    assert cookie.value == _KPC
    assert keyport.challenge_from_cookie("__Host-keyport_challenge=.e30") is None, "no challenge before the options"
    with pytest.raises(ValueError, match="challenge"):
        keyport.challenge_cookie(session_pb2.SignInChallenge(challenge="kpc_a.b"))
    with pytest.raises(ValueError, match="challenge"):
        keyport.challenge_cookie(session_pb2.SignInChallenge(challenge="", passkey_options=_OPTIONS))


# Against the live server.


def _start_sign_in(client: KeyportClient) -> session_service_pb2.StartPasskeySignInResponse:
    return client.sessions.StartPasskeySignIn(session_service_pb2.StartPasskeySignInRequest())


def _finish_sign_in(client: KeyportClient, ceremony: str, credential: str) -> session_service_pb2.FinishPasskeySignInResponse:
    return client.sessions.FinishPasskeySignIn(
        session_service_pb2.FinishPasskeySignInRequest(ceremony=ceremony, credential=credential)
    )


def test_start_passkey_sign_in_answers_a_ceremony_and_options_for_any_passkey(client: KeyportClient) -> None:
    start = _start_sign_in(client)
    assert re.fullmatch(r"kpk_[A-Za-z0-9_-]{43}", start.ceremony), start.ceremony
    expires_in = start.expires_at.ToDatetime(timezone.utc) - datetime.now(timezone.utc)
    assert timedelta(0) < expires_in <= timedelta(minutes=5)
    options = json.loads(start.options)
    assert options["rpId"] == "localhost"
    assert options["userVerification"] == "required"
    assert options.get("allowCredentials", []) == [], "a discoverable credential: the browser offers them all"
    assert _start_sign_in(client).ceremony != start.ceremony, "a new ceremony each time"


@pytest.mark.parametrize("credential", _MALFORMED_CREDENTIALS)
def test_a_malformed_answer_is_passkey_invalid_and_uses_the_ceremony_up(client: KeyportClient, credential: str) -> None:
    ceremony = _start_sign_in(client).ceremony
    with pytest.raises(PasskeyInvalid) as first:
        _finish_sign_in(client, ceremony, credential)
    assert first.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert first.value.reason == keyport.Reason.PASSKEY_INVALID
    with pytest.raises(PasskeyInvalid):
        _finish_sign_in(client, ceremony, credential)


@pytest.mark.parametrize("ceremony", ["", "kpk_short", _UNKNOWN_CEREMONY, _KPC])
def test_a_ceremony_keyport_never_issued_is_passkey_invalid(client: KeyportClient, ceremony: str) -> None:
    with pytest.raises(PasskeyInvalid):
        _finish_sign_in(client, ceremony, _MALFORMED_CREDENTIALS[2])


def test_of_6_parallel_finishes_with_one_ceremony_none_signs_in(client: KeyportClient) -> None:
    ceremony = _start_sign_in(client).ceremony

    def finish(_: int) -> Optional[str]:
        try:
            _finish_sign_in(client, ceremony, _MALFORMED_CREDENTIALS[2])
        except PasskeyInvalid as err:
            return err.reason
        return None

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert list(pool.map(finish, range(6))) == [keyport.Reason.PASSKEY_INVALID] * 6


def test_a_user_without_passkeys_registers_nothing_and_is_refused_every_wrong_step(
    client: KeyportClient, account: Account
) -> None:
    auth = bearer_metadata(account.token)
    assert list(client.passkeys.ListPasskeys(passkey_service_pb2.ListPasskeysRequest(), metadata=auth).passkeys) == []
    assert client.two_factor.ListFactors(two_factor_service_pb2.ListFactorsRequest(), metadata=auth).passkeys == 0

    start = client.passkeys.StartPasskeyRegistration(passkey_service_pb2.StartPasskeyRegistrationRequest(), metadata=auth)
    assert re.fullmatch(r"kpk_[A-Za-z0-9_-]{43}", start.ceremony), start.ceremony
    options = json.loads(start.options)
    assert options["rp"]["id"] == "localhost"
    assert options["user"]["name"] == account.email
    assert options["authenticatorSelection"]["residentKey"] == "required", "a discoverable credential"
    assert options["authenticatorSelection"]["userVerification"] == "required"

    with pytest.raises(PasskeyInvalid):
        client.passkeys.FinishPasskeyRegistration(
            passkey_service_pb2.FinishPasskeyRegistrationRequest(ceremony=start.ceremony, credential="{}"), metadata=auth
        )
    assert list(client.passkeys.ListPasskeys(passkey_service_pb2.ListPasskeysRequest(), metadata=auth).passkeys) == []

    unknown = str(uuid.uuid4())
    with pytest.raises(PasskeyNotFound) as renamed:
        client.passkeys.RenamePasskey(passkey_service_pb2.RenamePasskeyRequest(id=unknown, name="Laptop"), metadata=auth)
    assert renamed.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(PasskeyNotFound):
        client.passkeys.DeletePasskey(passkey_service_pb2.DeletePasskeyRequest(id=unknown), metadata=auth)
    with pytest.raises(SecondFactorNotEnrolled):
        client.two_factor.StartPasskeyStepUp(two_factor_service_pb2.StartPasskeyStepUpRequest(), metadata=auth)
    with pytest.raises(SecondFactorNotEnrolled):
        client.two_factor.StepUp(
            two_factor_service_pb2.StepUpRequest(
                passkey=two_factor_service_pb2.PasskeyAssertion(ceremony=_UNKNOWN_CEREMONY, credential="{}")
            ),
            metadata=auth,
        )
    session = client.sessions.GetSession(session_service_pb2.GetSessionRequest(token=account.token)).session
    assert session.assurance_level == session_pb2.ASSURANCE_LEVEL_AAL1, "nothing stepped the session up"


def test_passkey_service_needs_a_session(client: KeyportClient) -> None:
    with pytest.raises(Unauthenticated):
        client.passkeys.ListPasskeys(passkey_service_pb2.ListPasskeysRequest())
    with pytest.raises(Unauthenticated):
        client.passkeys.StartPasskeyRegistration(passkey_service_pb2.StartPasskeyRegistrationRequest())


@pytest.fixture
def no_passkeys_client(tmp_path: Path) -> Iterator[KeyportClient]:
    """A client of a keyport without ``[passkeys]``."""
    with running_keyport(tmp_path / "keyport-data", {"KEYPORT_PASSKEYS__RP_ID": ""}) as server:
        with KeyportClient(server.address, timeout=10) as client:
            yield client


def test_a_server_without_passkeys_answers_passkeys_disabled(no_passkeys_client: KeyportClient) -> None:
    client = no_passkeys_client
    with pytest.raises(PasskeysDisabled) as excinfo:
        _start_sign_in(client)
    assert excinfo.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    signed_up = client.users.SignUp(user_service_pb2.SignUpRequest(email=unique_email("off"), password=PASSWORD))
    with pytest.raises(PasskeysDisabled):
        client.passkeys.StartPasskeyRegistration(
            passkey_service_pb2.StartPasskeyRegistrationRequest(), metadata=bearer_metadata(signed_up.session.token)
        )
