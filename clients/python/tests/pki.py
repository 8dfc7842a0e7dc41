"""A throw-away PKI made with the ``openssl`` command, as tests/e2e/tls.rs makes one.

A CA, a server certificate for 127.0.0.1 and localhost, a client
certificate from the same CA, and a stranger's from a second, untrusted CA:
``<name>.pem`` and ``<name>.key`` in one directory.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict

import pytest

_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]


@dataclass(frozen=True)
class Pki:
    """The certificates' directory."""

    dir: Path

    def read(self, name: str) -> bytes:
        """The bytes of ``name`` (e.g. ``"ca.pem"``)."""
        return (self.dir / name).read_bytes()

    def server_env(self, mutual: bool) -> Dict[str, str]:
        """Keyport's environment for TLS, and for mutual TLS when ``mutual``."""
        env = {
            "KEYPORT_SERVER__TLS_CERT_FILE": str(self.dir / "server.pem"),
            "KEYPORT_SERVER__TLS_KEY_FILE": str(self.dir / "server.key"),
        }
        if mutual:
            env["KEYPORT_SERVER__TLS_CLIENT_CA_FILE"] = str(self.dir / "ca.pem")
        return env


def create_pki(directory: Path) -> Pki:
    """Makes the certificates in ``directory``; fails the test without ``openssl``."""
    if shutil.which("openssl") is None:
        pytest.fail("the TLS tests need the openssl command to make their certificates", pytrace=False)

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True)

    for ca in ("ca", "other-ca"):
        openssl("req", "-x509", *_EC, "-days", "1", "-subj", f"/CN={ca}", "-keyout", f"{ca}.key", "-out", f"{ca}.pem")
    (directory / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    (directory / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for leaf, ca in (("server", "ca"), ("client", "ca"), ("stranger", "other-ca")):
        openssl("req", *_EC, "-subj", f"/CN={leaf}", "-keyout", f"{leaf}.key", "-out", f"{leaf}.csr")
        ext = "server.ext" if leaf == "server" else "client.ext"
        openssl(
            "x509", "-req", "-in", f"{leaf}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "1", "-extfile", ext, "-out", f"{leaf}.pem",
        )
    return Pki(directory)
