"""The hand-written layer on its own, without a server."""

from __future__ import annotations

import http.cookies
import importlib.metadata
from datetime import datetime, timedelta, timezone
from typing import Dict, Optional, Union

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

import keyport
from keyport import (
    KeyportClient,
    bearer_metadata,
    error_info,
    error_reason,
    field_violations,
    forwarded_client_metadata,
)
from keyport.v1 import session_pb2, session_service_pb2, session_service_pb2_grpc, user_service_pb2_grpc


def test_bearer_metadata_presents_the_token() -> None:
    assert bearer_metadata("kp_abc.def") == (("authorization", "Bearer kp_abc.def"),)


@pytest.mark.parametrize("token", ["", "kp_a b", "kp_a\nb", "kp_\u00e9"])
def test_bearer_metadata_rejects_what_metadata_cannot_carry(token: str) -> None:
    with pytest.raises(ValueError):
        bearer_metadata(token)


def test_client_exposes_both_stubs_and_closes() -> None:
    client = KeyportClient("127.0.0.1:1", timeout=2.5)
    with client as entered:
        assert entered is client
        assert isinstance(client.users, user_service_pb2_grpc.UserServiceStub)
        assert isinstance(client.sessions, session_service_pb2_grpc.SessionServiceStub)
        assert repr(client) == "KeyportClient(address='127.0.0.1:1', timeout=2.5)"


def test_tls_client_builds_a_secure_channel() -> None:
    with KeyportClient("localhost:443", tls=True) as client:
        assert isinstance(client.channel, grpc.Channel)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"root_certificates": b"pem"},
        {"private_key": b"key", "certificate_chain": b"chain"},
        {"tls": True, "private_key": b"key"},
        {"tls": True, "certificate_chain": b"chain"},
        {"timeout": 0},
        {"timeout": -1.0},
    ],
)
def test_client_rejects_inconsistent_settings(kwargs: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError):
        KeyportClient("127.0.0.1:1", **kwargs)


def test_errors_without_status_details_have_no_reason() -> None:
    class Bare(grpc.RpcError):
        pass

    assert error_reason(Bare()) is None
    assert error_info(Bare(), domain=None) is None
    assert field_violations(Bare()) == []


def test_package_exports() -> None:
    assert keyport.__version__ == importlib.metadata.version("keyport-client")
    assert keyport.ERROR_DOMAIN == "keyport.dev"
    assert set(keyport.__all__) >= {"KeyportClient", "bearer_metadata", "error_reason"}


class _FakeError(grpc.RpcError):
    """A failed call as grpc raises it: code, details and trailers."""

    def __init__(self, code: grpc.StatusCode, message: str, details: list) -> None:  # type: ignore[type-arg]
        self._code = code
        self._message = message
        status = status_pb2.Status(code=code.value[0], message=message)
        for detail in details:
            status.details.add().Pack(detail)
        self._trailers = (("grpc-status-details-bin", status.SerializeToString()),)

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._message

    def trailing_metadata(self) -> tuple:  # type: ignore[type-arg]
        return self._trailers


def _info(reason: str, domain: str = "keyport.dev") -> error_details_pb2.ErrorInfo:
    return error_details_pb2.ErrorInfo(reason=reason, domain=domain)


def test_reason_and_violations_come_from_the_status_details() -> None:
    bad_request = error_details_pb2.BadRequest()
    bad_request.field_violations.add(field="email", description="must not be empty")
    bad_request.field_violations.add(field="name", description="too long")
    err = _FakeError(grpc.StatusCode.INVALID_ARGUMENT, "invalid request", [_info("INVALID_ARGUMENT"), bad_request])

    assert error_reason(err) == "INVALID_ARGUMENT"
    assert field_violations(err) == [("email", "must not be empty"), ("name", "too long")]


def test_only_keyport_error_info_gives_a_reason() -> None:
    err = _FakeError(grpc.StatusCode.UNAVAILABLE, "upstream down", [_info("UPSTREAM_DOWN", domain="proxy.example")])

    assert error_reason(err) is None
    info = error_info(err, domain=None)
    assert info is not None and info.reason == "UPSTREAM_DOWN"


def test_status_details_that_contradict_the_call_are_ignored() -> None:
    err = _FakeError(grpc.StatusCode.UNAUTHENTICATED, "invalid credentials", [_info("INVALID_CREDENTIALS")])
    err._message = "rewritten by a proxy"
    assert error_reason(err) is None


def test_forwarded_client_metadata() -> None:
    assert forwarded_client_metadata() == ()
    assert forwarded_client_metadata(ip_address="203.0.113.7", user_agent="Firefox/140") == (
        ("x-keyport-client-ip", "203.0.113.7"),
        ("x-keyport-user-agent", "Firefox/140"),
    )
    with pytest.raises(ValueError):
        forwarded_client_metadata(user_agent="bad\nagent")


