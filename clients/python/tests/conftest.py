"""Fixtures that run the tests against a real ``keyport`` server.

The server binary comes from the ``KEYPORT_BIN`` environment variable. It is
started once per test session on a free loopback port with a fresh data
directory, cheap password hashing, passkeys for ``localhost``
(:data:`PASSKEYS_ENV`), the permissions ``posts:read`` and ``posts:write``
(:data:`AUTHORIZATION_ENV`) and JSON logs, and stopped with SIGTERM at the end; :func:`admin` is its
admin, made with its ``keyport admin`` command line. That server has no mail; the mail tests share a second one that
delivers to a Mailpit of their own (:mod:`tests.mailpit`), the API key tests a third whose roles are
:data:`API_KEYS_ROLES` (:func:`api_keys_server`, with its admin :func:`api_keys_admin`), the organization tests a
fourth with :data:`ORGANIZATIONS_ENV` (:func:`organizations_server`, with its admin :func:`organizations_admin`), and
the rate-limit tests a fifth with :data:`SIGN_IN_LIMITS_ENV` (:func:`rate_limited_server`).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest

from keyport import KeyportClient
from keyport.v1 import session_service_pb2, user_service_pb2

from .mailpit import Mailpit, running_mailpit
from .support import ADMIN_PASSWORD, PASSWORD, Account, Admin, KeyportServer, unique_email

#: How long the server may take to print its listening address.
START_TIMEOUT_SECS = 30.0
#: How long the server may take to drain and exit after SIGTERM.
STOP_TIMEOUT_SECS = 15.0
#: The ``[passkeys]`` section of every test server: the relying party
#: ``localhost``, for pages on ``https://localhost``.
#: ``{"KEYPORT_PASSKEYS__RP_ID": ""}`` in ``extra_env`` turns passkeys off.
PASSKEYS_ENV = {"KEYPORT_PASSKEYS__RP_ID": "localhost", "KEYPORT_PASSKEYS__ORIGINS": '["https://localhost"]'}
#: The ``[authorization]`` section of every test server: the catalogue
#: ``posts:read`` and ``posts:write``; ``user`` grants ``posts:read`` and
#: ``admin`` everything.
AUTHORIZATION_ENV = {
    "KEYPORT_AUTHORIZATION__PERMISSIONS": '["posts:read","posts:write"]',
    "KEYPORT_AUTHORIZATION__ROLES": '{user = ["posts:read"], admin = ["*"]}',
}
#: The roles of the API key tests' server: ``user`` grants both catalogue
#: permissions, so that a key scoped to ``posts:read`` is narrower than its
#: owner, and ``auditor`` (for service accounts) ``users:read`` and
#: ``posts:read``.
API_KEYS_ROLES = {
    "KEYPORT_AUTHORIZATION__ROLES": (
        '{user = ["posts:read","posts:write"], auditor = ["users:read","posts:read"], admin = ["*"]}'
    ),
}
#: The organization tests' server: the catalogue ``posts:read``,
#: ``posts:write`` and ``billing:read``; ``user`` grants ``posts:write``
#: only, so that ``posts:read`` is what an organization's ``member`` role
#: grants there (``[organizations.roles]``), and the custom organization
#: role ``billing`` grants ``billing:read``. ``owner`` and ``admin`` keep
#: their default ``*``.
ORGANIZATIONS_ENV = {
    "KEYPORT_AUTHORIZATION__PERMISSIONS": '["posts:read","posts:write","billing:read"]',
    "KEYPORT_AUTHORIZATION__ROLES": '{user = ["posts:write"], admin = ["*"]}',
    "KEYPORT_ORGANIZATIONS__ROLES__MEMBER": '["posts:read"]',
    "KEYPORT_ORGANIZATIONS__ROLES__BILLING": '["billing:read"]',
}

#: The rate-limit tests' server: an account may fail 2 sign-ins before each
#: further attempt answers ``RATE_LIMITED`` (the default is 10).
SIGN_IN_LIMITS_ENV = {"KEYPORT_SIGN_IN_LIMITS__PER_ACCOUNT": "2"}


def _keyport_bin() -> Path:
    raw = os.environ.get("KEYPORT_BIN")
    if not raw:
        pytest.fail(
            "KEYPORT_BIN is not set: point it at a built keyport binary, e.g.\n"
            "  CARGO_TARGET_DIR=/root/.cache/keyport/target cargo build -p keyport-server\n"
            "  KEYPORT_BIN=/root/.cache/keyport/target/debug/keyport clients/python/test.sh",
            pytrace=False,
        )
    path = Path(raw)
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.fail(f"KEYPORT_BIN={raw} is not an executable file", pytrace=False)
    return path


@contextlib.contextmanager
def running_keyport(
    data_dir: Path, extra_env: Optional[Dict[str, str]] = None, listen: str = "127.0.0.1:0"
) -> Iterator[KeyportServer]:
    """Runs ``keyport serve`` on ``listen`` (127.0.0.1:0) with ``extra_env`` and yields it once it listens.

    A restart is another ``running_keyport`` on the address and data
    directory of the first.

    On exit it stops the server with SIGTERM and fails the test if the
    server does not exit cleanly.
    """
    binary = _keyport_bin()
    # Only our own KEYPORT_* settings: a developer's KEYPORT_DATABASE_URL or
    # KEYPORT_CONFIG must not leak into the test server.
    env = {key: value for key, value in os.environ.items() if not key.startswith("KEYPORT_")}
    env.update({"KEYPORT_HASHING__MEMORY_KIB": "1024", "KEYPORT_HASHING__ITERATIONS": "1", **PASSKEYS_ENV, **AUTHORIZATION_ENV})
    env.update(extra_env or {})
    process = subprocess.Popen(
        [
            str(binary),
            "serve",
            "--listen",
            listen,
            "--data-dir",
            str(data_dir),
            "--log-format",
            "json",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    log: List[str] = []
    lines: "queue.Queue[Optional[str]]" = queue.Queue()
    threading.Thread(target=_pump, args=(process, lines, log), daemon=True).start()

    address: Optional[str] = None
    deadline = time.monotonic() + START_TIMEOUT_SECS
    try:
        while address is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"keyport did not report its address within {START_TIMEOUT_SECS}s", pytrace=False)
            try:
                line = lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                process.wait(timeout=5)
                pytest.fail(
                    f"keyport exited with {process.returncode} before serving:\n" + "\n".join(log),
                    pytrace=False,
                )
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict) and event.get("message") == "keyport serving gRPC":
                address = str(event["address"])
    except BaseException:
        process.kill()
        process.wait()
        raise

    server = KeyportServer(process=process, address=address, data_dir=data_dir, log=log, binary=binary, env=env)
    yield server

    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=STOP_TIMEOUT_SECS)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"keyport did not stop within {STOP_TIMEOUT_SECS}s of SIGTERM:\n{server.log_tail()}")
    if code != 0:
        pytest.fail(f"keyport exited with {code} after SIGTERM:\n{server.log_tail()}")


def _pump(stream: "subprocess.Popen[str]", lines: "queue.Queue[Optional[str]]", log: List[str]) -> None:
    """Copies the server's output into ``log`` and ``lines`` until EOF."""
    assert stream.stdout is not None
    for line in stream.stdout:
        line = line.rstrip("\n")
        log.append(line)
        lines.put(line)
    lines.put(None)


