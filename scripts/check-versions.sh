#!/usr/bin/env bash
# Checks that every package Keyport publishes has the one version: the Rust
# workspace's (Cargo.toml [workspace.package]), written once in each SDK's
# manifest (package.json, pyproject.toml, the Go SDK's Version constant).
# Run by scripts/test.sh; to release, change all four together.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The first `version = "..."` of the [section] of a TOML file.
toml_version() {
  awk -v section="[$2]" '
    $0 == section { inside = 1; next }
    /^\[/ { inside = 0 }
    inside && $1 == "version" { gsub(/"/, "", $3); print $3; exit }
  ' "$1"
}

expected="$(toml_version "$root/Cargo.toml" workspace.package)"
[[ -n $expected ]] || { echo "check-versions: no [workspace.package] version in Cargo.toml" >&2; exit 1; }

declare -A found=(
  ["clients/typescript/package.json"]="$(node -p "require('$root/clients/typescript/package.json').version")"
  ["clients/python/pyproject.toml"]="$(toml_version "$root/clients/python/pyproject.toml" project)"
  ["clients/go/doc.go"]="$(sed -n 's/^const Version = "\(.*\)"$/\1/p' "$root/clients/go/doc.go")"
)

status=0
for file in "${!found[@]}"; do
  if [[ ${found[$file]} != "$expected" ]]; then
    echo "check-versions: $file has version '${found[$file]}', Cargo.toml has '$expected'" >&2
    status=1
  fi
done
[[ $status == 0 ]] && echo "every package is at version $expected"
exit "$status"
