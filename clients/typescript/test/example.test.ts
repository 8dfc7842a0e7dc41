/**
 * The README's code blocks are the files in examples/, and they run against a
 * live keyport through the built package (`@keyport/client` resolves to
 * dist/ by the package's own exports, as it does for a user).
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";

import { createKeyportClient, errorReason, type KeyportClient } from "@keyport/client";

import { register } from "../examples/errors.js";
import { clientFor, signOut } from "../examples/tokens.js";
import { type KeyportServer, startKeyport } from "./support/keyport-server.js";

const run = promisify(execFile);
const examples = fileURLToPath(new URL("../examples/", import.meta.url));
const example = fileURLToPath(new URL("../examples/usage.ts", import.meta.url));
const readme = fileURLToPath(new URL("../README.md", import.meta.url));

describe("README examples", () => {
  let server: KeyportServer;
  let keyport: KeyportClient;

  before(async () => {
    server = await startKeyport();
    keyport = createKeyportClient(server.address, { timeoutMs: 10_000 });
  });

  after(async () => {
    keyport?.close();
    await server?.stop();
  });

  it("are the files in examples/, each shown once", async () => {
    const text = await readFile(readme, "utf8");
    const blocks = [...text.matchAll(/```ts\n([\s\S]*?)```\n/g)].map((match) => match[1]);
    const files = (await readdir(examples)).filter((name) => name.endsWith(".ts")).sort();
    const codes = await Promise.all(files.map((name) => readFile(`${examples}${name}`, "utf8")));
    assert.deepEqual(
      blocks.map((block) => files[codes.indexOf(block!)] ?? `a block that is no file:\n${block}`).sort(),
      files,
    );
  });

  it("signs in and lists sessions", async () => {
    const runExample = () =>
      run(process.execPath, ["--import", "tsx", example], {
        env: { ...process.env, KEYPORT_ADDRESS: server.address },
        timeout: 60_000,
      });
    assert.equal((await runExample()).stdout, "wrong email or password\n");

    const { user } = await keyport.users.signUp({
      email: "ada@example.com",
      password: "correct horse battery staple",
      name: "Ada",
    });
    assert.equal(user?.email, "ada@example.com");
    // The sign-up session and the example's own sign-in.
    assert.equal((await runExample()).stdout, "signed in as ada@example.com; 2 live session(s)\n");
  });

  it("turns error reasons into messages (examples/errors.ts)", async () => {
    assert.equal(await register(keyport, "bob@example.com", "long enough password"), "Welcome, bob@example.com!");
    assert.equal(
      await register(keyport, "bob@example.com", "long enough password"),
      "That address already has an account.",
    );
    assert.equal(await register(keyport, "carol@example.com", "short"), "Choose a longer password.");
    assert.equal(
      await register(keyport, "not an email", "long enough password"),
      "email: must be an email address",
    );
  });

  it("sends tokens per call or per client (examples/tokens.ts)", async () => {
    const { session } = await keyport.users.signUp({
      email: "dave@example.com",
      password: "long enough password",
      name: "",
    });
    let token: string | undefined = session!.token;
    const forDave = clientFor(server.address, () => token);
    const { user } = await forDave.users.getCurrentUser({});
    assert.equal(user?.email, "dave@example.com");

    await signOut(server.address, session!.token);
    await assert.rejects(forDave.users.getCurrentUser({}), (err) => errorReason(err) === "UNAUTHENTICATED");
    token = undefined;
    await assert.rejects(forDave.users.getCurrentUser({}), (err) => errorReason(err) === "UNAUTHENTICATED");
    forDave.close();
  });
});
