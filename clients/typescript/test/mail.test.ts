/**
 * The mailbox flows with the SDK: the helpers of src/mail.ts, and the
 * challenge cookie helpers of src/factors.ts, on their own, then password
 * reset, email verification and email sign-in against a live
 * keyport that mails through a real Mailpit, and the README's examples of
 * them (examples/password-reset.ts, examples/email-sign-in.ts).
 *
 * Each test signs up addresses of its own: a recipient gets at most 3 link
 * mails at once (`mail.per_recipient_burst`), and the server is shared.
 */

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { timestampDate, timestampFromMs } from "@bufbuild/protobuf/wkt";

import {
  CHALLENGE_COOKIE_NAME,
  challengeCookie,
  challengeFromCookie,
  clearChallengeCookie,
  clearEmailSignInCookie,
  Code,
  createKeyportClient,
  EMAIL_SIGN_IN_COOKIE_NAME,
  emailSignInBinding,
  emailSignInCookie,
  errorReason,
  fieldViolations,
  type KeyportClient,
  tokenFromLink,
  withSession,
} from "../src/index.js";
import { finishEmailSignIn, startEmailSignIn } from "../examples/email-sign-in.js";
import { forgotPassword, resetPassword } from "../examples/password-reset.js";
import { failure, serveKeyport, uniqueEmail } from "./support/calls.js";
import { type KeyportServer, startKeyport } from "./support/keyport-server.js";
import { codeIn, type Delivered, linkIn, Mailpit, PUBLIC_BASE_URL } from "./support/mailpit.js";
import { nextTotp, totp } from "./support/totp.js";

const PASSWORD = "correct horse battery staple";
/** A password that passes the policy and is not the sign-up one. */
const NEW_PASSWORD = "a fresh passphrase for today";
/** The pages of the links (the default `mail.*_path` settings). */
const RESET_PATH = "/reset-password";
const VERIFY_PATH = "/verify-email";
const SIGN_IN_PATH = "/sign-in/email";
/** A well-formed token that Keyport never issued: kpm_ and 43 base64url characters. */
const UNKNOWN_TOKEN = `kpm_${"A".repeat(43)}`;

/** Expects `call` to fail with EMAIL_TOKEN_INVALID (gRPC INVALID_ARGUMENT). */
async function tokenInvalid(call: () => Promise<unknown>, what = "the call"): Promise<void> {
  const err = await failure(call);
  assert.equal(errorReason(err), "EMAIL_TOKEN_INVALID", `${what}: ${err.message}`);
  assert.equal(err.code, Code.InvalidArgument, what);
}

/** The token of the mail's link to `path`, read as a web app's page would: from the URL. */
function tokenOf(mail: Delivered, path: string): string {
  const link = linkIn(mail, path);
  assert.ok(link, `no link to ${path} in:\n${mail.text}`);
  const token = tokenFromLink(link);
  assert.ok(token !== undefined && token.startsWith("kpm_") && token.length === 47, link);
  return token;
}

function codeOf(mail: Delivered): string {
  const code = codeIn(mail);
  assert.ok(code !== undefined && /^\d{6}$/.test(code), mail.text);
  return code;
}

/** Another six-digit code than `code`. */
function wrongCode(code: string): string {
  return code === "000000" ? "000001" : "000000";
}

/** What a browser sends back after `Set-Cookie: <setCookie>`: `name=value`. */
function cookieSentBack(setCookie: string): string {
  return setCookie.split(";")[0]!;
}

