use std::ffi::{CStr, CString, OsStr};
use std::marker::PhantomData;
use std::os::raw::c_char;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::io::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::time::Duration;

use crate::error::{check, Error, ErrorKind, Result};
use crate::ffi;
use crate::reader::{c_string, check_abi, Reader, Start};

/// How to reach (or start) an engine; unset fields take the library's defaults.
///
/// ```no_run
/// use std::time::Duration;
/// let client = shmrepl::ClientOptions::new()
///     .socket_path("/tmp/my-engine/engine.sock")
///     .autostart(true)
///     .connect_timeout(Duration::from_secs(10))
///     .connect()?;
/// # Ok::<(), shmrepl::Error>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    socket_path: Option<PathBuf>,
    engine_path: Option<PathBuf>,
    autostart: Option<bool>,
    connect_timeout: Option<Duration>,
    request_timeout: Option<Duration>,
}

impl ClientOptions {
    pub fn new() -> ClientOptions {
        ClientOptions::default()
    }

    /// The engine's socket. Default: `$SHMREPL_SOCKET`, else
    /// `$XDG_RUNTIME_DIR/shmrepl/default.sock`, else `/tmp/shmrepl-<uid>/default.sock`.
    pub fn socket_path(mut self, path: impl Into<PathBuf>) -> ClientOptions {
        self.socket_path = Some(path.into());
        self
    }

    /// The engine to start. Default: `$SHMREPL_ENGINE`, else
    /// `<libdir>/../bin/shmrepl-engine` next to libshmrepl.
    pub fn engine_path(mut self, path: impl Into<PathBuf>) -> ClientOptions {
        self.engine_path = Some(path.into());
        self
    }

    /// Start an engine when none listens (default: on).
    pub fn autostart(mut self, on: bool) -> ClientOptions {
        self.autostart = Some(on);
        self
    }

    /// How long to wait for a started engine to listen (default and zero: 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> ClientOptions {
        self.connect_timeout = Some(timeout);
        self
    }

    /// How long any one request may wait for its reply (default: no limit). When it
    /// passes the call fails with `Timeout` and the connection is unusable: later
    /// calls fail with `State` (connect again). Since ABI 1.2.
    pub fn request_timeout(mut self, timeout: Duration) -> ClientOptions {
        self.request_timeout = Some(timeout);
        self
    }

    /// [`Client::connect`] with these options.
    pub fn connect(&self) -> Result<Client> {
        Client::connect(self)
    }
}

fn path_c_string(what: &str, path: &Option<PathBuf>) -> Result<Option<CString>> {
    match path {
        None => Ok(None),
        Some(p) => c_string(what, p.as_os_str().as_bytes()).map(Some),
    }
}

fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |s| s.as_ptr())
}

/// A connection to an engine. Closed when dropped.
///
/// `Send` and `Sync`: the library serializes a client's requests, so one client
/// may serve several threads.
pub struct Client {
    raw: NonNull<ffi::shmrepl_client_t>,
}

// SAFETY: the header allows a client to be used from several threads at once
// (its requests are serialized); engine_pid and background_ring read state set at
// connect or guarded by the library.
unsafe impl Send for Client {}
unsafe impl Sync for Client {}

