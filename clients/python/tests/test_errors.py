"""Reasons and the exceptions keyed by them, against the live server."""

from __future__ import annotations

import datetime

import grpc
import pytest

import keyport
import keyport.errors
from keyport import (
    DEFAULT_TIMEOUT,
    EmailTaken,
    EmailTokenInvalid,
    InvalidArgument,
    InvalidCredentials,
    KeyportClient,
    KeyportError,
    MailDisabled,
    MalformedRequest,
    OAuthProviderUnknown,
    RateLimited,
    Reason,
    SessionNotFound,
    Unauthenticated,
    WeakPassword,
    bearer_metadata,
    error_reason,
    retry_delay,
)
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from keyport.v1 import errors_pb2, oauth_service_pb2, oauth_service_pb2_grpc, session_service_pb2, user_service_pb2

from .support import PASSWORD, Account, KeyportServer, unique_email
from .test_client import _FakeError, _info


def _sign_in(client: KeyportClient, email: str, password: str) -> session_service_pb2.SignInResponse:
    return client.sessions.SignIn(session_service_pb2.SignInRequest(email=email, password=password))


def test_wrong_password_raises_invalid_credentials(client: KeyportClient, account: Account) -> None:
    with pytest.raises(InvalidCredentials) as excinfo:
        _sign_in(client, account.email, "wrong password")
    err = excinfo.value
    assert err.reason == Reason.INVALID_CREDENTIALS == "INVALID_CREDENTIALS"
    # Still what grpc raises, for code written against grpc.RpcError.
    assert isinstance(err, grpc.RpcError) and isinstance(err, grpc.Call)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(err) == "INVALID_CREDENTIALS"
    assert str(err).startswith("INVALID_CREDENTIALS (UNAUTHENTICATED): ")


def test_each_failure_raises_the_class_of_its_reason(client: KeyportClient, account: Account) -> None:
    with pytest.raises(EmailTaken):
        client.users.SignUp(user_service_pb2.SignUpRequest(email=account.email, password=PASSWORD))
    with pytest.raises(WeakPassword):
        client.users.SignUp(user_service_pb2.SignUpRequest(email=unique_email(), password="short"))
    with pytest.raises(InvalidArgument) as invalid:
        client.users.SignUp(user_service_pb2.SignUpRequest(email="not an email", password=PASSWORD))
    assert [field for field, _ in invalid.value.field_violations] == ["email"]
    with pytest.raises(Unauthenticated):
        client.users.GetCurrentUser(user_service_pb2.GetCurrentUserRequest(), metadata=bearer_metadata("kp_x.y"))
    other = client.users.SignUp(user_service_pb2.SignUpRequest(email=unique_email("other"), password=PASSWORD))
    with pytest.raises(SessionNotFound):
        client.sessions.RevokeSession(
            session_service_pb2.RevokeSessionRequest(session_id=other.session.session.id),
            metadata=bearer_metadata(account.token),
        )


def test_a_request_that_is_not_protobuf_is_malformed_request(client: KeyportClient) -> None:
    # Raw bytes through the client's channel: no serializer, so they go as they are.
    get_session: grpc.UnaryUnaryMultiCallable[bytes, bytes] = client.channel.unary_unary(
        "/keyport.v1.SessionService/GetSession"
    )
    with pytest.raises(MalformedRequest) as excinfo:
        get_session(b"\xff\xff\xff")
    assert excinfo.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_stubs_on_the_clients_channel_raise_them_too(client: KeyportClient) -> None:
    oauth = oauth_service_pb2_grpc.OAuthServiceStub(client.channel)
    with pytest.raises(OAuthProviderUnknown):
        oauth.StartOAuth(
            oauth_service_pb2.StartOAuthRequest(provider_id="nope", redirect_uri="https://app.example.com/callback")
        )


