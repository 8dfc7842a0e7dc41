// Checks what `npm pack` would publish (run by test.sh after the build): the
// built dist/ with every entry point, README.md and LICENSE, and nothing of
// src/, test/, examples/ or bench/; and that package.json names the
// workspace's version (Cargo.toml [workspace.package]) and its registry
// metadata.
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const out = execFileSync(npm, ["pack", "--dry-run", "--json", "--ignore-scripts"], { encoding: "utf8" });
const [report] = JSON.parse(out.slice(out.indexOf("[")));
const files = report.files.map((file) => file.path);
const problems = [];

const pkg = JSON.parse(readFileSync("package.json", "utf8"));
for (const [entry, target] of Object.entries(pkg.exports)) {
  for (const path of typeof target === "string" ? [target] : Object.values(target)) {
    if (!files.includes(path.replace(/^\.\//, ""))) problems.push(`export ${entry}: ${path} is not packed`);
  }
}
for (const required of ["README.md", "LICENSE", "package.json"]) {
  if (!files.includes(required)) problems.push(`${required} is not packed`);
}
for (const file of files) {
  if (!/^(dist\/|README\.md$|LICENSE$|package\.json$)/.test(file)) problems.push(`${file} should not be packed`);
  if (/\.test\.|\.map$/.test(file)) problems.push(`${file} should not be packed`);
}

const cargo = readFileSync("../../Cargo.toml", "utf8");
const workspaceVersion = /\[workspace\.package\][^[]*?\nversion\s*=\s*"([^"]+)"/.exec(cargo)?.[1];
if (pkg.version !== workspaceVersion) problems.push(`version ${pkg.version} is not the workspace's ${workspaceVersion}`);
for (const field of ["license", "repository", "homepage", "bugs", "author", "keywords", "description"]) {
  if (pkg[field] === undefined) problems.push(`package.json has no ${field}`);
}
if (pkg.repository?.directory !== "clients/typescript") problems.push("repository.directory is not clients/typescript");
for (const peer of ["express", "fastify", "@grpc/grpc-js"]) {
  if (pkg.peerDependenciesMeta?.[peer]?.optional !== true) problems.push(`${peer} is not an optional peer dependency`);
  if (pkg.dependencies?.[peer] !== undefined) problems.push(`${peer} is a dependency`);
}
// A README read on the registry has no repository around it.
const readme = readFileSync("README.md", "utf8");
for (const [, link] of readme.matchAll(/\]\((\.{1,2}\/[^)]*)\)/g)) problems.push(`README links to ${link}: use an absolute URL`);

if (problems.length > 0) {
  console.error(`clients/typescript: the package is not ready to publish:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
console.log(`package ok: ${pkg.name}@${pkg.version}, ${files.length} files`);
