"""Helpers shared by the fixtures and the tests."""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import grpc
import pytest

from keyport.v1 import user_service_pb2

#: A password that satisfies the default policy (>= 8 characters).
PASSWORD = "correct horse battery staple"


@dataclass
class KeyportServer:
    """A running ``keyport serve`` process."""

    process: "subprocess.Popen[str]"
    address: str
    data_dir: Path
    log: List[str] = field(default_factory=list)
    #: The binary it runs, for :meth:`admin`.
    binary: Path = Path("keyport")
    #: The environment it was started with.
    env: Dict[str, str] = field(default_factory=dict)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the server printed, for failure messages."""
        return "\n".join(self.log[-lines:])

    def admin(self, *args: str, stdin: str = "") -> "subprocess.CompletedProcess[str]":
        """Runs ``keyport --data-dir <its data dir> admin <args>`` with its settings, while it keeps running.

        As an operator does on the server's host, e.g.
        ``server.admin("create-user", "--email", email, "--role", "admin", "--password-stdin", stdin=password + "\\n")``.
        Returns the finished process (``returncode``, ``stdout``, ``stderr``).
        """
        return subprocess.run(
            [str(self.binary), "--data-dir", str(self.data_dir), "admin", *args],
            input=stdin,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@dataclass
class Account:
    """A user created for one test, with the session handed out at sign-up."""

    email: str
    password: str
    response: user_service_pb2.SignUpResponse

    @property
    def token(self) -> str:
        """The sign-up session's token."""
        return self.response.session.token


#: The password of the admin the tests make with ``keyport admin create-user``.
ADMIN_PASSWORD = "a-long-unusual-passphrase-42"


@dataclass
class Admin:
    """The test server's admin: made by its command line, then signed in."""

    email: str
    id: str
    token: str
    #: What ``keyport admin create-user`` printed.
    created: str


def unique_email(prefix: str = "user") -> str:
    """An address no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def failed_call(excinfo: "pytest.ExceptionInfo[grpc.RpcError]") -> grpc.Call:
    """The failed call behind a raised ``grpc.RpcError``, to read its code."""
    err = excinfo.value
    assert isinstance(err, grpc.Call), f"{err!r} is not a grpc.Call"
    return err
