/**
 * Helpers for second factors (`docs/second-factors.md`). A user with an
 * authenticator app or a passkey gets no session from a first factor alone:
 * `SignIn`, `FinishEmailSignIn` and `FinishOAuth` answer a
 * `SignInChallenge`, and `CompleteSignIn` with the challenge and a TOTP
 * code, a backup code or a passkey's answer issues the (`AAL2`) session.
 * {@link signInChallenge} tells the two answers apart;
 * {@link challengeCookie}, {@link challengeFromCookie},
 * {@link challengePasskeyOptionsFromCookie} and
 * {@link clearChallengeCookie} keep the challenge (and its passkey
 * request) in the browser that signed in, between the sign-in page and the
 * code page, in the cookie the Go and Python SDKs and the Rust middleware
 * use ({@link CHALLENGE_COOKIE_NAME}).
 *
 * They do not call Keyport: the RPCs stay the generated ones on
 * `KeyportClient` (`sessions.completeSignIn`, and `twoFactor` for
 * enrolment and `StepUp`).
 *
 * @packageDocumentation
 */

import type { Timestamp } from "@bufbuild/protobuf/wkt";

import { clearStepCookie, cookieValue, stepCookie } from "./cookies.js";
import type { FinishOAuthResponse } from "./gen/keyport/v1/oauth_service_pb.js";
import type { SignInChallenge } from "./gen/keyport/v1/session_pb.js";
import type { FinishEmailSignInResponse, SignInResponse } from "./gen/keyport/v1/session_service_pb.js";

/**
 * Name of the cookie that {@link challengeCookie} writes and
 * {@link challengeFromCookie} reads; the Go and Python SDKs and the Rust
 * middleware use the same one. The `__Host-` prefix makes browsers insist on
 * `Secure`, `Path=/` and no `Domain`.
 */
export const CHALLENGE_COOKIE_NAME = "__Host-keyport_challenge";

/** The longest the challenge cookie lasts, as in the Rust middleware (a challenge works for 5 minutes). */
const MAX_CHALLENGE_SECS = 600;

/**
 * The second-factor challenge of a sign-in's answer, if it is one: the user
 * has a second factor, and the sign-in finishes with `CompleteSignIn`.
 *
 * @example
 * ```ts
 * const response = await keyport.sessions.signIn({ email, password });
 * const challenge = signInChallenge(response);
 * if (challenge !== undefined) {
 *   // Keep the challenge in this browser (challengeCookie), and ask for the code.
 *   const { session } = await keyport.sessions.completeSignIn({
 *     challenge: challenge.challenge,
 *     answer: { case: "totpCode", value: code },
 *   });
 * }
 * ```
 *
 * @param response - The response of `SignIn`, `FinishEmailSignIn` or
 *   `FinishOAuth`.
 * @returns The challenge (`challenge` is `"kpc_..."`, `factors` the factors
 *   the user can answer with, `expiresAt` when it stops working, and
 *   `passkeyOptions` the WebAuthn request options for
 *   `navigator.credentials.get` when `factors` has `SecondFactor.PASSKEY`,
 *   else `""`), or `undefined` when the response is not a challenge: it
 *   holds a session (or, for `FinishOAuth`, a linked account).
 */
export function signInChallenge(
  response: SignInResponse | FinishEmailSignInResponse | FinishOAuthResponse,
): SignInChallenge | undefined {
  if ("outcome" in response) {
    return response.outcome.case === "challenge" ? response.outcome.value : undefined;
  }
  return response.challenge;
}

/**
 * The `Set-Cookie` header value that keeps a sign-in's second-factor
 * challenge in the browser that signed in, for the code page to read back
 * with {@link challengeFromCookie}. The challenge stands for the passed
 * first factor (the password, the mailed link or code, the provider's
 * answer): keep it in this cookie, never in a page or a URL. When the user
 * has a passkey, the cookie also carries the challenge's `passkeyOptions`
 * for the code page ({@link challengePasskeyOptionsFromCookie}), after a
 * `.` in base64url, as the Rust middleware writes it.
 *
 * The cookie is {@link CHALLENGE_COOKIE_NAME}, `HttpOnly`, `Secure`,
 * `SameSite=Lax`, `Path=/`, with a `Max-Age` until `challenge.expiresAt`
 * (at most 10 minutes, at least one second). Secure cookies need HTTPS;
 * browsers make an exception for `http://localhost` only. This is for
 * server-side code (Node, or an edge runtime on `@keyport/client/web`):
 * browser JavaScript cannot set `HttpOnly` cookies.
 *
 * @example
 * ```ts
 * const challenge = signInChallenge(await keyport.sessions.signIn({ email, password }));
 * if (challenge !== undefined) {
 *   return new Response(null, {
 *     status: 303,
 *     headers: { location: "/sign-in/second-factor", "set-cookie": challengeCookie(challenge) },
 *   });
 * }
 * ```
 *
 * @param challenge - The challenge of {@link signInChallenge} (its
 *   `challenge`, `expiresAt` and `passkeyOptions`).
 * @param now - The current time, for `Max-Age`; default `new Date()`.
 * @returns The header value, e.g.
 *   `__Host-keyport_challenge=kpc_...; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=300`.
 * @throws Error when the challenge is empty or has characters a cookie
 *   cannot carry, or a `.` (no challenge from Keyport has).
 */
