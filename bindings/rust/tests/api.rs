// The API surface against a real engine: error details, cancel, background ring,
// execute options, readers by name, threads.
mod common;

use std::time::{Duration, Instant};

use shmrepl::{ErrorKind, ExecuteOptions, FinishStatus, Kind, Reader, Start, Stream};

const WAIT: Option<Duration> = Some(Duration::from_secs(30));

fn stdout_of(records: &[common::Rec]) -> String {
    let mut out = Vec::new();
    for r in records.iter().filter(|r| r.kind == Kind::Output && r.stream == Stream::Stdout) {
        out.extend_from_slice(&r.data);
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn error_details() {
    let engine = common::Engine::start("errdetail");
    let client = engine.client();
    let session = client.open_session().unwrap();
    let code = "def inner(n):\n    raise ValueError('bad value %d' % n)\ndef outer():\n    inner(7)\nouter()\n";
    let execution = client.execute(&ExecuteOptions::new(&session, code).filename("errs.py")).unwrap();
    let mut reader = execution.reader(Start::Oldest).unwrap();
    let mut checked = 0;
    while let Some(batch) = reader.batch(256, WAIT).unwrap() {
        for r in &batch {
            if r.kind() != Kind::Error {
                let err = r.error().unwrap_err();
                assert_eq!(err.kind(), ErrorKind::Invalid, "{}", err);
                continue;
            }
            assert_eq!(r.data(), b"bad value 7");
            let e = r.error().unwrap();
            assert_eq!(e.ename(), b"ValueError");
            assert_eq!(e.evalue(), b"bad value 7");
            let lines: Vec<String> = e.traceback().map(|l| String::from_utf8(l.unwrap().to_vec()).unwrap()).collect();
            assert_eq!(lines.len(), e.traceback_len());
            let all = lines.concat();
            assert!(all.contains("errs.py"), "{:?}", lines);
            assert!(all.contains("in outer") && all.contains("in inner"), "{:?}", lines);
            assert!(all.contains("ValueError: bad value 7"), "{:?}", lines);
            let err = e.traceback_line(e.traceback_len()).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Invalid);
            checked += 1;
        }
    }
    assert_eq!(checked, 1);
}

#[test]
fn cancel_a_running_and_a_queued_execution() {
    let engine = common::Engine::start("cancel");
    let client = engine.client();
    let session = client.open_session().unwrap();
    let running = session.execute("import time\nprint('go', flush=True)\nwhile True:\n    time.sleep(0.01)\n").unwrap();
    let queued = session.execute("print('never')\n").unwrap();
    let mut reader = running.reader(Start::Oldest).unwrap();
    let mut queued_reader = queued.reader(Start::Oldest).unwrap();

    // Cancel from another thread once the code runs; this one keeps reading.
    let records = std::thread::scope(|s| {
        let mut seen = Vec::new();
        let mut canceller = None;
        while let Some(batch) = reader.batch(64, WAIT).unwrap() {
            for r in &batch {
                seen.push((r.kind(), r.finish_status(), r.text().into_owned()));
                if r.kind() == Kind::Output && canceller.is_none() {
                    queued.cancel().unwrap();
                    let running = &running;
                    canceller = Some(s.spawn(move || running.cancel()));
                }
            }
        }
        canceller.expect("never saw output").join().unwrap().unwrap();
        seen
    });
    assert_eq!(records[1].2, "go\n");
    let last = records.last().unwrap();
    assert_eq!(last.0, Kind::Finished);
    assert_eq!(last.1, FinishStatus::Cancelled);

    let queued_records = common::read_all(&mut queued_reader);
    let kinds: Vec<Kind> = queued_records.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, vec![Kind::Started, Kind::Finished], "{:?}", queued_records);
    assert_eq!(queued_records[1].finish_status, FinishStatus::Cancelled);
    // Cancelling what already finished is fine.
    running.cancel().unwrap();
}

#[test]
fn execute_options_reach_python() {
    let engine = common::Engine::start("options");
    let client = engine.client();
    let session = client.open_session().unwrap();

    let code = "import sys\nprint(sys.argv)\n1 + 1\n";
    let script = client
        .execute(
            &ExecuteOptions::new(&session, code).argv(&["job.py", "--fast"]).script(true).client_execution_id("s-1"),
        )
        .unwrap();
    let records = common::read_all(&mut script.reader(Start::Oldest).unwrap());
    assert_eq!(stdout_of(&records), "['job.py', '--fast']\n");
    assert_eq!(records[0].data, b"s-1");
    assert!(records.iter().all(|r| r.kind != Kind::Result), "RESULT in script mode");

    // Not a script: the trailing expression's repr; the namespace persists.
    let interactive = session.execute("x = 40\nx + 2\n").unwrap();
    let records = common::read_all(&mut interactive.reader(Start::Oldest).unwrap());
    let result: Vec<&common::Rec> = records.iter().filter(|r| r.kind == Kind::Result).collect();
    assert_eq!(result.len(), 1);
    assert_eq!(result[0].data, b"42");
    assert!(records[0].data.is_empty(), "STARTED without a client id");
    let again = session.execute("print(x)\n").unwrap();
    assert_eq!(stdout_of(&common::read_all(&mut again.reader(Start::Oldest).unwrap())), "40\n");

    // Code as bytes, and sys.exit.
    let bytes: &[u8] = b"import sys\nprint('\xc3\xa9')\nsys.exit(4)\n";
    let exited = client.execute(&ExecuteOptions::new(&session, bytes)).unwrap();
    let records = common::read_all(&mut exited.reader(Start::Oldest).unwrap());
    assert_eq!(stdout_of(&records), "é\n");
    let fin = records.last().unwrap();
    assert_eq!((fin.kind, fin.finish_status, fin.exit_code), (Kind::Finished, FinishStatus::Exited, 4));

    // A small ring still carries a large write, split.
    let big = client.execute(&ExecuteOptions::new(&session, "print('q' * 300000)\n").ring_capacity(64 * 1024)).unwrap();
    let records = common::read_all(&mut big.reader(Start::Oldest).unwrap());
    assert_eq!(stdout_of(&records).len(), 300001);
    assert!(records.iter().filter(|r| r.kind == Kind::Output).count() > 1);
}

