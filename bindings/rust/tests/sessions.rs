// Sessions are worker processes (ABI 1.1): their working folder, environment and
// stdin (shmrepl_session_open_ex), and what a dying worker leaves behind (FINISHED
// ABORTED with the signal, then SessionDied).
mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::os::unix::io::{AsRawFd, FromRawFd, RawFd};
use std::time::Duration;

use shmrepl::{ErrorKind, FinishStatus, Kind, SessionOptions, Start, Stream};

extern "C" {
    fn pipe(fds: *mut i32) -> i32;
}

const WAIT: Option<Duration> = Some(Duration::from_secs(30));

/// (read end, write end).
fn make_pipe() -> (File, File) {
    let mut fds = [-1i32; 2];
    assert_eq!(unsafe { pipe(fds.as_mut_ptr()) }, 0, "pipe: {}", std::io::Error::last_os_error());
    // SAFETY: two fresh descriptors, owned from here on.
    unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) }
}

fn stdout_of(records: &[common::Rec]) -> String {
    let mut out = Vec::new();
    for r in records.iter().filter(|r| r.kind == Kind::Output && r.stream == Stream::Stdout) {
        out.extend_from_slice(&r.data);
    }
    String::from_utf8(out).unwrap()
}

/// Runs `code` in `session` and returns its records with the FINISHED record's signal.
fn run(session: &shmrepl::Session<'_>, code: &str) -> (Vec<common::Rec>, Option<i32>) {
    let execution = session.execute(code).expect("execute");
    let mut reader = execution.reader(Start::Oldest).unwrap();
    let mut records = Vec::new();
    let mut signal = None;
    while let Some(batch) = reader.batch(64, WAIT).expect("read") {
        for r in &batch {
            if r.kind() == Kind::Finished {
                signal = r.signal();
            } else {
                assert_eq!(r.signal(), None, "signal on a {:?} record", r.kind());
            }
        }
        records.extend(batch.iter().map(|r| common::Rec {
            kind: r.kind(),
            stream: r.stream(),
            flags: r.flags(),
            execution_id: r.execution_id(),
            seq: r.seq(),
            data: r.data().to_vec(),
            finish_status: r.finish_status(),
            exit_code: r.exit_code(),
            ename: Vec::new(),
            evalue: Vec::new(),
            traceback: Vec::new(),
        }));
    }
    (records, signal)
}

#[test]
fn working_dir_env_and_stdin_reach_the_worker() {
    let engine = common::Engine::start("sessopts");
    let client = engine.client();
    let work = common::TempDir::new("cwd");
    let work_path = work.0.canonicalize().unwrap();

    // stdin: a pipe holding two lines, its write end closed so read() sees EOF.
    let (read_end, mut write_end) = make_pipe();
    write_end.write_all(b"first line\nsecond \xc3\xa9\n").unwrap();
    drop(write_end);

    let mut env = BTreeMap::new();
    env.insert("X", "value of X = with spaces");
    env.insert("SHMREPL_RS_OTHER", "2");
    let options = SessionOptions::new().working_dir(&work_path).env(&env).stdin(&read_end);
    let session = client.open_session_with(&options).unwrap();
    // The caller keeps its own descriptor and may close it now.
    assert!(unsafe { fcntl(read_end.as_raw_fd(), F_GETFD) } >= 0);
    drop(read_end);

    let code = "import os, sys\n\
                print(os.getcwd())\n\
                print(os.environ['X'])\n\
                print(sorted(os.environ))\n\
                print(repr(sys.stdin.read()))\n";
    let (records, signal) = run(&session, code);
    let fin = records.last().unwrap();
    assert_eq!((fin.kind, fin.finish_status, fin.exit_code, signal), (Kind::Finished, FinishStatus::Ok, 0, None));
    assert_eq!(
        stdout_of(&records),
        format!(
            "{}\nvalue of X = with spaces\n['SHMREPL_RS_OTHER', 'X']\n'first line\\nsecond é\\n'\n",
            work_path.display()
        )
    );

    // The same folder and environment, given as "NAME=value" entries.
    let options = SessionOptions::new().working_dir(&work_path).env_entries(vec!["X=from entries".to_string()]);
    let session2 = client.open_session_with(&options).unwrap();
    let (records, _) =
        run(&session2, "import os, sys\nprint(os.getcwd(), dict(os.environ))\nprint(repr(sys.stdin.read()))\n");
    assert_eq!(stdout_of(&records), format!("{} {{'X': 'from entries'}}\n''\n", work_path.display()));

    // An empty environment is empty, not the engine's.
    let empty: Vec<(String, String)> = Vec::new();
    let session3 = client.open_session_with(&SessionOptions::new().env(empty)).unwrap();
    let (records, _) = run(&session3, "import os\nprint(len(os.environ))\n");
    assert_eq!(stdout_of(&records), "0\n");

    // Defaults: the engine's environment (which this process gave it), stdin /dev/null.
    let session4 = client.open_session_with(&SessionOptions::new()).unwrap();
    let (records, _) = run(
        &session4,
        "import os, sys\nprint('X' in os.environ, 'PATH' in os.environ)\nprint(repr(sys.stdin.read()))\n",
    );
    assert_eq!(stdout_of(&records), "False True\n''\n");
}