export function challengeCookie(
  challenge: {
    readonly challenge: string;
    readonly expiresAt?: Timestamp | undefined;
    readonly passkeyOptions?: string | undefined;
  },
  now: Date = new Date(),
): string {
  // The value is `challenge[.options]`, so a challenge must not be empty or hold a ".".
  if (challenge.challenge === "" || challenge.challenge.includes(".")) {
    throw new Error('keyport: the sign-in challenge must be a non-empty cookie value without "."');
  }
  const options = challenge.passkeyOptions ? `.${base64url(challenge.passkeyOptions)}` : "";
  return stepCookie(
    CHALLENGE_COOKIE_NAME,
    challenge.challenge + options,
    challenge.expiresAt,
    MAX_CHALLENGE_SECS,
    now,
    "the sign-in challenge",
  );
}

/**
 * The `Set-Cookie` header value that deletes the cookie of
 * {@link challengeCookie}. Send it once `CompleteSignIn` succeeded, or
 * answered `SIGN_IN_CHALLENGE_INVALID`: the challenge is spent.
 *
 * @returns `__Host-keyport_challenge=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0`.
 */
export function clearChallengeCookie(): string {
  return clearStepCookie(CHALLENGE_COOKIE_NAME);
}

/**
 * The challenge that {@link challengeCookie} stored in a browser, from the
 * `Cookie` header of its request. The code page passes it to
 * `CompleteSignIn` with the code the user typed.
 *
 * @example
 * ```ts
 * const challenge = challengeFromCookie(request.headers.get("cookie")); // fetch; Node: req.headers.cookie
 * if (challenge === undefined) return Response.redirect(new URL("/sign-in", request.url), 303);
 * const { session } = await keyport.sessions.completeSignIn({ challenge, answer: { case: "totpCode", value: code } });
 * ```
 *
 * @param cookieHeader - The request's `Cookie` header (`name=value; ...`), or
 *   `null`/`undefined` when it has none.
 * @returns The challenge (`"kpc_..."`), or `undefined` when the request has
 *   no such cookie, or an empty one: this browser did not sign in, or the
 *   cookie expired with the challenge. Send the user back to sign in;
 *   `CompleteSignIn` would answer `SIGN_IN_CHALLENGE_INVALID`.
 */
export function challengeFromCookie(cookieHeader: string | null | undefined): string | undefined {
  const challenge = cookieValue(cookieHeader, CHALLENGE_COOKIE_NAME)?.split(".")[0];
  return challenge === "" ? undefined : challenge;
}

/**
 * The passkey request options that {@link challengeCookie} stored with the
 * challenge, for the code page to offer the user's passkeys: pass them to
 * `navigator.credentials.get` (`PublicKeyCredential.parseRequestOptionsFromJSON`),
 * and the answer's `toJSON()` to `CompleteSignIn` as
 * `{ case: "passkeyCredential", value }`.
 *
 * @param cookieHeader - The request's `Cookie` header, or `null`/`undefined`.
 * @returns The options (JSON), or `undefined` when the request has no
 *   challenge cookie or the challenge has no passkey (its `passkeyOptions`
 *   was empty): ask for a code only.
 */
export function challengePasskeyOptionsFromCookie(cookieHeader: string | null | undefined): string | undefined {
  const encoded = cookieValue(cookieHeader, CHALLENGE_COOKIE_NAME)?.split(".")[1];
  if (!encoded) {
    return undefined;
  }
  try {
    const binary = atob(encoded.replaceAll("-", "+").replaceAll("_", "/"));
    return new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(binary, (c) => c.charCodeAt(0)));
  } catch {
    return undefined; // not written by challengeCookie
  }
}

/** `text`'s UTF-8 bytes in base64url without padding. */
function base64url(text: string): string {
  let binary = "";
  for (const byte of new TextEncoder().encode(text)) {
    binary += String.fromCharCode(byte);
  }
  return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}
