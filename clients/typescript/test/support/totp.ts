/**
 * The authenticator app, for the tests: RFC 6238 TOTP codes (HMAC-SHA-1,
 * 30-second steps, six digits) from the base32 secret of `EnrollTotp`.
 */

import { createHmac } from "node:crypto";

const BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const STEP_MS = 30_000;

/** Decodes RFC 4648 base32 (upper or lower case, `=` padding optional). */
export function base32Decode(text: string): Buffer {
  const bytes: number[] = [];
  let bits = 0;
  let value = 0;
  for (const char of text.replace(/=+$/, "").toUpperCase()) {
    const index = BASE32.indexOf(char);
    if (index < 0) throw new Error(`not base32: ${JSON.stringify(text)}`);
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      bytes.push((value >>> bits) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

/** The six-digit code the app shows at `atMs` (default: now). */
export function totp(secret: string, atMs: number = Date.now()): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(atMs / STEP_MS)));
  const mac = createHmac("sha1", base32Decode(secret)).update(counter).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  const binary = mac.readUInt32BE(offset) & 0x7fffffff;
  return String(binary % 1_000_000).padStart(6, "0");
}

/**
 * The code of the next step, computed now: what `CompleteSignIn` takes after
 * `ConfirmTotp` used the current one (Keyport accepts one step of drift, and
 * only steps later than the last one the user passed).
 */
export function nextTotp(secret: string): string {
  return totp(secret, Date.now() + STEP_MS);
}

/** A six-digit code that is none of the codes of the steps around now. */
export function wrongTotp(secret: string): string {
  const near = new Set([-2, -1, 0, 1, 2].map((offset) => totp(secret, Date.now() + offset * STEP_MS)));
  return ["000000", "111111", "222222", "333333", "444444", "555555"].find((code) => !near.has(code))!;
}
