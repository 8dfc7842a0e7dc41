"""The SDK against a live keyport server: sign-up, sign-in, sessions, errors."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Iterator

import grpc
import pytest

from keyport import (
    KeyportClient,
    bearer_metadata,
    error_info,
    error_reason,
    field_violations,
    forwarded_client_metadata,
)
from keyport.v1 import session_pb2, session_service_pb2, session_service_pb2_grpc, user_service_pb2

from .support import PASSWORD, Account, KeyportServer, failed_call, unique_email


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _sign_in(client: KeyportClient, email: str, password: str = PASSWORD) -> session_service_pb2.SignInResponse:
    return client.sessions.SignIn(session_service_pb2.SignInRequest(email=email, password=password))


def _assert_fresh_session(session: session_pb2.Session, user_id: str) -> None:
    """A session created a moment ago by this client, with the default lifetimes."""
    now = _now()
    created = session.created_at.ToDatetime(timezone.utc)
    assert now - timedelta(minutes=1) <= created <= now + timedelta(seconds=5)
    # Default sliding expiry: 7 days; the absolute lifetime caps it.
    expires = session.expires_at.ToDatetime(timezone.utc)
    assert expires - created == pytest.approx(timedelta(days=7), abs=timedelta(seconds=5))
    assert session.absolute_expires_at.ToDatetime(timezone.utc) >= expires
    assert session.user_id == user_id
    assert session.id
    assert session.ip_address == "127.0.0.1"


def test_sign_up_creates_user_and_session(client: KeyportClient) -> None:
    email = unique_email("signup")
    response = client.users.SignUp(user_service_pb2.SignUpRequest(email=email, password=PASSWORD, name="Grace Hopper"))

    user = response.user
    assert uuid.UUID(user.id).version == 7
    assert user.email == email
    assert user.name == "Grace Hopper"
    assert user.email_verified is False
    assert list(user.roles) == ["user"]
    assert user.created_at.ToDatetime(timezone.utc) <= _now()
    assert user.updated_at.ToDatetime(timezone.utc) >= user.created_at.ToDatetime(timezone.utc)

    grant = response.session
    assert grant.token.startswith("kp_")
    assert grant.user == user
    _assert_fresh_session(grant.session, user.id)
    # The token is <prefix><id>.<secret>; the public session id never reveals the secret.
    assert grant.token.split(".")[1] not in grant.session.id


def test_sign_up_normalises_the_email(client: KeyportClient) -> None:
    local = f"Mixed-{uuid.uuid4().hex[:8]}"
    response = client.users.SignUp(
        user_service_pb2.SignUpRequest(email=f"  {local}@Example.COM ", password=PASSWORD)
    )
    # Trimmed and lower-cased as a whole (keyport-core's email rules).
    assert response.user.email == f"{local.lower()}@example.com"
    assert response.user.name == ""
    signed_in = _sign_in(client, f"{local.upper()}@EXAMPLE.com")
    assert signed_in.session.user.id == response.user.id


def test_sign_in_returns_a_new_session(client: KeyportClient, account: Account) -> None:
    response = _sign_in(client, account.email)

    assert response.WhichOneof("outcome") == "session"
    grant = response.session
    assert grant.token.startswith("kp_")
    assert grant.token != account.token
    assert grant.user.id == account.response.user.id
    assert grant.user.email == account.email
    assert grant.session.id != account.response.session.session.id
    _assert_fresh_session(grant.session, account.response.user.id)


def test_get_session_validates_a_token(client: KeyportClient, account: Account) -> None:
    response = client.sessions.GetSession(session_service_pb2.GetSessionRequest(token=account.token))

    signed_up = account.response.session.session
    assert response.session.id == signed_up.id
    assert response.session.user_id == account.response.user.id
    assert response.session.created_at == signed_up.created_at
    assert response.user.id == account.response.user.id
    assert response.user.email == account.email
    assert response.user.name == "Ada"
    # Just created: well within the refresh interval, so nothing was pushed forward.
    assert response.refreshed is False


def test_get_current_user_reads_the_bearer_token(client: KeyportClient, account: Account) -> None:
    response = client.users.GetCurrentUser(
        user_service_pb2.GetCurrentUserRequest(), metadata=bearer_metadata(account.token)
    )
    assert response.user == account.response.user


def test_list_sessions_newest_first_with_the_current_one_marked(client: KeyportClient, account: Account) -> None:
    second = _sign_in(client, account.email).session
    third = _sign_in(client, account.email).session

    response = client.sessions.ListSessions(
        session_service_pb2.ListSessionsRequest(), metadata=bearer_metadata(second.token)
    )

    ids = [session.id for session in response.sessions]
    assert ids == [third.session.id, second.session.id, account.response.session.session.id]
    created = [session.created_at.ToDatetime(timezone.utc) for session in response.sessions]
    assert created == sorted(created, reverse=True)
    assert [session.current for session in response.sessions] == [False, True, False]
    assert {session.user_id for session in response.sessions} == {account.response.user.id}


def test_list_sessions_shows_only_the_callers_sessions(client: KeyportClient, account: Account) -> None:
    other = client.users.SignUp(user_service_pb2.SignUpRequest(email=unique_email("other"), password=PASSWORD))
    response = client.sessions.ListSessions(
        session_service_pb2.ListSessionsRequest(), metadata=bearer_metadata(account.token)
    )
    assert [session.id for session in response.sessions] == [account.response.session.session.id]
    assert other.session.session.id not in {session.id for session in response.sessions}


def test_revoke_session_ends_it_at_once(client: KeyportClient, account: Account) -> None:
    victim = _sign_in(client, account.email).session
    auth = bearer_metadata(account.token)

    client.sessions.RevokeSession(session_service_pb2.RevokeSessionRequest(session_id=victim.session.id), metadata=auth)

    with pytest.raises(grpc.RpcError) as excinfo:
        client.sessions.GetSession(session_service_pb2.GetSessionRequest(token=victim.token))
    assert failed_call(excinfo).code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(excinfo.value) == "UNAUTHENTICATED"

    listed = client.sessions.ListSessions(session_service_pb2.ListSessionsRequest(), metadata=auth)
    assert [session.id for session in listed.sessions] == [account.response.session.session.id]

    # Revoking it again: it no longer exists.
    with pytest.raises(grpc.RpcError) as again:
        client.sessions.RevokeSession(
            session_service_pb2.RevokeSessionRequest(session_id=victim.session.id), metadata=auth
        )
    assert failed_call(again).code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(again.value) == "SESSION_NOT_FOUND"


def test_revoke_session_of_another_user_is_not_found(client: KeyportClient, account: Account) -> None:
    other = client.users.SignUp(user_service_pb2.SignUpRequest(email=unique_email("other"), password=PASSWORD))

    with pytest.raises(grpc.RpcError) as excinfo:
        client.sessions.RevokeSession(
            session_service_pb2.RevokeSessionRequest(session_id=other.session.session.id),
            metadata=bearer_metadata(account.token),
        )
    assert failed_call(excinfo).code() == grpc.StatusCode.NOT_FOUND
    assert error_reason(excinfo.value) == "SESSION_NOT_FOUND"
    # The other user's session is untouched.
    still = client.sessions.GetSession(session_service_pb2.GetSessionRequest(token=other.session.token))
    assert still.session.id == other.session.session.id


def test_sign_out_ends_the_calling_session_only(client: KeyportClient, account: Account) -> None:
    other = _sign_in(client, account.email).session

    client.sessions.SignOut(session_service_pb2.SignOutRequest(), metadata=bearer_metadata(account.token))

    with pytest.raises(grpc.RpcError) as excinfo:
        client.sessions.ListSessions(
            session_service_pb2.ListSessionsRequest(), metadata=bearer_metadata(account.token)
        )
    assert failed_call(excinfo).code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(excinfo.value) == "UNAUTHENTICATED"

    remaining = client.sessions.ListSessions(
        session_service_pb2.ListSessionsRequest(), metadata=bearer_metadata(other.token)
    )
    assert [session.id for session in remaining.sessions] == [other.session.id]


def test_wrong_password_is_invalid_credentials(client: KeyportClient, account: Account) -> None:
    with pytest.raises(grpc.RpcError) as excinfo:
        _sign_in(client, account.email, "not the password at all")
    assert failed_call(excinfo).code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(excinfo.value) == "INVALID_CREDENTIALS"
    info = error_info(excinfo.value)
    assert info is not None
    assert info.domain == "keyport.dev"


def test_unknown_email_gets_the_same_answer_as_a_wrong_password(client: KeyportClient) -> None:
    with pytest.raises(grpc.RpcError) as excinfo:
        _sign_in(client, unique_email("nobody"))
    assert failed_call(excinfo).code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(excinfo.value) == "INVALID_CREDENTIALS"


@pytest.mark.parametrize("token", ["not-a-token", "kp_", "kp_abc.def", "Bearer"])
def test_malformed_token_is_unauthenticated(client: KeyportClient, token: str) -> None:
    with pytest.raises(grpc.RpcError) as in_body:
        client.sessions.GetSession(session_service_pb2.GetSessionRequest(token=token))
    assert failed_call(in_body).code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(in_body.value) == "UNAUTHENTICATED"

    with pytest.raises(grpc.RpcError) as in_metadata:
        client.users.GetCurrentUser(user_service_pb2.GetCurrentUserRequest(), metadata=bearer_metadata(token))
    assert failed_call(in_metadata).code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(in_metadata.value) == "UNAUTHENTICATED"


def test_missing_token_is_unauthenticated(client: KeyportClient) -> None:
    with pytest.raises(grpc.RpcError) as excinfo:
        client.sessions.ListSessions(session_service_pb2.ListSessionsRequest())
    assert failed_call(excinfo).code() == grpc.StatusCode.UNAUTHENTICATED
    assert error_reason(excinfo.value) == "UNAUTHENTICATED"


def test_tampered_secret_is_unauthenticated(client: KeyportClient, account: Account) -> None:
    session_part, secret = account.token.split(".", 1)
    tampered = f"{session_part}.{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"
    with pytest.raises(grpc.RpcError) as excinfo:
        client.sessions.GetSession(session_service_pb2.GetSessionRequest(token=tampered))
    assert error_reason(excinfo.value) == "UNAUTHENTICATED"
    # The real token still works.
    client.sessions.GetSession(session_service_pb2.GetSessionRequest(token=account.token))


def test_email_taken(client: KeyportClient, account: Account) -> None:
    with pytest.raises(grpc.RpcError) as excinfo:
        client.users.SignUp(user_service_pb2.SignUpRequest(email=account.email, password=PASSWORD))
    assert failed_call(excinfo).code() == grpc.StatusCode.ALREADY_EXISTS
    assert error_reason(excinfo.value) == "EMAIL_TAKEN"


def test_weak_password(client: KeyportClient) -> None:
    email = unique_email("weak")
    with pytest.raises(grpc.RpcError) as excinfo:
        client.users.SignUp(user_service_pb2.SignUpRequest(email=email, password="short"))
    assert failed_call(excinfo).code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(excinfo.value) == "WEAK_PASSWORD"
    # Nothing was created.
    with pytest.raises(grpc.RpcError) as sign_in:
        _sign_in(client, email, "short")
    assert error_reason(sign_in.value) == "INVALID_CREDENTIALS"


def test_invalid_email_names_the_field(client: KeyportClient) -> None:
    with pytest.raises(grpc.RpcError) as excinfo:
        client.users.SignUp(user_service_pb2.SignUpRequest(email="", password=PASSWORD))
    assert failed_call(excinfo).code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_reason(excinfo.value) == "INVALID_ARGUMENT"
    fields = [name for name, _description in field_violations(excinfo.value)]
    assert fields == ["email"]


def test_repeated_failures_are_rate_limited(client: KeyportClient, account: Account) -> None:
    reasons = []
    for _ in range(12):
        with pytest.raises(grpc.RpcError) as excinfo:
            _sign_in(client, account.email, "wrong password, again")
        reasons.append(error_reason(excinfo.value))
    # Default limit: 10 failed attempts per account per window.
    assert reasons[:10] == ["INVALID_CREDENTIALS"] * 10
    assert reasons[10:] == ["RATE_LIMITED"] * 2
    assert failed_call(excinfo).code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_forwarded_client_metadata_is_recorded_from_a_trusted_peer(client: KeyportClient, account: Account) -> None:
    # Loopback is in the default server.trusted_proxies.
    response = client.sessions.SignIn(
        session_service_pb2.SignInRequest(email=account.email, password=PASSWORD),
        metadata=forwarded_client_metadata(ip_address="203.0.113.7", user_agent="Firefox/140"),
    )
    session = response.session.session
    assert session.ip_address == "203.0.113.7"
    assert session.user_agent == "Firefox/140"
    listed = client.sessions.ListSessions(
        session_service_pb2.ListSessionsRequest(), metadata=bearer_metadata(response.session.token)
    )
    assert (listed.sessions[0].ip_address, listed.sessions[0].user_agent) == ("203.0.113.7", "Firefox/140")


@pytest.fixture
def silent_server() -> Iterator[str]:
    """A loopback port that accepts TCP connections and never answers."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        host, port = listener.getsockname()
        yield f"{host}:{port}"


