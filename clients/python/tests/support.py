"""Helpers shared by the fixtures and the tests."""

from __future__ import annotations

import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import List

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

    def log_tail(self, lines: int = 40) -> str:
        """The last lines the server printed, for failure messages."""
        return "\n".join(self.log[-lines:])


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


def unique_email(prefix: str = "user") -> str:
    """An address no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}@example.com"


def failed_call(excinfo: "pytest.ExceptionInfo[grpc.RpcError]") -> grpc.Call:
    """The failed call behind a raised ``grpc.RpcError``, to read its code."""
    err = excinfo.value
    assert isinstance(err, grpc.Call), f"{err!r} is not a grpc.Call"
    return err
