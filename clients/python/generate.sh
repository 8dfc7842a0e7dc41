#!/usr/bin/env bash
# Regenerates the Python code for keyport.v1 from ../../proto into src/.
#
# Creates the virtualenv (.venv, or $KEYPORT_PY_VENV) if missing, installs
# the pinned generators from constraints.txt, and rewrites every generated
# file under src/keyport/v1/. Running it twice leaves no diff.
#
# Layout: the proto root maps to src/, so keyport/v1/user.proto becomes
# src/keyport/v1/user_pb2.py, and the generated absolute imports
# (`from keyport.v1 import user_pb2`) resolve against the installed
# `keyport` package.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
proto_root="$(cd "$here/../../proto" && pwd)"
venv="${KEYPORT_PY_VENV:-$here/.venv}"
python="${PYTHON:-python3.11}"
out="$here/src"
pkg="$out/keyport/v1"

if [[ ! -x "$venv/bin/python" ]]; then
  echo "generate.sh: creating virtualenv $venv with $python" >&2
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
  -c "$here/constraints.txt" grpcio-tools mypy-protobuf

# Every .proto of the package, in a stable order, relative to the proto root.
mapfile -t protos < <(cd "$proto_root" && find keyport/v1 -name '*.proto' | LC_ALL=C sort)
mapfile -t services < <(printf '%s\n' "${protos[@]}" | grep '_service\.proto$' || true)
if [[ ${#protos[@]} -eq 0 ]]; then
  echo "generate.sh: no .proto files under $proto_root/keyport/v1" >&2
  exit 1
fi

# google/protobuf/*.proto (timestamp.proto, ...) ship inside grpcio-tools.
well_known="$("$venv/bin/python" -c 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))')"

# Generate into a scratch directory first, so a failing run leaves the
# checked-in code untouched, then swap it in (dropping files of removed protos).
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

cd "$proto_root"
# Messages (_pb2.py) and their type stubs (_pb2.pyi) for every file.
"$venv/bin/python" -m grpc_tools.protoc \
  -I "$proto_root" -I "$well_known" \
  --python_out="$scratch" --pyi_out="$scratch" \
  "${protos[@]}"
# gRPC stubs (_pb2_grpc.py) and their typed stubs (_pb2_grpc.pyi), only for
# the files that declare services.
if [[ ${#services[@]} -gt 0 ]]; then
  "$venv/bin/python" -m grpc_tools.protoc \
    -I "$proto_root" -I "$well_known" \
    --grpc_python_out="$scratch" \
    --plugin=protoc-gen-mypy_grpc="$venv/bin/protoc-gen-mypy_grpc" \
    --mypy_grpc_out=quiet:"$scratch" \
    "${services[@]}"
fi

cat > "$scratch/keyport/v1/__init__.py" <<'PY'
"""Generated code for the ``keyport.v1`` protobuf package. Do not edit.

Regenerate with ``clients/python/generate.sh``. Messages live in the
``*_pb2`` modules, gRPC stubs and servicers in the ``*_service_pb2_grpc``
modules.
"""
PY

mkdir -p "$pkg"
find "$pkg" -maxdepth 1 -type f \( -name '*_pb2.py' -o -name '*_pb2.pyi' -o -name '*_pb2_grpc.py' -o -name '*_pb2_grpc.pyi' -o -name '__init__.py' \) -delete
cp "$scratch"/keyport/v1/* "$pkg"/
echo "generate.sh: generated $(find "$pkg" -maxdepth 1 -type f -name '*_pb2*' | wc -l) files from ${#protos[@]} protos into ${pkg#"$here"/}" >&2
