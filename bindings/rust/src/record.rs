use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::error::{check, Result};
use crate::ffi;

/// The kind of a record. Kinds newer than this binding arrive as `Unknown` (skip
/// them; [`Record::raw`] is still valid).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kind {
    Started,
    Output,
    Result,
    Error,
    InputRequest,
    Finished,
    /// `SHMREPL_RECORD_UNKNOWN` (0) or a value newer than this binding.
    Unknown(u32),
}

impl Kind {
    pub fn from_raw(v: u32) -> Kind {
        match v {
            ffi::SHMREPL_RECORD_STARTED => Kind::Started,
            ffi::SHMREPL_RECORD_OUTPUT => Kind::Output,
            ffi::SHMREPL_RECORD_RESULT => Kind::Result,
            ffi::SHMREPL_RECORD_ERROR => Kind::Error,
            ffi::SHMREPL_RECORD_INPUT_REQUEST => Kind::InputRequest,
            ffi::SHMREPL_RECORD_FINISHED => Kind::Finished,
            other => Kind::Unknown(other),
        }
    }

    /// The name the header and the conformance vectors use ("STARTED", ...).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Started => "STARTED",
            Kind::Output => "OUTPUT",
            Kind::Result => "RESULT",
            Kind::Error => "ERROR",
            Kind::InputRequest => "INPUT_REQUEST",
            Kind::Finished => "FINISHED",
            Kind::Unknown(_) => "UNKNOWN",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The stream of an OUTPUT record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Stream {
    None,
    Stdout,
    Stderr,
    Unknown(u32),
}

impl Stream {
    pub fn from_raw(v: u32) -> Stream {
        match v {
            ffi::SHMREPL_STREAM_NONE => Stream::None,
            ffi::SHMREPL_STREAM_STDOUT => Stream::Stdout,
            ffi::SHMREPL_STREAM_STDERR => Stream::Stderr,
            other => Stream::Unknown(other),
        }
    }
}

/// How an execution ended (FINISHED records).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FinishStatus {
    Ok,
    Error,
    Cancelled,
    Exited,
    Aborted,
    /// Its [`timeout`](crate::ExecuteOptions::timeout) passed (ABI 1.1).
    Timeout,
    /// It ran out of its [`memory_limit`](crate::ExecuteOptions::memory_limit) (ABI 1.1).
    MemoryLimit,
    Unknown(u32),
}

impl FinishStatus {
    pub fn from_raw(v: u32) -> FinishStatus {
        match v {
            ffi::SHMREPL_FINISH_OK => FinishStatus::Ok,
            ffi::SHMREPL_FINISH_ERROR => FinishStatus::Error,
            ffi::SHMREPL_FINISH_CANCELLED => FinishStatus::Cancelled,
            ffi::SHMREPL_FINISH_EXITED => FinishStatus::Exited,
            ffi::SHMREPL_FINISH_ABORTED => FinishStatus::Aborted,
            ffi::SHMREPL_FINISH_TIMEOUT => FinishStatus::Timeout,
            ffi::SHMREPL_FINISH_MEMORY_LIMIT => FinishStatus::MemoryLimit,
            other => FinishStatus::Unknown(other),
        }
    }

    /// "OK", "ERROR", "CANCELLED", "EXITED", "ABORTED", "TIMEOUT", "MEMORY_LIMIT" or
    /// "UNKNOWN".
    pub fn name(self) -> &'static str {
        match self {
            FinishStatus::Ok => "OK",
            FinishStatus::Error => "ERROR",
            FinishStatus::Cancelled => "CANCELLED",
            FinishStatus::Exited => "EXITED",
            FinishStatus::Aborted => "ABORTED",
            FinishStatus::Timeout => "TIMEOUT",
            FinishStatus::MemoryLimit => "MEMORY_LIMIT",
            FinishStatus::Unknown(_) => "UNKNOWN",
        }
    }
}

impl fmt::Display for FinishStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One record, a view into the ring.
///
/// Only ever seen by reference, borrowed from the [`Batch`](crate::Batch) or
/// [`Held`](crate::Held) that holds it; every slice it hands out lives as long as
/// that borrow, and the ring space is released when the batch is dropped. It is
/// neither `Clone` nor `Copy`, so a view cannot outlive its release.
#[repr(transparent)]
pub struct Record(ffi::shmrepl_record_t);

#[inline]
unsafe fn view<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if len == 0 || ptr.is_null() {
        &[]
    } else {
        std::slice::from_raw_parts(ptr, len)
    }
}

impl Record {
    /// # Safety
    /// `raw` holds records handed out by a reader and held while the result is borrowed.
    #[inline]
    pub(crate) unsafe fn from_raw_slice(raw: &[ffi::shmrepl_record_t]) -> &[Record] {
        // repr(transparent): same layout.
        std::slice::from_raw_parts(raw.as_ptr() as *const Record, raw.len())
    }

    /// The C struct (its pointers stay valid as long as this borrow).
    #[inline]
    pub fn as_raw(&self) -> &ffi::shmrepl_record_t {
        &self.0
    }

    #[inline]
    pub fn kind(&self) -> Kind {
        Kind::from_raw(self.0.kind)
    }

    #[inline]
    pub fn stream(&self) -> Stream {
        Stream::from_raw(self.0.stream)
    }

    /// `SHMREPL_FLAG_*` bits.
    #[inline]
    pub fn flags(&self) -> u32 {
        self.0.flags
    }

    /// The first or a middle part of a write split over several OUTPUT records.
    #[inline]
    pub fn has_more(&self) -> bool {
        self.0.flags & ffi::SHMREPL_FLAG_MORE != 0
    }

