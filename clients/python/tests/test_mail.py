"""The account-lifecycle calls through a real mailbox (Mailpit), with the SDK.

Each test signs up addresses of its own: a recipient gets at most 3 link
mails at once (``mail.per_recipient_burst``), and the server is shared.
"""

from __future__ import annotations

import asyncio
import http.cookies
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Union

import grpc
import pytest

from keyport import (
    EMAIL_SIGN_IN_COOKIE_NAME,
    EmailTokenInvalid,
    InvalidArgument,
    InvalidCredentials,
    KeyportClient,
    KeyportError,
    MailDisabled,
    Reason,
    Unauthenticated,
    WeakPassword,
    bearer_metadata,
    email_sign_in_binding,
    email_sign_in_cookie,
    error_reason,
    token_from_link,
)
from keyport.v1 import session_service_pb2, session_service_pb2_grpc, user_service_pb2, user_service_pb2_grpc

from .conftest import running_keyport
from .mailpit import PUBLIC_BASE_URL, Delivered, Mailpit
from .support import PASSWORD, Account, KeyportServer, unique_email

#: A password that passes the policy and is not the sign-up one.
NEW_PASSWORD = "a fresh passphrase for today"
#: The pages of the links (the default ``mail.*_path`` settings).
RESET_PATH = "/reset-password"
VERIFY_PATH = "/verify-email"
CHANGE_EMAIL_PATH = "/change-email"
SIGN_IN_PATH = "/sign-in/email"
#: A well-formed token that Keyport never issued: kpm_ and 43 base64url characters.
UNKNOWN_TOKEN = "kpm_" + "A" * 43


def _sign_up(client: KeyportClient, prefix: str) -> Account:
    email = unique_email(prefix)
    response = client.users.SignUp(user_service_pb2.SignUpRequest(email=email, password=PASSWORD, name="Ada"))
    return Account(email=email, password=PASSWORD, response=response)


def _sign_in(client: KeyportClient, email: str, password: str = PASSWORD) -> str:
    return client.sessions.SignIn(session_service_pb2.SignInRequest(email=email, password=password)).session.token


def _current_user_verified(client: KeyportClient, token: str) -> bool:
    user = client.users.GetCurrentUser(user_service_pb2.GetCurrentUserRequest(), metadata=bearer_metadata(token)).user
    return user.email_verified


def _token(mail: Delivered, path: str) -> str:
    """The token of the mail's link to ``path``, read as a web app's page would: from the URL."""
    link = mail.link(path)
    assert link is not None, f"no link to {path} in:\n{mail.text}"
    assert link.startswith(f"{PUBLIC_BASE_URL}{path}?token=kpm_"), link
    token = token_from_link(link)
    assert token is not None and token.startswith("kpm_") and len(token) == 47, link
    return token


def _code(mail: Delivered) -> str:
    code = mail.code()
    assert code is not None and len(code) == 6 and code.isdigit(), mail.text
    return code


def _reset(client: KeyportClient, token: str, password: str = NEW_PASSWORD) -> user_service_pb2.ResetPasswordResponse:
    return client.users.ResetPassword(user_service_pb2.ResetPasswordRequest(token=token, new_password=password))


def _reset_token(client: KeyportClient, mailpit: Mailpit, email: str) -> str:
    client.users.RequestPasswordReset(user_service_pb2.RequestPasswordResetRequest(email=email))
    return _token(mailpit.wait_for(email)[0], RESET_PATH)


def _assert_token_invalid(err: KeyportError) -> None:
    assert isinstance(err, EmailTokenInvalid)
    assert err.reason == Reason.EMAIL_TOKEN_INVALID
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


# Password reset.