def test_a_server_without_mail_refuses_the_mail_flows(client: KeyportClient) -> None:
    with pytest.raises(MailDisabled) as disabled:
        client.users.RequestPasswordReset(user_service_pb2.RequestPasswordResetRequest(email=unique_email("reset")))
    assert disabled.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(EmailTokenInvalid) as invalid:
        client.users.VerifyEmail(user_service_pb2.VerifyEmailRequest(token="kpm_not-a-token"))
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_rate_limited_carries_the_retry_delay(client: KeyportClient, account: Account) -> None:
    # Default limit: 10 failed attempts per account per window.
    for _ in range(10):
        with pytest.raises(InvalidCredentials):
            _sign_in(client, account.email, "wrong password, again")
    with pytest.raises(RateLimited) as excinfo:
        _sign_in(client, account.email, "wrong password, again")
    err = excinfo.value
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.retry_delay is not None
    assert datetime.timedelta(0) < err.retry_delay <= datetime.timedelta(minutes=15)
    # Even the right password waits for the window.
    with pytest.raises(RateLimited):
        _sign_in(client, account.email, PASSWORD)


def test_futures_and_with_call_raise_them_too(client: KeyportClient, account: Account) -> None:
    request = session_service_pb2.SignInRequest(email=account.email, password="wrong password")
    future = client.sessions.SignIn.future(request)
    assert isinstance(future.exception(timeout=10), InvalidCredentials)
    with pytest.raises(InvalidCredentials):
        future.result()
    with pytest.raises(InvalidCredentials):
        client.sessions.SignIn.with_call(request)
    response, call = client.sessions.SignIn.with_call(
        session_service_pb2.SignInRequest(email=account.email, password=PASSWORD)
    )
    assert response.session.token and call.code() == grpc.StatusCode.OK


def test_errors_that_never_reached_keyport_stay_plain_rpc_errors() -> None:
    with KeyportClient("127.0.0.1:1", timeout=5) as nowhere:
        with pytest.raises(grpc.RpcError) as excinfo:
            nowhere.sessions.GetSession(session_service_pb2.GetSessionRequest(token="kp_x.y"))
    assert not isinstance(excinfo.value, KeyportError)
    assert KeyportError.from_rpc_error(excinfo.value) is None


def test_from_rpc_error_picks_the_class_and_keeps_unknown_reasons() -> None:
    known = KeyportError.from_rpc_error(
        _FakeError(grpc.StatusCode.FAILED_PRECONDITION, "only way in", [_info("LAST_SIGN_IN_METHOD")])
    )
    assert type(known) is keyport.LastSignInMethod
    newer = KeyportError.from_rpc_error(
        _FakeError(grpc.StatusCode.FAILED_PRECONDITION, "new", [_info("A_REASON_FROM_A_NEWER_SERVER")])
    )
    assert type(newer) is KeyportError and newer.reason == "A_REASON_FROM_A_NEWER_SERVER"
    assert KeyportError.from_rpc_error(newer) is newer
    foreign = _FakeError(grpc.StatusCode.UNAVAILABLE, "proxy", [_info("UPSTREAM_DOWN", domain="proxy.example")])
    assert KeyportError.from_rpc_error(foreign) is None


def test_every_reason_of_the_proto_has_a_member_and_a_class() -> None:
    # The one list: the proto's ErrorReason, sent without its prefix.
    proto = {
        name.removeprefix("ERROR_REASON_")
        for name in errors_pb2.ErrorReason.keys()
        if name != "ERROR_REASON_UNSPECIFIED"
    }
    assert len(proto) >= 50
    # The newest ones among them.
    assert {
        "ORGANIZATION_NOT_FOUND",
        "MEMBER_NOT_FOUND",
        "INVITATION_INVALID",
        "LAST_OWNER",
        "SLUG_TAKEN",
        "API_KEY_NOT_FOUND",
        "API_KEY_EXPIRED",
        "API_KEY_NOT_ACCEPTED",
        "ACCESS_TOKENS_DISABLED",
        "AUDIENCE_NOT_ALLOWED",
    } <= proto
    assert {reason.value for reason in Reason} == proto
    classes = {cls.REASON: cls for cls in KeyportError.__subclasses__()}
    assert set(classes) == set(Reason)
    assert len(classes) == len(proto), "one class per reason, no two for one"
    for reason, cls in classes.items():
        assert reason is not None
        assert cls.__name__ in keyport.__all__ and getattr(keyport, cls.__name__) is cls, reason
        assert cls.__name__ in keyport.errors.__all__ and getattr(keyport.errors, cls.__name__) is cls, reason
        # And each is what a failed call with that reason raises, sync or grpc.aio.
        for failed in (
            _FakeError(grpc.StatusCode.FAILED_PRECONDITION, "failed", [_info(reason.value)]),
            _aio_error(grpc.StatusCode.FAILED_PRECONDITION, "failed", [_info(reason.value)]),
        ):
            raised = KeyportError.from_rpc_error(failed)
            assert type(raised) is cls and raised.reason == reason, (reason, type(failed))


