#!/usr/bin/python3
"""Differential suite: each program of manifest.json run by `python3 -u PROG ARGS` and by
`shmrepl run PROG ARGS`, from the same folder (not the engine's), with the same
environment and stdin; stdout bytes, stderr bytes and the wait status must be equal.

usage: run.py --cli PATH --engine PATH [--python /usr/bin/python3] [--lib-dir DIR]
              [--pending] [--keep] [-v] [NAME...]

A private engine is started on a socket in a temporary folder (its working folder is
another temporary folder) and stopped with `shmrepl shutdown` at the end. --pending runs
the programs of pending/manifest.json (known differences) instead. The last line is
`N passed, M failed`; the exit status is non-zero when anything failed.
"""
import argparse
import contextlib
import difflib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EXTRA_VAR = ("DIFF_EXTRA", "fixed extra value \u00e9")


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cli", required=True, help="the shmrepl CLI")
    p.add_argument("--engine", required=True, help="shmrepl-engine")
    p.add_argument("--python", default="/usr/bin/python3", help="the reference python3")
    p.add_argument("--lib-dir", help="put DIR on LD_LIBRARY_PATH (for both runs)")
    p.add_argument("--pending", action="store_true", help="run pending/ (known differences)")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("names", nargs="*", help="run only these programs")
    return p.parse_args()


def base_env(args, sock):
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "TZ": "UTC",
        "SHMREPL_SOCKET": sock,
        "SHMREPL_ENGINE": args.engine,
    }
    if args.lib_dir:
        env["LD_LIBRARY_PATH"] = args.lib_dir
    return env  # PYTHONUNBUFFERED is not set: python3 gets -u instead


