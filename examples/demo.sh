#!/usr/bin/env bash
# The guided tour on the embedded default: a local-directory repository and a
# scratch PostgreSQL 15 cluster that archives through pitr. Installs
# PostgreSQL 15 from Debian's packages if it is missing (needs root then).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ ! -x /usr/lib/postgresql/15/bin/initdb ]] && ! command -v pg_ctl >/dev/null; then
	echo "==> installing postgresql-15 (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq postgresql-15 >/dev/null
fi
mkdir -p bin
go build -o bin/pitr ./cmd/pitr
exec bin/pitr demo "$@"
