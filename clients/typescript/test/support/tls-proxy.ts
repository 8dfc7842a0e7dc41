/**
 * A TLS-terminating TCP proxy in front of a plain-text keyport, with a
 * throw-away self-signed certificate made by `openssl`: Keyport itself has
 * no TLS setting yet, and this lets the tests drive the client's TLS options
 * (https URL, private CA) against the real server.
 */

import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect, type Server, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createServer } from "node:tls";

/** A running proxy. */
export interface TlsProxy {
  /** `127.0.0.1:port` of the TLS side (the certificate names that IP and localhost). */
  readonly address: string;
  /** PEM of the self-signed certificate, to trust as a CA. */
  readonly ca: string;
  /** Stops the proxy and drops its connections. */
  close(): Promise<void>;
}

/** Whether `openssl` can be run here. */
export function haveOpenssl(): boolean {
  try {
    execFileSync("openssl", ["version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

/**
 * Starts a proxy on 127.0.0.1 that accepts TLS (ALPN h2 and http/1.1) and
 * forwards the plain bytes to `target` (`host:port`).
 */
export async function startTlsProxy(target: string): Promise<TlsProxy> {
  const dir = mkdtempSync(join(tmpdir(), "keyport-ts-tls-"));
  let cert: string;
  let key: string;
  try {
    execFileSync(
      "openssl",
      [
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem"), "-days", "1",
        "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
      ],
      { stdio: "ignore" },
    );
    cert = readFileSync(join(dir, "cert.pem"), "utf8");
    key = readFileSync(join(dir, "key.pem"), "utf8");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const separator = target.lastIndexOf(":");
  const host = target.slice(0, separator);
  const port = Number(target.slice(separator + 1));
  const sockets = new Set<Socket>();
  const server: Server = createServer({ cert, key, ALPNProtocols: ["h2", "http/1.1"] }, (tlsSocket) => {
    const upstream = connect(port, host);
    for (const socket of [tlsSocket, upstream]) {
      sockets.add(socket);
      socket.once("close", () => sockets.delete(socket));
      socket.on("error", () => {
        tlsSocket.destroy();
        upstream.destroy();
      });
    }
    tlsSocket.pipe(upstream).pipe(tlsSocket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address === "string") {
    throw new Error("TLS proxy has no TCP address");
  }
  return {
    address: `127.0.0.1:${address.port}`,
    ca: cert,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) {
          socket.destroy();
        }
        server.close(() => resolve());
      }),
  };
}
