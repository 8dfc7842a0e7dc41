#!/usr/bin/env bash
# Reproducible gRPC load test of Keyport with ghz (https://ghz.sh), a standard
# tool outside this repository, as a cross-check of keyport-bench.
#
# Starts a `keyport serve` of its own on a free loopback port with a fresh
# SQLite data directory, waits for SERVING (grpc.health.v1), signs up the
# load users with grpcurl and signs them in for their session tokens, then
# runs the reference scenario with ghz:
#   a. baseline: grpc.health.v1.Health/Check at 64 callers;
#   b. keyport.v1.SessionService/GetSession at 1, 16 and 64 callers;
#   c. SignIn with correct passwords (argon2id) at 16 callers, a fixed count;
#   d. GetSession at 16 callers while a second ghz floods SignIn with wrong
#      passwords for other users at 64 callers (FLOOD=0 skips it).
# Each step runs WARMUP seconds unrecorded, then is measured. The report
# (Markdown tables from `ghz --format json`) goes to stdout, progress to
# stderr. The server is stopped at the end, also on errors and Ctrl-C.
# Exits non-zero when a step saw a status it does not expect (anything but
# OK, except in the flood, where UNAUTHENTICATED and RESOURCE_EXHAUSTED are
# what a wrong password and a full hashing queue answer).
#
# Installs what is missing: ghz (pinned, `go install` into
# ~/.cache/keyport/bin with a version stamp), grpcurl (likewise), and the
# Debian packages golang and jq.
#
# Usage: bash bench/ghz/run.sh > /tmp/ghz-report.md
#
# Environment:
#   KEYPORT_BIN       server binary [$CARGO_TARGET_DIR/release/keyport]
#   CARGO_TARGET_DIR  [$HOME/.cache/keyport/target]
#   DURATION          measured seconds of each timed step [10]
#   WARMUP            unrecorded seconds before each step [2]
#   CONNECTIONS       HTTP/2 connections per ghz run (at most the callers) [4]
#   USERS             load users signed up and signed in [100]
#   SIGN_IN_CALLS     SignIn calls measured in scenario c [500]
#   FLOOD             1 runs scenario d, 0 skips it [1]
#   FLOOD_USERS       accounts the flood guesses passwords of [16]
#   RESULTS_DIR       if set, ghz's JSON reports and the server log are kept here
#   GHZ, GRPCURL      use these binaries instead of installing the pinned ones
#   RUST_LOG          the server's log filter [warn]
#   KEYPORT_*         server configuration, as for `keyport serve`; this
#                     script sets the rate limits below unless they are set
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PROTO_DIR="$REPO_ROOT/proto"
BIN_DIR="$HOME/.cache/keyport/bin"

# Tried in order; the first that installs is used.
GHZ_VERSIONS=(v0.121.0 v0.120.0)
GRPCURL_VERSION=v1.9.3

CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/keyport/target}"
KEYPORT_BIN="${KEYPORT_BIN:-$CARGO_TARGET_DIR/release/keyport}"
DURATION="${DURATION:-10}"
WARMUP="${WARMUP:-2}"
CONNECTIONS="${CONNECTIONS:-4}"
USERS="${USERS:-100}"
SIGN_IN_CALLS="${SIGN_IN_CALLS:-500}"
FLOOD="${FLOOD:-1}"
FLOOD_USERS="${FLOOD_USERS:-16}"
RESULTS_DIR="${RESULTS_DIR:-}"

# All load comes from 127.0.0.1, so the per-address limits would measure
# themselves: the request budgets are off (as in keyport-bench), and the
# failed sign-in limits are raised so that the flood's wrong passwords are
# hashed instead of refused with RATE_LIMITED after 10 per account and 100
# per address. Set these variables to run with other values.
export KEYPORT_REQUEST_LIMITS__BURST="${KEYPORT_REQUEST_LIMITS__BURST:-0}"
export KEYPORT_SIGN_IN_LIMITS__PER_ACCOUNT="${KEYPORT_SIGN_IN_LIMITS__PER_ACCOUNT:-1000000000}"
export KEYPORT_SIGN_IN_LIMITS__PER_IP="${KEYPORT_SIGN_IN_LIMITS__PER_IP:-1000000000}"

