#!/usr/bin/env bash
# Configures, builds and runs every check, one stage after the other; stops at the first
# stage that fails. CI runs it as is (.ci/run), within a 90-minute limit on 2 cores.
#
#   plain  GCC RelWithDebInfo build in build/ + ctest (all but the `abi` label; the
#          `soak` test adds ~65 s)
#   abi    the ABI checks: exported symbols, header as C99/C++, libabigail baseline
#          (ctest -L abi in the plain build)
#   asan   ASan+UBSan build in build/asan + ctest (tests scaled by SHMREPL_TEST_SCALE)
#   tsan   TSan build in build/tsan + ctest (tests scaled by SHMREPL_TEST_SCALE)
#   fuzz   clang libFuzzer build in build/fuzz: replay each corpus, then fuzz each
#          target for SHMREPL_FUZZ_SECONDS
#
# Usage: tools/test.sh [--quick] [--only STAGE]...
#   --quick        the plain stage only
#   --only STAGE   run just this stage (repeatable; order stays as above)
# Environment:
#   SHMREPL_BUILD_ROOT    plain build dir, parent of asan/ tsan/ fuzz/ (default: build)
#   SHMREPL_JOBS          build and ctest parallelism (default: nproc)
#   SHMREPL_FUZZ_SECONDS  per fuzz target (default: 60 when CI=true, else 20)
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD

