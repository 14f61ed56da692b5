"""Readers of a ring: batches of records whose data are read-only views into the ring.

A record's `data` and `raw` are memoryviews over the reader's shared mapping (no copy).
They stay valid until the record is released (Batch.release, Reader.release, leaving a
`with batch:` block, or the reader's close); then they are released (memoryview.release())
and any use raises ValueError. The other fields are plain ints, copied at read time.
"""
import collections
import ctypes
import enum
import struct
import threading
import weakref

from . import _lib
from .errors import Closed, StateError, InvalidArgument, error_for

_L = _lib.lib


class RecordKind(enum.IntEnum):
    UNKNOWN = 0  # a kind newer than this binding: skip it (raw is valid)
    STARTED = 1
    OUTPUT = 2
    RESULT = 3
    ERROR = 4
    INPUT_REQUEST = 5
    FINISHED = 6


class Stream(enum.IntEnum):
    UNKNOWN = -1  # a stream newer than this binding
    NONE = 0
    STDOUT = 1
    STDERR = 2


class FinishStatus(enum.IntEnum):
    UNKNOWN = -1  # a status newer than this binding (finish_status_value has it)
    OK = 0
    ERROR = 1
    CANCELLED = 2
    EXITED = 3
    ABORTED = 4
    TIMEOUT = 5        # the execution's timeout passed (libshmrepl >= 1.1)
    MEMORY_LIMIT = 6   # it ran out of its memory_limit (libshmrepl >= 1.1)


class Start(enum.IntEnum):
    OLDEST = _lib.START_OLDEST
    NEWEST = _lib.START_NEWEST


OLDEST = Start.OLDEST
NEWEST = Start.NEWEST

# Plain dict look-ups: calling an IntEnum per record costs more than the rest of a record.
_KINDS = {int(k): k for k in RecordKind}
_STREAMS = {int(s): s for s in Stream}
_FINISH = {int(s): s for s in FinishStatus}
_FINISHED_KIND = int(RecordKind.FINISHED)

# shmrepl_record_t in native layout (@: C alignment; P pointer, N size_t).
_REC = struct.Struct("@IIIIQQQPNPNqQQQ")
REC_SIZE = ctypes.sizeof(_lib.shmrepl_record_t)
assert _REC.size == REC_SIZE, (_REC.size, REC_SIZE)
# On LP64 every field from execution_id on is a 64-bit word: data_len is word 6 of 13.
_DLEN_OFF = _lib.shmrepl_record_t.data_len.offset
_QWORDS = REC_SIZE // 8 if (ctypes.sizeof(ctypes.c_size_t) == 8 and REC_SIZE % 8 == 0
                            and struct.calcsize("Q") == 8) else 0
_DLEN_Q = _DLEN_OFF // 8
# Field indexes in an unpacked record.
(_KIND, _STREAM, _FLAGS, _FSTAT, _EXEC, _SEQ, _TS, _DATA, _DLEN, _RAW, _RLEN, _EXIT, _DUR,
 _RES0) = range(14)
_SIGNAL = _RES0  # FINISHED: reserved[0] is the signal that ended the worker (since 1.1)

DEFAULT_BATCH = 256


def timeout_ns(timeout):
    """Seconds (float) to the ABI's nanoseconds: None or < 0 waits forever, 0 does not wait."""
    if timeout is None or timeout < 0:
        return -1
    ns = int(timeout * 1e9)
    return ns if ns > 0 or timeout == 0 else 1  # a tiny wait stays a wait, not E_AGAIN


class ErrorInfo(collections.namedtuple("ErrorInfo", "ename evalue traceback")):
    """The structured part of an ERROR record (copied out as str)."""


def _text(ptr, n):
    return ctypes.string_at(ptr, n).decode("utf-8", "surrogateescape") if n else ""


