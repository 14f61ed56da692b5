// The engine's limits (ErrorKind::Limit, ABI 1.2) and the client's request timeout
// (ClientOptions::request_timeout, ABI 1.2).
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use shmrepl::{ClientOptions, ErrorKind};

#[test]
fn a_session_hog_gets_limit() {
    let dir = common::TempDir::new("hog");
    // The auto-started engine takes its limits from our environment; Command would be
    // cleaner, but the library starts the engine, so it inherits ours.
    std::env::set_var("SHMREPL_MAX_CLIENT_SESSIONS", "2");
    let client = common::options(&dir).connect();
    std::env::remove_var("SHMREPL_MAX_CLIENT_SESSIONS");
    let client = client.expect("connect to a private engine");
    let first = client.open_session().unwrap();
    let second = client.open_session().unwrap();
    let err = client.open_session().err().expect("a third session over the limit");
    assert_eq!(err.kind(), ErrorKind::Limit, "{}", err);
    assert_eq!(err.kind().code(), -19);
    assert!(err.to_string().contains("--max-client-sessions"), "{}", err);
    first.close().unwrap();
    let again = client.open_session().expect("room again after a close");
    again.close().unwrap();
    second.close().unwrap();
    client.shutdown_engine().unwrap();
}

#[test]
fn a_request_timeout_ends_a_hung_request() {
    let silent = match std::env::var_os("SHMREPL_TEST_SILENT_ENGINE") {
        Some(p) if !p.is_empty() => p,
        _ => {
            eprintln!("skipped: needs $SHMREPL_TEST_SILENT_ENGINE");
            return;
        }
    };
    let dir = common::TempDir::new("silent");
    let sock = dir.0.join("silent.sock");
    let mut peer = Command::new(silent).arg(&sock).spawn().expect("start the silent engine");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sock.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    let client = ClientOptions::new()
        .socket_path(&sock)
        .autostart(false)
        .request_timeout(Duration::from_millis(300))
        .connect()
        .expect("connect to the silent engine");
    let began = Instant::now();
    let err = client.open_session().err().expect("no reply ever comes");
    let took = began.elapsed();
    assert_eq!(err.kind(), ErrorKind::Timeout, "{}", err);
    assert!(took >= Duration::from_millis(250) && took < Duration::from_secs(5), "took {:?}", took);
    let err = client.open_session().err().expect("the connection is unusable now");
    assert_eq!(err.kind(), ErrorKind::State, "{}", err);
    drop(client);
    let _ = peer.kill();
    let _ = peer.wait();
}
