#!/usr/bin/env bash
# Installs the Debian packages the tests need (redis-server, chromium, prometheus, nginx, iproute2)
# when they are missing.
# Fails with one clear sentence when it cannot.
set -euo pipefail

need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# a real Prometheus scrapes a node in tests/integration/ops (and promtool checks the chart's rules)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
# tests/k8s makes a service-account signing key for its kube-apiserver with openssl
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# the Kubernetes end-to-end test (tests/k8s_e2e): nginx is the ingress in front of the pods, and
# iproute2's `ip` gives each pod its own network namespace, veth and IP
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx)
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || need+=(iproute2)
if [ -d clients/js ] && ! command -v chromium >/dev/null 2>&1; then
  need+=(chromium)
fi
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "Missing ${need[*]}: install them with your package manager (no apt-get found)." >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "Missing ${need[*]}: run 'apt-get install ${need[*]}' as root." >&2
    exit 1
  fi
fi
echo "Installing ${need[*]} from Debian's packages..."
export DEBIAN_FRONTEND=noninteractive
if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }; then
  echo "Could not install ${need[*]} with apt-get: install them by hand and run again." >&2
  exit 1
fi
