/**
 * The conformance suite of the HTTP adapters, written once and run against
 * each (Express, Fastify, a web-standard `Request`; see support/apps.ts),
 * with a live keyport behind a real guard and cache: bearer and cookie
 * tokens, bad tokens, revocation (the next request is refused), expiry and
 * the slid cookie, Keyport down (fails closed), a broken and resumed event
 * stream (the cache starts over), and requests racing a revocation.
 */

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";

import { createKeyportClient, KeyportGuard, withSession } from "../src/index.js";
import { ADAPTERS, type App, type StartApp } from "./support/apps.js";
import { keyportAdmin } from "./support/keyport-server.js";
import { uniqueEmail } from "./support/calls.js";
import {
  eventually,
  PASSWORD,
  FAST_CACHE,
  get,
  reasonOf,
  signIn,
  signUp,
  type Stack,
  startStack,
  unusedAddress,
} from "./support/web.js";

for (const [adapter, startApp] of Object.entries(ADAPTERS)) {
  describe(`the ${adapter} adapter`, () => {
    let stack: Stack;
    let app: App;

    before(async () => {
      stack = await startStack();
      app = await startApp(stack.guard);
    });
    after(async () => {
      await app?.close();
      await stack?.close();
    });

    it("lets a bearer token or the session cookie through, with the principal", async () => {
      const ann = await signUp(stack.keyport, "ann");
      for (const credentials of [{ bearer: ann.token }, { cookie: ann.token }]) {
        const answer = await get(`${app.url}/me`, credentials);
        assert.equal(answer.status, 200, answer.body);
        assert.deepEqual(JSON.parse(answer.body), { email: ann.email, sessionId: ann.sessionId });
        assert.deepEqual(answer.setCookies, [], "nothing to re-issue for a fresh session");
      }
      // Beside other cookies, and a second time from the cache.
      const hitsBefore = stack.guard.cache!.stats().hits;
      const beside = await get(`${app.url}/me`, { headers: { cookie: `theme=dark; __Host-keyport_session=${ann.token}; x=1` } });
      assert.equal(beside.status, 200, beside.body);
      assert.ok(stack.guard.cache!.stats().hits > hitsBefore, "answered from the cache");
      assert.equal((await get(`${app.url}/public`, { bearer: ann.token })).body, `public:${ann.email}`);
      assert.equal((await get(`${app.url}/public`)).body, "public:anonymous");
    });

    it("refuses a request without a credential with 401 and a JSON reason", async () => {
      const cases: Record<string, string>[] = [{}, { authorization: "Basic YTpi" }, { authorization: "Bearer " }, { cookie: "other=1" }];
      for (const headers of cases) {
        const answer = await get(`${app.url}/me`, { headers });
        assert.equal(answer.status, 401, JSON.stringify(headers));
        assert.equal(reasonOf(answer), "UNAUTHENTICATED");
        assert.equal(answer.headers.get("www-authenticate"), "Bearer");
        assert.equal(answer.headers.get("cache-control"), "no-store");
      }
    });

    it("refuses empty, malformed, unknown, oversized and API-key tokens, and deletes a dead cookie", async () => {
      const ann = await signUp(stack.keyport, "bad");
      const bad = ["garbage", "kp_nope.nope", `${ann.token}x`, `kp_${"k".repeat(4000)}.x`, "kp_.x", "kp_a.b.c", "kp_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB"];
      for (const token of bad) {
        const byBearer = await get(`${app.url}/me`, { bearer: token });
        assert.equal(byBearer.status, 401, token.slice(0, 30));
        assert.equal(reasonOf(byBearer), "UNAUTHENTICATED");
        const byCookie = await get(`${app.url}/me`, { cookie: token });
        assert.equal(byCookie.status, 401, token.slice(0, 30));
        assert.ok(
          byCookie.setCookies.some((c) => c.startsWith("__Host-keyport_session=;") && c.includes("Max-Age=0")),
          `a dead cookie is deleted: ${byCookie.setCookies.join(" | ")}`,
        );
        // An optional route renders signed out, and still deletes it.
        const open = await get(`${app.url}/public`, { cookie: token });
        assert.equal(open.body, "public:anonymous");
        assert.ok(open.setCookies.some((c) => c.includes("Max-Age=0")));
      }
      const key = await get(`${app.url}/me`, { bearer: "kpa_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB" });
      assert.equal(key.status, 401);
      assert.equal(reasonOf(key), "API_KEY_NOT_ACCEPTED");
      // A key in the cookie is no credential at all.
      const keyCookie = await get(`${app.url}/me`, { cookie: "kpa_AAAAAAAAAAAAAAAAAAAAAA.BBBB" });
      assert.equal(keyCookie.status, 401);
      assert.equal(reasonOf(keyCookie), "UNAUTHENTICATED");
    });

    it("decides the route's permissions: 403 without, the handler with", async () => {
      const ann = await signUp(stack.keyport, "perm");
      const read = await get(`${app.url}/read`, { bearer: ann.token });
      assert.deepEqual([read.status, read.body], [200, `read:${ann.email}`]);
      const write = await get(`${app.url}/write`, { bearer: ann.token });
      assert.equal(write.status, 403);
      assert.equal(reasonOf(write), "FORBIDDEN");
      // Decided from the cache the second time.
      const before = stack.guard.cache!.stats().hits;
      assert.equal((await get(`${app.url}/write`, { bearer: ann.token })).status, 403);
      assert.ok(stack.guard.cache!.stats().hits > before);
      assert.equal((await get(`${app.url}/write`, { bearer: "garbage" })).status, 401);
    });

    it("refuses a session revoked elsewhere as soon as the event arrives, and the app's own revocation at once", async () => {
      const ann = await signUp(stack.keyport, "revoked");
      const phone = await signIn(stack.keyport, ann.email);
      assert.equal((await get(`${app.url}/me`, { bearer: phone.token })).status, 200);
      assert.equal((await get(`${app.url}/me`, { bearer: phone.token })).status, 200);
      assert.ok(stack.guard.cache!.lookup(phone.token), "cached");

      // Revoked through Keyport directly, not through the app.
      await stack.keyport.sessions.revokeSession({ sessionId: phone.sessionId }, withSession(ann.token));
      await eventually("the revocation reaching the cache", () => stack.guard.cache!.lookup(phone.token) === undefined);
      assert.ok(stack.guard.cache!.live, "dropped by the event, not by a broken stream");
      const refused = await get(`${app.url}/me`, { bearer: phone.token });
      assert.equal(refused.status, 401);
      assert.equal(reasonOf(refused), "UNAUTHENTICATED");
      assert.equal((await get(`${app.url}/me`, { bearer: ann.token })).status, 200, "the other session still works");

      // Revoked through the guard: the very next request is refused.
      const tablet = await signIn(stack.keyport, ann.email);
      assert.equal((await get(`${app.url}/me`, { bearer: tablet.token })).status, 200);
      await stack.guard.revokeSession(ann.token, tablet.sessionId);
      assert.equal((await get(`${app.url}/me`, { bearer: tablet.token })).status, 401);
    });

    it("drops every session of a user an admin bans (UserChanged)", async () => {
      const root = uniqueEmail("root");
      await keyportAdmin(stack.server, ["create-user", "--email", root, "--role", "admin", "--password-stdin"], `${PASSWORD}\n`);
      const admin = await signIn(stack.keyport, root);
      const ann = await signUp(stack.keyport, "banned");
      const phone = await signIn(stack.keyport, ann.email);
      for (const s of [ann, phone]) assert.equal((await get(`${app.url}/me`, { bearer: s.token })).status, 200);
      assert.ok(stack.guard.cache!.lookup(ann.token) && stack.guard.cache!.lookup(phone.token), "both cached");
      await stack.keyport.admin.banUser({ userId: ann.userId, reason: "test" }, withSession(admin.token));
      await eventually(
        "the ban reaching the cache",
        () => stack.guard.cache!.lookup(ann.token) === undefined && stack.guard.cache!.lookup(phone.token) === undefined,
      );
      assert.ok(stack.guard.cache!.live);
      for (const s of [ann, phone]) assert.equal((await get(`${app.url}/me`, { bearer: s.token })).status, 401);
      assert.equal((await get(`${app.url}/me`, { bearer: admin.token })).status, 200);
    });

    it("never lets a request through after a revocation returned, with 24 requests in flight", async () => {
      for (let round = 0; round < 3; round++) {
        const ann = await signUp(stack.keyport, `race${round}`);
        const victim = await signIn(stack.keyport, ann.email);
        assert.equal((await get(`${app.url}/me`, { bearer: victim.token })).status, 200);
        let revokedAt = Number.POSITIVE_INFINITY;
        const late: string[] = [];
        let statuses = new Set<number>();
        let stop = false;
        const worker = async (): Promise<void> => {
          while (!stop) {
            const started = performance.now();
            const answer = await get(`${app.url}/me`, { bearer: victim.token });
            statuses.add(answer.status);
            if (started > revokedAt && answer.status !== 401) late.push(`${answer.status} ${answer.body}`);
          }
        };
        const workers = Array.from({ length: 24 }, worker);
        await new Promise((resolve) => setTimeout(resolve, 50));
        await stack.guard.revokeSession(ann.token, victim.sessionId);
        revokedAt = performance.now();
        await new Promise((resolve) => setTimeout(resolve, 100));
        stop = true;
        await Promise.all(workers);
        assert.deepEqual(late, [], `round ${round}: requests sent after the revocation returned were let through`);
        assert.ok(statuses.has(200) && statuses.has(401), `both answers seen: ${[...statuses].join(",")}`);
        statuses = new Set();
      }
    });
  });

  describe(`the ${adapter} adapter with a keyport that goes away`, () => {
    it("fails closed when Keyport was never there: 503, never the content", async () => {
      const client = createKeyportClient(await unusedAddress(), { timeoutMs: 500 });
      const guard = new KeyportGuard(client, { cache: FAST_CACHE });
      const app = await startApp(guard);
      try {
        const token = "kp_AAAAAAAAAAAAAAAAAAAAAA.BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB";
        for (const credentials of [{ bearer: token }, { cookie: token }]) {
          const answer = await get(`${app.url}/me`, credentials);
          assert.equal(answer.status, 503, answer.body);
          assert.equal(reasonOf(answer), "AUTH_UNAVAILABLE");
          assert.equal(answer.headers.get("retry-after"), "5");
          assert.ok(!answer.setCookies.some((c) => c.includes("Max-Age=0")), "an outage is no verdict on the cookie");
        }
        assert.equal((await get(`${app.url}/write`, { bearer: token })).status, 503);
        assert.equal((await get(`${app.url}/public`, { bearer: token })).body, "public:anonymous", "an optional route renders signed out");
        assert.equal((await get(`${app.url}/me`)).status, 401, "no token needs no Keyport to refuse");
        assert.equal(guard.cache!.live, false);
      } finally {
        await app.close();
        guard.close();
        client.close();
      }
    });

    it("flushes the cache when the stream breaks, refuses while Keyport is down, and starts over after a restart", async () => {
      const stack = await startStack();
      const app = await startApp(stack.guard);
      try {
        const ann = await signUp(stack.keyport, "restart");
        assert.equal((await get(`${app.url}/me`, { bearer: ann.token })).status, 200);
        assert.ok(stack.guard.cache!.lookup(ann.token), "cached while live");
        const subscriptions = stack.guard.cache!.stats().subscriptions;

        // Keyport goes away; meanwhile the user is banned behind its back
        // (no event is ever sent), and it comes back on the same address and database.
        let downAnswers: number[] = [];
        stack.server = await stack.server.restart(async () => {
          await eventually("the cache going dark", () => !stack.guard.cache!.live);
          assert.equal(stack.guard.cache!.lookup(ann.token), undefined, "flushed");
          downAnswers = [(await get(`${app.url}/me`, { bearer: ann.token })).status];
          await keyportAdmin(stack.server, ["ban", "--email", ann.email, "--reason", "behind its back"]);
        });
        assert.deepEqual(downAnswers, [503], "Keyport down: failing closed");

        await eventually("the cache resubscribing", () => stack.guard.cache!.stats().subscriptions > subscriptions);
        assert.equal(stack.guard.cache!.lookup(ann.token), undefined, "started over empty");
        const refused = await get(`${app.url}/me`, { bearer: ann.token });
        assert.equal(refused.status, 401, refused.body);
        const bob = await signUp(stack.keyport, "after");
        assert.equal((await get(`${app.url}/me`, { bearer: bob.token })).status, 200, "works again");
      } finally {
        await app.close();
        await stack.close();
      }
    });
  });
}

