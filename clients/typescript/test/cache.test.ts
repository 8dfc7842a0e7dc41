/**
 * `SessionCache` against a live keyport: what it keeps and for how long,
 * what drops entries (events, answers that raced one), refusals remembered,
 * bounds, forwarding the end user's address, and a server that refuses this
 * peer the event stream (the cache never serves; every check asks Keyport).
 */

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { type Interceptor } from "@connectrpc/connect";

import { Code, ConnectError, createKeyportClient, errorReason, KeyportGuard, SessionCache, withSession } from "../src/index.js";
import { uniqueEmail } from "./support/calls.js";
import { keyportAdmin, startKeyport } from "./support/keyport-server.js";
import { eventually, PASSWORD, signIn, signUp, type Stack, startStack, TRUSTED_PROXIES_ENV } from "./support/web.js";

/** Rejects with the ConnectError of `call`. */
async function refusal(call: () => Promise<unknown>): Promise<ConnectError> {
  try {
    await call();
  } catch (err) {
    return ConnectError.from(err);
  }
  assert.fail("the call succeeded");
}

describe("SessionCache", () => {
  let stack: Stack;

  before(async () => {
    stack = await startStack();
  });
  after(() => stack?.close());

  /** A second cache on the same server, closed after the test. */
  async function cacheWith(options: ConstructorParameters<typeof SessionCache>[1]): Promise<SessionCache> {
    const cache = new SessionCache(stack.guard.client, options);
    await cache.whenLive();
    return cache;
  }

  it("caches a GetSession answer while live and serves it without a call", async () => {
    const cache = stack.guard.cache!;
    const ann = await signUp(stack.keyport, "hit");
    const before = cache.stats();
    const first = await cache.getSession(ann.token);
    assert.equal(first.principal.user.email, ann.email);
    assert.equal(first.principal.session.id, ann.sessionId);
    const second = await cache.getSession(ann.token);
    assert.equal(second.principal, first.principal, "the same entry");
    const after = cache.stats();
    assert.equal(after.misses - before.misses, 1, "one call to Keyport");
    assert.equal(after.hits - before.hits, 1);
    assert.equal(cache.lookup(`${ann.token.slice(0, -1)}${ann.token.endsWith("A") ? "B" : "A"}`), undefined, "another secret for the session never hits");
  });

  it("does not keep an answer that was in flight while an event arrived", async () => {
    const cache = stack.guard.cache!;
    const ann = await signUp(stack.keyport, "raced");
    const pending = cache.getSession(ann.token);
    cache.forgetUser("someone-else"); // any event, as far as the ticket is concerned
    await pending;
    assert.equal(cache.lookup(ann.token), undefined, "raced: not kept");
    await cache.getSession(ann.token);
    assert.ok(cache.lookup(ann.token), "kept when nothing raced it");
  });

  it("keeps an entry no longer than maxTtlMs, and no more than maxEntries", async () => {
    const cache = await cacheWith({ maxTtlMs: 300, maxEntries: 3 });
    try {
      const users = await Promise.all([0, 1, 2, 3, 4].map((i) => signUp(stack.keyport, `bound${i}`)));
      for (const user of users) {
        await cache.getSession(user.token);
        assert.ok(cache.stats().entries <= 3, `bounded: ${cache.stats().entries}`);
      }
      assert.ok(cache.lookup(users[4]!.token), "the newest is kept");
      await new Promise((resolve) => setTimeout(resolve, 350));
      assert.equal(cache.lookup(users[4]!.token), undefined, "gone at maxTtlMs");
      assert.ok(cache.live);
    } finally {
      cache.close();
    }
  });

  it("remembers a refused token, so junk costs one call; an outage is never remembered", async () => {
    const cache = stack.guard.cache!;
    const junk = "kp_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
    const before = cache.stats();
    for (let i = 0; i < 5; i++) {
      const err = await refusal(() => cache.getSession(junk));
      assert.equal(err.code, Code.Unauthenticated);
      assert.equal(errorReason(err), "UNAUTHENTICATED");
    }
    const after = cache.stats();
    assert.equal(after.misses - before.misses, 1, "Keyport was asked once");
    assert.equal(after.refusalHits - before.refusalHits, 4);

    const bounded = await cacheWith({ maxRefusals: 3 });
    try {
      for (let i = 0; i < 10; i++) {
        await refusal(() => bounded.getSession(`kp_AAAAAAAAAAAAAAAAAAAAA${i}.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB`));
        assert.ok(bounded.stats().refusals <= 3, `bounded: ${bounded.stats().refusals}`);
      }
      assert.ok(bounded.stats().refusals >= 1, "the newest refusal is kept");
    } finally {
      bounded.close();
    }

    const noRefusals = await cacheWith({ refusalTtlMs: 0 });
    try {
      await refusal(() => noRefusals.getSession(junk));
      await refusal(() => noRefusals.getSession(junk));
      assert.equal(noRefusals.stats().misses, 2, "refusalTtlMs 0 always asks");
    } finally {
      noRefusals.close();
    }
  });

  it("decides permissions from the cached grants once Keyport decided the names", async () => {
    const cache = stack.guard.cache!;
    const ann = await signUp(stack.keyport, "grants");
    const first = await cache.authorize(ann.token, ["posts:read", "posts:write"]);
    assert.deepEqual([first.allowed, first.all], [[true, false], false]);
    const before = cache.stats().misses;
    const again = await cache.authorize(ann.token, ["posts:write", "posts:read"]);
    assert.deepEqual(again.allowed, [false, true]);
    assert.equal(cache.stats().misses, before, "decided here");
    assert.equal((await cache.getSession(ann.token)).principal.user.id, ann.userId, "the entry serves GetSession too");
    const unknown = await refusal(() => cache.authorize(ann.token, ["posts:delete"]));
    assert.equal(errorReason(unknown), "PERMISSION_UNKNOWN", "an unknown name stays an error");
    const key = await refusal(() => cache.authorize("kpa_AAAAAAAAAAAAAAAAAAAAAA.BBBB", ["posts:read"]));
    assert.equal(key.code, Code.InvalidArgument, "keys are decided by Keyport directly");
  });

  it("drops every decision when an admin changes a role's grants (RolesChanged)", async () => {
    const cache = stack.guard.cache!;
    const root = uniqueEmail("roles-root");
    await keyportAdmin(stack.server, ["create-user", "--email", root, "--role", "admin", "--password-stdin"], `${PASSWORD}\n`);
    const admin = await signIn(stack.keyport, root);
    const ann = await signUp(stack.keyport, "roles");
    const events = cache.stats().events;
    await stack.keyport.admin.putRole({ name: "editor", grants: ["posts:write"] }, withSession(admin.token));
    // Its RolesChanged must not drop what comes next.
    await eventually("the first change's event", () => cache.stats().events > events);
    await cache.authorize(ann.token, ["posts:read"]);
    assert.ok(cache.decideCached(ann.token, ["posts:read"]));
    await stack.keyport.admin.putRole({ name: "editor", grants: ["posts:read"] }, withSession(admin.token));
    await eventually("the role change reaching the cache", () => cache.decideCached(ann.token, ["posts:read"]) === undefined);
    assert.ok(cache.live, "the stream is fine: only the answers are stale");
  });

  it("signs out through the guard: the cookie is deleted and the session refused at once", async () => {
    const ann = await signUp(stack.keyport, "signout");
    const credentials = { cookie: `__Host-keyport_session=${ann.token}` };
    const signedIn = await stack.guard.authenticate(credentials);
    assert.ok(signedIn.ok && stack.guard.cache!.lookup(ann.token));
    const cleared = await stack.guard.signOut(ann.token, signedIn.principal);
    assert.equal(cleared, "__Host-keyport_session=; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=0");
    const after = await stack.guard.authenticate(credentials);
    assert.ok(!after.ok && after.refusal.reason === "UNAUTHENTICATED");
  });

  it("forwards the end user's address and user agent with each check", async () => {
    const seen: Headers[] = [];
    const record: Interceptor = (next) => async (req) => {
      if (req.method.name === "GetSession") seen.push(new Headers(req.header));
      return next(req);
    };
    const client = createKeyportClient(stack.server.address, { interceptors: [record] });
    const guard = new KeyportGuard(client, { cache: false, trustForwardedFor: true });
    try {
      const ann = await signUp(stack.keyport, "forwarded");
      const result = await guard.authenticate({
        authorization: `Bearer ${ann.token}`,
        peerIp: "::ffff:127.0.0.1",
        forwardedFor: "203.0.113.9, 198.51.100.7",
        userAgent: "Mozilla/5.0 (test)",
      });
      assert.ok(result.ok);
      assert.equal(seen[0]?.get("x-keyport-client-ip"), "198.51.100.7", "the right-most X-Forwarded-For entry");
      assert.equal(seen[0]?.get("x-keyport-user-agent"), "Mozilla/5.0 (test)");
      const untrusting = new KeyportGuard(client, { cache: false });
      await untrusting.authenticate({ authorization: `Bearer ${ann.token}`, peerIp: "::ffff:127.0.0.1", forwardedFor: "203.0.113.9" });
      assert.equal(seen[1]?.get("x-keyport-client-ip"), "127.0.0.1", "the peer, in canonical form");
    } finally {
      client.close();
    }
  });
});

