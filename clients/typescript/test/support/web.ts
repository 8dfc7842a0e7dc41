/** What the guard and adapter tests share: HTTP requests to an app, users with sessions, waiting. */

import assert from "node:assert/strict";

import { createKeyportClient, KeyportGuard, type KeyportClient, type SessionCacheOptions } from "../../src/index.js";
import { uniqueEmail } from "./calls.js";
import { type KeyportServer, startKeyport } from "./keyport-server.js";

/** The password of every test user. */
export const PASSWORD = "correct horse battery staple";

/** The event stream answers only trusted peers: the tests' own address. */
export const TRUSTED_PROXIES_ENV = { KEYPORT_SERVER__TRUSTED_PROXIES: '["127.0.0.1"]' } as const;

/** A cache that resubscribes quickly, so that tests of broken streams stay short. */
export const FAST_CACHE: SessionCacheOptions = { reconnectDelayMs: 50 };

/** A signed-up user's session. */
export interface Signed {
  readonly email: string;
  readonly token: string;
  readonly sessionId: string;
  readonly userId: string;
}

/** Signs a new user up. */
export async function signUp(keyport: KeyportClient, label: string): Promise<Signed> {
  const email = uniqueEmail(label);
  const { session } = await keyport.users.signUp({ email, password: PASSWORD, name: label });
  assert.ok(session?.session && session.user);
  return { email: session.user.email, token: session.token, sessionId: session.session.id, userId: session.user.id };
}

/** Signs an existing user in again: a second session. */
export async function signIn(keyport: KeyportClient, email: string): Promise<Signed> {
  const { outcome } = await keyport.sessions.signIn({ email, password: PASSWORD });
  assert.equal(outcome.case, "session");
  const grant = outcome.value;
  return { email, token: grant.token, sessionId: grant.session!.id, userId: grant.user!.id };
}

/** An HTTP answer, read whole. */
export interface Answer {
  readonly status: number;
  readonly body: string;
  readonly headers: Headers;
  readonly setCookies: string[];
}

/** `GET url` with a bearer token or the session cookie (and any other headers). */
export async function get(
  url: string,
  credentials: { bearer?: string; cookie?: string; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers = new Headers(credentials.headers);
  if (credentials.bearer !== undefined) headers.set("authorization", `Bearer ${credentials.bearer}`);
  if (credentials.cookie !== undefined) headers.set("cookie", `__Host-keyport_session=${credentials.cookie}`);
  const response = await fetch(url, { headers });
  return {
    status: response.status,
    body: await response.text(),
    headers: response.headers,
    setCookies: response.headers.getSetCookie(),
  };
}

/** The `error` of a refusal's JSON body. */
export function reasonOf(answer: Answer): string {
  assert.match(answer.headers.get("content-type") ?? "", /application\/json/, answer.body);
  return (JSON.parse(answer.body) as { error: string }).error;
}

/** Polls `condition` every few ms until it holds; fails after `timeoutMs`. */
export async function eventually(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** A keyport, a client of it for the test's own calls, and a guard with a live cache. */
export interface Stack {
  server: KeyportServer;
  keyport: KeyportClient;
  guard: KeyportGuard;
  close(): Promise<void>;
}

/** Starts a keyport (with `env`) and a guard whose cache is live. */
export async function startStack(env: Record<string, string> = {}, cache: SessionCacheOptions = FAST_CACHE): Promise<Stack> {
  const server = await startKeyport({ ...TRUSTED_PROXIES_ENV, ...env });
  const keyport = createKeyportClient(server.address, { timeoutMs: 10_000 });
  const guard = new KeyportGuard(createKeyportClient(server.address), { cache });
  await guard.cache!.whenLive();
  const stack: Stack = {
    server,
    keyport,
    guard,
    async close() {
      guard.close();
      guard.client.close();
      keyport.close();
      await stack.server.stop();
    },
  };
  return stack;
}

/** A `host:port` nobody listens on. */
export async function unusedAddress(): Promise<string> {
  const { createServer } = await import("node:net");
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return `127.0.0.1:${port}`;
}