describe("mail helpers", () => {
  it("tokenFromLink reads the one token of a link, absolute or a request's path", () => {
    const token = `kpm_${"x".repeat(43)}`;
    assert.equal(tokenFromLink(`https://app.example.com/reset-password?token=${token}`), token);
    assert.equal(tokenFromLink(`/reset-password?token=${token}&utm_source=mail`), token);
    assert.equal(tokenFromLink(new URL(`https://app.example.com/verify-email?token=${token}`)), token);
    assert.equal(tokenFromLink(`  https://app.example.com/x?token=${token}  \n`), token, "pasted with spaces");
    assert.equal(tokenFromLink("/x?token=kpm_a%2Db"), "kpm_a-b", "percent-decoded");
    assert.equal(tokenFromLink("?token=kpm_abc"), "kpm_abc");
    for (const bad of [
      "",
      "   ",
      "https://app.example.com/reset-password",
      "https://app.example.com/x?token=",
      "https://app.example.com/x?token=%20",
      "https://app.example.com/x?tokens=kpm_abc",
      "https://app.example.com/x?token=kpm_a&token=kpm_b",
      "http://[::1/x?token=kpm_abc",
    ]) {
      assert.equal(tokenFromLink(bad), undefined, JSON.stringify(bad));
    }
  });

  it("emailSignInCookie keeps the binding HttpOnly, Secure and Lax until the sign-in expires", () => {
    const now = new Date("2026-12-02T10:00:00Z");
    const inFiveMinutes = timestampFromMs(now.getTime() + 300_000);
    assert.equal(
      emailSignInCookie({ binding: "abc_DEF-123", expiresAt: inFiveMinutes }, now),
      "__Host-keyport_email=abc_DEF-123; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=300",
    );
    const cap = (expiresAt: number | undefined) =>
      emailSignInCookie({ binding: "b", expiresAt: expiresAt === undefined ? undefined : timestampFromMs(expiresAt) }, now);
    assert.match(cap(now.getTime() + 3_600_000), /; Max-Age=600$/, "capped at 10 minutes");
    assert.match(cap(undefined), /; Max-Age=600$/, "no expiry: the longest a sign-in lasts");
    assert.match(cap(now.getTime() - 5_000), /; Max-Age=1$/, "expired: gone at once, never a session cookie");
    assert.match(cap(now.getTime() + 1_500), /; Max-Age=2$/, "rounded up");
    for (const binding of ["", "a b", "a;b", 'a"b', "a,b", "a\\b", "é"]) {
      assert.throws(() => emailSignInCookie({ binding }), /binding/, JSON.stringify(binding));
    }
    assert.equal(
      clearEmailSignInCookie(),
      "__Host-keyport_email=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0",
    );
    assert.equal(EMAIL_SIGN_IN_COOKIE_NAME, "__Host-keyport_email");
  });

  it("emailSignInBinding finds the binding among a request's cookies", () => {
    assert.equal(emailSignInBinding("__Host-keyport_email=abc"), "abc");
    assert.equal(emailSignInBinding("a=1; __Host-keyport_email=abc ; b=2"), "abc");
    assert.equal(emailSignInBinding("__Host-keyport_email=; __Host-keyport_email=abc"), "abc");
    for (const none of [null, undefined, "", "a=1", "__Host-keyport_email=", "keyport_email=abc", "x__Host-keyport_email=abc"]) {
      assert.equal(emailSignInBinding(none), undefined, JSON.stringify(none));
    }
    const set = emailSignInCookie({ binding: "round-trip_1" });
    assert.equal(emailSignInBinding(`other=x; ${cookieSentBack(set)}`), "round-trip_1");
  });
});

