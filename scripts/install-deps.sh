#!/usr/bin/env bash
# Installs the Debian packages berth needs and tests use, only those missing.
#   busybox-static   the local busybox image and the test bundles
#   docker-cli       the client the tests drive (docker.io's client on this kind)
#   docker-registry  a loopback registry for pull tests
#   docker-compose   checks docker-compose.yml
#   runc             the reference runtime the benchmarks compare with
#   iptables, iproute2  networking
set -euo pipefail
want=(busybox-static docker-registry docker-compose runc iptables iproute2)
command -v docker >/dev/null 2>&1 || want+=(docker.io)
# the benchmarks compare with a Docker engine (dockerd from docker.io)
[ "${1:-}" = --bench ] && ! command -v dockerd >/dev/null 2>&1 && want+=(docker.io)
missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: need root to install: ${missing[*]}" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# wait for another install in progress (parallel test runs) rather than fail
lock=(-o DPkg::Lock::Timeout=600)
apt-get "${lock[@]}" update -qq
apt-get "${lock[@]}" install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
