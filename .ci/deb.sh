#!/usr/bin/env bash
# Builds the Debian package: dist/pitr_<version>_<arch>.deb (or into the
# directory given as the first argument), and prints its path last.
#
#   bash .ci/deb.sh                  # dist/pitr_0.0.0~git20261201155228.6ad0199_amd64.deb
#   GOARCH=arm64 bash .ci/deb.sh     # cross-built (pure Go, CGO_ENABLED=0)
#   bash .ci/deb.sh --print-version  # only the version it would use
#
# The version comes from `git describe --tags` (tag v1.2.3 -> 1.2.3, three
# commits later -> 1.2.3+3.g<sha>, v1.3.0-rc1 -> 1.3.0~rc1), or without a tag
# 0.0.0~git<commit time, UTC, YYYYMMDDHHMMSS>.<sha>, so later commits sort
# later for apt; +dirty marks a tree with uncommitted changes. PITR_VERSION
# overrides it. The package layout is .ci/packaging/nfpm.yaml; nfpm is run with
# `go run` at a pinned version (module and build cache, no go.mod entry).
set -euo pipefail
umask 022

cd "$(dirname "$0")/.."

nfpm_version=v2.45.2

say() { printf '==> %s\n' "$*" >&2; }

# version prints the package version for the checkout (see above).
version() {
	if [[ -n "${PITR_VERSION:-}" ]]; then
		printf '%s\n' "$PITR_VERSION"
		return
	fi
	if ! git rev-parse --git-dir >/dev/null 2>&1; then
		echo "deb.sh: not a git checkout: set PITR_VERSION" >&2
		return 1
	fi
	local d v dirty=""
	git update-index -q --refresh >/dev/null 2>&1 || true # a touched file is not a change
	if ! git diff-index --quiet HEAD -- 2>/dev/null; then
		dirty="+dirty"
	fi
	if d="$(git describe --tags --long --match 'v[0-9]*' 2>/dev/null)"; then
		# v1.3.0-rc1-4-gabc1234: tag, commits since, g + abbreviated sha.
		local sha="${d##*-}" rest="${d%-*}"
		local n="${rest##*-}" tag="${rest%-*}"
		v="${tag#v}"
		v="${v//-/\~}" # a pre-release sorts before its release
		if [[ "$n" != 0 ]]; then
			v="$v+$n.$sha"
		fi
	else
		local when sha
		when="$(TZ=UTC git log -1 --format=%cd --date=format-local:%Y%m%d%H%M%S)"
		sha="$(git rev-parse --short=7 HEAD)"
		v="0.0.0~git$when.$sha"
	fi
	printf '%s%s\n' "$v" "$dirty"
}

# debian_arch maps a GOARCH to Debian's architecture name.
debian_arch() {
	case "$1" in
	amd64 | arm64 | riscv64 | s390x | loong64) echo "$1" ;;
	386) echo i386 ;;
	arm) if [[ "$(go env GOARM)" == 7* ]]; then echo armhf; else echo armel; fi ;;
	ppc64le) echo ppc64el ;;
	mips64le) echo mips64el ;;
	mipsle) echo mipsel ;;
	*)
		echo "deb.sh: no Debian architecture for GOARCH=$1" >&2
		return 1
		;;
	esac
}

if [[ "${1:-}" == "--print-version" ]]; then
	version
	exit
fi

out="${1:-dist}"
ver="$(version)"
goarch="$(go env GOARCH)"
arch="$(debian_arch "$goarch")"
mkdir -p "$out"
deb="$(cd "$out" && pwd)/pitr_${ver}_${arch}.deb"

stage="$(mktemp -d "${TMPDIR:-/tmp}/pitr-deb-XXXXXX")"
trap 'rm -rf "$stage"' EXIT

say "go build pitr $ver ($goarch)"
CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "-s -w -X main.version=$ver" -o "$stage/pitr" ./cmd/pitr

# The example unit runs /usr/local/bin/pitr (a hand install); the package's is /usr/bin/pitr.
sed -e 's|/usr/local/bin/pitr|/usr/bin/pitr|g' \
	-e '1s|.*|# /usr/lib/systemd/system/pitr-daemon.service, from the pitr package (examples/systemd)|' \
	examples/systemd/pitr-daemon.service >"$stage/pitr-daemon.service"

# /usr/share/doc/pitr: README.md, docs/ and examples/ as committed (with
# their working-tree contents), the copyright file and the Go modules
# compiled into the binary.
mkdir "$stage/doc"
if git rev-parse --git-dir >/dev/null 2>&1; then
	git ls-files -z -- README.md docs examples | tar --null -T - -cf - | tar -xf - -C "$stage/doc"
else
	cp -R README.md docs examples "$stage/doc/"
fi
{
	cat .ci/packaging/copyright # ends in a Comment: field the module lines continue
	go version -m "$stage/pitr" | awk '$1 == "dep" { printf " %s %s\n", $2, $3 }'
} >"$stage/doc/copyright"

# Reproducible: file times in the package are the commit's.
if [[ -z "${SOURCE_DATE_EPOCH:-}" ]] && git rev-parse --git-dir >/dev/null 2>&1; then
	SOURCE_DATE_EPOCH="$(git log -1 --format=%ct)"
	export SOURCE_DATE_EPOCH
fi

say "nfpm $nfpm_version: $deb"
# nfpm runs here: built for this machine, whatever GOOS/GOARCH pitr was for.
PITR_DEB_STAGE="$stage" PITR_DEB_VERSION="$ver" PITR_DEB_ARCH="$arch" \
	GOOS="$(go env GOHOSTOS)" GOARCH="$(go env GOHOSTARCH)" go run "github.com/goreleaser/nfpm/v2/cmd/nfpm@$nfpm_version" package \
	--config .ci/packaging/nfpm.yaml --packager deb --target "$deb" >&2
printf '%s\n' "$deb"