impl Client {
    /// Connects, starting an engine if none listens and autostart is on. Checks
    /// that the library speaks ABI version 1 first (`Version` otherwise). Errors:
    /// `Connect`, `Permission`, `Version`, `Invalid`.
    pub fn connect(options: &ClientOptions) -> Result<Client> {
        check_abi()?;
        let socket = path_c_string("socket path", &options.socket_path)?;
        let engine = path_c_string("engine path", &options.engine_path)?;
        let raw = ffi::shmrepl_client_options_t {
            struct_size: std::mem::size_of::<ffi::shmrepl_client_options_t>() as u32,
            autostart: match options.autostart {
                None => ffi::SHMREPL_AUTOSTART_DEFAULT,
                Some(true) => ffi::SHMREPL_AUTOSTART_ON,
                Some(false) => ffi::SHMREPL_AUTOSTART_OFF,
            },
            socket_path: opt_ptr(&socket),
            engine_path: opt_ptr(&engine),
            connect_timeout_ns: options.connect_timeout.map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64),
            // At least 1 ns: 0 would mean no limit.
            request_timeout_ns: options.request_timeout.map_or(0, |d| d.as_nanos().clamp(1, i64::MAX as u128) as i64),
        };
        let mut out = std::ptr::null_mut();
        // SAFETY: options and the strings it points to outlive the call.
        check(unsafe { ffi::shmrepl_client_connect(&raw, &mut out) })?;
        Ok(Client { raw: NonNull::new(out).expect("shmrepl returned OK and a NULL client") })
    }

    /// The C handle (still owned by this client).
    pub fn as_ptr(&self) -> *mut ffi::shmrepl_client_t {
        self.raw.as_ptr()
    }

    /// The engine's process id.
    pub fn engine_pid(&self) -> u32 {
        // SAFETY: open client.
        unsafe { ffi::shmrepl_client_engine_pid(self.raw.as_ptr()) }
    }

    /// A new session (its own Python namespace and worker process; one execution
    /// at a time) with the engine's working folder and environment, stdin
    /// /dev/null. Closed when dropped. Errors: `EngineDied`.
    pub fn open_session(&self) -> Result<Session<'_>> {
        let mut id = 0u64;
        // SAFETY: open client, valid out pointer.
        check(unsafe { ffi::shmrepl_session_open(self.raw.as_ptr(), &mut id) })?;
        Ok(Session { client: self, id, open: true })
    }

    /// A new session whose worker runs with `options` (`shmrepl_session_open_ex`,
    /// ABI 1.1). Errors: `NotFound` (no such working folder), `Invalid` (a bad
    /// environment entry or descriptor), `EngineDied`.
    pub fn open_session_with(&self, options: &SessionOptions<'_>) -> Result<Session<'_>> {
        if let Some(bad) = &options.env_error {
            return Err(Error::new(ErrorKind::Invalid, bad.clone()));
        }
        let working_dir = path_c_string("working folder", &options.working_dir)?;
        let env_ptrs: Option<Vec<*const c_char>> =
            options.env.as_ref().map(|env| env.iter().map(|e| e.as_ptr()).collect());
        let raw = ffi::shmrepl_session_options_t {
            struct_size: std::mem::size_of::<ffi::shmrepl_session_options_t>() as u32,
            flags: 0,
            working_dir: opt_ptr(&working_dir),
            // An empty environment is a non-NULL pointer (an empty Vec's is dangling
            // but never read) with envc 0; NULL means the engine's.
            env: env_ptrs.as_ref().map_or(std::ptr::null(), |p| p.as_ptr()),
            envc: env_ptrs.as_ref().map_or(0, |p| p.len()),
            stdin_fd_plus_one: fd_plus_one("stdin", options.stdin)?,
            reserved: 0,
            stdout_fd_plus_one: fd_plus_one("stdout", options.stdout)?,
            stderr_fd_plus_one: fd_plus_one("stderr", options.stderr)?,
        };
        let mut id = 0u64;
        // SAFETY: open client; everything `raw` points to outlives the call, and the
        // descriptor is borrowed for the options' lifetime.
        check(unsafe { ffi::shmrepl_session_open_ex(self.raw.as_ptr(), &raw, &mut id) })?;
        Ok(Session { client: self, id, open: true })
    }

    /// Queues code in a session; the ring exists, holding STARTED, when this
    /// returns. Errors: `NotFound` (unknown session), `SessionDied` (its worker
    /// died), `TooLarge`, `Invalid`.
    pub fn execute(&self, options: &ExecuteOptions<'_>) -> Result<Execution<'_>> {
        let client_id = match options.client_execution_id {
            Some(s) => Some(c_string("client execution id", s.as_bytes())?),
            None => None,
        };
        let filename = match options.filename {
            Some(s) => Some(c_string("filename", s.as_bytes())?),
            None => None,
        };
        let argv: Vec<CString> = options.argv.iter().map(|a| c_string("argv", a.as_bytes())).collect::<Result<_>>()?;
        let argv_ptrs: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).collect();
        let raw = ffi::shmrepl_execute_options_t {
            struct_size: std::mem::size_of::<ffi::shmrepl_execute_options_t>() as u32,
            script: options.script as u32,
            session_id: options.session_id,
            code: options.code.as_ptr() as *const c_char,
            code_len: options.code.len(),
            client_execution_id: opt_ptr(&client_id),
            filename: opt_ptr(&filename),
            argv: if argv_ptrs.is_empty() { std::ptr::null() } else { argv_ptrs.as_ptr() },
            argc: argv_ptrs.len(),
            ring_capacity: options.ring_capacity,
            timeout_ns: options.timeout_ns,
            memory_limit: options.memory_limit,
        };
        let mut out = std::ptr::null_mut();
        // SAFETY: open client; everything `raw` points to outlives the call.
        check(unsafe { ffi::shmrepl_execute(self.raw.as_ptr(), &raw, &mut out) })?;
        let raw = NonNull::new(out).expect("shmrepl returned OK and a NULL execution");
        // SAFETY: valid as long as the handle; copied now.
        let ring_name =
            unsafe { CStr::from_ptr(ffi::shmrepl_execution_ring_name(raw.as_ptr())) }.to_string_lossy().into_owned();
        Ok(Execution { client: self, raw, ring_name })
    }

    /// Asks the engine to stop (it cancels everything, unlinks its rings and its
    /// socket, and exits); returns once it closed the connection. Afterwards the
    /// client can only be dropped.
    pub fn shutdown_engine(&self) -> Result<()> {
        // SAFETY: open client.
        check(unsafe { ffi::shmrepl_engine_shutdown(self.raw.as_ptr()) })
    }

    /// Closes the connection (as dropping does): the engine closes this client's
    /// sessions and releases its executions.
    pub fn close(self) {}
}

