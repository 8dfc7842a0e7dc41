/**
 * `AccessTokenVerifier` against tokens a live keyport issues
 * (`IssueAccessToken`) and the keys it publishes (`GetJwks` and
 * `/.well-known/jwks.json`): valid tokens, tampering, forged algorithms and
 * keys, the wrong issuer or audience, expiry, an unknown key id (one
 * refetch at most per cooldown), and key rotation.
 */

import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { after, before, describe, it } from "node:test";

import { generateKeyPair, SignJWT } from "jose";

import {
  AccessTokenError,
  type AccessTokenFailure,
  AccessTokenVerifier,
  Code,
  createKeyportClient,
  errorReason,
  type KeyportClient,
} from "../src/index.js";
import { failure } from "./support/calls.js";
import { type KeyportServer, startKeyport } from "./support/keyport-server.js";
import { type Signed, signUp } from "./support/web.js";

const ISSUER = "https://keyport.test";
const ACCESS_TOKENS = {
  KEYPORT_ACCESS_TOKENS__ISSUER: ISSUER,
  KEYPORT_ACCESS_TOKENS__AUDIENCES: '["orders","billing"]',
};

/** Expects `verifier` to refuse `token` for `why`. */
async function refused(verifier: AccessTokenVerifier, token: string, why: AccessTokenFailure): Promise<void> {
  await assert.rejects(verifier.verify(token), (err) => {
    assert.ok(err instanceof AccessTokenError, String(err));
    assert.equal(err.failure, why, err.message);
    return true;
  });
}

const b64 = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString("base64url");
const parts = (token: string): [Record<string, unknown>, Record<string, unknown>, string] => {
  const [header, payload, signature] = token.split(".");
  return [
    JSON.parse(Buffer.from(header!, "base64url").toString()) as Record<string, unknown>,
    JSON.parse(Buffer.from(payload!, "base64url").toString()) as Record<string, unknown>,
    signature!,
  ];
};

/** A live keyport issuing access tokens with `env`, and a client of it. */
function serveTokens(env: Record<string, string>, started: (server: KeyportServer, keyport: KeyportClient) => void): void {
  let server: KeyportServer | undefined;
  let keyport: KeyportClient | undefined;
  before(async () => {
    server = await startKeyport({ ...ACCESS_TOKENS, ...env });
    keyport = createKeyportClient(server.address, { timeoutMs: 10_000 });
    started(server, keyport);
  });
  after(async () => {
    keyport?.close();
    await server?.stop();
  });
}

