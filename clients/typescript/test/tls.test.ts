/**
 * TLS and mutual TLS against a real keyport started with `[server]
 * tls_cert_file`, `tls_key_file` and `tls_client_ca_file`, with certificates
 * made by `openssl`; the mTLS client is the README's (examples/tls.ts).
 */

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { after, before, describe, it } from "node:test";

import { createKeyportClient, errorReason, type KeyportClient } from "@keyport/client";

import { mutualTlsClient } from "../examples/tls.js";
import { createPki, type Pki } from "./support/pki.js";
import { type KeyportServer, startKeyport } from "./support/keyport-server.js";

const PASSWORD = "correct horse battery staple";

/** Signs up and validates the token: a real call each way. */
async function roundTrip(keyport: KeyportClient): Promise<void> {
  const email = `tls-${randomUUID()}@example.com`;
  const { session } = await keyport.users.signUp({ email, password: PASSWORD, name: "" });
  const { user } = await keyport.sessions.getSession({ token: session!.token });
  assert.equal(user?.email, email);
}

/** Expects the call to fail before Keyport answers: no reason, and `pattern` in the message. */
async function refused(keyport: KeyportClient, pattern: RegExp): Promise<void> {
  try {
    await keyport.sessions.getSession({ token: "kp_x.y" });
  } catch (err) {
    assert.equal(errorReason(err), undefined);
    assert.match(String(err), pattern);
    return;
  } finally {
    keyport.close();
  }
  assert.fail("the call succeeded but should have been refused");
}

describe("TLS", () => {
  let pki: Pki;
  let tlsServer: KeyportServer;
  let mtlsServer: KeyportServer;

  before(async () => {
    pki = createPki();
    [tlsServer, mtlsServer] = await Promise.all([startKeyport(pki.serverEnv(false)), startKeyport(pki.serverEnv(true))]);
  });

  after(async () => {
    await Promise.all([tlsServer?.stop(), mtlsServer?.stop()]);
    pki?.remove();
  });

  it("connects with the server's CA, over gRPC and gRPC-web", async () => {
    for (const transport of ["grpc", "grpc-web"] as const) {
      const keyport = createKeyportClient(tlsServer.address, { transport, tls: { ca: readFileSync(pki.path("ca.pem")) } });
      await roundTrip(keyport);
      // Errors keep their details through TLS.
      await assert.rejects(keyport.sessions.getSession({ token: "kp_x.y" }), (err) => errorReason(err) === "UNAUTHENTICATED");
      keyport.close();
    }
    // An https:// address works the same as `tls` with a bare host:port.
    const byUrl = createKeyportClient(`https://${tlsServer.address}`, { tls: { ca: readFileSync(pki.path("ca.pem")) } });
    await roundTrip(byUrl);
    byUrl.close();
  });

  it("refuses a server its CA did not sign, and plaintext to a TLS port", async () => {
    await refused(createKeyportClient(`https://${tlsServer.address}`, { timeoutMs: 5_000 }), /certificate/);
    await refused(
      createKeyportClient(tlsServer.address, { timeoutMs: 5_000, tls: { ca: readFileSync(pki.path("other-ca.pem")) } }),
      /certificate/,
    );
    await refused(createKeyportClient(tlsServer.address, { timeoutMs: 5_000 }), /./);
  });

  it("presents a client certificate for mutual TLS (examples/tls.ts)", async () => {
    const keyport = mutualTlsClient(mtlsServer.address, pki.dir);
    await roundTrip(keyport);
    keyport.close();
  });

  it("is refused by a mutual-TLS server without a trusted client certificate", async () => {
    const ca = readFileSync(pki.path("ca.pem"));
    await refused(createKeyportClient(mtlsServer.address, { timeoutMs: 5_000, tls: { ca } }), /./);
    const stranger = { cert: readFileSync(pki.path("stranger.pem")), key: readFileSync(pki.path("stranger.key")) };
    await refused(createKeyportClient(mtlsServer.address, { timeoutMs: 5_000, tls: { ca, ...stranger } }), /./);
  });
});