# Per call; keyport-bench uses 5 s too.
CALL_TIMEOUT=5s
# Parallel grpcurl calls while preparing the users.
PREPARE_PARALLEL=4

APT_UPDATED=false
WORK=""
SERVER_PID=""
FLOOD_PID=""
GHZ_PID=""
ADDR=""
UNEXPECTED=()

log() {
  printf '==> %s\n' "$*" >&2
}

die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

# Runs a command as root: directly when we are root, else via sudo.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root or sudo to run: $*"
  fi
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 ||
    die "apt-get not found: install $* by hand"
  if [[ $APT_UPDATED == false ]]; then
    as_root apt-get update >&2
    APT_UPDATED=true
  fi
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "$@" >&2
}

ensure_debian_tools() {
  if ! command -v go >/dev/null 2>&1; then
    log "installing Go (Debian package golang)"
    apt_install golang
  fi
  if ! command -v jq >/dev/null 2>&1; then
    log "installing jq (Debian package jq)"
    apt_install jq
  fi
}

# Installs the pinned ghz with `go install` unless it is there already.
# `ghz --version` says "dev" for a `go install` build: the stamp file records
# the version instead.
ensure_ghz() {
  if [[ -n ${GHZ:-} ]]; then
    GHZ_VERSION="(GHZ=$GHZ)"
    return
  fi
  GHZ="$BIN_DIR/ghz"
  local stamp="$BIN_DIR/ghz.version" version
  if [[ -x $GHZ ]]; then
    local installed
    installed="$(cat "$stamp" 2>/dev/null || true)"
    for version in "${GHZ_VERSIONS[@]}"; do
      if [[ $installed == "$version" ]]; then
        GHZ_VERSION="$version"
        log "ghz $version: already installed"
        return
      fi
    done
  fi
  mkdir -p "$BIN_DIR"
  for version in "${GHZ_VERSIONS[@]}"; do
    log "installing ghz $version (go install, about 2 minutes the first time)"
    if GOBIN="$BIN_DIR" go install "github.com/bojand/ghz/cmd/ghz@$version" >&2; then
      echo "$version" >"$stamp"
      GHZ_VERSION="$version"
      return
    fi
    log "ghz $version did not install"
  done
  die "could not install ghz (tried ${GHZ_VERSIONS[*]})"
}

ensure_grpcurl() {
  if [[ -n ${GRPCURL:-} ]]; then
    return
  fi
  GRPCURL="$BIN_DIR/grpcurl"
  local stamp="$BIN_DIR/grpcurl.version"
  if [[ -x $GRPCURL && $(cat "$stamp" 2>/dev/null) == "$GRPCURL_VERSION" ]]; then
    log "grpcurl $GRPCURL_VERSION: already installed"
    return
  fi
  log "installing grpcurl $GRPCURL_VERSION (go install, about 2 minutes the first time)"
  mkdir -p "$BIN_DIR"
  GOBIN="$BIN_DIR" go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION" >&2
  echo "$GRPCURL_VERSION" >"$stamp"
}

