use std::ffi::CStr;
use std::fmt;

use crate::ffi;

/// What went wrong: one variant per status code of the C ABI.
///
/// Codes this binding does not know yet (a newer library) arrive as
/// [`ErrorKind::Unknown`] with their value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A bad argument (NULL, bad size, bad name). `SHMREPL_E_INVALID`.
    Invalid,
    /// No such ring, session or execution. `SHMREPL_E_NOT_FOUND`.
    NotFound,
    /// Nothing now; try again (a zero timeout). `SHMREPL_E_AGAIN`.
    Again,
    /// Nothing arrived before the timeout. `SHMREPL_E_TIMEOUT`.
    Timeout,
    /// The ring is finished and fully read. `SHMREPL_E_EOF` (reads turn it into `None`).
    Eof,
    /// The shared memory does not hold a valid ring or record. `SHMREPL_E_CORRUPT`.
    Corrupt,
    /// The peer or the library speaks another layout or ABI version. `SHMREPL_E_VERSION`.
    Version,
    /// The ring's writer died before finishing it. `SHMREPL_E_PRODUCER_DIED`.
    ProducerDied,
    /// Every reader slot of the ring is taken. `SHMREPL_E_NO_SLOT`.
    NoSlot,
    /// Out of memory. `SHMREPL_E_NOMEM`.
    NoMem,
    /// Not allowed (mode, uid). `SHMREPL_E_PERMISSION`.
    Permission,
    /// An operating-system call failed. `SHMREPL_E_SYSTEM`.
    System,
    /// The engine process went away: requests on the client's own connection
    /// (open a session, shut down) fail with it. `SHMREPL_E_ENGINE_DIED`.
    EngineDied,
    /// A malformed or unexpected control message. `SHMREPL_E_PROTOCOL`.
    Protocol,
    /// The call does not fit the handle's state. `SHMREPL_E_STATE`.
    State,
    /// No engine could be reached or started. `SHMREPL_E_CONNECT`.
    Connect,
    /// A request exceeds a documented limit. `SHMREPL_E_TOO_LARGE`.
    TooLarge,
    /// The session's worker process died (a crash, a kill, `os._exit`, or the engine
    /// was killed): the session is gone, open a new one. `SHMREPL_E_SESSION_DIED`
    /// (since ABI 1.1).
    SessionDied,
    /// An engine limit (connections or sessions of this process or in all, the
    /// engine's descriptors) is reached; the message names the engine option. Retry
    /// after closing some. `SHMREPL_E_LIMIT` (since ABI 1.2).
    Limit,
    /// A bug in shmrepl. `SHMREPL_E_INTERNAL`.
    Internal,
    /// A status code newer than this binding.
    Unknown(i32),
}

impl ErrorKind {
    /// The kind of a (non-zero) status code.
    pub fn from_code(code: i32) -> ErrorKind {
        match code {
            ffi::SHMREPL_E_INVALID => ErrorKind::Invalid,
            ffi::SHMREPL_E_NOT_FOUND => ErrorKind::NotFound,
            ffi::SHMREPL_E_AGAIN => ErrorKind::Again,
            ffi::SHMREPL_E_TIMEOUT => ErrorKind::Timeout,
            ffi::SHMREPL_E_EOF => ErrorKind::Eof,
            ffi::SHMREPL_E_CORRUPT => ErrorKind::Corrupt,
            ffi::SHMREPL_E_VERSION => ErrorKind::Version,
            ffi::SHMREPL_E_PRODUCER_DIED => ErrorKind::ProducerDied,
            ffi::SHMREPL_E_NO_SLOT => ErrorKind::NoSlot,
            ffi::SHMREPL_E_NOMEM => ErrorKind::NoMem,
            ffi::SHMREPL_E_PERMISSION => ErrorKind::Permission,
            ffi::SHMREPL_E_SYSTEM => ErrorKind::System,
            ffi::SHMREPL_E_ENGINE_DIED => ErrorKind::EngineDied,
            ffi::SHMREPL_E_PROTOCOL => ErrorKind::Protocol,
            ffi::SHMREPL_E_STATE => ErrorKind::State,
            ffi::SHMREPL_E_CONNECT => ErrorKind::Connect,
            ffi::SHMREPL_E_TOO_LARGE => ErrorKind::TooLarge,
            ffi::SHMREPL_E_SESSION_DIED => ErrorKind::SessionDied,
            ffi::SHMREPL_E_LIMIT => ErrorKind::Limit,
            ffi::SHMREPL_E_INTERNAL => ErrorKind::Internal,
            other => ErrorKind::Unknown(other),
        }
    }

