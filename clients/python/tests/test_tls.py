"""TLS and mutual TLS against keyport started with ``[server] tls_cert_file``,
``tls_key_file`` and ``tls_client_ca_file`` (certificates from ``openssl``),
including the README's TLS example run as a script."""

from __future__ import annotations

import subprocess
import sys
from typing import Iterator, Optional

import grpc
import pytest

from keyport import KeyportClient, Unauthenticated, error_reason
from keyport.v1 import session_service_pb2, user_service_pb2

from .conftest import running_keyport
from .pki import Pki, create_pki
from .support import PASSWORD, KeyportServer, failed_call, unique_email
from .test_readme import _block


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """Throw-away certificates for this module."""
    return create_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def tls_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyportServer]:
    """Keyport serving TLS only."""
    with running_keyport(tmp_path_factory.mktemp("keyport-tls"), pki.server_env(mutual=False)) as server:
        yield server


@pytest.fixture(scope="module")
def mtls_server(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyportServer]:
    """Keyport serving TLS that requires a client certificate from the PKI's CA."""
    with running_keyport(tmp_path_factory.mktemp("keyport-mtls"), pki.server_env(mutual=True)) as server:
        yield server


def _round_trip(client: KeyportClient) -> None:
    """Signs up and validates the token: a real call in each direction."""
    email = unique_email("tls")
    signed_up = client.users.SignUp(user_service_pb2.SignUpRequest(email=email, password=PASSWORD))
    checked = client.sessions.GetSession(session_service_pb2.GetSessionRequest(token=signed_up.session.token))
    assert checked.user.email == email


def _refused(client: KeyportClient) -> None:
    """The call fails before Keyport answers: UNAVAILABLE with no reason."""
    with client, pytest.raises(grpc.RpcError) as excinfo:
        client.sessions.GetSession(session_service_pb2.GetSessionRequest(token="kp_x.y"))
    assert failed_call(excinfo).code() == grpc.StatusCode.UNAVAILABLE
    assert error_reason(excinfo.value) is None


def _client(server: KeyportServer, pki: Pki, ca: Optional[str] = "ca", leaf: Optional[str] = None) -> KeyportClient:
    return KeyportClient(
        server.address,
        timeout=10,
        tls=True,
        root_certificates=pki.read(f"{ca}.pem") if ca else None,
        certificate_chain=pki.read(f"{leaf}.pem") if leaf else None,
        private_key=pki.read(f"{leaf}.key") if leaf else None,
    )


def test_tls_with_the_servers_ca(tls_server: KeyportServer, pki: Pki) -> None:
    with _client(tls_server, pki) as client:
        _round_trip(client)
        # Errors keep their details through TLS.
        with pytest.raises(Unauthenticated):
            client.sessions.GetSession(session_service_pb2.GetSessionRequest(token="kp_x.y"))


def test_tls_refuses_an_untrusted_server(tls_server: KeyportServer, pki: Pki) -> None:
    _refused(_client(tls_server, pki, ca=None))  # the system roots
    _refused(_client(tls_server, pki, ca="other-ca"))


def test_plaintext_client_cannot_talk_to_a_tls_port(tls_server: KeyportServer) -> None:
    _refused(KeyportClient(tls_server.address, timeout=10))


def test_mtls_with_a_client_certificate_from_the_trusted_ca(mtls_server: KeyportServer, pki: Pki) -> None:
    with _client(mtls_server, pki, leaf="client") as client:
        _round_trip(client)


@pytest.mark.parametrize("leaf", [None, "stranger"])
def test_mtls_refuses_other_clients(mtls_server: KeyportServer, pki: Pki, leaf: Optional[str]) -> None:
    _refused(_client(mtls_server, pki, leaf=leaf))


def test_readme_tls_example_connects_with_mutual_tls(mtls_server: KeyportServer, pki: Pki) -> None:
    example = _block("python", after="### TLS and mutual TLS")
    assert "keyport.internal:50051" in example and '"/etc/myapp/tls"' in example
    script = example.replace("keyport.internal:50051", mtls_server.address).replace(
        '"/etc/myapp/tls"', repr(str(pki.dir))
    )

    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "connected over mutual TLS; that token is not valid\n"
