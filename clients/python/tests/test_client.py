"""The hand-written layer on its own, without a server."""

from __future__ import annotations

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
from keyport.v1 import session_service_pb2_grpc, user_service_pb2_grpc


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
    assert keyport.__version__ == "0.1.0"
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
