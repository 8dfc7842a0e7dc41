"""The examples in README.md, run against live servers."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest

from keyport import (
    CHALLENGE_COOKIE_NAME,
    EMAIL_SIGN_IN_COOKIE_NAME,
    PASSKEY_CEREMONY_COOKIE_NAME,
    ApiKeyNotFound,
    EmailTaken,
    InvalidArgument,
    KeyportClient,
    PermissionDenied,
    PermissionUnknown,
    SecondFactorInvalid,
    SecondFactorNotEnrolled,
    SetCookie,
    Unauthenticated,
    bearer_metadata,
    challenge_from_cookie,
    clear_email_sign_in_cookie,
    clear_passkey_ceremony_cookie,
    list_all_users,
)
from keyport.v1 import admin_service_pb2, api_key_service_pb2, session_pb2, session_service_pb2, user_service_pb2

from .authenticator import enroll, next_totp, wrong_totp
from .mailpit import Mailpit
from .support import PASSWORD, Account, Admin, KeyportServer, unique_email

README = Path(__file__).resolve().parent.parent / "README.md"


def _block(language: str, after: str = "") -> str:
    """The first fenced block of ``language`` in README.md after the text ``after``."""
    text = README.read_text(encoding="utf-8")
    start = text.index(after) if after else 0
    match = re.search(rf"```{language}\n(.*?)```", text[start:], re.DOTALL)
    assert match, f"no ```{language} block in {README}"
    return match.group(1)


def test_readme_example_prints_what_the_readme_says(keyport_server: KeyportServer) -> None:
    example = _block("python", after="## Usage")
    assert "127.0.0.1:50051" in example
    script = example.replace("127.0.0.1:50051", keyport_server.address)

    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == _block("text", after="## Usage")


def _definitions(after: str) -> Dict[str, Any]:
    """What the first ```python block after ``after`` defines, run as a module."""
    namespace: Dict[str, Any] = {"__name__": "readme_example"}
    exec(compile(_block("python", after=after), str(README), "exec"), namespace)
    return namespace


def test_readme_password_reset_pages(mail_client: KeyportClient, mailpit: Mailpit) -> None:
    pages = _definitions("### Password reset")
    forgot_password, reset_password = pages["forgot_password"], pages["reset_password"]
    email = unique_email("readme-reset")
    mail_client.users.SignUp(user_service_pb2.SignUpRequest(email=email, password=PASSWORD))

    assert forgot_password(mail_client, email) == forgot_password(mail_client, unique_email("nobody"))
    link = mailpit.wait_for(email)[0].link("/reset-password")
    assert link is not None

    assert reset_password(mail_client, link.replace("?token=", "?t="), "a new passphrase").startswith(
        "This link is incomplete"
    )
    assert reset_password(mail_client, link, "short").startswith("Choose a longer")
    assert reset_password(mail_client, link, "a new passphrase").startswith("Password changed")
    assert reset_password(mail_client, link, "another new passphrase").startswith("This link has expired")
    mail_client.sessions.SignIn(session_service_pb2.SignInRequest(email=email, password="a new passphrase"))


def test_readme_email_sign_in_pages(mail_client: KeyportClient, mailpit: Mailpit) -> None:
    pages = _definitions("### Email sign-in")
    start_email_sign_in, finish_email_sign_in = pages["start_email_sign_in"], pages["finish_email_sign_in"]
    email = unique_email("readme-sign-in")
    mail_client.users.SignUp(user_service_pb2.SignUpRequest(email=email, password=PASSWORD))

    # With the code, in the browser that got the cookie (a framework's request.cookies).
    cookie = start_email_sign_in(mail_client, email)
    assert isinstance(cookie, SetCookie) and cookie.name == EMAIL_SIGN_IN_COOKIE_NAME
    code = mailpit.wait_for(email)[0].code()
    assert code is not None
    assert finish_email_sign_in(mail_client, {}, code=code) is None, "another browser"
    token = _signed_in(finish_email_sign_in(mail_client, {cookie.name: cookie.value}, code=code))
    session = mail_client.sessions.GetSession(session_service_pb2.GetSessionRequest(token=token))
    assert session.user.email == email
    assert finish_email_sign_in(mail_client, {cookie.name: cookie.value}, code=code) is None, "used"

    # With the link, the binding from a raw Cookie header.
    cookie = start_email_sign_in(mail_client, email)
    link = mailpit.wait_for(email, 2)[0].link("/sign-in/email")
    assert link is not None
    header = f"theme=dark; {cookie.name}={cookie.value}"
    token = _signed_in(finish_email_sign_in(mail_client, header, url=link))
    mail_client.sessions.GetSession(session_service_pb2.GetSessionRequest(token=token))
    assert finish_email_sign_in(mail_client, header, url=link) is None, "used"

    # A user with an authenticator app on is sent to the code page, with the challenge in a cookie.
    ada = enroll(mail_client, "readme-sign-in-totp")
    cookie = start_email_sign_in(mail_client, ada.email)
    code = mailpit.wait_for(ada.email)[0].code()
    assert code is not None
    finished = finish_email_sign_in(mail_client, {cookie.name: cookie.value}, code=code)
    assert finished is not None
    location, set_cookies = finished
    assert location == "/sign-in/second-factor"
    assert [c.header() for c in set_cookies[:1]] == [clear_email_sign_in_cookie().header()]
    challenge = set_cookies[1]
    assert challenge.name == CHALLENGE_COOKIE_NAME
    assert re.fullmatch(
        r"__Host-keyport_challenge=kpc_[A-Za-z0-9_-]+; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=\d+",
        challenge.header(),
    ), challenge.header()
    assert 0 < challenge.max_age <= 300, "until the challenge expires, in 5 minutes"
    assert len(set_cookies) == 2, "no session cookie"
    # The code page reads the challenge from the browser's cookies.
    from_browser = challenge_from_cookie({cookie.name: cookie.value, challenge.name: challenge.value})
    assert from_browser is not None and from_browser.startswith("kpc_")
    done = mail_client.sessions.CompleteSignIn(
        session_service_pb2.CompleteSignInRequest(challenge=from_browser, totp_code=next_totp(ada.secret))
    )
    assert done.session.user.email == ada.email


def _signed_in(finished: Optional[Tuple[str, List[SetCookie]]]) -> str:
    """The session token of the README's ``finish_email_sign_in`` answer for a user without a second factor."""
    assert finished is not None
    location, set_cookies = finished
    assert location == "/"
    assert [c.header() for c in set_cookies[:1]] == [clear_email_sign_in_cookie().header()]
    session = set_cookies[1]
    assert len(set_cookies) == 2 and session.name == "session", set_cookies
    assert 0 < session.max_age <= 31 * 24 * 3600, session.max_age
    return session.value


def test_readme_second_factor_sign_in(client: KeyportClient) -> None:
    sign_in = _definitions("## Second factors")["sign_in"]

    # No second factor: the password alone signs in, at AAL1.
    email = unique_email("readme-plain")
    client.users.SignUp(user_service_pb2.SignUpRequest(email=email, password=PASSWORD))

    def never() -> str:
        raise AssertionError("no code is asked for")

    assert sign_in(client, email, PASSWORD, never).session.assurance_level == session_pb2.ASSURANCE_LEVEL_AAL1

    # A mistyped code, then the app's: asked twice, signed in at AAL2.
    ada = enroll(client, "readme-totp")
    typed: List[str] = []

    def app() -> str:
        typed.append(wrong_totp(ada.secret) if not typed else next_totp(ada.secret))
        return typed[-1]

    grant = sign_in(client, ada.email, PASSWORD, app)
    assert len(typed) == 2
    assert grant.session.assurance_level == session_pb2.ASSURANCE_LEVEL_AAL2

    # A backup code, typed in capitals with spaces.
    by_backup_code = sign_in(client, ada.email, PASSWORD, lambda: ada.backup_codes[0].upper().replace("-", " "))
    assert by_backup_code.user.email == ada.email

    # Three wrong codes: the error comes through.
    wrong = wrong_totp(ada.secret)
    with pytest.raises(SecondFactorInvalid):
        sign_in(client, ada.email, PASSWORD, lambda: wrong)


def test_readme_passkey_pages(client: KeyportClient, account: Account) -> None:
    pages = _definitions("## Passkeys")
    finish_passkey_sign_in = pages["finish_passkey_sign_in"]

    # Sign-in: the options for the page, the ceremony in a cookie of this browser only.
    options, cookie = pages["start_passkey_sign_in"](client)
    assert json.loads(options)["rpId"] == "localhost"
    assert cookie.name == PASSKEY_CEREMONY_COOKIE_NAME and cookie.value.startswith("kpk_")
    cleared = [clear_passkey_ceremony_cookie().header()]
    for attempt in ("a malformed answer", "the used ceremony"):
        set_cookies = finish_passkey_sign_in(client, {cookie.name: cookie.value}, "{}")
        assert [c.header() for c in set_cookies] == cleared, f"{attempt}: no session cookie"
    assert [c.header() for c in finish_passkey_sign_in(client, None, "{}")] == cleared, "another browser"

    # Registration and step-up, signed in.
    registration = json.loads(pages["start_registration"](client, account.token))
    assert registration["options"]["user"]["name"] == account.email
    assert pages["finish_registration"](client, account.token, registration["ceremony"], "{}").startswith(
        "That passkey did not work"
    )
    with pytest.raises(SecondFactorNotEnrolled):
        pages["start_step_up"](client, account.token)
    with pytest.raises(SecondFactorNotEnrolled):
        pages["finish_step_up"](client, account.token, registration["ceremony"], "{}")


def test_readme_authorization(client: KeyportClient, account: Account) -> None:
    authorize = _definitions("## Authorization")["authorize"]

    status, user = authorize(client, account.token, ["posts:read"])
    assert status == 200 and user.email == account.email and list(user.roles) == ["user"]
    assert authorize(client, account.token, ["posts:read", "posts:write"]) == (403, None)
    assert authorize(client, "", ["posts:read"]) == (401, None)
    with pytest.raises(PermissionUnknown):
        authorize(client, account.token, ["posts:delete"])


def test_readme_api_keys(api_keys_client: KeyportClient, api_keys_admin: Admin) -> None:
    calls = _definitions("## API keys")
    new_api_key, api_caller = calls["new_api_key"], calls["api_caller"]
    rotate_api_key, service_account_key = calls["rotate_api_key"], calls["service_account_key"]
    client = api_keys_client
    email = unique_email("readme-keys")
    client.users.SignUp(user_service_pb2.SignUpRequest(email=email, password=PASSWORD))
    token = client.sessions.SignIn(session_service_pb2.SignInRequest(email=email, password=PASSWORD)).session.token

    secret = new_api_key(client, token, "reports", ["posts:read"])
    assert api_caller(client, f"Bearer {secret}", ["posts:read"]) == (200, f"reports of {email}")
    assert api_caller(client, f"Bearer {secret}", ["posts:write"])[0] == 403, "outside the key's scopes"
    assert api_caller(client, f"Bearer {token}", ["posts:read"])[0] == 401, "a session"
    assert api_caller(client, None, ["posts:read"])[0] == 401
    with pytest.raises(PermissionUnknown):
        api_caller(client, f"Bearer {secret}", ["posts:delete"])

    listed = client.api_keys.ListApiKeys(api_key_service_pb2.ListApiKeysRequest(), metadata=bearer_metadata(token))
    key_id = listed.api_keys[0].id
    rotated = rotate_api_key(client, token, key_id)
    assert api_caller(client, f"Bearer {rotated}", ["posts:read"]) == (200, f"reports of {email}")
    assert api_caller(client, f"Bearer {secret}", ["posts:read"])[0] == 200, "within the day's grace"
    client.api_keys.RevokeApiKey(api_key_service_pb2.RevokeApiKeyRequest(api_key_id=key_id), metadata=bearer_metadata(token))
    assert api_caller(client, f"Bearer {secret}", ["posts:read"])[0] == 401, "revoked"
    with pytest.raises(ApiKeyNotFound):
        rotate_api_key(client, token, key_id)

    name = f"readme-{uuid.uuid4().hex[:8]}"
    ci = service_account_key(client, api_keys_admin.token, name, ["auditor"])
    assert api_caller(client, f"Bearer {ci}", ["users:read"]) == (200, f"ci of service account {name}")
    assert any(managed.user.id == api_keys_admin.id for managed in list_all_users(client, ci))
    with pytest.raises(PermissionDenied):
        service_account_key(client, token, f"{name}-2", ["auditor"])


def test_readme_organizations(organizations_client: KeyportClient, organizations_admin: Admin) -> None:
    calls = _definitions("## Organizations")
    create_team, invite, join, allowed_in = calls["create_team"], calls["invite"], calls["join"], calls["allowed_in"]
    client = organizations_client
    as_admin = bearer_metadata(organizations_admin.token)

    def verified(label: str) -> Tuple[str, str]:
        email = unique_email(label)
        request = admin_service_pb2.CreateUserRequest(email=email, password=PASSWORD, email_verified=True)
        client.admin.CreateUser(request, metadata=as_admin)
        grant = client.sessions.SignIn(session_service_pb2.SignInRequest(email=email, password=PASSWORD)).session
        return email, grant.token

    (_, owner), (email, member), (_, other) = verified("readme-owner"), verified("readme-member"), verified("readme-other")
    slug = f"readme-{uuid.uuid4().hex[:8]}"
    status, org_id = create_team(client, owner, "Readme", slug)
    assert status == 200 and org_id
    assert create_team(client, other, "Another", slug) == (409, f"{slug} is taken: choose another.")
    with pytest.raises(InvalidArgument):
        create_team(client, other, "Another", "Not A Slug")

    invitation_id = invite(client, owner, org_id, email, "member")
    assert join(client, other, invitation_id)[0] == 410, "another user's invitation"
    assert join(client, member, invitation_id) == (200, "Welcome to Readme (member).")
    assert join(client, member, invitation_id)[0] == 410, "used"
    with pytest.raises(PermissionDenied):
        invite(client, member, org_id, unique_email("by-member"), "member")

    assert allowed_in(client, member, org_id, ["posts:read"]) is True
    assert allowed_in(client, member, "", ["posts:read"]) is False, "outside the organization"
    assert allowed_in(client, other, org_id, ["posts:read"]) is False, "a non-member"


def test_readme_administration(client: KeyportClient, admin: Admin, account: Account) -> None:
    calls = _definitions("## Administration")
    invite, banned_users, ban = calls["invite"], calls["banned_users"], calls["ban"]

    email = unique_email("readme-invited")
    user_id = invite(client, admin.token, email, ["admin"])
    got = client.admin.GetUser(admin_service_pb2.GetUserRequest(user_id=user_id), metadata=bearer_metadata(admin.token))
    assert list(got.user.user.roles) == ["admin", "user"] and got.user.user.email_verified
    with pytest.raises(EmailTaken):
        invite(client, admin.token, email, [])

    assert ban(client, admin.token, user_id, "left the company") == (200, f"Banned {email}.")
    assert f"{email}: left the company" in banned_users(client, admin.token)
    assert ban(client, admin.token, "01890a5d-ac96-7b4b-bcce-b302099a8057", "x")[0] == 404
    assert ban(client, admin.token, user_id, "")[0] == 400
    assert ban(client, admin.token, admin.id, "me")[0] == 400
    assert ban(client, account.token, user_id, "x")[0] == 403
    with pytest.raises(Unauthenticated):
        ban(client, "kp_" + "A" * 22 + "." + "A" * 43, user_id, "x")


def test_readme_fastapi_app_guards_its_routes(keyport_server: KeyportServer, client: KeyportClient) -> None:
    pytest.importorskip("fastapi")
    uvicorn = pytest.importorskip("uvicorn")
    httpx = pytest.importorskip("httpx")
    import socket
    import threading

    source = _block("python", after="**FastAPI**")
    assert "127.0.0.1:50051" in source
    namespace: Dict[str, Any] = {"__name__": "readme_fastapi"}
    exec(compile(source.replace("127.0.0.1:50051", keyport_server.address), str(README), "exec"), namespace)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(namespace["app"], log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        while not server.started:
            threading.Event().wait(0.01)
        email = unique_email("readme-fastapi")
        token = client.users.SignUp(user_service_pb2.SignUpRequest(email=email, password=PASSWORD)).session.token
        url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        with httpx.Client(base_url=url, timeout=10) as http:
            auth = {"authorization": f"Bearer {token}"}
            assert http.get("/me", headers=auth).json()["email"] == email
            assert http.get("/posts", headers=auth).json() == {"reader": email}, "user grants posts:read"
            assert http.get("/", headers=auth).json() == {"signed_in": True}
            assert http.get("/").json() == {"signed_in": False}
            refused = http.get("/me")
            assert refused.status_code == 401 and refused.json()["detail"]["error"] == "UNAUTHENTICATED"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def test_readme_grpc_service_example_builds_a_guarded_server(keyport_server: KeyportServer) -> None:
    source = _block("python", after="## gRPC services: authenticating callers")
    namespace: Dict[str, Any] = {"__name__": "readme_grpc"}
    exec(compile(source.replace("127.0.0.1:50051", keyport_server.address), str(README), "exec"), namespace)
    try:
        assert namespace["cache"].wait_until_live(), "the example's cache subscribes"
        assert namespace["server"] is not None
    finally:
        namespace["cache"].close()
        namespace["keyport"].close()
