"""Errors are exceptions of the binding with the status and last_error text; never a crash."""
import os
import shutil
import signal
import time
import unittest

import support
import shmrepl


class Errors(support.EngineCase):
    def test_closed_reader_is_the_bindings_own_error(self):
        with self.session.execute("print('x')\n") as ex:
            r = ex.reader()
            rec = r.next(timeout=30)
            r.close()
            r.close()  # idempotent
            self.assertTrue(r.closed)
            for call in (lambda: r.next(timeout=0), lambda: r.next_batch(), r.release,
                         r.mapping, lambda: r.held, lambda: r.execution_id, lambda: rec.data):
                with self.assertRaises(shmrepl.Closed) as cm:
                    call()
                self.assertEqual(cm.exception.status, -15)  # E_STATE
            with self.assertRaises(shmrepl.Closed):
                list(r)

    def test_unknown_ring(self):
        with self.assertRaises(shmrepl.NotFound) as cm:
            shmrepl.Reader(f"shmrepl-python-test-no-such-ring-{os.getpid()}")
        self.assertEqual(cm.exception.status, -2)
        self.assertIn("no-such-ring", cm.exception.detail)  # shmrepl_last_error() text

    def test_bad_ring_name(self):
        for name in ("", "a/b", "../x", ".hidden", "x" * 300):
            with self.subTest(name=name), self.assertRaises(shmrepl.InvalidArgument) as cm:
                shmrepl.Reader(name)
            self.assertEqual(cm.exception.status, -1)
            self.assertIsInstance(cm.exception, ValueError)

    def test_timeout_and_again(self):
        with self.session.execute("import time\ntime.sleep(30)\n") as ex, ex.reader() as r:
            self.assertIs(r.next(timeout=30).kind, shmrepl.RecordKind.STARTED)
            r.release()
            t0 = time.monotonic()
            with self.assertRaises(shmrepl.Timeout) as cm:
                r.next(timeout=0.2)
            self.assertGreaterEqual(time.monotonic() - t0, 0.15)
            self.assertEqual(cm.exception.status, -4)
            self.assertIsInstance(cm.exception, TimeoutError)
            with self.assertRaises(shmrepl.Again) as cm:
                r.next_batch(16, timeout=0)
            self.assertEqual(cm.exception.status, -3)
            ex.cancel()
            recs = support.read_all(r)
        self.assertEqual(recs[-1][0], shmrepl.RecordKind.FINISHED)
        self.assertEqual(recs[-1][5], shmrepl.FinishStatus.CANCELLED)
        self.assertIn(b"KeyboardInterrupt", b"".join(x[2] for x in recs))

    def test_error_details(self):
        code = "def f(n):\n    raise ValueError(f'bad {n}')\nf(7)\n"
        with self.session.execute(code, filename="prog.py") as ex, ex.reader() as r:
            errors = []
            for rec in r:
                if rec.kind is shmrepl.RecordKind.ERROR:
                    errors.append((rec.error(), rec.text))
                elif rec.kind is shmrepl.RecordKind.OUTPUT:
                    with self.assertRaises(shmrepl.InvalidArgument):
                        rec.error()  # not an ERROR record
        self.assertEqual(len(errors), 1)
        info, text = errors[0]
        self.assertEqual((info.ename, info.evalue, text), ("ValueError", "bad 7", "bad 7"))
        self.assertEqual(info.traceback[0], "Traceback (most recent call last):\n")
        self.assertIn('File "prog.py", line 3', info.traceback[1])
        self.assertEqual(info.traceback[-1], "ValueError: bad 7\n")

    def test_execute_options(self):
        code = "import sys\nprint(sys.argv)\n40 + 2\n"
        _, _, recs = self.run_code(code, argv=["prog", "a b", "é"], client_execution_id="opt-1")
        self.assertEqual(recs[0][2], b"opt-1")
        self.assertEqual(recs[1][2], "['prog', 'a b', 'é']\n".encode())
        self.assertEqual((recs[2][0], recs[2][2]), (shmrepl.RecordKind.RESULT, b"42"))
        _, _, recs = self.run_code(code, argv=["p"], script=True)
        self.assertEqual([x[0].name for x in recs], ["STARTED", "OUTPUT", "FINISHED"])

    def test_newest_starts_after_attach(self):
        with self.session.execute("print('a')\nimport time\ntime.sleep(0.5)\nprint('b')\n") as ex:
            with ex.reader() as first:
                self.assertEqual(first.next(timeout=30).seq, 0)
                with ex.reader(shmrepl.NEWEST) as r:
                    recs = support.read_all(r)
                    self.assertGreater(recs[0][3], 0)
                    self.assertEqual(recs[-1][0], shmrepl.RecordKind.FINISHED)

    def test_background_ring(self):
        name = self.session.background_ring
        self.assertTrue(name)
        code = ("import threading, time\n"
                "def late():\n    time.sleep(0.3)\n    print('from the background')\n"
                "threading.Thread(target=late).start()\n")
        with shmrepl.Reader(name, shmrepl.NEWEST) as bg:
            eid, _, recs = self.run_code(code)
            self.assertEqual(recs[-1][0], shmrepl.RecordKind.FINISHED)
            got = b""
            deadline = time.monotonic() + 30
            while b"from the background" not in got and time.monotonic() < deadline:
                try:
                    rec = bg.next(timeout=1)
                except shmrepl.Timeout:
                    continue
                if rec.kind is shmrepl.RecordKind.OUTPUT:
                    self.assertEqual(rec.execution_id, eid)
                    got += bytes(rec.data)
                bg.release()
        self.assertIn(b"from the background", got)

    def test_closed_client_and_session(self):
        c = support.connect(self.socket_dir)
        s = c.open_session()
        ex = s.execute("pass\n")
        c.close()
        c.close()
        with self.assertRaises(shmrepl.Closed):
            c.open_session()
        with self.assertRaises(shmrepl.Closed):
            ex.cancel()
        with self.assertRaises(shmrepl.Closed):
            c.engine_pid
        s.close()   # the engine closed it with the client
        ex.close()  # still allowed after the client
        with self.assertRaises(shmrepl.Closed):
            ex.reader()
        s2 = self.client.open_session()
        s2.close()
        with self.assertRaises(shmrepl.Closed):
            s2.execute("pass")

    def test_no_engine_autostart_off(self):
        d = support.private_socket_dir()
        try:
            with self.assertRaises(shmrepl.ConnectError) as cm:
                support.connect(d, autostart=False)
            self.assertEqual(cm.exception.status, -16)
            self.assertIsInstance(cm.exception, ConnectionError)
        finally:
            shutil.rmtree(d)