def test_password_reset_through_the_mailbox(mail_client: KeyportClient, mailpit: Mailpit) -> None:
    account = _sign_up(mail_client, "reset")
    phone = _sign_in(mail_client, account.email)

    # Headers a proxy or an attacker may set do not shape the link.
    mail_client.users.RequestPasswordReset(
        user_service_pb2.RequestPasswordResetRequest(email=account.email.upper()),
        metadata=(("x-forwarded-host", "evil.test"),),
    )
    mail = mailpit.wait_for(account.email)[0]
    assert "Reset" in mail.subject
    assert mail.sender == "no-reply@example.test"
    assert "evil.test" not in mail.text and "evil.test" not in mail.html
    token = _token(mail, RESET_PATH)

    # A refused password leaves the link usable.
    with pytest.raises(WeakPassword):
        _reset(mail_client, token, "short")
    response = _reset(mail_client, token)
    assert response.revoked_sessions == 2, "a reset ends every session"

    with pytest.raises(InvalidCredentials):
        _sign_in(mail_client, account.email, PASSWORD)
    for old in (account.token, phone):
        with pytest.raises(Unauthenticated):
            mail_client.sessions.GetSession(session_service_pb2.GetSessionRequest(token=old))
    fresh = _sign_in(mail_client, account.email, NEW_PASSWORD)
    assert _current_user_verified(mail_client, fresh), "the link proved the mailbox"

    # The owner hears of it; the link is spent.
    notice = mailpit.wait_for(account.email, 2)[0]
    assert "password was changed" in notice.subject
    with pytest.raises(EmailTokenInvalid) as replay:
        _reset(mail_client, token, "yet another passphrase")
    _assert_token_invalid(replay.value)
    _sign_in(mail_client, account.email, NEW_PASSWORD)


def test_password_reset_answers_an_unknown_address_alike_and_mails_nothing(
    mail_client: KeyportClient, mailpit: Mailpit
) -> None:
    account = _sign_up(mail_client, "known")
    nobody = unique_email("nobody")

    unknown = mail_client.users.RequestPasswordReset.with_call(
        user_service_pb2.RequestPasswordResetRequest(email=nobody)
    )
    known = mail_client.users.RequestPasswordReset.with_call(
        user_service_pb2.RequestPasswordResetRequest(email=account.email)
    )

    assert known[0] == unknown[0] == user_service_pb2.RequestPasswordResetResponse()
    assert known[1].code() == unknown[1].code() == grpc.StatusCode.OK
    mailpit.wait_for(account.email)
    mailpit.assert_no_mail_to(nobody)


def test_of_parallel_resets_with_one_link_exactly_one_succeeds(mail_client: KeyportClient, mailpit: Mailpit) -> None:
    callers = 8
    account = _sign_up(mail_client, "race")
    token = _reset_token(mail_client, mailpit, account.email)
    barrier = threading.Barrier(callers)

    def attempt(n: int) -> Union[int, BaseException]:
        barrier.wait(timeout=30)
        try:
            _reset(mail_client, token, f"parallel passphrase {n}")
        except grpc.RpcError as err:
            return err
        return n

    with ThreadPoolExecutor(max_workers=callers) as pool:
        outcomes = list(pool.map(attempt, range(callers)))

    winners = [outcome for outcome in outcomes if isinstance(outcome, int)]
    losers = [outcome for outcome in outcomes if not isinstance(outcome, int)]
    assert len(winners) == 1, outcomes
    assert all(isinstance(err, EmailTokenInvalid) for err in losers), losers
    _sign_in(mail_client, account.email, f"parallel passphrase {winners[0]}")
    loser = next(n for n in range(callers) if n != winners[0])
    with pytest.raises(InvalidCredentials):
        _sign_in(mail_client, account.email, f"parallel passphrase {loser}")


# Email verification.


def test_verify_email_with_the_link(mail_client: KeyportClient, mailpit: Mailpit) -> None:
    account = _sign_up(mail_client, "verify")
    assert account.response.user.email_verified is False
    auth = bearer_metadata(account.token)

    mail_client.users.RequestEmailVerification(user_service_pb2.RequestEmailVerificationRequest(), metadata=auth)
    mail = mailpit.wait_for(account.email)[0]
    assert "Verify" in mail.subject
    token = _token(mail, VERIFY_PATH)

    # A verification link is no reset link.
    with pytest.raises(EmailTokenInvalid):
        _reset(mail_client, token)
    verified = mail_client.users.VerifyEmail(user_service_pb2.VerifyEmailRequest(token=token))
    assert verified.user.email_verified is True
    assert verified.user.id == account.response.user.id
    assert _current_user_verified(mail_client, account.token), "the session sees the change at once"
    with pytest.raises(EmailTokenInvalid) as replay:
        mail_client.users.VerifyEmail(user_service_pb2.VerifyEmailRequest(token=token))
    _assert_token_invalid(replay.value)

    # Verified already: nothing more is sent.
    mail_client.users.RequestEmailVerification(user_service_pb2.RequestEmailVerificationRequest(), metadata=auth)
    time.sleep(0.5)
    assert len(mailpit.messages_to(account.email)) == 1


