#!/usr/bin/env bash
# Shows that check_abi.sh catches what it must: a baseline of the first fixture
# library (the unchanged one), then each variant against it with the verdict it must
# get: additions and changes behind an opaque handle pass; a removed function, a
# changed struct layout and a changed member type fail.
# Usage: check_abi_selftest.sh <dir of check_abi.sh> <fixture headers> <work dir>
#        pass:<unchanged lib> {pass|removed|changed}:<variant lib>...
set -uo pipefail
here=$1 headers=$2 work=$3
shift 3
base=${1#*:}
baseline=$work/fixture.abi
abidw --headers-dir "$headers" --drop-private-types --no-corpus-path --out-file "$baseline" "$base" || exit 1

failed=0
for arg in "$@"; do
  want=${arg%%:*} lib=${arg#*:}
  bash "$here/check_abi.sh" "$baseline" "$lib" "$headers" >"$work/out.txt" 2>&1
  rc=$?
  verdict=$(tail -n 1 "$work/out.txt")
  case "$rc:$verdict" in
    "0:ABI OK"*) got=pass ;;
    "1:ABI FAIL: incompatible change"*) got=removed ;;
    "1:ABI FAIL: changed interfaces"*) got=changed ;;
    *) got="unexpected ($rc: $verdict)" ;;
  esac
  if [ "$got" != "$want" ]; then
    echo "WRONG: $(basename "$lib") should give '$want' but gave '$got':"
    cat "$work/out.txt"
    failed=1
  else
    echo "ok: $(basename "$lib") -> $got ($(tail -n 1 "$work/out.txt"))"
  fi
done
exit $failed
