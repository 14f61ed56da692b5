#!/usr/bin/env bash
# Records/s of each binding's bench reader against the C reader (shmrepl-bench-reader),
# measured in the same run; see --help.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=$ROOT/build
LIBDIR="" ENGINE="" READER=""
RECORDS=500000
ROUNDS=9
CAPACITY=128M
LIVE=1
LIVE_LINES=1000000
LIVE_ROUNDS=5
ONLY=c,rust,go,csharp,python
JSON=""

usage() {
  cat <<EOF
usage: tools/bench/bindings_bench.sh [options]

Benchmarks the bench readers of the bindings (Rust, Go, C#, Python) against the C reader
(build/bin/shmrepl-bench-reader), all on the same run of a private engine.

full ring:  one execution writes RECORDS lines (print(f"Line {i}: " + "x"*100)) into a
            ring large enough to hold them all and finishes; then every reader reads
            that same ring from its first record, ROUNDS rounds, languages interleaved.
            Reported: records/s (the reader's own attach-to-EOF time), median per
            language, and the ratio to C.
live:       per reader, a fresh execution of a w2-like program (LIVE_LINES prints, the
            engine's default ring) with the reader started right after execute
            returns. Reported: median wall time from execute to reader exit (reader
            start-up included), and the ratio to C (C's time / the reader's: 1.0 means
            the reader is not the bottleneck).
Each reader must report the same records and bytes as C, or the run fails.
A reader whose toolchain or binding is missing is skipped with a note.

options:
  --build DIR          build tree with bin/ and lib/ (default: $ROOT/build)
  --lib DIR            folder of libshmrepl.so (default: BUILD/lib)
  --engine PATH        shmrepl-engine (default: BUILD/bin/shmrepl-engine)
  --reader PATH        the C reader (default: BUILD/bin/shmrepl-bench-reader)
  --records N          lines of the full ring (default $RECORDS)
  --ring-capacity B    its ring's data bytes, suffix K/M/G allowed (default $CAPACITY)
  --rounds N           full-ring rounds (default $ROUNDS)
  --live-lines N       lines of the live program (default $LIVE_LINES: w2 itself)
  --live-rounds N      live rounds (default $LIVE_ROUNDS)
  --no-live            skip the live part
  --only LIST          readers to run, comma-separated from c,rust,go,csharp,python
                       (default: all; c always runs, it is the baseline)
  --json PATH          also write the results as JSON to PATH
  -h, --help           this text

Readers (as bindings-spec says; each gets LD_LIBRARY_PATH, SHMREPL_LIBRARY):
  c       BUILD/bin/shmrepl-bench-reader RING
  rust    bindings/rust: cargo build --release --example bench_reader (run the binary)
  go      bindings/go: go build ./cmd/bench-reader (run the binary)
  csharp  bindings/csharp/build.sh, then mono BenchReader.exe RING
          (or \$SHMREPL_BENCH_CSHARP_EXE: a BenchReader.exe built already)
  python  /usr/bin/python3 bindings/python/bench_reader.py RING
Built readers go to a temporary folder, removed at the end, like the engine's rings.
EOF
}

die() { echo "bindings_bench: $*" >&2; exit 1; }
note() { echo "bindings_bench: $*" >&2; }

bytes_of() {  # 128M -> 134217728
  local v=$1 n m=1
  case $v in
    *[kK]) m=1024; n=${v%?} ;;
    *[mM]) m=$((1024 * 1024)); n=${v%?} ;;
    *[gG]) m=$((1024 * 1024 * 1024)); n=${v%?} ;;
    *) n=$v ;;
  esac
  [[ $n =~ ^[0-9]+$ ]] || die "not a size: $v"
  echo $((n * m))
}

while (($#)); do
  case $1 in
    --build) BUILD=$2; shift 2 ;;
    --lib) LIBDIR=$2; shift 2 ;;
    --engine) ENGINE=$2; shift 2 ;;
    --reader) READER=$2; shift 2 ;;
    --records) RECORDS=$2; shift 2 ;;
    --ring-capacity) CAPACITY=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --live-lines) LIVE_LINES=$2; shift 2 ;;
    --live-rounds) LIVE_ROUNDS=$2; shift 2 ;;
    --no-live) LIVE=0; shift ;;
    --only) ONLY=$2; shift 2 ;;
    --json) JSON=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