@pytest.mark.parametrize(
    ("link", "token"),
    [
        ("http://app.example.test/reset-password?token=kpm_abc-_DEF123", "kpm_abc-_DEF123"),
        ("/verify-email?token=kpm_abc&utm_source=mail", "kpm_abc"),
        ("?token=kpm_abc", "kpm_abc"),
        ("  https://app.example.com/sign-in/email?lang=de&token=kpm_abc#top \n", "kpm_abc"),
        ("https://app.example.com/change-email?token=kpm_a%2Db", "kpm_a-b"),
    ],
)
def test_token_from_link_reads_the_token_parameter(link: str, token: str) -> None:
    assert keyport.token_from_link(link) == token


@pytest.mark.parametrize(
    "link",
    [
        "",
        "https://app.example.com/reset-password",
        "https://app.example.com/reset-password?token=",
        "https://app.example.com/reset-password?token=%20",
        "https://app.example.com/reset-password?token=a&token=b",
        "https://app.example.com/reset-password?tokens=kpm_abc",
        "https://app.example.com/reset-password#token=kpm_abc",
        "token=kpm_abc",
        "http://[::1/reset-password?token=kpm_abc",
    ],
)
def test_token_from_link_is_none_without_exactly_one_token(link: str) -> None:
    assert keyport.token_from_link(link) is None


def _start(binding: str, expires_in: Optional[timedelta]) -> session_service_pb2.StartEmailSignInResponse:
    start = session_service_pb2.StartEmailSignInResponse(binding=binding)
    if expires_in is not None:
        start.expires_at.FromDatetime(datetime.now(timezone.utc) + expires_in)
    return start


def test_email_sign_in_cookie_has_the_attributes_of_the_rust_middleware() -> None:
    cookie = keyport.email_sign_in_cookie(_start("av_0Ext-rq_LG6", timedelta(minutes=10)))

    assert (cookie.name, cookie.value) == ("__Host-keyport_email", "av_0Ext-rq_LG6")
    assert 598 <= cookie.max_age <= 600
    assert cookie.header() == (
        f"__Host-keyport_email=av_0Ext-rq_LG6; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age={cookie.max_age}"
    )
    assert cookie.set_cookie_kwargs() == {
        "key": "__Host-keyport_email",
        "value": "av_0Ext-rq_LG6",
        "max_age": cookie.max_age,
        "path": "/",
        "secure": True,
        "httponly": True,
        "samesite": "Lax",
    }
    # A browser's parser reads the same cookie back.
    jar = http.cookies.SimpleCookie()
    jar.load(cookie.header())
    morsel = jar["__Host-keyport_email"]
    assert morsel.value == "av_0Ext-rq_LG6"
    assert (morsel["path"], morsel["httponly"], morsel["secure"], morsel["samesite"]) == ("/", True, True, "Lax")


@pytest.mark.parametrize(
    ("expires_in", "max_age"),
    [
        (None, 600),  # no expires_at: the longest a sign-in lasts
        (timedelta(hours=2), 600),  # capped at 10 minutes
        (timedelta(seconds=90.5), 91),  # rounded up
        (timedelta(seconds=-30), 1),  # expired already: still a cookie, Keyport refuses it
    ],
)
def test_email_sign_in_cookie_lasts_until_expires_at(expires_in: Optional[timedelta], max_age: int) -> None:
    cookie = keyport.email_sign_in_cookie(_start("av_x", expires_in))
    assert max_age - 1 <= cookie.max_age <= max_age


@pytest.mark.parametrize("binding", ["", "a b", "a;b", 'a"b', "a,b", "\u00e9"])
def test_email_sign_in_cookie_refuses_what_a_cookie_cannot_carry(binding: str) -> None:
    with pytest.raises(ValueError):
        keyport.email_sign_in_cookie(_start(binding, None))


def test_clear_email_sign_in_cookie_deletes_it() -> None:
    cleared = keyport.clear_email_sign_in_cookie()
    assert cleared.header() == "__Host-keyport_email=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0"
    assert cleared.set_cookie_kwargs()["max_age"] == 0


@pytest.mark.parametrize(
    ("cookies", "binding"),
    [
        ("a=1; __Host-keyport_email=av_x; __Host-keyport_session=kp_a.b", "av_x"),
        ("__Host-keyport_email=av_x", "av_x"),
        ({"__Host-keyport_email": "av_x", "other": "1"}, "av_x"),
        ("keyport_email=av_x; __Host-keyport_session=kp_a.b", None),
        ("__Host-keyport_email=", None),
        ("", None),
        ({}, None),
        ({"__Host-keyport_email": ""}, None),
        (None, None),
    ],
)
def test_email_sign_in_binding_reads_the_cookie(
    cookies: Union[str, Dict[str, str], None], binding: Optional[str]
) -> None:
    assert keyport.email_sign_in_binding(cookies) == binding


