"""Status codes of the C ABI as Python exceptions."""
from . import _lib


class ShmreplError(Exception):
    """A shmrepl call failed. `status` is the C status code (negative), `detail` the text
    of shmrepl_last_error() read right after the call on the same thread."""

    status = None  # the class default; instances carry their own

    def __init__(self, status, detail="", call=""):
        self.status = status
        self.detail = detail
        self.call = call
        text = _lib.status_str(status) if isinstance(status, int) else str(status)
        msg = f"{call}: {text}" if call else text
        if detail:
            msg += f": {detail}"
        super().__init__(msg)

    def __reduce__(self):
        return (type(self), (self.status, self.detail, self.call))


class InvalidArgument(ShmreplError, ValueError):
    """E_INVALID: a bad argument (NULL, bad size, bad ring name)."""


class NotFound(ShmreplError, LookupError):
    """E_NOT_FOUND: no such ring, session or execution."""


class Again(ShmreplError):
    """E_AGAIN: nothing available now (a wait of 0)."""


class Timeout(ShmreplError, TimeoutError):
    """E_TIMEOUT: nothing arrived before the timeout."""


class EndOfStream(ShmreplError):
    """E_EOF: the ring is finished and fully read. Iteration ends on it instead."""


class Corrupt(ShmreplError):
    """E_CORRUPT: the shared memory does not hold a valid ring or record."""


class VersionMismatch(ShmreplError):
    """E_VERSION: the peer speaks another layout or ABI version."""


class ProducerDied(ShmreplError):
    """E_PRODUCER_DIED: the ring's writer died; every record it published came first."""


class NoSlot(ShmreplError):
    """E_NO_SLOT: every reader slot of the ring is taken."""


class OutOfMemory(ShmreplError, MemoryError):
    """E_NOMEM."""


class PermissionDenied(ShmreplError, PermissionError):
    """E_PERMISSION: not allowed (mode, uid, socket folder not private)."""


class SystemCallError(ShmreplError):
    """E_SYSTEM: an operating-system call failed; see `detail`."""


class EngineDied(ShmreplError):
    """E_ENGINE_DIED: the engine went away; every later request of the client fails too."""


class SessionDied(ShmreplError):
    """E_SESSION_DIED: the session's worker process died (crash, kill, os._exit); its last
    execution ended with a FINISHED record of status ABORTED. Open a new session."""


class ProtocolError(ShmreplError):
    """E_PROTOCOL: a malformed or unexpected control message."""


class StateError(ShmreplError):
    """E_STATE: the call does not fit the handle's state."""


class Closed(StateError):
    """The binding's own check: the handle (reader, batch, client...) is closed or released,
    so no C call is made with a freed pointer. status is E_STATE."""

    def __init__(self, what):
        self.what = what
        super().__init__(_lib.E_STATE, f"{what} is closed or released", "")

    def __reduce__(self):
        return (type(self), (self.what,))


class ConnectError(ShmreplError, ConnectionError):
    """E_CONNECT: no engine could be reached or started."""


class TooLarge(ShmreplError):
    """E_TOO_LARGE: a request exceeds a documented limit."""


class LimitReached(ShmreplError):
    """E_LIMIT: an engine limit (connections or sessions of this process or in all, the
    engine's descriptors) is reached; `detail` names the engine option. Retry after
    closing some."""


class InternalError(ShmreplError):
    """E_INTERNAL: a bug in shmrepl."""


_BY_STATUS = {
    _lib.E_INVALID: InvalidArgument,
    _lib.E_NOT_FOUND: NotFound,
    _lib.E_AGAIN: Again,
    _lib.E_TIMEOUT: Timeout,
    _lib.E_EOF: EndOfStream,
    _lib.E_CORRUPT: Corrupt,
    _lib.E_VERSION: VersionMismatch,
    _lib.E_PRODUCER_DIED: ProducerDied,
    _lib.E_NO_SLOT: NoSlot,
    _lib.E_NOMEM: OutOfMemory,
    _lib.E_PERMISSION: PermissionDenied,
    _lib.E_SYSTEM: SystemCallError,
    _lib.E_ENGINE_DIED: EngineDied,
    _lib.E_PROTOCOL: ProtocolError,
    _lib.E_STATE: StateError,
    _lib.E_CONNECT: ConnectError,
    _lib.E_TOO_LARGE: TooLarge,
    _lib.E_SESSION_DIED: SessionDied,
    _lib.E_LIMIT: LimitReached,
    _lib.E_INTERNAL: InternalError,
}


def error_for(status, call=""):
    """The exception for a failed call; reads shmrepl_last_error() now, so call it right
    after the C call, on the same thread."""
    detail = _lib.last_error()
    return _BY_STATUS.get(status, ShmreplError)(status, detail, call)


def check(status, call=""):
    if status != 0:
        raise error_for(status, call)