class Record:
    """One record of a batch. Fields are ints (copies); `data`/`raw` are zero-copy
    read-only memoryviews, valid until the record is released."""

    __slots__ = ("_batch", "_i", "_f")

    def __init__(self, batch, i, fields):
        self._batch = batch
        self._i = i
        self._f = fields

    kind = property(lambda self: _KINDS.get(self._f[_KIND], RecordKind.UNKNOWN))
    kind_value = property(lambda self: self._f[_KIND])
    stream = property(lambda self: _STREAMS.get(self._f[_STREAM], Stream.UNKNOWN))
    flags = property(lambda self: self._f[_FLAGS])
    finish_status = property(lambda self: _FINISH.get(self._f[_FSTAT], FinishStatus.UNKNOWN))
    finish_status_value = property(lambda self: self._f[_FSTAT])
    execution_id = property(lambda self: self._f[_EXEC])
    seq = property(lambda self: self._f[_SEQ])
    timestamp_ns = property(lambda self: self._f[_TS])
    data_len = property(lambda self: self._f[_DLEN])
    raw_len = property(lambda self: self._f[_RLEN])
    exit_code = property(lambda self: self._f[_EXIT])
    duration_ns = property(lambda self: self._f[_DUR])
    # The number of the signal that ended the session's worker (0: none); None unless
    # FINISHED (reserved[0] means nothing in other records).
    signal = property(lambda self: self._f[_SIGNAL] if self._f[_KIND] == _FINISHED_KIND
                      else None)
    more = property(lambda self: bool(self._f[_FLAGS] & _lib.FLAG_MORE))
    continued = property(lambda self: bool(self._f[_FLAGS] & _lib.FLAG_CONTINUED))
    # INPUT_REQUEST: getpass() asks (do not echo the answer).
    password = property(lambda self: bool(self._f[_FLAGS] & _lib.FLAG_PASSWORD))

    @property
    def released(self):
        return self._i < self._batch._done

    @property
    def data(self):
        """The record's bytes as a read-only memoryview into the ring (no copy)."""
        return self._batch._view(self._i, self._f[_DATA], self._f[_DLEN])

    @property
    def raw(self):
        """The whole FlatBuffers Record (abi/shmrepl.fbs), a read-only view into the ring."""
        return self._batch._view(self._i, self._f[_RAW], self._f[_RLEN])

    @property
    def data_address(self):
        """Address of data in this process (for checks that views are zero-copy)."""
        return self._f[_DATA]

    @property
    def text(self):
        """data decoded as UTF-8 (surrogateescape: undecodable bytes survive); a copy."""
        self._batch._check_live(self._i)
        return _text(self._f[_DATA], self._f[_DLEN])

    def _c_record(self):
        self._batch._check_live(self._i)
        return _lib.shmrepl_record_t.from_buffer_copy(self._batch._buf, self._i * REC_SIZE)

    def error(self):
        """ERROR details (ename, evalue, traceback lines), copied out; raises for other kinds."""
        rec = self._c_record()
        ename, evalue, n = _lib.shmrepl_bytes_t(), _lib.shmrepl_bytes_t(), ctypes.c_size_t()
        st = _L.shmrepl_record_error(ctypes.byref(rec), ctypes.byref(ename),
                                     ctypes.byref(evalue), ctypes.byref(n))
        if st:
            raise error_for(st, "shmrepl_record_error")
        lines = []
        line = _lib.shmrepl_bytes_t()
        for k in range(n.value):
            st = _L.shmrepl_record_traceback_line(ctypes.byref(rec), k, ctypes.byref(line))
            if st:
                raise error_for(st, "shmrepl_record_traceback_line")
            lines.append(_text(line.ptr, line.len))
        return ErrorInfo(_text(ename.ptr, ename.len), _text(evalue.ptr, evalue.len), lines)

    def release(self):
        """Releases this record and every one before it (records are released in order)."""
        self._batch._reader._release_through(self._batch, self._i + 1)

    def __repr__(self):
        f = self._f
        return (f"<Record {self.kind.name} exec={f[_EXEC]} seq={f[_SEQ]} stream={f[_STREAM]} "
                f"len={f[_DLEN]}{' released' if self.released else ''}>")


