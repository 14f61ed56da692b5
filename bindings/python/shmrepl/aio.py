"""The asyncio API:

    from shmrepl import Session, ExecuteMessage, MessageType
    async with Session() as session:
        async for msg in session.execute(ExecuteMessage(id="large-1", timestamp=0, code=code)):
            if msg.type == MessageType.OUTPUT:
                out.append(msg.data)

Every wait on the engine or a ring runs in a worker thread, in bounded slices (0.1 s by
default), never on the event loop. Each execution has its own worker thread; when the
consuming task is cancelled (or stops iterating early), the execution is cancelled and its
reader closed on that thread once the read in flight has returned.
"""
import asyncio
import concurrent.futures
import ctypes
import dataclasses
import datetime
import enum
from typing import Optional, Sequence, Union

from .client import Client, _execute_limits
from .errors import Closed, ShmreplError, StateError, Timeout
from .reader import (DEFAULT_BATCH, Record, RecordKind, Stream, FinishStatus, _REC, _STREAMS,
                     _FINISH, _KIND, _STREAM, _FLAGS, _FSTAT, _EXEC, _SEQ, _TS, _DATA, _DLEN,
                     _EXIT, _DUR, _SIGNAL)
from . import _lib


class MessageType(enum.IntEnum):
    """The kind of a message (the record kind); UNKNOWN for kinds newer than the binding."""
    UNKNOWN = 0
    STARTED = 1
    OUTPUT = 2
    RESULT = 3
    ERROR = 4
    INPUT_REQUEST = 5
    FINISHED = 6


_TYPES = {int(t): t for t in MessageType}


@dataclasses.dataclass
class ExecuteMessage:
    """What to run: `id` is the caller's execution id (it comes back as msg.execution_id and
    in the STARTED record); `timestamp` is the caller's, kept as given. timeout (seconds
    or a datetime.timedelta) and memory_limit (bytes): the execution's limits, None for
    none (as ClientSession.execute takes them); FINISHED then says
    FinishStatus.TIMEOUT / MEMORY_LIMIT."""
    id: str
    timestamp: int = 0
    code: str = ""
    argv: Optional[Sequence[str]] = None
    filename: Optional[str] = None
    script: bool = False
    ring_capacity: int = 0
    timeout: Optional[Union[float, datetime.timedelta]] = None
    memory_limit: Optional[int] = None


class Message:
    """One record of an execution.

    data: str for OUTPUT (the bytes decoded as UTF-8 with surrogateescape), RESULT (repr),
    ERROR (the exception message), INPUT_REQUEST (prompt), STARTED (the client id); "" for
    FINISHED. It is a copy, kept as long as you like.
    view: the same bytes as a read-only memoryview into the ring, zero-copy, made when first
    asked for. It is valid only until the next message is asked for: then a view taken is
    released (using it raises ValueError) and asking for one raises shmrepl.Closed.
    Copy it (bytes(msg.view)) to keep it.
    Also: type, stream, execution_id (ExecuteMessage.id), engine_execution_id, seq,
    timestamp_ns, flags; finish_status, exit_code, duration_ns, signal (FINISHED, else None;
    signal is the number of the signal that ended the session's worker, 0 if none);
    error (ErrorInfo for ERROR, else None); ring_name (the execution's ring);
    password (INPUT_REQUEST of getpass(): do not echo the answer). Answer an INPUT_REQUEST
    with Session.send_input(msg, text).
    """

    __slots__ = ("type", "data", "stream", "execution_id", "engine_execution_id",
                 "seq", "timestamp_ns", "flags", "finish_status", "exit_code", "duration_ns",
                 "signal", "error", "ring_name", "_batch", "_i", "_ptr", "_n", "_view")

    @property
    def view(self):
        v = self._view
        if v is None:
            if self._batch is None:
                raise Closed("message view (valid until the next message)")
            v = self._view = self._batch._view(self._i, self._ptr, self._n)
        return v

    def _expire(self):
        self._batch = None
        v = self._view
        if v is not None:
            self._view = None
            try:
                v.release()
            except BufferError:
                pass  # exported by the caller: the batch release pins the ring for it

    @property
    def password(self):
        return bool(self.flags & _lib.FLAG_PASSWORD)

    def __repr__(self):
        return (f"Message(type={self.type.name}, seq={self.seq}, stream={self.stream.name}, "
                f"data={self.data!r})")


