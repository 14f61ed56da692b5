#!/usr/bin/env bash
# Checks a shared library's dynamic symbol table: every symbol it defines must be
# named <prefix>* and carry the version node <version> (abi/shmrepl.map), so nothing
# internal (C++ runtime, Boost, FlatBuffers, our own C++ code) leaks into the ABI.
# Usage: check_symbols.sh <lib.so> <prefix> <version>
set -euo pipefail
lib=$1 prefix=$2 version=$3

# nm -D prints "<addr> <type> <name>@@<version>" (@@: the default version of a
# definition; "@" would be a hidden, older one). The version node itself shows up as
# an absolute symbol named after it.
listing=$(nm -D --defined-only "$lib")
count=0 bad=0
while read -r _addr type name; do
  [ -n "${name:-}" ] || continue
  if [ "$type" = "A" ] && [ "$name" = "$version" ]; then continue; fi
  sym=${name%%@*}
  ver=""
  case $name in *@*) ver=${name##*@} ;; esac
  count=$((count + 1))
  if [[ $sym != "$prefix"* ]]; then
    echo "exported symbol without the $prefix prefix: $name"
    bad=$((bad + 1))
  elif [ "$ver" != "$version" ] || [[ $name != *"@@$version" ]]; then
    echo "exported symbol not in version $version: $name"
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
echo "OK: $count exported symbols, all $prefix* @@$version"
