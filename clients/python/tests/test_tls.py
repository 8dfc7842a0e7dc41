"""TLS and mTLS options of KeyportClient, through a TLS proxy to the live server."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import grpc
import pytest

from keyport import KeyportClient, error_reason
from keyport.v1 import session_service_pb2, user_service_pb2

from .support import PASSWORD, KeyportServer, failed_call, unique_email
from .tls_proxy import Pem, TlsProxy, self_signed

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")


@dataclass(frozen=True)
class Certs:
    """The server's certificate and two client certificates."""

    server: Pem
    #: Trusted by the mTLS proxy.
    client: Pem
    #: Not trusted by anyone.
    stranger: Pem


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    """Throw-away certificates for this module."""
    directory: Path = tmp_path_factory.mktemp("tls")
    return Certs(
        server=self_signed(directory, "server", "localhost"),
        client=self_signed(directory, "client", "keyport-test-client"),
        stranger=self_signed(directory, "stranger", "someone-else"),
    )


@pytest.fixture(scope="module")
def tls_proxy(keyport_server: KeyportServer, certs: Certs) -> Iterator[TlsProxy]:
    """TLS in front of the test server."""
    proxy = TlsProxy(keyport_server.address, certs.server)
    yield proxy
    proxy.close()


@pytest.fixture(scope="module")
def mtls_proxy(keyport_server: KeyportServer, certs: Certs) -> Iterator[TlsProxy]:
    """TLS in front of the test server that demands the "client" certificate."""
    proxy = TlsProxy(keyport_server.address, certs.server, client_ca=certs.client)
    yield proxy
    proxy.close()


def _round_trip(client: KeyportClient) -> None:
    """Signs up and validates the token: a real call in each direction."""
    email = unique_email("tls")
    signed_up = client.users.SignUp(user_service_pb2.SignUpRequest(email=email, password=PASSWORD))
    checked = client.sessions.GetSession(session_service_pb2.GetSessionRequest(token=signed_up.session.token))
    assert checked.user.email == email


def _unavailable(client: KeyportClient) -> None:
    with pytest.raises(grpc.RpcError) as excinfo:
        client.sessions.GetSession(session_service_pb2.GetSessionRequest(token="kp_x.y"))
    assert failed_call(excinfo).code() == grpc.StatusCode.UNAVAILABLE
    assert error_reason(excinfo.value) is None


def test_tls_with_a_private_root(tls_proxy: TlsProxy, certs: Certs) -> None:
    with KeyportClient(tls_proxy.address, timeout=10, tls=True, root_certificates=certs.server.cert) as client:
        _round_trip(client)
        # Errors keep their details through TLS.
        with pytest.raises(grpc.RpcError) as excinfo:
            client.sessions.GetSession(session_service_pb2.GetSessionRequest(token="kp_x.y"))
        assert error_reason(excinfo.value) == "UNAUTHENTICATED"


def test_tls_rejects_an_untrusted_server(tls_proxy: TlsProxy) -> None:
    # System roots do not know the throw-away certificate.
    with KeyportClient(tls_proxy.address, timeout=10, tls=True) as client:
        _unavailable(client)


def test_plaintext_client_cannot_talk_to_a_tls_port(tls_proxy: TlsProxy) -> None:
    with KeyportClient(tls_proxy.address, timeout=10) as client:
        _unavailable(client)


def test_mtls_with_the_expected_client_certificate(mtls_proxy: TlsProxy, certs: Certs) -> None:
    with KeyportClient(
        mtls_proxy.address,
        timeout=10,
        tls=True,
        root_certificates=certs.server.cert,
        private_key=certs.client.key,
        certificate_chain=certs.client.cert,
    ) as client:
        _round_trip(client)


@pytest.mark.parametrize("who", ["nobody", "stranger"])
def test_mtls_refuses_other_clients(mtls_proxy: TlsProxy, certs: Certs, who: str) -> None:
    stranger = certs.stranger if who == "stranger" else None
    with KeyportClient(
        mtls_proxy.address,
        timeout=10,
        tls=True,
        root_certificates=certs.server.cert,
        private_key=stranger.key if stranger else None,
        certificate_chain=stranger.cert if stranger else None,
    ) as client:
        _unavailable(client)
