#!/usr/bin/python3
"""Signals sent from outside to `shmrepl run PROG` against `python3 -u PROG`.

usage: signals_test.py --cli PATH --engine PATH [--python /usr/bin/python3] [-v]

Each case starts the program both ways under the same driver, waits for its `ready`
line, sends the signal to the process it started (the CLI, or python3), and compares
stdout, stderr and the wait status. Also: `timeout -s SIG 2 ... PROG` both ways, and a
`shmrepl run` killed with SIGKILL, whose worker must end. The last line is
`N passed, M failed`.
"""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as diff  # noqa: E402  (base_env, start_engine)

PROGRAMS = {
    # No handler: the program dies of the signal.
    "plain.py": """import time
print("ready", flush=True)
time.sleep(60)
print("not reached")
""",
    # A handler that ends the program.
    "handler_exit.py": """import signal, sys, time
def on_signal(sig, frame):
    print("handler:", signal.Signals(sig).name, flush=True)
    sys.exit(3)
for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1):
    signal.signal(s, on_signal)
print("ready", flush=True)
time.sleep(60)
print("not reached")
""",
    # A handler that lets the program go on (the sleep resumes, PEP 475), on the main thread.
    "handler_continue.py": """import signal, sys, threading, time
got = []
def on_signal(sig, frame):
    got.append((signal.Signals(sig).name, threading.current_thread() is threading.main_thread()))
signal.signal(signal.SIGTERM, on_signal)
print("ready", flush=True)
while not got:
    time.sleep(0.05)
print("went on after", got, file=sys.stderr)
sys.exit(5)
""",
    # Ignored.
    "ignored.py": """import signal, sys, time
signal.signal(signal.SIGHUP, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(3)
print("still here")
""",
}

CASES = [
    ("plain.py", signal.SIGTERM),
    ("plain.py", signal.SIGHUP),
    ("plain.py", signal.SIGQUIT),
    ("plain.py", signal.SIGUSR1),
    ("plain.py", signal.SIGUSR2),
    ("plain.py", signal.SIGINT),
    ("handler_exit.py", signal.SIGTERM),
    ("handler_exit.py", signal.SIGHUP),
    ("handler_exit.py", signal.SIGUSR1),
    ("handler_continue.py", signal.SIGTERM),
    ("ignored.py", signal.SIGHUP),
]


def drive(cmd, cwd, env, sig):
    """Starts cmd, waits for `ready`, sends sig; returns (stdout, stderr, returncode)."""
    p = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = p.stdout.readline()
    if first == b"ready\n":
        # Past the print, into the sleep (SIGINT's traceback points at either; generous
        # for a loaded machine).
        time.sleep(1.0)
        p.send_signal(sig)
    try:
        out, err = p.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
        err += b"\n[driver: still running after 60 s]"
    return first + out, err, p.returncode


def compare(name, ref, got, verbose):
    if ref == got:
        if verbose:
            print(f"ok   {name}: status {ref[2]}")
        return True
    print(f"FAIL {name}:\n  python3: {ref!r}\n  shmrepl: {got!r}")
    return False


def workers(cli, env):
    out = subprocess.run([cli, "ls", "--json"], env=env, stdout=subprocess.PIPE, check=True).stdout
    return {w["pid"] for w in json.loads(out)["workers"]}


def main():
    args = diff.driver_args(__doc__.splitlines()[0])
    with diff.private_engine(args, "shmrepl-signals-") as (env, work):
        for name, text in PROGRAMS.items():
            with open(os.path.join(work, name), "w") as f:
                f.write(text)
        passed = failed = 0
        for prog, sig in CASES:
            ref = drive([args.python, "-u", prog], work, env, sig)
            got = drive([args.cli, "run", prog], work, env, sig)
            ok = compare(f"{prog} {sig.name}", ref, got, args.verbose)
            passed += ok
            failed += not ok
        # `timeout` sends its signal to the command it started, and again to its process
        # group (so twice, without --foreground: a program whose handler ends it may then
        # die of the second one during python3's finalization, or not).
        for prog, sig, opts in [("plain.py", "TERM", []), ("plain.py", "HUP", []),
                                ("handler_exit.py", "HUP", ["--foreground"])]:
            run = lambda cmd: subprocess.run(["timeout", "--preserve-status", *opts, "-s", sig, "2"] + cmd,
                                             cwd=work, env=env, stdin=subprocess.DEVNULL,
                                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                             timeout=60)
            r = run([args.python, "-u", prog])
            g = run([args.cli, "run", prog])
            ok = compare(f"timeout {' '.join(opts)} -s {sig} 2 {prog}", (r.stdout, r.stderr, r.returncode),
                         (g.stdout, g.stderr, g.returncode), args.verbose)
            ok = ok and r.returncode != 0
            passed += ok
            failed += not ok
        # shmrepl run killed with SIGKILL: the program's worker ends too.
        before = workers(args.cli, env)
        p = subprocess.Popen([args.cli, "run", "plain.py"], cwd=work, env=env,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        ready = p.stdout.readline() == b"ready\n"
        mine = workers(args.cli, env) - before
        p.kill()
        p.wait()
        deadline = time.monotonic() + 30
        while mine & workers(args.cli, env) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = mine & workers(args.cli, env)
        alive = {pid for pid in mine if os.path.exists(f"/proc/{pid}")
                 and open(f"/proc/{pid}/stat").read().split(") ")[1][0] != "Z"}
        ok = ready and len(mine) == 1 and not left and not alive
        if not ok:
            print(f"FAIL SIGKILL of shmrepl run: ready={ready} worker={mine} left={left} alive={alive}")
        elif args.verbose:
            print(f"ok   SIGKILL of shmrepl run: worker {mine} ended")
        passed += ok
        failed += not ok
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
