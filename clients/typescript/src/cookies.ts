/**
 * The cookies that keep a step of a sign-in in the browser that took it
 * (the email sign-in's binding, the second-factor challenge, the passkey
 * sign-in's ceremony), written and read as the Rust middleware does.
 * Internal: the package exports the helpers of `mail.ts`, `factors.ts` and
 * `passkeys.ts` that use these.
 *
 * @internal
 * @packageDocumentation
 */

import { type Timestamp, timestampMs } from "@bufbuild/protobuf/wkt";

/** The attributes of these cookies, as the Rust middleware writes them. */
const ATTRIBUTES = "Path=/; HttpOnly; Secure; SameSite=Lax";

/** What RFC 6265 allows in a cookie value without quotes (`cookie-octet`), at least one. */
const COOKIE_VALUE = /^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]+$/;

/**
 * The `Set-Cookie` value of cookie `name` carrying `value`, with a
 * `Max-Age` until `expiresAt` (rounded up), at most `maxSecs` and at least
 * one second; `maxSecs` without `expiresAt`.
 *
 * @throws Error naming `what` when `value` is empty or has characters a
 *   cookie cannot carry.
 */
export function stepCookie(
  name: string,
  value: string,
  expiresAt: Timestamp | undefined,
  maxSecs: number,
  now: Date,
  what: string,
): string {
  if (!COOKIE_VALUE.test(value)) {
    throw new Error(`keyport: ${what} must be a non-empty cookie value`);
  }
  let maxAge = maxSecs;
  if (expiresAt !== undefined) {
    const left = Math.ceil((timestampMs(expiresAt) - now.getTime()) / 1000);
    maxAge = Math.max(1, Math.min(left, maxSecs));
  }
  return `${name}=${value}; ${ATTRIBUTES}; Max-Age=${maxAge}`;
}

/** The `Set-Cookie` value that deletes the cookie `name` of {@link stepCookie}. */
export function clearStepCookie(name: string): string {
  return `${name}=; ${ATTRIBUTES}; Max-Age=0`;
}

/**
 * The first non-empty value of cookie `name` in a `Cookie` request header
 * (`name=value; ...`), or `undefined`.
 */
export function cookieValue(cookieHeader: string | null | undefined, name: string): string | undefined {
  for (const pair of (cookieHeader ?? "").split(";")) {
    const separator = pair.indexOf("=");
    if (separator >= 0 && pair.slice(0, separator).trim() === name) {
      const value = pair.slice(separator + 1).trim();
      if (value !== "") {
        return value;
      }
    }
  }
  return undefined;
}
