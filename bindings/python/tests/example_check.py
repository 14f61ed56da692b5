"""Runs an example program against an engine it auto-starts on a private socket, checks
that its stdout is EXPECTED, then shuts that engine down.

    example_check.py EXPECTED PROGRAM.py
"""
import os
import shutil
import subprocess
import sys
import tempfile

import support  # noqa: F401  (import path; drops PYTHONUNBUFFERED)
import shmrepl


def main(expected, program):
    d = tempfile.mkdtemp(prefix="shmrepl-py-example-")
    sock = os.path.join(d, "engine.sock")
    env = dict(os.environ, SHMREPL_SOCKET=sock)
    try:
        p = subprocess.run([sys.executable, program], env=env, capture_output=True, text=True,
                           timeout=120)
        print(f"--- {program} exited {p.returncode}; stdout:\n{p.stdout}--- stderr:\n{p.stderr}")
        ok = p.returncode == 0 and p.stdout == expected + "\n"
        if not ok:
            print(f"FAIL: want exit 0 and stdout {expected!r}")
        if not os.path.exists(sock):
            print("FAIL: no engine was started on the private socket")
            ok = False
        return 0 if ok else 1
    finally:
        try:
            with shmrepl.Client(socket_path=sock, autostart=False) as c:
                c.shutdown_engine()
        except shmrepl.ConnectError:
            pass
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
