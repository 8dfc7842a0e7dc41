/**
 * The gRPC interceptors (Connect's `keyportInterceptor` and grpc-js's
 * `keyportServerInterceptor`) in front of a real greeter service
 * (support/greeter.ts), called over gRPC with a live keyport behind them:
 * allowed, no token, bad tokens, revoked, a missing permission, Keyport down.
 */

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { type Client, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";

import {
  Code,
  ConnectError,
  createKeyportClient,
  errorReason,
  type KeyportGuard as Guard,
  KeyportGuard,
  withSession,
} from "../src/index.js";
import { type Greeter, GreeterService, greeting, startConnectGreeter, startGrpcJsGreeter } from "./support/greeter.js";
import { eventually, FAST_CACHE, signIn, signUp, type Stack, startStack, unusedAddress } from "./support/web.js";

const SERVERS: Record<string, (guard: Guard, permissions?: string[]) => Promise<Greeter>> = {
  Connect: startConnectGreeter,
  "grpc-js": startGrpcJsGreeter,
};

/** A Connect gRPC client of `greeter`. */
function clientOf(greeter: Greeter): Client<typeof GreeterService> {
  return createClient(GreeterService, createGrpcTransport({ baseUrl: greeter.url }));
}

/** Calls SayHello with `token` as the bearer; resolves with the message or rejects. */
async function hello(
  client: Client<typeof GreeterService>,
  token?: string,
  raw?: string,
  extra: Record<string, string> = {},
): Promise<string> {
  const headers = new Headers(extra);
  if (token !== undefined) headers.set("authorization", `Bearer ${token}`);
  if (raw !== undefined) headers.set("authorization", raw);
  const { message } = await client.sayHello({ name: "ann" }, { headers, timeoutMs: 10_000 });
  return message;
}

/** The code and reason a call was refused with. */
async function refusedWith(call: Promise<unknown>): Promise<[Code, string | undefined]> {
  try {
    await call;
  } catch (err) {
    const error = ConnectError.from(err);
    return [error.code, errorReason(error)];
  }
  assert.fail("the call was let through");
}

for (const [kind, start] of Object.entries(SERVERS)) {
  describe(`the ${kind} server interceptor`, () => {
    let stack: Stack;
    let open: Greeter;
    let writers: Greeter;

    before(async () => {
      stack = await startStack();
      open = await start(stack.guard);
      writers = await start(stack.guard, ["posts:write"]);
    });
    after(async () => {
      await open?.close();
      await writers?.close();
      await stack?.close();
    });

    it("lets a valid session through with the principal", async () => {
      const ann = await signUp(stack.keyport, "grpc");
      assert.equal(await hello(clientOf(open), ann.token), greeting("ann", ann.userId));
      assert.equal(await hello(clientOf(open), undefined, `bearer   ${ann.token}`), greeting("ann", ann.userId), "any case, spaces");
      // What the caller claims about itself is never believed.
      const spoofed = { "keyport-user-id": "someone-else", "keyport-session-id": "theirs" };
      assert.equal(await hello(clientOf(open), ann.token, undefined, spoofed), greeting("ann", ann.userId));
      assert.deepEqual(await refusedWith(hello(clientOf(open), undefined, undefined, spoofed)), [Code.Unauthenticated, "UNAUTHENTICATED"]);
    });

    it("refuses no token, bad tokens and API keys with UNAUTHENTICATED and Keyport's reason", async () => {
      const client = clientOf(open);
      assert.deepEqual(await refusedWith(hello(client)), [Code.Unauthenticated, "UNAUTHENTICATED"]);
      for (const raw of ["Basic YTpi", "Bearer", "Bearer garbage", "Bearer kp_x.y", `Bearer kp_${"a".repeat(5000)}.b`]) {
        assert.deepEqual(await refusedWith(hello(client, undefined, raw)), [Code.Unauthenticated, "UNAUTHENTICATED"], raw.slice(0, 20));
      }
      const key = "kpa_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
      assert.deepEqual(await refusedWith(hello(client, key)), [Code.Unauthenticated, "API_KEY_NOT_ACCEPTED"]);
    });

    it("refuses a revoked session", async () => {
      const ann = await signUp(stack.keyport, "grpc-revoked");
      const phone = await signIn(stack.keyport, ann.email);
      const client = clientOf(open);
      assert.ok(await hello(client, phone.token));
      assert.ok(await hello(client, phone.token), "from the cache");
      await stack.keyport.sessions.revokeSession({ sessionId: phone.sessionId }, withSession(ann.token));
      await eventually("the revocation reaching the cache", () => stack.guard.cache!.lookup(phone.token) === undefined);
      assert.deepEqual(await refusedWith(hello(client, phone.token)), [Code.Unauthenticated, "UNAUTHENTICATED"]);
    });

    it("refuses a session without the service's permission with PERMISSION_DENIED", async () => {
      const ann = await signUp(stack.keyport, "grpc-denied");
      assert.deepEqual(await refusedWith(hello(clientOf(writers), ann.token)), [Code.PermissionDenied, "PERMISSION_DENIED"]);
      assert.deepEqual(await refusedWith(hello(clientOf(writers))), [Code.Unauthenticated, "UNAUTHENTICATED"]);
    });

    it("answers 16 parallel calls, each with its caller", async () => {
      const users = await Promise.all(Array.from({ length: 16 }, (_, i) => signUp(stack.keyport, `grpc-par${i}`)));
      const client = clientOf(open);
      const answers = await Promise.all(users.map((user) => hello(client, user.token)));
      assert.deepEqual(answers, users.map((user) => greeting("ann", user.userId)));
    });

    it("fails closed with UNAVAILABLE when Keyport cannot be reached", async () => {
      const keyport = createKeyportClient(await unusedAddress(), { timeoutMs: 500 });
      const guard = new KeyportGuard(keyport, { cache: FAST_CACHE });
      const greeter = await start(guard);
      try {
        const token = "kp_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
        assert.deepEqual(await refusedWith(hello(clientOf(greeter), token)), [Code.Unavailable, "UNAVAILABLE"]);
      } finally {
        await greeter.close();
        guard.close();
        keyport.close();
      }
    });
  });
}