for n in "$RECORDS" "$ROUNDS" "$LIVE_LINES" "$LIVE_ROUNDS"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || die "not a positive count: $n"
done
LIBDIR=$(cd "${LIBDIR:-$BUILD/lib}" 2>/dev/null && pwd) || die "no library folder (--lib or --build)"
ENGINE=${ENGINE:-$BUILD/bin/shmrepl-engine}
READER=${READER:-$BUILD/bin/shmrepl-bench-reader}
[[ -f $LIBDIR/libshmrepl.so ]] || die "no libshmrepl.so in $LIBDIR (build it, or --lib DIR)"
[[ -x $ENGINE ]] || die "no engine at $ENGINE (build shmrepl-engine, or --engine PATH)"
[[ -x $READER ]] || die "no C reader at $READER (build shmrepl-bench-reader: cmake -DSHMREPL_BUILD_BENCH=ON, or --reader PATH)"
CAP_BYTES=$(bytes_of "$CAPACITY")
export LD_LIBRARY_PATH=$LIBDIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export SHMREPL_LIBRARY=$LIBDIR/libshmrepl.so
export SHMREPL_ENGINE=$ENGINE
unset PYTHONUNBUFFERED  # the engine's output path must not depend on the caller's env

# ---- room in /dev/shm -----------------------------------------------------------------
# A line is at most ~116 bytes; with the record's framing a frame takes at most 224.
need=$((RECORDS * 224 + 65536))
((CAP_BYTES >= need)) ||
  die "a ring of $CAP_BYTES bytes cannot hold $RECORDS records (about $need bytes): raise --ring-capacity or lower --records"
avail=$(df --output=avail -B1 /dev/shm | tail -1 | tr -d ' ')
want=$((CAP_BYTES + 64 * 1024 * 1024))  # the full ring, plus live rings and slack
if ((avail < want)); then
  die "/dev/shm has $((avail / 1048576)) MiB free; this run needs about $((want / 1048576)) MiB (the full ring of $((CAP_BYTES / 1048576)) MiB plus live rings). Free /dev/shm, or lower --ring-capacity and --records."
fi
note "/dev/shm: $((avail / 1048576)) MiB free, this run needs about $((want / 1048576)) MiB"

