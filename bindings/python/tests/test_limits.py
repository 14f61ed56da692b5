"""Per-execution limits (libshmrepl 1.1): timeout and memory_limit on ClientSession.execute
and on the asyncio ExecuteMessage; FINISHED TIMEOUT / MEMORY_LIMIT."""
import asyncio
import datetime
import os
import shutil
import time
import unittest

import support
import shmrepl
from shmrepl import ExecuteMessage, MessageType, Session

FS = shmrepl.FinishStatus
FINISHED = shmrepl.RecordKind.FINISHED
OUTPUT = shmrepl.RecordKind.OUTPUT
ERROR = shmrepl.RecordKind.ERROR

SLEEPER = "import time; print('start', flush=True); time.sleep(60)\n"


def run(session, code, **kw):
    """(stdout bytes, FINISHED's status, the ERROR record's ename or None, seconds taken)."""
    t0 = time.monotonic()
    out, status, ename = b"", None, None
    with session.execute(code, **kw) as ex, ex.reader() as r:
        for batch in r.batches(timeout=30):
            for rec in batch:
                if rec.kind is OUTPUT and rec.stream is shmrepl.Stream.STDOUT:
                    out += bytes(rec.data)
                elif rec.kind is ERROR:
                    ename = rec.error().ename
                elif rec.kind is FINISHED:
                    status = rec.finish_status
    return out, status, ename, time.monotonic() - t0


class Limits(support.EngineCase):
    def test_timeout_interrupts_and_the_session_goes_on(self):
        for timeout in (0.3, datetime.timedelta(milliseconds=300)):
            with self.subTest(timeout=timeout):
                out, status, ename, took = run(self.session, SLEEPER, timeout=timeout)
                self.assertEqual(out, b"start\n")
                self.assertIs(status, FS.TIMEOUT)
                self.assertEqual(ename, "KeyboardInterrupt")
                self.assertGreaterEqual(took, 0.29)
                self.assertLess(took, 3.0)
                # The session (its worker and its state) still works.
                out, status, _, _ = run(self.session, "print('still here')\n")
                self.assertEqual((out, status), (b"still here\n", FS.OK))

    def test_a_timeout_not_reached_is_ok(self):
        out, status, ename, _ = run(self.session, "print(6 * 7)\n", timeout=30)
        self.assertEqual((out, status, ename), (b"42\n", FS.OK, None))

    def test_memory_limit(self):
        out, status, ename, _ = run(self.session, "x = bytearray(512 << 20)\n",
                                    memory_limit=64 << 20)
        self.assertIs(status, FS.MEMORY_LIMIT)
        self.assertEqual(ename, "MemoryError")
        # Within the limit, and the limit does not outlive its execution.
        out, status, _, _ = run(self.session, "x = bytearray(1 << 20); print(len(x))\n",
                                memory_limit=64 << 20)
        self.assertEqual((out, status), (b"1048576\n", FS.OK))
        out, status, _, _ = run(self.session, "x = bytearray(96 << 20); print(len(x)); del x\n")
        self.assertEqual((out, status), (str(96 << 20).encode() + b"\n", FS.OK))

    def test_ignoring_the_interrupt_gets_the_worker_killed(self):
        s = self.client.open_session()
        code = ("import time\nprint('start', flush=True)\nwhile True:\n    try:\n"
                "        time.sleep(60)\n    except KeyboardInterrupt:\n        pass\n")
        out, status, _, took = run(s, code, timeout=0.2)
        self.assertEqual(out, b"start\n")
        self.assertIs(status, FS.TIMEOUT)
        self.assertGreater(took, 3.0)   # interrupted at 0.2 s, killed 3 s later
        self.assertLess(took, 15.0)
        with self.assertRaises(shmrepl.SessionDied):
            s.execute("print('never')\n")
        s.close()

    def test_bad_limits_raise_before_anything_runs(self):
        for kw in ({"timeout": 0}, {"timeout": -1.0}, {"timeout": float("nan")},
                   {"timeout": float("inf")}, {"timeout": datetime.timedelta(0)},
                   {"timeout": "1"}, {"timeout": True}, {"timeout": 2.0**63},
                   {"memory_limit": 0}, {"memory_limit": -1}, {"memory_limit": 1.5},
                   {"memory_limit": 2**64}, {"memory_limit": True}):
            with self.subTest(**kw), self.assertRaises(shmrepl.InvalidArgument) as cm:
                self.session.execute("print('never')\n", **kw)
            self.assertIsInstance(cm.exception, ValueError)


class AsyncLimits(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.dir = support.private_socket_dir()
        self.sock = os.path.join(self.dir, "engine.sock")

    async def asyncTearDown(self):
        def shutdown():
            try:
                with shmrepl.Client(socket_path=self.sock, autostart=False) as c:
                    c.shutdown_engine()
            except shmrepl.ConnectError:
                pass
        await asyncio.get_running_loop().run_in_executor(None, shutdown)
        shutil.rmtree(self.dir, ignore_errors=True)

    async def collect(self, session, msg):
        return [m async for m in session.execute(msg)]

    async def test_execute_message_limits(self):
        self.assertEqual((ExecuteMessage(id="x").timeout, ExecuteMessage(id="x").memory_limit),
                         (None, None))
        async with Session(socket_path=self.sock) as session:
            t0 = time.monotonic()
            msgs = await self.collect(session, ExecuteMessage(
                id="t-1", code=SLEEPER, timeout=datetime.timedelta(milliseconds=300)))
            self.assertLess(time.monotonic() - t0, 3.0)
            self.assertEqual([m.data for m in msgs if m.type == MessageType.OUTPUT
                              and m.stream is shmrepl.Stream.STDOUT], ["start\n"])
            self.assertEqual(msgs[-1].type, MessageType.FINISHED)
            self.assertIs(msgs[-1].finish_status, FS.TIMEOUT)

            msgs = await self.collect(session, ExecuteMessage(
                id="m-1", code="x = bytearray(512 << 20)\n", memory_limit=64 << 20))
            self.assertIs(msgs[-1].finish_status, FS.MEMORY_LIMIT)
            self.assertEqual([m.error.ename for m in msgs if m.type == MessageType.ERROR],
                             ["MemoryError"])

            msgs = await self.collect(session, ExecuteMessage(id="ok", code="print('ok')\n",
                                                              timeout=10.0))
            self.assertIs(msgs[-1].finish_status, FS.OK)
            with self.assertRaises(shmrepl.InvalidArgument):
                session.execute(ExecuteMessage(id="bad", code="1\n", timeout=-1))


if __name__ == "__main__":
    unittest.main()