def test_default_timeout_applies_and_a_per_call_timeout_wins(silent_server: str, keyport_server: KeyportServer) -> None:
    with KeyportClient(silent_server, timeout=0.3) as hurried:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as excinfo:
            hurried.sessions.GetSession(session_service_pb2.GetSessionRequest(token="kp_x.y"))
        elapsed = time.monotonic() - started
        assert failed_call(excinfo).code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert error_reason(excinfo.value) is None
        assert 0.25 <= elapsed < 5

        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as longer:
            hurried.sessions.GetSession(session_service_pb2.GetSessionRequest(token="kp_x.y"), timeout=1.0)
        assert failed_call(longer).code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert 0.95 <= time.monotonic() - started < 5

    # Against the live server the same default leaves ample time.
    with KeyportClient(keyport_server.address, timeout=5) as patient:
        with pytest.raises(grpc.RpcError) as answered:
            patient.sessions.GetSession(session_service_pb2.GetSessionRequest(token="kp_x.y"))
        assert error_reason(answered.value) == "UNAUTHENTICATED"


def test_closed_client_refuses_calls(keyport_server: KeyportServer) -> None:
    with KeyportClient(keyport_server.address) as short_lived:
        with pytest.raises(grpc.RpcError) as excinfo:
            short_lived.sessions.GetSession(session_service_pb2.GetSessionRequest(token="kp_x.y"), timeout=5)
        assert error_reason(excinfo.value) == "UNAUTHENTICATED"
    short_lived.close()  # closing twice is harmless
    with pytest.raises(ValueError, match="closed channel"):
        short_lived.sessions.GetSession(session_service_pb2.GetSessionRequest(token="kp_x.y"), timeout=5)


