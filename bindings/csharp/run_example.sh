#!/bin/sh
# ctest example_csharp: runs Example.exe against an engine that libshmrepl auto-starts on
# a private socket, checks its output, then stops that engine.
#   usage: run_example.sh SHMREPL_CLI MONO EXAMPLE_EXE
set -u
cli=$1 mono=$2 exe=$3
dir=$(mktemp -d /tmp/shmrepl-cs-example.XXXXXX) || exit 1
export SHMREPL_SOCKET="$dir/engine.sock"
trap '[ -S "$SHMREPL_SOCKET" ] && "$cli" --socket "$SHMREPL_SOCKET" shutdown; rm -rf "$dir"' EXIT
fail=0
"$mono" "$exe" >"$dir/out" 2>"$dir/err" || { echo "FAIL: exit code $?"; fail=1; }
cat "$dir/out" "$dir/err"
printf 'hello 0\nhello 1\nhello 2\n[finished: Ok]\n' | cmp -s - "$dir/out" || { echo "FAIL: unexpected output"; fail=1; }
[ -S "$SHMREPL_SOCKET" ] || { echo "FAIL: no engine was started at $SHMREPL_SOCKET"; fail=1; }
"$cli" --socket "$SHMREPL_SOCKET" shutdown || { echo "FAIL: shutdown failed"; fail=1; }
# The engine unlinks its socket just after it closed the connection that shutdown waits on.
i=0
while [ -e "$SHMREPL_SOCKET" ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
[ ! -e "$SHMREPL_SOCKET" ] || { echo "FAIL: the socket is still there after shutdown"; fail=1; }
exit $fail
