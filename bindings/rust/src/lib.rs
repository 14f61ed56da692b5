//! Run Python code in a shmrepl engine and read everything it writes, in order and
//! as it is produced, straight from a ring in shared memory.
//!
//! A safe layer over `libshmrepl.so` (the C ABI of `abi/include/shmrepl/shmrepl.h`;
//! the raw calls are in [`ffi`]). Record data is a view into the ring, never copied:
//! a [`Batch`] borrows its [`Reader`] mutably, the [`Record`]s borrow the batch, and
//! dropping the batch releases them, so the compiler rejects a view used after its
//! release. Every handle is closed when dropped.
//!
//! ```
//! use shmrepl::{ClientOptions, Kind, Start};
//! # let dir = std::env::temp_dir().join(format!("shmrepl-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # let socket = dir.join("engine.sock");
//! // (This example starts a private engine on its own socket and stops it at the end.)
//! let client = ClientOptions::new().socket_path(&socket).connect()?;
//! let session = client.open_session()?;
//! let execution = session.execute("for i in range(3):\n    print('line', i)\n")?;
//! let mut reader = execution.reader(Start::Oldest)?;
//! let mut out = Vec::new();
//! while let Some(batch) = reader.batch(256, None)? {
//!     for record in &batch {
//!         if record.kind() == Kind::Output {
//!             out.extend_from_slice(record.data());
//!         }
//!     }
//! }
//! assert_eq!(out, b"line 0\nline 1\nline 2\n");
//! # drop(reader); drop(execution); drop(session);
//! # client.shutdown_engine()?;
//! # drop(client);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), shmrepl::Error>(())
//! ```
//!
//! Status codes become [`Error`]s (their [`ErrorKind`] and the library's detail
//! text); the end of a ring is `Ok(None)`.

mod client;
mod error;
pub mod ffi;
mod reader;
mod record;

pub use client::{Client, ClientOptions, ExecuteOptions, Execution, Session, SessionOptions};
pub use error::{Error, ErrorKind, Result};
pub use reader::{Batch, Held, Reader, Start};
pub use record::{ErrorDetails, FinishStatus, Kind, Record, Stream};

/// The loaded library's version, "MAJOR.MINOR.PATCH".
pub fn version() -> &'static str {
    // SAFETY: static storage.
    unsafe { error::static_str(ffi::shmrepl_version()) }
}

/// The loaded library's ABI version (this binding needs 1; [`Client::connect`] and
/// [`Reader::open`] check it).
///
/// ```
/// assert_eq!(shmrepl::abi_version(), 1);
/// ```
pub fn abi_version() -> u32 {
    // SAFETY: no arguments.
    unsafe { ffi::shmrepl_abi_version() }
}
