"""The engine's limits (E_LIMIT, 1.2) and the client's request timeout (1.2)."""
import os
import shutil
import subprocess
import time
import unittest

import support
from support import shmrepl


class SessionHog(unittest.TestCase):
    """A client opening sessions without end gets LimitReached at its limit."""

    def test_session_hog_gets_e_limit(self):
        d = support.private_socket_dir()
        # The auto-started engine takes its limits from our environment.
        os.environ["SHMREPL_MAX_CLIENT_SESSIONS"] = "2"
        try:
            c = support.connect(d)
        finally:
            del os.environ["SHMREPL_MAX_CLIENT_SESSIONS"]
        try:
            sessions = [c.open_session(), c.open_session()]
            with self.assertRaises(shmrepl.LimitReached) as cm:
                c.open_session()
            self.assertEqual(cm.exception.status, -19)
            self.assertIn("--max-client-sessions", cm.exception.detail)
            sessions.pop().close()
            sessions.append(c.open_session())  # room again
            for s in sessions:
                s.close()
        finally:
            c.shutdown_engine()
            shutil.rmtree(d, ignore_errors=True)


@unittest.skipUnless(os.environ.get("SHMREPL_TEST_SILENT_ENGINE"), "needs $SHMREPL_TEST_SILENT_ENGINE")
class RequestTimeout(unittest.TestCase):
    """An engine that answers Hello and then nothing: request_timeout ends the wait."""

    def test_request_timeout(self):
        d = support.private_socket_dir()
        sock = os.path.join(d, "silent.sock")
        peer = subprocess.Popen([os.environ["SHMREPL_TEST_SILENT_ENGINE"], sock])
        try:
            deadline = time.monotonic() + 10
            while not os.path.exists(sock) and time.monotonic() < deadline:
                time.sleep(0.01)
            c = shmrepl.Client(socket_path=sock, autostart=False, request_timeout=0.3)
            t0 = time.monotonic()
            with self.assertRaises(shmrepl.Timeout):
                c.open_session()
            self.assertGreaterEqual(time.monotonic() - t0, 0.25)
            self.assertLess(time.monotonic() - t0, 5)
            with self.assertRaises(shmrepl.StateError):
                c.open_session()
            c.close()
        finally:
            peer.terminate()
            peer.wait(5)
            shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    unittest.main()