_OUTPUT, _ERROR, _FINISHED = int(RecordKind.OUTPUT), int(RecordKind.ERROR), int(RecordKind.FINISHED)


_string_at = ctypes.string_at


def _message(batch, i, f, execution_id, ring_name, _new=object.__new__):
    """A Message from field tuple f of record i of batch (the per-record hot path: plain
    tuple indexing and dict look-ups, no Record object)."""
    m = _new(Message)
    kind = f[_KIND]
    m.type = _TYPES.get(kind, MessageType.UNKNOWN)
    n = f[_DLEN]
    ptr = f[_DATA]
    m._batch, m._i, m._ptr, m._n, m._view = batch, i, ptr, n, None
    m.data = _string_at(ptr, n).decode("utf-8", "surrogateescape") if n else ""
    m.stream = _STREAMS.get(f[_STREAM], Stream.UNKNOWN)
    m.execution_id = execution_id
    m.engine_execution_id = f[_EXEC]
    m.seq = f[_SEQ]
    m.timestamp_ns = f[_TS]
    m.flags = f[_FLAGS]
    if kind == _FINISHED:
        m.finish_status = _FINISH.get(f[_FSTAT], FinishStatus.UNKNOWN)
        m.exit_code, m.duration_ns, m.signal = f[_EXIT], f[_DUR], f[_SIGNAL]
    else:
        m.finish_status = m.exit_code = m.duration_ns = m.signal = None
    m.error = Record(batch, i, f).error() if kind == _ERROR else None
    m.ring_name = ring_name
    return m


_SLICE_TIMED_OUT = object()


