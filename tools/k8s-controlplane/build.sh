#!/usr/bin/env bash
# Builds the Kubernetes tools of the tests (kube-apiserver, etcd, kube-controller-manager,
# kube-scheduler, kubectl and helm) from the Go module proxy into a per-machine cache outside the
# checkout, once per version; later runs find them and do nothing. Each missing binary is built
# alone, so adding a tool never rebuilds the ones already cached.
#
#   tools/k8s-controlplane/build.sh              build what is missing, then print nothing more
#   tools/k8s-controlplane/build.sh --bin-dir    print the Kubernetes bin directory (built or not)
#   tools/k8s-controlplane/build.sh --path NAME  print the path of one tool (built or not)
#   tools/k8s-controlplane/build.sh --check      exit 0 if every tool is in the cache, 1 if not
#
# Cache: ${WSFLEET_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wsfleet/k8s}/
#   kube-<k8s.io/kubernetes version>_etcd-<etcd version>/bin/   everything but helm
#   helm-<helm.sh/helm/v4 version>/bin/helm
# with the versions read from the go.mod files beside this script. Exit status: 0 built or cached,
# 2 Go missing or too old, 1 build failed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
go_min="1.26"

module_version() { # module_version <go.mod> <module path>
	awk -v m="$2" '($1 == "require" && $2 == m) || ($1 == m && $2 ~ /^v/) { print ($1 == "require" ? $3 : $2); exit }' "$1"
}

kube_version="$(module_version "$here/kube-apiserver/go.mod" k8s.io/kubernetes)"
etcd_version="$(module_version "$here/etcd/go.mod" go.etcd.io/etcd/server/v3)"
helm_version="$(module_version "$here/helm/go.mod" helm.sh/helm/v4)"
if [[ -z "$kube_version" || -z "$etcd_version" || -z "$helm_version" ]]; then
	echo "build.sh: cannot read the k8s.io/kubernetes, etcd or helm version from the go.mod files in $here." >&2
	exit 1
fi
cache_root="${WSFLEET_K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wsfleet/k8s}"
version_dir="$cache_root/kube-${kube_version}_etcd-${etcd_version}"
bin_dir="$version_dir/bin"
helm_version_dir="$cache_root/helm-${helm_version}"
kube_tools=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl)

tool_path() { # tool_path <name>
	case "$1" in
	helm) echo "$helm_version_dir/bin/helm" ;;
	etcd | kube-apiserver | kube-controller-manager | kube-scheduler | kubectl) echo "$bin_dir/$1" ;;
	*) return 1 ;;
	esac
}

have_binaries() {
	local name
	for name in "${kube_tools[@]}" helm; do
		[[ -x "$(tool_path "$name")" ]] || return 1
	done
}

case "${1:-}" in
--bin-dir)
	echo "$bin_dir"
	exit 0
	;;
--path)
	if ! tool_path "${2:-}"; then
		echo "build.sh --path: no tool named '${2:-}' (known: ${kube_tools[*]} helm)." >&2
		exit 1
	fi
	exit 0
	;;
--check)
	have_binaries
	exit
	;;
"") ;;
*)
	echo "usage: $0 [--bin-dir | --path NAME | --check]" >&2
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
	echo "Go $go_min or newer is not installed, so the Kubernetes tools of the tests (kube-apiserver, etcd, kube-controller-manager, kube-scheduler, kubectl, helm) cannot be built: install Go (https://go.dev/doc/install) and rerun." >&2
	exit 2
fi
go_version="$(GOTOOLCHAIN=local go env GOVERSION 2>/dev/null || true)" # e.g. go1.26.8
if ! printf '%s\n%s\n' "go$go_min" "${go_version:-go0}" | sort -V -C; then
	echo "Go $go_min or newer is needed to build Kubernetes $kube_version, etcd $etcd_version and helm $helm_version for the tests, but '$(command -v go)' is ${go_version:-unknown}: install a newer Go and rerun." >&2
	exit 2
fi

export GOTOOLCHAIN=local GOWORK=off CGO_ENABLED=0
export GOFLAGS="-trimpath -buildvcs=false -mod=readonly"

build() { # build <name> <module dir> <package> <extra ldflags>
	local name="$1" dir="$2" package="$3" ldflags="-s -w ${4:-}" out start log tmp
	out="$(tool_path "$name")"
	if [[ -x "$out" ]]; then
		return 0
	fi
	mkdir -p "$(dirname "$out")"
	start=$(date +%s)
	log="$(dirname "$(dirname "$out")")/build-$name.log"
	tmp="$(dirname "$out")/.$name.tmp.$$"
	echo "Building $name for the tests into $(dirname "$out") (first time on this machine; minutes, log: $log)" >&2
	if ! (cd "$dir" && nice -n 10 go build -ldflags="$ldflags" -o "$tmp" "$package") >"$log" 2>&1; then
		rm -f "$tmp"
		tail -n 20 "$log" >&2
		echo "Building $name failed (full log: $log)." >&2
		exit 1
	fi
	mv -f "$tmp" "$out"
	echo "Built $name in $(($(date +%s) - start)) s." >&2
}

# One build at a time per version directory (make and a pytest run may both ask for it).
lock() { # lock <version dir>: holds the lock on fd 9 until the next call or the end
	mkdir -p "$1"
	exec 9>"$1/.lock"
	if command -v flock >/dev/null 2>&1; then
		flock 9
	fi
}

kube_minor="${kube_version#v1.}"
kube_minor="${kube_minor%%.*}"
kube_ldflags=""
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	kube_ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$kube_minor -X $pkg.gitTreeState=clean"
done

lock "$version_dir"
build etcd "$here/etcd" .
build kube-apiserver "$here/kube-apiserver" . "$kube_ldflags"
# The wrapper's go.mod lists these as `tool`s, so its go.sum covers them.
for name in kube-controller-manager kube-scheduler kubectl; do
	build "$name" "$here/kube-apiserver" "k8s.io/kubernetes/cmd/$name" "$kube_ldflags"
done

lock "$helm_version_dir"
build helm "$here/helm" helm.sh/helm/v4/cmd/helm "\
-X helm.sh/helm/v4/internal/version.version=$helm_version \
-X helm.sh/helm/v4/internal/version.metadata= \
-X helm.sh/helm/v4/internal/version.gitTreeState=clean"