class Batch:
    """Records handed out by one next_batch call, held until released (in order).
    Iterate it, index it, use it as a context manager (released on exit)."""

    __slots__ = ("_reader", "_buf", "_n", "_done", "_views", "__weakref__")

    def __init__(self, reader, buf, n):
        self._reader = reader
        self._buf = buf        # bytes: a copy of the shmrepl_record_t array (not ring memory)
        self._n = n
        self._done = 0         # records [0, _done) are released
        self._views = None     # [(index, ctypes array, handed-out view)]

    def __len__(self):
        return self._n

    def __iter__(self):
        i = 0
        for f in _REC.iter_unpack(self._buf):
            yield Record(self, i, f)
            i += 1

    def __getitem__(self, i):
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError("batch index out of range")
        return Record(self, i, _REC.unpack_from(self._buf, i * REC_SIZE))

    def data_lens(self):
        """data_len of every record, as a list, without building Record objects."""
        if _QWORDS:  # a column of the array seen as uint64 words: no per-record Python code
            return memoryview(self._buf).cast("Q")[_DLEN_Q::_QWORDS].tolist()
        return [f[_DLEN] for f in _REC.iter_unpack(self._buf)]

    @property
    def released(self):
        return self._done >= self._n

    def release(self):
        """Releases the batch: its views end. Earlier batches must be released first.
        Does nothing if already released or the reader is closed."""
        if self._done < self._n:
            self._reader._release_through(self, self._n)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    def _check_live(self, i):
        if i < self._done:
            raise Closed("record (released)")

    def _view(self, i, ptr, n):
        if i < self._done:
            raise Closed("record (released)")
        if n:
            arr = (ctypes.c_ubyte * n).from_address(ptr)
            v = memoryview(arr).cast("B").toreadonly()
        else:
            arr, v = None, memoryview(b"")  # no ring memory, but released like the others
        if self._views is None:
            self._views = []
        self._views.append((i, arr, v))
        return v

    def _end_views(self, upto):
        """Releases the views of records [0, upto)."""
        views = self._views
        if not views:
            return
        keep = []
        reader = self._reader
        while views:
            item = views.pop()
            if item[0] >= upto:
                keep.append(item)
                continue
            try:
                item[2].release()
            except BufferError:
                pass  # exported by the caller (e.g. memoryview(view)): it keeps the array
            if item[1] is None:
                continue
            alive = weakref.ref(item[1])
            del item
            arr = alive()
            if arr is not None:
                # A slice or export outlives the record and cannot be revoked: the reader
                # keeps the ring mapped until it is gone, so it never reads unmapped memory.
                reader._pin(arr)
                del arr
        keep.reverse()
        self._views = keep


