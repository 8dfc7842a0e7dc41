/**
 * Benchmarks of the TypeScript SDK's guard against a live keyport on this
 * machine, side by side in one run:
 *
 * 1. requests/s of an Express hello-world route (autocannon, 64
 *    connections): bare, behind `keyportMiddleware` on a cache hit, and
 *    with the cache off (every request calls Keyport's GetSession);
 * 2. the cost of a cache hit, `guard.authenticate` alone, in process (µs);
 * 3. revocation to refusal: RevokeSession through another client, then
 *    the time until the guard refuses the session (p50 / p99, 50 rounds);
 * 4. JWT access-token verifications per second (one at a time, and 64 in
 *    flight), next to cached session checks per second.
 *
 * Usage: KEYPORT_BIN=/path/to/keyport node --import tsx bench/bench.ts [--smoke]
 * (`--smoke`: tiny counts, to check the script runs; its numbers mean nothing).
 */

import { type ChildProcess, spawn } from "node:child_process";
import { loadavg } from "node:os";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

import autocannon from "autocannon";

import { AccessTokenVerifier, createKeyportClient, KeyportGuard, withSession } from "../src/index.js";
import { startKeyport } from "../test/support/keyport-server.js";

const smoke = process.argv.includes("--smoke");
const DURATION_S = smoke ? 1 : 8;
const ROUNDS = smoke ? 1 : 3;
const CONNECTIONS = 64;
const HIT_ITERATIONS = smoke ? 2_000 : 300_000;
const JWT_ITERATIONS = smoke ? 200 : 20_000;
const REVOCATIONS = smoke ? 3 : 50;
const ISSUER = "https://keyport.bench";

const server = await startKeyport({
  KEYPORT_SERVER__TRUSTED_PROXIES: '["127.0.0.1"]',
  KEYPORT_ACCESS_TOKENS__ISSUER: ISSUER,
  KEYPORT_ACCESS_TOKENS__AUDIENCES: '["bench"]',
});
const keyport = createKeyportClient(server.address, { timeoutMs: 10_000 });
const lines: string[] = [];
const report = (line: string): void => {
  lines.push(line);
  console.log(line);
};

