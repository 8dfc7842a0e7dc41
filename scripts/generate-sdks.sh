#!/usr/bin/env bash
# Regenerates every shipped SDK from proto/ with local, pinned plugins:
# TypeScript (buf + protoc-gen-es), Python (grpcio-tools), Go (buf +
# protoc-gen-go / protoc-gen-go-grpc).
#
#   scripts/generate-sdks.sh          regenerate in place
#   scripts/generate-sdks.sh --check  regenerate, then fail if the generated
#                                     code differs from what was there before
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GENERATED=(clients/typescript/src/gen clients/python/src/keyport/v1 clients/go/gen)

# A fingerprint of every generated file's path and content.
fingerprint() {
  (cd "$REPO_ROOT" && find "${GENERATED[@]}" -type f ! -path '*/__pycache__/*' -print0 | sort -z |
    xargs -0 sha256sum | sha256sum)
}

main() {
  local before
  before="$(fingerprint)"
  for language in typescript python go; do
    printf '==> generating the %s SDK\n' "$language"
    bash "$REPO_ROOT/clients/$language/generate.sh"
  done
  if [[ ${1:-} == --check && $(fingerprint) != "$before" ]]; then
    (cd "$REPO_ROOT" && git status --short -- "${GENERATED[@]}") >&2
    echo "error: committed SDK code differs from a fresh generation; commit the regenerated files" >&2
    exit 1
  fi
}

main "$@"