describe("second-factor challenge cookie helpers", () => {
  const now = new Date("2026-12-02T10:00:00Z");
  const challenge = `kpc_${"x".repeat(43)}`;

  it("challengeCookie keeps the challenge HttpOnly, Secure and Lax until it expires, at most 10 minutes", () => {
    assert.equal(
      challengeCookie({ challenge, expiresAt: timestampFromMs(now.getTime() + 300_000) }, now),
      `__Host-keyport_challenge=${challenge}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=300`,
    );
    const cap = (expiresAt: number | undefined) =>
      challengeCookie({ challenge, expiresAt: expiresAt === undefined ? undefined : timestampFromMs(expiresAt) }, now);
    assert.match(cap(now.getTime() + 3_600_000), /; Max-Age=600$/, "capped at 10 minutes");
    assert.match(cap(now.getTime() + 600_000), /; Max-Age=600$/, "10 minutes exactly");
    assert.match(cap(now.getTime() + 601_000), /; Max-Age=600$/, "just over 10 minutes");
    assert.match(cap(undefined), /; Max-Age=600$/, "no expiry: the cap");
    assert.match(cap(now.getTime() - 5_000), /; Max-Age=1$/, "expired: gone at once, never a session cookie");
    assert.match(cap(now.getTime() + 1_500), /; Max-Age=2$/, "rounded up");
    for (const bad of ["", "kpc a", "kpc;a", 'kpc"a', "kpc,a", "kpc\\a", "é"]) {
      assert.throws(() => challengeCookie({ challenge: bad }), /challenge/, JSON.stringify(bad));
    }
    assert.equal(clearChallengeCookie(), "__Host-keyport_challenge=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0");
    assert.equal(CHALLENGE_COOKIE_NAME, "__Host-keyport_challenge");
  });

  it("challengeFromCookie finds the challenge among a request's cookies", () => {
    // Round trip: what the browser sends back after challengeCookie.
    const set = challengeCookie({ challenge, expiresAt: timestampFromMs(now.getTime() + 300_000) }, now);
    assert.equal(challengeFromCookie(cookieSentBack(set)), challenge);
    // Other cookies around it, the email sign-in's and the session's among them.
    assert.equal(
      challengeFromCookie(`a=1; ${EMAIL_SIGN_IN_COOKIE_NAME}=b1nd; ${cookieSentBack(set)} ; __Host-keyport_session=kp_a.b`),
      challenge,
    );
    assert.equal(challengeFromCookie("__Host-keyport_challenge=; __Host-keyport_challenge=kpc_y"), "kpc_y");
    // Missing: no header, no such cookie, an empty one, look-alike names.
    for (const none of [
      null,
      undefined,
      "",
      "a=1",
      `${EMAIL_SIGN_IN_COOKIE_NAME}=b1nd`,
      "__Host-keyport_challenge=",
      "keyport_challenge=kpc_y",
      "x__Host-keyport_challenge=kpc_y",
    ]) {
      assert.equal(challengeFromCookie(none), undefined, JSON.stringify(none));
    }
    assert.equal(emailSignInBinding(cookieSentBack(set)), undefined, "the email sign-in's helper does not read it");
  });
});

