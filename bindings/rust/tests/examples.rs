// The examples, run as a user would: the built binaries, without LD_LIBRARY_PATH
// (build.rs's rpath finds the library), each against a private engine.
mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use shmrepl::{ClientOptions, Start};

/// target/<profile>/examples/<name>, which `cargo test` builds with the tests.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("examples").join(name);
    assert!(path.exists(), "{} is not built: run `cargo test` (which builds the examples)", path.display());
    path
}

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.env_remove("LD_LIBRARY_PATH").output().expect("run example");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

#[test]
fn hello_runs_code_and_prints_its_output() {
    let dir = common::TempDir::new("hello");
    let socket = dir.0.join("engine.sock");
    let hello = example("hello");
    let with_env = |cmd: &mut Command| {
        cmd.env("SHMREPL_SOCKET", &socket).env("SHMREPL_ENGINE", common::engine_path());
    };

    let mut cmd = Command::new(&hello);
    with_env(&mut cmd);
    let (out, stdout, stderr) = run(&mut cmd);
    assert!(out.status.success(), "{:?}\n{}\n{}", out.status, stdout, stderr);
    assert!(stdout.starts_with("hello from Python (3, "), "{:?}", stdout);
    assert!(stdout.ends_with("\n42\n"), "{:?}", stdout);

    let mut cmd = Command::new(&hello);
    with_env(&mut cmd);
    cmd.arg("import sys\nprint('out')\nprint('err', file=sys.stderr)\n6 * 7\n");
    let (out, stdout, stderr) = run(&mut cmd);
    assert!(out.status.success(), "{:?} {}", out.status, stderr);
    assert_eq!(stdout, "out\n42\n");
    assert_eq!(stderr, "err\n");

    let mut cmd = Command::new(&hello);
    with_env(&mut cmd);
    cmd.arg("raise SystemExit(5)");
    let (out, _, _) = run(&mut cmd);
    assert_eq!(out.status.code(), Some(5));

    // The example leaves its engine running, as it should for users: stop it.
    let client = ClientOptions::new().socket_path(&socket).autostart(false).connect().unwrap();
    client.shutdown_engine().unwrap();
}

#[test]
fn bench_reader_counts_what_a_reader_sees() {
    let engine = common::Engine::start("bench");
    let client = engine.client();
    let session = client.open_session().unwrap();
    let execution = session.execute("for i in range(3000):\n    print(f'Line {i}: ' + 'x' * (i % 100))\n").unwrap();
    // Attached before anything is released, both readers get every record.
    let mut mine = execution.reader(Start::Oldest).unwrap();
    // Another process: it gets the sealed ring from this engine (OpenRing).
    let bench = Command::new(example("bench_reader"))
        .arg(execution.ring_name())
        .env_remove("LD_LIBRARY_PATH")
        .env("SHMREPL_SOCKET", engine.dir.0.join("engine.sock"))
        .spawn_output();
    let (mut records, mut bytes) = (0u64, 0u64);
    records += mine.for_each(Some(std::time::Duration::from_secs(30)), |r| bytes += r.data().len() as u64).unwrap();
    let out = bench.join().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line = String::from_utf8(out.stdout).unwrap();
    let fields: Vec<&str> = line.trim_end().split(' ').collect();
    assert_eq!(fields.len(), 3, "{:?}", line);
    assert_eq!(fields[0], format!("records={}", records));
    assert_eq!(fields[1], format!("bytes={}", bytes));
    let seconds: f64 = fields[2].strip_prefix("seconds=").expect("seconds=").parse().unwrap();
    assert!(seconds > 0.0 && seconds < 60.0);
    assert!(records > 3000);

    let out = Command::new(example("bench_reader")).arg("bad/name").output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad/name"));
}

trait SpawnOutput {
    fn spawn_output(&mut self) -> std::thread::JoinHandle<Output>;
}

impl SpawnOutput for Command {
    // Runs the command on a thread, so this one can read at the same time.
    fn spawn_output(&mut self) -> std::thread::JoinHandle<Output> {
        let child = self.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
        std::thread::spawn(move || child.wait_with_output().unwrap())
    }
}
