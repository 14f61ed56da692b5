#!/usr/bin/env bash
# Compares a library with its ABI baseline (an abidw XML file) using libabigail's
# abidiff. Fails on a removed or changed function or variable; passes (and reports)
# additions. abidiff sets its "incompatible" exit bit (8) only for removals: a
# changed struct layout sets just "ABI change" (4), like an addition. So the change
# summary decides whether a change (4) is an addition only.
# Usage: check_abi.sh <baseline.abi> <lib.so> <public-headers-dir>
set -uo pipefail
baseline=$1 lib=$2 headers=$3

if [ ! -s "$baseline" ]; then
  echo "ABI FAIL: no baseline $baseline (make one with tools/abi-baseline.sh)"
  exit 1
fi
# The baseline already holds only the public types (abidw --headers-dir; private
# structs are opaque there). No header filter here: abidiff's private-type filter
# also hides a public struct's change when the member's new type comes from a system
# header (size_t -> uint32_t). abidw.supp is for abidw only: given to abidiff it
# drops types the XML refers to. `headers` is kept for the message below.
report=$(abidiff --no-corpus-path "$baseline" "$lib" 2>&1)
rc=$?
[ -n "$report" ] && echo "$report"

# Exit bits: 1 error, 2 usage error, 4 ABI change, 8 incompatible ABI change.
if (( rc & 3 )); then
  echo "ABI FAIL: abidiff could not compare (exit $rc)"
  exit 1
fi
if (( rc & 8 )); then
  echo "ABI FAIL: incompatible change (a function or variable was removed)"
  exit 1
fi
if (( rc & 4 )); then
  # "Functions changes summary: 0 Removed, 1 Changed (2 filtered out), 3 Added functions"
  harmful=$(grep -E 'changes summary:' <<<"$report" | grep -E '(^|[^0-9])[1-9][0-9]* (Removed|Changed)' || true)
  other=$(grep -E 'SONAME changed|architecture changed' <<<"$report" || true)
  if [ -n "$harmful$other" ]; then
    echo "$harmful$other"
    echo "ABI FAIL: changed interfaces (public headers: $headers)"
    exit 1
  fi
  echo "ABI OK: additions only (compatible; tools/abi-baseline.sh records them in the baseline)"
  exit 0
fi
echo "ABI OK: no change"