all_stages=(plain abi asan tsan fuzz)
selected=()
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
  case $1 in
    --quick) selected+=(plain) ;;
    --only)
      [ $# -ge 2 ] || { usage >&2; exit 2; }
      [[ " ${all_stages[*]} " == *" $2 "* ]] || { echo "test.sh: unknown stage '$2' (${all_stages[*]})" >&2; exit 2; }
      selected+=("$2")
      shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "test.sh: unknown argument '$1'" >&2; usage >&2; exit 2 ;;
  esac
  shift
done
[ ${#selected[@]} -gt 0 ] || selected=("${all_stages[@]}")

root=${SHMREPL_BUILD_ROOT:-build}
jobs=${SHMREPL_JOBS:-$(nproc)}
if [ "${CI:-}" = "true" ]; then fuzz_default=60; else fuzz_default=20; fi
fuzz_seconds=${SHMREPL_FUZZ_SECONDS:-$fuzz_default}
[[ $fuzz_seconds =~ ^[1-9][0-9]*$ ]] || { echo "test.sh: SHMREPL_FUZZ_SECONDS must be a positive integer" >&2; exit 2; }
[[ $jobs =~ ^[1-9][0-9]*$ ]] || { echo "test.sh: SHMREPL_JOBS must be a positive integer" >&2; exit 2; }
supp=$src/tools/sanitizers

# Tests and benchmarks pin Python's buffering themselves; do not inherit it.
unset PYTHONUNBUFFERED

banner() { printf '\n========== %s ==========\n' "$*"; }
fmt_time() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

configure_and_build() {  # dir target cmake-args...
  local dir=$1 target=$2
  shift 2
  echo "--- configure $dir $*"
  mkdir -p "$dir"
  cmake -S "$src" -B "$dir" -G Ninja "$@" >"$dir/configure.log" 2>&1 || {
    cat "$dir/configure.log"
    return 1
  }
  echo "--- build $dir ($target, -j$jobs)"
  cmake --build "$dir" -j "$jobs" --target "$target"
}

run_ctest() {  # dir timeout ctest-args...
  local dir=$1 timeout=$2
  shift 2
  echo "--- ctest $dir $*"
  ctest --test-dir "$dir" --output-on-failure -j "$jobs" --timeout "$timeout" "$@"
}

# ---- stages: each returns non-zero on failure (set -e does not apply inside `if`) ----
# Every option a stage depends on is passed explicitly: a build dir configured by hand
# earlier (say with -DSHMREPL_SANITIZE=thread) must not change what a stage checks.
plain_args=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHMREPL_SANITIZE= -DSHMREPL_BUILD_FUZZ=OFF
            -DSHMREPL_BUILD_BENCH=ON -DSHMREPL_WERROR=ON)

stage_plain() {
  mkdir -p "$root"
  configure_and_build "$root" all "${plain_args[@]}" || return 1
  run_ctest "$root" 300 -LE '^abi$' || return 1
}

stage_abi() {
  mkdir -p "$root"
  configure_and_build "$root" all "${plain_args[@]}" || return 1
  run_ctest "$root" 300 -L '^abi$' || return 1
  # The baseline test exists only in a build like the baseline's: make sure it ran.
  ctest --test-dir "$root" -N -R '^abi_baseline$' | grep -q 'Total Tests: 1' || {
    echo "abi: the abi_baseline test is not configured (needs abidw/abidiff and a GCC build)"
    return 1
  }
}

stage_asan() {
  local dir=$root/asan
  mkdir -p "$dir"
  configure_and_build "$dir" all -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHMREPL_BUILD_FUZZ=OFF \
    -DSHMREPL_SANITIZE=address,undefined -DSHMREPL_BUILD_BENCH=OFF -DSHMREPL_WERROR=ON || return 1
  # detect_leaks with suppressions for the uninstrumented libpython (see lsan.supp).
  ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1 \
  LSAN_OPTIONS=suppressions=$supp/lsan.supp:print_suppressions=0 \
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
  SHMREPL_TEST_SCALE=0.25 \
    run_ctest "$dir" 900 || return 1
}

stage_tsan() {
  local dir=$root/tsan
  mkdir -p "$dir"
  configure_and_build "$dir" all -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHMREPL_BUILD_FUZZ=OFF \
    -DSHMREPL_SANITIZE=thread -DSHMREPL_BUILD_BENCH=OFF -DSHMREPL_WERROR=ON || return 1
  TSAN_OPTIONS=suppressions=$supp/tsan.supp:halt_on_error=1:second_deadlock_stack=1:print_suppressions=0 \
  SHMREPL_TEST_SCALE=0.1 \
    run_ctest "$dir" 900 || return 1
}

stage_fuzz() {
  local dir=$root/fuzz exe name log
  mkdir -p "$dir"
  configure_and_build "$dir" fuzz_all -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHMREPL_BUILD_FUZZ=ON \
    -DSHMREPL_SANITIZE=address,undefined -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang \
    -DSHMREPL_BUILD_BENCH=OFF -DSHMREPL_WERROR=ON || return 1
  local targets=()
  for exe in "$dir"/bin/fuzz_*; do
    name=$(basename "$exe")
    [ "$name" != fuzz_make_seeds ] && [ -x "$exe" ] && targets+=("$name")
  done
  [ ${#targets[@]} -gt 0 ] || { echo "fuzz: no fuzz target was built"; return 1; }
  for name in "${targets[@]}"; do
    exe=$dir/bin/$name
    local corpus=$src/fuzz/corpus/$name regressions=$src/fuzz/regressions/$name
    local work=$dir/fuzz-work/$name artifacts=$dir/artifacts/$name
    mkdir -p "$work" "$artifacts" "$corpus" "$regressions"
    log=$dir/$name.log
    echo "--- $name: replay corpus + regressions"
    "$exe" -runs=0 "$corpus" "$regressions" >"$log" 2>&1 || {
      tail -n 60 "$log"
      echo "fuzz: $name failed replaying its corpus (full log: $log)"
      return 1
    }
    echo "--- $name: fuzz for ${fuzz_seconds}s (new inputs in $work)"
    "$exe" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$artifacts/" "$work" "$corpus" "$regressions" >"$log" 2>&1 || {
      tail -n 80 "$log"
      echo "fuzz: $name found a failure; input saved in $artifacts/ (full log: $log)"
      echo "      reproduce: $exe $artifacts/<file>; then see fuzz/README.md"
      return 1
    }
    grep -E '^stat::number_of_executed_units|^stat::new_units_added' "$log" | tr '\n' ' '
    echo
  done
}

# ---- driver ----

declare -A took=()
ran=()
total_start=$SECONDS
finish() {  # status
  local line="" s
  for s in "${ran[@]}"; do line+=" $s $(fmt_time "${took[$s]}"),"; done
  line=${line%,}
  if [ "$1" -eq 0 ]; then
    banner "test.sh: PASSED ${#ran[@]} stage(s) in $(fmt_time $((SECONDS - total_start))):$line"
  else
    banner "test.sh: FAILED in stage '$failed_stage' after $(fmt_time $((SECONDS - total_start))):$line"
  fi
  exit "$1"
}

failed_stage=""
for stage in "${all_stages[@]}"; do
  [[ " ${selected[*]} " == *" $stage "* ]] || continue
  banner "stage $stage"
  start=$SECONDS
  status=0
  "stage_$stage" || status=$?
  took[$stage]=$((SECONDS - start))
  ran+=("$stage")
  if [ $status -ne 0 ]; then
    failed_stage=$stage
    echo "!!! stage $stage FAILED after $(fmt_time "${took[$stage]}")"
    finish 1
  fi
  echo "--- stage $stage passed in $(fmt_time "${took[$stage]}")"
done
finish 0
