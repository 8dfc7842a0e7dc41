/** Small helpers the live tests share: fresh addresses, expected failures, a server per suite. */

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { after, before } from "node:test";

import { ConnectError, createKeyportClient, type KeyportClient } from "../../src/index.js";
import { type KeyportServer, startKeyport } from "./keyport-server.js";

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

/** A live server and a client of it, for the tests of one `describe`. */
export interface Live {
  readonly server: KeyportServer;
  readonly keyport: KeyportClient;
}

/**
 * Starts a keyport (with `env`) before the enclosing `describe`'s tests and
 * stops it after them; `started` receives it, e.g.
 * `serveKeyport((live) => ({ server, keyport } = live))`.
 */
export function serveKeyport(started: (live: Live) => void, env: Record<string, string> = {}): void {
  let live: Live | undefined;
  before(async () => {
    const server = await startKeyport(env);
    live = { server, keyport: createKeyportClient(server.address, { timeoutMs: 10_000 }) };
    started(live);
  });
  after(async () => {
    live?.keyport.close();
    await live?.server.stop();
  });
}