@pytest.fixture(scope="session")
def keyport_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyportServer]:
    """The plaintext test server, shared by the whole session."""
    with running_keyport(tmp_path_factory.mktemp("keyport-data")) as server:
        yield server


@pytest.fixture(scope="session")
def client(keyport_server: KeyportServer) -> Iterator[KeyportClient]:
    """A client connected to the test server, with a 10 s default deadline."""
    with KeyportClient(keyport_server.address, timeout=10) as keyport_client:
        yield keyport_client


@pytest.fixture
def account(client: KeyportClient) -> Account:
    """A freshly signed-up user."""
    email = unique_email()
    response = client.users.SignUp(user_service_pb2.SignUpRequest(email=email, password=PASSWORD, name="Ada"))
    return Account(email=email, password=PASSWORD, response=response)


def _make_admin(server: KeyportServer, client: KeyportClient) -> Admin:
    """An admin made with ``server``'s command line while it runs, as an operator does, then signed in."""
    email = unique_email("root")
    made = server.admin(
        "create-user", "--email", email, "--role", "admin", "--password-stdin", "--email-verified",
        stdin=ADMIN_PASSWORD + "\n",
    )
    assert made.returncode == 0, made.stderr
    grant = client.sessions.SignIn(session_service_pb2.SignInRequest(email=email, password=ADMIN_PASSWORD)).session
    assert grant.token, "the admin signs in with a password alone"
    return Admin(email=email, id=grant.user.id, token=grant.token, created=made.stdout)


