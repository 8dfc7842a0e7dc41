/**
 * Passkeys with the SDK: the ceremony cookie helpers of src/passkeys.ts and
 * the passkey request in the challenge cookie of src/factors.ts on their
 * own, then the passkey calls against a live keyport (passkeys on for
 * `localhost`, see support/keyport-server.ts) and the README's pages
 * (examples/passkeys.ts), and one without `[passkeys]`. No authenticator
 * answers here: every answer is malformed, so these tests cover the
 * ceremonies' options and every refusal, not a passkey that signs in.
 */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { describe, it } from "node:test";

import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";

import {
  AssuranceLevel,
  CHALLENGE_COOKIE_NAME,
  challengeCookie,
  challengeFromCookie,
  challengePasskeyOptionsFromCookie,
  clearPasskeyCeremonyCookie,
  Code,
  errorReason,
  type KeyportClient,
  PASSKEY_CEREMONY_COOKIE_NAME,
  passkeyCeremonyCookie,
  passkeyCeremonyFromCookie,
  withSession,
} from "../src/index.js";
import {
  finishPasskeySignIn,
  finishRegistration,
  finishStepUp,
  startPasskeySignIn,
  startRegistration,
  startStepUp,
} from "../examples/passkeys.js";
import { failure, serveKeyport, uniqueEmail } from "./support/calls.js";

const PASSWORD = "correct horse battery staple";
/** A well-formed ceremony that Keyport never issued: kpk_ and 43 base64url characters. */
const UNKNOWN_CEREMONY = `kpk_${"A".repeat(43)}`;
/** An answer that is no `PublicKeyCredential`, and one that only looks like one. */
const MALFORMED_CREDENTIALS = [
  "",
  "not json",
  JSON.stringify({ id: "AAAA", rawId: "AAAA", type: "public-key", response: {} }),
];
/** A request options' JSON (`PublicKeyCredentialRequestOptionsJSON`), as far as the tests read it. */
interface RequestOptions {
  challenge: string;
  rpId: string;
  userVerification: string;
  allowCredentials?: unknown[];
}

/** What a browser sends back after `Set-Cookie: <setCookie>`: `name=value`. */
function cookieSentBack(setCookie: string): string {
  return setCookie.split(";")[0]!;
}

/** Expects `call` to fail with `reason` and gRPC `code`. */
async function refused(call: () => Promise<unknown>, reason: string, code: Code, what: string): Promise<void> {
  const err = await failure(call);
  assert.equal(errorReason(err), reason, `${what}: ${err.message}`);
  assert.equal(err.code, code, what);
}

describe("passkey ceremony cookie helpers", () => {
  const now = new Date("2026-12-02T10:00:00Z");
  const ceremony = `kpk_${"x".repeat(43)}`;

  it("passkeyCeremonyCookie keeps the ceremony HttpOnly, Secure and Lax until it expires, at most 5 minutes", () => {
    assert.equal(
      passkeyCeremonyCookie({ ceremony, expiresAt: timestampFromMs(now.getTime() + 300_000) }, now),
      `__Host-keyport_passkey=${ceremony}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=300`,
    );
    const cap = (expiresAt: number | undefined) =>
      passkeyCeremonyCookie({ ceremony, expiresAt: expiresAt === undefined ? undefined : timestampFromMs(expiresAt) }, now);
    assert.match(cap(now.getTime() + 3_600_000), /; Max-Age=300$/, "capped at 5 minutes");
    assert.match(cap(undefined), /; Max-Age=300$/, "no expiry: the cap");
    assert.match(cap(now.getTime() + 120_000), /; Max-Age=120$/, "until it expires");
    assert.match(cap(now.getTime() - 5_000), /; Max-Age=1$/, "expired: gone at once, never a session cookie");
    assert.match(cap(now.getTime() + 1_500), /; Max-Age=2$/, "rounded up");
    for (const bad of ["", "kpk a", "kpk;a", 'kpk"a', "kpk,a", "kpk\\a", "é"]) {
      assert.throws(() => passkeyCeremonyCookie({ ceremony: bad }), /passkey ceremony/, JSON.stringify(bad));
    }
    assert.equal(clearPasskeyCeremonyCookie(), "__Host-keyport_passkey=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0");
    assert.equal(PASSKEY_CEREMONY_COOKIE_NAME, "__Host-keyport_passkey");
  });

  it("passkeyCeremonyFromCookie finds the ceremony among a request's cookies, and only it", () => {
    const set = passkeyCeremonyCookie({ ceremony }, now);
    assert.equal(passkeyCeremonyFromCookie(cookieSentBack(set)), ceremony);
    assert.equal(
      passkeyCeremonyFromCookie(`a=1; ${CHALLENGE_COOKIE_NAME}=kpc_y; ${cookieSentBack(set)} ; __Host-keyport_session=kp_a.b`),
      ceremony,
    );
    assert.equal(passkeyCeremonyFromCookie("__Host-keyport_passkey=; __Host-keyport_passkey=kpk_y"), "kpk_y");
    for (const none of [
      null,
      undefined,
      "",
      "a=1",
      `${CHALLENGE_COOKIE_NAME}=kpc_y`,
      "__Host-keyport_passkey=",
      "keyport_passkey=kpk_y",
      "x__Host-keyport_passkey=kpk_y",
    ]) {
      assert.equal(passkeyCeremonyFromCookie(none), undefined, JSON.stringify(none));
    }
    assert.equal(challengeFromCookie(cookieSentBack(set)), undefined, "the challenge's helper does not read it");
  });
});

