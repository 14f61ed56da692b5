// Shared by the integration tests: a private engine per test.
#![allow(dead_code)]

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use shmrepl::{Client, ClientOptions, Kind, Reader};

/// The engine to start: $SHMREPL_ENGINE, else the one built next to the linked library.
pub fn engine_path() -> PathBuf {
    match std::env::var_os("SHMREPL_ENGINE") {
        Some(p) if !p.is_empty() => PathBuf::from(p),
        _ => Path::new(env!("SHMREPL_LINKED_LIB_DIR")).join("../bin/shmrepl-engine"),
    }
}

/// A fresh private (0700) directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "shmrepl-rs-{}-{}-{}",
            std::process::id(),
            tag,
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::DirBuilder::new().mode(0o700).create(&path).expect("create temp dir");
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Options for an engine on a socket in `dir`, started from `engine_path()`.
pub fn options(dir: &TempDir) -> ClientOptions {
    ClientOptions::new()
        .socket_path(dir.0.join("engine.sock"))
        .engine_path(engine_path())
        .autostart(true)
        .connect_timeout(Duration::from_secs(20))
}

/// A client of its own engine, which is shut down on drop.
pub struct Engine {
    pub client: Option<Client>,
    pub dir: TempDir,
}

impl Engine {
    pub fn start(tag: &str) -> Engine {
        let dir = TempDir::new(tag);
        let client = options(&dir).connect().expect("connect to a private engine");
        Engine { client: Some(client), dir }
    }

    pub fn client(&self) -> &Client {
        self.client.as_ref().unwrap()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Err(EngineDied) for a test that killed it.
            let _ = client.shutdown_engine();
        }
    }
}

/// One record, copied.
#[derive(Clone, Debug)]
pub struct Rec {
    pub kind: Kind,
    pub stream: shmrepl::Stream,
    pub flags: u32,
    pub execution_id: u64,
    pub seq: u64,
    pub data: Vec<u8>,
    pub finish_status: shmrepl::FinishStatus,
    pub exit_code: i64,
    pub ename: Vec<u8>,
    pub evalue: Vec<u8>,
    pub traceback: Vec<Vec<u8>>,
}

/// Every record to the end of the ring (each wait at most 30 s).
pub fn read_all(reader: &mut Reader) -> Vec<Rec> {
    let mut out = Vec::new();
    while let Some(batch) = reader.batch(64, Some(Duration::from_secs(30))).expect("read") {
        for r in &batch {
            let (ename, evalue, traceback) = if r.kind() == Kind::Error {
                let e = r.error().expect("error details");
                (
                    e.ename().to_vec(),
                    e.evalue().to_vec(),
                    e.traceback().map(|l| l.expect("traceback line").to_vec()).collect(),
                )
            } else {
                (Vec::new(), Vec::new(), Vec::new())
            };
            out.push(Rec {
                kind: r.kind(),
                stream: r.stream(),
                flags: r.flags(),
                execution_id: r.execution_id(),
                seq: r.seq(),
                data: r.data().to_vec(),
                finish_status: r.finish_status(),
                exit_code: r.exit_code(),
                ename,
                evalue,
                traceback,
            });
        }
    }
    out
}

/// Removes a ring's shared-memory object (after an engine was killed).
pub fn unlink_ring(name: &str) {
    let _ = std::fs::remove_file(Path::new("/dev/shm").join(name.trim_start_matches('/')));
}

/// Removes these rings when dropped (a test that killed their engine owns them).
pub struct UnlinkOnDrop(pub Vec<String>);

impl Drop for UnlinkOnDrop {
    fn drop(&mut self) {
        for name in &self.0 {
            unlink_ring(name);
        }
    }
}