# Stops the flood and the server, keeps what RESULTS_DIR asks for, and
# removes the temporary directory. Runs on every exit.
cleanup() {
  local status=$?
  local pid
  for pid in "$GHZ_PID" "$FLOOD_PID"; do
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  stop_server
  if [[ -n $WORK && -d $WORK ]]; then
    if [[ -n $RESULTS_DIR ]]; then
      mkdir -p "$RESULTS_DIR"
      cp "$WORK"/*.json "$WORK/server.log" "$RESULTS_DIR"/ 2>/dev/null || true
      log "ghz reports and server log kept in $RESULTS_DIR"
    fi
    rm -rf "$WORK"
  fi
  exit "$status"
}

# SIGTERM, then SIGKILL if it has not stopped within 5 s.
stop_server() {
  if [[ -z $SERVER_PID ]]; then
    return
  fi
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 50; i++)); do
      kill -0 "$SERVER_PID" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$SERVER_PID" 2>/dev/null || true
  fi
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

server_log_tail() {
  tail -n 20 "$WORK/server.log" >&2 2>/dev/null || true
}

# A loopback port nobody listens on a moment ago (the server may still lose
# it to another process; start_server then tries another).
free_port() {
  local port
  while true; do
    port=$((20000 + RANDOM % 40000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "$port"
      return
    fi
  done
}

health_check() {
  "$GRPCURL" -plaintext -max-time 1 -d '{"service": ""}' "$ADDR" \
    grpc.health.v1.Health/Check 2>/dev/null | grep -q '"SERVING"'
}

# Spawns the server and polls the health Check until it answers SERVING.
start_server() {
  local attempt i started
  for attempt in 1 2 3; do
    ADDR="127.0.0.1:$(free_port)"
    rm -rf "$WORK/data"
    mkdir -p "$WORK/data"
    RUST_LOG="${RUST_LOG:-warn}" "$KEYPORT_BIN" serve --listen "$ADDR" --data-dir "$WORK/data" \
      </dev/null >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    started=$(date +%s%N)
    for ((i = 0; i < 600; i++)); do
      if ! kill -0 "$SERVER_PID" 2>/dev/null; then
        break
      fi
      if health_check; then
        log "keyport SERVING on $ADDR after $((($(date +%s%N) - started) / 1000000)) ms (pid $SERVER_PID)"
        return
      fi
      sleep 0.05
    done
    log "keyport did not reach SERVING on $ADDR (attempt $attempt); its log ends:"
    server_log_tail
    stop_server
  done
  die "keyport did not start"
}

ensure_server_running() {
  if ! kill -0 "$SERVER_PID" 2>/dev/null; then
    log "keyport exited; its log ends:"
    server_log_tail
    die "keyport exited during the run"
  fi
}

grpcurl_keyport() {
  "$GRPCURL" -plaintext -max-time 30 -import-path "$PROTO_DIR" \
    -proto keyport/v1/user_service.proto -proto keyport/v1/session_service.proto "$@"
}

# Signs up one user; with a third argument, also signs in and keeps the token.
prepare_user() {
  local email=$1 password=$2 token_file=${3:-} request response
  request="$(jq -nc --arg e "$email" --arg p "$password" '{email: $e, password: $p}')"
  grpcurl_keyport -d "$request" "$ADDR" keyport.v1.UserService/SignUp >/dev/null ||
    { log "SignUp of $email failed"; return 1; }
  if [[ -n $token_file ]]; then
    response="$(grpcurl_keyport -d "$request" "$ADDR" keyport.v1.SessionService/SignIn)" ||
      { log "SignIn of $email failed"; return 1; }
    jq -er '.session.token' <<<"$response" >"$token_file.part" ||
      { log "SignIn of $email answered no session"; return 1; }
    mv "$token_file.part" "$token_file"
  fi
}

load_password() { echo "ghz-load-password-$1"; }
flood_password() { echo "ghz-flood-password-$1"; }

# The load users (signed in: their tokens are GetSession's data) and the
# flood's users (signed up only), PREPARE_PARALLEL at a time. Writes ghz's
# data files: arrays of requests, which ghz sends round-robin.
prepare_fixtures() {
  local started i failed=0 pid pids=()
  started=$(date +%s)
  mkdir -p "$WORK/tokens"
  if [[ $FLOOD == 1 ]]; then
    log "signing up $USERS load users (and signing them in) and $FLOOD_USERS flood users"
  else
    log "signing up $USERS load users and signing them in"
  fi
  # Jobs of PREPARE_PARALLEL, waited for by id: a bare `wait` would wait
  # for the server too.
  wait_batch() {
    for pid in "${pids[@]}"; do
      wait "$pid" || failed=$((failed + 1))
    done
    pids=()
  }
  for ((i = 1; i <= USERS; i++)); do
    prepare_user "ghz-load-$i@bench.example" "$(load_password "$i")" "$WORK/tokens/$i" &
    pids+=($!)
    if ((${#pids[@]} == PREPARE_PARALLEL)); then wait_batch; fi
  done
  if [[ $FLOOD == 1 ]]; then
    for ((i = 1; i <= FLOOD_USERS; i++)); do
      prepare_user "ghz-flood-$i@bench.example" "$(flood_password "$i")" &
      pids+=($!)
      if ((${#pids[@]} == PREPARE_PARALLEL)); then wait_batch; fi
    done
  fi
  wait_batch
  ((failed == 0)) || die "$failed users could not be prepared"

  for ((i = 1; i <= USERS; i++)); do cat "$WORK/tokens/$i"; done |
    jq -R -s -c 'split("\n") | map(select(length > 0) | {token: .})' >"$WORK/get-session.data.json"
  for ((i = 1; i <= USERS; i++)); do
    jq -nc --arg e "ghz-load-$i@bench.example" --arg p "$(load_password "$i")" '{email: $e, password: $p}'
  done | jq -s -c . >"$WORK/sign-in.data.json"
  for ((i = 1; i <= FLOOD_USERS; i++)); do
    jq -nc --arg e "ghz-flood-$i@bench.example" --arg p "wrong-$(flood_password "$i")" '{email: $e, password: $p}'
  done | jq -s -c . >"$WORK/flood.data.json"
  log "fixtures ready in $(($(date +%s) - started)) s"
}

loadavg() {
  cut -d' ' -f1-3 /proc/loadavg
}

# Sets GHZ_CMD to a ghz run against the server: `ghz_cmd OUT CALLERS
# [ghz flags...]`, the report as JSON in OUT (/dev/null for a warm-up).
# Health goes through reflection; Keyport's own calls use proto/'s files.
# A run that does not stop by itself is killed; it then leaves no report,
# which summarize counts as a failure.
ghz_cmd() {
  local out=$1 callers=$2 connections=$CONNECTIONS
  shift 2
  if ((connections > callers)); then connections=$callers; fi
  local call_args=()
  if [[ $* != *grpc.health.v1.* ]]; then
    call_args=(--proto "$PROTO_DIR/keyport/v1/session_service.proto" --import-paths "$PROTO_DIR")
  fi
  GHZ_CMD=(timeout --kill-after=5 $((DURATION + WARMUP + 120))
    "$GHZ" --insecure --format json --output "$out"
    --concurrency "$callers" --connections "$connections"
    --timeout "$CALL_TIMEOUT" --duration-stop ignore
    "${call_args[@]}" "$@" "$ADDR")
}

# Runs it in the background and waits, so that a signal to this script is
# handled at once (cleanup stops the run) rather than when the step ends.
run_ghz() {
  ghz_cmd "$@"
  "${GHZ_CMD[@]}" >/dev/null &
  GHZ_PID=$!
  local status=0
  wait "$GHZ_PID" || status=$?
  GHZ_PID=""
  return "$status"
}

# One step: WARMUP seconds unrecorded, then measured with the flag MEASURE
# and its VALUE (`-z 10s` or `-n 500`):
# `step NAME CALLERS EXPECTED MEASURE VALUE [ghz flags...]`. EXPECTED is a
# comma-separated list of ghz status names (OK, Unauthenticated, ...).
step() {
  local name=$1 callers=$2 expected=$3 measure=$4 value=$5 load
  shift 5
  ensure_server_running
  load="$(loadavg)"
  if ((WARMUP > 0)); then
    log "$name: warm-up ${WARMUP} s, $callers callers"
    run_ghz /dev/null "$callers" -z "${WARMUP}s" "$@" || log "$name: warm-up: ghz exited with status $?"
  fi
  log "$name: measuring ($measure $value), $callers callers (load average before the step: $load)"
  run_ghz "$WORK/$name.json" "$callers" "$measure" "$value" "$@" || log "$name: ghz exited with status $?"
  summarize "$name" "$callers" "$expected" "$load" "$WORK/$name.json"
}

ROWS=()

# Appends a table row for one ghz report to ROWS and records a step whose
# statuses fall outside EXPECTED (or that has no report) in UNEXPECTED.
summarize() {
  local name=$1 callers=$2 expected=$3 load=$4 file=$5
  if [[ ! -s $file ]] || ! jq -e . "$file" >/dev/null 2>&1; then
    ROWS+=("| $name | $callers | no report | | | | | | | | $load |")
    UNEXPECTED+=("$name (no ghz report)")
    return
  fi
  local fields calls ok_rate rps p50 p95 p99 errors statuses unexpected
  # Fields separated by US (0x1f), not tabs: read would merge empty ones.
  fields="$(jq -r --arg expected "$expected" '
      def ms: if . == null then "-" else . / 1e6 end;
      def pct($p): [.latencyDistribution[]? | select(.percentage == $p) | .latency][0] | ms;
      ($expected | split(",")) as $exp
      | (.statusCodeDistribution // {}) as $s
      | ($s | [.[]] | add // 0) as $n
      | ($s.OK // 0) as $ok
      | (.total // 0) as $total
      # RATE_LIMITED travels as RESOURCE_EXHAUSTED too (like a full hashing
      # queue), told apart by its message; unexpected in every step.
      | ([(.errorDistribution // {}) | to_entries[] | select(.key | test("too many attempts")) | .value]
          | add // 0) as $limited
      | [ $n,
          (if $total > 0 then $ok / ($total / 1e9) | round else 0 end),
          (.rps // 0 | round),
          pct(50), pct(95), pct(99),
          ($n - $ok),
          ($s | to_entries | sort_by(-.value) | map("\(.key) \(.value)") | join(", "))
            + (if $limited > 0 then " (RATE_LIMITED \($limited))" else "" end),
          (($s | to_entries | map(select(.key as $k | $exp | index($k) | not) | .value) | add // 0)
            + $limited)
        ] | map(tostring) | join("\u001f")' "$file")" || fields=""
  IFS=$'\x1f' read -r calls ok_rate rps p50 p95 p99 errors statuses unexpected <<<"$fields" || true
  if [[ -z $fields ]]; then
    ROWS+=("| $name | $callers | unreadable report | | | | | | | | $load |")
    UNEXPECTED+=("$name (unreadable ghz report)")
    return
  fi
  local p
  for p in p50 p95 p99; do
    if [[ ${!p} != - ]]; then LC_NUMERIC=C printf -v "$p" '%.2f' "${!p}"; fi
  done
  ROWS+=("| $name | $callers | $calls | $ok_rate | $rps | $p50 | $p95 | $p99 | $errors | $statuses | $load |")
  if ((unexpected > 0 || calls == 0)); then
    UNEXPECTED+=("$name: $unexpected of $calls answered calls had a status other than ${expected//,/ or }, or were RATE_LIMITED")
  fi
}

# Prints one scenario's table and starts the next one.
print_table() {
  local title=$1 note=$2
  printf '\n**%s.** %s\n\n' "$title" "$note"
  printf '| step | callers | calls | ok/s | rps (all) | p50 (ms) | p95 (ms) | p99 (ms) | errors | statuses | load before |\n'
  printf '|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n'
  printf '%s\n' "${ROWS[@]}"
  ROWS=()
}

# A binary under a debug/ directory, or with DWARF debug info (a release
# build of this workspace has none: debug = false), is taken for a debug build.
is_debug_build() {
  [[ $KEYPORT_BIN == */debug/* ]] && return 0
  command -v readelf >/dev/null 2>&1 &&
    readelf -S --wide "$KEYPORT_BIN" 2>/dev/null | grep -q '\.debug_info'
}

# The KEYPORT_* variables the server inherits, secrets masked, in backticks
# (Markdown).
# shellcheck disable=SC2016
config_env() {
  env | grep '^KEYPORT_' | grep -v '^KEYPORT_BIN=' | sort |
    sed -E 's/^(KEYPORT_[^=]*(PASSWORD|SECRET|_KEY)[^=]*)=.*/\1=***/; s/.*/`&`/' | paste -sd' '
}

