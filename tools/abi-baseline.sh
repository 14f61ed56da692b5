#!/usr/bin/env bash
# Regenerates abi/shmrepl.abi, the ABI baseline that the abi_baseline test diffs
# libshmrepl.so against. Run it only for a deliberate ABI change (new functions being
# released, or a new major ABI version) and commit the result with that change; see
# docs/abi.md.
# Usage: tools/abi-baseline.sh [build-dir]   (default: build; configured if missing)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
dir=${1:-build}
out=abi/shmrepl.abi
supp=tests/abi_stability/abidw.supp

[ -f "$dir/CMakeCache.txt" ] || cmake -S . -B "$dir" -G Ninja >/dev/null
# The baseline describes a GCC build with debug info and no sanitizer: the DWARF the
# abi_baseline test compares against.
cache() { sed -n "s/^$1:[A-Z]*=//p" "$dir/CMakeCache.txt"; }
if [ -n "$(cache SHMREPL_SANITIZE)" ]; then
  echo "abi-baseline: $dir is a sanitizer build; use a plain one" >&2
  exit 1
fi
cmake --build "$dir" --target shmrepl
lib=$dir/lib/libshmrepl.so
if ! readelf -S "$lib" | grep -q '\.debug_info'; then
  echo "abi-baseline: $lib has no debug info (build type Debug or RelWithDebInfo)" >&2
  exit 1
fi
if ! readelf -p .comment "$lib" | grep -q 'GCC:' || readelf -p .comment "$lib" | grep -qi clang; then
  echo "abi-baseline: $lib was not built by GCC" >&2
  exit 1
fi

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
abidw --headers-dir "$root/abi/include" --drop-private-types --suppressions "$supp" \
  --no-corpus-path --no-comp-dir-path --out-file "$tmp" "$lib"
# Paths relative to the checkout, so the file does not depend on where it was made.
sed -e "s|'$root/|'|g" "$tmp" >"$out"
echo "abi-baseline: wrote $out ($(wc -c <"$out") bytes, $(grep -c '<elf-symbol ' "$out") symbols)"
bash tests/abi_stability/check_abi.sh "$out" "$lib" "$root/abi/include" | tail -n 1
