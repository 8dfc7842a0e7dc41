"""The examples in README.md, run against live servers."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict

from keyport import EMAIL_SIGN_IN_COOKIE_NAME, KeyportClient, SetCookie
from keyport.v1 import session_service_pb2, user_service_pb2

from .mailpit import Mailpit
from .support import PASSWORD, KeyportServer, unique_email

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
    token = finish_email_sign_in(mail_client, {cookie.name: cookie.value}, code=code)
    assert isinstance(token, str)
    session = mail_client.sessions.GetSession(session_service_pb2.GetSessionRequest(token=token))
    assert session.user.email == email
    assert finish_email_sign_in(mail_client, {cookie.name: cookie.value}, code=code) is None, "used"

    # With the link, the binding from a raw Cookie header.
    cookie = start_email_sign_in(mail_client, email)
    link = mailpit.wait_for(email, 2)[0].link("/sign-in/email")
    assert link is not None
    header = f"theme=dark; {cookie.name}={cookie.value}"
    token = finish_email_sign_in(mail_client, header, url=link)
    assert isinstance(token, str)
    mail_client.sessions.GetSession(session_service_pb2.GetSessionRequest(token=token))
    assert finish_email_sign_in(mail_client, header, url=link) is None, "used"
