#!/usr/bin/env bash
# Installs the Debian packages shmrepl needs to build and test. Idempotent: does
# nothing (and needs no network) when everything is already there. Run as root.
#   --bench  also what tools/bench/compare compares against and plots with (Jupyter,
#            matplotlib); CI's tests do not need them (compare skips Jupyter without).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git libedit-dev
  libboost-dev libflatbuffers-dev flatbuffers-compiler
  libpython3-dev python3
  libgtest-dev libgmock-dev libbenchmark-dev librapidcheck-dev
  clang libclang-rt-14-dev libfuzzer-14-dev abigail-tools
  # bindings: Go (cgo), C# (Mono, NUnit 2.6)
  golang-go mono-mcs libnunit-cil-dev nunit-console
)
if [ "${1:-}" = "--bench" ]; then
  packages+=(python3-ipykernel python3-jupyter-client python3-matplotlib)
elif [ $# -gt 0 ]; then
  echo "usage: install-deps.sh [--bench]" >&2
  exit 2
fi
# Rust: Debian's toolchain only where none is installed (rustup's cargo is kept).
command -v cargo >/dev/null 2>&1 || packages+=(rustc cargo)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
