#!/usr/bin/python3
"""`shmrepl repl` driven through a pseudo-terminal, with a private engine.

usage: repl_test.py SHMREPL_BINARY ENGINE_BINARY
"""
import os
import pty
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

SHMREPL, ENGINE = sys.argv[1], sys.argv[2]
failures = []


class Repl:
    def __init__(self, env):
        pid, fd = pty.fork()
        if pid == 0:
            os.execve(SHMREPL, [SHMREPL, "repl"], env)
        self.pid, self.fd = pid, fd
        self.out = b""

    def send(self, text):
        os.write(self.fd, text.encode())

    def expect(self, needle, timeout=30.0):
        """Reads until `needle` appears after what earlier calls consumed."""
        needle = needle.encode()
        deadline = time.monotonic() + timeout
        while needle not in self.out:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no %r in %r" % (needle, self.out[-400:]))
            r, _, _ = select.select([self.fd], [], [], left)
            if r:
                try:
                    data = os.read(self.fd, 4096)
                except OSError:
                    data = b""
                if not data:
                    raise EOFError("repl ended; no %r in %r" % (needle, self.out[-400:]))
                self.out += data
        i = self.out.index(needle) + len(needle)
        seen, self.out = self.out[:i], self.out[i:]
        return seen.decode(errors="replace")


def check(name, fn):
    try:
        fn()
        print("ok   " + name)
    except Exception as e:  # noqa: BLE001 - every failure is reported
        print("FAIL %s: %s" % (name, e))
        failures.append(name)


tmp = tempfile.mkdtemp(prefix="shmrepl-repl-test-")
sock = os.path.join(tmp, "engine.sock")
env = dict(os.environ)
env.update(SHMREPL_SOCKET=sock, SHMREPL_HISTORY=os.path.join(tmp, "history"),
           SHMREPL_ENGINE=ENGINE, TERM="dumb", HOME=tmp)
