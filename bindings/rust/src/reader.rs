use std::ffi::CString;
use std::ops::Deref;
use std::ptr::NonNull;
use std::time::Duration;

use crate::error::{check, Error, ErrorKind, Result};
use crate::ffi;
use crate::record::Record;

/// Where a newly attached reader starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Start {
    /// The oldest record the ring still holds (every record from seq 0 if no
    /// reader released any yet).
    #[default]
    Oldest,
    /// Only records written after the reader attached.
    Newest,
}

impl Start {
    pub(crate) fn options(self) -> ffi::shmrepl_reader_options_t {
        ffi::shmrepl_reader_options_t {
            struct_size: std::mem::size_of::<ffi::shmrepl_reader_options_t>() as u32,
            start: match self {
                Start::Oldest => ffi::SHMREPL_START_OLDEST,
                Start::Newest => ffi::SHMREPL_START_NEWEST,
            },
        }
    }
}

/// `None` waits forever; `Some(Duration::ZERO)` does not wait.
pub(crate) fn timeout_ns(timeout: Option<Duration>) -> i64 {
    match timeout {
        None => -1,
        Some(d) => d.as_nanos().min(i64::MAX as u128) as i64,
    }
}

/// A reader attached to one ring: records in order, zero-copy.
///
/// Records come in a [`Batch`] (or one at a time as [`Held`]), which borrows the
/// reader mutably; the records borrow the batch, and dropping the batch releases
/// them to the producer. So a view cannot be used after its release, and a reader
/// cannot wait for more while it holds records (which could wait for itself):
///
/// ```compile_fail,E0505
/// # fn f(reader: &mut shmrepl::Reader) -> shmrepl::Result<()> {
/// let batch = reader.batch(16, None)?.unwrap();
/// let data: &[u8] = batch[0].data();
/// drop(batch); // releases the records
/// println!("{}", data.len()); // error: `batch` was moved while borrowed
/// # Ok(()) }
/// ```
///
/// ```compile_fail,E0499
/// # fn f(reader: &mut shmrepl::Reader) -> shmrepl::Result<()> {
/// let first = reader.batch(16, None)?.unwrap();
/// let second = reader.batch(16, None)?; // error: reader is still borrowed by `first`
/// println!("{} {:?}", first.len(), second.is_some());
/// # Ok(()) }
/// ```
///
/// A closed reader is gone:
///
/// ```compile_fail,E0382
/// # fn f(reader: shmrepl::Reader) {
/// reader.close();
/// reader.held(); // error: use of moved value
/// # }
/// ```
///
/// A reader may move to another thread (`Send`) but is not shared (`!Sync`):
///
/// ```compile_fail,E0277
/// fn shared<T: Sync>() {}
/// shared::<shmrepl::Reader>();
/// ```
///
/// Reading an unknown ring is an error of kind `NotFound`:
///
/// ```
/// let err = shmrepl::Reader::open("shmrepl-doc-no-such-ring", shmrepl::Start::Oldest).unwrap_err();
/// assert_eq!(err.kind(), shmrepl::ErrorKind::NotFound);
/// ```
pub struct Reader {
    raw: NonNull<ffi::shmrepl_reader_t>,
    // Where the C library writes record views; a batch shows its first n entries.
    buf: Vec<ffi::shmrepl_record_t>,
}

// SAFETY: a reader handle may be used by any thread, one at a time (the header's
// thread rule); &mut self on every call that changes it gives exactly that. The
// records in `buf` point into the reader's own mapping. Not Sync: the C reader
// takes no lock, and `held`/`mapping` may not run beside `next`.
unsafe impl Send for Reader {}

/// Fails unless the loaded library speaks ABI version 1.
pub(crate) fn check_abi() -> Result<()> {
    // SAFETY: no arguments, usable before anything else.
    let v = unsafe { ffi::shmrepl_abi_version() };
    if v == ffi::SHMREPL_ABI_VERSION {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Version,
            format!("libshmrepl speaks ABI version {}, this binding version {}", v, ffi::SHMREPL_ABI_VERSION),
        ))
    }
}

pub(crate) fn c_string(what: &str, s: &[u8]) -> Result<CString> {
    CString::new(s).map_err(|_| Error::new(ErrorKind::Invalid, format!("{} contains a NUL byte", what)))
}

impl Reader {
    /// Attaches to the ring `name` (as [`Execution::ring_name`](crate::Execution::ring_name)
    /// gives it, also from another process). Errors: `Invalid` (bad name),
    /// `NotFound`, `Permission`, `Corrupt`, `Version`, `NoSlot`.
    pub fn open(name: &str, start: Start) -> Result<Reader> {
        check_abi()?;
        let name = c_string("ring name", name.as_bytes())?;
        let options = start.options();
        let mut out = std::ptr::null_mut();
        // SAFETY: valid NUL-terminated name, options and out pointer.
        check(unsafe { ffi::shmrepl_reader_open(name.as_ptr(), &options, &mut out) })?;
        Ok(unsafe { Reader::from_raw(out) })
    }

    /// # Safety
    /// `raw` is an open reader that nothing else closes.
    pub(crate) unsafe fn from_raw(raw: *mut ffi::shmrepl_reader_t) -> Reader {
        Reader { raw: NonNull::new(raw).expect("shmrepl returned OK and a NULL reader"), buf: Vec::new() }
    }

    /// The C handle (still owned by this reader).
    pub fn as_ptr(&self) -> *mut ffi::shmrepl_reader_t {
        self.raw.as_ptr()
    }

