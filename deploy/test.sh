#!/usr/bin/env bash
# Checks Keyport's deployment recipes: the Helm chart, the container image,
# the systemd units and the Grafana dashboard (deploy/). Run from anywhere;
# scripts/test.sh runs it after the SDK tests. Needs root or sudo for apt
# and podman. Every step runs, and the script exits 1 at the end if one
# failed. docs/deployment.md, "How the recipes are tested", says what each
# step proves.
#
# What it installs when missing (and skips on a second run):
#   - helm (pinned, `go install` into ~/.cache/keyport/bin);
#   - PyYAML and dockerfile-parse (pinned, a venv in ~/.cache/keyport/deploy-venv);
#   - Debian packages: prometheus (for promtool), systemd (systemd-analyze),
#     ShellCheck, and for the container run podman, runc and mmdebstrap;
#   - a Debian bookworm minbase image for podman, made with mmdebstrap from
#     the Debian archive (no container registry is reachable here).
#
# Which keyport binary the live checks use: KEYPORT_BIN, else
# $CARGO_TARGET_DIR/debug/keyport (default ~/.cache/keyport/target). Without
# one they are skipped locally and fail under CI=true.
#
# Environment:
#   KEYPORT_DEPLOY_CONTAINER=0  skip everything podman runs (the image and
#                               the units under systemd); the mechanical
#                               checks still run
set -euo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(dirname "$DEPLOY_DIR")"
CACHE_DIR="$HOME/.cache/keyport"
BIN_DIR="$CACHE_DIR/bin"
VENV="$CACHE_DIR/deploy-venv"
HELM_VERSION=v3.21.4
CHART="$DEPLOY_DIR/helm/keyport"
# helm built by `go install` defaults to Kubernetes v1.20 for templates; the
# chart needs 1.27+ (native gRPC probes).
KUBE_VERSION=1.30.0
BASE_IMAGE=localhost/keyport-deploy-test/bookworm-minbase:latest
TEST_IMAGE=localhost/keyport-deploy-test/keyport:test
# Values deploy/checks.py looks for outside Secrets (SECRET_MARKERS there).
TEST_DB_URL='postgres://keyport:S3cretDbPassw0rd@db.internal:5432/keyport'
TEST_SF_KEY='c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seS0zMmJ5dGU='
APT_UPDATED=false
FAILED_STEPS=()

banner() {
  printf '\n==> %s\n' "$*"
}

die() {
  printf 'error: %s\n' "$*" >&2
  exit 1
}

fail() {
  printf 'FAIL: %s\n' "$*" >&2
  return 1
}

