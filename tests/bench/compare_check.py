#!/usr/bin/python3
"""tools/bench/compare --check must catch a loss: it accepts the smoke run's JSON as
written, then refuses each of a few tampered copies (a byte short, a lost-data note, a baseline's byte count off, a
missing w4 `python3 -u` figure, a missing execution figure).

    compare_check.py COMPARE JSON
"""
import copy
import json
import os
import subprocess
import sys
import tempfile


def check(compare, report):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(report, f)
    try:
        p = subprocess.run([sys.executable, compare, "--check", f.name], capture_output=True, text=True)
        return p.returncode, p.stderr
    finally:
        os.unlink(f.name)


def main():
    compare, path = sys.argv[1], sys.argv[2]
    with open(path) as f:
        good = json.load(f)
    rc, err = check(compare, good)
    if rc != 0:
        print(f"the smoke run's own JSON fails --check:\n{err}")
        return 1
    w = next(iter(good["workloads"]))

    def short_by_one(r):
        r["workloads"][w]["systems"]["shmrepl"]["bytes"] -= 1

    def lost(r):
        r["workloads"][w]["systems"]["shmrepl"]["received"][0] = "stdout: 9 of 10 lines"

    def pipes_short(r):
        r["workloads"][w]["systems"]["pipes"]["bytes"] += 1

    def no_unbuffered(r):
        r["workloads"]["w4"]["systems"].pop("devnull-u")

    def no_rate(r):
        r["executions"].pop("pass")

    failures = 0
    for tamper in (short_by_one, lost, pipes_short, no_unbuffered, no_rate):
        bad = copy.deepcopy(good)
        tamper(bad)
        rc, err = check(compare, bad)
        print(f"{tamper.__name__}: --check exit {rc}: {err.strip()}")
        if rc != 1 or "check:" not in err:
            print(f"  --check accepted a report tampered by {tamper.__name__}")
            failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
