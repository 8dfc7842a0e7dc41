/**
 * The package as an app gets it: `npm pack` (whose `prepack` builds dist/),
 * then `npm install` of the tarball into a fresh project next to the app's
 * own `@bufbuild/protobuf`, a type-check of code that mixes the two, and a
 * run of it against a live keyport.
 */

import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { after, before, describe, it } from "node:test";

import { type KeyportServer, startKeyport } from "./support/keyport-server.js";

const run = promisify(execFile);
const packageDir = fileURLToPath(new URL("..", import.meta.url));
const tsc = join(packageDir, "node_modules", "typescript", "bin", "tsc");
const npm = process.platform === "win32" ? "npm.cmd" : "npm";

const pkg = JSON.parse(await readFile(join(packageDir, "package.json"), "utf8")) as {
  peerDependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/** The app: uses `toJson` from its own `@bufbuild/protobuf` on the SDK's schemas and messages. */
const APP = `import { toJson } from "@bufbuild/protobuf";
import { create, createKeyportClient, type ErrorReason, errorReason, SignUpRequestSchema, UserSchema } from "@keyport/client";

const keyport = createKeyportClient(process.argv[2]!, { timeoutMs: 10_000 });
const request = create(SignUpRequestSchema, { email: "packed@example.com", password: "correct horse battery staple" });
const { user } = await keyport.users.signUp(request);
const json = toJson(UserSchema, user!);
let reason: ErrorReason | undefined;
try {
  await keyport.users.signUp(request);
} catch (err) {
  reason = errorReason(err);
}
keyport.close();
console.log(JSON.stringify({ email: json && typeof json === "object" && !Array.isArray(json) ? json.email : null, reason }));
`;

/** Paths of every `@bufbuild/protobuf` package under `dir`. */
async function protobufCopies(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    const parent = entry.parentPath;
    if (entry.name === "package.json" && parent.endsWith(join("node_modules", "@bufbuild", "protobuf"))) {
      found.push(parent);
    }
  }
  return found;
}

describe("npm pack", () => {
  let scratch: string;
  let tarball: string;
  let files: string[];
  let server: KeyportServer;

  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), "keyport-ts-pack-"));
    server = await startKeyport();
    const { stdout } = await run(npm, ["pack", "--json", "--pack-destination", scratch], {
      cwd: packageDir,
      timeout: 120_000,
    });
    // `prepack` writes tsc's output before npm's JSON; the JSON is the last value printed.
    const report = JSON.parse(stdout.slice(stdout.lastIndexOf("\n[") + 1)) as [{ filename: string; files: { path: string }[] }];
    tarball = join(scratch, report[0].filename);
    files = report[0].files.map((file) => file.path);
  });

  after(async () => {
    await server?.stop();
    await rm(scratch, { recursive: true, force: true });
  });

  it("ships the built dist/ (prepack builds it)", () => {
    assert.ok(existsSync(tarball), `${tarball} was written`);
    for (const file of ["dist/index.js", "dist/index.d.ts", "dist/web.js", "dist/web.d.ts", "dist/errors.js", "dist/express.js", "dist/fastify.js", "dist/grpc-js.js", "dist/jwt.js", "package.json", "README.md", "LICENSE"]) {
      assert.ok(files.includes(file), `${file} is in the tarball: ${files.join(", ")}`);
    }
    const junk = files.filter((file) => /^(src|test|examples|bench|node_modules)\//.test(file) || file.endsWith(".map"));
    assert.deepEqual(junk, [], "no sources, tests or maps");
  });

  it("installs into a fresh project with one copy of @bufbuild/protobuf, type-checks and runs there", async () => {
    const app = join(scratch, "app");
    await mkdir(join(app, "src"), { recursive: true });
    // Exact versions only, and none of these packages has dependencies of its
    // own, so this install is as pinned as a lockfile would make it.
    const protobuf = pkg.devDependencies["@bufbuild/protobuf"]!;
    assert.match(pkg.peerDependencies["@bufbuild/protobuf"]!, /^\^2\./);
    await writeFile(
      join(app, "package.json"),
      JSON.stringify({
        name: "keyport-pack-test-app",
        private: true,
        type: "module",
        dependencies: { "@bufbuild/protobuf": protobuf, "@keyport/client": `file:${tarball}` },
      }),
    );
    await writeFile(
      join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          outDir: "out",
          rootDir: "src",
          // Node's types from this package's devDependencies; an app has its own.
          types: ["node"],
          typeRoots: [join(packageDir, "node_modules", "@types")],
        },
        include: ["src"],
      }),
    );
    await writeFile(join(app, "src", "app.ts"), APP);
    await run(npm, ["install", "--no-audit", "--no-fund", "--prefer-offline", "--ignore-scripts"], {
      cwd: app,
      timeout: 180_000,
    });

    assert.deepEqual(await protobufCopies(join(app, "node_modules")), [join(app, "node_modules", "@bufbuild", "protobuf")]);
    // A second copy would make toJson(UserSchema, ...) a type error here.
    await run(process.execPath, [tsc, "-p", join(app, "tsconfig.json")], { cwd: app, timeout: 120_000 });
    const { stdout } = await run(process.execPath, [join(app, "out", "app.js"), server.address], { cwd: app, timeout: 60_000 });
    assert.deepEqual(JSON.parse(stdout), { email: "packed@example.com", reason: "EMAIL_TAKEN" });
  });

  it("gives an Express app typed req.auth through @keyport/client/express (express an optional peer)", async () => {
    const app = join(scratch, "express-app");
    await mkdir(join(app, "src"), { recursive: true });
    await writeFile(
      join(app, "package.json"),
      JSON.stringify({
        name: "keyport-pack-test-express-app",
        private: true,
        type: "module",
        dependencies: {
          "@bufbuild/protobuf": pkg.devDependencies["@bufbuild/protobuf"],
          "@keyport/client": `file:${tarball}`,
          express: pkg.devDependencies.express,
          "@types/express": pkg.devDependencies["@types/express"],
        },
      }),
    );
    await writeFile(
      join(app, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          strict: true,
          noEmit: true,
          types: ["node"],
          typeRoots: [join(packageDir, "node_modules", "@types"), join(app, "node_modules", "@types")],
        },
        include: ["src"],
      }),
    );
    await writeFile(
      join(app, "src", "app.ts"),
      `import express from "express";
import { createKeyportClient, KeyportGuard } from "@keyport/client";
import { keyportMiddleware } from "@keyport/client/express";

const guard = new KeyportGuard(createKeyportClient("127.0.0.1:1"), { cache: false });
const app = express();
app.get("/me", keyportMiddleware(guard), (req, res) => {
  const email: string | undefined = req.auth?.user.email;
  res.json({ email });
});
`,
    );
    await run(npm, ["install", "--no-audit", "--no-fund", "--prefer-offline", "--ignore-scripts"], { cwd: app, timeout: 180_000 });
    assert.ok(!existsSync(join(app, "node_modules", "fastify")), "optional peers are not installed");
    await run(process.execPath, [tsc, "-p", join(app, "tsconfig.json")], { cwd: app, timeout: 120_000 });
  });
});