def test_verify_email_with_the_code_in_the_session_that_asked(mail_client: KeyportClient, mailpit: Mailpit) -> None:
    account = _sign_up(mail_client, "code")
    other = _sign_in(mail_client, account.email)
    auth = bearer_metadata(account.token)

    mail_client.users.RequestEmailVerification(user_service_pb2.RequestEmailVerificationRequest(), metadata=auth)
    code = _code(mailpit.wait_for(account.email)[0])

    def verify(code: str, token: Optional[str]) -> user_service_pb2.VerifyEmailResponse:
        metadata = bearer_metadata(token) if token else None
        return mail_client.users.VerifyEmail(user_service_pb2.VerifyEmailRequest(code=code), metadata=metadata)

    # Not without a session, not in another session, not a wrong code.
    with pytest.raises(Unauthenticated):
        verify(code, None)
    with pytest.raises(EmailTokenInvalid):
        verify(code, other)
    with pytest.raises(EmailTokenInvalid):
        verify("000001" if code == "000000" else "000000", account.token)

    assert verify(code, account.token).user.email_verified is True
    assert _current_user_verified(mail_client, other)
    with pytest.raises(EmailTokenInvalid):
        verify(code, account.token)


# Email sign-in.


def _start(client: KeyportClient, email: str) -> session_service_pb2.StartEmailSignInResponse:
    return client.sessions.StartEmailSignIn(session_service_pb2.StartEmailSignInRequest(email=email))


def _browser_cookie_header(set_cookie: str) -> str:
    """What a browser sends back after ``Set-Cookie: <set_cookie>``: ``name=value``."""
    jar = http.cookies.SimpleCookie()
    jar.load(set_cookie)
    return "; ".join(f"{name}={morsel.value}" for name, morsel in jar.items())


def test_email_sign_in_with_the_code(mail_client: KeyportClient, mailpit: Mailpit) -> None:
    account = _sign_up(mail_client, "signin")

    start = _start(mail_client, account.email)
    assert len(start.binding) >= 43
    expires = start.expires_at.ToDatetime(timezone.utc)
    assert timedelta(minutes=9) < expires - datetime.now(timezone.utc) <= timedelta(minutes=10, seconds=5)
    # The web app keeps the binding in a cookie of the browser that asked.
    cookie = email_sign_in_cookie(start)
    browser = _browser_cookie_header(cookie.header())
    binding = email_sign_in_binding(browser)
    assert binding == start.binding

    mail = mailpit.wait_for(account.email)[0]
    code = _code(mail)
    assert mail.subject.endswith(code)

    def finish(binding: str, code: str) -> session_service_pb2.FinishEmailSignInResponse:
        return mail_client.sessions.FinishEmailSignIn(
            session_service_pb2.FinishEmailSignInRequest(binding=binding, code=code)
        )

    with pytest.raises(EmailTokenInvalid) as garbage:
        finish("garbage", code)
    _assert_token_invalid(garbage.value)

    signed_in = finish(binding, f"{code[:3]} {code[3:]}")  # spaces, as typed, are ignored
    assert signed_in.new_user is False
    assert signed_in.user.id == account.response.user.id
    session = mail_client.sessions.GetSession(session_service_pb2.GetSessionRequest(token=signed_in.session.token))
    assert session.user.email == account.email
    assert session.user.email_verified is True, "the mailbox is proven"

    with pytest.raises(EmailTokenInvalid) as replay:
        finish(binding, code)
    _assert_token_invalid(replay.value)