class Reader:
    """A reader attached to one ring. Use from one thread at a time; close it (or use
    `with`) to detach. Reader(name) opens by ring name; Execution.reader() by execution."""

    def __init__(self, ring_name, start=Start.OLDEST):
        h = _lib.reader_p()
        opts = _lib.shmrepl_reader_options_t(ctypes.sizeof(_lib.shmrepl_reader_options_t),
                                             int(start))
        if not isinstance(ring_name, (bytes, str)):
            raise TypeError("ring_name must be str or bytes")
        name = ring_name.encode() if isinstance(ring_name, str) else ring_name
        st = _L.shmrepl_reader_open(name, ctypes.byref(opts), ctypes.byref(h))
        if st:
            raise error_for(st, "shmrepl_reader_open")
        self._init(h, ring_name if isinstance(ring_name, str) else ring_name.decode())

    open = classmethod(lambda cls, ring_name, start=Start.OLDEST: cls(ring_name, start))

    @classmethod
    def _adopt(cls, handle, ring_name):
        self = cls.__new__(cls)
        self._init(handle, ring_name)
        return self

    def _init(self, h, ring_name):
        self._h = h
        self.ring_name = ring_name
        self._batches = collections.deque()  # batches with unreleased records, oldest first
        self._cap = DEFAULT_BATCH
        self._arr = (_lib.shmrepl_record_t * self._cap)()
        self._addr = ctypes.addressof(self._arr)
        self._n = ctypes.c_size_t()
        self._nref = ctypes.byref(self._n)
        self._pins = 0
        self._pin_lock = threading.Lock()
        self._deferred = None

    # -- state
    @property
    def closed(self):
        return self._h is None

    def _handle(self):
        h = self._h
        if h is None:
            raise Closed("reader")
        return h

    @property
    def execution_id(self):
        return _L.shmrepl_reader_execution_id(self._handle())

    @property
    def held(self):
        """Records handed out and not yet released."""
        return _L.shmrepl_reader_held(self._handle())

    def mapping(self):
        """(base address, length) of the reader's mapping: every view lies inside."""
        if not _lib.has_mapping:
            raise StateError(_lib.E_STATE, "the loaded libshmrepl predates 1.1 (no "
                             "shmrepl_reader_mapping)", "mapping")
        base, n = ctypes.c_void_p(), ctypes.c_size_t()
        st = _L.shmrepl_reader_mapping(self._handle(), ctypes.byref(base), ctypes.byref(n))
        if st:
            raise error_for(st, "shmrepl_reader_mapping")
        return base.value or 0, n.value

    # -- reading
    def next_batch(self, max_records=DEFAULT_BATCH, timeout=None):
        """Up to max_records records (waits only when none is ready). Returns a Batch, or
        None at the end of the ring (E_EOF). timeout in seconds: None waits forever,
        0 raises Again when nothing is ready, else Timeout when nothing came in time."""
        h = self._h
        if h is None:
            raise Closed("reader")
        if max_records > self._cap:
            self._cap = max_records
            self._arr = (_lib.shmrepl_record_t * max_records)()
            self._addr = ctypes.addressof(self._arr)
        elif max_records < 1:
            raise ValueError("max_records must be at least 1")
        st = _L.shmrepl_reader_next_batch(h, self._arr, max_records, self._nref,
                                          -1 if timeout is None else timeout_ns(timeout))
        if st:
            if st == _lib.E_EOF:
                return None
            raise error_for(st, "shmrepl_reader_next_batch")
        n = self._n.value
        b = Batch(self, ctypes.string_at(self._addr, n * REC_SIZE), n)
        self._batches.append(b)
        return b

    def next(self, timeout=None):
        """The next record (held until released), or None at the end of the ring."""
        b = self.next_batch(1, timeout)
        return None if b is None else b[0]

    def batches(self, max_records=DEFAULT_BATCH, timeout=None):
        """Iterates batches until the end of the ring; each is released when the next is
        asked for (or when the loop ends)."""
        b = None
        try:
            while True:
                b = self.next_batch(max_records, timeout)
                if b is None:
                    return
                yield b
                b.release()
        finally:
            if b is not None and self._h is not None:
                b.release()

    def __iter__(self):
        """Records until the end of the ring. Their views end when the next batch is read."""
        for b in self.batches():
            yield from b

    def release(self, n=None):
        """Releases the oldest n held records (all of them when n is None)."""
        if self._h is None:
            raise Closed("reader")
        held = sum(b._n - b._done for b in self._batches)
        if n is None:
            n = held
        if n < 0 or n > held:
            raise InvalidArgument(_lib.E_INVALID, f"release({n}) but {held} records are held",
                                  "release")
        self._release_n(n)

    def _release_through(self, batch, upto):
        """Releases every held record before `batch` (it must be the oldest) and those of
        batch below index upto."""
        if self._h is None:
            return  # the close released everything
        if not self._batches or self._batches[0] is not batch:
            raise StateError(_lib.E_STATE, "records must be released in order: release the "
                             "earlier batches first", "release")
        if upto > batch._done:
            self._release_n(upto - batch._done)

    def _release_n(self, n):
        left = n
        batches = self._batches
        while left:
            b = batches[0]
            k = min(left, b._n - b._done)
            b._done += k
            b._end_views(b._done)
            if b._done >= b._n:
                batches.popleft()
            left -= k
        if n:
            st = _L.shmrepl_reader_release(self._h, n)
            if st:
                raise error_for(st, "shmrepl_reader_release")

    # -- closing
    def _pin(self, arr):
        with self._pin_lock:
            self._pins += 1
        weakref.finalize(arr, self._unpin)

    def _unpin(self):
        with self._pin_lock:
            self._pins -= 1
            h = self._deferred if self._pins == 0 else None
            if h is not None:
                self._deferred = None
        if h is not None:
            _L.shmrepl_reader_close(h)

    def close(self):
        """Detaches: every view of this reader is released. Idempotent."""
        h = self._h
        if h is None:
            return
        self._h = None
        for b in self._batches:
            b._done = b._n
            b._end_views(b._n)
        self._batches.clear()
        with self._pin_lock:
            if self._pins:
                self._deferred = h  # views that cannot be revoked still point into the mapping
                return
        _L.shmrepl_reader_close(h)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_h", None) is not None:
            self.close()

    def __repr__(self):
        return f"<Reader {self.ring_name!r}{' closed' if self._h is None else ''}>"
