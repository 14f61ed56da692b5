// Per-execution limits (ABI 1.1): ExecuteOptions::timeout (FINISHED Timeout) and
// ::memory_limit (FINISHED MemoryLimit); the session goes on after either.
mod common;

use std::time::{Duration, Instant};

use shmrepl::{ExecuteOptions, FinishStatus, Kind, Start, Stream};

fn stdout_of(records: &[common::Rec]) -> String {
    let mut out = Vec::new();
    for r in records.iter().filter(|r| r.kind == Kind::Output && r.stream == Stream::Stdout) {
        out.extend_from_slice(&r.data);
    }
    String::from_utf8(out).unwrap()
}

fn run(client: &shmrepl::Client, options: &ExecuteOptions<'_>) -> Vec<common::Rec> {
    let execution = client.execute(options).expect("execute");
    let mut reader = execution.reader(Start::Oldest).unwrap();
    common::read_all(&mut reader)
}

#[test]
fn a_timeout_interrupts_the_execution_and_the_session_goes_on() {
    let engine = common::Engine::start("timeout");
    let client = engine.client();
    let session = client.open_session().unwrap();
    let records = run(client, &ExecuteOptions::new(&session, "kept = 41\n"));
    assert_eq!(records.last().unwrap().finish_status, FinishStatus::Ok);

    let code = "import time; print('start', flush=True); time.sleep(60)";
    let began = Instant::now();
    let records = run(client, &ExecuteOptions::new(&session, code).timeout(Duration::from_millis(300)));
    let took = began.elapsed();
    let fin = records.last().unwrap();
    assert_eq!((fin.kind, fin.finish_status), (Kind::Finished, FinishStatus::Timeout), "{:?}", records);
    assert_eq!(fin.finish_status.name(), "TIMEOUT");
    assert!(took < Duration::from_secs(3), "took {:?}", took);
    assert!(took >= Duration::from_millis(300), "took {:?}", took);
    assert_eq!(stdout_of(&records), "start\n");

    // The same session (worker and namespace) still works; no limit by default.
    let records = run(client, &ExecuteOptions::new(&session, "import time; time.sleep(0.5); print(kept + 1)\n"));
    assert_eq!(records.last().unwrap().finish_status, FinishStatus::Ok, "{:?}", records);
    assert_eq!(stdout_of(&records), "42\n");

    // A timeout that is not reached changes nothing.
    let records = run(client, &ExecuteOptions::new(&session, "print('quick')\n").timeout(Duration::from_secs(30)));
    assert_eq!(records.last().unwrap().finish_status, FinishStatus::Ok, "{:?}", records);
    assert_eq!(stdout_of(&records), "quick\n");
}

#[test]
fn a_memory_limit_ends_the_execution_with_memory_limit() {
    let engine = common::Engine::start("memlimit");
    let client = engine.client();
    let session = client.open_session().unwrap();

    let records = run(client, &ExecuteOptions::new(&session, "x = bytearray(512 << 20)\n").memory_limit(64 << 20));
    let fin = records.last().unwrap();
    assert_eq!((fin.kind, fin.finish_status), (Kind::Finished, FinishStatus::MemoryLimit), "{:?}", records);
    assert_eq!(fin.finish_status.name(), "MEMORY_LIMIT");
    for r in records.iter().filter(|r| r.kind == Kind::Error) {
        assert_eq!(r.ename, b"MemoryError", "{:?}", r);
    }

    // The limit held only during that execution: the session goes on, and a
    // small allocation under a limit is fine.
    let records = run(client, &ExecuteOptions::new(&session, "y = bytearray(1 << 20)\nprint(len(y))\n"));
    assert_eq!(records.last().unwrap().finish_status, FinishStatus::Ok, "{:?}", records);
    assert_eq!(stdout_of(&records), "1048576\n");
    let records = run(
        client,
        &ExecuteOptions::new(&session, "z = bytearray(1 << 20)\nprint('x' in globals())\n").memory_limit(64 << 20),
    );
    assert_eq!(records.last().unwrap().finish_status, FinishStatus::Ok, "{:?}", records);
    assert_eq!(stdout_of(&records), "False\n");
}
