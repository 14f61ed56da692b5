#!/usr/bin/env bash
# Installs the build into a temporary prefix and builds examples/c/hello.c against the
# installed package twice, with pkg-config and with find_package(shmrepl); each program
# must run through an engine that the installed library finds and starts by itself.
#   usage: install_test.sh BUILD_DIR SOURCE_DIR C_COMPILER GENERATOR MAKE_PROGRAM [CFLAGS]
set -uo pipefail
build=$1 src=$2 cc=$3 generator=$4 make_program=$5 cflags=${6:-}
tmp=$(mktemp -d /tmp/shmrepl-install.XXXXXX) || exit 1
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
run=$src/cmake/run_with_private_engine.sh
hello=$src/examples/c/hello.c
unset SHMREPL_ENGINE SHMREPL_LIBRARY LD_LIBRARY_PATH PYTHONUNBUFFERED
fail() { echo "FAIL: $*"; exit 1; }
step() { echo; echo "=== $*"; }

step "cmake --install $build --prefix $prefix"
cmake --install "$build" --prefix "$prefix" || fail "cmake --install"

step "what is installed"
for f in lib/libshmrepl.a include/shmrepl/shmrepl.h bin/shmrepl bin/shmrepl-engine \
         lib/pkgconfig/shmrepl.pc lib/cmake/shmrepl/shmreplConfig.cmake \
         lib/cmake/shmrepl/shmreplConfigVersion.cmake lib/cmake/shmrepl/shmreplTargets.cmake \
         share/doc/shmrepl/LICENSE; do
  [ -e "$prefix/$f" ] || fail "$f is not installed"
done
soname=$(readelf -d "$prefix/lib/libshmrepl.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[ "$soname" = libshmrepl.so.0 ] || fail "SONAME is '$soname', not libshmrepl.so.0"
[ -f "$prefix/lib/$soname" ] || fail "$soname is not installed"
grep -q 'MIT License' "$prefix/share/doc/shmrepl/LICENSE" || fail "LICENSE is not the MIT licence"
# The installed CLI is linked statically (its start-up is part of every `shmrepl run`):
# it needs no libshmrepl.so and runs from the prefix alone.
"$prefix/bin/shmrepl" --version || fail "the installed shmrepl does not run"
cli_libs=$(ldd "$prefix/bin/shmrepl")
[[ $cli_libs != *libshmrepl* ]] || fail "the installed shmrepl loads libshmrepl.so: $cli_libs"
# ...and starts the engine installed next to it.
out=$(SHMREPL_SOCKET=$tmp/cli.sock "$prefix/bin/shmrepl" run -c 'print(6 * 7)') || fail "the installed shmrepl run failed"
[ "$out" = 42 ] || fail "the installed shmrepl run printed '$out'"
status=$(SHMREPL_SOCKET=$tmp/cli.sock "$prefix/bin/shmrepl" engine status) || fail "shmrepl engine status"
[[ $status == *"executable: $prefix/bin/shmrepl-engine"* ]] || fail "the installed shmrepl started another engine: $status"
SHMREPL_SOCKET=$tmp/cli.sock "$prefix/bin/shmrepl" engine stop || fail "shmrepl engine stop"

step "pkg-config"
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
pkg-config --modversion shmrepl || fail "pkg-config does not know shmrepl"
grep -q '^License: MIT$' "$PKG_CONFIG_PATH/shmrepl.pc" || fail "shmrepl.pc does not say License: MIT"
pc_flags=$(pkg-config --cflags --libs shmrepl) || fail "pkg-config --cflags --libs"
echo "flags: $pc_flags"
[[ " $pc_flags " == *" -lshmrepl "* ]] || fail "pkg-config --libs lacks -lshmrepl"
libdir=$(pkg-config --variable=libdir shmrepl)
# shellcheck disable=SC2086 # word splitting of the flags is meant
"$cc" $cflags -o "$tmp/hello_pc" "$hello" $pc_flags -Wl,-rpath,"$libdir" || fail "cc with pkg-config"
EXPECT_ENGINE=$prefix/bin/shmrepl-engine "$run" "$prefix/bin/shmrepl" 42 "$tmp/hello_pc" ||
  fail "the pkg-config build did not run"

step "find_package(shmrepl)"
cmake -S "$src/tests/install/consumer" -B "$tmp/consumer" -G "$generator" \
  -DCMAKE_MAKE_PROGRAM="$make_program" -DCMAKE_C_COMPILER="$cc" -DCMAKE_C_FLAGS="$cflags" \
  -DCMAKE_EXE_LINKER_FLAGS="$cflags" -DCMAKE_PREFIX_PATH="$prefix" -DHELLO_C="$hello" ||
  fail "configuring a project with find_package(shmrepl)"
cmake --build "$tmp/consumer" || fail "building against shmrepl::shmrepl"
# (ldd's output is captured first: `ldd | grep -q` under pipefail fails when grep exits early.)
libs=$(ldd "$tmp/consumer/hello_shared")
[[ $libs == *"$prefix/lib/libshmrepl.so.0"* ]] || fail "hello_shared does not load the installed library"
libs=$(ldd "$tmp/consumer/hello_static")
[[ $libs != *libshmrepl* ]] || fail "hello_static loads libshmrepl.so"
# The shared library finds the engine next to itself (../bin); a static program has no
# library folder, so it is told where the engine is.
EXPECT_ENGINE=$prefix/bin/shmrepl-engine "$run" "$prefix/bin/shmrepl" 42 "$tmp/consumer/hello_shared" ||
  fail "hello_shared did not run"
SHMREPL_ENGINE=$prefix/bin/shmrepl-engine EXPECT_ENGINE=$prefix/bin/shmrepl-engine \
  "$run" "$prefix/bin/shmrepl" 42 "$tmp/consumer/hello_static" || fail "hello_static did not run"
echo; echo "install test: ok"
