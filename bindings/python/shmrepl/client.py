"""The blocking client: connect to an engine, open sessions, execute code, read rings."""
import ctypes
import datetime
import math
import operator
import os
import threading

from . import _lib
from .errors import Closed, InvalidArgument, StateError, error_for
from .reader import Reader, Start, timeout_ns

_L = _lib.lib


def _enc(s):
    if s is None:
        return None
    return os.fsencode(s) if not isinstance(s, bytes) else s


_INT64_MAX = 2**63 - 1
_UINT64_MAX = 2**64 - 1


def _execute_limits(timeout, memory_limit):
    """(timeout_ns, memory_limit) of shmrepl_execute_options_t; 0 means no limit.
    timeout: None, or seconds > 0 (int/float) or a datetime.timedelta > 0.
    memory_limit: None, or bytes > 0 (an int). Anything else raises InvalidArgument."""
    t_ns = 0
    if timeout is not None:
        if isinstance(timeout, datetime.timedelta):
            # Exact: timedelta is whole microseconds.
            t_ns = ((timeout.days * 86400 + timeout.seconds) * 1_000_000
                    + timeout.microseconds) * 1000
            ok = t_ns > 0
        elif isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise InvalidArgument(_lib.E_INVALID, f"timeout must be seconds or a timedelta, "
                                  f"not {type(timeout).__name__}", "execute")
        else:
            ok = timeout > 0 and math.isfinite(timeout)
            if ok:
                t_ns = max(1, round(timeout * 1_000_000_000) if isinstance(timeout, float)
                           else timeout * 1_000_000_000)
        if not ok or t_ns > _INT64_MAX:
            raise InvalidArgument(_lib.E_INVALID, f"timeout {timeout!r} is not a duration "
                                  f"> 0 that fits in int64 nanoseconds (None: no timeout)",
                                  "execute")
    m = 0
    if memory_limit is not None:
        try:
            if isinstance(memory_limit, bool):
                raise TypeError
            m = operator.index(memory_limit)
        except TypeError:
            raise InvalidArgument(_lib.E_INVALID, f"memory_limit must be an int (bytes), not "
                                  f"{type(memory_limit).__name__}", "execute") from None
        if not 0 < m <= _UINT64_MAX:
            raise InvalidArgument(_lib.E_INVALID, f"memory_limit {memory_limit!r} is not a "
                                  f"byte count > 0 (None: no limit)", "execute")
    return t_ns, m


def _fd_plus_one(f, what):
    """A file object or descriptor as the ABI's fd_plus_one (0 for None)."""
    if f is None:
        return 0
    fd = f if isinstance(f, int) else f.fileno()
    if not isinstance(fd, int) or isinstance(fd, bool) or fd < 0 or fd >= 2**31 - 1:
        raise InvalidArgument(_lib.E_INVALID, f"bad {what} descriptor {fd!r}", "open_session")
    return fd + 1


def _session_options(working_dir, env, stdin, stdout=None, stderr=None):
    """shmrepl_session_options_t for the given options, and the objects it points into."""
    wd = None if working_dir is None else os.fsencode(os.fspath(working_dir))
    env_arr, envc = None, 0
    if env is not None:
        entries = []
        for k, v in env.items():
            kb, vb = os.fsencode(k), os.fsencode(v)
            if not kb or b"=" in kb or b"\0" in kb or b"\0" in vb:
                raise InvalidArgument(_lib.E_INVALID, f"bad environment entry {k!r}",
                                      "open_session")
            entries.append(kb + b"=" + vb)
        envc = len(entries)
        # One slot more: never a NULL pointer, even for an empty environment.
        env_arr = (ctypes.c_char_p * (envc + 1))(*entries)
    opts = _lib.shmrepl_session_options_t(
        ctypes.sizeof(_lib.shmrepl_session_options_t), 0, wd,
        ctypes.cast(env_arr, ctypes.POINTER(ctypes.c_char_p)) if env_arr is not None else None,
        envc, _fd_plus_one(stdin, "stdin"), 0, _fd_plus_one(stdout, "stdout"),
        _fd_plus_one(stderr, "stderr"))
    return opts, (wd, env_arr)