# The backticks are Markdown.
# shellcheck disable=SC2016
print_header() {
  local build_time kind=release
  build_time="$(date -u -r "$KEYPORT_BIN" '+%Y-%m-%d %H:%M UTC')"
  if is_debug_build; then kind="debug build: figures NOT representative"; fi
  printf '#### ghz run, %s\n\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf '| | |\n|---|---|\n'
  printf '| machine | %s, %s CPUs (nproc) |\n' \
    "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')" "$(nproc)"
  printf '| load average at start | %s (1, 5, 15 min) |\n' "$(loadavg)"
  printf '| ghz | %s |\n' "$GHZ_VERSION"
  printf '| keyport binary | `%s` (%s, built %s) |\n' "$KEYPORT_BIN" "$kind" "$build_time"
  local tree
  tree="\`$(git -C "$REPO_ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)\`"
  if [[ -n $(git -C "$REPO_ROOT" status --porcelain 2>/dev/null) ]]; then
    tree+=" with uncommitted changes"
  fi
  printf '| working tree | %s |\n' "$tree"
  printf '| steps | %s s warm-up, then %s s measured (SignIn: %s calls); %s HTTP/2 connections (fewer for fewer callers); %s s per-call timeout; %s load users |\n' \
    "$WARMUP" "$DURATION" "$SIGN_IN_CALLS" "$CONNECTIONS" "${CALL_TIMEOUT%s}" "$USERS"
  printf '| server configuration | SQLite in a fresh temp dir; `RUST_LOG=%s`; %s |\n' \
    "${RUST_LOG:-warn}" "$(config_env)"
  printf '\nok/s: calls answered OK per second of the step; rps: all answered calls per second (ghz). '
  printf 'Latencies are those of OK calls. Calls still in flight when a timed step ends are not counted.\n'
}

main() {
  [[ -x $KEYPORT_BIN ]] ||
    die "no keyport binary at $KEYPORT_BIN: build one (cargo build --release -p keyport-server) or set KEYPORT_BIN"
  [[ $FLOOD == 0 || $FLOOD == 1 ]] || die "FLOOD must be 0 or 1"
  ensure_debian_tools
  ensure_ghz
  ensure_grpcurl
  if is_debug_build; then
    log "warning: $KEYPORT_BIN looks like a debug build: its figures are not representative"
  fi
  log "load average $(loadavg) on $(nproc) CPUs; keep the machine quiet for a meaningful run"

  WORK="$(mktemp -d "${TMPDIR:-/tmp}/keyport-ghz.XXXXXX")"
  trap cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM

  start_server
  prepare_fixtures

  local report="$WORK/report.md" started
  started=$(date +%s)
  print_header >"$report"

  local get_session=(--call keyport.v1.SessionService/GetSession --data-file "$WORK/get-session.data.json")
  local health=(--call grpc.health.v1.Health/Check --data '{"service": ""}')

  step health-c64 64 OK -z "${DURATION}s" "${health[@]}"
  print_table "a. Baseline: grpc.health.v1.Health/Check" \
    "A handler that does nothing: the ceiling of ghz and the server on this machine." >>"$report"

  local c
  for c in 1 16 64; do
    step "get-session-c$c" "$c" OK -z "${DURATION}s" "${get_session[@]}"
  done
  print_table "b. keyport.v1.SessionService/GetSession" \
    "Round-robin over the session tokens of $USERS users (the server cache hit path)." >>"$report"

  step sign-in-c16 16 OK -n "$SIGN_IN_CALLS" \
    --call keyport.v1.SessionService/SignIn --data-file "$WORK/sign-in.data.json"
  print_table "c. keyport.v1.SessionService/SignIn, correct passwords" \
    "Argon2id-bound: round-robin over the $USERS load users' credentials." >>"$report"

  if [[ $FLOOD == 1 ]]; then
    # It covers the step's warm-up and measurement, with a margin for the
    # start of each ghz run.
    local flood_secs=$((1 + WARMUP + DURATION + 3)) load
    load="$(loadavg)"
    log "flood: SignIn with wrong passwords, 64 callers, ${flood_secs} s"
    ghz_cmd "$WORK/sign-in-flood-c64.json" 64 -z "${flood_secs}s" --count-errors \
      --call keyport.v1.SessionService/SignIn --data-file "$WORK/flood.data.json"
    "${GHZ_CMD[@]}" >/dev/null &
    FLOOD_PID=$!
    sleep 1
    step get-session-during-flood-c16 16 OK -z "${DURATION}s" "${get_session[@]}"
    wait "$FLOOD_PID" || log "flood: ghz exited with status $?"
    FLOOD_PID=""
    summarize sign-in-flood-c64 64 Unauthenticated,ResourceExhausted "$load" "$WORK/sign-in-flood-c64.json"
    print_table "d. GetSession during a SignIn flood" \
      "16 GetSession callers measured while 64 callers send SignIn with wrong passwords for $FLOOD_USERS other accounts (UNAUTHENTICATED expected; RESOURCE_EXHAUSTED means the hashing queue was full). The flood row's latencies are those of all its answers." >>"$report"
  fi

  ensure_server_running
  printf '\nLoad steps took %s s.\n' "$(($(date +%s) - started))" >>"$report"
  cat "$report"

  if ((${#UNEXPECTED[@]} > 0)); then
    printf '\nUnexpected results:\n' >&2
    printf '  - %s\n' "${UNEXPECTED[@]}" >&2
    exit 1
  fi
  log "done: every step answered as expected"
}

main "$@"