describe("mail flows through a real Mailpit", () => {
  let mailpit: Mailpit;
  let server: KeyportServer;
  let keyport: KeyportClient;

  async function signUp(label: string): Promise<{ email: string; token: string; userId: string }> {
    const email = uniqueEmail(label);
    const { user, session } = await keyport.users.signUp({ email, password: PASSWORD, name: "Ada" });
    assert.ok(user && session);
    return { email, token: session.token, userId: user.id };
  }

  async function signIn(email: string, password = PASSWORD): Promise<string> {
    const { outcome } = await keyport.sessions.signIn({ email, password });
    assert.equal(outcome.case, "session");
    return outcome.value.token;
  }

  async function verified(token: string): Promise<boolean> {
    const { user } = await keyport.users.getCurrentUser({}, withSession(token));
    return user?.emailVerified === true;
  }

  async function resetToken(email: string): Promise<string> {
    await keyport.users.requestPasswordReset({ email });
    return tokenOf((await mailpit.waitFor(email))[0]!, RESET_PATH);
  }

  before(async () => {
    mailpit = await Mailpit.start();
    server = await startKeyport(mailpit.keyportEnv());
    keyport = createKeyportClient(server.address, { timeoutMs: 10_000 });
  });

  after(async () => {
    keyport?.close();
    await server?.stop();
    await mailpit?.stop();
  });

  it("resets a forgotten password through the mailbox", async () => {
    const account = await signUp("reset");
    const phone = await signIn(account.email);

    // Headers a proxy or an attacker may set do not shape the link.
    await keyport.users.requestPasswordReset(
      { email: account.email.toUpperCase() },
      { headers: { "x-forwarded-host": "evil.test", host: "evil.test" } },
    );
    const mail = (await mailpit.waitFor(account.email))[0]!;
    assert.match(mail.subject, /Reset/);
    assert.equal(mail.from, "no-reply@example.test");
    assert.ok(!mail.text.includes("evil.test") && !mail.html.includes("evil.test"));
    assert.ok(linkIn(mail, RESET_PATH)?.startsWith(`${PUBLIC_BASE_URL}${RESET_PATH}?token=kpm_`));
    const token = tokenOf(mail, RESET_PATH);

    // A refused password leaves the link usable.
    const weak = await failure(() => keyport.users.resetPassword({ token, newPassword: "short" }));
    assert.equal(errorReason(weak), "WEAK_PASSWORD");
    const { revokedSessions } = await keyport.users.resetPassword({ token, newPassword: NEW_PASSWORD });
    assert.equal(revokedSessions, 2, "a reset ends every session");

    assert.equal(errorReason(await failure(() => signIn(account.email))), "INVALID_CREDENTIALS");
    for (const old of [account.token, phone]) {
      assert.equal(errorReason(await failure(() => keyport.sessions.getSession({ token: old }))), "UNAUTHENTICATED");
    }
    assert.ok(await verified(await signIn(account.email, NEW_PASSWORD)), "the link proved the mailbox");

    // The owner hears of it; the link is spent.
    assert.match((await mailpit.waitFor(account.email, 2))[0]!.subject, /password was changed/);
    await tokenInvalid(() => keyport.users.resetPassword({ token, newPassword: "yet another passphrase" }), "replay");
    await signIn(account.email, NEW_PASSWORD);
  });

  it("answers a reset for an unknown address alike, and mails it nothing", async () => {
    const account = await signUp("known");
    const nobody = uniqueEmail("nobody");
    const unknown = await keyport.users.requestPasswordReset({ email: nobody });
    const known = await keyport.users.requestPasswordReset({ email: account.email });
    assert.deepEqual(unknown, known);
    await mailpit.waitFor(account.email);
    assert.equal(await mailpit.settledCount(nobody), 0);
  });

  it("of 8 parallel resets with one link, exactly one succeeds", async () => {
    const account = await signUp("race");
    const token = await resetToken(account.email);
    // One HTTP/2 connection: the requests leave together, as a barrier would release them.
    const outcomes = await Promise.allSettled(
      Array.from({ length: 8 }, (_, n) => keyport.users.resetPassword({ token, newPassword: `parallel passphrase ${n}` })),
    );
    const winners = outcomes.flatMap((outcome, n) => (outcome.status === "fulfilled" ? [n] : []));
    assert.equal(winners.length, 1, JSON.stringify(outcomes));
    for (const outcome of outcomes) {
      if (outcome.status === "rejected") {
        assert.equal(errorReason(outcome.reason), "EMAIL_TOKEN_INVALID", String(outcome.reason));
      }
    }
    await signIn(account.email, `parallel passphrase ${winners[0]}`);
    const loser = winners[0] === 0 ? 1 : 0;
    assert.equal(
      errorReason(await failure(() => signIn(account.email, `parallel passphrase ${loser}`))),
      "INVALID_CREDENTIALS",
    );
  });

  it("verifies the address with the link", async () => {
    const account = await signUp("verify");
    assert.equal(await verified(account.token), false);
    await keyport.users.requestEmailVerification({}, withSession(account.token));
    const mail = (await mailpit.waitFor(account.email))[0]!;
    assert.match(mail.subject, /Verify/);
    const token = tokenOf(mail, VERIFY_PATH);

    await tokenInvalid(() => keyport.users.resetPassword({ token, newPassword: NEW_PASSWORD }), "a verification link is no reset link");
    const { user } = await keyport.users.verifyEmail({ token });
    assert.equal(user?.id, account.userId);
    assert.equal(user?.emailVerified, true);
    assert.ok(await verified(account.token), "the session sees the change at once");
    await tokenInvalid(() => keyport.users.verifyEmail({ token }), "replay");

    // Verified already: nothing more is sent.
    await keyport.users.requestEmailVerification({}, withSession(account.token));
    assert.equal(await mailpit.settledCount(account.email), 1);
  });

  it("verifies the address with the code, only in the session that asked", async () => {
    const account = await signUp("code");
    const other = await signIn(account.email);
    await keyport.users.requestEmailVerification({}, withSession(account.token));
    const code = codeOf((await mailpit.waitFor(account.email))[0]!);
    const verify = (code: string, token?: string) =>
      keyport.users.verifyEmail({ code }, token === undefined ? {} : withSession(token));

    assert.equal(errorReason(await failure(() => verify(code))), "UNAUTHENTICATED");
    await tokenInvalid(() => verify(code, other), "another session");
    await tokenInvalid(() => verify(wrongCode(code), account.token), "a wrong code");
    assert.equal((await verify(code, account.token)).user?.emailVerified, true);
    assert.ok(await verified(other));
    await tokenInvalid(() => verify(code, account.token), "replay");
  });

  it("signs in by email with the code, in the browser that keeps the binding cookie", async () => {
    const account = await signUp("signin");
    const start = await keyport.sessions.startEmailSignIn({ email: account.email });
    assert.ok(start.binding.length >= 43 && start.expiresAt);
    const left = timestampDate(start.expiresAt).getTime() - Date.now();
    assert.ok(left > 9 * 60_000 && left <= 10 * 60_000 + 5_000, `${left} ms left`);

    const setCookie = emailSignInCookie(start);
    assert.match(setCookie, /; Max-Age=(59\d|600)$/);
    const binding = emailSignInBinding(`theme=dark; ${cookieSentBack(setCookie)}`);
    assert.equal(binding, start.binding);

    const mail = (await mailpit.waitFor(account.email))[0]!;
    const code = codeOf(mail);
    assert.ok(mail.subject.endsWith(code), mail.subject);
    const finish = (binding: string, code: string) =>
      keyport.sessions.finishEmailSignIn({ binding, proof: { case: "code", value: code } });

    await tokenInvalid(() => finish("garbage", code), "another binding");
    const signedIn = await finish(binding!, `${code.slice(0, 3)} ${code.slice(3)}`); // spaces, as typed, are ignored
    assert.equal(signedIn.newUser, false);
    assert.equal(signedIn.user?.id, account.userId);
    const { user } = await keyport.sessions.getSession({ token: signedIn.session!.token });
    assert.equal(user?.email, account.email);
    assert.equal(user?.emailVerified, true, "the mailbox is proven");
    await tokenInvalid(() => finish(binding!, code), "replay");
  });

  it("signs in by email with the link only in the browser that asked", async () => {
    const account = await signUp("link");
    const start = await keyport.sessions.startEmailSignIn({ email: account.email });
    const token = tokenOf((await mailpit.waitFor(account.email))[0]!, SIGN_IN_PATH);
    const finish = (binding: string | undefined) =>
      keyport.sessions.finishEmailSignIn({ binding: binding ?? "", proof: { case: "token", value: token } });

    // Another browser has no binding cookie: Keyport refuses the link there.
    const elsewhere = emailSignInBinding("__Host-keyport_session=kp_x.y");
    assert.equal(elsewhere, undefined);
    await tokenInvalid(() => finish(elsewhere), "no binding");

    const browser = cookieSentBack(emailSignInCookie(start));
    const { session } = await finish(emailSignInBinding(browser));
    assert.equal(session?.user?.id, account.userId);
    assert.ok(await verified(session!.token));
    await tokenInvalid(() => finish(emailSignInBinding(browser)), "replay");
  });

  it("answers an email sign-in for an unknown address alike, and mails it nothing", async () => {
    const account = await signUp("known");
    const nobody = uniqueEmail("nobody");
    const unknown = await keyport.sessions.startEmailSignIn({ email: nobody });
    const known = await keyport.sessions.startEmailSignIn({ email: account.email });
    assert.equal(unknown.binding.length, known.binding.length);
    assert.notEqual(unknown.binding, known.binding);
    const gap = timestampDate(known.expiresAt!).getTime() - timestampDate(unknown.expiresAt!).getTime();
    assert.ok(gap >= 0 && gap < 5_000, `${gap} ms`);
    await mailpit.waitFor(account.email);
    assert.equal(await mailpit.settledCount(nobody), 0);
    await tokenInvalid(() =>
      keyport.sessions.finishEmailSignIn({ binding: unknown.binding, proof: { case: "code", value: "123456" } }),
    );
  });

  it("refuses bad tokens with EMAIL_TOKEN_INVALID and bad addresses with INVALID_ARGUMENT", async () => {
    const account = await signUp("bad");
    const good = await resetToken(account.email);
    const calls: Record<string, (bad: string) => Promise<unknown>> = {
      ResetPassword: (bad) => keyport.users.resetPassword({ token: bad, newPassword: NEW_PASSWORD }),
      VerifyEmail: (bad) => keyport.users.verifyEmail({ token: bad }),
      ConfirmEmailChange: (bad) => keyport.users.confirmEmailChange({ token: bad }),
      FinishEmailSignIn: (bad) => keyport.sessions.finishEmailSignIn({ binding: bad, proof: { case: "token", value: bad } }),
    };
    for (const bad of ["", "garbage", "kpm_", UNKNOWN_TOKEN, good.slice(0, -1), `${good}x`, "x".repeat(10_000)]) {
      for (const [name, call] of Object.entries(calls)) {
        await tokenInvalid(() => call(bad), `${name}(${JSON.stringify(bad.slice(0, 20))}, ${bad.length} chars)`);
      }
    }
    await tokenInvalid(() => keyport.sessions.finishEmailSignIn({ binding: "garbage" }), "no proof at all");

    // A malformed address, by contrast, is INVALID_ARGUMENT naming the field.
    for (const email of ["", "not an address", `${"a".repeat(300)}@example.com`]) {
      const reset = await failure(() => keyport.users.requestPasswordReset({ email }));
      assert.equal(errorReason(reset), "INVALID_ARGUMENT", email);
      assert.deepEqual(fieldViolations(reset).map((v) => v.field), ["email"]);
      const start = await failure(() => keyport.sessions.startEmailSignIn({ email }));
      assert.equal(errorReason(start), "INVALID_ARGUMENT", email);
    }

    // None of them used up the good link.
    assert.equal((await keyport.users.resetPassword({ token: good, newPassword: NEW_PASSWORD })).revokedSessions, 1);
  });

  it("runs the README's password reset pages (examples/password-reset.ts)", async () => {
    const account = await signUp("example-reset");
    const form = (fields: Record<string, string>, url = `${PUBLIC_BASE_URL}/forgot-password`) =>
      new Request(url, { method: "POST", body: new URLSearchParams(fields) });

    const asked = await forgotPassword(keyport, form({ email: account.email }));
    assert.equal(asked.status, 200);
    const nobody = await forgotPassword(keyport, form({ email: uniqueEmail("nobody") }));
    assert.equal(await nobody.text(), await asked.text(), "the same answer for an unknown address");
    assert.equal((await forgotPassword(keyport, form({ email: "" }))).status, 400);

    const link = linkIn((await mailpit.waitFor(account.email))[0]!, RESET_PATH)!;
    assert.equal((await resetPassword(keyport, form({ password: NEW_PASSWORD }, `${PUBLIC_BASE_URL}${RESET_PATH}`))).status, 400);
    const weak = await resetPassword(keyport, form({ password: "short" }, link));
    assert.match(await weak.text(), /another password/);
    const done = await resetPassword(keyport, form({ password: NEW_PASSWORD }, link));
    assert.equal(done.status, 303);
    assert.equal(done.headers.get("location"), "/sign-in");
    await signIn(account.email, NEW_PASSWORD);
    const again = await resetPassword(keyport, form({ password: "yet another passphrase" }, link));
    assert.match(await again.text(), /used, replaced or has expired/);
  });

  it("runs the README's email sign-in pages (examples/email-sign-in.ts)", async () => {
    const account = await signUp("example-sign-in");
    const started = await startEmailSignIn(
      keyport,
      new Request(`${PUBLIC_BASE_URL}/sign-in/email/start`, { method: "POST", body: new URLSearchParams({ email: account.email }) }),
    );
    assert.equal(started.status, 200);
    const cookie = cookieSentBack(started.headers.get("set-cookie")!);
    assert.ok(cookie.startsWith(`${EMAIL_SIGN_IN_COOKIE_NAME}=`));
    const link = linkIn((await mailpit.waitFor(account.email))[0]!, SIGN_IN_PATH)!;

    // The link opened in another browser (no cookie) fails, and spends nothing.
    const elsewhere = await finishEmailSignIn(keyport, new Request(link));
    assert.equal(elsewhere.status, 400);
    const finished = await finishEmailSignIn(keyport, new Request(link, { headers: { cookie } }));
    assert.equal(finished.status, 303);
    const cookies = finished.headers.getSetCookie();
    assert.deepEqual(cookies[0], clearEmailSignInCookie());
    const session = /^session=([^;]+);/.exec(cookies[1] ?? "")?.[1];
    assert.ok(session);
    assert.equal((await keyport.sessions.getSession({ token: session })).user?.id, account.userId);

    const badAddress = await startEmailSignIn(
      keyport,
      new Request(`${PUBLIC_BASE_URL}/sign-in/email/start`, { method: "POST", body: new URLSearchParams({ email: "nope" }) }),
    );
    assert.equal(badAddress.status, 400);
  });

  it("sends a user with an authenticator app from the README's email sign-in to the code page", async () => {
    const account = await signUp("example-totp");
    const { secret } = await keyport.twoFactor.enrollTotp({}, withSession(account.token));
    await keyport.twoFactor.confirmTotp({ code: totp(secret) }, withSession(account.token));
    const started = await startEmailSignIn(
      keyport,
      new Request(`${PUBLIC_BASE_URL}/sign-in/email/start`, { method: "POST", body: new URLSearchParams({ email: account.email }) }),
    );
    const cookie = cookieSentBack(started.headers.get("set-cookie")!);
    const code = codeOf((await mailpit.waitFor(account.email))[0]!);

    const finished = await finishEmailSignIn(
      keyport,
      new Request(`${PUBLIC_BASE_URL}${SIGN_IN_PATH}`, { method: "POST", headers: { cookie }, body: new URLSearchParams({ code }) }),
    );
    assert.equal(finished.status, 303);
    assert.equal(finished.headers.get("location"), "/sign-in/second-factor");
    const cookies = finished.headers.getSetCookie();
    assert.equal(cookies.length, 2, "no session cookie");
    assert.deepEqual(cookies[0], clearEmailSignInCookie());
    const set = /^__Host-keyport_challenge=kpc_[^;]+; Path=\/; HttpOnly; Secure; SameSite=Lax; Max-Age=(\d+)$/.exec(
      cookies[1] ?? "",
    );
    assert.ok(set, cookies[1]);
    const maxAge = Number(set[1]);
    assert.ok(maxAge > 0 && maxAge <= 300, `Max-Age ${maxAge}: until the challenge expires, in 5 minutes`);

    // The code page completes the sign-in with the challenge of the cookie.
    const challenge = challengeFromCookie(`${cookie}; ${cookieSentBack(cookies[1]!)}`);
    assert.ok(challenge?.startsWith("kpc_"), challenge);
    const { session } = await keyport.sessions.completeSignIn({ challenge, answer: { case: "totpCode", value: nextTotp(secret) } });
    assert.equal((await keyport.sessions.getSession({ token: session!.token })).user?.id, account.userId);
  });
});

