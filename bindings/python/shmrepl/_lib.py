"""Loads libshmrepl and declares the C ABI (abi/include/shmrepl/shmrepl.h) for ctypes.

Structs mirror the header exactly (ABI version 1, layout 1.1); option structs are passed
with the size of the struct written here, so a newer library accepts them unchanged.
Calls added in 1.1 are optional: a 1.0 library loads, and the binding says so when one is
asked for.
"""
import ctypes
import ctypes.util
import os
from pathlib import Path

ABI_VERSION = 1

# ---- status codes (values never reused; unknown ones map to ShmreplError) ----
OK = 0
E_INVALID = -1
E_NOT_FOUND = -2
E_AGAIN = -3
E_TIMEOUT = -4
E_EOF = -5
E_CORRUPT = -6
E_VERSION = -7
E_PRODUCER_DIED = -8
E_NO_SLOT = -9
E_NOMEM = -10
E_PERMISSION = -11
E_SYSTEM = -12
E_ENGINE_DIED = -13
E_PROTOCOL = -14
E_STATE = -15
E_CONNECT = -16
E_TOO_LARGE = -17
E_SESSION_DIED = -18
E_LIMIT = -19
E_INTERNAL = -99

# ---- enums as the ABI carries them (uint32_t) ----
START_OLDEST = 0
START_NEWEST = 1
AUTOSTART_DEFAULT = 0
AUTOSTART_ON = 1
AUTOSTART_OFF = 2
FLAG_MORE = 0x1
FLAG_CONTINUED = 0x2
FLAG_PASSWORD = 0x4     # INPUT_REQUEST of getpass() (since 1.2)

c_status = ctypes.c_int32
c_u8_p = ctypes.POINTER(ctypes.c_uint8)