describe("AccessTokenVerifier", () => {
  let server: KeyportServer;
  let keyport: KeyportClient;
  let ann: Signed;
  serveTokens({}, (s, k) => ((server = s), (keyport = k)));

  before(async () => {
    ann = await signUp(keyport, "jwt");
  });

  const issue = async (audience = "orders"): Promise<string> =>
    (await keyport.sessions.issueAccessToken({ token: ann.token, audience })).accessToken;

  it("verifies a token with the keys from GetJwks or the JWKS URL, and returns its claims", async () => {
    const token = await issue();
    for (const keys of [keyport, `http://${server.address}/.well-known/jwks.json`]) {
      const verifier = new AccessTokenVerifier({ issuer: ISSUER, audience: "orders", keys });
      const claims = await verifier.verify(token);
      assert.equal(claims.sub, ann.userId);
      assert.equal(claims.sid, ann.sessionId);
      assert.equal(claims.aud, "orders");
      assert.equal(claims.iss, ISSUER);
      assert.deepEqual(claims.roles, ["user"]);
      assert.equal(claims.permissions, undefined, "not configured");
      assert.ok(claims.exp > Date.now() / 1000 && claims.exp - claims.iat === 900, "the default 900 s");
      await verifier.verify(await issue());
      assert.equal(verifier.fetches, 1, "keys are fetched once");
    }
    const [header] = parts(token);
    assert.deepEqual([header.alg, header.typ], ["EdDSA", "at+jwt"]);
  });

  it("refuses the wrong audience or issuer; Keyport refuses an audience it does not serve", async () => {
    const verifier = new AccessTokenVerifier({ issuer: ISSUER, audience: "orders", keys: keyport });
    await refused(verifier, await issue("billing"), "wrong_audience");
    const elsewhere = new AccessTokenVerifier({ issuer: "https://other.test", audience: "orders", keys: keyport });
    await refused(elsewhere, await issue(), "wrong_issuer");
    const err = await failure(() => keyport.sessions.issueAccessToken({ token: ann.token, audience: "payroll" }));
    assert.deepEqual([err.code, errorReason(err)], [Code.InvalidArgument, "AUDIENCE_NOT_ALLOWED"]);
    const defaulted = await keyport.sessions.issueAccessToken({ token: ann.token, audience: "" });
    assert.equal((await verifier.verify(defaulted.accessToken)).aud, "orders", "empty: the first audience");
  });

  it("refuses a tampered payload or signature, and junk", async () => {
    const verifier = new AccessTokenVerifier({ issuer: ISSUER, audience: "orders", keys: keyport });
    const token = await issue();
    const [header, payload, signature] = token.split(".") as [string, string, string];
    const [, claims] = parts(token);
    await refused(verifier, `${header}.${b64({ ...claims, sub: "someone-else" })}.${signature}`, "bad_signature");
    await refused(verifier, `${header}.${b64({ ...claims, roles: ["admin"] })}.${signature}`, "bad_signature");
    const flipped = `${signature.slice(0, 10)}${signature[10] === "A" ? "B" : "A"}${signature.slice(11)}`;
    await refused(verifier, `${header}.${payload}.${flipped}`, "bad_signature");
    for (const junk of ["", "garbage", "a.b.c", `${header}.${payload}`, `${token}.x`, "x".repeat(100_000)]) {
      await refused(verifier, junk, "malformed");
    }
  });

  it("refuses alg none, HS256 forged with the public key, and a key of the wrong type under a known kid", async () => {
    const verifier = new AccessTokenVerifier({ issuer: ISSUER, audience: "orders", keys: keyport });
    const token = await issue();
    const [header, claims] = parts(token);
    const body = b64(claims);
    await refused(verifier, `${b64({ ...header, alg: "none" })}.${body}.`, "algorithm_not_allowed");
    // The classic confusion: the public key, which anyone has, as an HMAC secret.
    const jwks = JSON.parse((await keyport.sessions.getJwks({})).jwks) as { keys: { x: string }[] };
    for (const secret of [Buffer.from(jwks.keys[0]!.x, "base64url"), Buffer.from(JSON.stringify(jwks.keys[0]))]) {
      const signing = `${b64({ ...header, alg: "HS256" })}.${body}`;
      const mac = createHmac("sha256", secret).update(signing).digest("base64url");
      await refused(verifier, `${signing}.${mac}`, "algorithm_not_allowed");
    }
    await refused(verifier, `${b64({ ...header, alg: "RS256" })}.${body}.${parts(token)[2]}`, "algorithm_not_allowed");
    // ES256 signed by an attacker's key, naming Keyport's Ed25519 kid: no key of that type.
    const { privateKey } = await generateKeyPair("ES256");
    const forged = await new SignJWT(claims).setProtectedHeader({ alg: "ES256", typ: "at+jwt", kid: String(header.kid) }).sign(privateKey);
    await refused(verifier, forged, "unknown_key");
    // An attacker's Ed25519 key under Keyport's kid: the signature fails.
    const edKey = await generateKeyPair("EdDSA");
    const impostor = await new SignJWT(claims).setProtectedHeader({ ...header, alg: "EdDSA" }).sign(edKey.privateKey);
    await refused(verifier, impostor, "bad_signature");
  });

  it("fetches the keys again for an unknown kid, at most once per cooldown", async () => {
    const verifier = new AccessTokenVerifier({ issuer: ISSUER, audience: "orders", keys: keyport, refetchCooldownMs: 400 });
    const token = await issue();
    const [, claims] = parts(token);
    await verifier.verify(token);
    assert.equal(verifier.fetches, 1);
    const { privateKey } = await generateKeyPair("EdDSA");
    const forged = await new SignJWT(claims).setProtectedHeader({ alg: "EdDSA", typ: "at+jwt", kid: "not-a-keyport-kid" }).sign(privateKey);
    await refused(verifier, forged, "unknown_key");
    assert.equal(verifier.fetches, 1, "within the cooldown: no fetch");
    await new Promise((resolve) => setTimeout(resolve, 450));
    await Promise.all(Array.from({ length: 8 }, () => refused(verifier, forged, "unknown_key")));
    assert.equal(verifier.fetches, 2, "one refetch for 8 parallel forgeries");
    await refused(verifier, forged, "unknown_key");
    assert.equal(verifier.fetches, 2);
    await verifier.verify(token);
  });

  it("answers ACCESS_TOKENS_DISABLED from a server without [access_tokens]", async () => {
    const plain = await startKeyport();
    const client = createKeyportClient(plain.address, { timeoutMs: 10_000 });
    try {
      const bob = await signUp(client, "nojwt");
      const err = await failure(() => client.sessions.issueAccessToken({ token: bob.token, audience: "" }));
      assert.deepEqual([err.code, errorReason(err)], [Code.FailedPrecondition, "ACCESS_TOKENS_DISABLED"]);
    } finally {
      client.close();
      await plain.stop();
    }
  });
});

