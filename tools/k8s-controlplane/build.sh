#!/usr/bin/env bash
# Builds the test Kubernetes control plane (kube-apiserver and etcd) from the Go module proxy into a
# per-machine cache outside the checkout, once per version; later runs find it and do nothing.
#
#   tools/k8s-controlplane/build.sh              build if missing, then print nothing more
#   tools/k8s-controlplane/build.sh --bin-dir    print the bin directory (built or not) and exit
#   tools/k8s-controlplane/build.sh --check      exit 0 if both binaries are in the cache, 1 if not
#
# Cache: ${WSFLEET_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wsfleet/k8s}/<version>/bin/
# where <version> is "kube-<k8s.io/kubernetes version>_etcd-<etcd version>" read from the go.mod
# files beside this script. Exit status: 0 built or cached, 2 Go missing or too old, 1 build failed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
go_min="1.26"

module_version() { # module_version <go.mod> <module path>
	awk -v m="$2" '($1 == "require" && $2 == m) || ($1 == m && $2 ~ /^v/) { print ($1 == "require" ? $3 : $2); exit }' "$1"
}

kube_version="$(module_version "$here/kube-apiserver/go.mod" k8s.io/kubernetes)"
etcd_version="$(module_version "$here/etcd/go.mod" go.etcd.io/etcd/server/v3)"
if [[ -z "$kube_version" || -z "$etcd_version" ]]; then
	echo "build.sh: cannot read the k8s.io/kubernetes or etcd version from the go.mod files in $here." >&2
	exit 1
fi
cache_root="${WSFLEET_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wsfleet/k8s}"
version_dir="$cache_root/kube-${kube_version}_etcd-${etcd_version}"
bin_dir="$version_dir/bin"

have_binaries() { [[ -x "$bin_dir/kube-apiserver" && -x "$bin_dir/etcd" ]]; }

case "${1:-}" in
--bin-dir)
	echo "$bin_dir"
	exit 0
	;;
--check)
	have_binaries
	exit
	;;
"") ;;
*)
	echo "usage: $0 [--bin-dir | --check]" >&2
	exit 1
	;;
esac

if have_binaries; then
	exit 0
fi

if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
	PATH="/usr/local/go/bin:$PATH" # the usual place of an official Go, when PATH lacks it
fi
if ! command -v go >/dev/null 2>&1; then
	echo "Go $go_min or newer is not installed, so kube-apiserver and etcd for the tests in tests/k8s cannot be built: install Go (https://go.dev/doc/install) and rerun." >&2
	exit 2
fi
go_version="$(GOTOOLCHAIN=local go env GOVERSION 2>/dev/null || true)" # e.g. go1.26.8
if ! printf '%s\n%s\n' "go$go_min" "${go_version:-go0}" | sort -V -C; then
	echo "Go $go_min or newer is needed to build kube-apiserver $kube_version and etcd $etcd_version, but '$(command -v go)' is ${go_version:-unknown}: install a newer Go and rerun." >&2
	exit 2
fi

mkdir -p "$version_dir"
# One build at a time per version (make and a pytest run may both ask for it).
exec 9>"$version_dir/.lock"
if command -v flock >/dev/null 2>&1; then
	flock 9
fi
if have_binaries; then
	exit 0
fi
mkdir -p "$bin_dir"

export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0
export GOFLAGS="-trimpath -buildvcs=false -mod=readonly"

build() { # build <name> <module dir> <extra ldflags>
	local name="$1" dir="$2" ldflags="-s -w ${3:-}" start log tmp
	start=$(date +%s)
	log="$version_dir/build-$name.log"
	tmp="$bin_dir/.$name.tmp.$$"
	echo "Building $name for the k8s tests into $bin_dir (first time on this machine; several minutes, log: $log)" >&2
	if ! (cd "$dir" && nice -n 10 go build -ldflags="$ldflags" -o "$tmp" .) >"$log" 2>&1; then
		rm -f "$tmp"
		tail -n 20 "$log" >&2
		echo "Building $name failed (full log: $log)." >&2
		exit 1
	fi
	mv -f "$tmp" "$bin_dir/$name"
	echo "Built $name in $(($(date +%s) - start)) s." >&2
}

kube_minor="${kube_version#v1.}"
kube_minor="${kube_minor%%.*}"
build etcd "$here/etcd"
build kube-apiserver "$here/kube-apiserver" "\
-X k8s.io/component-base/version.gitVersion=$kube_version \
-X k8s.io/component-base/version.gitMajor=1 \
-X k8s.io/component-base/version.gitMinor=$kube_minor \
-X k8s.io/component-base/version.gitTreeState=clean"
