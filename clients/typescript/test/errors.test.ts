/**
 * Typed errors against a real keyport server (KEYPORT_BIN): the fallback
 * reason of a newer server's reason, `retryDelay` of `RATE_LIMITED`, and the
 * default deadline of every unary call (`DEFAULT_TIMEOUT_MS`). The
 * compile-time half (a misspelt reason does not build) is
 * test/types/error-reason.ts.
 */

import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { describe, it } from "node:test";

import { durationFromMs } from "@bufbuild/protobuf/wkt";
import type { Interceptor } from "@connectrpc/connect";

import {
  Code,
  ConnectError,
  createKeyportClient,
  DEFAULT_TIMEOUT_MS,
  errorInfo,
  ErrorInfoSchema,
  ErrorReason,
  errorReason,
  KEYPORT_ERROR_DOMAIN,
  type KeyportClient,
  retryDelay,
  RetryInfoSchema,
} from "../src/index.js";
import { createKeyportClient as createKeyportWebClient } from "../src/web.js";
import { failure, serveKeyport, uniqueEmail } from "./support/calls.js";
import type { KeyportServer } from "./support/keyport-server.js";

const PASSWORD = "correct horse battery staple";

/** A ConnectError as Keyport sends it, with `details`. */
function keyportError(code: Code, ...details: NonNullable<ConstructorParameters<typeof ConnectError>[3]>): ConnectError {
  return new ConnectError("from keyport", code, undefined, details);
}

describe("error reasons", () => {
  it("reads a reason this SDK does not know as the fallback UNSPECIFIED, keeping the raw one in errorInfo", () => {
    const newer = keyportError(Code.FailedPrecondition, {
      desc: ErrorInfoSchema,
      value: { reason: "A_REASON_FROM_A_NEWER_SERVER", domain: KEYPORT_ERROR_DOMAIN },
    });
    assert.equal(errorReason(newer), "UNSPECIFIED");
    assert.equal(errorReason(newer), ErrorReason.UNSPECIFIED);
    assert.equal(errorInfo(newer)?.reason, "A_REASON_FROM_A_NEWER_SERVER");
    // Not a cast: a known reason stays itself, and no Keyport ErrorInfo stays undefined.
    const known = keyportError(Code.NotFound, {
      desc: ErrorInfoSchema,
      value: { reason: "MEMBER_NOT_FOUND", domain: KEYPORT_ERROR_DOMAIN },
    });
    assert.equal(errorReason(known), "MEMBER_NOT_FOUND");
    const foreign = keyportError(Code.Unavailable, {
      desc: ErrorInfoSchema,
      value: { reason: "UPSTREAM_DOWN", domain: "proxy.example" },
    });
    assert.equal(errorReason(foreign), undefined);
    assert.equal(errorReason(new ConnectError("no details", Code.Unavailable)), undefined);
  });
});

describe("retryDelay", () => {
  it("reads google.rpc.RetryInfo in milliseconds, and nothing without it", () => {
    const limited = keyportError(
      Code.ResourceExhausted,
      { desc: ErrorInfoSchema, value: { reason: "RATE_LIMITED", domain: KEYPORT_ERROR_DOMAIN } },
      { desc: RetryInfoSchema, value: { retryDelay: durationFromMs(1_500) } },
    );
    assert.equal(retryDelay(limited), 1_500);
    assert.equal(retryDelay(keyportError(Code.ResourceExhausted, { desc: RetryInfoSchema, value: {} })), undefined);
    assert.equal(retryDelay(new ConnectError("no details", Code.ResourceExhausted)), undefined);
    assert.equal(retryDelay(new Error("not a call")), undefined);
    assert.equal(retryDelay(undefined), undefined);
  });

  describe("against a server that limits an account to 2 failed sign-ins", () => {
    let server: KeyportServer;
    let keyport: KeyportClient;
    serveKeyport((live) => ({ server, keyport } = live), { KEYPORT_SIGN_IN_LIMITS__PER_ACCOUNT: "2" });

    for (const [label, make] of [
      ["gRPC", (address: string) => createKeyportClient(address, { timeoutMs: 10_000 })],
      ["gRPC-web from the browser entry point", (address: string) => createKeyportWebClient(`http://${address}`, { timeoutMs: 10_000 })],
    ] as const) {
      it(`answers RATE_LIMITED with a positive delay (${label})`, async () => {
        const email = uniqueEmail("limited");
        await keyport.users.signUp({ email, password: PASSWORD, name: "" });
        const client = make(server.address);
        try {
          for (let attempt = 1; attempt <= 2; attempt++) {
            const wrong = await failure(() => client.sessions.signIn({ email, password: "not the password" }));
            assert.equal(errorReason(wrong), "INVALID_CREDENTIALS", `attempt ${attempt}`);
            assert.equal(retryDelay(wrong), undefined, "only RATE_LIMITED carries RetryInfo");
          }
          const limited = await failure(() => client.sessions.signIn({ email, password: "not the password" }));
          assert.equal(limited.code, Code.ResourceExhausted);
          assert.equal(errorReason(limited), "RATE_LIMITED");
          const delay = retryDelay(limited);
          assert.ok(delay !== undefined && delay > 0 && delay <= 15 * 60_000, `retry delay ${delay} ms`);
          // Even the right password waits for it.
          const right = await failure(() => client.sessions.signIn({ email, password: PASSWORD }));
          assert.equal(errorReason(right), "RATE_LIMITED");
          assert.ok((retryDelay(right) ?? 0) > 0);
        } finally {
          client.close();
        }
      });
    }
  });
});

