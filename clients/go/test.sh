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

# Publishing dry run: go.mod and go.sum are tidy and verified, and a fresh
# module outside the repository, requiring the SDK through a replace
# directive as the README says, builds and vets against it.
go mod tidy -diff
go mod verify
app="$(mktemp -d)"
trap 'rm -rf "$app"' EXIT
cat >"$app/go.mod" <<GOMOD
module example.com/keyport-consumer

go 1.26.0

require github.com/keyport/keyport/clients/go v0.0.0

replace github.com/keyport/keyport/clients/go => $here
GOMOD
cat >"$app/main.go" <<'GO'
// A consumer of the SDK: a service behind the guard.
package main

import (
	"context"
	"log"
	"net/http"

	keyport "github.com/keyport/keyport/clients/go"
	"github.com/keyport/keyport/clients/go/accesstoken"
	keyportv1 "github.com/keyport/keyport/clients/go/gen/keyport/v1"
	"google.golang.org/grpc"
)

func main() {
	client, err := keyport.Dial("localhost:50051", keyport.WithInsecure())
	if err != nil {
		log.Fatal(err)
	}
	cache := keyport.NewSessionCache(context.Background(), client, keyport.CacheConfig{})
	guard := keyport.NewGuard(cache, keyport.GuardConfig{})
	_ = grpc.NewServer(grpc.ChainUnaryInterceptor(guard.UnaryServerInterceptor()))
	_ = &keyportv1.GetSessionRequest{}
	_, _ = accesstoken.NewVerifier(accesstoken.Config{Fetch: accesstoken.FromClient(client), Issuer: "https://keyport.test", Audience: "orders"})
	log.Println(keyport.Version)
	_ = http.ListenAndServe(":8080", guard.Middleware(http.NotFoundHandler()))
}
GO
(cd "$app" && GOWORK=off GOFLAGS=-mod=mod go mod tidy && GOWORK=off go build ./... && GOWORK=off go vet ./...)

# -race: the cache and guard are shared by every request.
go test -race -count=1 "$@" ./...

# A smoke run of the benchmark with tiny counts (the numbers mean nothing).
go run ./bench -duration 100ms -rounds 1 -revocations 3 -concurrency 4 >/dev/null
