#!/usr/bin/python3
"""`shmrepl run` on a terminal says what `python3 -u` says on it: isatty() of the
standard streams and the terminal's size, also after a resize; and with stdout on a
pipe, that stdout is not a terminal while stderr is.

Each program runs under a fresh pseudo-terminal of a known size, once by
/usr/bin/python3 -u and once by `shmrepl run` (with a private engine), and the two
transcripts must be equal.

usage: run_tty_test.py SHMREPL_BINARY ENGINE_BINARY
"""
import fcntl
import os
import re
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import time

SHMREPL, ENGINE = sys.argv[1], sys.argv[2]
PYTHON = "/usr/bin/python3"
failures = []

PROBE = r"""
import os, shutil, sys
def size(fd=None):
    try:
        return tuple(os.get_terminal_size() if fd is None else os.get_terminal_size(fd))
    except OSError as e:
        return "OSError %d" % e.errno
def show(tag):
    print(tag, sys.stdin.isatty(), sys.stdout.isatty(), sys.stderr.isatty(),
          os.isatty(1), os.isatty(2), sys.stdout.buffer.isatty())
    print(tag, size(), size(1), size(2), tuple(shutil.get_terminal_size((7, 8))))
    print(tag, "on stderr", sys.stderr.isatty(), size(2), file=sys.stderr)
show("start")
sys.stdin.readline()
show("resized")
"""


def set_size(fd, cols, rows):
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def read_some(fd, timeout):
    r, _, _ = select.select([fd], [], [], timeout)
    if not r:
        return None
    try:
        return os.read(fd, 65536)
    except OSError:  # EIO: every slave end is closed
        return b""


def run_on_pty(argv, env, stdout_pipe):
    """Runs argv with stdin/stderr (and stdout unless stdout_pipe) on a new 90x30
    terminal; once it printed its first report, resizes it to 120x40 and sends a line.
    Returns (terminal transcript, piped stdout, exit code)."""
    master, slave = os.openpty()
    set_size(master, 90, 30)
    p = subprocess.Popen(argv, stdin=slave, stdout=subprocess.PIPE if stdout_pipe else slave,
                         stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    seen, piped = b"", b""
    resized = False
    deadline = time.monotonic() + 60
    fds = [master] + ([p.stdout.fileno()] if stdout_pipe else [])
    while time.monotonic() < deadline:
        # The whole report first: the echo of our line must not land inside it.
        if not resized and re.search(rb"start on stderr[^\n]*\n", seen) and \
                (not stdout_pipe or piped.count(b"start") == 2):
            set_size(master, 120, 40)
            os.write(master, b"\n")
            resized = True
        r, _, _ = select.select(fds, [], [], 0.1)
        for fd in r:
            data = read_some(fd, 0)
            if fd == master:
                seen += data or b""
            elif data:
                piped += data
            elif fd != master:
                fds.remove(fd)
        if p.poll() is not None and (not stdout_pipe or len(fds) == 1):
            break
    else:
        p.kill()
        raise TimeoutError("%s did not end; terminal %r" % (argv, seen))
    # What is still on its way to the terminal (the worker may hold the slave a moment).
    while True:
        data = read_some(master, 0.5)
        if not data:
            break
        seen += data
    os.close(master)
    if stdout_pipe:
        piped += p.stdout.read()
        p.stdout.close()
    return seen.replace(b"\r\n", b"\n").decode(errors="replace"), piped.decode(errors="replace"), p.wait()


tmp = tempfile.mkdtemp(prefix="shmrepl-run-tty-test-")
sock = os.path.join(tmp, "engine.sock")
prog = os.path.join(tmp, "probe.py")
with open(prog, "w") as f:
    f.write(PROBE)
env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "PYTHONUNBUFFERED")}
env.update(SHMREPL_SOCKET=sock, SHMREPL_ENGINE=ENGINE, TERM="dumb")


def case(name, stdout_pipe):
    def run():
        want = run_on_pty([PYTHON, "-u", prog], env, stdout_pipe)
        got = run_on_pty([SHMREPL, "run", prog], env, stdout_pipe)
        assert want[2] == 0, "python3 failed: %r" % (want,)
        # The reference must show what is being tested, or the comparison proves nothing.
        if stdout_pipe:
            assert "start True False True False True False\n" in want[1], want
        else:
            assert "start True True True True True True\n" in want[0], want
        assert "(90, 30)" in want[0] + want[1] and "(120, 40)" in want[0] + want[1], want
        assert got == want, "shmrepl run:\n%r\npython3:\n%r" % (got, want)
    try:
        run()
        print("ok   " + name)
    except Exception as e:  # noqa: BLE001 - every failure is reported
        print("FAIL %s: %s" % (name, e))
        failures.append(name)


try:
    case("stdin, stdout and stderr on a terminal", stdout_pipe=False)
    case("stdout on a pipe, stdin and stderr on a terminal", stdout_pipe=True)
finally:
    subprocess.run([SHMREPL, "--socket", sock, "shutdown"], env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    shutil.rmtree(tmp, ignore_errors=True)

print("%d failed" % len(failures))
sys.exit(1 if failures else 0)