describe("sessions with a short lifetime", () => {
  let stack: Stack;
  const apps: Record<string, App> = {};

  before(async () => {
    stack = await startStack({ KEYPORT_SESSIONS__EXPIRES_IN_SECS: "3", KEYPORT_SESSIONS__UPDATE_AGE_SECS: "1" });
    for (const [name, start] of Object.entries(ADAPTERS) as [string, StartApp][]) apps[name] = await start(stack.guard);
  });
  after(async () => {
    for (const app of Object.values(apps)) await app.close();
    await stack?.close();
  });

  it("re-issues the cookie when Keyport slid the expiry, and refuses an expired session with SESSION_EXPIRED", async () => {
    const sessions = await Promise.all(Object.keys(ADAPTERS).map((name) => signUp(stack.keyport, `short-${name.replace(" ", "-")}`)));
    const idle = await Promise.all(Object.keys(ADAPTERS).map((name) => signUp(stack.keyport, `idle-${name.replace(" ", "-")}`)));
    await new Promise((resolve) => setTimeout(resolve, 1_300));
    for (const [i, [name, app]] of Object.entries(apps).entries()) {
      const session = sessions[i]!;
      const slid = await get(`${app.url}/me`, { cookie: session.token });
      assert.equal(slid.status, 200, `${name}: ${slid.body}`);
      const cookie = slid.setCookies.find((c) => c.startsWith(`__Host-keyport_session=${session.token};`));
      assert.ok(cookie, `${name}: the slid session's cookie is re-issued: ${slid.setCookies.join(" | ")}`);
      assert.match(cookie, /; Path=\/; HttpOnly; Secure; SameSite=Lax; Max-Age=[23]$/);
    }
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    for (const [i, [name, app]] of Object.entries(apps).entries()) {
      const expired = await get(`${app.url}/me`, { bearer: idle[i]!.token });
      assert.equal(expired.status, 401, name);
      assert.equal(reasonOf(expired), "SESSION_EXPIRED", name);
    }
  });
});
