/**
 * Helpers for the pages of the flows through the user's mailbox
 * (`docs/mail.md`). Keyport mails a link, `mail.public_base_url` + a page's
 * path + `?token=kpm_...`, and for email sign-in and a few other flows a
 * six-digit code; the web app's pages take the token or the code and call
 * Keyport with it. These helpers cover what every such page repeats:
 *
 * - {@link tokenFromLink}: the token of a mailed link, from the URL its page
 *   was opened with (`/verify-email`, `/reset-password`, `/change-email`,
 *   `/sign-in/email`);
 * - {@link emailSignInCookie}, {@link emailSignInBinding} and
 *   {@link clearEmailSignInCookie}: keep the `binding` of `StartEmailSignIn`
 *   in the browser that asked, which `FinishEmailSignIn` needs, in the
 *   cookie the Go and Python SDKs and the Rust middleware use
 *   ({@link EMAIL_SIGN_IN_COOKIE_NAME}).
 *
 * They do not call Keyport: the RPCs stay the generated ones on
 * `KeyportClient`.
 *
 * @packageDocumentation
 */

import type { Timestamp } from "@bufbuild/protobuf/wkt";

import { clearStepCookie, cookieValue, stepCookie } from "./cookies.js";

/**
 * Name of the cookie that {@link emailSignInCookie} writes and
 * {@link emailSignInBinding} reads; the Go and Python SDKs and the Rust
 * middleware use the same one. The `__Host-` prefix makes browsers insist on
 * `Secure`, `Path=/` and no `Domain`.
 */
export const EMAIL_SIGN_IN_COOKIE_NAME = "__Host-keyport_email";

/** The longest an email sign-in's link and code work (`mail.sign_in_ttl_secs` is capped at 10 minutes). */
const MAX_EMAIL_SIGN_IN_SECS = 600;

/** Resolves links that are only a path and a query; never part of a result. */
const RELATIVE_BASE = "http://relative.invalid";

/**
 * The token of a link Keyport mailed: the value of its `token` query
 * parameter, such as `"kpm_..."`, which `VerifyEmail`, `ResetPassword`,
 * `ConfirmEmailChange` and `FinishEmailSignIn` take. A page's handler passes
 * it the URL it was opened with.
 *
 * @example
 * ```ts
 * // GET /reset-password?token=kpm_... (Node's req.url, or a fetch Request's url)
 * const token = tokenFromLink(request.url);
 * if (token === undefined) return "This link is incomplete: ask for a new one.";
 * await keyport.users.resetPassword({ token, newPassword });
 * ```
 *
 * @param link - The link, absolute
 *   (`"https://app.example.com/reset-password?token=kpm_..."`, `location.href`,
 *   a `URL`) or just the path and query of a request
 *   (`"/reset-password?token=kpm_..."`, as in Node's `req.url`). Spaces around
 *   it, from a link pasted into a form, are ignored. A bare query string
 *   needs its `?`.
 * @returns The token, percent-decoded and without surrounding spaces;
 *   `undefined` when `link` does not parse or has no `token` parameter, an
 *   empty one or more than one. It does not check the token itself: Keyport
 *   does, and answers `EMAIL_TOKEN_INVALID` for one that is malformed,
 *   unknown, used, replaced or expired.
 */
export function tokenFromLink(link: string | URL): string | undefined {
  let url: URL;
  try {
    url = new URL(typeof link === "string" ? link.trim() : link.href, RELATIVE_BASE);
  } catch {
    return undefined;
  }
  const tokens = url.searchParams.getAll("token");
  const token = tokens.length === 1 ? tokens[0]!.trim() : "";
  return token === "" ? undefined : token;
}

/**
 * The `Set-Cookie` header value that keeps an email sign-in's binding in the
 * browser that started it. `FinishEmailSignIn` refuses the mailed link and
 * the code without the `binding` that `StartEmailSignIn` returned, so a
 * forwarded or phished link signs in no other browser. Send the cookie with
 * the answer to the browser that asked; {@link emailSignInBinding} reads it
 * back.
 *
 * The cookie is {@link EMAIL_SIGN_IN_COOKIE_NAME}, `HttpOnly`, `Secure`,
 * `SameSite=Lax` (`Strict` would not be sent when the user opens the mailed
 * link from their mail client), `Path=/`, with a `Max-Age` until
 * `start.expiresAt` (at most 10 minutes, at least one second). Secure cookies
 * need HTTPS; browsers make an exception for `http://localhost` only. This is
 * for server-side code (Node, or an edge runtime on `@keyport/client/web`):
 * browser JavaScript cannot set `HttpOnly` cookies.
 *
 * @example
 * ```ts
 * const start = await keyport.sessions.startEmailSignIn({ email });
 * return new Response("Check your mail.", { headers: { "set-cookie": emailSignInCookie(start) } });
 * ```
 *
 * @param start - The response of `StartEmailSignIn` (its `binding` and
 *   `expiresAt`).
 * @param now - The current time, for `Max-Age`; default `new Date()`.
 * @returns The header value, e.g.
 *   `__Host-keyport_email=...; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=600`.
 * @throws Error when the binding is empty or has characters a cookie cannot
 *   carry (no binding from Keyport has).
 */
export function emailSignInCookie(
  start: { readonly binding: string; readonly expiresAt?: Timestamp | undefined },
  now: Date = new Date(),
): string {
  return stepCookie(
    EMAIL_SIGN_IN_COOKIE_NAME,
    start.binding,
    start.expiresAt,
    MAX_EMAIL_SIGN_IN_SECS,
    now,
    "the email sign-in binding",
  );
}

/**
 * The `Set-Cookie` header value that deletes the cookie of
 * {@link emailSignInCookie}. Send it once `FinishEmailSignIn` succeeded: the
 * binding is spent.
 *
 * @returns `__Host-keyport_email=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0`.
 */
export function clearEmailSignInCookie(): string {
  return clearStepCookie(EMAIL_SIGN_IN_COOKIE_NAME);
}

/**
 * The binding that {@link emailSignInCookie} stored in a browser, from the
 * `Cookie` header of its request. Pass it to `FinishEmailSignIn` with the
 * code the user typed or the token of the link they opened
 * ({@link tokenFromLink}).
 *
 * @example
 * ```ts
 * const binding = emailSignInBinding(request.headers.get("cookie")); // fetch; Node: req.headers.cookie
 * ```
 *
 * @param cookieHeader - The request's `Cookie` header (`name=value; ...`), or
 *   `null`/`undefined` when it has none.
 * @returns The binding, or `undefined` when the request has no such cookie,
 *   or an empty one: the link was opened, or the code typed, in another
 *   browser than the one that started the sign-in (or the cookie expired).
 *   Tell the user to finish where they started; `FinishEmailSignIn` would
 *   answer `EMAIL_TOKEN_INVALID`.
 */
export function emailSignInBinding(cookieHeader: string | null | undefined): string | undefined {
  return cookieValue(cookieHeader, EMAIL_SIGN_IN_COOKIE_NAME);
}