describe("SessionCache on a keyport that does not trust this peer", () => {
  let stack: Stack | undefined;
  after(() => stack?.close());

  it("never goes live, and every check asks Keyport (so a revocation is refused at once)", async () => {
    const server = await startKeyport({ KEYPORT_SERVER__TRUSTED_PROXIES: "[]" });
    const keyport = createKeyportClient(server.address);
    const guard = new KeyportGuard(createKeyportClient(server.address), { cache: { reconnectDelayMs: 20 } });
    stack = {
      server,
      keyport,
      guard,
      async close() {
        guard.close();
        guard.client.close();
        keyport.close();
        await server.stop();
      },
    };
    const cache = guard.cache!;
    await eventually("two refused subscriptions", () => cache.stats().subscribeFailures >= 2);
    assert.equal(cache.live, false);
    assert.equal(cache.stats().subscriptions, 0);
    const ann = await signUp(keyport, "untrusted");
    const phone = await signIn(keyport, ann.email);
    const result = await guard.authenticate({ authorization: `Bearer ${phone.token}` });
    assert.ok(result.ok, "checks still work");
    assert.equal(cache.lookup(phone.token), undefined, "nothing kept");
    await keyport.sessions.revokeSession({ sessionId: phone.sessionId }, withSession(ann.token));
    const refused = await guard.authenticate({ authorization: `Bearer ${phone.token}` });
    assert.ok(!refused.ok && refused.refusal.reason === "UNAUTHENTICATED", "refused at once");
  });
});

