// Record views are the ring's memory: every slice lies in reader.mapping(), and
// that range is a shared mapping of the ring's file in /proc/self/maps.
mod common;

use std::time::Duration;

use shmrepl::{ExecuteOptions, Kind, Start};

fn inside(what: &str, view: &[u8], base: *const u8, len: usize) {
    if view.is_empty() {
        return;
    }
    let (b, e) = (base as usize, base as usize + len);
    let (vb, ve) = (view.as_ptr() as usize, view.as_ptr() as usize + view.len());
    assert!(b <= vb && ve <= e, "{} [{:#x}, {:#x}) is outside the mapping [{:#x}, {:#x})", what, vb, ve, b, e);
}

/// The lines of /proc/self/maps that cover [base, base+len), contiguously.
fn maps_covering(base: usize, len: usize) -> Vec<(usize, usize, String, String)> {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let mut lines: Vec<(usize, usize, String, String)> = Vec::new();
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let range = parts.next().unwrap();
        let perms = parts.next().unwrap().to_string();
        let path = parts.nth(3).unwrap_or("").to_string();
        let (s, e) = range.split_once('-').unwrap();
        let (s, e) = (usize::from_str_radix(s, 16).unwrap(), usize::from_str_radix(e, 16).unwrap());
        if e > base && s < base + len {
            lines.push((s, e, perms, path));
        }
    }
    lines.sort();
    lines
}

#[test]
fn views_lie_inside_the_mapping() {
    let engine = common::Engine::start("zc");
    let client = engine.client();
    let session = client.open_session().unwrap();
    let code = "import sys\n\
                for i in range(2000):\n    print('line', i, 'y' * (i % 300))\n\
                sys.stderr.write('z' * 100000)\n\
                1 / 0\n";
    let execution = client.execute(&ExecuteOptions::new(&session, code).ring_capacity(1 << 20)).unwrap();
    let mut reader = execution.reader(Start::Oldest).unwrap();
    let (base, len) = reader.mapping();
    assert!(!base.is_null() && len > 0);

    // Once: the range is a shared mapping of the ring (its memfd; the header pages
    // read-write, the data area read-only).
    let covering = maps_covering(base as usize, len);
    assert!(!covering.is_empty(), "no /proc/self/maps line covers the mapping");
    assert!(covering[0].0 <= base as usize, "{:?}", covering);
    assert!(covering.last().unwrap().1 >= base as usize + len, "{:?}", covering);
    for w in covering.windows(2) {
        assert_eq!(w[0].1, w[1].0, "gap in the mapping: {:?}", covering);
    }
    for (s, e, perms, path) in &covering {
        assert!(perms.ends_with('s'), "{:#x}-{:#x} {} {} is not a shared mapping", s, e, perms, path);
        assert!(path.starts_with("/memfd:"), "{:#x}-{:#x} maps {:?}, not a sealed ring", s, e, path);
        // The label is the name it was created with (a ring a session reuses keeps
        // it): the same random part.
        let random = &execution.ring_name()[execution.ring_name().rfind('.').unwrap()..];
        assert!(path.ends_with(random), "{} maps {:?}, not ring {}", perms, path, execution.ring_name());
    }

    let mut records = 0usize;
    let mut bytes = 0usize;
    let mut errors = 0usize;
    let mut mapping_stable = true;
    while let Some(batch) = reader.batch(128, Some(Duration::from_secs(30))).unwrap() {
        // The mapping may not move while records are held.
        mapping_stable &= batch.reader().mapping() == (base, len);
        for r in &batch {
            inside("data", r.data(), base, len);
            inside("raw", r.raw(), base, len);
            // The data is a field of the verified record itself.
            inside("data within raw", r.data(), r.raw().as_ptr(), r.raw().len());
            assert!(!r.raw().is_empty());
            if r.kind() == Kind::Error {
                let e = r.error().unwrap();
                inside("ename", e.ename(), base, len);
                inside("evalue", e.evalue(), base, len);
                assert!(e.traceback_len() > 0);
                for line in e.traceback() {
                    inside("traceback line", line.unwrap(), base, len);
                }
                errors += 1;
            }
            records += 1;
            bytes += r.data().len();
        }
    }
    assert!(mapping_stable);
    assert_eq!(errors, 1);
    assert!(records > 2000, "only {} records", records);
    assert!(bytes > 100000 + 2000 * 10, "only {} bytes", bytes);
    // Every view the reader gave is released.
    assert_eq!(reader.held(), 0);
}

#[test]
fn a_single_record_is_a_view_too() {
    let engine = common::Engine::start("zc1");
    let client = engine.client();
    let session = client.open_session().unwrap();
    let execution = session.execute("print('one')\n").unwrap();
    let mut reader = execution.reader(Start::Oldest).unwrap();
    let (base, len) = reader.mapping();
    let mut kinds = Vec::new();
    loop {
        let held = match reader.next(Some(Duration::from_secs(30))).unwrap() {
            Some(h) => h,
            None => break,
        };
        inside("data", held.data(), base, len);
        inside("raw", held.raw(), base, len);
        kinds.push(held.kind());
        if held.kind() == Kind::Output {
            assert_eq!(held.data(), b"one\n");
        }
        assert_eq!(held.seq() as usize, kinds.len() - 1);
    }
    assert_eq!(kinds, vec![Kind::Started, Kind::Output, Kind::Finished]);
    assert_eq!(reader.held(), 0);
}