    /// The next record, held until the returned [`Held`] is dropped; `Ok(None)` at
    /// the end of the ring. `timeout`: `None` waits forever, `Some(ZERO)` does not
    /// wait (`Again`), else `Timeout` after it. `ProducerDied` once every record the
    /// dead writer published was delivered.
    pub fn next(&mut self, timeout: Option<Duration>) -> Result<Option<Held<'_>>> {
        if self.buf.is_empty() {
            self.buf.push(ffi::shmrepl_record_t::ZERO);
        }
        // SAFETY: open reader, room for one record.
        let st = unsafe { ffi::shmrepl_reader_next(self.raw.as_ptr(), timeout_ns(timeout), self.buf.as_mut_ptr()) };
        if st == ffi::SHMREPL_E_EOF {
            return Ok(None);
        }
        check(st)?;
        Ok(Some(Held { reader: self }))
    }

    /// Up to `max` records that are ready (waiting as [`next`](Reader::next) only
    /// when none is), held until the batch is dropped; `Ok(None)` at the end.
    ///
    /// ```no_run
    /// # fn f(reader: &mut shmrepl::Reader) -> shmrepl::Result<()> {
    /// while let Some(batch) = reader.batch(256, None)? {
    ///     for record in &batch {
    ///         println!("{} {:?}", record.kind(), record.text());
    ///     }
    /// } // each batch is released here
    /// # Ok(()) }
    /// ```
    pub fn batch(&mut self, max: usize, timeout: Option<Duration>) -> Result<Option<Batch<'_>>> {
        if self.buf.len() < max {
            self.buf.resize(max, ffi::shmrepl_record_t::ZERO);
        }
        let mut n = 0usize;
        // SAFETY: open reader; buf has room for max records.
        let st = unsafe {
            ffi::shmrepl_reader_next_batch(self.raw.as_ptr(), self.buf.as_mut_ptr(), max, &mut n, timeout_ns(timeout))
        };
        if st == ffi::SHMREPL_E_EOF {
            return Ok(None);
        }
        check(st)?;
        Ok(Some(Batch { reader: self, n }))
    }

    /// Reads to the end of the ring in batches of up to 256, calling `f` on every
    /// record; returns how many there were. Each wait is bounded by `timeout`.
    pub fn for_each<F: FnMut(&Record)>(&mut self, timeout: Option<Duration>, mut f: F) -> Result<u64> {
        let mut count = 0u64;
        while let Some(batch) = self.batch(256, timeout)? {
            for record in &batch {
                f(record);
            }
            count += batch.len() as u64;
        }
        Ok(count)
    }

    /// Records handed out and not yet released.
    pub fn held(&self) -> usize {
        // SAFETY: open reader.
        unsafe { ffi::shmrepl_reader_held(self.raw.as_ptr()) }
    }

    /// The execution id the ring's header carries.
    pub fn execution_id(&self) -> u64 {
        // SAFETY: open reader.
        unsafe { ffi::shmrepl_reader_execution_id(self.raw.as_ptr()) }
    }

    /// The reader's whole mapping of the ring, `(base, len)`: every view a record
    /// gives lies in `[base, base + len)`. Valid while the reader is open.
    pub fn mapping(&self) -> (*const u8, usize) {
        let mut base = std::ptr::null();
        let mut len = 0usize;
        // SAFETY: open reader, valid out pointers (E_INVALID only for NULLs).
        let st = unsafe { ffi::shmrepl_reader_mapping(self.raw.as_ptr(), &mut base, &mut len) };
        if st != ffi::SHMREPL_OK {
            return (std::ptr::null(), 0);
        }
        (base, len)
    }

    /// Detaches and unmaps (as dropping it does).
    pub fn close(self) {}
}

impl Drop for Reader {
    fn drop(&mut self) {
        // SAFETY: ours; no batch can be alive (it would borrow self).
        unsafe { ffi::shmrepl_reader_close(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("execution_id", &self.execution_id()).field("held", &self.held()).finish()
    }
}

/// Records read together, held (the producer cannot reuse their space) until the
/// batch is dropped. Dereferences to `[Record]`.
pub struct Batch<'r> {
    reader: &'r mut Reader,
    n: usize,
}

impl<'r> Batch<'r> {
    /// Releases the records now, reporting an error (dropping ignores it).
    pub fn release(mut self) -> Result<()> {
        let n = std::mem::replace(&mut self.n, 0);
        // SAFETY: open reader that holds these n records.
        check(unsafe { ffi::shmrepl_reader_release(self.reader.raw.as_ptr(), n) })
    }

    /// The reader the records come from.
    pub fn reader(&self) -> &Reader {
        self.reader
    }
}

impl Deref for Batch<'_> {
    type Target = [Record];

    #[inline]
    fn deref(&self) -> &[Record] {
        // SAFETY: the first n entries are held records until this batch drops.
        unsafe { Record::from_raw_slice(&self.reader.buf[..self.n]) }
    }
}

impl<'b> IntoIterator for &'b Batch<'_> {
    type Item = &'b Record;
    type IntoIter = std::slice::Iter<'b, Record>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl Drop for Batch<'_> {
    fn drop(&mut self) {
        if self.n > 0 {
            // SAFETY: open reader that holds these n records.
            unsafe { ffi::shmrepl_reader_release(self.reader.raw.as_ptr(), self.n) };
        }
    }
}

impl std::fmt::Debug for Batch<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// One record from [`Reader::next`], released when dropped. Dereferences to
/// [`Record`].
pub struct Held<'r> {
    reader: &'r mut Reader,
}

impl Deref for Held<'_> {
    type Target = Record;

    #[inline]
    fn deref(&self) -> &Record {
        // SAFETY: buf[0] is held until this drops.
        unsafe { &Record::from_raw_slice(&self.reader.buf[..1])[0] }
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        // SAFETY: open reader that holds this one record.
        unsafe { ffi::shmrepl_reader_release(self.reader.raw.as_ptr(), 1) };
    }
}

impl std::fmt::Debug for Held<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}
