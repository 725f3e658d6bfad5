#!/usr/bin/env bash
# Installs the Debian packages the test suite and benchmarks use (PostgreSQL
# server for the readiness/orders tests, wrk for load). Idempotent: does
# nothing when they are already there.
set -euo pipefail
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v go >/dev/null 2>&1 || need+=(golang-go)
[ ${#need[@]} -eq 0 ] && exit 0
echo ">> installing system packages: ${need[*]}"
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "!! please install as root: apt-get install -y ${need[*]}" >&2; exit 1
  fi
else SUDO=""; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The package starts a system cluster; the tests run their own throwaway server.
$SUDO service postgresql stop >/dev/null 2>&1 || true
echo ">> system packages ready"
