/**
 * Second factors with the SDK: `signInChallenge` on its own, then an
 * authenticator app against a live keyport (EnrollTotp, ConfirmTotp, SignIn's
 * challenge, CompleteSignIn with TOTP and backup codes) and the README's
 * example of the flow (examples/second-factor.ts). The test plays the app
 * (support/totp.ts) on the real clock: it confirms with the current step's
 * code and completes sign-ins with the next step's, since a step that was
 * used once is refused.
 */

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import { timestampDate } from "@bufbuild/protobuf/wkt";

import {
  AssuranceLevel,
  Code,
  create,
  errorReason,
  FinishEmailSignInResponseSchema,
  type KeyportClient,
  SecondFactor,
  type SignInChallenge,
  SignInChallengeSchema,
  SignInResponseSchema,
  signInChallenge,
  withSession,
} from "../src/index.js";
import { FinishOAuthResponseSchema } from "../src/gen/keyport/v1/oauth_service_pb.js";
import { signIn as exampleSignIn } from "../examples/second-factor.js";
import { failure, serveKeyport, uniqueEmail } from "./support/calls.js";
import type { KeyportServer } from "./support/keyport-server.js";
import { nextTotp, totp, wrongTotp } from "./support/totp.js";

const PASSWORD = "correct horse battery staple";
/** A well-formed challenge that Keyport never issued: kpc_ and 43 base64url characters. */
const UNKNOWN_CHALLENGE = `kpc_${"A".repeat(43)}`;

/** Expects `call` to fail with `reason` and gRPC `code`. */
async function refused(call: () => Promise<unknown>, reason: string, code: Code, what: string): Promise<void> {
  const err = await failure(call);
  assert.equal(errorReason(err), reason, `${what}: ${err.message}`);
  assert.equal(err.code, code, what);
}

describe("signInChallenge", () => {
  const challenge = create(SignInChallengeSchema, { challenge: "kpc_x", factors: [SecondFactor.TOTP] });

  it("returns the challenge of SignIn, FinishEmailSignIn and FinishOAuth", () => {
    assert.equal(signInChallenge(create(SignInResponseSchema, { outcome: { case: "challenge", value: challenge } })), challenge);
    assert.equal(signInChallenge(create(FinishEmailSignInResponseSchema, { challenge })), challenge);
    assert.equal(signInChallenge(create(FinishOAuthResponseSchema, { outcome: { case: "challenge", value: challenge } })), challenge);
  });

  it("is undefined for a session, a linked account or nothing", () => {
    const grant = { token: "kp_a.b" };
    assert.equal(signInChallenge(create(SignInResponseSchema, { outcome: { case: "session", value: grant } })), undefined);
    assert.equal(signInChallenge(create(SignInResponseSchema)), undefined);
    assert.equal(signInChallenge(create(FinishEmailSignInResponseSchema, { session: grant })), undefined);
    assert.equal(
      signInChallenge(create(FinishOAuthResponseSchema, { outcome: { case: "linked", value: { providerId: "github" } } })),
      undefined,
    );
  });
});

describe("the test's authenticator app", () => {
  it("computes the codes of RFC 6238's SHA-1 test vectors", () => {
    const secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"; // base32 of "12345678901234567890"
    for (const [secs, code] of [
      [59, "287082"],
      [1_111_111_109, "081804"],
      [1_111_111_111, "050471"],
      [1_234_567_890, "005924"],
      [2_000_000_000, "279037"],
    ] as const) {
      assert.equal(totp(secret, secs * 1000), code, `at ${secs}`);
    }
  });
});

