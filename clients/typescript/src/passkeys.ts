/**
 * Helpers for passkeys (WebAuthn). Every passkey ceremony is two calls: a
 * `start` RPC answers the WebAuthn options, JSON for the browser's
 * `navigator.credentials.create` or `.get` (`PublicKeyCredential.parse*OptionsFromJSON`),
 * and a `ceremony` (`kpk_...`); the finishing RPC takes the ceremony back
 * with the browser's answer (its `PublicKeyCredential.toJSON()`, as a
 * string). Each ceremony works once, for 5 minutes.
 *
 * A passkey sign-in (`SessionService.StartPasskeySignIn`, then
 * `FinishPasskeySignIn`) has no session yet to bind its ceremony to, so it is
 * bound to the browser: {@link passkeyCeremonyCookie},
 * {@link passkeyCeremonyFromCookie} and {@link clearPasskeyCeremonyCookie}
 * keep it there in the cookie the Go and Python SDKs and the Rust middleware
 * use ({@link PASSKEY_CEREMONY_COOKIE_NAME}). Registration
 * (`PasskeyService`) and step-up (`TwoFactorService.StartPasskeyStepUp`)
 * ceremonies are bound to the calling session, so the page may carry those
 * in a form field.
 *
 * They do not call Keyport: the RPCs stay the generated ones on
 * `KeyportClient` (`passkeys`, `sessions.startPasskeySignIn`,
 * `twoFactor.startPasskeyStepUp`).
 *
 * @packageDocumentation
 */

import type { Timestamp } from "@bufbuild/protobuf/wkt";

import { clearStepCookie, cookieValue, stepCookie } from "./cookies.js";

/**
 * Name of the cookie that {@link passkeyCeremonyCookie} writes and
 * {@link passkeyCeremonyFromCookie} reads; the Go and Python SDKs and the
 * Rust middleware use the same one. The `__Host-` prefix makes browsers
 * insist on `Secure`, `Path=/` and no `Domain`.
 */
export const PASSKEY_CEREMONY_COOKIE_NAME = "__Host-keyport_passkey";

/** The longest the ceremony cookie lasts: a ceremony works for 5 minutes, and the Rust middleware's cookie lasts that long. */
const MAX_CEREMONY_SECS = 300;

/**
 * The `Set-Cookie` header value that keeps a passkey sign-in's ceremony in
 * the browser that started it, for the finishing request to read back with
 * {@link passkeyCeremonyFromCookie}. `FinishPasskeySignIn` refuses an answer
 * without the ceremony it was asked with, so keep the ceremony in this
 * cookie, never in a page.
 *
 * The cookie is {@link PASSKEY_CEREMONY_COOKIE_NAME}, `HttpOnly`, `Secure`,
 * `SameSite=Lax`, `Path=/`, with a `Max-Age` until `start.expiresAt` (at
 * most 5 minutes, at least one second). Secure cookies need HTTPS; browsers
 * make an exception for `http://localhost` only. This is for server-side
 * code: browser JavaScript cannot set `HttpOnly` cookies.
 *
 * @example
 * ```ts
 * const start = await keyport.sessions.startPasskeySignIn({});
 * return new Response(start.options, {
 *   headers: { "content-type": "application/json", "set-cookie": passkeyCeremonyCookie(start) },
 * });
 * ```
 *
 * @param start - The response of `StartPasskeySignIn` (its `ceremony` and
 *   `expiresAt`).
 * @param now - The current time, for `Max-Age`; default `new Date()`.
 * @returns The header value, e.g.
 *   `__Host-keyport_passkey=kpk_...; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=300`.
 * @throws Error when the ceremony is empty or has characters a cookie
 *   cannot carry (no ceremony from Keyport has).
 */
export function passkeyCeremonyCookie(
  start: { readonly ceremony: string; readonly expiresAt?: Timestamp | undefined },
  now: Date = new Date(),
): string {
  return stepCookie(
    PASSKEY_CEREMONY_COOKIE_NAME,
    start.ceremony,
    start.expiresAt,
    MAX_CEREMONY_SECS,
    now,
    "the passkey ceremony",
  );
}

/**
 * The `Set-Cookie` header value that deletes the cookie of
 * {@link passkeyCeremonyCookie}. Send it with the answer of
 * `FinishPasskeySignIn`, whatever it was: the call uses the ceremony up,
 * right or wrong.
 *
 * @returns `__Host-keyport_passkey=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0`.
 */
export function clearPasskeyCeremonyCookie(): string {
  return clearStepCookie(PASSKEY_CEREMONY_COOKIE_NAME);
}

/**
 * The ceremony that {@link passkeyCeremonyCookie} stored in a browser, from
 * the `Cookie` header of its request, for `FinishPasskeySignIn`.
 *
 * @example
 * ```ts
 * const ceremony = passkeyCeremonyFromCookie(request.headers.get("cookie")) ?? ""; // Node: req.headers.cookie
 * const { session } = await keyport.sessions.finishPasskeySignIn({ ceremony, credential: await request.text() });
 * ```
 *
 * @param cookieHeader - The request's `Cookie` header (`name=value; ...`), or
 *   `null`/`undefined` when it has none.
 * @returns The ceremony (`"kpk_..."`), or `undefined` when the request has no
 *   such cookie, or an empty one: the sign-in started in another browser, or
 *   more than 5 minutes ago. Start again; `FinishPasskeySignIn` would answer
 *   `PASSKEY_INVALID`.
 */
export function passkeyCeremonyFromCookie(cookieHeader: string | null | undefined): string | undefined {
  return cookieValue(cookieHeader, PASSKEY_CEREMONY_COOKIE_NAME);
}