# Records a check that could not run here, for the summary (steps run in
# subshells, so a file rather than a variable).
skip() {
  printf '%s\n' "$*" >>"$WORK/skipped"
  echo "SKIPPED $*"
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

ensure_command() {
  local cmd="$1" package="$2"
  if ! command -v "$cmd" >/dev/null 2>&1; then
    banner "installing $cmd (Debian package $package)"
    apt_install "$package"
  fi
}

# Installs the pinned helm with `go install` unless it is there already (the
# version stamp, since a go-installed helm reports no patch version).
ensure_helm() {
  local stamp="$BIN_DIR/helm.version"
  if [[ -x $BIN_DIR/helm && $(cat "$stamp" 2>/dev/null) == "$HELM_VERSION" ]]; then
    echo "helm $HELM_VERSION: already installed"
    return
  fi
  ensure_command go golang
  banner "installing helm $HELM_VERSION (go install, a few minutes the first time)"
  mkdir -p "$BIN_DIR"
  (cd "$CACHE_DIR" && GOBIN="$BIN_DIR" go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION")
  echo "$HELM_VERSION" >"$stamp"
}

# A venv with deploy/requirements.txt, remade when that file changes.
ensure_venv() {
  local stamp="$VENV/requirements.sha256" want
  want="$(sha256sum "$DEPLOY_DIR/requirements.txt" | cut -d' ' -f1)"
  if [[ -x $VENV/bin/python && $(cat "$stamp" 2>/dev/null) == "$want" ]]; then
    echo "Python packages: already installed ($VENV)"
    return
  fi
  banner "installing PyYAML and dockerfile-parse (venv $VENV)"
  if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
    apt_install python3-venv
  fi
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$DEPLOY_DIR/requirements.txt"
  echo "$want" >"$stamp"
}

find_keyport() {
  local target="${CARGO_TARGET_DIR:-$CACHE_DIR/target}"
  KEYPORT="${KEYPORT_BIN:-$target/debug/keyport}"
  if [[ ! -x $KEYPORT ]]; then
    KEYPORT=""
  fi
}

# Live checks need a keyport binary; without one they are skipped, except in
# CI, where a missing binary is a failure.
need_keyport() {
  if [[ -n $KEYPORT ]]; then
    return 0
  fi
  if [[ ${CI:-} == true ]]; then
    fail "no keyport binary (KEYPORT_BIN, or \$CARGO_TARGET_DIR/debug/keyport)"
    return 1
  fi
  skip "$1: no keyport binary (set KEYPORT_BIN or cargo build -p keyport-server)"
  return 2
}

checks() {
  "$VENV/bin/python" "$DEPLOY_DIR/checks.py" "$@"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

helm_() {
  "$BIN_DIR/helm" "$@"
}

# Renders the chart; extra arguments are values.
render() {
  helm_ template kp "$CHART" --namespace keyport --kube-version "$KUBE_VERSION" "$@"
}

POSTGRES_VALUES=(--set database.mode=postgres
  --set-string "database.postgres.url=$TEST_DB_URL"
  --set-string "secondFactors.encryptionKey=$TEST_SF_KEY"
  --set metrics.enabled=true --set metrics.serviceMonitor.enabled=true
  --set migrations.job.enabled=true
  --set tracing.otlpEndpoint=http://otel-collector.observability:4317)

# Expects rendering with these values to fail with a message matching $1.
expect_render_failure() {
  local pattern="$1" out
  shift
  if out="$(render "$@" 2>&1)"; then
    fail "helm template $* rendered; it should have failed"
    return 1
  fi
  if ! grep -qE "$pattern" <<<"$out"; then
    printf '%s\n' "$out" >&2
    fail "helm template $* failed, but not with /$pattern/"
    return 1
  fi
  echo "  ok   refused: $* ($(grep -oE "$pattern" <<<"$out" | head -n 1))"
}

step_helm() {
  helm_ lint --strict --kube-version "$KUBE_VERSION" "$CHART"
  helm_ lint --strict --kube-version "$KUBE_VERSION" "$CHART" "${POSTGRES_VALUES[@]}"
  helm_ lint --strict --kube-version "$KUBE_VERSION" "$CHART" -f "$DEPLOY_DIR/helm/ci/config-values.yaml"
  render >"$WORK/sqlite.yaml"
  checks helm-sqlite "$WORK/sqlite.yaml"
  render "${POSTGRES_VALUES[@]}" >"$WORK/postgres.yaml"
  checks helm-postgres "$WORK/postgres.yaml"
  echo "values that must not render:"
  expect_render_failure 'SQLite database takes exactly one Keyport process' --set replicaCount=2
  expect_render_failure 'needs the database URL' --set database.mode=postgres \
    --set-string "secondFactors.encryptionKey=$TEST_SF_KEY"
  expect_render_failure 'needs second_factors.encryption_key' --set database.mode=postgres \
    --set-string "database.postgres.url=$TEST_DB_URL"
  expect_render_failure 'must be 32 bytes' --set database.mode=postgres \
    --set-string "database.postgres.url=$TEST_DB_URL" --set-string secondFactors.encryptionKey=c2hvcnQ=
  expect_render_failure 'config.database_url is set by the chart' --set-string config.database_url=postgres://x
  expect_render_failure 'are secrets' --set-string config.second_factors.encryption_key=x
  expect_render_failure 'config.mail.password is a secret' --set-string config.mail.password=x
  expect_render_failure 'configToml sets a key the chart owns or a secret' \
    --set-string 'configToml=database_url = "postgres://x"'
  expect_render_failure 'value must be true' --set securityContext.readOnlyRootFilesystem=false
  expect_render_failure 'database.mode must be|value must be one of' --set database.mode=mysql
  expect_render_failure 'serviceMonitor.enabled needs metrics.enabled' --set metrics.serviceMonitor.enabled=true
}

# The rendered keyport.toml files (and deploy/systemd/keyport.toml) must be
# accepted by the real binary: unknown keys and wrong types are errors there.
step_config_accepted() {
  need_keyport "config files accepted by keyport" || return $(($? == 2 ? 0 : 1))
  local name file dir
  local out
  render >"$WORK/accept-sqlite.yaml"
  render "${POSTGRES_VALUES[@]}" >"$WORK/accept-postgres.yaml"
  render -f "$DEPLOY_DIR/helm/ci/config-values.yaml" >"$WORK/accept-config.yaml"
  for name in sqlite postgres config systemd; do
    file="$WORK/$name.toml"
    if [[ $name == systemd ]]; then
      file="$DEPLOY_DIR/systemd/keyport.toml"
    else
      checks toml "$WORK/accept-$name.yaml" --out "$file"
    fi
    dir="$(mktemp -d "$WORK/data.XXXXXX")"
    # migrate on a scratch SQLite database: it loads and validates the whole
    # configuration first (exit 2 on an unknown key or a wrong type).
    if ! out="$(env KEYPORT_DATABASE_URL='' KEYPORT_DATA_DIR="$dir" GOOGLE_CLIENT_SECRET=x CORP_CLIENT_SECRET=x \
      "$KEYPORT" --config "$file" --log-format json migrate 2>&1)"; then
      printf '%s\n' "$out" >&2
      fail "keyport refused $file"
      return 1
    fi
    echo "  ok   keyport accepts the $name keyport.toml"
  done
}

step_containerfile() {
  checks containerfile "$DEPLOY_DIR/container/Containerfile"
}

# Whether podman can run a container on this machine at all. Sets
# PODMAN_REASON when it cannot.
podman_usable() {
  ensure_command podman podman
  ensure_command runc runc
  ensure_command mmdebstrap mmdebstrap
  if ! podman image exists "$BASE_IMAGE"; then
    banner "making $BASE_IMAGE (mmdebstrap bookworm minbase, about 2 minutes once)"
    # --dpkgopt: leave out docs and locales, as the slim images do.
    mmdebstrap --variant=minbase --include=ca-certificates \
      --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
      --dpkgopt='path-exclude=/usr/share/locale/*' \
      bookworm "$WORK/base.tar" http://deb.debian.org/debian
    podman import "$WORK/base.tar" "$BASE_IMAGE" >/dev/null
    rm -f "$WORK/base.tar"
  fi
  if ! out="$(podman "${PODMAN_OPTS[@]}" run --rm --network none "$BASE_IMAGE" true 2>&1)"; then
    PODMAN_REASON="podman cannot run a container here: $out"
    return 1
  fi
}

# Podman as this machine allows it. Sets PODMAN_OPTS, or PODMAN_REASON and
# fails when no container can run here.
podman_setup() {
  # This sandbox cannot raise RLIMIT_NPROC/NOFILE to podman's defaults, and
  # crun refuses its hybrid cgroup layout; runc with the host's limits runs.
  printf '[containers]\ndefault_ulimits = []\n' >"$WORK/containers.conf"
  export CONTAINERS_CONF="$WORK/containers.conf"
  PODMAN_OPTS=(--runtime runc)
  PODMAN_REASON=""
  podman_usable
}

# Puts the keyport binary in a build context directory.
stage_binary() {
  mkdir -p "$1"
  # A debug build carries 400 MB of debug info; stripped, the layer is small.
  if command -v strip >/dev/null 2>&1; then
    strip -o "$1/keyport" "$KEYPORT"
  else
    cp "$KEYPORT" "$1/keyport"
  fi
}

# build_image TAG CONTEXT [podman build options]: builds CONTEXT/Containerfile
# and drops the image it replaces (each new binary makes a new one).
build_image() {
  local tag="$1" ctx="$2" previous
  shift 2
  previous="$(podman image inspect --format '{{.Id}}' "$tag" 2>/dev/null || true)"
  podman "${PODMAN_OPTS[@]}" build --quiet --pull=never --network host "$@" \
    -f "$ctx/Containerfile" -t "$tag" "$ctx" >/dev/null
  if [[ -n $previous && $previous != "$(podman image inspect --format '{{.Id}}' "$tag")" ]]; then
    podman rmi "$previous" >/dev/null 2>&1 || true
  fi
}

# Builds the image's runtime stage for real on a local Debian bookworm base
# with a prebuilt keyport (the builder stage would compile the workspace
# inside the container: no cargo here), then runs it the way
# docs/deployment.md says and checks what the recipe promises.
step_container_run() {
  if [[ ${KEYPORT_DEPLOY_CONTAINER:-1} == 0 ]]; then
    skip "container build and run: KEYPORT_DEPLOY_CONTAINER=0"
    return 0
  fi
  need_keyport "container build and run" || return $(($? == 2 ? 0 : 1))
  podman_setup || { skip "container build and run: $PODMAN_REASON"; return 0; }
  local ctx="$WORK/ctx" port
  CONTAINER="keyport-deploy-test-$$"
  VOLUME="keyport-deploy-test-$$"
  # This step runs in a subshell: its own EXIT trap removes what it made.
  trap remove_container EXIT
  stage_binary "$ctx"
  checks runtime-only "$DEPLOY_DIR/container/Containerfile" --out "$ctx/Containerfile"
  build_image "$TEST_IMAGE" "$ctx" --format docker --build-arg "RUNTIME_IMAGE=$BASE_IMAGE"
  podman image inspect "$TEST_IMAGE" >"$WORK/image.json"
  checks image "$WORK/image.json"

  port="$(free_port)"
  local name="$CONTAINER" volume="$VOLUME"
  # podman's stderr goes to a file: without systemd it complains that it
  # cannot schedule health-check timers, which `healthcheck run` below
  # does not need.
  podman "${PODMAN_OPTS[@]}" run -d --name "$name" --read-only --cap-drop ALL \
    --security-opt no-new-privileges -p "127.0.0.1:$port:50051" \
    -v "$volume:/var/lib/keyport" "$TEST_IMAGE" >/dev/null 2>"$WORK/podman-run.err" ||
    { cat "$WORK/podman-run.err" >&2; fail "podman run"; return 1; }
  local healthy=false i
  for i in $(seq 1 60); do
    # HEALTHCHECK's own command, as the engine would run it.
    if podman "${PODMAN_OPTS[@]}" healthcheck run "$name" >/dev/null 2>&1; then
      healthy=true
      break
    fi
    sleep 0.5
  done
  if [[ $healthy != true ]]; then
    podman logs "$name" >&2 || true
    fail "the container's HEALTHCHECK (keyport health) never passed"
    return 1
  fi
  echo "  ok   HEALTHCHECK passes (keyport health inside the container, after $i tries)"
  "$KEYPORT" health --listen "127.0.0.1:$port" >/dev/null ||
    { fail "keyport health through the published port 127.0.0.1:$port"; return 1; }
  echo "  ok   gRPC health SERVING through the published port (image listens on 0.0.0.0:50051)"
  [[ $(podman exec "$name" id -u):$(podman exec "$name" id -g) == 10001:10001 ]] ||
    { fail "container runs as $(podman exec "$name" id)"; return 1; }
  echo "  ok   runs as uid/gid 10001"
  if podman exec "$name" sh -c 'echo x >/usr/local/bin/probe' 2>/dev/null; then
    fail "the root filesystem is writable under --read-only"
    return 1
  fi
  echo "  ok   serves with a read-only root filesystem"
  [[ $(podman exec "$name" stat -c %a /var/lib/keyport) == 700 ]] ||
    { fail "data directory mode is $(podman exec "$name" stat -c %a /var/lib/keyport), not 700"; return 1; }
  podman exec "$name" test -s /var/lib/keyport/keyport.db ||
    { fail "no keyport.db in the data volume"; return 1; }
  echo "  ok   SQLite database in the 0700 data volume"
  podman exec "$name" keyport backup /var/lib/keyport/backup-test.db ||
    { fail "keyport backup in the running container"; return 1; }
  local mountpoint
  mountpoint="$(podman volume inspect --format '{{.Mountpoint}}' "$volume")"
  [[ $(python3 -c 'import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute("PRAGMA integrity_check").fetchone()[0])' \
    "$mountpoint/backup-test.db") == ok ]] || { fail "the online backup is not a sound SQLite file"; return 1; }
  echo "  ok   keyport backup makes a sound copy while serving"
  podman stop -t 20 "$name" >/dev/null 2>>"$WORK/podman-run.err"
  [[ $(podman inspect --format '{{.State.ExitCode}}' "$name") == 0 ]] ||
    { podman logs "$name" >&2; fail "keyport did not exit 0 on SIGTERM"; return 1; }
  echo "  ok   stops cleanly on SIGTERM (exit 0)"
  podman logs "$name" >"$WORK/container.log" 2>&1
  python3 -c 'import json, sys; [json.loads(line) for line in open(sys.argv[1]) if line.strip()]' "$WORK/container.log" ||
    { fail "logs are not JSON lines (KEYPORT_LOG_FORMAT=json)"; return 1; }
  echo "  ok   logs are JSON lines"
}

step_systemd() {
  ensure_command systemd-analyze systemd
  checks systemd "$DEPLOY_DIR/systemd/keyport.service"
  # verify resolves ExecStart= binaries: point them at a real keyport (or,
  # without one, at /bin/true) in copies of the units.
  local bin="${KEYPORT:-/bin/true}" unit out
  mkdir -p "$WORK/units"
  for unit in "$DEPLOY_DIR"/systemd/*.service "$DEPLOY_DIR"/systemd/*.timer; do
    sed "s#/usr/local/bin/keyport#$bin#g" "$unit" >"$WORK/units/$(basename "$unit")"
  done
  # verify exits 0 on unknown keys and bad values: any output is a failure.
  out="$(cd "$WORK/units" && systemd-analyze verify keyport.service keyport-backup.service keyport-backup.timer 2>&1)" || true
  if [[ -n $out ]]; then
    printf '%s\n' "$out" >&2
    fail "systemd-analyze verify reported problems"
    return 1
  fi
  echo "  ok   systemd-analyze verify: keyport.service, keyport-backup.service, keyport-backup.timer"
  local unit_name level
  for unit_name in keyport.service keyport-backup.service; do
    if ! out="$(systemd-analyze security --offline=yes "$WORK/units/$unit_name" 2>&1)"; then
      # Older systemd (< 250) has no --offline.
      if grep -q "unrecognized option" <<<"$out"; then
        skip "systemd-analyze security: this systemd has no --offline"
        return 0
      fi
    fi
    level="$(grep -oE 'Overall exposure level for [^:]+: [0-9.]+' <<<"$out" | grep -oE '[0-9.]+$')"
    [[ -n $level ]] || { printf '%s\n' "$out" >&2; fail "no exposure level for $unit_name"; return 1; }
    if awk -v l="$level" 'BEGIN { exit !(l > 2.0) }'; then
      grep -E '^✗' <<<"$out" >&2 || true
      fail "$unit_name exposure $level is above 2.0"
      return 1
    fi
    echo "  ok   systemd-analyze security --offline: $unit_name exposure $level (at most 2.0)"
  done
}

# Boots systemd in a container (podman --systemd=always) on the Debian base,
# installs the units as deploy/systemd/keyport.service's header says, and
# checks that the hardened unit really serves: sign-ups and sign-ins hash
# passwords under its system call filter and MemoryDenyWriteExecute, the
# process has no capabilities, the files are private, the backup unit
# writes a backup, and a stop is clean.
step_systemd_run() {
  if [[ ${KEYPORT_DEPLOY_CONTAINER:-1} == 0 ]]; then
    skip "systemd units under systemd: KEYPORT_DEPLOY_CONTAINER=0"
    return 0
  fi
  need_keyport "systemd units under systemd" || return $(($? == 2 ? 0 : 1))
  podman_setup || { skip "systemd units under systemd: $PODMAN_REASON"; return 0; }
  local ctx="$WORK/systemd-ctx" image=localhost/keyport-deploy-test/systemd:test port state="" i pid keyport_uid
  CONTAINER="keyport-deploy-systemd-$$"
  VOLUME=""
  trap remove_container EXIT
  stage_binary "$ctx"
  cp "$DEPLOY_DIR"/systemd/* "$ctx/"
  cat >"$ctx/Containerfile" <<CFEOF
FROM $BASE_IMAGE
RUN apt-get update && apt-get install -y --no-install-recommends systemd systemd-sysv \\
    && rm -rf /var/lib/apt/lists/*
COPY keyport /usr/local/bin/keyport
COPY keyport.service keyport-backup.service keyport-backup.timer keyport.sysusers keyport.toml /opt/deploy/
CMD ["/sbin/init"]
CFEOF
  build_image "$image" "$ctx"
  port="$(free_port)"
  podman "${PODMAN_OPTS[@]}" run -d --name "$CONTAINER" --systemd=always \
    -p "127.0.0.1:$port:50051" "$image" >/dev/null 2>"$WORK/podman-systemd.err" ||
    { cat "$WORK/podman-systemd.err" >&2; fail "podman run (systemd)"; return 1; }
  for i in $(seq 1 60); do
    state="$(podman exec "$CONTAINER" systemctl is-system-running 2>/dev/null || true)"
    [[ $state == running || $state == degraded ]] && break
    sleep 0.5
  done
  if [[ $state != running && $state != degraded ]]; then
    # Our units are not enabled at boot: a systemd that does not come up is
    # this machine's limit, not the recipe's.
    skip "systemd units under systemd: systemd does not boot in a container here (${state:-no answer})"
    return 0
  fi
  echo "  ok   systemd boots in the container ($state)"
  # The install steps of keyport.service's header.
  podman exec "$CONTAINER" sh -euc '
    cd /opt/deploy
    install -m 0644 keyport.sysusers /usr/lib/sysusers.d/keyport.conf
    systemd-sysusers
    install -d -m 0750 -g keyport /etc/keyport
    install -m 0640 -g keyport keyport.toml /etc/keyport/keyport.toml
    install -m 0644 keyport.service keyport-backup.service keyport-backup.timer /etc/systemd/system/
    systemctl daemon-reload
    systemctl enable --quiet --now keyport keyport-backup.timer'
  for i in $(seq 1 50); do
    podman exec "$CONTAINER" keyport --config /etc/keyport/keyport.toml health >/dev/null 2>&1 && break
    sleep 0.2
  done
  podman exec "$CONTAINER" keyport --config /etc/keyport/keyport.toml health >/dev/null ||
    { podman exec "$CONTAINER" journalctl -u keyport --no-pager >&2; fail "keyport.service never became SERVING"; return 1; }
  echo "  ok   keyport.service is SERVING"
  checks sign-up-in "http://127.0.0.1:$port"
  pid="$(podman exec "$CONTAINER" systemctl show -p MainPID --value keyport)"
  podman exec "$CONTAINER" cat "/proc/$pid/status" >"$WORK/keyport.status"
  keyport_uid="$(podman exec "$CONTAINER" id -u keyport)"
  grep -qE "^Uid:\s+$keyport_uid\s" "$WORK/keyport.status" ||
    { fail "keyport.service does not run as keyport"; return 1; }
  if ! grep -qE '^CapEff:\s+0+$' "$WORK/keyport.status" || ! grep -qE '^CapBnd:\s+0+$' "$WORK/keyport.status"; then
    fail "keyport.service has capabilities"
    return 1
  fi
  if ! grep -qE '^NoNewPrivs:\s+1$' "$WORK/keyport.status" || ! grep -qE '^Seccomp:\s+2$' "$WORK/keyport.status"; then
    fail "keyport.service runs without NoNewPrivileges or its system call filter"
    return 1
  fi
  echo "  ok   runs as keyport, no capabilities, no new privileges, seccomp filter on"
  local modes
  modes="$(podman exec "$CONTAINER" stat -c '%a %U' /var/lib/keyport /var/lib/keyport/keyport.db | tr '\n' ' ')"
  [[ $modes == "700 keyport 600 keyport " ]] ||
    { fail "state directory and database not private: $modes"; return 1; }
  echo "  ok   /var/lib/keyport is 0700 and keyport.db 0600 (UMask=0077)"
  podman exec "$CONTAINER" systemctl start keyport-backup.service ||
    { podman exec "$CONTAINER" journalctl -u keyport-backup --no-pager >&2; fail "keyport-backup.service failed"; return 1; }
  [[ $(podman exec "$CONTAINER" sh -c 'stat -c "%a %U" /var/lib/keyport-backups/keyport-*.db') == "600 keyport" ]] ||
    { fail "keyport-backup.service left no private backup"; return 1; }
  echo "  ok   keyport-backup.service writes a private backup while keyport serves"
  podman exec "$CONTAINER" systemctl stop keyport
  [[ $(podman exec "$CONTAINER" systemctl show -p Result --value keyport) == success ]] ||
    { podman exec "$CONTAINER" journalctl -u keyport --no-pager >&2; fail "keyport.service did not stop cleanly"; return 1; }
  echo "  ok   systemctl stop keyport: clean exit"
}

step_dashboard() {
  ensure_command promtool prometheus
  checks dashboard "$DEPLOY_DIR/grafana/keyport-dashboard.json" --rules "$WORK/dashboard-rules.json"
  promtool check rules "$WORK/dashboard-rules.json"
}

# A real keyport with metrics on: the names the dashboard charts must have
# the types it assumes (rate() over counters, histogram_quantile over
# histograms).
step_live_metrics() {
  need_keyport "live /metrics" || return $(($? == 2 ? 0 : 1))
  local grpc metrics data i
  grpc="$(free_port)"
  metrics="$(free_port)"
  data="$(mktemp -d "$WORK/metrics-data.XXXXXX")"
  KEYPORT_DATABASE_URL='' KEYPORT_DATA_DIR="$data" KEYPORT_METRICS__LISTEN="127.0.0.1:$metrics" \
    "$KEYPORT" --listen "127.0.0.1:$grpc" --log-format json serve >"$WORK/metrics-server.log" 2>&1 &
  SERVER_PID=$!
  trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
  for i in $(seq 1 100); do
    "$KEYPORT" health --listen "127.0.0.1:$grpc" >/dev/null 2>&1 && break
    sleep 0.1
  done
  "$KEYPORT" health --listen "127.0.0.1:$grpc" >/dev/null ||
    { cat "$WORK/metrics-server.log" >&2; fail "keyport never became SERVING"; return 1; }
  python3 - "http://127.0.0.1:$metrics/metrics" "$WORK/metrics.txt" <<'EOF'
import sys, urllib.request
with urllib.request.urlopen(sys.argv[1], timeout=5) as response:
    assert response.status == 200, response.status
    open(sys.argv[2], "wb").write(response.read())
EOF
  checks metrics-types "$WORK/metrics.txt"
  kill "$SERVER_PID"
  wait "$SERVER_PID" || true
  # The probe's other answer: nothing listening is exit 1, not 0.
  if "$KEYPORT" health --listen "127.0.0.1:$grpc" >/dev/null 2>&1; then
    fail "keyport health exits 0 with no server"
    return 1
  fi
  echo "  ok   keyport health exits non-zero when nothing serves"
}

step_shellcheck() {
  ensure_command shellcheck shellcheck
  shellcheck "$DEPLOY_DIR/test.sh"
  echo "  ok   shellcheck deploy/test.sh"
}

remove_container() {
  podman rm -f "$CONTAINER" >/dev/null 2>&1 || true
  if [[ -n $VOLUME ]]; then
    podman volume rm -f "$VOLUME" >/dev/null 2>&1 || true
  fi
}

# Runs one step in a subshell with errexit on, and records its failure
# instead of stopping, so one run reports every broken recipe.
run_step() {
  local name="$1" rc
  shift
  banner "$name"
  set +e
  (
    set -e
    "$@"
  )
  rc=$?
  set -e
  if [[ $rc -ne 0 ]]; then
    FAILED_STEPS+=("$name")
  fi
}

main() {
  local started=$SECONDS
  WORK="$(mktemp -d)"
  # shellcheck disable=SC2064 # expand WORK now
  trap "rm -rf '$WORK'" EXIT
  cd "$REPO_ROOT"

  banner "checking prerequisites"
  ensure_helm
  ensure_venv
  find_keyport
  echo "keyport binary: ${KEYPORT:-none}"

  run_step "Helm chart: lint, render both modes, refuse bad values" step_helm
  run_step "rendered configs accepted by keyport" step_config_accepted
  run_step "Containerfile recipe" step_containerfile
  run_step "container image: build the runtime stage and run it (podman)" step_container_run
  run_step "systemd units: verify and exposure" step_systemd
  run_step "systemd units running under systemd (podman)" step_systemd_run
  run_step "Grafana dashboard" step_dashboard
  run_step "metric types on a live /metrics" step_live_metrics
  run_step "shellcheck" step_shellcheck

  banner "deployment recipes: $((SECONDS - started)) s"
  local item
  if [[ -s $WORK/skipped ]]; then
    sed 's/^/skipped: /' "$WORK/skipped"
  fi
  if [[ ${#FAILED_STEPS[@]} -gt 0 ]]; then
    for item in "${FAILED_STEPS[@]}"; do
      echo "failed: $item"
    done
    exit 1
  fi
  echo "all deployment checks passed"
}

main "$@"