impl Drop for Client {
    fn drop(&mut self) {
        // SAFETY: ours; sessions and executions borrow it, so none is left.
        unsafe { ffi::shmrepl_client_close(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("engine_pid", &self.engine_pid()).finish()
    }
}

// A descriptor as the ABI's fd_plus_one (0: none).
fn fd_plus_one(what: &str, fd: Option<RawFd>) -> Result<i32> {
    match fd {
        Some(fd) => match fd.checked_add(1) {
            Some(n) if fd >= 0 => Ok(n),
            _ => Err(Error::new(ErrorKind::Invalid, format!("{} descriptor {}", what, fd))),
        },
        None => Ok(0),
    }
}

/// Where and how a session's worker process runs; unset fields take the engine's
/// (its working folder and environment; stdin /dev/null). For
/// [`Client::open_session_with`].
///
/// ```no_run
/// # fn f(client: &shmrepl::Client) -> shmrepl::Result<()> {
/// let input = std::fs::File::open("/etc/hostname").unwrap();
/// let options = shmrepl::SessionOptions::new()
///     .working_dir("/tmp")
///     .env([("PATH", "/usr/bin:/bin"), ("LANG", "C.UTF-8")])
///     .stdin(&input);
/// let session = client.open_session_with(&options)?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct SessionOptions<'a> {
    working_dir: Option<PathBuf>,
    env: Option<Vec<CString>>,
    // The first bad entry given to env(), reported at open.
    env_error: Option<String>,
    stdin: Option<RawFd>,
    stdout: Option<RawFd>,
    stderr: Option<RawFd>,
    // The descriptors are only borrowed: their owners must outlive the options.
    _stdin: PhantomData<&'a ()>,
}

impl<'a> SessionOptions<'a> {
    pub fn new() -> SessionOptions<'a> {
        SessionOptions::default()
    }

