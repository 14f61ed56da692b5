#!/usr/bin/python3
"""Warm or fresh worker: which sessions get a newly started interpreter.

usage: fresh_test.py --cli PATH --engine PATH [--python /usr/bin/python3] [-v]

The engine starts with PYTHONHASHSEED=5 and PYTHONWARNINGS=error in its environment (as
an engine auto-started by such a caller). A program run with the same values must get a
warm worker (forked from the zygote), one run without them (or with them empty) or with
other values a fresh one (`--fresh-worker` in its /proc/self/cmdline), and each must
print what python3 prints with that environment. The last line is `N passed, M failed`.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as diff  # noqa: E402  (base_env, start_engine)

PROGRAM = """import sys
with open("/proc/self/cmdline", "rb") as f:
    fresh = b"--fresh-worker" in f.read()
print(hash("abc") if sys.flags.hash_randomization == 0 or "fixed" in sys.argv else "random",
      sys.flags.hash_randomization, sys.warnoptions, file=sys.stdout)
print(fresh, file=sys.stderr)
"""


def main():
    args = diff.driver_args(__doc__.splitlines()[0])
    with diff.private_engine(args, "shmrepl-fresh-", PYTHONHASHSEED="5", PYTHONWARNINGS="error") as (env, work):
        with open(os.path.join(work, "prog.py"), "w") as f:
            f.write(PROGRAM)
        passed = failed = 0
        # (name, extra environment, argv, fresh expected)
        cases = [
            ("the engine's values", {"PYTHONHASHSEED": "5", "PYTHONWARNINGS": "error"}, ["fixed"], False),
            ("neither set", {}, [], True),
            ("both empty", {"PYTHONHASHSEED": "", "PYTHONWARNINGS": ""}, [], True),
            ("another seed", {"PYTHONHASHSEED": "6", "PYTHONWARNINGS": "error"}, ["fixed"], True),
            ("only the seed", {"PYTHONHASHSEED": "5"}, ["fixed"], True),
            ("the engine's values and another variable", {"PYTHONHASHSEED": "5", "PYTHONWARNINGS": "error",
                                                          "PYTHONDEVMODE": "1"}, ["fixed"], True),
        ]
        for name, extra, argv, fresh in cases:
            e = dict(env, **extra)
            ref = subprocess.run([args.python, "-u", "prog.py"] + argv, cwd=work, env=e, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
            got = subprocess.run([args.cli, "run", "prog.py"] + argv, cwd=work, env=e, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=120)
            want_err = f"{fresh}\n".encode()
            ok = (got.stdout == ref.stdout and got.stderr == want_err and ref.stderr == b"False\n"
                  and got.returncode == ref.returncode == 0)
            if ok:
                passed += 1
                if args.verbose:
                    print(f"ok   {name}: {'fresh' if fresh else 'warm'}, {got.stdout!r}")
            else:
                failed += 1
                print(f"FAIL {name} (want {'fresh' if fresh else 'warm'}):\n"
                      f"  python3: {(ref.stdout, ref.stderr, ref.returncode)!r}\n"
                      f"  shmrepl: {(got.stdout, got.stderr, got.returncode)!r}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