describe("second factors against a live keyport", () => {
  let server: KeyportServer;
  let keyport: KeyportClient;

  /** A user with the authenticator app on: the secret the phone holds and the printed backup codes. */
  interface Enrolled {
    email: string;
    token: string;
    secret: string;
    backupCodes: string[];
  }

  async function enrolled(label: string): Promise<Enrolled> {
    const email = uniqueEmail(label);
    const { session } = await keyport.users.signUp({ email, password: PASSWORD, name: label });
    const token = session!.token;
    const started = await keyport.twoFactor.enrollTotp({}, withSession(token));
    assert.match(started.secret, /^[A-Z2-7]{32}$/, "160 bits in base32");
    assert.ok(started.otpauthUri.startsWith("otpauth://totp/"), started.otpauthUri);
    assert.ok(new TextDecoder().decode(started.qrCodeSvg).includes("<svg"), "the QR code is an SVG");
    const expiresIn = timestampDate(started.expiresAt!).getTime() - Date.now();
    assert.ok(expiresIn > 0 && expiresIn <= 11 * 60_000, `the enrolment lapses in ${expiresIn} ms`);

    const confirmed = await keyport.twoFactor.confirmTotp({ code: totp(started.secret) }, withSession(token));
    assert.equal(confirmed.backupCodes.length, 10);
    assert.equal(new Set(confirmed.backupCodes).size, 10, "ten different codes");
    assert.equal(confirmed.session?.assuranceLevel, AssuranceLevel.AAL2, "the confirming session passed the factor");
    return { email, token, secret: started.secret, backupCodes: confirmed.backupCodes };
  }

  async function challenged(email: string): Promise<SignInChallenge> {
    const response = await keyport.sessions.signIn({ email, password: PASSWORD });
    const challenge = signInChallenge(response);
    assert.ok(challenge, `SignIn answered ${response.outcome.case}, not a challenge`);
    assert.equal(response.outcome.case, "challenge");
    return challenge;
  }

  serveKeyport((live) => ({ server, keyport } = live));

  it("signs in past the authenticator app only, with an AAL2 session", async () => {
    const ada = await enrolled("totp");
    const factors = await keyport.twoFactor.listFactors({}, withSession(ada.token));
    assert.equal(factors.totpEnabled, true);
    assert.equal(factors.backupCodesLeft, 10);
    const { user } = await keyport.users.getCurrentUser({}, withSession(ada.token));
    assert.equal(user?.twoFactorEnabled, true);

    const challenge = await challenged(ada.email);
    assert.match(challenge.challenge, /^kpc_[A-Za-z0-9_-]{43}$/);
    assert.deepEqual(challenge.factors, [SecondFactor.TOTP, SecondFactor.BACKUP_CODE]);
    assert.ok(timestampDate(challenge.expiresAt!).getTime() > Date.now());

    await refused(
      () => keyport.sessions.completeSignIn({ challenge: challenge.challenge, answer: { case: "totpCode", value: wrongTotp(ada.secret) } }),
      "SECOND_FACTOR_INVALID",
      Code.Unauthenticated,
      "a wrong code",
    );
    // The challenge still works after a wrong answer; the next step's code signs in.
    const code = nextTotp(ada.secret);
    const completed = await keyport.sessions.completeSignIn({ challenge: challenge.challenge, answer: { case: "totpCode", value: code } });
    const grant = completed.session;
    assert.ok(grant, "CompleteSignIn answers a session");
    assert.ok(grant.token.startsWith("kp_"), grant.token);
    assert.equal(grant.session?.assuranceLevel, AssuranceLevel.AAL2);
    assert.equal(grant.user?.email, ada.email);
    assert.equal(completed.backupCodesLeft, 10);
    const { session } = await keyport.sessions.getSession({ token: grant.token });
    assert.equal(session?.assuranceLevel, AssuranceLevel.AAL2);

    await refused(
      () => keyport.sessions.completeSignIn({ challenge: challenge.challenge, answer: { case: "totpCode", value: code } }),
      "SIGN_IN_CHALLENGE_INVALID",
      Code.InvalidArgument,
      "the used challenge",
    );
    const again = await challenged(ada.email);
    await refused(
      () => keyport.sessions.completeSignIn({ challenge: again.challenge, answer: { case: "totpCode", value: code } }),
      "SECOND_FACTOR_INVALID",
      Code.Unauthenticated,
      "a code of a step already used",
    );

    await refused(
      () => keyport.twoFactor.enrollTotp({}, withSession(grant.token)),
      "SECOND_FACTOR_ALREADY_ENROLLED",
      Code.AlreadyExists,
      "EnrollTotp with the app on",
    );
  });

  it("takes each backup code once", async () => {
    const bob = await enrolled("backup");
    const [backupCode] = bob.backupCodes;
    assert.match(backupCode!, /^[a-z2-7]{4}(-[a-z2-7]{4}){3}$/);

    const first = await challenged(bob.email);
    const completed = await keyport.sessions.completeSignIn({
      challenge: first.challenge,
      answer: { case: "backupCode", value: backupCode! },
    });
    assert.equal(completed.session?.session?.assuranceLevel, AssuranceLevel.AAL2);
    assert.equal(completed.backupCodesLeft, 9);

    const second = await challenged(bob.email);
    await refused(
      () => keyport.sessions.completeSignIn({ challenge: second.challenge, answer: { case: "backupCode", value: backupCode! } }),
      "SECOND_FACTOR_INVALID",
      Code.Unauthenticated,
      "a used backup code",
    );
    assert.equal((await keyport.twoFactor.listFactors({}, withSession(bob.token))).backupCodesLeft, 9);
  });

  it("refuses a challenge it never issued", async () => {
    for (const challenge of [UNKNOWN_CHALLENGE, "", "kpc_short"]) {
      await refused(
        () => keyport.sessions.completeSignIn({ challenge, answer: { case: "totpCode", value: "123456" } }),
        "SIGN_IN_CHALLENGE_INVALID",
        Code.InvalidArgument,
        `challenge ${JSON.stringify(challenge)}`,
      );
    }
  });

  it("runs the README's sign-in (examples/second-factor.ts)", async () => {
    // No second factor: the password alone signs in, at AAL1.
    const email = uniqueEmail("plain");
    await keyport.users.signUp({ email, password: PASSWORD, name: "" });
    const plain = await exampleSignIn(keyport, email, PASSWORD, () => assert.fail("no code is asked for"));
    assert.equal(plain.session?.assuranceLevel, AssuranceLevel.AAL1);

    // A mistyped code, then the app's: asked twice, signed in at AAL2.
    const carol = await enrolled("example");
    let asked = 0;
    const grant = await exampleSignIn(keyport, carol.email, PASSWORD, async () =>
      ++asked === 1 ? wrongTotp(carol.secret) : nextTotp(carol.secret),
    );
    assert.equal(asked, 2, "asked twice");
    assert.equal(grant.session?.assuranceLevel, AssuranceLevel.AAL2);

    // A backup code, typed in capitals with spaces.
    const byBackupCode = await exampleSignIn(keyport, carol.email, PASSWORD, async () =>
      carol.backupCodes[0]!.toUpperCase().replaceAll("-", " "),
    );
    assert.equal(byBackupCode.user?.email, carol.email);

    // Three wrong codes: the error comes through.
    const wrong = wrongTotp(carol.secret);
    await refused(
      () => exampleSignIn(keyport, carol.email, PASSWORD, async () => wrong),
      "SECOND_FACTOR_INVALID",
      Code.Unauthenticated,
      "three wrong codes",
    );
  });
});