extern "C" {
    fn fcntl(fd: i32, cmd: i32, ...) -> i32;
}
const F_GETFD: i32 = 1;

/// A descriptor number, open or not.
struct Fd(RawFd);
impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

#[test]
fn bad_session_options_are_refused() {
    let engine = common::Engine::start("badsessopts");
    let client = engine.client();
    let missing = engine.dir.0.join("no-such-folder");
    let err = client.open_session_with(&SessionOptions::new().working_dir(&missing)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{}", err);

    // Refused by the binding before C sees them.
    for (name, value) in [("", "v"), ("A=B", "v"), ("A", "nul\0inside")].iter() {
        let err = client.open_session_with(&SessionOptions::new().env([(name, value)])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{:?}={:?}: {}", name, value, err);
    }
    for entry in ["NO_EQUALS", "=value", "A=nul\0"].iter() {
        let err = client.open_session_with(&SessionOptions::new().env_entries([entry])).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{:?}: {}", entry, err);
    }
    // A good environment after a bad one is used.
    let options = SessionOptions::new().env([("", "x")]).env([("OK", "1")]);
    assert!(client.open_session_with(&options).is_ok());

    // No descriptor number: by the binding; one that is not open: by the library.
    for fd in [-1, i32::MAX, 1_000_000].iter() {
        let err = client.open_session_with(&SessionOptions::new().stdin(&Fd(*fd))).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "fd {}: {}", fd, err);
    }

    // None of them broke the client.
    let session = client.open_session().unwrap();
    let (records, _) = run(&session, "print('still fine')\n");
    assert_eq!(stdout_of(&records), "still fine\n");
}

#[test]
fn a_crash_aborts_the_execution_with_its_signal_and_kills_the_session() {
    let engine = common::Engine::start("crash");
    let client = engine.client();
    let bystander = client.open_session().unwrap();
    let (records, _) = run(&bystander, "state = 'kept'\n");
    assert_eq!(records.last().unwrap().finish_status, FinishStatus::Ok);

    let session = client.open_session().unwrap();
    let execution = session
        .execute("import ctypes, sys\nprint('before', flush=True)\nctypes.string_at(0)\nprint('never')\n")
        .unwrap();
    let mut reader = execution.reader(Start::Oldest).unwrap();
    let mut seen = Vec::new();
    while let Some(batch) = reader.batch(64, WAIT).unwrap() {
        for r in &batch {
            seen.push((r.kind(), r.text().into_owned(), r.finish_status(), r.exit_code(), r.signal()));
        }
    }
    assert_eq!(seen.len(), 3, "{:?}", seen);
    assert_eq!(seen[0].0, Kind::Started);
    assert_eq!((seen[1].0, seen[1].1.as_str()), (Kind::Output, "before\n"));
    // Killed by SIGSEGV: no exit status, the signal in reserved[0].
    assert_eq!(
        (seen[2].0, seen[2].2, seen[2].3, seen[2].4),
        (Kind::Finished, FinishStatus::Aborted, 0, Some(11)),
        "{:?}",
        seen
    );

    // The session is gone: every later call that goes to it.
    let err = session.execute("print(1)\n").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SessionDied, "{}", err);
    assert_eq!(err.code(), -18);
    assert!(!err.message().is_empty());
    let err = execution.cancel().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SessionDied, "{}", err);
    drop(execution);

    // The other session, its worker and its namespace, are untouched.
    let (records, _) = run(&bystander, "print(state)\n");
    assert_eq!(stdout_of(&records), "kept\n");
    // And a new session works.
    let fresh = client.open_session().unwrap();
    let (records, _) = run(&fresh, "print('new')\n");
    assert_eq!(stdout_of(&records), "new\n");
}

