#!/usr/bin/env bash
# Configures, builds and runs every test: the plain build, then the sanitizer builds.
# Usage: tools/test.sh [--quick]   (--quick: the plain build only)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
quick=0
[ "${1:-}" = "--quick" ] && quick=1

# Tests and benchmarks pin Python's buffering themselves; do not inherit it.
unset PYTHONUNBUFFERED

run_suite() {  # name build-dir cmake-args...
  local name=$1 dir=$2; shift 2
  echo "=== ${name}: configure + build (${dir})"
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir" -j "$jobs"
  echo "=== ${name}: test"
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" --timeout 600
}

run_suite plain build -DCMAKE_BUILD_TYPE=RelWithDebInfo
[ $quick -eq 1 ] && exit 0
echo "=== all suites passed"
