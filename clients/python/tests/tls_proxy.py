"""A TLS-terminating TCP proxy in front of the plaintext test server.

Keyport has no TLS setting yet (TLS is the transport's job), so this proxy
lets the tests drive the client's ``tls``, ``root_certificates`` and mTLS
options against the real server. Certificates are throw-away, made with the
``openssl`` command.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional


@dataclass(frozen=True)
class Pem:
    """A self-signed certificate and its private key, PEM-encoded."""

    cert: bytes
    key: bytes
    cert_path: Path
    key_path: Path


def self_signed(directory: Path, name: str, common_name: str) -> Pem:
    """Makes a self-signed EC certificate valid for localhost and 127.0.0.1."""
    cert_path = directory / f"{name}.crt"
    key_path = directory / f"{name}.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", f"/CN={common_name}",
            "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key_path), "-out", str(cert_path),
        ],
        check=True,
        capture_output=True,
    )
    return Pem(cert_path.read_bytes(), key_path.read_bytes(), cert_path, key_path)


class TlsProxy:
    """Accepts TLS (ALPN h2) on 127.0.0.1 and forwards plain bytes to ``target``."""

    def __init__(self, target: str, server: Pem, client_ca: Optional[Pem] = None) -> None:
        """Starts listening; with ``client_ca`` every client must present a certificate it signed."""
        host, port = target.rsplit(":", 1)
        self._target = (host, int(port))
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._context.load_cert_chain(server.cert_path, server.key_path)
        self._context.set_alpn_protocols(["h2"])
        if client_ca is not None:
            self._context.verify_mode = ssl.CERT_REQUIRED
            self._context.load_verify_locations(cafile=str(client_ca.cert_path))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = "127.0.0.1:%d" % self._listener.getsockname()[1]
        self._sockets: List[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)

    def _accept(self) -> None:
        while True:
            try:
                raw, _peer = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(raw,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        self._track(raw)
        try:
            tls = self._context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()  # failed handshake: the client sees a TLS error
            return
        self._track(tls)
        try:
            upstream = socket.create_connection(self._target)
        except OSError:
            tls.close()
            return
        self._track(upstream)
        threading.Thread(target=self._pump, args=(upstream, tls), daemon=True).start()
        self._pump(tls, upstream)

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            _drop(source)
            _drop(sink)

    def close(self) -> None:
        """Stops listening and drops every connection."""
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _drop(sock)


def _drop(sock: socket.socket) -> None:
    """Shuts a socket down (waking threads blocked on it) and closes it."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
