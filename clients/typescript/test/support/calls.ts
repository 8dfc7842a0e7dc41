/** Small helpers the live tests share: fresh addresses and expected failures. */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";

import { ConnectError } from "../../src/index.js";

/** An address no other test uses, so tests can share one server. */
export function uniqueEmail(label: string): string {
  return `${label}-${randomUUID()}@example.com`;
}

/** Runs `call`, expects it to fail, and returns the ConnectError. */
export async function failure(call: () => Promise<unknown>): Promise<ConnectError> {
  try {
    await call();
  } catch (err) {
    assert.ok(err instanceof ConnectError, `expected a ConnectError, got ${String(err)}`);
    return err;
  }
  assert.fail("the call succeeded but should have failed");
}
