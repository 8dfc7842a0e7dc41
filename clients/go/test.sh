#!/usr/bin/env bash
# Vets and tests the Go SDK against a live keyport server. The tests start
# the server themselves from the binary in KEYPORT_BIN, e.g.
#
#   CARGO_TARGET_DIR=/root/.cache/keyport/target cargo build -p keyport-server
#   KEYPORT_BIN=/root/.cache/keyport/target/debug/keyport clients/go/test.sh
#
# Works from any directory; extra arguments go to `go test`.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

if [[ -z "${KEYPORT_BIN:-}" ]]; then
	echo "test.sh: KEYPORT_BIN is not set; build the server with" >&2
	echo "  CARGO_TARGET_DIR=/root/.cache/keyport/target cargo build -p keyport-server" >&2
	echo "and set KEYPORT_BIN=/root/.cache/keyport/target/debug/keyport" >&2
	exit 1
fi

unformatted="$(gofmt -l .)"
if [[ -n "$unformatted" ]]; then
	echo "test.sh: not gofmt-clean:" >&2
	echo "$unformatted" >&2
	exit 1
fi
go vet ./...
go test -count=1 "$@" ./...
