#!/usr/bin/env bash
# Runs Keyport's whole test suite: proto lint and format, Rust format, clippy
# and every workspace test. The one command to run on a fresh Debian machine.
#
# Installs what is missing first:
#   - PostgreSQL (Debian package `postgresql`): the storage tests start their
#     own server with its initdb/pg_ctl/postgres, found via KEYPORT_PG_BIN;
#   - the pinned buf from tools/package-lock.json (`npm ci` in tools/);
#   - Mailpit, the SMTP server the mail tests start (`go install` into
#     ~/.cache/keyport/bin, found by the tests there or via KEYPORT_MAILPIT);
#   - promtool (Debian package `prometheus`), which lints the live metrics
#     endpoint (or KEYPORT_PROMTOOL).
#
# `scripts/test.sh --quick` runs the Rust part only (cargo fmt, clippy and
# every workspace test), for day-to-day work; CI runs everything.
#
# Environment:
#   CARGO_TARGET_DIR  defaults to $HOME/.cache/keyport/target
#   KEYPORT_PG_BIN    defaults to the newest /usr/lib/postgresql/*/bin
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS_DIR="$REPO_ROOT/tools"
BUF="$TOOLS_DIR/node_modules/.bin/buf"
APT_UPDATED=false

banner() {
  printf '\n==> %s\n' "$*"
}

die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Runs a command as root: directly when we are root (as in CI), else via sudo.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root or sudo to run: $*"
  fi
}

# Installs Debian packages, refreshing the package lists once per run.
apt_install() {
  command -v apt-get >/dev/null 2>&1 ||
    die "apt-get not found: install $* by hand (this script expects Debian)"
  if [[ $APT_UPDATED == false ]]; then
    as_root apt-get update
    APT_UPDATED=true
  fi
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "$@"
}

# Prints the newest /usr/lib/postgresql/<version>/bin that has initdb, if any.
newest_pg_bin() {
  local initdb
  initdb="$(printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)"
  if [[ -x $initdb ]]; then
    dirname "$initdb"
  fi
}

ensure_postgresql() {
  if [[ -z ${KEYPORT_PG_BIN:-} && -z $(newest_pg_bin) ]]; then
    banner "installing PostgreSQL (Debian package postgresql)"
    apt_install postgresql
  fi
  KEYPORT_PG_BIN="${KEYPORT_PG_BIN:-$(newest_pg_bin)}"
  [[ -n $KEYPORT_PG_BIN ]] ||
    die "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
  local tool
  for tool in initdb pg_ctl postgres; do
    [[ -x $KEYPORT_PG_BIN/$tool ]] ||
      die "no $tool in KEYPORT_PG_BIN=$KEYPORT_PG_BIN"
  done
  export KEYPORT_PG_BIN
  echo "PostgreSQL binaries: $KEYPORT_PG_BIN"
}

ensure_npm() {
  if ! command -v npm >/dev/null 2>&1; then
    banner "installing Node.js and npm (Debian packages nodejs, npm)"
    apt_install nodejs npm
  fi
}

# Installs tools/ from its lockfile unless the pinned buf is already there.
ensure_buf() {
  local pinned
  pinned="$(node -p "require('$TOOLS_DIR/package.json').devDependencies['@bufbuild/buf']")"
  if [[ -x $BUF && $("$BUF" --version 2>/dev/null) == "$pinned" ]]; then
    echo "buf $pinned: already installed"
    return
  fi
  banner "installing buf $pinned (npm ci in tools/)"
  (cd "$TOOLS_DIR" && npm ci --no-audit --no-fund)
}

# The TLS tests make their certificates with the openssl command.
ensure_openssl() {
  if ! command -v openssl >/dev/null 2>&1; then
    banner "installing openssl (Debian package openssl)"
    apt_install openssl
  fi
}

# The metrics test lints the live endpoint with Prometheus' promtool.
ensure_promtool() {
  if [[ -z ${KEYPORT_PROMTOOL:-} ]] && ! command -v promtool >/dev/null 2>&1; then
    banner "installing promtool (Debian package prometheus)"
    apt_install prometheus
  fi
}

ensure_go() {
  if ! command -v go >/dev/null 2>&1; then
    banner "installing Go (Debian package golang)"
    apt_install golang
  fi
}

MAILPIT_VERSION=v1.33.1

