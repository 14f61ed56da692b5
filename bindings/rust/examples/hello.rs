//! The smallest shmrepl program: run Python code in an engine (started if none
//! listens) and print what it writes.
//!
//!     cargo run --example hello -- "print('hi')"
//!
//! It uses the default socket ($SHMREPL_SOCKET, else a per-user one) and leaves the
//! engine running for the next client.
use std::io::Write;

use shmrepl::{ClientOptions, FinishStatus, Kind, Start, Stream};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let code = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "import sys\nprint('hello from Python', sys.version_info[:2])\nprint(6 * 7)\n".to_string());
    let client = ClientOptions::new().connect()?;
    let session = client.open_session()?;
    let execution = session.execute(&code)?;
    let mut reader = execution.reader(Start::Oldest)?;
    let mut status = 0;
    while let Some(batch) = reader.batch(256, None)? {
        for record in &batch {
            match record.kind() {
                Kind::Output if record.stream() == Stream::Stderr => std::io::stderr().write_all(record.data())?,
                Kind::Output => std::io::stdout().write_all(record.data())?,
                Kind::Result => writeln!(std::io::stdout(), "{}", record.text())?,
                Kind::Finished => {
                    status = match record.finish_status() {
                        FinishStatus::Ok => 0,
                        FinishStatus::Exited => record.exit_code() as i32,
                        _ => 1,
                    }
                }
                _ => {}
            }
        }
    }
    std::io::stdout().flush()?;
    std::process::exit(status)
}
