#!/usr/bin/env bash
# Runs PROGRAM against an engine that libshmrepl auto-starts on a private socket (a fresh
# temp folder in $SHMREPL_SOCKET), checks that its stdout has the line EXPECTED, then
# stops that engine with `SHMREPL_CLI --socket ... shutdown`.
#   usage: run_with_private_engine.sh SHMREPL_CLI EXPECTED PROGRAM [ARGS...]
# EXPECT_ENGINE=PATH: also check that the auto-started engine runs that file.
set -uo pipefail
cli=$1 expected=$2
shift 2
dir=$(mktemp -d /tmp/shmrepl-run.XXXXXX) || exit 1
export SHMREPL_SOCKET=$dir/engine.sock
unset PYTHONUNBUFFERED
fail=0
stop_engine() {
  if [ -S "$SHMREPL_SOCKET" ]; then
    "$cli" --socket "$SHMREPL_SOCKET" shutdown || { echo "FAIL: shutdown failed"; fail=1; }
  fi
}
trap 'stop_engine; rm -rf "$dir"' EXIT

"$@" >"$dir/out" 2>"$dir/err"
rc=$?
echo "--- $* exited $rc; stdout:"; cat "$dir/out"
echo "--- stderr:"; cat "$dir/err"
[ $rc -eq 0 ] || { echo "FAIL: exit code $rc"; fail=1; }
grep -qxF -- "$expected" "$dir/out" || { echo "FAIL: no line '$expected' on stdout"; fail=1; }
[ -S "$SHMREPL_SOCKET" ] || { echo "FAIL: no engine was started at $SHMREPL_SOCKET"; fail=1; }
if [ -n "${EXPECT_ENGINE:-}" ]; then
  pid=$(sed -n 's/^shmrepl-engine\[\([0-9]*\)\]: listening on .*/\1/p' "$SHMREPL_SOCKET.log" | tail -n 1)
  exe=$(readlink "/proc/${pid:-0}/exe")
  want=$(readlink -f "$EXPECT_ENGINE")
  [ "$exe" = "$want" ] || { echo "FAIL: the engine (pid '${pid}') runs '$exe', not $want"; fail=1; }
fi
stop_engine
# The engine removes its socket just after it closed the connection shutdown waits for.
for _ in $(seq 100); do [ -e "$SHMREPL_SOCKET" ] || break; sleep 0.1; done
[ ! -e "$SHMREPL_SOCKET" ] || { echo "FAIL: the socket is still there 10 s after shutdown"; fail=1; }
trap 'rm -rf "$dir"' EXIT
[ $fail -eq 0 ] && echo "--- ok"
exit $fail
