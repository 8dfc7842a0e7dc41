/**
 * A real SMTP server for the mail tests: Mailpit (https://mailpit.axllent.org),
 * started on free ports and read back through its HTTP API, as
 * `tests/src/mailpit.rs` does for the Rust tests. The binary is
 * `$KEYPORT_MAILPIT`, else `~/.cache/keyport/bin/mailpit` (where
 * `scripts/test.sh` installs it); without it the tests fail, naming the
 * install command.
 */

import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, constants, openSync } from "node:fs";
import { access, mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { connect, createServer } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** How scripts/test.sh installs Mailpit. */
export const MAILPIT_INSTALL = "GOBIN=~/.cache/keyport/bin go install github.com/axllent/mailpit@v1.33.1";
/** Where the links in test mails point (`mail.public_base_url`). */
export const PUBLIC_BASE_URL = "http://app.example.test";
/** The sender of test mails (`mail.from`). */
export const FROM = "Keyport <no-reply@example.test>";

/** How long {@link Mailpit.waitFor} waits for mail by default. */
const DELIVERY_TIMEOUT_MS = 20_000;
/** How long Mailpit may take to answer after it was started. */
const START_TIMEOUT_MS = 10_000;

// "enter this code: 123456" (verification), "enter this code ... it:\n\n123456" (sign-in, password setup).
const CODE = /enter this code[^:\n]*:\s*(\d{6})\b/;

/** A delivered message, as Mailpit's `/api/v1/message/<id>` shows it. */
export interface Delivered {
  readonly id: string;
  readonly subject: string;
  readonly from: string;
  readonly to: readonly string[];
  readonly text: string;
  readonly html: string;
}

/** The first link to `PUBLIC_BASE_URL + path` with a token, in the text part of `mail`. */
export function linkIn(mail: Delivered, path: string): string | undefined {
  const escaped = `${PUBLIC_BASE_URL}${path}`.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  return new RegExp(`${escaped}\\?token=[A-Za-z0-9_-]+`).exec(mail.text)?.[0];
}

/** The six-digit code in the text part of `mail`, if it has one. */
export function codeIn(mail: Delivered): string | undefined {
  return CODE.exec(mail.text)?.[1];
}

interface Address {
  Address: string;
}

interface Listing {
  messages: { ID: string; To: Address[] | null }[];
}

interface Message {
  ID: string;
  Subject: string;
  From: Address;
  To: Address[] | null;
  Text: string;
  HTML: string;
}

/** A running Mailpit: plain SMTP with any or no credentials, every message kept. */
export class Mailpit {
  readonly #child: ChildProcess;
  readonly #exited: Promise<void>;
  readonly #dir: string;
  readonly #api: string;

  /** The SMTP port on 127.0.0.1. */
  readonly smtpPort: number;

  private constructor(child: ChildProcess, exited: Promise<void>, dir: string, smtpPort: number, httpPort: number) {
    this.#child = child;
    this.#exited = exited;
    this.#dir = dir;
    this.smtpPort = smtpPort;
    this.#api = `http://127.0.0.1:${httpPort}`;
  }

  /**
   * Starts Mailpit on free ports with its database in a fresh temporary
   * directory, and resolves once its SMTP port accepts and `/readyz` answers.
   * A port taken between choosing it and Mailpit binding it makes Mailpit
   * exit; then it is tried again on other ports, three times in all.
   */
  static async start(): Promise<Mailpit> {
    const binary = await mailpitBinary();
    const dir = await mkdtemp(join(tmpdir(), "keyport-ts-mailpit-"));
    const logFile = join(dir, "mailpit.log");
    for (let attempt = 0; attempt < 3; attempt += 1) {
      const [smtpPort, httpPort] = [await freePort(), await freePort()];
      const log = openSync(logFile, "a");
      const child = spawn(
        binary,
        [
          "--smtp",
          `127.0.0.1:${smtpPort}`,
          "--listen",
          `127.0.0.1:${httpPort}`,
          "--database",
          join(dir, "mailpit.db"),
          // --max 0: keep every message (the default prunes past 500).
          "--max",
          "0",
          "--smtp-auth-accept-any",
          "--smtp-auth-allow-insecure",
          "--smtp-disable-rdns",
          "--quiet",
        ],
        { stdio: ["ignore", "ignore", log] },
      );
      closeSync(log);
      const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
      const spawnError = new Promise<Error>((resolve) => child.once("error", resolve));
      const mailpit = new Mailpit(child, exited, dir, smtpPort, httpPort);
      const deadline = Date.now() + START_TIMEOUT_MS;
      let failed: Error | undefined;
      void spawnError.then((error) => {
        failed = error;
      });
      while (child.exitCode === null && failed === undefined && Date.now() < deadline) {
        if (await mailpit.#answers()) {
          return mailpit;
        }
        await sleep(50);
      }
      if (failed !== undefined) {
        await rm(dir, { recursive: true, force: true });
        throw new Error(`cannot run ${binary}: ${failed.message} (install it with \`${MAILPIT_INSTALL}\`)`);
      }
      await mailpit.#kill();
    }
    const log = await readFile(logFile, "utf8").catch(() => "");
    await rm(dir, { recursive: true, force: true });
    throw new Error(`Mailpit did not answer within ${START_TIMEOUT_MS} ms (three tries):\n${log}`);
  }

  /** The `KEYPORT_MAIL__*` settings that point a keyport at this server, with fast retries. */
  keyportEnv(): Record<string, string> {
    return {
      KEYPORT_MAIL__SMTP_HOST: "127.0.0.1",
      KEYPORT_MAIL__SMTP_PORT: String(this.smtpPort),
      KEYPORT_MAIL__SECURITY: "none",
      KEYPORT_MAIL__FROM: FROM,
      KEYPORT_MAIL__PUBLIC_BASE_URL: PUBLIC_BASE_URL,
      KEYPORT_MAIL__POLL_INTERVAL_MS: "100",
      KEYPORT_MAIL__RETRY_BASE_MS: "1000",
      KEYPORT_MAIL__TIMEOUT_MS: "5000",
    };
  }

  /** Every message delivered to `address` (exactly that recipient), newest first. */
  async messagesTo(address: string): Promise<Delivered[]> {
    const listing = (await this.#get(`/api/v1/search?query=${encodeURIComponent(`to:"${address}"`)}`)) as Listing;
    const messages: Delivered[] = [];
    for (const summary of listing.messages) {
      // The search matches words; keep only the exact recipient.
      if (!(summary.To ?? []).some((to) => to.Address.toLowerCase() === address.toLowerCase())) {
        continue;
      }
      const full = (await this.#get(`/api/v1/message/${encodeURIComponent(summary.ID)}`)) as Message;
      messages.push({
        id: full.ID,
        subject: full.Subject,
        from: full.From.Address,
        to: (full.To ?? []).map((to) => to.Address),
        text: full.Text,
        html: full.HTML,
      });
    }
    return messages;
  }

  /**
   * Waits until `count` messages reached `address`, and returns them newest
   * first.
   *
   * @throws Error after `timeoutMs`, saying how many arrived.
   */
  async waitFor(address: string, count = 1, timeoutMs = DELIVERY_TIMEOUT_MS): Promise<Delivered[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const messages = await this.messagesTo(address);
      if (messages.length >= count) {
        return messages;
      }
      if (Date.now() > deadline) {
        throw new Error(`${messages.length} of ${count} messages to ${address} after ${timeoutMs} ms`);
      }
      await sleep(50);
    }
  }

  /**
   * Waits `settleMs` for stray mail, then returns how many messages reached
   * `address` (for "no mail was sent" and "no further mail" checks).
   */
  async settledCount(address: string, settleMs = 500): Promise<number> {
    await sleep(settleMs);
    return (await this.messagesTo(address)).length;
  }

  /** Stops Mailpit and removes its database. */
  async stop(): Promise<void> {
    await this.#kill();
    await rm(this.#dir, { recursive: true, force: true });
  }

  async #get(path: string): Promise<unknown> {
    const response = await fetch(`${this.#api}${path}`, { signal: AbortSignal.timeout(10_000) });
    if (!response.ok) {
      throw new Error(`Mailpit ${path}: HTTP ${response.status} ${await response.text()}`);
    }
    return response.json();
  }

  async #answers(): Promise<boolean> {
    const smtpUp = await new Promise<boolean>((resolve) => {
      const socket = connect(this.smtpPort, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (!smtpUp) {
      return false;
    }
    try {
      const response = await fetch(`${this.#api}/readyz`, { signal: AbortSignal.timeout(1_000) });
      await response.arrayBuffer();
      return response.ok;
    } catch {
      return false;
    }
  }

  async #kill(): Promise<void> {
    const child = this.#child;
    if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) {
      return;
    }
    child.kill("SIGTERM");
    const late = await Promise.race([this.#exited.then(() => false), sleep(5_000).then(() => true)]);
    if (late) {
      child.kill("SIGKILL");
      await this.#exited;
    }
  }
}

/**
 * `$KEYPORT_MAILPIT`, else `~/.cache/keyport/bin/mailpit`.
 *
 * @throws Error naming the install command when it is not an executable file.
 */
export async function mailpitBinary(): Promise<string> {
  const configured = process.env.KEYPORT_MAILPIT;
  const path = configured !== undefined && configured !== "" ? configured : join(homedir(), ".cache", "keyport", "bin", "mailpit");
  const usable = await stat(path)
    .then((info) => info.isFile())
    .then((isFile) => (isFile ? access(path, constants.X_OK).then(() => true) : false))
    .catch(() => false);
  if (!usable) {
    const source = configured ? "KEYPORT_MAILPIT" : "the default location";
    throw new Error(
      `Mailpit is needed for the mail tests, but ${path} (${source}) is not an executable file. ` +
        `Install it with\n  ${MAILPIT_INSTALL}\nor set KEYPORT_MAILPIT to its binary.`,
    );
  }
  return path;
}

/** A port that was free on 127.0.0.1 a moment ago. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}