class Client:
    """A connection to an engine (started if none listens and autostart is on).

    socket_path: None = $SHMREPL_SOCKET, else the per-user default. engine_path: None =
    $SHMREPL_ENGINE, else next to libshmrepl. connect_timeout: seconds to wait for a
    started engine (None: the library's 5 s). request_timeout: seconds any one request
    may wait for its reply (None: no limit); when it passes the call raises Timeout and
    the connection is unusable (later calls raise StateError: connect again). Thread-safe: requests are serialized by
    the library; close() waits for calls in flight on other threads.
    """

    def __init__(self, socket_path=None, engine_path=None, autostart=True, connect_timeout=None,
                 request_timeout=None):
        self.socket_path = socket_path
        self._keep = (_enc(socket_path), _enc(engine_path))
        opts = _lib.shmrepl_client_options_t(
            ctypes.sizeof(_lib.shmrepl_client_options_t),
            _lib.AUTOSTART_ON if autostart else _lib.AUTOSTART_OFF,
            self._keep[0], self._keep[1],
            0 if connect_timeout is None else max(1, timeout_ns(connect_timeout)),
            0 if request_timeout is None else max(1, timeout_ns(request_timeout)))
        h = _lib.client_p()
        st = _L.shmrepl_client_connect(ctypes.byref(opts), ctypes.byref(h))
        if st:
            raise error_for(st, "shmrepl_client_connect")
        self._h = h
        self._cv = threading.Condition()
        self._busy = 0

    # Every request holds a use count, so close() never frees the handle under a call.
    def _call(self, fn, *args):
        with self._cv:
            if self._h is None:
                raise Closed("client")
            self._busy += 1
            h = self._h
        try:
            return fn(h, *args)
        finally:
            with self._cv:
                self._busy -= 1
                if not self._busy:
                    self._cv.notify_all()

    def _request(self, fn, name, *args):
        def call(h, *a):
            st = fn(h, *a)
            return st, (error_for(st, name) if st else None)  # last_error on this thread, now
        st, err = self._call(call, *args)
        if err is not None:
            raise err
        return st

    @property
    def closed(self):
        return self._h is None

    @property
    def engine_pid(self):
        return self._call(_L.shmrepl_client_engine_pid)

    def open_session(self, *, working_dir=None, env=None, stdin=None, stdout=None, stderr=None):
        """A new session (own namespace, one execution at a time) in its own worker process.

        working_dir: the worker's current folder (str, bytes or path; None: the engine's).
        env: a mapping that becomes the session's whole os.environ (None: the engine's).
        stdin: the session's sys.stdin, a file object or a descriptor (None: /dev/null, and
        input() asks the client: an INPUT_REQUEST answered with Execution.send_input);
        the worker gets its own copy of the descriptor, so it may be closed after this.
        stdout, stderr: the caller's streams (file objects or descriptors), never written:
        they only answer the program's sys.stdout/sys.stderr.isatty() and terminal size
        (os.get_terminal_size(), shutil.get_terminal_size()); None: not a terminal.
        Options need libshmrepl 1.1 (shmrepl_session_open_ex), stdout/stderr 1.2."""
        sid = ctypes.c_uint64()
        if (stdout is not None or stderr is not None) and not _lib.has_send_input:
            raise StateError(_lib.E_STATE, "the loaded libshmrepl predates 1.2 (no terminal "
                             "descriptors in session options)", "open_session")
        if working_dir is None and env is None and stdin is None and stdout is None \
                and stderr is None:
            self._request(_L.shmrepl_session_open, "shmrepl_session_open", ctypes.byref(sid))
            return ClientSession(self, sid.value)
        if not _lib.has_session_open_ex:
            raise StateError(_lib.E_STATE, "the loaded libshmrepl predates 1.1 (no "
                             "shmrepl_session_open_ex)", "open_session")
        opts, keep = _session_options(working_dir, env, stdin, stdout, stderr)
        self._request(_L.shmrepl_session_open_ex, "shmrepl_session_open_ex",
                      ctypes.byref(opts), ctypes.byref(sid))
        del keep  # the strings the options point to lived through the call
        return ClientSession(self, sid.value)

    def shutdown_engine(self):
        """Asks the engine to stop (it cancels everything, unlinks its rings and socket);
        returns once it has closed the connection. Then the client is closed."""
        try:
            self._request(_L.shmrepl_engine_shutdown, "shmrepl_engine_shutdown")
        finally:
            self.close()

    def close(self):
        """Closes the connection; the engine closes this client's sessions. Idempotent."""
        with self._cv:
            h = self._h
            if h is None:
                return
            self._h = None
            while self._busy:
                self._cv.wait()
        _L.shmrepl_client_close(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_h", None) is not None:
            self.close()


class ClientSession:
    """A session of a Client (blocking API). Closing it cancels what runs in it."""

    def __init__(self, client, session_id):
        self.client = client
        self.id = session_id
        self._closed = False

    @property
    def background_ring(self):
        """Name of the ring that gets output of threads outliving their execution, or None."""
        def get(h):
            return _L.shmrepl_session_background_ring(h, self.id)
        name = self.client._call(get)
        return name.decode() if name else None

    def execute(self, code, client_execution_id=None, filename=None, argv=None, script=False,
                ring_capacity=0, *, timeout=None, memory_limit=None):
        """Queues code (str or bytes) in the session; returns an Execution whose ring
        exists (holding STARTED) already.

        timeout: None (no limit), or seconds (float) or a datetime.timedelta, from when the
        session's worker takes the execution up: then it is interrupted (KeyboardInterrupt)
        and, if it goes on for 3 s more, its worker is killed (the session dies); FINISHED
        says FinishStatus.TIMEOUT either way. memory_limit: None (no limit), or the bytes the
        worker's heap may grow by while it runs; beyond, MemoryError and FINISHED says
        FinishStatus.MEMORY_LIMIT. Both need libshmrepl >= 1.1 with execution limits (an
        older library ignores them)."""
        if self._closed:
            raise Closed("session")
        t_ns, mem = _execute_limits(timeout, memory_limit)
        code_b = code.encode("utf-8", "surrogateescape") if isinstance(code, str) else bytes(code)
        cid = client_execution_id.encode() if isinstance(client_execution_id, str) \
            else client_execution_id
        fn = _enc(filename)
        argv_b = [_enc(a) for a in (argv or ())]
        argv_arr = (ctypes.c_char_p * len(argv_b))(*argv_b) if argv_b else None
        opts = _lib.shmrepl_execute_options_t(
            ctypes.sizeof(_lib.shmrepl_execute_options_t), 1 if script else 0, self.id,
            code_b, len(code_b), cid, fn,
            ctypes.cast(argv_arr, ctypes.POINTER(ctypes.c_char_p)) if argv_arr else None,
            len(argv_b), int(ring_capacity or 0), t_ns, mem)
        out = _lib.execution_p()
        self.client._request(_L.shmrepl_execute, "shmrepl_execute", ctypes.byref(opts),
                             ctypes.byref(out))
        return Execution(self.client, out, client_execution_id)

    def close(self):
        """Cancels what runs or waits in the session and drops it. Idempotent; does nothing
        once the client is closed (the engine closed the session with it)."""
        if self._closed:
            return
        self._closed = True
        if not self.client.closed:
            self.client._request(_L.shmrepl_session_close, "shmrepl_session_close", self.id)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class Execution:
    """An execution handle: its engine id, its ring, cancel, close (releases the ring: the
    engine unlinks its name once finished; open readers keep working)."""

    def __init__(self, client, handle, client_execution_id=None):
        self.client = client
        self._h = handle
        self.id = _L.shmrepl_execution_id(handle)
        self.ring_name = _L.shmrepl_execution_ring_name(handle).decode()
        self.client_execution_id = client_execution_id
        self._lock = threading.Lock()

    @property
    def closed(self):
        return self._h is None

    def reader(self, start=Start.OLDEST):
        """A new Reader on this execution's ring (independent of this handle)."""
        h = self._h
        if h is None:
            raise Closed("execution")
        opts = _lib.shmrepl_reader_options_t(ctypes.sizeof(_lib.shmrepl_reader_options_t),
                                             int(start))
        r = _lib.reader_p()
        st = _L.shmrepl_execution_reader(h, ctypes.byref(opts), ctypes.byref(r))
        if st:
            raise error_for(st, "shmrepl_execution_reader")
        return Reader._adopt(r, self.ring_name)

    def cancel(self):
        """KeyboardInterrupt in the execution (OK if it already finished). Any thread."""
        with self._lock:
            h = self._h
            if h is None:
                raise Closed("execution")
            # Through the client's use count: the handle needs a live client.
            self.client._request(lambda _c: _L.shmrepl_execution_cancel(h),
                                 "shmrepl_execution_cancel")

    def send_input(self, text):
        """Answers the execution's INPUT_REQUEST: its input() (or getpass()) returns `text`
        (str or bytes; one trailing newline is dropped). StateError if it is not waiting for
        input. Any thread. Needs libshmrepl 1.2."""
        if not _lib.has_send_input:
            raise StateError(_lib.E_STATE, "the loaded libshmrepl predates 1.2 (no "
                             "shmrepl_execution_send_input)", "send_input")
        b = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else bytes(text)
        with self._lock:
            h = self._h
            if h is None:
                raise Closed("execution")
            self.client._request(lambda _c: _L.shmrepl_execution_send_input(h, b, len(b)),
                                 "shmrepl_execution_send_input")

    def close(self):
        with self._lock:
            h, self._h = self._h, None
        if h is not None:
            _L.shmrepl_execution_close(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_h", None) is not None:
            self.close()

    def __repr__(self):
        return f"<Execution {self.id} ring={self.ring_name!r}>"
