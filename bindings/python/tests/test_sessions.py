"""Sessions: options (working folder, environment, stdin) and the death of a session's
worker (FINISHED ABORTED with its exit code and signal, then SessionDied)."""
import os
import pathlib
import shutil
import signal
import tempfile

import support
import shmrepl

ABORTED = shmrepl.FinishStatus.ABORTED
FINISHED = shmrepl.RecordKind.FINISHED
OUTPUT = shmrepl.RecordKind.OUTPUT


def run(session, code):
    """(stdout bytes, the FINISHED record's (status, exit code, signal), the execution)."""
    ex = session.execute(code)
    out, fin = b"", None
    with ex.reader() as r:
        for batch in r.batches(timeout=30):  # a session stuck on stdin: Timeout, not a hang
            for rec in batch:
                if rec.kind is OUTPUT:
                    out += bytes(rec.data)
                elif rec.kind is FINISHED:
                    fin = (rec.finish_status, rec.exit_code, rec.signal)
                elif rec.signal is not None:
                    raise AssertionError(f"only FINISHED carries a signal: {rec!r}")
    return out, fin, ex


class Options(support.EngineCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="shmrepl-py-wd-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def test_working_dir_env_and_a_pipe_as_stdin(self):
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        os.write(w, "from the pipe\nsecond line é\n".encode())
        os.close(w)  # the worker reads to EOF: it has its own copy of r
        with self.client.open_session(working_dir=self.dir, env={"X": "the value of X"},
                                      stdin=r) as s:
            code = ("import os, sys\nprint(os.getcwd())\nprint(os.environ['X'])\n"
                    "print(repr(sys.stdin.read()))\nprint(sorted(os.environ))\n")
            out, fin, ex = run(s, code)
            ex.close()
        self.assertEqual(out.decode().splitlines(), [
            os.path.realpath(self.dir), "the value of X",
            repr("from the pipe\nsecond line é\n"),
            "['X']",  # the whole environment, nothing of the engine's
        ])
        self.assertEqual(fin, (shmrepl.FinishStatus.OK, 0, 0))

    def test_file_object_as_stdin_and_path_as_working_dir(self):
        data = os.path.join(self.dir, "input.txt")
        with open(data, "w") as f:
            f.write("line 1\nline 2\n")
        sub = pathlib.Path(self.dir) / "sub"
        sub.mkdir()
        with open(data, "rb") as f:
            s = self.client.open_session(working_dir=sub, stdin=f)
        with s:  # the file is closed: the worker keeps its own descriptor
            out, fin, ex = run(s, "import os, sys\nprint(os.getcwd())\n"
                                  "print(sys.stdin.readlines())\n")
            ex.close()
        self.assertEqual(out.decode(), f"{os.path.realpath(sub)}\n['line 1\\n', 'line 2\\n']\n")
        self.assertEqual(fin, (shmrepl.FinishStatus.OK, 0, 0))

    def test_defaults_and_an_empty_environment(self):
        with self.client.open_session() as s:
            out, fin, ex = run(s, "import sys\nprint(repr(sys.stdin.read()))\n")
            ex.close()
        self.assertEqual(out, b"''\n")  # no stdin given: /dev/null
        with self.client.open_session(env={}) as s:
            out, fin, ex = run(s, "import os\nprint(dict(os.environ))\n")
            ex.close()
        self.assertEqual(out, b"{}\n")

    def test_bad_options(self):
        with self.assertRaises(shmrepl.NotFound) as cm:
            self.client.open_session(working_dir=os.path.join(self.dir, "missing"))
        self.assertEqual(cm.exception.status, -2)
        self.assertEqual(cm.exception.call, "shmrepl_session_open_ex")
        r, w = os.pipe()
        os.close(r)
        os.close(w)
        with self.assertRaises(shmrepl.InvalidArgument) as cm:  # the library's check
            self.client.open_session(stdin=r)
        self.assertEqual(cm.exception.call, "shmrepl_session_open_ex")
        for env in ({"A=B": "1"}, {"": "1"}, {"A": "x\0y"}):
            with self.subTest(env=env), self.assertRaises(shmrepl.InvalidArgument):
                self.client.open_session(env=env)  # the binding's own check
        with self.assertRaises(ValueError):
            self.client.open_session(stdin=-1)
        # Nothing above opened a session the client could use: this one still works.
        with self.client.open_session(env={"Y": "1"}) as s:
            out, _, ex = run(s, "import os\nprint(os.environ['Y'])\n")
            ex.close()
        self.assertEqual(out, b"1\n")


class WorkerDeath(support.EngineCase):
    def assert_dead(self, session, ex):
        for call in (lambda: session.execute("print('never')\n"), ex.cancel):
            with self.assertRaises(shmrepl.SessionDied) as cm:
                call()
            self.assertEqual(cm.exception.status, -18)
            self.assertIsInstance(cm.exception, shmrepl.ShmreplError)
        ex.close()
        session.close()  # the engine forgot the session already: closing is still fine
        # The engine and the client live on.
        with self.client.open_session() as s:
            out, fin, e2 = run(s, "print('next session')\n")
            e2.close()
        self.assertEqual((out, fin), (b"next session\n", (shmrepl.FinishStatus.OK, 0, 0)))

    def test_segfault(self):
        s = self.client.open_session()
        out, fin, ex = run(s, "print('before', flush=True)\nimport ctypes\nctypes.string_at(0)\n")
        self.assertEqual(out, b"before\n")
        self.assertEqual(fin, (ABORTED, 0, signal.SIGSEGV))
        self.assertEqual(signal.SIGSEGV, 11)
        self.assert_dead(s, ex)

    def test_os_exit_ends_the_worker(self):
        s = self.client.open_session()
        out, fin, ex = run(s, "import os\ntry:\n    os._exit(7)\n"
                              "finally:\n    print('finally must not run')\n")
        self.assertEqual(out, b"")
        self.assertEqual(fin, (ABORTED, 7, 0))
        self.assert_dead(s, ex)

    def test_sys_exit_keeps_the_session(self):
        # SystemExit is not a death: EXITED, and the session goes on.
        s = self.client.open_session()
        _, fin, ex = run(s, "import sys\nsys.exit(3)\n")
        ex.close()
        self.assertEqual(fin, (shmrepl.FinishStatus.EXITED, 3, 0))
        out, fin, ex = run(s, "print('still here')\n")
        ex.close()
        self.assertEqual((out, fin), (b"still here\n", (shmrepl.FinishStatus.OK, 0, 0)))
        s.close()


if __name__ == "__main__":
    import unittest
    unittest.main()


class Input(support.EngineCase):
    """input() in a session without stdin: INPUT_REQUEST, answered with send_input."""

    def test_input_round_trip_and_getpass(self):
        code = ("import getpass\nname = input('who? ')\nprint('hi', name)\n"
                "pw = getpass.getpass('pw: ')\nprint(len(pw))\n")
        ex = self.session.execute(code, script=True)
        out, requests, fin = b"", [], None
        with ex, ex.reader() as r:
            for batch in r.batches(timeout=30):
                for rec in batch:
                    if rec.kind is OUTPUT:
                        out += bytes(rec.data)
                    elif rec.kind is shmrepl.RecordKind.INPUT_REQUEST:
                        requests.append((bytes(rec.data).decode(), rec.password))
                        ex.send_input("X\n" if len(requests) == 1 else "secret")
                    elif rec.kind is FINISHED:
                        fin = rec.finish_status
            with self.assertRaises(shmrepl.StateError):  # finished: nothing waits
                ex.send_input("late")
        self.assertEqual(requests, [("who? ", False), ("pw: ", True)])
        self.assertEqual(out, b"hi X\n6\n")
        self.assertEqual(fin, shmrepl.FinishStatus.OK)


class Terminal(support.EngineCase):
    """The caller's stdout/stderr answer isatty() and the terminal size, never written."""

    def test_a_pty_and_dev_null(self):
        import fcntl
        import struct
        import termios
        master, slave = os.openpty()
        self.addCleanup(os.close, master)
        self.addCleanup(os.close, slave)
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 99, 0, 0))
        with open(os.devnull, "w") as null, \
                self.client.open_session(stdout=slave, stderr=null) as s:
            code = ("import os, sys\nprint(sys.stdout.isatty(), sys.stderr.isatty(), "
                    "tuple(os.get_terminal_size()))\n")
            out, fin, ex = run(s, code)
            ex.close()
        self.assertEqual(out, b"True False (99, 33)\n")
        self.assertEqual(fin, (shmrepl.FinishStatus.OK, 0, 0))
        with self.client.open_session() as s:  # without: as before
            out, fin, ex = run(s, "import sys\nprint(sys.stdout.isatty())\n")
            ex.close()
        self.assertEqual(out, b"False\n")