    /// The worker's working folder (`os.getcwd()`); it must exist.
    pub fn working_dir(mut self, path: impl AsRef<Path>) -> SessionOptions<'a> {
        self.working_dir = Some(path.as_ref().to_path_buf());
        self
    }

    /// The whole environment of the session (`os.environ`), replacing the engine's:
    /// pairs of name and value, e.g. a `HashMap`, a `Vec<(K, V)>` or
    /// `std::env::vars_os()`. An empty iterator gives an empty environment.
    /// `Invalid` (at open) for an empty name, a name with `=`, or a NUL byte.
    pub fn env<I, K, V>(mut self, vars: I) -> SessionOptions<'a>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let mut entries = Vec::new();
        let mut bad = None;
        for (k, v) in vars {
            let (k, v) = (k.as_ref().as_bytes(), v.as_ref().as_bytes());
            if k.is_empty() || k.contains(&b'=') {
                bad.get_or_insert_with(|| format!("environment name {:?}", String::from_utf8_lossy(k)));
                continue;
            }
            let mut e = Vec::with_capacity(k.len() + 1 + v.len());
            e.extend_from_slice(k);
            e.push(b'=');
            e.extend_from_slice(v);
            match CString::new(e) {
                Ok(e) => entries.push(e),
                Err(_) => {
                    bad.get_or_insert_with(|| {
                        format!("environment entry {:?} contains a NUL byte", String::from_utf8_lossy(k))
                    });
                }
            }
        }
        self.env = Some(entries);
        self.env_error = bad;
        self
    }

    /// As [`env`](SessionOptions::env), from "NAME=value" entries (a `Vec<String>`,
    /// say). `Invalid` (at open) for an entry without a name and `=`, or with a NUL
    /// byte.
    pub fn env_entries<I, S>(mut self, entries: I) -> SessionOptions<'a>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut out = Vec::new();
        let mut bad = None;
        for e in entries {
            let e = e.as_ref().as_bytes();
            let named = matches!(e.iter().position(|&b| b == b'='), Some(eq) if eq > 0);
            match CString::new(e) {
                Ok(c) if named => out.push(c),
                _ => {
                    bad.get_or_insert_with(|| format!("environment entry {:?}", String::from_utf8_lossy(e)));
                }
            }
        }
        self.env = Some(out);
        self.env_error = bad;
        self
    }

    /// The engine's environment again (the default).
    pub fn inherit_env(mut self) -> SessionOptions<'a> {
        self.env = None;
        self.env_error = None;
        self
    }

    /// The session's standard input (`sys.stdin`, fd 0 of its worker): a duplicate
    /// of `fd` is passed to the worker when the session opens; the caller keeps its
    /// own. Default: /dev/null.
    pub fn stdin<F: AsRawFd + ?Sized>(mut self, fd: &'a F) -> SessionOptions<'a> {
        self.stdin = Some(fd.as_raw_fd());
        self
    }

    /// The caller's standard output, asked only whether it is a terminal and its
    /// size: the program's `sys.stdout.isatty()`, `os.get_terminal_size()` and
    /// `shutil.get_terminal_size()` answer for it (live: a resize shows). Never
    /// written: output still goes to the ring. Default: not a terminal. ABI 1.2.
    pub fn stdout<F: AsRawFd + ?Sized>(mut self, fd: &'a F) -> SessionOptions<'a> {
        self.stdout = Some(fd.as_raw_fd());
        self
    }

    /// As [`stdout`](SessionOptions::stdout), for `sys.stderr` (and
    /// `os.get_terminal_size(2)`). ABI 1.2.
    pub fn stderr<F: AsRawFd + ?Sized>(mut self, fd: &'a F) -> SessionOptions<'a> {
        self.stderr = Some(fd.as_raw_fd());
        self
    }

    /// [`Client::open_session_with`] these options.
    pub fn open<'c>(&self, client: &'c Client) -> Result<Session<'c>> {
        client.open_session_with(self)
    }
}

/// A session of a [`Client`]: its own Python namespace, in its own worker process.
/// Closed when dropped (which cancels what runs in it). When its worker dies (a
/// crash, a kill, `os._exit`), the running execution ends with a FINISHED record
/// of status `Aborted` and later calls give `ErrorKind::SessionDied`.
#[derive(Debug)]
pub struct Session<'c> {
    client: &'c Client,
    id: u64,
    open: bool,
}