describe("the default deadline", () => {
  let server: KeyportServer;
  let keyport: KeyportClient;
  serveKeyport((live) => ({ server, keyport } = live));

  /**
   * An interceptor that records the `grpc-timeout` each call is sent with;
   * server streams are stopped before they reach the network.
   */
  function recorder(): { seen: (string | null)[]; interceptor: Interceptor } {
    const seen: (string | null)[] = [];
    const interceptor: Interceptor = (next) => async (req) => {
      seen.push(req.header.get("grpc-timeout"));
      if (req.stream) {
        throw new ConnectError("stopped by the test", Code.Canceled);
      }
      return next(req);
    };
    return { seen, interceptor };
  }

  it("is 2 seconds, the Rust client's default request timeout", () => {
    assert.equal(DEFAULT_TIMEOUT_MS, 2_000);
  });

  for (const [label, make] of [
    ["gRPC", (address: string, options: Parameters<typeof createKeyportClient>[1]) => createKeyportClient(address, options)],
    ["gRPC-web", (address: string, options: Parameters<typeof createKeyportClient>[1]) => createKeyportClient(address, { ...options, transport: "grpc-web" })],
    ["the browser entry point", (address: string, options: Parameters<typeof createKeyportWebClient>[1]) => createKeyportWebClient(`http://${address}`, options)],
  ] as const) {
    it(`applies to every unary call without one, is overridable, and leaves streams alone (${label})`, async () => {
      const { seen, interceptor } = recorder();
      const grant = (await keyport.users.signUp({ email: uniqueEmail("deadline"), password: PASSWORD, name: "" })).session!;

      const byDefault = make(server.address, { interceptors: [interceptor] });
      assert.equal((await byDefault.sessions.getSession({ token: grant.token })).session?.id, grant.session?.id);
      assert.equal(errorReason(await failure(() => byDefault.sessions.getSession({ token: "kp_x.y" }))), "UNAUTHENTICATED");
      await byDefault.sessions.getSession({ token: grant.token }, { timeoutMs: 750 });
      await byDefault.sessions.getSession({ token: grant.token }, { timeoutMs: 0 });
      await failure(() => byDefault.sessions.watchSessionEvents({})[Symbol.asyncIterator]().next());
      assert.deepEqual(seen.splice(0), [`${DEFAULT_TIMEOUT_MS}m`, `${DEFAULT_TIMEOUT_MS}m`, "750m", null, null]);

      const longer = make(server.address, { interceptors: [interceptor], timeoutMs: 5_000 });
      await longer.sessions.getSession({ token: grant.token });
      await longer.sessions.getSession({ token: grant.token }, { timeoutMs: 300 });
      await failure(() => longer.sessions.watchSessionEvents({})[Symbol.asyncIterator]().next());
      assert.deepEqual(seen.splice(0), ["5000m", "300m", null]);

      const none = make(server.address, { interceptors: [interceptor], timeoutMs: 0 });
      await none.sessions.getSession({ token: grant.token });
      await none.sessions.getSession({ token: grant.token }, { timeoutMs: 400 });
      assert.deepEqual(seen.splice(0), [null, "400m"]);
      for (const client of [byDefault, longer, none]) client.close();
    });
  }

  it("is enforced on the client: a call to a peer that never answers gives up after 2 seconds", async () => {
    const sockets = new Set<Socket>();
    const silent: Server = createServer((socket) => {
      sockets.add(socket);
    });
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    const { port } = silent.address() as { port: number };
    try {
      await Promise.all(
        (["grpc", "grpc-web"] as const).map(async (transport) => {
          const client = createKeyportClient(`127.0.0.1:${port}`, { transport });
          const started = Date.now();
          const err = await failure(() => client.sessions.getSession({ token: "kp_x.y" }));
          const elapsed = Date.now() - started;
          client.close();
          assert.equal(err.code, Code.DeadlineExceeded, transport);
          assert.ok(elapsed >= DEFAULT_TIMEOUT_MS - 100 && elapsed < DEFAULT_TIMEOUT_MS + 3_000, `${transport}: gave up after ${elapsed} ms`);
          assert.equal(errorReason(err), undefined);
        }),
      );
    } finally {
      for (const socket of sockets) {
        socket.destroy();
      }
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