    /// The C status code.
    pub fn code(self) -> i32 {
        match self {
            ErrorKind::Invalid => ffi::SHMREPL_E_INVALID,
            ErrorKind::NotFound => ffi::SHMREPL_E_NOT_FOUND,
            ErrorKind::Again => ffi::SHMREPL_E_AGAIN,
            ErrorKind::Timeout => ffi::SHMREPL_E_TIMEOUT,
            ErrorKind::Eof => ffi::SHMREPL_E_EOF,
            ErrorKind::Corrupt => ffi::SHMREPL_E_CORRUPT,
            ErrorKind::Version => ffi::SHMREPL_E_VERSION,
            ErrorKind::ProducerDied => ffi::SHMREPL_E_PRODUCER_DIED,
            ErrorKind::NoSlot => ffi::SHMREPL_E_NO_SLOT,
            ErrorKind::NoMem => ffi::SHMREPL_E_NOMEM,
            ErrorKind::Permission => ffi::SHMREPL_E_PERMISSION,
            ErrorKind::System => ffi::SHMREPL_E_SYSTEM,
            ErrorKind::EngineDied => ffi::SHMREPL_E_ENGINE_DIED,
            ErrorKind::Protocol => ffi::SHMREPL_E_PROTOCOL,
            ErrorKind::State => ffi::SHMREPL_E_STATE,
            ErrorKind::Connect => ffi::SHMREPL_E_CONNECT,
            ErrorKind::TooLarge => ffi::SHMREPL_E_TOO_LARGE,
            ErrorKind::SessionDied => ffi::SHMREPL_E_SESSION_DIED,
            ErrorKind::Limit => ffi::SHMREPL_E_LIMIT,
            ErrorKind::Internal => ffi::SHMREPL_E_INTERNAL,
            ErrorKind::Unknown(code) => code,
        }
    }

    /// Worth retrying: [`ErrorKind::Again`] and [`ErrorKind::Timeout`].
    pub fn is_retryable(self) -> bool {
        matches!(self, ErrorKind::Again | ErrorKind::Timeout)
    }

    /// The library's short constant text for the code.
    pub fn description(self) -> &'static str {
        // SAFETY: never NULL, static storage.
        unsafe { static_str(ffi::shmrepl_status_str(self.code())) }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.description())
    }
}

/// An error of a shmrepl call: its status code and the library's detail text
/// (`shmrepl_last_error()`, read on the calling thread right after the call).
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

/// `Result` with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// An error made by the binding itself (no C call failed).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error { kind, message: message.into() }
    }

    /// The error of the C call that just returned `status`. Call it right away: the
    /// detail is per thread and the next shmrepl call replaces it.
    pub(crate) fn last(status: ffi::shmrepl_status_t) -> Error {
        // SAFETY: never NULL; valid until the next shmrepl call on this thread,
        // and copied before that.
        let message = unsafe { CStr::from_ptr(ffi::shmrepl_last_error()) }.to_string_lossy().into_owned();
        Error { kind: ErrorKind::from_code(status), message }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The C status code.
    pub fn code(&self) -> i32 {
        self.kind.code()
    }

    /// The detail text ("" if the library gave none).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("code", &self.code())
            .field("message", &self.message)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            write!(f, "shmrepl: {} ({})", self.kind, self.code())
        } else {
            write!(f, "shmrepl: {} ({}): {}", self.kind, self.code(), self.message)
        }
    }
}

impl std::error::Error for Error {}

/// OK or the error of the call that just returned `status`.
#[inline]
pub(crate) fn check(status: ffi::shmrepl_status_t) -> Result<()> {
    if status == ffi::SHMREPL_OK {
        Ok(())
    } else {
        Err(Error::last(status))
    }
}

/// # Safety
/// `p` is a NUL-terminated string in static storage.
pub(crate) unsafe fn static_str(p: *const std::os::raw::c_char) -> &'static str {
    if p.is_null() {
        return "";
    }
    CStr::from_ptr(p).to_str().unwrap_or("")
}