@pytest.fixture(scope="session")
def admin(keyport_server: KeyportServer, client: KeyportClient) -> Admin:
    """An admin of the test server: made with its command line while it runs, as an operator does, then signed in."""
    return _make_admin(keyport_server, client)


@pytest.fixture(scope="session")
def api_keys_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyportServer]:
    """A keyport for the API key tests, with the roles :data:`API_KEYS_ROLES`."""
    with running_keyport(tmp_path_factory.mktemp("keyport-api-keys-data"), API_KEYS_ROLES) as server:
        yield server


@pytest.fixture(scope="session")
def api_keys_client(api_keys_server: KeyportServer) -> Iterator[KeyportClient]:
    """A client connected to :func:`api_keys_server`."""
    with KeyportClient(api_keys_server.address, timeout=10) as keyport_client:
        yield keyport_client


@pytest.fixture(scope="session")
def api_keys_admin(api_keys_server: KeyportServer, api_keys_client: KeyportClient) -> Admin:
    """An admin of :func:`api_keys_server`, made as :func:`admin` is."""
    return _make_admin(api_keys_server, api_keys_client)


@pytest.fixture(scope="session")
def organizations_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyportServer]:
    """A keyport for the organization tests, with :data:`ORGANIZATIONS_ENV`."""
    with running_keyport(tmp_path_factory.mktemp("keyport-organizations-data"), ORGANIZATIONS_ENV) as server:
        yield server


@pytest.fixture(scope="session")
def organizations_client(organizations_server: KeyportServer) -> Iterator[KeyportClient]:
    """A client connected to :func:`organizations_server`."""
    with KeyportClient(organizations_server.address, timeout=10) as keyport_client:
        yield keyport_client


@pytest.fixture(scope="session")
def organizations_admin(organizations_server: KeyportServer, organizations_client: KeyportClient) -> Admin:
    """An admin of :func:`organizations_server`, made as :func:`admin` is: they create the users whose addresses are verified."""
    return _make_admin(organizations_server, organizations_client)


@pytest.fixture(scope="session")
def rate_limited_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyportServer]:
    """A keyport with :data:`SIGN_IN_LIMITS_ENV`: the third failed sign-in of an account is ``RATE_LIMITED``."""
    with running_keyport(tmp_path_factory.mktemp("keyport-rate-limited-data"), SIGN_IN_LIMITS_ENV) as server:
        yield server


@pytest.fixture(scope="session")
def mailpit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mailpit]:
    """A Mailpit on free ports, shared by the mail tests (each uses addresses of its own)."""
    with running_mailpit(tmp_path_factory.mktemp("mailpit")) as server:
        yield server


@pytest.fixture(scope="session")
def mail_server(tmp_path_factory: pytest.TempPathFactory, mailpit: Mailpit) -> Iterator[KeyportServer]:
    """A keyport that mails through :func:`mailpit`, with the default mail settings."""
    with running_keyport(tmp_path_factory.mktemp("keyport-mail-data"), mailpit.keyport_env()) as server:
        yield server


@pytest.fixture(scope="session")
def mail_client(mail_server: KeyportServer) -> Iterator[KeyportClient]:
    """A client connected to :func:`mail_server`."""
    with KeyportClient(mail_server.address, timeout=10) as keyport_client:
        yield keyport_client
