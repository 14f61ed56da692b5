//! The Rust reader of the bindings benchmark (tools/bench/bindings_bench.sh):
//!
//!     cargo run --release --example bench_reader -- RING
//!
//! Attaches to RING from its oldest record, reads every record to the end in
//! batches of up to 256 (released after use), sums the data lengths and prints
//! `records=<N> bytes=<sum of data_len> seconds=<from attach to EOF>`.
use std::time::Instant;

use shmrepl::{Reader, Start};

fn run(ring: &str) -> shmrepl::Result<(u64, u64, f64)> {
    let t0 = Instant::now();
    let mut reader = Reader::open(ring, Start::Oldest)?;
    let (mut records, mut bytes) = (0u64, 0u64);
    while let Some(batch) = reader.batch(256, None)? {
        for record in &batch {
            bytes += record.data().len() as u64;
        }
        records += batch.len() as u64;
    }
    Ok((records, bytes, t0.elapsed().as_secs_f64()))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 1 {
        eprintln!("usage: bench_reader RING");
        std::process::exit(2);
    }
    match run(&args[0]) {
        Ok((records, bytes, seconds)) => println!("records={} bytes={} seconds={:.6}", records, bytes, seconds),
        Err(e) => {
            eprintln!("bench_reader: {}: {}", args[0], e);
            std::process::exit(1);
        }
    }
}
