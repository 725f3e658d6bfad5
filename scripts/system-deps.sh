#!/usr/bin/env bash
# Installs the Debian packages the test suite and benchmarks use (PostgreSQL
# server for the readiness/orders tests, wrk for load). Idempotent: does
# nothing when they are already there.
set -euo pipefail

# Go >= 1.26 builds the local Kubernetes control plane (tests/cluster). Debian's
# golang-go is far older (1.19 on bookworm), so when go is missing or too old, fetch
# the official toolchain from the Go module proxy (module golang.org/toolchain).
GO_VERSION=${GO_VERSION:-1.26.8}
GO_ROOT=${GO_ROOT:-/usr/local/go}
go_ok() { command -v go >/dev/null 2>&1 && go env GOVERSION 2>/dev/null | grep -qE '^go1\.(2[6-9]|[3-9][0-9])'; }
if ! go_ok; then
  arch=$(uname -m); case "$arch" in x86_64) arch=amd64;; aarch64) arch=arm64;; esac
  mod="v0.0.1-go${GO_VERSION}.linux-${arch}"
  echo ">> installing Go ${GO_VERSION} from proxy.golang.org into ${GO_ROOT} (~70 MB)"
  tmp=$(mktemp -d)
  python3 - "$mod" "$tmp" <<'PY'
import sys, urllib.request, zipfile
mod, tmp = sys.argv[1], sys.argv[2]
url = f"https://proxy.golang.org/golang.org/toolchain/@v/{mod}.zip"
urllib.request.urlretrieve(url, f"{tmp}/go.zip")
zipfile.ZipFile(f"{tmp}/go.zip").extractall(f"{tmp}/x")
PY
  rm -rf "$GO_ROOT"; mkdir -p "$(dirname "$GO_ROOT")"
  mv "$tmp/x/golang.org/toolchain@${mod}" "$GO_ROOT"; rm -rf "$tmp"
  chmod +x "$GO_ROOT"/bin/* "$GO_ROOT"/pkg/tool/*/*  # zip extraction drops the exec bits
  if [ -w /usr/local/bin ]; then ln -sf "$GO_ROOT/bin/go" /usr/local/bin/go; fi
  echo ">> $("$GO_ROOT/bin/go" version)"
fi
need=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
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