class shmrepl_record_t(ctypes.Structure):
    _fields_ = [
        ("kind", ctypes.c_uint32),
        ("stream", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("finish_status", ctypes.c_uint32),
        ("execution_id", ctypes.c_uint64),
        ("seq", ctypes.c_uint64),
        ("timestamp_ns", ctypes.c_uint64),
        ("data", ctypes.c_void_p),
        ("data_len", ctypes.c_size_t),
        ("raw", ctypes.c_void_p),
        ("raw_len", ctypes.c_size_t),
        ("exit_code", ctypes.c_int64),
        ("duration_ns", ctypes.c_uint64),
        ("reserved", ctypes.c_uint64 * 2),
    ]


class shmrepl_reader_options_t(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("start", ctypes.c_uint32),
    ]


class shmrepl_client_options_t(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("autostart", ctypes.c_uint32),
        ("socket_path", ctypes.c_char_p),
        ("engine_path", ctypes.c_char_p),
        ("connect_timeout_ns", ctypes.c_int64),
        ("request_timeout_ns", ctypes.c_int64),  # 1.2
    ]


class shmrepl_execute_options_t(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("script", ctypes.c_uint32),
        ("session_id", ctypes.c_uint64),
        ("code", ctypes.c_char_p),
        ("code_len", ctypes.c_size_t),
        ("client_execution_id", ctypes.c_char_p),
        ("filename", ctypes.c_char_p),
        ("argv", ctypes.POINTER(ctypes.c_char_p)),
        ("argc", ctypes.c_size_t),
        ("ring_capacity", ctypes.c_uint64),
        # Since 1.1 (a struct_size of 72, the 1.0 size, leaves them 0):
        ("timeout_ns", ctypes.c_int64),       # > 0: TIMEOUT after this long
        ("memory_limit", ctypes.c_uint64),    # > 0: heap growth allowed; MEMORY_LIMIT
    ]


class shmrepl_session_options_t(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("working_dir", ctypes.c_char_p),
        ("env", ctypes.POINTER(ctypes.c_char_p)),
        ("envc", ctypes.c_size_t),
        ("stdin_fd_plus_one", ctypes.c_int32),
        ("reserved", ctypes.c_uint32),
        ("stdout_fd_plus_one", ctypes.c_int32),   # since 1.2
        ("stderr_fd_plus_one", ctypes.c_int32),
    ]


class shmrepl_bytes_t(ctypes.Structure):
    _fields_ = [
        ("ptr", ctypes.c_void_p),
        ("len", ctypes.c_size_t),
    ]


# Opaque handles.
class _Opaque(ctypes.Structure):
    pass


reader_p = ctypes.POINTER(type("shmrepl_reader", (_Opaque,), {}))
client_p = ctypes.POINTER(type("shmrepl_client", (_Opaque,), {}))
execution_p = ctypes.POINTER(type("shmrepl_execution", (_Opaque,), {}))

record_p = ctypes.POINTER(shmrepl_record_t)
bytes_p = ctypes.POINTER(shmrepl_bytes_t)

# name: (restype, argtypes); the ones marked optional may be missing in an older library.
_PROTOTYPES = {
    "shmrepl_version": (ctypes.c_char_p, []),
    "shmrepl_abi_version": (ctypes.c_uint32, []),
    "shmrepl_status_str": (ctypes.c_char_p, [c_status]),
    "shmrepl_last_error": (ctypes.c_char_p, []),
    "shmrepl_reader_open": (c_status, [ctypes.c_char_p, ctypes.POINTER(shmrepl_reader_options_t),
                                       ctypes.POINTER(reader_p)]),
    "shmrepl_reader_close": (None, [reader_p]),
    "shmrepl_reader_next": (c_status, [reader_p, ctypes.c_int64, record_p]),
    "shmrepl_reader_next_batch": (c_status, [reader_p, record_p, ctypes.c_size_t,
                                             ctypes.POINTER(ctypes.c_size_t), ctypes.c_int64]),
    "shmrepl_reader_release": (c_status, [reader_p, ctypes.c_size_t]),
    "shmrepl_reader_held": (ctypes.c_size_t, [reader_p]),
    "shmrepl_reader_execution_id": (ctypes.c_uint64, [reader_p]),
    "shmrepl_reader_mapping": (c_status, [reader_p, ctypes.POINTER(ctypes.c_void_p),
                                          ctypes.POINTER(ctypes.c_size_t)]),
    "shmrepl_record_error": (c_status, [record_p, bytes_p, bytes_p, ctypes.POINTER(ctypes.c_size_t)]),
    "shmrepl_record_traceback_line": (c_status, [record_p, ctypes.c_size_t, bytes_p]),
    "shmrepl_client_connect": (c_status, [ctypes.POINTER(shmrepl_client_options_t),
                                          ctypes.POINTER(client_p)]),
    "shmrepl_client_close": (None, [client_p]),
    "shmrepl_client_engine_pid": (ctypes.c_uint32, [client_p]),
    "shmrepl_session_open": (c_status, [client_p, ctypes.POINTER(ctypes.c_uint64)]),
    "shmrepl_session_background_ring": (ctypes.c_char_p, [client_p, ctypes.c_uint64]),
    "shmrepl_session_open_ex": (c_status, [client_p, ctypes.POINTER(shmrepl_session_options_t),
                                           ctypes.POINTER(ctypes.c_uint64)]),
    "shmrepl_session_close": (c_status, [client_p, ctypes.c_uint64]),
    "shmrepl_execute": (c_status, [client_p, ctypes.POINTER(shmrepl_execute_options_t),
                                   ctypes.POINTER(execution_p)]),
    "shmrepl_execution_id": (ctypes.c_uint64, [execution_p]),
    "shmrepl_execution_ring_name": (ctypes.c_char_p, [execution_p]),
    "shmrepl_execution_reader": (c_status, [execution_p, ctypes.POINTER(shmrepl_reader_options_t),
                                            ctypes.POINTER(reader_p)]),
    "shmrepl_execution_cancel": (c_status, [execution_p]),
    "shmrepl_execution_send_input": (c_status, [execution_p, ctypes.c_char_p, ctypes.c_size_t]),
    "shmrepl_execution_close": (None, [execution_p]),
    "shmrepl_engine_shutdown": (c_status, [client_p]),
}
_OPTIONAL = {"shmrepl_reader_mapping", "shmrepl_session_open_ex",  # since 1.1
             "shmrepl_execution_send_input"}                       # since 1.2


class LibraryError(ImportError):
    """libshmrepl could not be found or is not a library this binding can use."""


def _candidates():
    env = os.environ.get("SHMREPL_LIBRARY")
    if env:
        yield env, "$SHMREPL_LIBRARY"
        return  # an explicit choice is never silently replaced by another library
    # The build tree, when the package is used from a checkout (bindings/python/shmrepl).
    root = Path(__file__).resolve().parents[3]
    if (root / "abi" / "include" / "shmrepl" / "shmrepl.h").is_file():
        built = root / "build" / "lib" / "libshmrepl.so"
        if built.exists():
            yield str(built), "the build tree"
    found = ctypes.util.find_library("shmrepl")
    if found:
        yield found, "the system (find_library)"
    yield "libshmrepl.so.0", "the system (libshmrepl.so.0)"


def _load():
    tried = []
    for path, where in _candidates():
        try:
            lib = ctypes.CDLL(path)
        except OSError as e:
            tried.append(f"{path} ({where}): {e}")
            continue
        try:
            abi = lib.shmrepl_abi_version
        except AttributeError:
            raise LibraryError(f"{path} ({where}) is not libshmrepl (no shmrepl_abi_version)") \
                from None
        abi.restype, abi.argtypes = ctypes.c_uint32, []
        if abi() != ABI_VERSION:
            raise LibraryError(f"{path} ({where}) has ABI version {abi()}, this binding needs "
                               f"{ABI_VERSION}")
        for name, (restype, argtypes) in _PROTOTYPES.items():
            try:
                fn = getattr(lib, name)
            except AttributeError:
                if name in _OPTIONAL:
                    continue
                raise LibraryError(f"{path} ({where}) lacks {name}") from None
            fn.restype, fn.argtypes = restype, argtypes
        return lib, path
    raise LibraryError("libshmrepl not found; set SHMREPL_LIBRARY to libshmrepl.so. Tried: "
                       + "; ".join(tried))


lib, path = _load()
has_mapping = hasattr(lib, "shmrepl_reader_mapping")
has_session_open_ex = hasattr(lib, "shmrepl_session_open_ex")
has_send_input = hasattr(lib, "shmrepl_execution_send_input")  # 1.2: also the terminal fds


def last_error():
    """shmrepl_last_error() of this OS thread, as text."""
    return lib.shmrepl_last_error().decode("utf-8", "replace")


def status_str(status):
    return lib.shmrepl_status_str(status).decode("utf-8", "replace")