impl<'c> Session<'c> {
    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn client(&self) -> &'c Client {
        self.client
    }

    /// The ring that gets output of threads that outlive the execution that
    /// started them; `None` if the engine has none.
    pub fn background_ring(&self) -> Option<String> {
        // SAFETY: open client; the text is copied before the next call.
        let p = unsafe { ffi::shmrepl_session_background_ring(self.client.raw.as_ptr(), self.id) };
        if p.is_null() {
            return None;
        }
        let name = unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned();
        if name.is_empty() {
            None
        } else {
            Some(name)
        }
    }

    /// Runs `code` in this session with the default options.
    pub fn execute(&self, code: &str) -> Result<Execution<'c>> {
        self.client.execute(&ExecuteOptions::new(self, code))
    }

    /// Closes the session, reporting an error (dropping ignores it).
    pub fn close(mut self) -> Result<()> {
        self.open = false;
        // SAFETY: open client.
        check(unsafe { ffi::shmrepl_session_close(self.client.raw.as_ptr(), self.id) })
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        if self.open {
            // SAFETY: open client. An error (the engine died) leaves nothing to close.
            unsafe { ffi::shmrepl_session_close(self.client.raw.as_ptr(), self.id) };
        }
    }
}

/// What to run: code and the execute options of the C ABI.
///
/// ```no_run
/// # fn f(client: &shmrepl::Client, session: &shmrepl::Session) -> shmrepl::Result<()> {
/// let options = shmrepl::ExecuteOptions::new(session, "import sys\nprint(sys.argv)\n")
///     .client_execution_id("job-17")
///     .filename("job.py")
///     .argv(&["job.py", "--fast"])
///     .script(true)
///     .ring_capacity(1 << 20)
///     .timeout(std::time::Duration::from_secs(10)) // ABI 1.1: FINISHED Timeout after 10 s
///     .memory_limit(256 << 20); // ABI 1.1: FINISHED MemoryLimit beyond 256 MiB of heap growth
/// let execution = client.execute(&options)?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct ExecuteOptions<'a> {
    session_id: u64,
    code: &'a [u8],
    client_execution_id: Option<&'a str>,
    filename: Option<&'a str>,
    argv: Vec<&'a str>,
    script: bool,
    ring_capacity: u64,
    timeout_ns: i64,
    memory_limit: u64,
}

impl<'a> ExecuteOptions<'a> {
    /// `code` (Python source, UTF-8) to run in `session`.
    pub fn new<C: AsRef<[u8]> + ?Sized>(session: &Session<'_>, code: &'a C) -> ExecuteOptions<'a> {
        ExecuteOptions::with_session_id(session.id(), code)
    }

    /// As [`new`](ExecuteOptions::new), given the session's id.
    pub fn with_session_id<C: AsRef<[u8]> + ?Sized>(session_id: u64, code: &'a C) -> ExecuteOptions<'a> {
        ExecuteOptions {
            session_id,
            code: code.as_ref(),
            client_execution_id: None,
            filename: None,
            argv: Vec::new(),
            script: false,
            ring_capacity: 0,
            timeout_ns: 0,
            memory_limit: 0,
        }
    }

    /// An id of the caller's, the data of the STARTED record.
    pub fn client_execution_id(mut self, id: &'a str) -> ExecuteOptions<'a> {
        self.client_execution_id = Some(id);
        self
    }

    /// The name shown in tracebacks (default `<shmrepl>`).
    pub fn filename(mut self, filename: &'a str) -> ExecuteOptions<'a> {
        self.filename = Some(filename);
        self
    }

    /// `sys.argv` during the execution.
    pub fn argv<I: IntoIterator<Item = &'a S>, S: AsRef<str> + ?Sized + 'a>(mut self, args: I) -> ExecuteOptions<'a> {
        self.argv = args.into_iter().map(|a| a.as_ref()).collect();
        self
    }

    /// Run as a program (`python3 FILE`): no RESULT records.
    pub fn script(mut self, on: bool) -> ExecuteOptions<'a> {
        self.script = on;
        self
    }

    /// Data bytes of the ring (0: the engine's default).
    pub fn ring_capacity(mut self, bytes: u64) -> ExecuteOptions<'a> {
        self.ring_capacity = bytes;
        self
    }

    /// Limits how long the execution may run (ABI 1.1), counted from when the
    /// session's worker accepted it: then it is interrupted (`KeyboardInterrupt`)
    /// and, if it has not ended 3 s later, its worker is killed (the session dies).
    /// FINISHED says [`FinishStatus::Timeout`](crate::FinishStatus::Timeout) either
    /// way. `Duration::ZERO` (the default): no limit; longer than `i64::MAX`
    /// nanoseconds (~292 years) is clamped to that.
    pub fn timeout(mut self, timeout: Duration) -> ExecuteOptions<'a> {
        self.timeout_ns = timeout.as_nanos().min(i64::MAX as u128) as i64;
        self
    }

    /// Bytes the worker's heap may grow by while the execution runs (ABI 1.1,
    /// `RLIMIT_DATA`): an allocation beyond raises `MemoryError` and FINISHED says
    /// [`FinishStatus::MemoryLimit`](crate::FinishStatus::MemoryLimit). 0 (the
    /// default): no limit.
    pub fn memory_limit(mut self, bytes: u64) -> ExecuteOptions<'a> {
        self.memory_limit = bytes;
        self
    }
}

