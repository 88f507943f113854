#!/usr/bin/env bash
# The full test run for a fresh machine (Debian 12, Go installed, root):
# installs what is missing (PostgreSQL 15 server, redis-server, zstd, lz4, s2d,
# MinIO, golangci-lint),
# checks formatting, vet and golangci-lint (depguard keeps the import layers;
# see .golangci.yml), then runs every test with the integration tag, failing
# rather than skipping when a server binary is missing.
set -euo pipefail

cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }

pg_bin=/usr/lib/postgresql/15/bin
if [[ -x "$pg_bin/initdb" ]]; then
	say "postgresql 15: $pg_bin"
else
	say "installing postgresql-15 (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq postgresql-15 >/dev/null
fi

if command -v redis-server >/dev/null && command -v redis-cli >/dev/null; then
	say "redis: $(command -v redis-server)"
else
	say "installing redis-server (apt-get; the Mastodon example's end-to-end test)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq redis-server >/dev/null
fi

if command -v zstd >/dev/null && command -v lz4 >/dev/null; then
	say "zstd, lz4: $(command -v zstd) $(command -v lz4)"
else
	say "installing zstd and lz4 (apt-get; FORMAT.md's recovery by hand is tested with them)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq zstd lz4 >/dev/null
fi

minio_version=v0.0.0-20260212201848-7aac2a2c5b7c
gobin="$(go env GOBIN)"
gobin="${gobin:-$(go env GOPATH | cut -d: -f1)/bin}"
if [[ -n "${PITR_MINIO_BIN:-}" && -x "$PITR_MINIO_BIN" ]]; then
	say "minio: $PITR_MINIO_BIN"
elif minio_path="$(command -v minio)"; then
	say "minio: $minio_path"
elif [[ -x "$gobin/minio" ]]; then
	say "minio: $gobin/minio"
else
	say "installing minio $minio_version to $gobin (go install, takes ~6 minutes)"
	go install "github.com/minio/minio@$minio_version"
fi

# s2d decodes S2 objects by hand (FORMAT.md); the same klauspost/compress
# version as go.mod's.
s2_version="$(go list -m -f '{{.Version}}' github.com/klauspost/compress)"
if [[ -x "$gobin/s2d" ]]; then
	say "s2d: $gobin/s2d"
else
	say "installing s2d $s2_version to $gobin (go install)"
	go install "github.com/klauspost/compress/s2/cmd/s2d@$s2_version"
fi
export PATH="$PATH:$gobin"

say "gofmt -l ."
unformatted="$(gofmt -l .)"
if [[ -n "$unformatted" ]]; then
	printf '%s\n' "$unformatted"
	say "FAIL: files above need gofmt -w"
	exit 1
fi

say "go vet ./..."
go vet ./...
say "go vet -tags integration ./..."
go vet -tags integration ./...

golangci_version=2.15.0
golangci="$gobin/golangci-lint"
if [[ -x "$golangci" && "$("$golangci" version --short 2>/dev/null)" == "$golangci_version" ]]; then
	say "golangci-lint $golangci_version: $golangci"
else
	say "installing golangci-lint v$golangci_version to $gobin (go install, takes ~2 minutes)"
	go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@v$golangci_version"
fi
# .golangci.yml sets run.build-tags: [integration], a superset of the
# default build (no file is //go:build !integration).
say "golangci-lint run ./... (depguard layers, tags: integration)"
"$golangci" run ./...

say "go test -tags integration ./... (PITR_TEST_REQUIRE=1)"
PITR_TEST_REQUIRE=1 go test -tags integration -count=1 -timeout 20m ./...
say "ok"