describe("the challenge cookie's passkey request", () => {
  const now = new Date("2026-12-02T10:00:00Z");
  const challenge = `kpc_${"x".repeat(43)}`;
  const expiresAt = timestampFromMs(now.getTime() + 300_000);
  const options = JSON.stringify({ challenge: "c2lnbg", rpId: "localhost", allowCredentials: [{ id: "a+b/c", type: "public-key" }], name: "Zoë" });

  it("rides after the challenge in base64url, as the Rust middleware writes it", () => {
    const set = challengeCookie({ challenge, expiresAt, passkeyOptions: options }, now);
    assert.equal(
      set,
      `__Host-keyport_challenge=${challenge}.${Buffer.from(options).toString("base64url")}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=300`,
    );
    const header = `a=1; ${cookieSentBack(set)}; b=2`;
    assert.equal(challengeFromCookie(header), challenge, "the challenge alone");
    assert.equal(challengePasskeyOptionsFromCookie(header), options, "the options, UTF-8 intact");
  });

  it("is absent for a challenge without a passkey, and for a cookie that does not hold one", () => {
    for (const passkeyOptions of [undefined, ""]) {
      const set = challengeCookie({ challenge, expiresAt, passkeyOptions }, now);
      assert.equal(cookieSentBack(set), `${CHALLENGE_COOKIE_NAME}=${challenge}`, JSON.stringify(passkeyOptions));
      assert.equal(challengePasskeyOptionsFromCookie(cookieSentBack(set)), undefined);
    }
    for (const none of [null, undefined, "", `${CHALLENGE_COOKIE_NAME}=${challenge}.`, `${CHALLENGE_COOKIE_NAME}=${challenge}.%%%`, `${CHALLENGE_COOKIE_NAME}=${challenge}._w`]) {
      assert.equal(challengePasskeyOptionsFromCookie(none), undefined, JSON.stringify(none));
    }
    assert.equal(challengeFromCookie(`${CHALLENGE_COOKIE_NAME}=.e30`), undefined, "no challenge before the options");
    assert.throws(() => challengeCookie({ challenge: "kpc_a.b" }), /challenge/, "a challenge with a dot");
    assert.throws(() => challengeCookie({ challenge: "", passkeyOptions: options }), /challenge/, "an empty challenge");
  });
});