    /// A middle or the last part of a split write.
    #[inline]
    pub fn is_continued(&self) -> bool {
        self.0.flags & ffi::SHMREPL_FLAG_CONTINUED != 0
    }

    /// INPUT_REQUEST: `getpass()` asks; do not echo the answer (ABI 1.2).
    #[inline]
    pub fn is_password(&self) -> bool {
        self.0.flags & ffi::SHMREPL_FLAG_PASSWORD != 0
    }

    /// FINISHED only.
    #[inline]
    pub fn finish_status(&self) -> FinishStatus {
        FinishStatus::from_raw(self.0.finish_status)
    }

    #[inline]
    pub fn execution_id(&self) -> u64 {
        self.0.execution_id
    }

    /// Gap-free per execution, from 0.
    #[inline]
    pub fn seq(&self) -> u64 {
        self.0.seq
    }

    /// CLOCK_REALTIME when the record was written.
    #[inline]
    pub fn timestamp_ns(&self) -> u64 {
        self.0.timestamp_ns
    }

    /// The record's bytes, in the ring (no copy): OUTPUT text, RESULT repr, ERROR
    /// message, INPUT_REQUEST prompt, STARTED client execution id.
    #[inline]
    pub fn data(&self) -> &[u8] {
        // SAFETY: held by the batch this borrow comes from.
        unsafe { view(self.0.data, self.0.data_len) }
    }

    /// [`data`](Record::data) as text (lossy UTF-8; borrowed when it is valid).
    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.data())
    }

    /// The whole verified FlatBuffers record (abi/shmrepl.fbs), in the ring.
    #[inline]
    pub fn raw(&self) -> &[u8] {
        // SAFETY: as data().
        unsafe { view(self.0.raw, self.0.raw_len) }
    }

    /// FINISHED only. For [`FinishStatus::Aborted`], the worker's exit status
    /// (`os._exit(n)`: n).
    #[inline]
    pub fn exit_code(&self) -> i64 {
        self.0.exit_code
    }

    /// FINISHED only: the signal that ended the session's worker process
    /// (`reserved[0]`, since ABI 1.1), `None` when no signal did (and for other
    /// kinds). A crash gives `Aborted` with e.g. `Some(11)`; a cancel that had to
    /// kill the worker gives `Cancelled` with `Some(9)`.
    #[inline]
    pub fn signal(&self) -> Option<i32> {
        if self.kind() != Kind::Finished {
            return None;
        }
        match self.0.reserved[0] {
            0 => None,
            n => i32::try_from(n).ok(),
        }
    }

    /// FINISHED only.
    #[inline]
    pub fn duration(&self) -> Duration {
        Duration::from_nanos(self.0.duration_ns)
    }

    /// The structured part of an ERROR record (`Invalid` for other kinds).
    pub fn error(&self) -> Result<ErrorDetails<'_>> {
        let mut ename = ffi::shmrepl_bytes_t { ptr: std::ptr::null(), len: 0 };
        let mut evalue = ename;
        let mut n = 0usize;
        // SAFETY: a held record; out pointers are valid.
        check(unsafe { ffi::shmrepl_record_error(&self.0, &mut ename, &mut evalue, &mut n) })?;
        Ok(ErrorDetails {
            record: self,
            // SAFETY: they point into the mapping, valid as long as the record.
            ename: unsafe { view(ename.ptr, ename.len) },
            evalue: unsafe { view(evalue.ptr, evalue.len) },
            lines: n,
        })
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Record")
            .field("kind", &self.kind())
            .field("stream", &self.stream())
            .field("flags", &self.flags())
            .field("execution_id", &self.execution_id())
            .field("seq", &self.seq())
            .field("data", &self.text())
            .field("finish_status", &self.finish_status())
            .field("exit_code", &self.exit_code())
            .field("signal", &self.signal())
            .finish()
    }
}

/// The exception of an ERROR record; every slice is in the ring.
#[derive(Clone, Copy)]
pub struct ErrorDetails<'a> {
    record: &'a Record,
    ename: &'a [u8],
    evalue: &'a [u8],
    lines: usize,
}

impl<'a> ErrorDetails<'a> {
    /// The exception's type name, e.g. `ZeroDivisionError`.
    pub fn ename(&self) -> &'a [u8] {
        self.ename
    }

    /// The exception's message.
    pub fn evalue(&self) -> &'a [u8] {
        self.evalue
    }

    /// Number of traceback lines.
    pub fn traceback_len(&self) -> usize {
        self.lines
    }

    /// Traceback line `index` (0-based).
    pub fn traceback_line(&self, index: usize) -> Result<&'a [u8]> {
        let mut line = ffi::shmrepl_bytes_t { ptr: std::ptr::null(), len: 0 };
        // SAFETY: a held record; out pointer valid.
        check(unsafe { ffi::shmrepl_record_traceback_line(&self.record.0, index, &mut line) })?;
        // SAFETY: in the mapping, valid as long as the record.
        Ok(unsafe { view(line.ptr, line.len) })
    }

    /// Every traceback line, in order.
    pub fn traceback(&self) -> impl Iterator<Item = Result<&'a [u8]>> + 'a {
        let this = *self;
        (0..self.lines).map(move |i| this.traceback_line(i))
    }
}

impl fmt::Debug for ErrorDetails<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ErrorDetails")
            .field("ename", &String::from_utf8_lossy(self.ename))
            .field("evalue", &String::from_utf8_lossy(self.evalue))
            .field("traceback_len", &self.lines)
            .finish()
    }
}
