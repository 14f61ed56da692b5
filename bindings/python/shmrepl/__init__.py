"""Python binding of shmrepl (ctypes over libshmrepl.so, ABI version 1).

Blocking API: Client, ClientSession, Execution, Reader, Batch, Record.
asyncio API: Session, ExecuteMessage, MessageType, Message.
Errors: ShmreplError and one subclass per status code (errors module).

libshmrepl is found through $SHMREPL_LIBRARY, then the build tree of a checkout
(build/lib), then the system; its shmrepl_abi_version() must be 1.
"""
from . import _lib
from .errors import (ShmreplError, InvalidArgument, NotFound, Again, Timeout, EndOfStream,
                     Corrupt, VersionMismatch, ProducerDied, NoSlot, OutOfMemory,
                     PermissionDenied, SystemCallError, EngineDied, ProtocolError, StateError,
                     Closed, ConnectError, TooLarge, SessionDied, LimitReached, InternalError)
from .reader import (Reader, Batch, Record, RecordKind, Stream, FinishStatus, Start, OLDEST,
                     NEWEST, ErrorInfo)
from .client import Client, ClientSession, Execution
from .aio import Session, ExecuteMessage, MessageType, Message

LibraryError = _lib.LibraryError
library_path = _lib.path
ABI_VERSION = _lib.ABI_VERSION


def version():
    """The loaded library's version ("MAJOR.MINOR.PATCH")."""
    return _lib.lib.shmrepl_version().decode()


def abi_version():
    return _lib.lib.shmrepl_abi_version()


__all__ = [
    "Session", "ExecuteMessage", "MessageType", "Message",
    "Client", "ClientSession", "Execution", "Reader", "Batch", "Record", "RecordKind",
    "Stream", "FinishStatus", "Start", "OLDEST", "NEWEST", "ErrorInfo",
    "ShmreplError", "InvalidArgument", "NotFound", "Again", "Timeout", "EndOfStream",
    "Corrupt", "VersionMismatch", "ProducerDied", "NoSlot", "OutOfMemory", "PermissionDenied",
    "SystemCallError", "EngineDied", "ProtocolError", "StateError", "Closed", "ConnectError",
    "TooLarge", "SessionDied", "LimitReached", "InternalError", "LibraryError", "library_path", "version",
    "abi_version", "ABI_VERSION",
]
__version__ = "0.1.0"