describe("mail flows on a server without mail", () => {
  let server: KeyportServer;
  let keyport: KeyportClient;

  serveKeyport((live) => ({ server, keyport } = live));

  it("answers MAIL_DISABLED (FAILED_PRECONDITION) for every call that would mail", async () => {
    const email = uniqueEmail("no-mail");
    const { session } = await keyport.users.signUp({ email, password: PASSWORD, name: "" });
    const auth = withSession(session!.token);
    const calls: Record<string, () => Promise<unknown>> = {
      RequestPasswordReset: () => keyport.users.requestPasswordReset({ email }),
      RequestEmailVerification: () => keyport.users.requestEmailVerification({}, auth),
      StartEmailSignIn: () => keyport.sessions.startEmailSignIn({ email }),
      RequestEmailChange: () => keyport.users.requestEmailChange({ newEmail: uniqueEmail("new"), password: PASSWORD }, auth),
      RequestPasswordSetup: () => keyport.users.requestPasswordSetup({}, auth),
    };
    for (const [name, call] of Object.entries(calls)) {
      const err = await failure(call);
      assert.equal(errorReason(err), "MAIL_DISABLED", name);
      assert.equal(err.code, Code.FailedPrecondition, name);
    }
    // The calls that take a token answer as on any server.
    await tokenInvalid(() => keyport.users.resetPassword({ token: UNKNOWN_TOKEN, newPassword: NEW_PASSWORD }));
  });
});