def test_unreachable_server_has_no_reason() -> None:
    # Port 1 on loopback: nothing listens there, the call fails before Keyport.
    with KeyportClient("127.0.0.1:1", timeout=5) as nowhere:
        started = time.monotonic()
        with pytest.raises(grpc.RpcError) as excinfo:
            nowhere.sessions.GetSession(session_service_pb2.GetSessionRequest(token="kp_x.y"))
    assert failed_call(excinfo).code() == grpc.StatusCode.UNAVAILABLE
    assert error_reason(excinfo.value) is None
    assert error_info(excinfo.value, domain=None) is None
    assert field_violations(excinfo.value) == []
    assert time.monotonic() - started < 5


def test_watch_session_events_streams_revocations_without_a_default_deadline(
    keyport_server: KeyportServer, account: Account
) -> None:
    # A short default deadline: it must not cut the stream (unary calls only).
    # The stream's own 30 s deadline only bounds the test if the server hangs.
    with KeyportClient(keyport_server.address, timeout=0.5) as watcher:
        stream = watcher.sessions.WatchSessionEvents(session_service_pb2.WatchSessionEventsRequest(), timeout=30)
        try:
            first = next(stream)
            assert first.WhichOneof("event") == "ready"
            time.sleep(1.0)  # past the default deadline

            victim = _sign_in(watcher, account.email).session
            watcher.sessions.RevokeSession(
                session_service_pb2.RevokeSessionRequest(session_id=victim.session.id),
                metadata=bearer_metadata(account.token),
            )
            event = next(stream)
            assert event.WhichOneof("event") == "session_revoked"
            assert event.session_revoked.session_id == victim.session.id
            assert event.session_revoked.user_id == account.response.user.id
        finally:
            stream.cancel()


def test_error_helpers_read_grpc_aio_errors(keyport_server: KeyportServer, account: Account) -> None:
    async def attempt() -> None:
        async with grpc.aio.insecure_channel(keyport_server.address) as channel:
            sessions = session_service_pb2_grpc.SessionServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as excinfo:
                await sessions.SignIn(
                    session_service_pb2.SignInRequest(email=account.email, password="wrong password"), timeout=10
                )
            assert excinfo.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert error_reason(excinfo.value) == "INVALID_CREDENTIALS"
            listed = await sessions.ListSessions(
                session_service_pb2.ListSessionsRequest(), metadata=bearer_metadata(account.token), timeout=10
            )
            assert [session.id for session in listed.sessions] == [account.response.session.session.id]

    asyncio.run(attempt())
