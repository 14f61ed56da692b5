#!/usr/bin/env bash
# Checks a shared library's dynamic symbol table: every symbol it defines must be
# named <prefix>* and carry one of the version nodes <versions> (abi/shmrepl.map), so
# nothing internal (C++ runtime, Boost, FlatBuffers, our own C++ code) leaks into
# the ABI and nothing is exported without a version.
# Usage: check_symbols.sh <lib.so> <prefix> <version>[,<version>...]
set -euo pipefail
lib=$1 prefix=$2
IFS=, read -r -a versions <<<"$3"
is_version() { local v; for v in "${versions[@]}"; do [ "$1" = "$v" ] && return 0; done; return 1; }

# nm -D prints "<addr> <type> <name>@@<version>" (@@: the default version of a
# definition; "@" would be a hidden, older one). The version node itself shows up as
# an absolute symbol named after it.
listing=$(nm -D --defined-only "$lib")
count=0 bad=0
while read -r _addr type name; do
  [ -n "${name:-}" ] || continue
  if [ "$type" = "A" ] && is_version "$name"; then continue; fi
  sym=${name%%@*}
  ver=""
  case $name in *@*) ver=${name##*@} ;; esac
  count=$((count + 1))
  if [[ $sym != "$prefix"* ]]; then
    echo "exported symbol without the $prefix prefix: $name"
    bad=$((bad + 1))
  elif ! is_version "$ver" || [[ $name != *"@@$ver" ]]; then
    echo "exported symbol not in version $3: $name"
    bad=$((bad + 1))
  fi
done <<<"$listing"

if [ "$count" -eq 0 ]; then
  echo "FAIL: $lib exports no symbol at all"
  exit 1
fi
if [ "$bad" -ne 0 ]; then
  echo "FAIL: $bad of $count exported symbols of $lib break the rules"
  exit 1
fi
echo "OK: $count exported symbols, all $prefix* with a version of $3"