describe("passkeys against a live keyport", () => {
  let keyport: KeyportClient;

  serveKeyport((live) => ({ keyport } = live));

  async function signedUp(label: string): Promise<{ email: string; token: string }> {
    const email = uniqueEmail(label);
    const { session } = await keyport.users.signUp({ email, password: PASSWORD, name: label });
    return { email, token: session!.token };
  }

  it("starts a passkey sign-in: a ceremony and request options for any of the site's passkeys", async () => {
    const start = await keyport.sessions.startPasskeySignIn({});
    assert.match(start.ceremony, /^kpk_[A-Za-z0-9_-]{43}$/);
    const expiresIn = timestampDate(start.expiresAt!).getTime() - Date.now();
    assert.ok(expiresIn > 0 && expiresIn <= 5 * 60_000, `the ceremony works for ${expiresIn} ms`);
    const options = JSON.parse(start.options) as RequestOptions;
    assert.equal(options.rpId, "localhost");
    assert.equal(options.userVerification, "required");
    assert.deepEqual(options.allowCredentials ?? [], [], "a discoverable credential: the browser offers them all");
    assert.notEqual((await keyport.sessions.startPasskeySignIn({})).ceremony, start.ceremony, "a new ceremony each time");
  });

  it("refuses a malformed answer with PASSKEY_INVALID, and the ceremony is used up by it", async () => {
    for (const credential of MALFORMED_CREDENTIALS) {
      const { ceremony } = await keyport.sessions.startPasskeySignIn({});
      await refused(
        () => keyport.sessions.finishPasskeySignIn({ ceremony, credential }),
        "PASSKEY_INVALID",
        Code.Unauthenticated,
        `answer ${JSON.stringify(credential)}`,
      );
      await refused(
        () => keyport.sessions.finishPasskeySignIn({ ceremony, credential }),
        "PASSKEY_INVALID",
        Code.Unauthenticated,
        "the used ceremony",
      );
    }
  });

  it("refuses a ceremony it never issued", async () => {
    const credential = MALFORMED_CREDENTIALS[2]!;
    for (const ceremony of ["", "kpk_short", UNKNOWN_CEREMONY, `kpc_${"A".repeat(43)}`]) {
      await refused(
        () => keyport.sessions.finishPasskeySignIn({ ceremony, credential }),
        "PASSKEY_INVALID",
        Code.Unauthenticated,
        `ceremony ${JSON.stringify(ceremony)}`,
      );
    }
  });

  it("of 6 parallel finishes with one ceremony, none signs in", async () => {
    const { ceremony } = await keyport.sessions.startPasskeySignIn({});
    const results = await Promise.allSettled(
      Array.from({ length: 6 }, () => keyport.sessions.finishPasskeySignIn({ ceremony, credential: MALFORMED_CREDENTIALS[2]! })),
    );
    for (const result of results) {
      assert.equal(result.status, "rejected", "no session");
      assert.equal(errorReason(result.status === "rejected" ? result.reason : undefined), "PASSKEY_INVALID");
    }
  });

  it("registers nothing for a user without passkeys, and refuses every wrong step", async () => {
    const ada = await signedUp("passkeys");
    const session = withSession(ada.token);
    assert.deepEqual((await keyport.passkeys.listPasskeys({}, session)).passkeys, []);
    assert.equal((await keyport.twoFactor.listFactors({}, session)).passkeys, 0);

    const start = await keyport.passkeys.startPasskeyRegistration({}, session);
    assert.match(start.ceremony, /^kpk_[A-Za-z0-9_-]{43}$/);
    const options = JSON.parse(start.options) as {
      rp: { id: string };
      user: { name: string };
      authenticatorSelection: { residentKey: string; userVerification: string };
    };
    assert.equal(options.rp.id, "localhost");
    assert.equal(options.user.name, ada.email);
    assert.equal(options.authenticatorSelection.residentKey, "required", "a discoverable credential");
    assert.equal(options.authenticatorSelection.userVerification, "required");

    await refused(
      () => keyport.passkeys.finishPasskeyRegistration({ ceremony: start.ceremony, credential: "{}", name: "" }, session),
      "PASSKEY_INVALID",
      Code.Unauthenticated,
      "a garbage credential",
    );
    assert.deepEqual((await keyport.passkeys.listPasskeys({}, session)).passkeys, [], "nothing was stored");

    const unknown = randomUUID();
    await refused(
      () => keyport.passkeys.renamePasskey({ id: unknown, name: "Laptop" }, session),
      "PASSKEY_NOT_FOUND",
      Code.NotFound,
      "renaming an unknown passkey",
    );
    await refused(
      () => keyport.passkeys.deletePasskey({ id: unknown }, session),
      "PASSKEY_NOT_FOUND",
      Code.NotFound,
      "deleting an unknown passkey",
    );
    await refused(
      () => keyport.twoFactor.startPasskeyStepUp({}, session),
      "SECOND_FACTOR_NOT_ENROLLED",
      Code.FailedPrecondition,
      "a step-up without a passkey",
    );
    await refused(
      () => keyport.twoFactor.stepUp({ answer: { case: "passkey", value: { ceremony: UNKNOWN_CEREMONY, credential: "{}" } } }, session),
      "SECOND_FACTOR_NOT_ENROLLED",
      Code.FailedPrecondition,
      "a step-up with a passkey answer, without a passkey",
    );
    const { session: after } = await keyport.sessions.getSession({ token: ada.token });
    assert.equal(after?.assuranceLevel, AssuranceLevel.AAL1, "nothing stepped the session up");
  });

  it("needs a session for every PasskeyService call", async () => {
    await refused(() => keyport.passkeys.listPasskeys({}), "UNAUTHENTICATED", Code.Unauthenticated, "ListPasskeys");
    await refused(
      () => keyport.passkeys.startPasskeyRegistration({}),
      "UNAUTHENTICATED",
      Code.Unauthenticated,
      "StartPasskeyRegistration",
    );
  });

  it("runs the README's passkey pages (examples/passkeys.ts)", async () => {
    // Sign-in: the options as JSON, the ceremony in a cookie of this browser only.
    const started = await startPasskeySignIn(keyport);
    assert.equal(started.headers.get("content-type"), "application/json");
    assert.equal((JSON.parse(await started.text()) as RequestOptions).rpId, "localhost");
    const cookie = cookieSentBack(started.headers.get("set-cookie")!);
    assert.match(passkeyCeremonyFromCookie(cookie)!, /^kpk_/);
    const answer = () =>
      new Request("https://localhost/sign-in/passkey", { method: "POST", headers: { cookie }, body: "{}" });
    for (const attempt of ["a malformed answer", "the used ceremony"]) {
      const finished = await finishPasskeySignIn(keyport, answer());
      assert.equal(finished.status, 400, attempt);
      assert.deepEqual(finished.headers.getSetCookie(), [clearPasskeyCeremonyCookie()], `${attempt}: no session cookie`);
    }
    const elsewhere = await finishPasskeySignIn(keyport, new Request("https://localhost/sign-in/passkey", { method: "POST", body: "{}" }));
    assert.equal(elsewhere.status, 400, "another browser, without the cookie");

    // Registration and step-up, signed in.
    const { email, token } = await signedUp("example");
    const registration = (await (await startRegistration(keyport, token)).json()) as { ceremony: string; options: { user: { name: string } } };
    assert.equal(registration.options.user.name, email);
    const body = JSON.stringify({ ceremony: registration.ceremony, credential: { id: "AAAA", type: "public-key" } });
    const registered = await finishRegistration(keyport, token, new Request("https://localhost/passkeys", { method: "POST", body }));
    assert.equal(registered.status, 400, "a credential that does not verify");
    assert.equal(errorReason(await failure(() => startStepUp(keyport, token))), "SECOND_FACTOR_NOT_ENROLLED");
    const stepUp = new Request("https://localhost/step-up/passkey", { method: "POST", body });
    assert.equal(errorReason(await failure(() => finishStepUp(keyport, token, stepUp))), "SECOND_FACTOR_NOT_ENROLLED");
  });
});

describe("passkeys on a server without [passkeys]", () => {
  let keyport: KeyportClient;

  serveKeyport((live) => ({ keyport } = live), { KEYPORT_PASSKEYS__RP_ID: "" });

  it("answers PASSKEYS_DISABLED (FAILED_PRECONDITION)", async () => {
    await refused(() => keyport.sessions.startPasskeySignIn({}), "PASSKEYS_DISABLED", Code.FailedPrecondition, "StartPasskeySignIn");
    const { session } = await keyport.users.signUp({ email: uniqueEmail("off"), password: PASSWORD, name: "" });
    await refused(
      () => keyport.passkeys.startPasskeyRegistration({}, withSession(session!.token)),
      "PASSKEYS_DISABLED",
      Code.FailedPrecondition,
      "StartPasskeyRegistration",
    );
  });
});
