#!/usr/bin/env bash
# Browser end-to-end test of the example sites: a real Keyport, the example
# site in front of it, a real OpenID Connect provider (tests/oidc-provider),
# and headless Chromium clicking through sign-up, sign-in, sign-out, session
# revocation and social sign-in (see test.mjs).
#
# Needs:
#   KEYPORT_BIN        the keyport binary (cargo build -p keyport-server)
#   EXAMPLE_AXUM_BIN   the Axum example (cargo build -p keyport-example-axum)
#   EXAMPLE_ACTIX_BIN  optional: the Actix example, tested the same way
#   SCREENSHOT_DIR     optional: where screenshots go [default: a temp dir]
#
# Installs what is missing: Debian's chromium (the browser used; Playwright
# never downloads one), playwright-core from package-lock.json, and the test
# OIDC provider's packages from tests/oidc-provider/package-lock.json.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root or sudo to run: $*"
  fi
}

[[ -x ${KEYPORT_BIN:-} ]] || die "set KEYPORT_BIN to the keyport binary (cargo build -p keyport-server)"
[[ -x ${EXAMPLE_AXUM_BIN:-} ]] ||
  die "set EXAMPLE_AXUM_BIN to the Axum example (cargo build -p keyport-example-axum)"
if [[ -n ${EXAMPLE_ACTIX_BIN:-} && ! -x $EXAMPLE_ACTIX_BIN ]]; then
  die "EXAMPLE_ACTIX_BIN=$EXAMPLE_ACTIX_BIN is not an executable"
fi

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if [[ ! -x $CHROMIUM ]]; then
  printf '==> installing chromium (Debian package)\n'
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium
fi
export CHROMIUM

command -v node >/dev/null 2>&1 || die "node not found: install Node.js 20 or newer"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
((node_major >= 20)) || die "Node.js $node_major is too old for playwright-core: need 20 or newer"

# playwright-core has no install script and downloads nothing; belt and braces.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
npm ci --ignore-scripts --no-audit --no-fund

# The OpenID Connect provider the social sign-in tests sign in at (also used
# by the Rust end-to-end tests, which expect it installed the same way).
provider_dir=../../tests/oidc-provider
if [[ ! -d $provider_dir/node_modules/oidc-provider ]]; then
  printf '==> installing the test OIDC provider (npm ci --prefix tests/oidc-provider)\n'
  npm ci --prefix "$provider_dir" --ignore-scripts --no-audit --no-fund
fi

printf '\n==> Axum example (%s)\n' "$EXAMPLE_AXUM_BIN"
EXAMPLE_BIN="$EXAMPLE_AXUM_BIN" node --test --test-reporter=spec test.mjs

if [[ -n ${EXAMPLE_ACTIX_BIN:-} ]]; then
  printf '\n==> Actix example (%s)\n' "$EXAMPLE_ACTIX_BIN"
  EXAMPLE_BIN="$EXAMPLE_ACTIX_BIN" node --test --test-reporter=spec test.mjs
fi