#[test]
fn readers_by_name_newest_and_after_the_handle_is_gone() {
    let engine = common::Engine::start("byname");
    let client = engine.client();
    let session = client.open_session().unwrap();
    let execution = session.execute("import time\nprint('a', flush=True)\ntime.sleep(1.0)\nprint('b')\n").unwrap();
    let id = execution.id();
    let name = execution.ring_name().to_string();
    assert!(!name.is_empty());
    let mut first = Reader::open(&name, Start::Oldest).unwrap();
    assert_eq!(first.execution_id(), id);
    // Wait for 'a', then attach a Newest reader: it sees only what comes later.
    loop {
        let held = first.next(WAIT).unwrap().expect("not at the end");
        if held.kind() == Kind::Output {
            assert_eq!(held.data(), b"a\n");
            break;
        }
    }
    let mut newest = Reader::open(&name, Start::Newest).unwrap();
    // The handle goes; readers keep working.
    drop(execution);
    let rest = common::read_all(&mut newest);
    assert_eq!(stdout_of(&rest), "b\n");
    assert!(rest[0].seq >= 2, "Newest started at seq {}", rest[0].seq);
    assert_eq!(rest.last().unwrap().kind, Kind::Finished);

    let mut count = 0u64;
    let mut out = Vec::new();
    let n = first
        .for_each(WAIT, |r| {
            count += 1;
            if r.kind() == Kind::Output {
                out.extend_from_slice(r.data());
            }
        })
        .unwrap();
    assert_eq!(n, count);
    assert_eq!(out, b"b\n");
    // At the end: None again, not an error.
    assert!(first.batch(8, Some(Duration::ZERO)).unwrap().is_none());
    assert!(first.next(Some(Duration::ZERO)).unwrap().is_none());
}

#[test]
fn batches_release_and_hold() {
    let engine = common::Engine::start("release");
    let client = engine.client();
    let session = client.open_session().unwrap();
    let execution = session.execute("for i in range(100):\n    print(i)\n").unwrap();
    let mut reader = execution.reader(Start::Oldest).unwrap();
    let mut next_seq = 0u64;
    let mut explicit = 0;
    loop {
        let batch = match reader.batch(7, WAIT).unwrap() {
            Some(batch) => batch,
            None => break,
        };
        assert!(!batch.is_empty() && batch.len() <= 7);
        assert_eq!(batch.reader().held(), batch.len());
        for r in batch.iter() {
            assert_eq!(r.seq(), next_seq);
            next_seq += 1;
        }
        if next_seq % 2 == 0 {
            batch.release().unwrap();
            explicit += 1;
        } else {
            drop(batch);
        }
        assert_eq!(reader.held(), 0);
    }
    assert_eq!(next_seq, 102);
    assert!(explicit > 0);
}

#[test]
fn background_ring() {
    let engine = common::Engine::start("background");
    let client = engine.client();
    let session = client.open_session().unwrap();
    let ring = session.background_ring().expect("the engine has a background ring");
    let mut bg = Reader::open(&ring, Start::Oldest).unwrap();
    let code = "import threading, time\n\
                def late():\n    time.sleep(0.3)\n    print('from background')\n\
                threading.Thread(target=late).start()\n";
    let execution = session.execute(code).unwrap();
    let id = execution.id();
    let records = common::read_all(&mut execution.reader(Start::Oldest).unwrap());
    assert_eq!(records.last().unwrap().kind, Kind::Finished);
    assert!(!stdout_of(&records).contains("from background"));

    let deadline = Instant::now() + Duration::from_secs(30);
    let mut found = false;
    while !found && Instant::now() < deadline {
        match bg.batch(16, Some(Duration::from_millis(200))) {
            Ok(Some(batch)) => {
                for r in &batch {
                    if r.kind() == Kind::Output && r.data() == b"from background\n" {
                        assert_eq!(r.execution_id(), id);
                        found = true;
                    }
                }
            }
            Ok(None) => break,
            Err(e) if e.kind() == ErrorKind::Timeout => {}
            Err(e) => panic!("{}", e),
        }
    }
    assert!(found, "no background output");
}

#[test]
fn one_client_many_threads_and_a_reader_that_moves() {
    let engine = common::Engine::start("threads");
    let client = engine.client();
    let outputs: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|t| {
                s.spawn(move || {
                    let session = client.open_session().unwrap();
                    let code = format!("print('thread {}')\n", t);
                    let execution = session.execute(&code).unwrap();
                    let mut reader = execution.reader(Start::Oldest).unwrap();
                    // The reader moves to yet another thread to be read there.
                    let records = std::thread::spawn(move || common::read_all(&mut reader)).join().unwrap();
                    stdout_of(&records)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(outputs, vec!["thread 0\n", "thread 1\n", "thread 2\n"]);
    assert!(client.engine_pid() > 0);
}