describe("AccessTokenVerifier and short-lived tokens", () => {
  let keyport: KeyportClient;
  serveTokens({ KEYPORT_ACCESS_TOKENS__TTL_SECS: "1" }, (_, k) => (keyport = k));

  it("refuses an expired token, within the leeway it is given", async () => {
    const ann = await signUp(keyport, "expiring");
    const { accessToken } = await keyport.sessions.issueAccessToken({ token: ann.token, audience: "orders" });
    const strict = new AccessTokenVerifier({ issuer: ISSUER, audience: "orders", keys: keyport, clockToleranceSec: 0 });
    const lenient = new AccessTokenVerifier({ issuer: ISSUER, audience: "orders", keys: keyport });
    await strict.verify(accessToken);
    await new Promise((resolve) => setTimeout(resolve, 2_100));
    await refused(strict, accessToken, "expired");
    await lenient.verify(accessToken); // the default 30 s leeway
  });
});

describe("AccessTokenVerifier across a key rotation", () => {
  let keyport: KeyportClient;
  let server: KeyportServer;
  serveTokens(
    { KEYPORT_ACCESS_TOKENS__ROTATE_AFTER_SECS: "2", KEYPORT_ACCESS_TOKENS__JWKS_MAX_AGE_SECS: "1" },
    (s, k) => ((server = s), (keyport = k)),
  );

  it("verifies tokens of the old key after the rotation and picks the new kid up", async () => {
    const ann = await signUp(keyport, "rotation");
    const issue = async (): Promise<string> =>
      (await keyport.sessions.issueAccessToken({ token: ann.token, audience: "orders" })).accessToken;
    const old = await issue();
    const verifier = new AccessTokenVerifier({
      issuer: ISSUER,
      audience: "orders",
      keys: `http://${server.address}/.well-known/jwks.json`,
      refetchCooldownMs: 100,
    });
    await verifier.verify(old);
    const oldKid = parts(old)[0].kid;
    let rotated = old;
    const deadline = Date.now() + 15_000;
    while (parts(rotated)[0].kid === oldKid) {
      assert.ok(Date.now() < deadline, "no new signing key within 15 s");
      await new Promise((resolve) => setTimeout(resolve, 250));
      rotated = await issue();
    }
    assert.equal((await verifier.verify(rotated)).sub, ann.userId, "the new kid is fetched");
    assert.equal(verifier.fetches, 2);
    await verifier.verify(old);
    // A verifier that never saw the old key still finds it published.
    const fresh = new AccessTokenVerifier({ issuer: ISSUER, audience: "orders", keys: keyport });
    await fresh.verify(old);
    await fresh.verify(rotated);
  });
});