#[test]
fn os_exit_ends_the_worker_with_its_exit_code() {
    let engine = common::Engine::start("osexit");
    let client = engine.client();
    let session = client.open_session().unwrap();
    let (records, signal) = run(&session, "import os\nprint('bye', flush=True)\nos._exit(7)\nprint('never')\n");
    assert_eq!(stdout_of(&records), "bye\n");
    let fin = records.last().unwrap();
    assert_eq!((fin.kind, fin.finish_status, fin.exit_code, signal), (Kind::Finished, FinishStatus::Aborted, 7, None));
    let err = session.execute("print(1)\n").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SessionDied, "{}", err);

    // sys.exit is still an exception the session survives.
    let session = client.open_session().unwrap();
    let (records, signal) = run(&session, "import sys\nsys.exit(5)\n");
    let fin = records.last().unwrap();
    assert_eq!((fin.finish_status, fin.exit_code, signal), (FinishStatus::Exited, 5, None));
    let (records, _) = run(&session, "print('alive')\n");
    assert_eq!(stdout_of(&records), "alive\n");
}

#[test]
fn input_is_asked_of_the_client_and_answered_with_send_input() {
    let engine = common::Engine::start("input");
    let client = engine.client();
    let session = client.open_session().unwrap();
    let execution = session.execute("name = input('who? ')\nprint('hi', name)\n").expect("execute");
    let mut reader = execution.reader(Start::Oldest).unwrap();
    let (mut out, mut prompts, mut status) = (String::new(), Vec::new(), None);
    while let Some(batch) = reader.batch(64, WAIT).expect("read") {
        for r in &batch {
            match r.kind() {
                Kind::Output => out.push_str(&r.text()),
                Kind::InputRequest => {
                    prompts.push((r.text().into_owned(), r.is_password()));
                    execution.send_input("X\n").expect("send_input");
                }
                Kind::Finished => status = Some(r.finish_status()),
                _ => {}
            }
        }
    }
    assert_eq!(prompts, vec![("who? ".to_string(), false)]);
    assert_eq!(out, "hi X\n");
    assert_eq!(status, Some(FinishStatus::Ok));
    assert_eq!(execution.send_input("late").unwrap_err().kind(), ErrorKind::State);
}

extern "C" {
    fn openpty(master: *mut i32, slave: *mut i32, name: *mut i8, termp: *const u8, winp: *const [u16; 4]) -> i32;
}

#[test]
fn a_terminal_as_stdout_answers_isatty_and_its_size() {
    let engine = common::Engine::start("tty");
    let client = engine.client();
    let (mut master, mut slave) = (-1i32, -1i32);
    let size: [u16; 4] = [33, 99, 0, 0]; // rows, columns
    assert_eq!(
        unsafe { openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) },
        0,
        "openpty: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: two fresh descriptors, owned from here on.
    let (_master, slave) = unsafe { (File::from_raw_fd(master), File::from_raw_fd(slave)) };
    let null = File::create("/dev/null").unwrap();
    let session = client.open_session_with(&SessionOptions::new().stdout(&slave).stderr(&null)).unwrap();
    let (records, _) = run(
        &session,
        "import os, sys\nprint(sys.stdout.isatty(), sys.stderr.isatty(), tuple(os.get_terminal_size()))\n",
    );
    assert_eq!(stdout_of(&records), "True False (99, 33)\n");
    let plain = client.open_session().unwrap();
    let (records, _) = run(&plain, "import sys\nprint(sys.stdout.isatty())\n");
    assert_eq!(stdout_of(&records), "False\n");
}