/// A queued or running execution. Dropping it releases the ring (the engine
/// unlinks its name once the execution finished; open readers keep working).
///
/// `Send` and `Sync`: it may be cancelled from another thread than the one that
/// reads its ring.
pub struct Execution<'c> {
    client: &'c Client,
    raw: NonNull<ffi::shmrepl_execution_t>,
    ring_name: String,
}

// SAFETY: the header allows cancel from any thread; id and ring name are fixed at
// creation, and requests go through the client's serialized connection.
unsafe impl Send for Execution<'_> {}
unsafe impl Sync for Execution<'_> {}

impl<'c> Execution<'c> {
    /// The engine's id; every record of the execution carries it.
    pub fn id(&self) -> u64 {
        // SAFETY: open handle.
        unsafe { ffi::shmrepl_execution_id(self.raw.as_ptr()) }
    }

    /// The ring's name, for [`Reader::open`] (also from other processes).
    pub fn ring_name(&self) -> &str {
        &self.ring_name
    }

    /// A reader on the execution's ring, independent of this handle and the client.
    pub fn reader(&self, start: Start) -> Result<Reader> {
        let options = start.options();
        let mut out = std::ptr::null_mut();
        // SAFETY: open handle, valid options and out pointer.
        check(unsafe { ffi::shmrepl_execution_reader(self.raw.as_ptr(), &options, &mut out) })?;
        Ok(unsafe { Reader::from_raw(out) })
    }

    /// Raises KeyboardInterrupt in the execution (a queued one finishes cancelled
    /// without running). OK also when it had already finished. `SessionDied` when
    /// the session's worker died (also when the engine was killed).
    pub fn cancel(&self) -> Result<()> {
        // SAFETY: open handle.
        check(unsafe { ffi::shmrepl_execution_cancel(self.raw.as_ptr()) })
    }

    /// Answers the execution's INPUT_REQUEST: the program's `input()` (or
    /// `getpass()`) returns `text` (UTF-8; one trailing newline is dropped). Sessions
    /// opened without stdin ask this way. `State` if it is not waiting for input
    /// (none asked, already answered, finished). ABI 1.2.
    pub fn send_input(&self, text: impl AsRef<[u8]>) -> Result<()> {
        let t = text.as_ref();
        // SAFETY: open handle; `t` is valid for len bytes during the call.
        check(unsafe { ffi::shmrepl_execution_send_input(self.raw.as_ptr(), t.as_ptr().cast(), t.len()) })
    }

    pub fn client(&self) -> &'c Client {
        self.client
    }

    /// Releases the ring and frees the handle (as dropping does).
    pub fn close(self) {}
}

impl Drop for Execution<'_> {
    fn drop(&mut self) {
        // SAFETY: ours.
        unsafe { ffi::shmrepl_execution_close(self.raw.as_ptr()) }
    }
}

impl std::fmt::Debug for Execution<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Execution").field("id", &self.id()).field("ring_name", &self.ring_name).finish()
    }
}

#[allow(dead_code)]
fn _assert_thread_traits() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<Client>();
    send_sync::<Session<'static>>();
    send_sync::<Execution<'static>>();
    send::<Reader>();
}