def test_email_sign_in_with_the_link_only_in_the_browser_that_asked(
    mail_client: KeyportClient, mailpit: Mailpit
) -> None:
    account = _sign_up(mail_client, "link")
    start = _start(mail_client, account.email)
    link = mailpit.wait_for(account.email)[0].link(SIGN_IN_PATH)
    assert link is not None
    token = token_from_link(link)
    assert token is not None

    def finish(binding: Optional[str]) -> session_service_pb2.FinishEmailSignInResponse:
        return mail_client.sessions.FinishEmailSignIn(
            session_service_pb2.FinishEmailSignInRequest(binding=binding, token=token)
        )

    # Another browser has no binding cookie: Keyport refuses the link there.
    elsewhere = email_sign_in_binding({"__Host-keyport_session": "kp_x.y"})
    assert elsewhere is None
    with pytest.raises(EmailTokenInvalid):
        finish(elsewhere)

    browser = {EMAIL_SIGN_IN_COOKIE_NAME: email_sign_in_cookie(start).value}
    signed_in = finish(email_sign_in_binding(browser))
    assert signed_in.session.user.id == account.response.user.id
    assert _current_user_verified(mail_client, signed_in.session.token)
    with pytest.raises(EmailTokenInvalid):
        finish(email_sign_in_binding(browser))


def test_email_sign_in_answers_an_unknown_address_alike_and_mails_nothing(
    mail_client: KeyportClient, mailpit: Mailpit
) -> None:
    account = _sign_up(mail_client, "known")
    nobody = unique_email("nobody")
    unknown = _start(mail_client, nobody)
    known = _start(mail_client, account.email)
    assert len(unknown.binding) == len(known.binding)
    assert unknown.binding != known.binding
    gap = known.expires_at.ToDatetime(timezone.utc) - unknown.expires_at.ToDatetime(timezone.utc)
    assert timedelta(0) <= gap < timedelta(seconds=5)
    mailpit.wait_for(account.email)
    mailpit.assert_no_mail_to(nobody)
    # Without the account, no code works (the one it would have had is unknown anyway).
    with pytest.raises(EmailTokenInvalid):
        mail_client.sessions.FinishEmailSignIn(
            session_service_pb2.FinishEmailSignInRequest(binding=unknown.binding, code="123456")
        )


def test_email_sign_in_through_grpc_aio(mail_server: KeyportServer, mailpit: Mailpit) -> None:
    """The SDK has no asyncio client; grpc.aio stubs work with its helpers."""
    email = unique_email("aio")

    async def flow() -> None:
        async with grpc.aio.insecure_channel(mail_server.address) as channel:
            users = user_service_pb2_grpc.UserServiceStub(channel)
            sessions = session_service_pb2_grpc.SessionServiceStub(channel)
            await users.SignUp(user_service_pb2.SignUpRequest(email=email, password=PASSWORD), timeout=10)
            start = await sessions.StartEmailSignIn(session_service_pb2.StartEmailSignInRequest(email=email), timeout=10)
            mails = await asyncio.get_running_loop().run_in_executor(None, mailpit.wait_for, email)
            token = _token(mails[0], SIGN_IN_PATH)
            request = session_service_pb2.FinishEmailSignInRequest(binding=start.binding, token=token)
            signed_in = await sessions.FinishEmailSignIn(request, timeout=10)
            current = await users.GetCurrentUser(
                user_service_pb2.GetCurrentUserRequest(), metadata=bearer_metadata(signed_in.session.token), timeout=10
            )
            assert current.user.email == email and current.user.email_verified
            with pytest.raises(grpc.aio.AioRpcError) as replay:
                await sessions.FinishEmailSignIn(request, timeout=10)
            assert error_reason(replay.value) == Reason.EMAIL_TOKEN_INVALID
            assert isinstance(KeyportError.from_rpc_error(replay.value), EmailTokenInvalid)

    asyncio.run(flow())


# Change of address.


