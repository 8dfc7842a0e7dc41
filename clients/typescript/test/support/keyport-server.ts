/**
 * Starts a real `keyport serve` for the tests: the binary named by
 * `KEYPORT_BIN`, on 127.0.0.1 port 0, with a fresh data directory, cheap
 * password hashing, passkeys on for the relying party `localhost` (pages on
 * `https://localhost`), and the permissions `posts:read` and `posts:write`
 * (`user` grants `posts:read`, `admin` everything); and runs the binary's
 * `keyport admin` command line on a running server's database
 * ({@link keyportAdmin}).
 */

import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

/** A running keyport server. */
export interface KeyportServer {
  /** `host:port` it listens on. */
  readonly address: string;
  /** Its process id (to freeze it with SIGSTOP, say). */
  readonly pid: number;
  /** Its data directory (the SQLite database), for {@link keyportAdmin}. */
  readonly dataDir: string;
  /** The `KEYPORT_*` settings it was started with (on top of the process's environment). */
  readonly settings: Readonly<Record<string, string>>;
  /** Stops it (SIGTERM, then SIGKILL) and removes its data directory. */
  stop(): Promise<void>;
  /**
   * Stops it, keeping its data directory, runs `meanwhile` (e.g. changes
   * to the database behind its back), and starts it again on the same
   * address and database; the returned server replaces this one.
   */
  restart(meanwhile?: () => Promise<void>): Promise<KeyportServer>;
}

/** Where {@link startKeyport} listens and keeps its database. */
export interface ServeOptions {
  /** `host:port`; default `127.0.0.1:0`. */
  readonly listen?: string;
  /** An existing data directory to reuse; default a fresh one. */
  readonly dataDir?: string;
}

/** The `[passkeys]` section of every test server; `{ KEYPORT_PASSKEYS__RP_ID: "" }` turns passkeys off. */
export const PASSKEYS_ENV = {
  KEYPORT_PASSKEYS__RP_ID: "localhost",
  KEYPORT_PASSKEYS__ORIGINS: '["https://localhost"]',
} as const;

/** The `[authorization]` section of every test server: its catalogue and roles. */
export const AUTHORIZATION_ENV = {
  KEYPORT_AUTHORIZATION__PERMISSIONS: '["posts:read","posts:write"]',
  KEYPORT_AUTHORIZATION__ROLES: '{user = ["posts:read"], admin = ["*"]}',
} as const;

const STARTUP_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 10_000;

/**
 * The keyport binary from `KEYPORT_BIN`.
 *
 * @throws Error with instructions when it is unset.
 */
export function keyportBin(): string {
  const bin = process.env.KEYPORT_BIN;
  if (bin === undefined || bin === "") {
    throw new Error(
      "KEYPORT_BIN is not set: the TypeScript SDK tests run against a real keyport server. " +
        "Build it with `CARGO_TARGET_DIR=/root/.cache/keyport/target cargo build -p keyport-server` and set " +
        "KEYPORT_BIN=/root/.cache/keyport/target/debug/keyport",
    );
  }
  return bin;
}

/**
 * Starts `keyport serve` and resolves once its JSON log says
 * "keyport serving gRPC" with the address it bound.
 *
 * @param env - Extra environment variables for the server.
 */
export async function startKeyport(env: Record<string, string> = {}, serve: ServeOptions = {}): Promise<KeyportServer> {
  const bin = keyportBin();
  const dataDir = serve.dataDir ?? (await mkdtemp(join(tmpdir(), "keyport-ts-")));
  const settings = {
    KEYPORT_HASHING__MEMORY_KIB: "1024",
    KEYPORT_HASHING__ITERATIONS: "1",
    ...PASSKEYS_ENV,
    ...AUTHORIZATION_ENV,
    ...env,
  };
  const child = spawn(
    bin,
    ["serve", "--listen", serve.listen ?? "127.0.0.1:0", "--data-dir", dataDir, "--log-format", "json"],
    { env: { ...process.env, ...settings }, stdio: ["ignore", "pipe", "pipe"] },
  );
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  const stop = async (): Promise<void> => {
    await stopProcess(child, exited);
    await rm(dataDir, { recursive: true, force: true });
  };
  try {
    const address = await waitForAddress(child, () => stderr);
    const restart = async (meanwhile?: () => Promise<void>): Promise<KeyportServer> => {
      await stopProcess(child, exited);
      await meanwhile?.();
      return startKeyport(env, { listen: address, dataDir });
    };
    return { address, pid: child.pid!, dataDir, settings, stop, restart };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Runs `keyport --data-dir <server's> admin <args>` with the server's
 * settings while it keeps running, as an operator does on its host (e.g.
 * `["create-user", "--email", e, "--role", "admin", "--password-stdin"]`),
 * and resolves with what it printed on standard output.
 *
 * @param server - The server whose database to change.
 * @param args - The arguments after `admin`.
 * @param stdin - Standard input (the password of `--password-stdin`, on its first line).
 * @throws Error with its standard error when it exits with another status than 0.
 */
export function keyportAdmin(server: KeyportServer, args: readonly string[], stdin = ""): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(keyportBin(), ["--data-dir", server.dataDir, "admin", ...args], {
      env: { ...process.env, ...server.settings },
      stdio: ["pipe", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.once("error", reject);
    child.once("close", (code, signal) => {
      if (code === 0) resolve(stdout);
      else reject(new Error(`keyport admin ${args.join(" ")} exited with ${code ?? signal}: ${stderr.trim()}`));
    });
    child.stdin.end(stdin);
  });
}

function waitForAddress(child: ChildProcess, stderr: () => string): Promise<string> {
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const log: string[] = [];
    const done = (): void => {
      clearTimeout(timer);
      child.off("error", onError);
      child.off("exit", onExit);
      lines.removeAllListeners("line");
    };
    const fail = (why: string): void => {
      done();
      lines.close();
      reject(new Error(`${why}\n--- stdout ---\n${log.join("\n")}\n--- stderr ---\n${stderr()}`));
    };
    const onError = (error: Error): void => fail(`cannot run ${process.env.KEYPORT_BIN}: ${error.message}`);
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void =>
      fail(`keyport exited before serving (code ${code}, signal ${signal})`);
    const timer = setTimeout(() => fail(`keyport did not start within ${STARTUP_TIMEOUT_MS} ms`), STARTUP_TIMEOUT_MS);
    child.once("error", onError);
    child.once("exit", onExit);
    lines.on("line", (line) => {
      log.push(line);
      let entry: unknown;
      try {
        entry = JSON.parse(line);
      } catch {
        return;
      }
      const record = entry as { message?: unknown; address?: unknown; fields?: { message?: unknown; address?: unknown } };
      const message = record.message ?? record.fields?.message;
      const address = record.address ?? record.fields?.address;
      if (message === "keyport serving gRPC" && typeof address === "string") {
        // Later lines are read and dropped, so the server never blocks on a
        // full pipe.
        done();
        resolve(address);
      }
    });
  });
}

async function stopProcess(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) {
    return;
  }
  child.kill("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(true), STOP_TIMEOUT_MS);
  });
  const late = await Promise.race([exited.then(() => false), timedOut]);
  clearTimeout(timer);
  if (late) {
    child.kill("SIGKILL");
    await exited;
  }
}
