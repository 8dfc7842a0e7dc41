#!/usr/bin/env bash
# Regenerates the Go SDK's protobuf and gRPC code (gen/keyport/v1) from
# proto/ with the pinned buf in tools/ and the pinned protoc plugins in
# .bin/, installing whichever of them is missing. Works from any directory;
# the output is byte-identical from run to run.
set -euo pipefail

# Pinned plugin versions; bump them together with go.mod's grpc/protobuf.
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
bin="$here/.bin"

# install_plugin NAME MODULE_PATH VERSION: installs MODULE_PATH@VERSION into
# .bin unless .bin/NAME already reports VERSION.
install_plugin() {
	local name="$1" pkg="$2" version="$3" have=""
	if [[ -x "$bin/$name" ]]; then
		have="$("$bin/$name" --version 2>/dev/null || true)"
	fi
	# protoc-gen-go prints "protoc-gen-go v1.36.12", protoc-gen-go-grpc
	# prints "protoc-gen-go-grpc 1.6.2".
	if [[ "$have" == "$name $version" || "$have" == "$name ${version#v}" ]]; then
		return
	fi
	echo "installing $pkg@$version into $bin" >&2
	GOBIN="$bin" go install "$pkg@$version"
}

install_plugin protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION"
install_plugin protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION"

buf="$root/tools/node_modules/.bin/buf"
if [[ ! -x "$buf" ]]; then
	echo "installing the pinned buf (npm ci in tools/)" >&2
	(cd "$root/tools" && npm ci --no-audit --no-fund)
fi

cd "$root"
"$buf" generate --template clients/go/buf.gen.yaml