# Installs the pinned Mailpit with `go install` unless it is there already.
ensure_mailpit() {
  local bin_dir="$HOME/.cache/keyport/bin"
  local stamp="$bin_dir/mailpit.version"
  if [[ -n ${KEYPORT_MAILPIT:-} ]]; then
    echo "Mailpit: $KEYPORT_MAILPIT (KEYPORT_MAILPIT)"
    return
  fi
  if [[ -x $bin_dir/mailpit && $(cat "$stamp" 2>/dev/null) == "$MAILPIT_VERSION" ]]; then
    echo "Mailpit $MAILPIT_VERSION: already installed"
    return
  fi
  banner "installing Mailpit $MAILPIT_VERSION (go install, about 2 minutes)"
  mkdir -p "$bin_dir"
  GOBIN="$bin_dir" go install "github.com/axllent/mailpit@$MAILPIT_VERSION"
  echo "$MAILPIT_VERSION" >"$stamp"
}

# Checks that proto/ stays compatible: against the main branch when working
# on another branch, else against the previous commit (a clean clone of main
# in CI). KEYPORT_BREAKING_AGAINST overrides, e.g. '.git#tag=v0.1.0'.
buf_breaking() {
  local against
  if [[ -n ${KEYPORT_BREAKING_AGAINST:-} ]]; then
    against="$KEYPORT_BREAKING_AGAINST"
  elif git show-ref --verify -q refs/heads/main && [[ $(git rev-parse HEAD) != $(git rev-parse main) ]]; then
    against='.git#branch=main'
  elif git rev-parse -q --verify 'HEAD~1' >/dev/null; then
    against='.git#ref=HEAD~1'
  else
    echo "no earlier revision to compare against; skipping"
    return 0
  fi
  echo "comparing proto/ with $against"
  "$BUF" breaking --against "$against"
}

# npm packages of the OpenID Connect provider the OAuth tests start.
ensure_oidc_provider() {
  local dir="$REPO_ROOT/tests/oidc-provider"
  if [[ ! -d $dir/node_modules || $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]]; then
    banner "installing the test OpenID Connect provider (npm ci in tests/oidc-provider)"
    npm ci --prefix "$dir" --no-audit --no-fund
  fi
}

require_rust() {
  command -v cargo >/dev/null 2>&1 ||
    die "cargo not found: install Rust with rustup (https://rustup.rs)"
  cargo fmt --version >/dev/null 2>&1 ||
    die "rustfmt missing: rustup component add rustfmt"
  cargo clippy --version >/dev/null 2>&1 ||
    die "clippy missing: rustup component add clippy"
}

# Runs one named step of the suite; the first failing step ends the run.
step() {
  local name="$1"
  shift
  banner "$name"
  "$@"
}

# The Rust checks: what --quick runs, and the first half of a full run.
rust_checks() {
  step "cargo fmt" cargo fmt --all -- --check
  step "cargo clippy" cargo clippy --workspace --all-targets --locked -- -D warnings
  step "cargo test" cargo test --workspace --locked
}

main() {
  local quick=false
  case "${1:-}" in
    "") ;;
    --quick) quick=true ;;
    *) die "usage: scripts/test.sh [--quick]" ;;
  esac
  cd "$REPO_ROOT"
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/keyport/target}"

  banner "checking prerequisites"
  ensure_postgresql
  ensure_npm
  ensure_oidc_provider
  ensure_openssl
  ensure_promtool
  ensure_go
  ensure_mailpit
  require_rust
  if [[ $quick == true ]]; then
    rust_checks
    banner "Rust checks passed (the SDK, proto and browser checks were skipped: run without --quick)"
    return
  fi
  ensure_buf

  step "buf lint" "$BUF" lint
  step "buf format" "$BUF" format -d --exit-code
  step "buf breaking" buf_breaking
  rust_checks

  # The SDKs and the example apps are tested against the real binaries.
  step "cargo build (binaries for the SDK and browser tests)" \
    cargo build --locked -p keyport-server -p keyport-example-axum -p keyport-example-actix
  export KEYPORT_BIN="$CARGO_TARGET_DIR/debug/keyport"
  export EXAMPLE_AXUM_BIN="$CARGO_TARGET_DIR/debug/keyport-example-axum"
  export EXAMPLE_ACTIX_BIN="$CARGO_TARGET_DIR/debug/keyport-example-actix"
  step "SDK code matches a fresh generation" bash scripts/generate-sdks.sh --check
  step "every package has the workspace's version" bash scripts/check-versions.sh
  step "TypeScript SDK against a live server" bash clients/typescript/test.sh
  step "Python SDK against a live server" bash clients/python/test.sh
  step "Go SDK against a live server" bash clients/go/test.sh
  step "deployment recipes (Helm chart, container, systemd, dashboard)" bash deploy/test.sh
  step "example apps in headless Chromium" bash examples/browser-test/test.sh

  banner "all checks passed"
}

# Run only when executed, so the functions can be sourced and tried one by one.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  main "$@"
fi
