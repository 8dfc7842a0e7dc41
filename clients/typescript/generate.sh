#!/usr/bin/env bash
# Regenerates the TypeScript SDK's generated code (src/gen/) from proto/ and
# google/rpc/error_details.proto, with the pinned buf (tools/) and the pinned
# protoc-gen-es (this package's devDependencies). Runs from anywhere.
#
#   clients/typescript/generate.sh          regenerate src/gen/
#   clients/typescript/generate.sh --check  fail if src/gen/ is not what
#                                           generation would produce
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

# `npm ci` in $1 unless its node_modules is there and not older than its lock.
ensure_deps() {
  local dir="$1"
  if [[ ! -f "$dir/node_modules/.package-lock.json" || "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]]; then
    (cd "$dir" && npm ci --no-audit --no-fund)
  fi
}

ensure_deps "$here"
ensure_deps "$root/tools"

cd "$root"
buf=tools/node_modules/.bin/buf
template=clients/typescript/buf.gen.yaml

case "${1:-}" in
  "")
    "$buf" generate --template "$template"
    ;;
  --check)
    scratch="$(mktemp -d)"
    trap 'rm -rf "$scratch"' EXIT
    "$buf" generate --template "$template" -o "$scratch"
    if ! diff -r "$scratch/clients/typescript/src/gen" clients/typescript/src/gen; then
      echo "clients/typescript/src/gen is stale: run clients/typescript/generate.sh" >&2
      exit 1
    fi
    echo "clients/typescript/src/gen is up to date"
    ;;
  *)
    echo "usage: $0 [--check]" >&2
    exit 2
    ;;
esac