def _aio_error(code: grpc.StatusCode, message: str, details: list) -> grpc.aio.AioRpcError:  # type: ignore[type-arg]
    """A failed call as grpc.aio raises it."""
    status = status_pb2.Status(code=code.value[0], message=message)
    for detail in details:
        status.details.add().Pack(detail)
    trailers = grpc.aio.Metadata(("grpc-status-details-bin", status.SerializeToString()))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, message)


def test_retry_delay_reads_retry_info_of_sync_and_aio_errors() -> None:
    retry = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=1, nanos=500_000_000))
    for make in (_FakeError, _aio_error):
        limited = make(grpc.StatusCode.RESOURCE_EXHAUSTED, "slow down", [_info("RATE_LIMITED"), retry])
        assert retry_delay(limited) == datetime.timedelta(seconds=1.5)
        raised = KeyportError.from_rpc_error(limited)
        assert isinstance(raised, keyport.errors.RateLimited)
        assert raised.retry_delay == retry_delay(raised) == datetime.timedelta(seconds=1.5)
        assert retry_delay(make(grpc.StatusCode.UNAUTHENTICATED, "no", [_info("INVALID_CREDENTIALS")])) is None
        # A RetryInfo without a delay is none.
        empty = make(grpc.StatusCode.RESOURCE_EXHAUSTED, "x", [_info("RATE_LIMITED"), error_details_pb2.RetryInfo()])
        assert retry_delay(empty) is None

    class Bare(grpc.RpcError):
        pass

    assert retry_delay(Bare()) is None


def test_the_server_sets_retry_info_on_rate_limited(rate_limited_server: KeyportServer) -> None:
    with KeyportClient(rate_limited_server.address, timeout=10) as client:
        email = unique_email("limited")
        client.users.SignUp(user_service_pb2.SignUpRequest(email=email, password=PASSWORD))
        # SIGN_IN_LIMITS_ENV: two failed attempts, then each further one waits.
        for _ in range(2):
            with pytest.raises(InvalidCredentials) as wrong:
                _sign_in(client, email, "wrong password")
            assert retry_delay(wrong.value) is None
        try:
            _sign_in(client, email, "wrong password")
        except keyport.errors.RateLimited as err:
            assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            delay = retry_delay(err)
            assert delay is not None and datetime.timedelta(0) < delay <= datetime.timedelta(minutes=15)
            assert err.retry_delay == delay
            # What grpc raised has it too.
            assert retry_delay(err.rpc_error) == delay
        else:
            pytest.fail("the third failed sign-in was not RATE_LIMITED")


def test_the_default_deadline_is_two_seconds_as_in_the_rust_client(keyport_server: KeyportServer) -> None:
    request = session_service_pb2.SignInRequest(email=unique_email(), password=PASSWORD)
    assert DEFAULT_TIMEOUT == 2.0
    with KeyportClient(keyport_server.address) as default:
        assert default.timeout == DEFAULT_TIMEOUT
        future = default.sessions.SignIn.future(request)
        remaining = future.time_remaining()
        assert remaining is not None and 1 < remaining <= 2
        assert isinstance(future.exception(timeout=10), InvalidCredentials)
        # A call's own timeout wins.
        remaining = default.sessions.SignIn.future(request, timeout=7).time_remaining()
        assert remaining is not None and 6 < remaining <= 7
    with KeyportClient(keyport_server.address, timeout=5) as longer:
        remaining = longer.sessions.SignIn.future(request).time_remaining()
        assert remaining is not None and 4 < remaining <= 5
    with KeyportClient(keyport_server.address, timeout=None) as unbounded:
        assert unbounded.sessions.SignIn.future(request).time_remaining() is None
