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
# KEYPORT_PY_TYPECHECK=0 skips the mypy --strict pass.
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

# pytest exits 5 when it collects no test: that is a failure here, as is any
# other non-zero status; set -e passes it on.
"$venv/bin/python" -m pytest "$@"
