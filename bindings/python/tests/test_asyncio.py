"""The asyncio API in the shape users' code has: Session, ExecuteMessage, MessageType."""
import asyncio
import os
import shutil
import threading
import time
import unittest

import support
from shmrepl import Session, ExecuteMessage, MessageType
import shmrepl


class AsyncSession(unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.dir = support.private_socket_dir()
        self.sock = os.path.join(self.dir, "engine.sock")

    async def asyncTearDown(self):
        # Shut this test's engine down (a fresh client: the test's own may be stopped).
        def shutdown():
            try:
                with shmrepl.Client(socket_path=self.sock, autostart=False) as c:
                    c.shutdown_engine()
            except shmrepl.ConnectError:
                pass
        await asyncio.get_running_loop().run_in_executor(None, shutdown)
        shutil.rmtree(self.dir, ignore_errors=True)

    async def test_large_output_in_the_users_shape(self):
        code = 'for i in range(10000):\n    print(f"Line {i}: " + "x" * 100)\n'
        session = Session(socket_path=self.sock)
        await session.start()
        out = []
        msgs = []
        async for msg in session.execute(ExecuteMessage(id="large-1", timestamp=0, code=code)):
            if msg.type == MessageType.OUTPUT:
                out.append(msg.data)
            msgs.append((msg.type, msg.seq, msg.execution_id, msg.engine_execution_id))
        await session.stop()
        text = "".join(out)
        lines = text.splitlines()
        self.assertEqual(len(lines), 10000)
        self.assertEqual(lines, [f"Line {i}: " + "x" * 100 for i in range(10000)])
        self.assertGreater(len(text.encode()), 1_000_000)
        self.assertTrue(all(isinstance(d, str) for d in out))
        self.assertEqual(msgs[0][0], MessageType.STARTED)
        self.assertEqual(msgs[-1][0], MessageType.FINISHED)
        self.assertEqual([m[1] for m in msgs], list(range(len(msgs))))
        self.assertEqual({m[2] for m in msgs}, {"large-1"})
        self.assertEqual(len({m[3] for m in msgs}), 1)

    async def test_message_fields_and_views(self):
        code = ("import sys\nprint('out')\nsys.stderr.write('err\\n')\n"
                "sys.stdout.buffer.write(b'\\xff\\xfe\\n')\nsys.stdout.flush()\n6 * 7\n")
        async with Session(socket_path=self.sock) as session:
            got = []
            prev_view = None
            async for msg in session.execute(ExecuteMessage(id="m-1", code=code)):
                if prev_view is not None:
                    with self.assertRaises(ValueError):   # valid until the next message
                        bytes(prev_view)
                    with self.assertRaises(shmrepl.Closed):
                        got[-1].view
                if got and got[-1].type == MessageType.OUTPUT:
                    self.assertGreater(len(got[-1].data), 0)  # data is a copy: still there
                got.append(msg)
                self.assertTrue(msg.view.readonly)
                self.assertEqual(bytes(msg.view),
                                 msg.data.encode("utf-8", "surrogateescape"))
                prev_view = msg.view
            self.assertGreater(session.engine_pid, 0)
        kinds = [m.type for m in got]
        self.assertEqual(kinds[0], MessageType.STARTED)
        self.assertEqual(got[0].data, "m-1")
        outs = [(m.stream, m.data) for m in got if m.type == MessageType.OUTPUT]
        self.assertIn((shmrepl.Stream.STDOUT, "out\n"), outs)
        self.assertIn((shmrepl.Stream.STDERR, "err\n"), outs)
        # Undecodable bytes survive as surrogates.
        self.assertIn((shmrepl.Stream.STDOUT, "\udcff\udcfe\n"), outs)
        res = [m.data for m in got if m.type == MessageType.RESULT]
        self.assertEqual(res, ["42"])
        fin = got[-1]
        self.assertEqual(fin.type, MessageType.FINISHED)
        self.assertEqual((fin.finish_status, fin.exit_code), (shmrepl.FinishStatus.OK, 0))
        self.assertEqual({m.execution_id for m in got}, {"m-1"})
        self.assertEqual(len({m.engine_execution_id for m in got}), 1)

    async def test_error_message(self):
        async with Session(socket_path=self.sock) as session:
            got = [m async for m in session.execute(
                ExecuteMessage(id="e-1", code="raise KeyError('nope')\n"))]
        err = [m for m in got if m.type == MessageType.ERROR]
        self.assertEqual(len(err), 1)
        self.assertEqual(err[0].error.ename, "KeyError")
        self.assertEqual(err[0].data, "'nope'")
        self.assertEqual(got[-1].finish_status, shmrepl.FinishStatus.ERROR)

    async def test_task_cancellation_cancels_the_execution(self):
        code = "import time\nprint('running', flush=True)\nwhile True:\n    time.sleep(0.01)\n"
        async with Session(socket_path=self.sock) as session:
            first = asyncio.Event()
            seen = []

            async def consume():
                async for msg in session.execute(ExecuteMessage(id="loop-1", code=code)):
                    seen.append(msg.type)
                    if msg.type == MessageType.OUTPUT:
                        first.set()

            task = asyncio.create_task(consume())
            await asyncio.wait_for(first.wait(), 30)
            # The loop stays responsive while the worker waits on the ring.
            t0 = time.monotonic()
            await asyncio.sleep(0.05)
            self.assertLess(time.monotonic() - t0, 0.5)
            task.cancel()
            with self.assertRaises(asyncio.CancelledError):
                await task
            self.assertNotIn(MessageType.FINISHED, seen)
            # The session runs one execution at a time: this one only runs if the
            # cancelled one ended.
            got = [m async for m in session.execute(ExecuteMessage(id="after", code="print('after')\n"))]
            self.assertIn("after\n", [m.data for m in got])
            self.assertEqual(got[-1].finish_status, shmrepl.FinishStatus.OK)
        # stop() waited for the cancelled execution's cleanup (reader closed on its worker).
        self.assertEqual([t for t in threading.enumerate() if t.name.startswith("shmrepl-exec")], [])

    async def test_breaking_out_early_cancels(self):
        code = "import time\nfor i in range(10**9):\n    print(i)\n    time.sleep(0.001)\n"
        async with Session(socket_path=self.sock) as session:
            agen = session.execute(ExecuteMessage(id="b-1", code=code))
            async for msg in agen:
                if msg.type == MessageType.OUTPUT:
                    break
            await agen.aclose()
            got = [m async for m in session.execute(ExecuteMessage(id="b-2", code="1\n"))]
            self.assertEqual(got[-1].finish_status, shmrepl.FinishStatus.OK)

    async def test_not_started_and_no_engine(self):
        s = Session(socket_path=self.sock)
        with self.assertRaises(shmrepl.StateError):
            s.execute(ExecuteMessage(id="x", code="pass"))
        s = Session(socket_path=os.path.join(self.dir, "none.sock"), autostart=False)
        with self.assertRaises(shmrepl.ConnectError):
            await s.start()

    @staticmethod
    async def _collect(session, message):
        return [m async for m in session.execute(message)]

    async def test_session_options_and_a_crash(self):
        r, w = os.pipe()
        self.addCleanup(os.close, r)
        os.write(w, b"piped in\n")
        os.close(w)
        wd = os.path.join(self.dir, "wd")
        os.mkdir(wd)
        code = ("import os, sys\nprint(os.getcwd())\nprint(os.environ['X'])\n"
                "print(sys.stdin.read(), end='')\nprint(sorted(os.environ))\n")
        async with Session(socket_path=self.sock, working_dir=wd, env={"X": "x value"},
                           stdin=r) as session:
            async def collect(message):  # bounded: a session stuck on stdin fails, not hangs
                return await asyncio.wait_for(self._collect(session, message), 30)

            got = await collect(ExecuteMessage(id="o-1", code=code))
            self.assertEqual("".join(m.data for m in got if m.type == MessageType.OUTPUT),
                             f"{os.path.realpath(wd)}\nx value\npiped in\n['X']\n")
            self.assertEqual((got[-1].type, got[-1].finish_status, got[-1].signal),
                             (MessageType.FINISHED, shmrepl.FinishStatus.OK, 0))
            self.assertEqual({m.signal for m in got[:-1]}, {None})  # FINISHED only

            crash = "print('before', flush=True)\nimport ctypes; ctypes.string_at(0)\n"
            got = await collect(ExecuteMessage(id="o-2", code=crash))
            self.assertEqual([(m.type, m.data) for m in got[:-1]],
                             [(MessageType.STARTED, "o-2"), (MessageType.OUTPUT, "before\n")])
            fin = got[-1]
            self.assertEqual((fin.type, fin.finish_status, fin.exit_code, fin.signal),
                             (MessageType.FINISHED, shmrepl.FinishStatus.ABORTED, 0, 11))
            with self.assertRaises(shmrepl.SessionDied) as cm:
                await collect(ExecuteMessage(id="o-3", code="pass\n"))
            self.assertEqual(cm.exception.status, -18)
        # stop() closed the dead session without an error.

    async def test_input_request_answered_with_send_input(self):
        code = "name = input('who? ')\nprint('hi', name)\n"
        async with Session(socket_path=self.sock) as session:
            async def run():
                got = []
                async for m in session.execute(ExecuteMessage(id="in-1", code=code)):
                    got.append(m)
                    if m.type == MessageType.INPUT_REQUEST:
                        self.assertEqual((m.data, m.password), ("who? ", False))
                        await session.send_input(m, "X\n")
                return got
            got = await asyncio.wait_for(run(), 30)
            self.assertEqual([m.type for m in got if m.type == MessageType.INPUT_REQUEST],
                             [MessageType.INPUT_REQUEST])
            self.assertEqual("".join(m.data for m in got if m.type == MessageType.OUTPUT),
                             "hi X\n")
            self.assertEqual(got[-1].finish_status, shmrepl.FinishStatus.OK)
            with self.assertRaises(shmrepl.StateError):  # no longer running
                await session.send_input(got[-1], "late")

    async def test_engine_death_raises(self):
        session = Session(socket_path=self.sock)
        await session.start()
        rings = [session.background_ring]
        self.assertTrue(rings[0])
        code = "import time\nprint('up', flush=True)\ntime.sleep(120)\n"
        seen = []
        with self.assertRaises(shmrepl.ProducerDied):
            async for msg in session.execute(ExecuteMessage(id="d-1", code=code)):
                seen.append(msg.type)
                rings.append(msg.ring_name)
                if msg.type == MessageType.OUTPUT:
                    os.kill(session.engine_pid, 9)
        self.assertEqual(seen, [MessageType.STARTED, MessageType.OUTPUT])
        with self.assertRaises(shmrepl.EngineDied):
            await session.stop(shutdown_engine=True)
        # Remove the rings the dead engine left, by the names the API gave.
        for name in set(rings):
            support.unlink_ring(name)
            self.assertFalse(support.ring_exists(name))

if __name__ == "__main__":
    unittest.main()