def test_mail_helpers_are_exported() -> None:
    names = {
        "EMAIL_SIGN_IN_COOKIE_NAME",
        "SetCookie",
        "clear_email_sign_in_cookie",
        "email_sign_in_binding",
        "email_sign_in_cookie",
        "token_from_link",
    }
    assert names <= set(keyport.__all__)
    assert keyport.EMAIL_SIGN_IN_COOKIE_NAME == "__Host-keyport_email"


def _challenge(value: str, expires_in: Optional[timedelta]) -> session_pb2.SignInChallenge:
    challenge = session_pb2.SignInChallenge(challenge=value)
    if expires_in is not None:
        challenge.expires_at.FromDatetime(datetime.now(timezone.utc) + expires_in)
    return challenge


_KPC = "kpc_" + "x" * 43


def test_challenge_cookie_has_the_attributes_of_the_rust_middleware() -> None:
    cookie = keyport.challenge_cookie(_challenge(_KPC, timedelta(minutes=5)))

    assert (cookie.name, cookie.value) == ("__Host-keyport_challenge", _KPC)
    assert 298 <= cookie.max_age <= 300
    assert cookie.header() == (
        f"__Host-keyport_challenge={_KPC}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age={cookie.max_age}"
    )
    assert cookie.set_cookie_kwargs()["key"] == "__Host-keyport_challenge"
    # Round trip: a browser's parser reads the cookie, and the helper reads what the browser sends back.
    jar = http.cookies.SimpleCookie()
    jar.load(cookie.header())
    morsel = jar["__Host-keyport_challenge"]
    assert (morsel.value, morsel["path"], morsel["httponly"], morsel["secure"]) == (_KPC, "/", True, True)
    assert keyport.challenge_from_cookie(f"{cookie.name}={morsel.value}") == _KPC
    assert keyport.challenge_from_cookie({cookie.name: morsel.value}) == _KPC


@pytest.mark.parametrize(
    ("expires_in", "max_age"),
    [
        (None, 600),  # no expires_at: the cap
        (timedelta(hours=2), 600),  # capped at 10 minutes
        (timedelta(seconds=601), 600),  # just over the cap
        (timedelta(minutes=5), 300),  # a challenge's own 5 minutes
        (timedelta(seconds=90.5), 91),  # rounded up
        (timedelta(seconds=-30), 1),  # expired already: still a cookie, Keyport refuses it
    ],
)
def test_challenge_cookie_lasts_until_expires_at_at_most_10_minutes(
    expires_in: Optional[timedelta], max_age: int
) -> None:
    cookie = keyport.challenge_cookie(_challenge(_KPC, expires_in))
    assert max_age - 1 <= cookie.max_age <= max_age


@pytest.mark.parametrize("value", ["", "kpc a", "kpc;a", 'kpc"a', "kpc,a", "\u00e9"])
def test_challenge_cookie_refuses_what_a_cookie_cannot_carry(value: str) -> None:
    with pytest.raises(ValueError, match="challenge"):
        keyport.challenge_cookie(_challenge(value, None))


def test_clear_challenge_cookie_deletes_it() -> None:
    cleared = keyport.clear_challenge_cookie()
    assert cleared.header() == "__Host-keyport_challenge=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0"
    assert cleared.set_cookie_kwargs()["max_age"] == 0


@pytest.mark.parametrize(
    ("cookies", "challenge"),
    [
        ("__Host-keyport_challenge=kpc_x", "kpc_x"),
        ("a=1; __Host-keyport_email=av_x; __Host-keyport_challenge=kpc_x ; __Host-keyport_session=kp_a.b", "kpc_x"),
        ({"__Host-keyport_challenge": "kpc_x", "__Host-keyport_email": "av_x"}, "kpc_x"),
        ("__Host-keyport_challenge=; __Host-keyport_challenge=kpc_x", "kpc_x"),
        ("a=1; __Host-keyport_email=av_x", None),
        ("keyport_challenge=kpc_x; x__Host-keyport_challenge=kpc_x", None),
        ("__Host-keyport_challenge=", None),
        ("", None),
        ({"__Host-keyport_email": "av_x"}, None),
        ({"__Host-keyport_challenge": ""}, None),
        (None, None),
    ],
)
def test_challenge_from_cookie_reads_the_cookie(
    cookies: Union[str, Dict[str, str], None], challenge: Optional[str]
) -> None:
    assert keyport.challenge_from_cookie(cookies) == challenge


def test_challenge_cookie_is_not_the_email_sign_in_cookie() -> None:
    header = "__Host-keyport_challenge=kpc_x; __Host-keyport_email=av_x"
    assert keyport.challenge_from_cookie(header) == "kpc_x"
    assert keyport.email_sign_in_binding(header) == "av_x"


def test_challenge_cookie_helpers_are_exported() -> None:
    names = {"CHALLENGE_COOKIE_NAME", "challenge_cookie", "challenge_from_cookie", "clear_challenge_cookie"}
    assert names <= set(keyport.__all__)
    assert keyport.CHALLENGE_COOKIE_NAME == "__Host-keyport_challenge"