def test_change_of_address_through_the_new_mailbox(mail_client: KeyportClient, mailpit: Mailpit) -> None:
    account = _sign_up(mail_client, "mover")
    taken = _sign_up(mail_client, "taken")
    phone = _sign_in(mail_client, account.email)
    new_email = unique_email("moved")
    auth = bearer_metadata(account.token)

    def request_change(new_email: str, password: str = PASSWORD) -> None:
        request = user_service_pb2.RequestEmailChangeRequest(new_email=new_email, password=password)
        mail_client.users.RequestEmailChange(request, metadata=auth)

    with pytest.raises(InvalidCredentials):
        request_change(new_email, "not the password")
    with pytest.raises(InvalidArgument) as same:
        request_change(account.email)
    assert [name for name, _ in same.value.field_violations] == ["new_email"]
    # Another account's address: the same answer, and no mail to it.
    request_change(taken.email)
    request_change(new_email)

    token = _token(mailpit.wait_for(new_email)[0], CHANGE_EMAIL_PATH)
    notice = mailpit.wait_for(account.email)[0]
    assert "being changed" in notice.subject
    mailpit.assert_no_mail_to(taken.email, settle=0)

    confirmed = mail_client.users.ConfirmEmailChange(
        user_service_pb2.ConfirmEmailChangeRequest(token=token, end_sessions=True)
    )
    assert confirmed.user.email == new_email
    assert confirmed.user.email_verified is True
    assert confirmed.revoked_sessions == 2
    for old in (account.token, phone):
        with pytest.raises(Unauthenticated):
            mail_client.sessions.GetSession(session_service_pb2.GetSessionRequest(token=old))
    with pytest.raises(InvalidCredentials):
        _sign_in(mail_client, account.email)
    _sign_in(mail_client, new_email)
    with pytest.raises(EmailTokenInvalid):
        mail_client.users.ConfirmEmailChange(user_service_pb2.ConfirmEmailChangeRequest(token=token))


# A first password, for an account made by email sign-in.


@pytest.fixture
def by_email_client(tmp_path: Path, mailpit: Mailpit) -> Iterator[KeyportClient]:
    """A client of a keyport with mail and ``sign_up.by_email``: email sign-in makes accounts."""
    env = {**mailpit.keyport_env(), "KEYPORT_SIGN_UP__BY_EMAIL": "true"}
    with running_keyport(tmp_path / "keyport-data", env) as server:
        with KeyportClient(server.address, timeout=10) as client:
            yield client


def test_first_password_for_an_account_made_by_email_sign_in(by_email_client: KeyportClient, mailpit: Mailpit) -> None:
    client = by_email_client
    email = unique_email("passwordless")
    start = _start(client, email)
    signed_in = client.sessions.FinishEmailSignIn(
        session_service_pb2.FinishEmailSignInRequest(binding=start.binding, code=_code(mailpit.wait_for(email)[0]))
    )
    assert signed_in.new_user is True
    assert signed_in.user.email_verified is True
    token = signed_in.session.token
    auth = bearer_metadata(token)
    with pytest.raises(InvalidCredentials):
        _sign_in(client, email, NEW_PASSWORD)

    client.users.RequestPasswordSetup(user_service_pb2.RequestPasswordSetupRequest(), metadata=auth)
    mail = mailpit.wait_for(email, 2)[0]
    code = _code(mail)
    assert mail.subject.endswith(code)

    def set_password(code: str, password: str = NEW_PASSWORD) -> None:
        request = user_service_pb2.SetPasswordRequest(code=code, new_password=password)
        client.users.SetPassword(request, metadata=auth)

    with pytest.raises(EmailTokenInvalid):
        set_password("000001" if code == "000000" else "000000")
    with pytest.raises(WeakPassword):
        set_password(code, "short")
    set_password(f"{code[:3]} {code[3:]}")

    _sign_in(client, email, NEW_PASSWORD)
    client.sessions.GetSession(session_service_pb2.GetSessionRequest(token=token))  # other sessions stay
    assert "password was changed" in mailpit.wait_for(email, 3)[0].subject
    # With a password, the account changes it with ChangePassword instead.
    with pytest.raises(InvalidArgument):
        client.users.RequestPasswordSetup(user_service_pb2.RequestPasswordSetupRequest(), metadata=auth)
    with pytest.raises(InvalidArgument):
        set_password(code)