try {
  const email = `bench-${Date.now()}@example.com`;
  const password = "correct horse battery staple";
  const { session } = await keyport.users.signUp({ email, password, name: "bench" });
  const token = session!.token;

  report(`load average before: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  // 1. HTTP throughput, the modes interleaved so that a change of the
  // machine's load hits all of them alike.
  const rates: Record<string, number[]> = { bare: [], cached: [], uncached: [] };
  for (let round = 0; round < ROUNDS; round++) {
    for (const mode of Object.keys(rates)) {
      const rate = await throughput(mode, server.address, token);
      rates[mode]!.push(rate);
      report(`round ${round + 1}: express hello ${mode.padEnd(8)}: ${rate.toFixed(0)} req/s`);
    }
  }
  const mean = (mode: string): number => rates[mode]!.reduce((a, b) => a + b, 0) / rates[mode]!.length;
  report(`mean req/s: bare ${mean("bare").toFixed(0)}, cached ${mean("cached").toFixed(0)}, uncached ${mean("uncached").toFixed(0)}`);
  report(`cached / bare: ${((mean("cached") / mean("bare")) * 100).toFixed(1)} % (target >= 90 %)`);
  report(`uncached / bare: ${((mean("uncached") / mean("bare")) * 100).toFixed(1)} %`);

  // 2. A cache hit, in process.
  const guard = new KeyportGuard(createKeyportClient(server.address));
  await guard.cache!.whenLive();
  const credentials = { authorization: `Bearer ${token}` };
  const warm = await guard.authenticate(credentials);
  if (!warm.ok) throw new Error(`the bench session is refused: ${warm.refusal.reason}`);
  const hitPerSecond = await perSecond(HIT_ITERATIONS, async () => {
    const result = await guard.authenticate(credentials);
    if (!result.ok) throw new Error("refused");
  });
  report(`cache hit (guard.authenticate): ${(1e6 / hitPerSecond).toFixed(2)} µs each, ${hitPerSecond.toFixed(0)}/s on one core`);

  // 3. Revocation to refusal.
  const sinceCall: number[] = [];
  const sinceAnswer: number[] = [];
  for (let round = 0; round < REVOCATIONS; round++) {
    const { outcome } = await keyport.sessions.signIn({ email, password });
    if (outcome.case !== "session") throw new Error("no session");
    const victim = outcome.value;
    const victimCredentials = { authorization: `Bearer ${victim.token}` };
    await guard.authenticate(victimCredentials);
    if (guard.cache!.lookup(victim.token) === undefined) throw new Error("not cached");
    const start = performance.now();
    await keyport.sessions.revokeSession({ sessionId: victim.session!.id }, withSession(token));
    const answered = performance.now();
    while ((await guard.authenticate(victimCredentials)).ok) {
      await new Promise((resolve) => setImmediate(resolve));
    }
    const refused = performance.now();
    sinceCall.push(refused - start);
    sinceAnswer.push(Math.max(0, refused - answered));
  }
  report(
    `revocation to refusal (${REVOCATIONS} rounds): from the RevokeSession call p50 ${pct(sinceCall, 50)} ms, p99 ${pct(sinceCall, 99)} ms, max ${pct(sinceCall, 100)} ms; ` +
      `from its answer p50 ${pct(sinceAnswer, 50)} ms, p99 ${pct(sinceAnswer, 99)} ms, max ${pct(sinceAnswer, 100)} ms`,
  );

  // 4. JWT verification next to a cached session check.
  const { accessToken } = await keyport.sessions.issueAccessToken({ token, audience: "bench" });
  const verifier = new AccessTokenVerifier({ issuer: ISSUER, audience: "bench", keys: keyport });
  await verifier.verify(accessToken);
  const jwtSequential = await perSecond(JWT_ITERATIONS, () => verifier.verify(accessToken));
  // WebCrypto verifies on libuv's thread pool: one at a time measures the
  // hop's latency, 64 in flight the throughput.
  const jwtParallel = await perSecond(JWT_ITERATIONS / 64, () =>
    Promise.all(Array.from({ length: 64 }, () => verifier.verify(accessToken))),
  ) * 64;
  report(
    `JWT verify (EdDSA, jose): ${jwtSequential.toFixed(0)}/s one at a time (${(1e6 / jwtSequential).toFixed(1)} µs each), ` +
      `${jwtParallel.toFixed(0)}/s with 64 in flight; cached session check ${hitPerSecond.toFixed(0)}/s`,
  );
  report(`load average after: ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
  guard.close();
  guard.client.close();
} finally {
  keyport.close();
  await server.stop();
}

/** autocannon's mean requests/s against the app in `mode`; fails on any non-2xx answer. */
async function throughput(mode: string, address: string, token: string): Promise<number> {
  const app = await startApp(mode, address);
  try {
    const result = await autocannon({
      url: `${app.url}/hello`,
      connections: CONNECTIONS,
      duration: DURATION_S,
      headers: mode === "bare" ? {} : { authorization: `Bearer ${token}` },
    });
    if (result.non2xx > 0 || result.errors > 0) {
      throw new Error(`${mode}: ${result.non2xx} non-2xx answers, ${result.errors} errors`);
    }
    return result.requests.average;
  } finally {
    app.child.kill("SIGTERM");
  }
}

async function startApp(mode: string, address: string): Promise<{ url: string; child: ChildProcess }> {
  const script = fileURLToPath(new URL("./app.ts", import.meta.url));
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    env: { ...process.env, BENCH_MODE: mode, KEYPORT_ADDRESS: address },
    stdio: ["ignore", "pipe", "inherit"],
  });
  const url = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", resolve);
    child.once("exit", (code) => reject(new Error(`the ${mode} app exited with ${code}`)));
  });
  return { url, child };
}

/** Runs `op` `n` times, one after another, and returns how many per second. */
async function perSecond(n: number, op: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < Math.min(n, 1_000); i++) await op();
  const start = performance.now();
  for (let i = 0; i < n; i++) await op();
  return n / ((performance.now() - start) / 1000);
}

function pct(values: number[], p: number): string {
  const sorted = [...values].sort((a, b) => a - b);
  const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[index]!.toFixed(2);
}