def start_engine(args, root, env):
    engine_dir = os.path.join(root, "engine-cwd")
    os.mkdir(engine_dir)
    sock = env["SHMREPL_SOCKET"]
    log = open(os.path.join(root, "engine.log"), "wb")
    proc = subprocess.Popen([args.engine, "--socket", sock], cwd=engine_dir, env=env,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the engine exited with {proc.returncode}; see {log.name}")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(sock)
            return proc
        except OSError:
            time.sleep(0.05)
        finally:
            s.close()
    proc.kill()
    raise SystemExit("the engine did not listen within 20 s")


def driver_args(description):
    """The options of the drivers beside the suite (signals, venv, fresh workers)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--cli", required=True, help="the shmrepl CLI")
    p.add_argument("--engine", required=True, help="shmrepl-engine")
    p.add_argument("--python", default="/usr/bin/python3", help="the reference python3")
    p.add_argument("--lib-dir", help="put DIR on LD_LIBRARY_PATH (for both runs)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args()
    args.cli = os.path.abspath(args.cli)
    args.engine = os.path.abspath(args.engine)
    return args


@contextlib.contextmanager
def private_engine(args, prefix, **engine_env):
    """An engine of its own in a temporary folder (its environment: the clients' plus
    engine_env). Yields (the clients' environment, a work folder); then shuts the
    engine down and removes the folder."""
    root = tempfile.mkdtemp(prefix=prefix)
    try:
        env = base_env(args, os.path.join(root, "engine.sock"))
        engine = start_engine(args, root, dict(env, **engine_env))
        work = os.path.join(root, "work")
        os.mkdir(work)
        try:
            yield env, work
        finally:
            subprocess.run([args.cli, "shutdown"], env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=60)
            try:
                engine.wait(timeout=30)
            except subprocess.TimeoutExpired:
                engine.kill()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def stop_engine(args, proc, env):
    r = subprocess.run([args.cli, "shutdown"], env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=30)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        print("warning: the engine did not exit after `shmrepl shutdown`; killed")
        return False
    if r.returncode != 0:
        print(f"warning: `shmrepl shutdown` exited {r.returncode}: {r.stderr!r}")
        return False
    return True


def stdin_bytes(case):
    if "stdin_hex" in case:
        return bytes.fromhex(case["stdin_hex"])
    return case.get("stdin", "").encode("utf-8")


def run_one(argv, case, cwd, env, stdin_path):
    """Returns (stdout, stderr, returncode, seconds); returncode None on timeout."""
    timeout = case.get("timeout", 60)
    t0 = time.monotonic()
    data = stdin_bytes(case)
    if case.get("stdin_pipe"):
        p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
    else:
        with open(stdin_path, "rb") as f:
            p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=f,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 start_new_session=True)
    try:
        out, err = p.communicate(data if case.get("stdin_pipe") else None, timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        rc = None
    return out, err, rc, time.monotonic() - t0


def show(b, limit=300):
    s = b.decode("utf-8", "backslashreplace")
    return s if len(s) <= limit else s[:limit] + f"... [{len(s)} chars]"


def stream_diff(label, ref, got):
    """A unified diff of two byte streams, lines cut to a readable length."""
    lines = []
    if len(ref) > 200000 or len(got) > 200000:
        n = next((i for i, (a, b) in enumerate(zip(ref, got)) if a != b), min(len(ref), len(got)))
        lines.append(f"  {label}: {len(ref)} bytes from python3, {len(got)} from shmrepl; "
                     f"first difference at byte {n}")
        ref, got = ref[max(0, n - 2000):n + 2000], got[max(0, n - 2000):n + 2000]
    a = [show(x) + "\n" for x in ref.split(b"\n")]
    b = [show(x) + "\n" for x in got.split(b"\n")]
    d = list(difflib.unified_diff(a, b, f"{label} (python3 -u)", f"{label} (shmrepl run)", n=2))
    if len(d) > 80:
        d = d[:80] + [f"... ({len(d) - 80} more diff lines)\n"]
    return "".join(lines and [lines[0] + "\n"] or []) + "".join(d)


KEY = re.compile(rb"^([A-Za-z_][A-Za-z0-9_]*):")


def thread_groups(b):
    """Lines (whole, with their ends) grouped by their 'KEY:' prefix, in order."""
    groups = {}
    for line in b.splitlines(keepends=True):
        m = KEY.match(line)
        groups.setdefault(m.group(1) if m else b"", []).append(line)
    return groups


def compare(case, ref, got):
    """Returns a list of difference reports (empty when equal)."""
    mode = case.get("compare", "exact")
    problems = []
    for i, label in ((0, "stdout"), (1, "stderr")):
        if mode == "exact":
            equal = ref[i] == got[i]
        elif mode == "threads":
            equal = thread_groups(ref[i]) == thread_groups(got[i])
        else:
            raise SystemExit(f"{case['name']}: unknown compare mode {mode!r}")
        if not equal:
            if mode == "threads":
                ga, gb = thread_groups(ref[i]), thread_groups(got[i])
                a = b"".join(l for k in sorted(ga) for l in ga[k])
                b = b"".join(l for k in sorted(gb) for l in gb[k])
                problems.append(stream_diff(label + " (grouped per thread)", a, b))
            else:
                problems.append(stream_diff(label, ref[i], got[i]))
    if ref[2] != got[2]:
        problems.append(f"  exit: python3 {describe(ref[2])}, shmrepl {describe(got[2])}\n")
    return problems


def describe(rc):
    if rc is None:
        return "timed out (killed)"
    if rc < 0:
        return f"killed by {signal.Signals(-rc).name} ({rc})"
    return f"exit {rc}"


def main():
    args = parse_args()
    for path in (args.cli, args.engine, args.python):
        if not os.access(path, os.X_OK):
            raise SystemExit(f"not executable: {path}")
    args.cli, args.engine = os.path.abspath(args.cli), os.path.abspath(args.engine)
    manifest = os.path.join(HERE, "pending" if args.pending else "", "manifest.json")
    cases = json.load(open(manifest, encoding="utf-8"))["programs"]
    if args.names:
        unknown = set(args.names) - {c["name"] for c in cases}
        if unknown:
            raise SystemExit(f"not in {manifest}: {sorted(unknown)}")
        cases = [c for c in cases if c["name"] in args.names]

    src = os.path.join(HERE, "pending" if args.pending else "", "programs")
    for c in cases:
        if not os.path.isfile(os.path.join(src, c["file"])):
            raise SystemExit(f"{c['name']}: no {os.path.join(src, c['file'])}")
    root = tempfile.mkdtemp(prefix="shmrepl-differential-")
    work = os.path.join(root, "work")
    programs = os.path.join(work, "programs")
    # The programs (and, for pending ones, theirs on top) in a folder of their own.
    shutil.copytree(os.path.join(HERE, "programs"), programs)
    if args.pending:
        shutil.copytree(os.path.join(HERE, "pending", "programs"), programs, dirs_exist_ok=True)
    sockdir = os.path.join(root, "sock")
    os.mkdir(sockdir, 0o700)
    env0 = base_env(args, os.path.join(sockdir, "engine.sock"))
    engine = start_engine(args, root, env0)
    passed, failed, t_py, t_sh = [], [], 0.0, 0.0
    t_start = time.monotonic()
    try:
        for case in cases:
            env = dict(env0)
            env[EXTRA_VAR[0]] = EXTRA_VAR[1]
            for k, v in case.get("env", {}).items():
                env[k] = v.replace("{work}", work)
            if case.get("cwd", "programs") == "parent":
                cwd, prog = work, os.path.join("programs", case["file"])
            else:
                cwd, prog = programs, case["file"]
            stdin_path = os.path.join(root, "stdin-" + case["name"])
            with open(stdin_path, "wb") as f:
                f.write(stdin_bytes(case))
            cargs = case.get("args", [])
            ref = run_one([args.python, "-u", prog] + cargs, case, cwd, env, stdin_path)
            got = run_one([args.cli, "run", prog] + cargs, case, cwd, env, stdin_path)
            t_py += ref[3]
            t_sh += got[3]
            problems = compare(case, ref, got)
            timing = f"python3 {ref[3]:.2f}s, shmrepl {got[3]:.2f}s"
            if problems:
                failed.append(case["name"])
                print(f"FAIL {case['name']} ({timing})")
                for p in problems:
                    sys.stdout.write(p if p.endswith("\n") else p + "\n")
            else:
                passed.append(case["name"])
                print(f"ok   {case['name']} ({timing}; {describe(ref[2])})")
            if args.verbose:
                print(f"     stdout {show(ref[0], 120)!r}\n     stderr {show(ref[1], 120)!r}")
            sys.stdout.flush()
    finally:
        if not stop_engine(args, engine, env0):
            failed.append("(engine shutdown)")
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    print(f"time: python3 {t_py:.2f}s, shmrepl {t_sh:.2f}s, total {time.monotonic() - t_start:.2f}s")
    if failed:
        print("failed: " + " ".join(failed))
    print(f"{len(passed)} passed, {len(failed)} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