WORK=$(mktemp -d /tmp/shmrepl-bindings-bench.XXXXXX)
HELPER_PID="" ENGINE_PID=""
cleanup() {
  if [[ -n $HELPER_PID ]] && kill -0 "$HELPER_PID" 2>/dev/null; then
    [[ -z ${SERVE[1]:-} ]] || { echo quit >&"${SERVE[1]}"; } 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$HELPER_PID" 2>/dev/null || break; sleep 0.1; done
    kill "$HELPER_PID" 2>/dev/null || true
  fi
  # The engine started for this run only: stop it if the helper could not.
  if [[ -n $ENGINE_PID ]] && kill -0 "$ENGINE_PID" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$ENGINE_PID" 2>/dev/null || break; sleep 0.1; done
    kill "$ENGINE_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the readers ----------------------------------------------------------------------
declare -A CMD  # language -> command line (a bash array literal, eval'ed)
LANGS=(c)
CMD[c]="$(printf '%q' "$READER")"
wanted() { [[ ,$ONLY, == *,$1,* ]]; }

if wanted rust; then
  if ! command -v cargo >/dev/null; then note "rust: skipped (no cargo)"
  elif [[ ! -f $ROOT/bindings/rust/examples/bench_reader.rs ]]; then note "rust: skipped (no bindings/rust/examples/bench_reader.rs)"
  else
    note "rust: cargo build --release --example bench_reader"
    if (cd "$ROOT/bindings/rust" && SHMREPL_LIB_DIR=$LIBDIR CARGO_NET_OFFLINE=true \
          cargo build --quiet --release --example bench_reader --target-dir "$WORK/rust") >"$WORK/rust.log" 2>&1 &&
       [[ -x $WORK/rust/release/examples/bench_reader ]]; then
      LANGS+=(rust); CMD[rust]="$(printf '%q' "$WORK/rust/release/examples/bench_reader")"
    else note "rust: skipped (build failed: $(tail -3 "$WORK/rust.log" | tr '\n' ' '))"; fi
  fi
fi
if wanted go; then
  if ! command -v go >/dev/null; then note "go: skipped (no go)"
  elif ! ls "$ROOT"/bindings/go/cmd/bench-reader/*.go >/dev/null 2>&1; then note "go: skipped (no bindings/go/cmd/bench-reader)"
  else
    note "go: go build ./cmd/bench-reader"
    if (cd "$ROOT/bindings/go" && GOFLAGS=-mod=mod GOPROXY=off CGO_ENABLED=1 \
          CGO_LDFLAGS="-L$LIBDIR -Wl,-rpath,$LIBDIR" go build -o "$WORK/go-bench-reader" ./cmd/bench-reader) \
          >"$WORK/go.log" 2>&1; then
      LANGS+=(go); CMD[go]="$(printf '%q' "$WORK/go-bench-reader")"
    else note "go: skipped (build failed: $(tail -3 "$WORK/go.log" | tr '\n' ' '))"; fi
  fi
fi
if wanted csharp; then
  exe=${SHMREPL_BENCH_CSHARP_EXE:-}
  if ! command -v mono >/dev/null; then note "csharp: skipped (no mono)"
  elif [[ -n $exe ]]; then
    if [[ -f $exe ]]; then LANGS+=(csharp); CMD[csharp]="mono $(printf '%q' "$exe")"
    else note "csharp: skipped (\$SHMREPL_BENCH_CSHARP_EXE=$exe does not exist)"; fi
  elif [[ ! -f $ROOT/bindings/csharp/build.sh ]]; then note "csharp: skipped (no bindings/csharp/build.sh)"
  elif ! command -v mcs >/dev/null; then note "csharp: skipped (no mcs)"
  else
    note "csharp: bindings/csharp/build.sh"
    if sh "$ROOT/bindings/csharp/build.sh" "$WORK/csharp" >"$WORK/csharp.log" 2>&1 && [[ -f $WORK/csharp/BenchReader.exe ]]; then
      LANGS+=(csharp); CMD[csharp]="mono $(printf '%q' "$WORK/csharp/BenchReader.exe")"
    else note "csharp: skipped (build failed: $(tail -3 "$WORK/csharp.log" | tr '\n' ' '))"; fi
  fi
fi
if wanted python; then
  if [[ ! -x /usr/bin/python3 ]]; then note "python: skipped (no /usr/bin/python3)"
  elif [[ ! -f $ROOT/bindings/python/bench_reader.py ]]; then note "python: skipped (no bindings/python/bench_reader.py)"
  else
    LANGS+=(python)
    CMD[python]="env PYTHONPATH=$(printf '%q' "$ROOT/bindings/python") /usr/bin/python3 $(printf '%q' "$ROOT/bindings/python/bench_reader.py")"
  fi
fi
note "readers: ${LANGS[*]}"

# Runs reader $1 on ring $2; prints "records bytes seconds". Fails loudly on a bad reader.
run_reader() {
  local lang=$1 ring=$2 out
  if ! out=$(eval "${CMD[$lang]} $(printf '%q' "$ring")" 2>"$WORK/$lang.err"); then
    die "$lang reader failed on $ring: $(tail -5 "$WORK/$lang.err")"
  fi
  [[ $out =~ ^records=([0-9]+)\ bytes=([0-9]+)\ seconds=([0-9.eE+-]+)$ ]] ||
    die "$lang reader printed '$out', not 'records=N bytes=N seconds=F'"
  echo "${BASH_REMATCH[1]} ${BASH_REMATCH[2]} ${BASH_REMATCH[3]}"
}

median() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2] + v[NR/2+1]) / 2}'; }

# ---- the engine and its client (shmrepl-bench-reader serve) -----------------------------
coproc SERVE { exec "$READER" serve --socket "$WORK/engine.sock" --engine "$ENGINE" 2>"$WORK/serve.err"; }
HELPER_PID=$SERVE_PID  # bash unsets SERVE_PID once the coprocess ends
ask() {  # one command, one reply line
  local reply
  echo "$1" >&"${SERVE[1]}"
  read -r -t 900 -u "${SERVE[0]}" reply || die "no reply from the client helper to '$1': $(cat "$WORK/serve.err")"
  [[ $reply != error* ]] || die "client helper: $reply"
  echo "$reply"
}
read -r -t 60 -u "${SERVE[0]}" ready || die "the client helper did not start: $(cat "$WORK/serve.err")"
[[ $ready =~ ^ready\ ([0-9]+)$ ]] || die "the client helper said '$ready'"
ENGINE_PID=${BASH_REMATCH[1]}
note "engine pid $ENGINE_PID on $WORK/engine.sock"

# ---- full ring -------------------------------------------------------------------------
printf 'for i in range(%d):\n    print(f"Line {i}: " + "x" * 100)\n' "$RECORDS" >"$WORK/fill.py"
note "full ring: writing $RECORDS records into a ring of $CAP_BYTES bytes"
t0=$(date +%s.%N)
reply=$(ask "fill $CAP_BYTES $WORK/fill.py") || exit 1
RING=${reply#ring }
note "full ring: $RING written in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.2f", b - a}') s"

declare -A RATES WALLS
EXPECT_RECORDS="" EXPECT_BYTES=""
for ((r = 1; r <= ROUNDS; r++)); do
  line=""
  for lang in "${LANGS[@]}"; do
    res=$(run_reader "$lang" "$RING") || exit 1
    read -r recs bytes secs <<<"$res"
    if [[ -z $EXPECT_RECORDS ]]; then
      EXPECT_RECORDS=$recs EXPECT_BYTES=$bytes
      ((recs == RECORDS + 2)) || die "the C reader read $recs records, not $((RECORDS + 2)) (STARTED, $RECORDS lines, FINISHED)"
    fi
    [[ $recs == "$EXPECT_RECORDS" && $bytes == "$EXPECT_BYTES" ]] ||
      die "$lang read records=$recs bytes=$bytes, C read records=$EXPECT_RECORDS bytes=$EXPECT_BYTES"
    rate=$(awk -v n="$recs" -v s="$secs" 'BEGIN {printf "%.0f", (s > 0) ? n / s : 0}')
    RATES[$lang]+="$rate "
    line+=" $lang $(awk -v x="$rate" 'BEGIN {printf "%.2f", x / 1e6}')M/s"
  done
  note "full ring round $r/$ROUNDS:$line"
done
ask close >/dev/null

# ---- live ------------------------------------------------------------------------------
if ((LIVE)); then
  if ((LIVE_LINES == 1000000)) && [[ -f $ROOT/tests/workloads/w2_million_lines.py ]]; then
    cp "$ROOT/tests/workloads/w2_million_lines.py" "$WORK/live.py"
  else
    printf 'for i in range(%d):\n    print(f"Line {i}: " + "x" * 100)\n' "$LIVE_LINES" >"$WORK/live.py"
  fi
  for ((r = 1; r <= LIVE_ROUNDS; r++)); do
    line=""
    for lang in "${LANGS[@]}"; do
      reply=$(ask "live 0 $WORK/live.py") || exit 1
      read -r _ ring t0ns <<<"$reply"
      res=$(run_reader "$lang" "$ring") || exit 1
      read -r recs _ _ <<<"$res"
      t1ns=$(date +%s%N)
      ((recs == LIVE_LINES + 2)) || die "$lang read $recs records live, not $((LIVE_LINES + 2))"
      wall=$(awk -v a="$t0ns" -v b="$t1ns" 'BEGIN {printf "%.4f", (b - a) / 1e9}')
      WALLS[$lang]+="$wall "
      line+=" $lang ${wall}s"
    done
    note "live round $r/$LIVE_ROUNDS ($LIVE_LINES lines):$line"
  done
  ask close >/dev/null
fi

# ---- report ----------------------------------------------------------------------------
declare -A AIM=([c]="baseline" [rust]=">= 0.9x C" [go]=">= 0.5x C" [csharp]=">= 0.5x C" [python]=">= 1M rec/s")
declare -A LIVE_AIM=([c]="baseline" [rust]="-" [go]="-" [csharp]="-" [python]=">= 0.9x C")
# shellcheck disable=SC2086
c_rate=$(median ${RATES[c]})
echo
echo "full ring: $RECORDS lines ($EXPECT_RECORDS records, $EXPECT_BYTES data bytes), median of $ROUNDS rounds"
printf '%-8s %14s %10s %14s   %s\n' language "records/s" "vs C" "best round" aim
declare -A MED_RATE MED_WALL
for lang in "${LANGS[@]}"; do
  # shellcheck disable=SC2086
  MED_RATE[$lang]=$(median ${RATES[$lang]})
  # shellcheck disable=SC2086
  printf '%-8s %14.0f %9.2fx %14.0f   %s\n' "$lang" "${MED_RATE[$lang]}" \
    "$(awk -v a="${MED_RATE[$lang]}" -v c="$c_rate" 'BEGIN {print a / c}')" \
    "$(printf '%s\n' ${RATES[$lang]} | sort -g | tail -1)" "${AIM[$lang]}"
done
echo "(the ratio compares medians; on a busy machine the best round shows what a reader can do)"
if ((LIVE)); then
  # shellcheck disable=SC2086
  c_wall=$(median ${WALLS[c]})
  echo
  echo "live: $LIVE_LINES lines, execute to reader exit (start-up included), median of $LIVE_ROUNDS rounds"
  printf '%-8s %10s %10s   %s\n' language seconds "C/this" aim
  for lang in "${LANGS[@]}"; do
    # shellcheck disable=SC2086
    MED_WALL[$lang]=$(median ${WALLS[$lang]})
    printf '%-8s %10.3f %9.2fx   %s\n' "$lang" "${MED_WALL[$lang]}" \
      "$(awk -v a="${MED_WALL[$lang]}" -v c="$c_wall" 'BEGIN {print c / a}')" "${LIVE_AIM[$lang]}"
  done
fi

if [[ -n $JSON ]]; then
  {
    printf '{\n  "full": {"records": %s, "bytes": %s, "lines": %s, "ring_capacity": %s, "rounds": %s, "readers": {' \
      "$EXPECT_RECORDS" "$EXPECT_BYTES" "$RECORDS" "$CAP_BYTES" "$ROUNDS"
    sep=""
    for lang in "${LANGS[@]}"; do
      # shellcheck disable=SC2086
      printf '%s\n    "%s": {"records_per_s_median": %s, "ratio_vs_c": %s, "records_per_s": [%s]}' "$sep" "$lang" \
        "${MED_RATE[$lang]}" "$(awk -v a="${MED_RATE[$lang]}" -v c="$c_rate" 'BEGIN {printf "%.4f", a / c}')" \
        "$(echo ${RATES[$lang]} | tr ' ' ',')"
      sep=","
    done
    printf '}}'
    if ((LIVE)); then
      printf ',\n  "live": {"lines": %s, "rounds": %s, "readers": {' "$LIVE_LINES" "$LIVE_ROUNDS"
      sep=""
      for lang in "${LANGS[@]}"; do
        # shellcheck disable=SC2086
        printf '%s\n    "%s": {"seconds_median": %s, "ratio_vs_c": %s, "seconds": [%s]}' "$sep" "$lang" \
          "${MED_WALL[$lang]}" "$(awk -v a="${MED_WALL[$lang]}" -v c="$c_wall" 'BEGIN {printf "%.4f", c / a}')" \
          "$(echo ${WALLS[$lang]} | tr ' ' ',')"
        sep=","
      done
      printf '}}'
    fi
    printf ',\n  "skipped_or_unavailable": [%s]\n}\n' \
      "$(for l in rust go csharp python; do [[ -n ${CMD[$l]:-} ]] || printf '"%s",' "$l"; done | sed 's/,$//')"
  } >"$JSON"
  note "wrote $JSON"
fi
