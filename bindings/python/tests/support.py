"""Shared helpers of the binding's tests: a private engine per test class."""
import os
import shutil
import tempfile
import unittest
from pathlib import Path

# The engine inherits our environment when it is auto-started; tests must not depend on it.
os.environ.pop("PYTHONUNBUFFERED", None)

HERE = Path(__file__).resolve().parent
try:
    import shmrepl  # noqa: E402  (PYTHONPATH=bindings/python, or an installed package)
except ModuleNotFoundError:
    import sys
    sys.path.insert(0, str(HERE.parent))
    import shmrepl  # noqa: E402
# The checkout the tests sit in (bindings/python/tests), or a path where nothing exists.
REPO = HERE.parents[2] if len(HERE.parents) > 2 else HERE / "no-checkout"


def private_socket_dir():
    return tempfile.mkdtemp(prefix="shmrepl-py-")


def connect(socket_dir, **kw):
    """A client of a private engine (auto-started; SHMREPL_ENGINE or next to the library)."""
    kw.setdefault("connect_timeout", 20)
    return shmrepl.Client(socket_path=os.path.join(socket_dir, "engine.sock"), **kw)


def unlink_ring(name):
    """Removes a ring's shared-memory name (as the API gave it) if it is still there."""
    if name:
        try:
            os.unlink(os.path.join("/dev/shm", name.lstrip("/")))
        except FileNotFoundError:
            pass


def ring_exists(name):
    return os.path.exists(os.path.join("/dev/shm", name.lstrip("/")))


def read_all(reader, timeout=30):
    """Every record of a reader until E_EOF as plain tuples (copies)."""
    out = []
    for batch in reader.batches(timeout=timeout):
        for r in batch:
            out.append((r.kind, r.stream, bytes(r.data), r.seq, r.execution_id,
                        r.finish_status, r.exit_code))
    return out


class EngineCase(unittest.TestCase):
    """One private engine for the class: self.client, self.session. Shut down at the end."""

    @classmethod
    def setUpClass(cls):
        cls.socket_dir = private_socket_dir()
        cls.client = connect(cls.socket_dir)
        cls.session = cls.client.open_session()

    @classmethod
    def tearDownClass(cls):
        try:
            if not cls.client.closed:
                cls.client.shutdown_engine()
        finally:
            shutil.rmtree(cls.socket_dir, ignore_errors=True)

    def run_code(self, code, **kw):
        """Executes code and returns (execution id, ring name, records)."""
        with self.session.execute(code, **kw) as ex, ex.reader() as r:
            return ex.id, ex.ring_name, read_all(r)
