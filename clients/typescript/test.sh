#!/usr/bin/env bash
# Tests the TypeScript SDK against a real keyport server: checks that the
# generated code is current, builds (tsc -> dist/), type-checks sources,
# tests and examples, checks what would be published (npm pack and npm
# publish dry runs), then runs the tests (node --test) and a smoke run of the
# benchmark.
#
# Needs KEYPORT_BIN, the keyport binary, e.g.:
#   CARGO_TARGET_DIR=/root/.cache/keyport/target cargo build -p keyport-server
#   KEYPORT_BIN=/root/.cache/keyport/target/debug/keyport clients/typescript/test.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [[ -z "${KEYPORT_BIN:-}" ]]; then
  echo "clients/typescript/test.sh: KEYPORT_BIN is not set; build the server with" >&2
  echo "  CARGO_TARGET_DIR=/root/.cache/keyport/target cargo build -p keyport-server" >&2
  echo "and run again with KEYPORT_BIN=/root/.cache/keyport/target/debug/keyport" >&2
  exit 2
fi
if [[ ! -x "$KEYPORT_BIN" ]]; then
  echo "clients/typescript/test.sh: KEYPORT_BIN=$KEYPORT_BIN is not an executable file" >&2
  exit 2
fi
KEYPORT_BIN="$(cd "$(dirname "$KEYPORT_BIN")" && pwd)/$(basename "$KEYPORT_BIN")"
export KEYPORT_BIN

# Installs the package's and tools' dependencies when missing.
bash "$here/generate.sh" --check

cd "$here"
npm run --silent build
npm run --silent typecheck
# Publishing, without publishing: the tarball's contents and metadata, then
# npm's own checks (prepack builds dist/ again).
node tools/check-package.mjs
npm publish --dry-run --access public --silent >/dev/null
node --import tsx --test test/*.test.ts
# The benchmark still runs (tiny counts; its numbers mean nothing here).
node --import tsx bench/bench.ts --smoke >/dev/null