class DeadEngine(unittest.TestCase):
    """SIGKILL the engine: its workers die with it. Readers get every published record then
    ProducerDied (nobody is left to write FINISHED); requests on the client's connection
    get EngineDied, those on a session (its worker's connection) SessionDied; the rings we
    know of are removed by hand."""

    def test_engine_killed(self):
        d = support.private_socket_dir()
        self.addCleanup(shutil.rmtree, d, True)
        client = support.connect(d)
        self.addCleanup(client.close)
        session = client.open_session()
        bg = session.background_ring
        self.addCleanup(support.unlink_ring, bg)
        code = ("import time\nfor i in range(100):\n    print('line', i)\n"
                "print('ready', flush=True)\ntime.sleep(120)\n")
        ex = session.execute(code)
        self.addCleanup(ex.close)
        self.addCleanup(support.unlink_ring, ex.ring_name)
        kept = ex.reader()       # reads nothing until the engine is dead
        self.addCleanup(kept.close)
        with ex.reader() as watcher:
            seen = b""
            while b"ready" not in seen:
                seen += bytes(watcher.next(timeout=30).data)
                watcher.release()
        pid = client.engine_pid
        self.assertGreater(pid, 0)
        os.kill(pid, signal.SIGKILL)

        records = []
        with self.assertRaises(shmrepl.ProducerDied) as cm:
            while True:
                b = kept.next_batch(256, timeout=30)
                self.assertIsNotNone(b, "E_EOF from a ring whose writer was killed")
                records.extend((r.kind, bytes(r.data)) for r in b)
                b.release()
        self.assertEqual(cm.exception.status, -8)
        self.assertEqual(records[0][0], shmrepl.RecordKind.STARTED)
        self.assertEqual(len(records), 102)  # STARTED, 100 lines, 'ready'
        self.assertEqual(records[-1], (shmrepl.RecordKind.OUTPUT, b"ready\n"))
        self.assertNotIn(shmrepl.RecordKind.FINISHED, [k for k, _ in records])

        with self.assertRaises(shmrepl.EngineDied) as cm:
            client.open_session()
        self.assertEqual(cm.exception.status, -13)
        with self.assertRaises(shmrepl.SessionDied) as cm:
            ex.cancel()
        self.assertEqual(cm.exception.status, -18)
        with self.assertRaises(shmrepl.SessionDied):
            session.execute("pass\n")
        with self.assertRaises(shmrepl.EngineDied):
            client.shutdown_engine()
        self.assertTrue(client.closed)

        for name in (ex.ring_name, bg):
            support.unlink_ring(name)
            self.assertFalse(name and support.ring_exists(name), name)


if __name__ == "__main__":
    unittest.main()
