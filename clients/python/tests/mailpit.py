"""A real SMTP server for the mail tests: Mailpit (https://mailpit.axllent.org).

Started on free ports and read back through its HTTP API, as
``tests/src/mailpit.rs`` does for the Rust tests. The binary is
``$KEYPORT_MAILPIT``, else ``~/.cache/keyport/bin/mailpit`` (where
``scripts/test.sh`` installs it); without it the tests fail, naming the
install command.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

#: How scripts/test.sh installs Mailpit.
MAILPIT_INSTALL = "GOBIN=~/.cache/keyport/bin go install github.com/axllent/mailpit@v1.33.1"
#: Where the links in test mails point (``mail.public_base_url``).
PUBLIC_BASE_URL = "http://app.example.test"
#: The sender of test mails (``mail.from``).
FROM = "Keyport <no-reply@example.test>"
#: How long :meth:`Mailpit.wait_for` waits for mail by default.
DELIVERY_TIMEOUT_SECS = 20.0
#: How long Mailpit may take to answer after it was started.
START_TIMEOUT_SECS = 10.0

# The token of a link: kpm_ and base64url.
_LINK_TOKEN = r"\?token=[A-Za-z0-9_-]+"
# "enter this code: 123456" (verification), "enter this code ... it:\n\n123456" (sign-in, password setup).
_CODE = re.compile(r"enter this code[^:\n]*:\s*(\d{6})\b")


@dataclass
class Delivered:
    """A delivered message, as Mailpit's ``/api/v1/message/<id>`` shows it."""

    id: str
    subject: str
    sender: str
    to: List[str]
    text: str
    html: str

    def link(self, path: str) -> Optional[str]:
        """The first link to ``PUBLIC_BASE_URL + path`` with a token, in the text part."""
        match = re.search(re.escape(PUBLIC_BASE_URL + path) + _LINK_TOKEN, self.text)
        return match.group(0) if match else None

    def code(self) -> Optional[str]:
        """The six-digit code in the text part, if the mail has one."""
        match = _CODE.search(self.text)
        return match.group(1) if match else None


class Mailpit:
    """A running Mailpit: plain SMTP with any or no credentials, every message kept."""

    def __init__(self, process: "subprocess.Popen[bytes]", smtp_port: int, http_port: int, log: Path) -> None:
        self.process = process
        self.smtp_port = smtp_port
        self.api = f"http://127.0.0.1:{http_port}"
        self.log = log

    def keyport_env(self) -> Dict[str, str]:
        """The ``KEYPORT_MAIL__*`` settings that point a keyport at this server, with fast retries."""
        return {
            "KEYPORT_MAIL__SMTP_HOST": "127.0.0.1",
            "KEYPORT_MAIL__SMTP_PORT": str(self.smtp_port),
            "KEYPORT_MAIL__SECURITY": "none",
            "KEYPORT_MAIL__FROM": FROM,
            "KEYPORT_MAIL__PUBLIC_BASE_URL": PUBLIC_BASE_URL,
            "KEYPORT_MAIL__POLL_INTERVAL_MS": "100",
            "KEYPORT_MAIL__RETRY_BASE_MS": "1000",
            "KEYPORT_MAIL__TIMEOUT_MS": "5000",
        }

    def _get(self, path: str, **query: str) -> Any:
        url = f"{self.api}{path}"
        if query:
            url += "?" + urllib.parse.urlencode(query)
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.load(response)

    def messages_to(self, address: str) -> List[Delivered]:
        """Every message delivered to ``address``, newest first."""
        listing = self._get("/api/v1/search", query=f'to:"{address}"')
        messages = []
        for summary in listing["messages"]:
            # The search matches words; keep only exact recipients.
            if not any(to["Address"].lower() == address.lower() for to in summary["To"] or []):
                continue
            full = self._get(f"/api/v1/message/{summary['ID']}")
            messages.append(
                Delivered(
                    id=full["ID"],
                    subject=full["Subject"],
                    sender=full["From"]["Address"],
                    to=[to["Address"] for to in full["To"] or []],
                    text=full["Text"],
                    html=full["HTML"],
                )
            )
        return messages

    def wait_for(self, address: str, count: int = 1, timeout: float = DELIVERY_TIMEOUT_SECS) -> List[Delivered]:
        """Waits until ``count`` messages reached ``address``; returns them newest first.

        Fails the test after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            messages = self.messages_to(address)
            if len(messages) >= count:
                return messages
            if time.monotonic() > deadline:
                pytest.fail(f"{len(messages)} of {count} messages to {address} after {timeout}s", pytrace=False)
            time.sleep(0.05)

    def assert_no_mail_to(self, address: str, settle: float = 0.5) -> None:
        """Waits ``settle`` seconds for stray mail, then checks none reached ``address``."""
        time.sleep(settle)
        assert self.messages_to(address) == [], f"unexpected mail to {address}"


def mailpit_binary() -> Path:
    """``$KEYPORT_MAILPIT``, else ``~/.cache/keyport/bin/mailpit``; fails the test if it is missing."""
    raw = os.environ.get("KEYPORT_MAILPIT")
    path = Path(raw) if raw else Path.home() / ".cache" / "keyport" / "bin" / "mailpit"
    if not path.is_file() or not os.access(path, os.X_OK):
        source = "KEYPORT_MAILPIT" if raw else "the default location"
        pytest.fail(
            f"Mailpit is needed for the mail tests, but {path} ({source}) is not an executable file.\n"
            f"Install it with\n  {MAILPIT_INSTALL}\nor set KEYPORT_MAILPIT to its binary.",
            pytrace=False,
        )
    return path


def _free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _answers(smtp_port: int, api: str) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", smtp_port), timeout=1):
            pass
        with urllib.request.urlopen(f"{api}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:  # refused, reset, or urllib.error.URLError
        return False


def _stop(process: "subprocess.Popen[bytes]") -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running_mailpit(directory: Path) -> Iterator[Mailpit]:
    """Runs Mailpit on free ports with its database in ``directory``, and yields it once it answers.

    A port taken between choosing it and Mailpit binding it makes Mailpit
    exit; then it is tried again on other ports, three times in all.
    """
    binary = mailpit_binary()
    log = directory / "mailpit.log"
    for _attempt in range(3):
        smtp_port, http_port = _free_port(), _free_port()
        with log.open("ab") as stderr:
            process = subprocess.Popen(
                [
                    str(binary),
                    "--smtp",
                    f"127.0.0.1:{smtp_port}",
                    "--listen",
                    f"127.0.0.1:{http_port}",
                    "--database",
                    str(directory / "mailpit.db"),
                    # --max 0: keep every message (the default prunes past 500).
                    "--max",
                    "0",
                    "--smtp-auth-accept-any",
                    "--smtp-auth-allow-insecure",
                    "--smtp-disable-rdns",
                    "--quiet",
                ],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        mailpit = Mailpit(process, smtp_port, http_port, log)
        deadline = time.monotonic() + START_TIMEOUT_SECS
        while process.poll() is None and time.monotonic() < deadline and not _answers(smtp_port, mailpit.api):
            time.sleep(0.05)
        if process.poll() is None and _answers(smtp_port, mailpit.api):
            break
        _stop(process)
    else:
        pytest.fail(f"Mailpit did not answer within {START_TIMEOUT_SECS}s:\n{log.read_text(errors='replace')}")
    try:
        yield mailpit
    finally:
        _stop(process)