class Session:
    """An engine session for asyncio code. Session(socket_path=None, engine_path=None,
    autostart=True, connect_timeout=None): None means the library's defaults
    ($SHMREPL_SOCKET / $SHMREPL_ENGINE, then the per-user socket / the engine next to
    libshmrepl). working_dir, env, stdin, stdout, stderr: the session's, as
    Client.open_session takes them; request_timeout: as Client's.
    start() connects and opens the session; stop() closes both (and, with
    shutdown_engine=True, stops the engine)."""

    def __init__(self, socket_path=None, engine_path=None, autostart=True, connect_timeout=None,
                 wait_slice=0.1, max_batch=DEFAULT_BATCH, *, working_dir=None, env=None,
                 stdin=None, stdout=None, stderr=None, request_timeout=None):
        self._opts = dict(socket_path=socket_path, engine_path=engine_path, autostart=autostart,
                          connect_timeout=connect_timeout, request_timeout=request_timeout)
        self._session_opts = dict(working_dir=working_dir, env=env, stdin=stdin, stdout=stdout,
                                  stderr=stderr)
        self._slice = wait_slice
        self._max_batch = max_batch
        self._client = None
        self._session = None
        self._bg = None
        self._pending = set()   # cleanups of executions not yet done (concurrent futures)
        self._running = {}      # engine execution id -> Execution, while iterated

    @property
    def client(self):
        """The blocking Client underneath (None before start)."""
        return self._client

    @property
    def session_id(self):
        return self._session.id if self._session else None

    @property
    def background_ring(self):
        """Name of the session's background ring (output of threads that outlive their
        execution), or None."""
        return self._bg

    @property
    def engine_pid(self):
        return self._client.engine_pid if self._client else None

    async def start(self):
        if self._client is not None:
            raise StateError(_lib.E_STATE, "session already started", "start")
        loop = asyncio.get_running_loop()
        client = await loop.run_in_executor(None, lambda: Client(**self._opts))
        try:
            self._session = await loop.run_in_executor(
                None, lambda: client.open_session(**self._session_opts))
            self._bg = await loop.run_in_executor(None, lambda: self._session.background_ring)
        except BaseException:
            await loop.run_in_executor(None, client.close)
            raise
        self._client = client
        return self

    async def stop(self, shutdown_engine=False):
        """Waits for the cleanups of finished or cancelled executions, closes the session and
        the connection (the engine cancels what still runs in the session)."""
        while self._pending:
            f = next(iter(self._pending))
            try:
                await asyncio.wrap_future(f)
            except Exception:
                pass
            self._pending.discard(f)
        client, session = self._client, self._session
        self._client = self._session = None
        if client is None:
            return
        loop = asyncio.get_running_loop()

        def close():
            try:
                if shutdown_engine:
                    client.shutdown_engine()
                else:
                    session.close()
            finally:
                client.close()
        await loop.run_in_executor(None, close)

    async def __aenter__(self):
        return await self.start()

    async def __aexit__(self, *exc):
        await self.stop()

    async def send_input(self, message, text):
        """Answers an INPUT_REQUEST: `message` is that Message (or its engine_execution_id);
        the program's input() returns `text` (str or bytes, less one trailing newline).
        StateError if the execution is not waiting for input or no longer iterated."""
        eid = message.engine_execution_id if isinstance(message, Message) else int(message)
        ex = self._running.get(eid)
        if ex is None:
            raise StateError(_lib.E_STATE, f"execution {eid} is not running in this session",
                             "send_input")
        await asyncio.get_running_loop().run_in_executor(None, ex.send_input, text)

    def execute(self, message):
        """Runs message.code in the session; an async iterator of Message, from STARTED to
        FINISHED. Engine and ring errors raise ShmreplError subclasses."""
        if self._session is None:
            raise StateError(_lib.E_STATE, "session not started (await session.start())",
                             "execute")
        _execute_limits(message.timeout, message.memory_limit)  # bad limits raise here
        return self._run(message)

    async def _run(self, message):
        session, slice_s, max_batch = self._session, self._slice, self._max_batch
        worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="shmrepl-exec")

        def begin():
            ex = session.execute(message.code, client_execution_id=message.id,
                                 filename=message.filename, argv=message.argv,
                                 script=message.script, ring_capacity=message.ring_capacity,
                                 timeout=message.timeout, memory_limit=message.memory_limit)
            try:
                return ex, ex.reader()
            except BaseException:
                ex.close()
                raise

        def read(reader):
            try:
                return reader.next_batch(max_batch, slice_s)
            except Timeout:
                return _SLICE_TIMED_OUT

        started = worker.submit(begin)
        finished = False
        try:
            ex, reader = await asyncio.wrap_future(started)
            self._running[ex.id] = ex
            ring_name = ex.ring_name
            while True:
                batch = await asyncio.wrap_future(worker.submit(read, reader))
                if batch is _SLICE_TIMED_OUT:
                    continue
                if batch is None:
                    break
                # No read is in flight now: the reader is ours on this thread until the next.
                try:
                    for i, f in enumerate(_REC.iter_unpack(batch._buf)):
                        m = _message(batch, i, f, message.id, ring_name)
                        if m.type is MessageType.FINISHED:
                            finished = True
                        yield m
                        m._expire()   # the view is valid until the next message
                finally:
                    batch.release()
        finally:
            if started.done() and not started.cancelled() and started.exception() is None:
                self._running.pop(started.result()[0].id, None)

            def cleanup():
                # Queued behind the begin/read in flight: runs once that has returned.
                try:
                    ex_, reader_ = started.result()
                except BaseException:
                    return
                try:
                    if not finished:
                        try:
                            ex_.cancel()
                        except ShmreplError:
                            pass  # engine gone or client closed: nothing left to cancel
                finally:
                    reader_.close()
                    ex_.close()
            done = worker.submit(cleanup)
            worker.shutdown(wait=False)
            self._pending.add(done)
            done.add_done_callback(self._pending.discard)