describe("SessionCache in front of a keyport that freezes", () => {
  it("stops serving within seconds when its connection's keepalive PINGs go unanswered, and recovers", async () => {
    const server = await startKeyport(TRUSTED_PROXIES_ENV);
    const keyport = createKeyportClient(server.address, { timeoutMs: 10_000 });
    const client = createKeyportClient(server.address, { keepalive: { pingIntervalMs: 300, pingTimeoutMs: 700 } });
    const cache = new SessionCache(client, { reconnectDelayMs: 50 });
    let frozen = false;
    try {
      await cache.whenLive();
      const ann = await signUp(keyport, "frozen");
      await cache.getSession(ann.token);
      assert.ok(cache.lookup(ann.token));
      // A frozen server keeps its socket open and says nothing: no end, no error, no event.
      process.kill(server.pid, "SIGSTOP");
      frozen = true;
      const frozeAt = Date.now();
      await eventually("the cache going dark", () => !cache.live, 5_000);
      assert.ok(Date.now() - frozeAt < 5_000, "well before the 40 s heartbeat timeout");
      assert.equal(cache.lookup(ann.token), undefined, "nothing served while it is frozen");
      process.kill(server.pid, "SIGCONT");
      frozen = false;
      await cache.whenLive(10_000);
      assert.equal((await cache.getSession(ann.token)).principal.user.id, ann.userId);
    } finally {
      if (frozen) process.kill(server.pid, "SIGCONT");
      cache.close();
      client.close();
      keyport.close();
      await server.stop();
    }
  });
});
