//! The raw C ABI of `abi/include/shmrepl/shmrepl.h`, written by hand.
//!
//! Every struct is `#[repr(C)]` and mirrors the header exactly (sizes are checked
//! below at compile time, offsets in `tests/layout.rs`). Option structs pass
//! `size_of` of the struct as written here in `struct_size`, so a newer library
//! that grew them still reads only what this binding knows.
#![allow(non_camel_case_types)]

use std::marker::{PhantomData, PhantomPinned};
use std::os::raw::c_char;

pub type shmrepl_status_t = i32;

pub const SHMREPL_ABI_VERSION: u32 = 1;

pub const SHMREPL_OK: shmrepl_status_t = 0;
pub const SHMREPL_E_INVALID: shmrepl_status_t = -1;
pub const SHMREPL_E_NOT_FOUND: shmrepl_status_t = -2;
pub const SHMREPL_E_AGAIN: shmrepl_status_t = -3;
pub const SHMREPL_E_TIMEOUT: shmrepl_status_t = -4;
pub const SHMREPL_E_EOF: shmrepl_status_t = -5;
pub const SHMREPL_E_CORRUPT: shmrepl_status_t = -6;
pub const SHMREPL_E_VERSION: shmrepl_status_t = -7;
pub const SHMREPL_E_PRODUCER_DIED: shmrepl_status_t = -8;
pub const SHMREPL_E_NO_SLOT: shmrepl_status_t = -9;
pub const SHMREPL_E_NOMEM: shmrepl_status_t = -10;
pub const SHMREPL_E_PERMISSION: shmrepl_status_t = -11;
pub const SHMREPL_E_SYSTEM: shmrepl_status_t = -12;
pub const SHMREPL_E_ENGINE_DIED: shmrepl_status_t = -13;
pub const SHMREPL_E_PROTOCOL: shmrepl_status_t = -14;
pub const SHMREPL_E_STATE: shmrepl_status_t = -15;
pub const SHMREPL_E_CONNECT: shmrepl_status_t = -16;
pub const SHMREPL_E_TOO_LARGE: shmrepl_status_t = -17;
/// Since ABI 1.1.
pub const SHMREPL_E_SESSION_DIED: shmrepl_status_t = -18;
/// Since ABI 1.2.
pub const SHMREPL_E_LIMIT: shmrepl_status_t = -19;
pub const SHMREPL_E_INTERNAL: shmrepl_status_t = -99;

pub const SHMREPL_RECORD_UNKNOWN: u32 = 0;
pub const SHMREPL_RECORD_STARTED: u32 = 1;
pub const SHMREPL_RECORD_OUTPUT: u32 = 2;
pub const SHMREPL_RECORD_RESULT: u32 = 3;
pub const SHMREPL_RECORD_ERROR: u32 = 4;
pub const SHMREPL_RECORD_INPUT_REQUEST: u32 = 5;
pub const SHMREPL_RECORD_FINISHED: u32 = 6;

pub const SHMREPL_STREAM_NONE: u32 = 0;
pub const SHMREPL_STREAM_STDOUT: u32 = 1;
pub const SHMREPL_STREAM_STDERR: u32 = 2;

pub const SHMREPL_FINISH_OK: u32 = 0;
pub const SHMREPL_FINISH_ERROR: u32 = 1;
pub const SHMREPL_FINISH_CANCELLED: u32 = 2;
pub const SHMREPL_FINISH_EXITED: u32 = 3;
pub const SHMREPL_FINISH_ABORTED: u32 = 4;
/// Since ABI 1.1: the execution's `timeout_ns` passed.
pub const SHMREPL_FINISH_TIMEOUT: u32 = 5;
/// Since ABI 1.1: the execution ran out of its `memory_limit`.
pub const SHMREPL_FINISH_MEMORY_LIMIT: u32 = 6;

pub const SHMREPL_FLAG_MORE: u32 = 0x1;
pub const SHMREPL_FLAG_CONTINUED: u32 = 0x2;
/// Since ABI 1.2: an INPUT_REQUEST of `getpass()` (do not echo the answer).
pub const SHMREPL_FLAG_PASSWORD: u32 = 0x4;

pub const SHMREPL_START_OLDEST: u32 = 0;
pub const SHMREPL_START_NEWEST: u32 = 1;

pub const SHMREPL_AUTOSTART_DEFAULT: u32 = 0;
pub const SHMREPL_AUTOSTART_ON: u32 = 1;
pub const SHMREPL_AUTOSTART_OFF: u32 = 2;