repl = None
try:
    repl = Repl(env)
    repl.expect(">>> ", 60)

    def expression():
        repl.send("1+1\r")
        seen = repl.expect(">>> ")
        assert "\n2\r\n" in seen.replace("\r\r", "\r") or "2\r\n>>> " in seen, seen

    def namespace():
        repl.send("x = 5\r")
        repl.expect(">>> ")
        repl.send("x*2\r")
        seen = repl.expect(">>> ")
        assert "10\r\n" in seen, seen

    def block():
        repl.send("for i in range(3):\r")
        repl.expect("... ")
        repl.send("    print(i * 7)\r")
        repl.expect("... ")
        repl.send("\r")
        seen = repl.expect(">>> ")
        assert "0\r\n7\r\n14\r\n" in seen, seen

    def traceback():
        repl.send("1/0\r")
        seen = repl.expect(">>> ")
        assert "Traceback (most recent call last):" in seen, seen
        assert "ZeroDivisionError: division by zero" in seen, seen

    def interrupt():
        repl.send("import time; time.sleep(30)\r")
        time.sleep(1.0)
        t0 = time.monotonic()
        repl.send("\x03")
        seen = repl.expect(">>> ", 5.0)
        assert time.monotonic() - t0 < 5.0
        assert "KeyboardInterrupt" in seen, seen
        repl.send("'after'\r")
        seen = repl.expect(">>> ")
        assert "'after'" in seen, seen

    def clear_line():
        repl.send("abc")
        time.sleep(0.3)
        repl.send("\x03")
        seen = repl.expect(">>> ", 5.0)
        assert "KeyboardInterrupt" in seen, seen
        repl.send("3*3\r")
        seen = repl.expect(">>> ")
        assert "9\r\n" in seen and "NameError" not in seen, seen

    def terminal():
        # The REPL's own terminal answers the code's isatty() and terminal size.
        import fcntl, struct, termios
        fcntl.ioctl(repl.fd, termios.TIOCSWINSZ, struct.pack("HHHH", 31, 97, 0, 0))
        repl.send("import os, sys; print(sys.stdout.isatty(), sys.stderr.isatty(), tuple(os.get_terminal_size()))\r")
        seen = repl.expect(">>> ")
        assert "True True (97, 31)\r\n" in seen, seen

    def completion():
        repl.send("pri\t")
        time.sleep(0.5)
        repl.send("('done')\r")
        # The line is redrawn after the completion: wait for the output itself.
        seen = repl.expect("\ndone\r\n")
        assert "Error" not in seen, seen
        repl.expect(">>> ")

    def eof():
        repl.send("\x04")
        deadline = time.monotonic() + 10
        while True:
            pid, status = os.waitpid(repl.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("still running after Ctrl-D")
            try:
                os.read(repl.fd, 4096)
            except OSError:
                time.sleep(0.05)
        assert os.waitstatus_to_exitcode(status) == 0, status
        repl.pid = None

    check("1+1 shows 2", expression)
    check("namespace kept", namespace)
    check("multi-line block", block)
    check("traceback", traceback)
    check("Ctrl-C cancels", interrupt)
    check("Ctrl-C clears the line", clear_line)
    check("isatty and terminal size", terminal)
    if os.environ.get("SHMREPL_REPL_HAS_LIBEDIT") == "1":
        check("tab completion", completion)
    check("Ctrl-D exits 0", eof)

    def exit_status():
        global repl
        repl = Repl(env)
        repl.expect(">>> ", 60)
        repl.send("exit(4)\r")
        deadline = time.monotonic() + 10
        while True:
            pid, status = os.waitpid(repl.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                raise TimeoutError("still running after exit(4)")
            try:
                os.read(repl.fd, 4096)
            except OSError:
                time.sleep(0.05)
        repl.pid = None
        assert os.waitstatus_to_exitcode(status) == 4, status

    check("exit(4) exits 4", exit_status)

    def wait_exit(timeout=10):
        """The repl's exit status as os.waitstatus_to_exitcode gives it (-N: signal N)."""
        deadline = time.monotonic() + timeout
        while True:
            pid, status = os.waitpid(repl.pid, os.WNOHANG)
            if pid:
                repl.pid = None
                return os.waitstatus_to_exitcode(status)
            if time.monotonic() > deadline:
                raise TimeoutError("repl still running")
            try:
                repl.out += os.read(repl.fd, 4096)
            except OSError:
                time.sleep(0.05)

    def fresh():
        global repl
        if repl.pid:
            os.kill(repl.pid, signal.SIGKILL)
            os.waitpid(repl.pid, 0)
        os.close(repl.fd)
        repl = Repl(env)
        repl.expect(">>> ", 60)

    def sigterm_to_handler():
        # As python3: a signal sent to the REPL while code runs reaches the code: its
        # handler runs and the prompt comes back.
        fresh()
        repl.send("import signal, time; got = []; signal.signal(signal.SIGTERM, "
                  "lambda s, f: got.append(s)); print('rea' + 'dy'); "
                  "_ = [time.sleep(0.05) for _ in range(600) if not got]; print('handled', got)\r")
        repl.expect("ready\r\n")
        os.kill(repl.pid, signal.SIGTERM)
        seen = repl.expect(">>> ")
        assert "handled [15]\r\n" in seen, seen
        repl.send("'still' + 'here'\r")
        seen = repl.expect(">>> ")
        assert "'stillhere'" in seen, seen

    def sigterm_at_prompt():
        # As python3: at the prompt SIGTERM ends the REPL by the signal (a shell shows
        # 143); the history is kept and the session closed.
        fresh()
        repl.send("'in' + 'history'\r")
        repl.expect(">>> ")
        os.kill(repl.pid, signal.SIGTERM)
        code = wait_exit()
        assert code == -signal.SIGTERM, code
        if os.environ.get("SHMREPL_REPL_HAS_LIBEDIT") == "1":
            with open(os.path.join(tmp, "history"), errors="replace") as f:
                assert "'history'" in f.read(), "history not written"

    def sighup_while_running():
        # No handler in the code: it dies of the signal, and the REPL with it.
        fresh()
        repl.send("import time; print('rea' + 'dy'); time.sleep(30)\r")
        repl.expect("ready\r\n")
        os.kill(repl.pid, signal.SIGHUP)
        code = wait_exit()
        assert code == -signal.SIGHUP, code

    check("SIGTERM while code runs reaches its handler", sigterm_to_handler)
    check("SIGTERM at the prompt ends the repl by the signal", sigterm_at_prompt)
    check("SIGHUP while code runs ends the repl by the signal", sighup_while_running)
finally:
    if repl is not None and repl.pid:
        os.kill(repl.pid, 9)
        os.waitpid(repl.pid, 0)
    subprocess.run([SHMREPL, "--socket", sock, "shutdown"], env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    shutil.rmtree(tmp, ignore_errors=True)

print("%d failed" % len(failures))
sys.exit(1 if failures else 0)
