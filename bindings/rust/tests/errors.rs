// Every failure the issue lists comes back as a shmrepl::Error of the right kind,
// with the library's detail text, and nothing crashes.
mod common;

use std::time::{Duration, Instant};

use shmrepl::{ClientOptions, ErrorKind, ExecuteOptions, Kind, Reader, Start};

extern "C" {
    fn kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn unknown_ring_is_not_found_and_a_bad_name_invalid() {
    let name = format!("shmrepl-rs-test-no-such-ring-{}", std::process::id());
    let err = Reader::open(&name, Start::Oldest).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{}", err);
    assert_eq!(err.code(), -2);
    assert!(!err.message().is_empty(), "no detail from shmrepl_last_error()");

    for bad in ["bad/name", "", ".hidden", "white space"].iter() {
        let err = Reader::open(bad, Start::Newest).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid, "{:?}: {}", bad, err);
        assert!(!err.message().is_empty());
    }
    // Rejected by the binding before C sees it.
    let err = Reader::open("nul\0inside", Start::Oldest).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.message().contains("NUL"), "{}", err);
}

#[test]
fn last_error_is_read_on_the_calling_thread() {
    // Two threads fail at once with different details; each sees its own.
    let threads: Vec<_> = (0..2)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..500 {
                    let name = if t == 0 {
                        format!("bad/name-{}-{}", t, i)
                    } else {
                        format!("shmrepl-rs-missing-{}-{}-{}", std::process::id(), t, i)
                    };
                    let err = Reader::open(&name, Start::Oldest).unwrap_err();
                    let want = if t == 0 { ErrorKind::Invalid } else { ErrorKind::NotFound };
                    assert_eq!(err.kind(), want);
                    assert!(err.message().contains(&name), "thread {} got {:?} for {}", t, err.message(), name);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

#[test]
fn no_engine_and_autostart_off_is_connect() {
    let dir = common::TempDir::new("noengine");
    let start = Instant::now();
    let err = ClientOptions::new()
        .socket_path(dir.0.join("nobody.sock"))
        .engine_path(common::engine_path())
        .autostart(false)
        .connect()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{}", err);
    assert!(!err.message().is_empty());
    assert!(start.elapsed() < Duration::from_secs(10));
    // And nothing was started there.
    assert!(!dir.0.join("nobody.sock").exists());
}

#[test]
fn an_engine_that_cannot_start_is_connect() {
    let dir = common::TempDir::new("badengine");
    let err = ClientOptions::new()
        .socket_path(dir.0.join("e.sock"))
        .engine_path(dir.0.join("no-such-engine"))
        .autostart(true)
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{}", err);
}

#[test]
fn timeout_then_again_at_zero() {
    let engine = common::Engine::start("timeout");
    let client = engine.client();
    let session = client.open_session().unwrap();
    let execution = session.execute("import time\ntime.sleep(30)\n").unwrap();
    let mut reader = execution.reader(Start::Oldest).unwrap();
    {
        let started = reader.next(Some(Duration::from_secs(30))).unwrap().expect("STARTED");
        assert_eq!(started.kind(), Kind::Started);
    }
    let t = Instant::now();
    let err = reader.next(Some(Duration::from_millis(100))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{}", err);
    assert!(err.kind().is_retryable());
    assert!(t.elapsed() >= Duration::from_millis(90), "returned after {:?}", t.elapsed());
    let err = reader.batch(16, Some(Duration::from_millis(50))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Timeout);

    let err = reader.next(Some(Duration::ZERO)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Again, "{}", err);
    let err = reader.batch(16, Some(Duration::ZERO)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Again);
    assert_eq!(reader.held(), 0);

    // A batch of zero records is an argument error, not a hang.
    let err = reader.batch(0, Some(Duration::ZERO)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);

    execution.cancel().unwrap();
    let records = common::read_all(&mut reader);
    assert_eq!(records.last().unwrap().kind, Kind::Finished);
}

#[test]
fn unknown_session_is_not_found() {
    let engine = common::Engine::start("nosession");
    let client = engine.client();
    let err = client.execute(&ExecuteOptions::with_session_id(987654321, "print(1)")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{}", err);
    let session = client.open_session().unwrap();
    let id = session.id();
    session.close().unwrap();
    let err = client.execute(&ExecuteOptions::with_session_id(id, "print(1)")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{}", err);
    let err = client.execute(&ExecuteOptions::with_session_id(id, "print(1)").client_execution_id("a\0b")).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
}

#[test]
fn requests_after_shutdown_fail_cleanly() {
    let dir = common::TempDir::new("aftershutdown");
    let client = common::options(&dir).connect().unwrap();
    let session = client.open_session().unwrap();
    client.shutdown_engine().unwrap();
    // The session's worker ended with the engine; the client's connection is closed.
    let err = session.execute("print(1)").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SessionDied, "{}", err);
    let err = client.open_session().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::EngineDied, "{}", err);
    let err = client.shutdown_engine().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::EngineDied, "{}", err);
    // The engine removes its socket as it exits.
    let t = Instant::now();
    while dir.0.join("engine.sock").exists() && t.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!dir.0.join("engine.sock").exists(), "socket still there after {:?}", t.elapsed());
}

#[test]
fn a_killed_engine_gives_producer_died_and_engine_died() {
    let engine = common::Engine::start("dead");
    let client = engine.client();
    let pid = client.engine_pid();
    assert!(pid > 1);
    let session = client.open_session().unwrap();
    let background = session.background_ring();
    let execution = session
        .execute("import sys, time\nfor i in range(5):\n    print('before', i)\nsys.stdout.flush()\ntime.sleep(60)\n")
        .unwrap();
    let ring = execution.ring_name().to_string();
    // Nobody else will unlink them once the engine is killed; also when an assert fails.
    let _rings = common::UnlinkOnDrop(vec![ring.clone()].into_iter().chain(background).collect());
    // `late` attaches now and reads only after the kill; `live` watches for the output.
    let mut late = execution.reader(Start::Oldest).unwrap();
    let mut live = execution.reader(Start::Oldest).unwrap();
    let mut outputs = 0;
    while outputs < 5 {
        let batch = live.batch(64, Some(Duration::from_secs(30))).unwrap().expect("not at the end");
        outputs += batch.iter().filter(|r| r.kind() == Kind::Output).count();
    }

    assert_eq!(unsafe { kill(pid as i32, 9) }, 0);

    // Every record the engine published, then ProducerDied.
    let mut seen = Vec::new();
    let err = loop {
        match late.batch(64, Some(Duration::from_secs(30))) {
            Ok(Some(batch)) => seen.extend(batch.iter().map(|r| (r.kind(), r.text().into_owned()))),
            Ok(None) => panic!("EOF from a ring whose engine was killed"),
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), ErrorKind::ProducerDied, "{}", err);
    assert_eq!(seen.len(), 6, "{:?}", seen);
    assert_eq!(seen[0].0, Kind::Started);
    for (i, (kind, text)) in seen[1..].iter().enumerate() {
        assert_eq!(*kind, Kind::Output);
        assert_eq!(text, &format!("before {}\n", i));
    }
    let err = live.batch(64, Some(Duration::from_secs(30))).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ProducerDied, "{}", err);

    // Calls on the client's connection: EngineDied; on the session (whose worker the
    // engine took with it): SessionDied.
    let err = client.open_session().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::EngineDied, "{}", err);
    let err = execution.cancel().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SessionDied, "{}", err);
    let err = session.execute("print(1)").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::SessionDied, "{}", err);

    drop(late);
    drop(live);
    drop(execution);
    drop(session);
    drop(_rings);
    assert!(!std::path::Path::new("/dev/shm").join(&ring).exists());
}