/// `shmrepl_record_t`: a view of one record; the pointers point into the ring.
/// FINISHED: `reserved[0]` is the signal that ended the session's worker (0: none),
/// since 1.1.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmrepl_record_t {
    pub kind: u32,
    pub stream: u32,
    pub flags: u32,
    pub finish_status: u32,
    pub execution_id: u64,
    pub seq: u64,
    pub timestamp_ns: u64,
    pub data: *const u8,
    pub data_len: usize,
    pub raw: *const u8,
    pub raw_len: usize,
    pub exit_code: i64,
    pub duration_ns: u64,
    pub reserved: [u64; 2],
}

impl shmrepl_record_t {
    /// An all-zero record (null pointers), for output buffers.
    pub const ZERO: shmrepl_record_t = shmrepl_record_t {
        kind: 0,
        stream: 0,
        flags: 0,
        finish_status: 0,
        execution_id: 0,
        seq: 0,
        timestamp_ns: 0,
        data: std::ptr::null(),
        data_len: 0,
        raw: std::ptr::null(),
        raw_len: 0,
        exit_code: 0,
        duration_ns: 0,
        reserved: [0; 2],
    };
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmrepl_reader_options_t {
    pub struct_size: u32,
    pub start: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmrepl_client_options_t {
    pub struct_size: u32,
    pub autostart: u32,
    pub socket_path: *const c_char,
    pub engine_path: *const c_char,
    pub connect_timeout_ns: i64,
    /// Since ABI 1.2 (the library accepts the 1.0 size, 32, without it).
    pub request_timeout_ns: i64,
}

/// `shmrepl_session_options_t` (since 1.1). `env` NULL: the engine's environment;
/// else `envc` "NAME=value" strings, the whole environment. `stdin_fd_plus_one` 0:
/// stdin is /dev/null. Since 1.2 (40 bytes before): `stdout_fd_plus_one` /
/// `stderr_fd_plus_one`, the caller's streams, asked only isatty() and the terminal
/// size (never written); 0: none.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmrepl_session_options_t {
    pub struct_size: u32,
    pub flags: u32,
    pub working_dir: *const c_char,
    pub env: *const *const c_char,
    pub envc: usize,
    pub stdin_fd_plus_one: i32,
    pub reserved: u32,
    pub stdout_fd_plus_one: i32,
    pub stderr_fd_plus_one: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmrepl_execute_options_t {
    pub struct_size: u32,
    pub script: u32,
    pub session_id: u64,
    pub code: *const c_char,
    pub code_len: usize,
    pub client_execution_id: *const c_char,
    pub filename: *const c_char,
    pub argv: *const *const c_char,
    pub argc: usize,
    pub ring_capacity: u64,
    /// Since 1.1 (a 1.0 struct_size of 72 leaves it 0). > 0: interrupted after this
    /// long, its worker killed 3 s later if it goes on; FINISHED TIMEOUT.
    pub timeout_ns: i64,
    /// Since 1.1. > 0: heap bytes the worker may grow by while it runs
    /// (RLIMIT_DATA); MemoryError, FINISHED MEMORY_LIMIT.
    pub memory_limit: u64,
}

/// `struct_size` of the ABI 1.0 `shmrepl_execute_options_t` (without the limits).
pub const SHMREPL_EXECUTE_OPTIONS_SIZE_1_0: u32 = 72;

#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct shmrepl_bytes_t {
    pub ptr: *const u8,
    pub len: usize,
}

/// Opaque `shmrepl_reader_t`.
#[repr(C)]
pub struct shmrepl_reader_t {
    _private: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// Opaque `shmrepl_client_t`.
#[repr(C)]
pub struct shmrepl_client_t {
    _private: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

/// Opaque `shmrepl_execution_t`.
#[repr(C)]
pub struct shmrepl_execution_t {
    _private: [u8; 0],
    _marker: PhantomData<(*mut u8, PhantomPinned)>,
}

// The 1.2 layout, on the 64-bit targets the library is built for.
#[cfg(target_pointer_width = "64")]
const _: () = {
    use std::mem::{align_of, size_of};
    assert!(size_of::<shmrepl_record_t>() == 104);
    assert!(align_of::<shmrepl_record_t>() == 8);
    assert!(size_of::<shmrepl_reader_options_t>() == 8);
    assert!(size_of::<shmrepl_client_options_t>() == 40);
    assert!(size_of::<shmrepl_execute_options_t>() == 88);
    assert!(size_of::<shmrepl_session_options_t>() == 48);
    assert!(align_of::<shmrepl_session_options_t>() == 8);
    assert!(size_of::<shmrepl_bytes_t>() == 16);
};

// The library is linked by build.rs (`cargo:rustc-link-lib=dylib=shmrepl`).
extern "C" {
    pub fn shmrepl_version() -> *const c_char;
    pub fn shmrepl_abi_version() -> u32;
    pub fn shmrepl_status_str(status: shmrepl_status_t) -> *const c_char;
    pub fn shmrepl_last_error() -> *const c_char;

    pub fn shmrepl_reader_open(
        ring_name: *const c_char,
        options: *const shmrepl_reader_options_t,
        out: *mut *mut shmrepl_reader_t,
    ) -> shmrepl_status_t;
    pub fn shmrepl_reader_close(reader: *mut shmrepl_reader_t);
    pub fn shmrepl_reader_next(
        reader: *mut shmrepl_reader_t,
        timeout_ns: i64,
        out: *mut shmrepl_record_t,
    ) -> shmrepl_status_t;
    pub fn shmrepl_reader_next_batch(
        reader: *mut shmrepl_reader_t,
        out: *mut shmrepl_record_t,
        max: usize,
        n: *mut usize,
        timeout_ns: i64,
    ) -> shmrepl_status_t;
    pub fn shmrepl_reader_release(reader: *mut shmrepl_reader_t, n: usize) -> shmrepl_status_t;
    pub fn shmrepl_reader_held(reader: *const shmrepl_reader_t) -> usize;
    pub fn shmrepl_reader_execution_id(reader: *const shmrepl_reader_t) -> u64;
    /// Since ABI 1.1.
    pub fn shmrepl_reader_mapping(
        reader: *const shmrepl_reader_t,
        base: *mut *const u8,
        len: *mut usize,
    ) -> shmrepl_status_t;

    pub fn shmrepl_record_error(
        record: *const shmrepl_record_t,
        ename: *mut shmrepl_bytes_t,
        evalue: *mut shmrepl_bytes_t,
        n_lines: *mut usize,
    ) -> shmrepl_status_t;
    pub fn shmrepl_record_traceback_line(
        record: *const shmrepl_record_t,
        index: usize,
        line: *mut shmrepl_bytes_t,
    ) -> shmrepl_status_t;

    pub fn shmrepl_client_connect(
        options: *const shmrepl_client_options_t,
        out: *mut *mut shmrepl_client_t,
    ) -> shmrepl_status_t;
    pub fn shmrepl_client_close(client: *mut shmrepl_client_t);
    pub fn shmrepl_client_engine_pid(client: *const shmrepl_client_t) -> u32;
    pub fn shmrepl_session_open(client: *mut shmrepl_client_t, session_id: *mut u64) -> shmrepl_status_t;
    /// Since ABI 1.1.
    pub fn shmrepl_session_open_ex(
        client: *mut shmrepl_client_t,
        options: *const shmrepl_session_options_t,
        session_id: *mut u64,
    ) -> shmrepl_status_t;
    pub fn shmrepl_session_background_ring(client: *mut shmrepl_client_t, session_id: u64) -> *const c_char;
    pub fn shmrepl_session_close(client: *mut shmrepl_client_t, session_id: u64) -> shmrepl_status_t;
    pub fn shmrepl_execute(
        client: *mut shmrepl_client_t,
        options: *const shmrepl_execute_options_t,
        out: *mut *mut shmrepl_execution_t,
    ) -> shmrepl_status_t;
    pub fn shmrepl_execution_id(execution: *const shmrepl_execution_t) -> u64;
    pub fn shmrepl_execution_ring_name(execution: *const shmrepl_execution_t) -> *const c_char;
    pub fn shmrepl_execution_reader(
        execution: *const shmrepl_execution_t,
        options: *const shmrepl_reader_options_t,
        out: *mut *mut shmrepl_reader_t,
    ) -> shmrepl_status_t;
    pub fn shmrepl_execution_cancel(execution: *mut shmrepl_execution_t) -> shmrepl_status_t;
    /// Since ABI 1.2.
    pub fn shmrepl_execution_send_input(
        execution: *mut shmrepl_execution_t,
        text: *const c_char,
        len: usize,
    ) -> shmrepl_status_t;
    pub fn shmrepl_execution_close(execution: *mut shmrepl_execution_t);
    pub fn shmrepl_engine_shutdown(client: *mut shmrepl_client_t) -> shmrepl_status_t;
}