# Bad input and servers without mail.


def test_bad_tokens_get_email_token_invalid_and_bad_addresses_invalid_argument(
    mail_client: KeyportClient, mailpit: Mailpit
) -> None:
    account = _sign_up(mail_client, "bad")
    good = _reset_token(mail_client, mailpit, account.email)
    calls: Dict[str, Callable[[str], object]] = {
        "ResetPassword": lambda bad: _reset(mail_client, bad),
        "VerifyEmail": lambda bad: mail_client.users.VerifyEmail(user_service_pb2.VerifyEmailRequest(token=bad)),
        "ConfirmEmailChange": lambda bad: mail_client.users.ConfirmEmailChange(
            user_service_pb2.ConfirmEmailChangeRequest(token=bad)
        ),
        "FinishEmailSignIn": lambda bad: mail_client.sessions.FinishEmailSignIn(
            session_service_pb2.FinishEmailSignInRequest(binding=bad, token=bad)
        ),
    }
    failures: List[str] = []
    for bad in ["", "garbage", "kpm_", UNKNOWN_TOKEN, good[:-1], f"{good}x", "x" * 10_000]:
        for name, call in calls.items():
            with pytest.raises(KeyportError) as refused:
                call(bad)
            err = refused.value
            if not isinstance(err, EmailTokenInvalid) or err.code() != grpc.StatusCode.INVALID_ARGUMENT:
                failures.append(f"{name}({bad[:20]!r}, {len(bad)} chars): {err}")
    assert failures == []
    # FinishEmailSignIn without any proof: the same answer.
    with pytest.raises(EmailTokenInvalid):
        mail_client.sessions.FinishEmailSignIn(session_service_pb2.FinishEmailSignInRequest(binding="garbage"))

    # A malformed address, by contrast, is INVALID_ARGUMENT naming the field.
    for bad_email in ["", "not an address", f"{'a' * 300}@example.com"]:
        with pytest.raises(InvalidArgument) as reset:
            mail_client.users.RequestPasswordReset(user_service_pb2.RequestPasswordResetRequest(email=bad_email))
        assert [name for name, _ in reset.value.field_violations] == ["email"], bad_email
        with pytest.raises(InvalidArgument) as sign_in:
            _start(mail_client, bad_email)
        assert sign_in.value.reason == Reason.INVALID_ARGUMENT

    # None of them used up the good link.
    assert _reset(mail_client, good).revoked_sessions == 1


def test_a_server_without_mail_answers_mail_disabled(client: KeyportClient, account: Account) -> None:
    auth = bearer_metadata(account.token)
    calls: Dict[str, Callable[[], object]] = {
        "RequestPasswordReset": lambda: client.users.RequestPasswordReset(
            user_service_pb2.RequestPasswordResetRequest(email=account.email)
        ),
        "RequestEmailVerification": lambda: client.users.RequestEmailVerification(
            user_service_pb2.RequestEmailVerificationRequest(), metadata=auth
        ),
        "StartEmailSignIn": lambda: client.sessions.StartEmailSignIn(
            session_service_pb2.StartEmailSignInRequest(email=account.email)
        ),
        "RequestEmailChange": lambda: client.users.RequestEmailChange(
            user_service_pb2.RequestEmailChangeRequest(new_email=unique_email("new"), password=PASSWORD), metadata=auth
        ),
        "RequestPasswordSetup": lambda: client.users.RequestPasswordSetup(
            user_service_pb2.RequestPasswordSetupRequest(), metadata=auth
        ),
    }
    for name, call in calls.items():
        with pytest.raises(MailDisabled) as disabled:
            call()
        assert disabled.value.reason == Reason.MAIL_DISABLED, name
        assert disabled.value.code() == grpc.StatusCode.FAILED_PRECONDITION, name
    # The calls that take a token answer as on any server.
    with pytest.raises(EmailTokenInvalid):
        _reset(client, UNKNOWN_TOKEN)
