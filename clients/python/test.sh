#!/usr/bin/env bash
# Installs the package (editable, with pinned test deps) into .venv and runs
# its tests against a real keyport server.
#
# Needs KEYPORT_BIN: the keyport binary the tests start, e.g.
#   CARGO_TARGET_DIR=/root/.cache/keyport/target cargo build -p keyport-server
#   KEYPORT_BIN=/root/.cache/keyport/target/debug/keyport clients/python/test.sh
# Extra arguments go to pytest. PYTHON picks the interpreter for a new venv
# (default python3.11) and KEYPORT_PY_VENV its location (default .venv), so
# another Python can be tried side by side:
#   PYTHON=python3.9 KEYPORT_PY_VENV=.venv-3.9 ./test.sh
# KEYPORT_PY_TYPECHECK=0 skips the mypy --strict pass, KEYPORT_PY_PUBLISH_CHECK=0
# the publishing dry run (build the sdist and wheel, twine check them).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="${KEYPORT_PY_VENV:-$here/.venv}"
python="${PYTHON:-python3.11}"

if [[ -z "${KEYPORT_BIN:-}" ]]; then
  echo "test.sh: KEYPORT_BIN is not set; build keyport and point it at the binary:" >&2
  echo "  CARGO_TARGET_DIR=/root/.cache/keyport/target cargo build -p keyport-server" >&2
  echo "  KEYPORT_BIN=/root/.cache/keyport/target/debug/keyport $0" >&2
  exit 2
fi
if [[ ! -x "$KEYPORT_BIN" ]]; then
  echo "test.sh: KEYPORT_BIN=$KEYPORT_BIN is not an executable file" >&2
  exit 2
fi
# A relative KEYPORT_BIN must keep working after the cd below.
KEYPORT_BIN="$(cd "$(dirname "$KEYPORT_BIN")" && pwd)/$(basename "$KEYPORT_BIN")"
export KEYPORT_BIN

if [[ ! -x "$venv/bin/python" ]]; then
  echo "test.sh: creating virtualenv $venv with $python" >&2
  "$python" -m venv "$venv"
fi
extras="test"
typecheck="${KEYPORT_PY_TYPECHECK:-1}"
[[ "$typecheck" == 1 ]] && extras="test,typecheck"
# PIP_CONSTRAINT also pins the isolated build environment (setuptools).
PIP_CONSTRAINT="$here/constraints.txt" "$venv/bin/python" -m pip install \
  --quiet --disable-pip-version-check -c "$here/constraints.txt" -e "$here[$extras]"

cd "$here"
if [[ "$typecheck" == 1 ]]; then
  "$venv/bin/python" -m mypy
fi

# Publishing dry run: what `twine upload` would send, built and checked
# (metadata, README rendering) without uploading. No build isolation: the
# venv's pinned setuptools builds it, offline. build and twine need 3.11+.
if [[ "${KEYPORT_PY_PUBLISH_CHECK:-1}" == 1 ]] && "$venv/bin/python" -c 'import build, twine' 2>/dev/null; then
  dist="$(mktemp -d)"
  trap 'rm -rf "$dist"' EXIT
  "$venv/bin/python" -m build --no-isolation --sdist --wheel --outdir "$dist" "$here" >"$dist/build.log" 2>&1 \
    || { cat "$dist/build.log" >&2; exit 1; }
  "$venv/bin/python" -m twine check --strict "$dist"/*.whl "$dist"/*.tar.gz
  # The wheel must carry the typed marker and the generated code.
  "$venv/bin/python" - "$dist" <<'PY'
import sys, zipfile, pathlib
wheel = next(pathlib.Path(sys.argv[1]).glob("*.whl"))
names = set(zipfile.ZipFile(wheel).namelist())
for needed in ("keyport/py.typed", "keyport/v1/session_service_pb2.py", "keyport/v1/session_service_pb2.pyi",
               "keyport/cache/state.py", "keyport/web/asgi.py", "keyport/grpc_auth.py"):
    assert needed in names, f"{wheel.name} lacks {needed}"
assert not any(name.startswith("tests/") for name in names), "the tests are not shipped"
print(f"publish dry run: {wheel.name} ({len(names)} files) and its sdist pass twine check")
PY
fi

# The tests start processes (keyport, openssl, the conformance apps) while
# grpc threads run. On Python < 3.11 subprocess forks rather than vforks, so
# grpc's fork handlers run in the child, and they abort it ("epoll_wait
# error: Bad file descriptor"). The tests never use grpc in a forked child.
export GRPC_ENABLE_FORK_SUPPORT="${GRPC_ENABLE_FORK_SUPPORT:-false}"

# pytest exits 5 when it collects no test: that is a failure here, as is any
# other non-zero status; set -e passes it on.
"$venv/bin/python" -m pytest "$@"
