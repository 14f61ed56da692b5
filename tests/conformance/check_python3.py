#!/usr/bin/python3
"""Checks tests/vectors/executions.json against python3 itself.

Each vector's program runs as `python3 -u -c CODE` (stdin /dev/null); its stdout and
stderr must equal the vector's bytes, with python3's "<string>" file name read as the
engine's "<shmrepl>", and its exit status must fit the vector's finish: 0 for OK, 1 for
ERROR (the engine's FINISHED carries exit code 0 there), the exit code for EXITED. What
python3 has no counterpart for is engine-specific and not checked here: RESULT records
(the repr of a trailing expression outside script mode, never on stdout) and the
number of records.

usage: check_python3.py [--python PATH] [VECTORS_JSON]
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT = os.path.join(HERE, "..", "vectors", "executions.json")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--python", default="/usr/bin/python3")
    ap.add_argument("vectors", nargs="?", default=DEFAULT)
    args = ap.parse_args()
    with open(args.vectors, encoding="utf-8") as f:
        vectors = json.load(f)["executions"]
    env = dict(os.environ)
    env.pop("PYTHONUNBUFFERED", None)  # -u says it
    env.pop("PYTHONSTARTUP", None)
    env["PYTHONIOENCODING"] = "utf-8"
    failures = 0
    for v in vectors:
        p = subprocess.run([args.python, "-u", "-c", v["code"]], stdin=subprocess.DEVNULL,
                           capture_output=True, env=env, timeout=60)
        out = p.stdout
        err = p.stderr.replace(b'File "<string>"', b'File "<shmrepl>"')
        want_status = {"OK": 0, "ERROR": 1}.get(v["finish_status"], v["exit_code"])
        problems = []
        if out != v["stdout"].encode():
            problems.append(f"stdout: python3 wrote {out[:300]!r} ({len(out)} bytes), "
                            f"the vector has {v['stdout'][:300].encode()!r} ({len(v['stdout'].encode())} bytes)")
        if err != v["stderr"].encode():
            problems.append(f"stderr: python3 wrote {err!r}, the vector has {v['stderr'].encode()!r}")
        if p.returncode != want_status:
            problems.append(f"exit status: python3 {p.returncode}, the vector's finish says {want_status}")
        print(f"{'ok  ' if not problems else 'FAIL'} {v['name']}")
        for pr in problems:
            print(f"     {pr}")
        failures += bool(problems)
    print(f"{len(vectors) - failures}/{len(vectors)} vectors agree with {args.python}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
