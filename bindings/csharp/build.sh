#!/bin/sh
# Builds the C# binding into OUT (default: bindings/csharp/out): Shmrepl.dll (+ its dllmap
# config), Tests.dll, BenchReader.exe and the example Example.exe. Needs Mono's mcs and
# NUnit 2.6 (Debian: mono-mcs libnunit-cil-dev).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/out}
mcs=${MCS:-mcs}
nunit=${NUNIT_FRAMEWORK:-}
if [ -z "$nunit" ]; then
  for f in /usr/lib/cli/nunit.framework-2.6*/nunit.framework.dll; do
    [ -f "$f" ] && nunit=$f
  done
fi
[ -n "$nunit" ] || { echo "build.sh: nunit.framework.dll (NUnit 2.6) not found; apt-get install libnunit-cil-dev or set NUNIT_FRAMEWORK" >&2; exit 1; }
mkdir -p "$out"
flags="-unsafe -langversion:7.2 -nologo -warnaserror+ -debug"
"$mcs" $flags -target:library -out:"$out/Shmrepl.dll" "$here"/src/*.cs
cp "$here/Shmrepl.dll.config" "$out/Shmrepl.dll.config"
"$mcs" $flags -target:library -out:"$out/Tests.dll" -r:"$out/Shmrepl.dll" -r:"$nunit" -r:System.Core "$here"/tests/*.cs
"$mcs" $flags -target:exe -out:"$out/BenchReader.exe" -r:"$out/Shmrepl.dll" "$here"/bench/BenchReader.cs
"$mcs" $flags -target:exe -out:"$out/Example.exe" -r:"$out/Shmrepl.dll" "$here"/../../examples/csharp/Example.cs
cp "$nunit" "$out/"
