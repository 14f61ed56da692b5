// The #[repr(C)] mirrors against the 1.1 layout of shmrepl.h (sizes are also
// asserted at compile time in src/ffi.rs; offsets need a runtime check on 1.63).
use std::mem::{align_of, size_of, MaybeUninit};
use std::ptr::addr_of;

use shmrepl::ffi::*;
use shmrepl::{ErrorKind, FinishStatus, Kind, Stream};

macro_rules! offset {
    ($t:ty, $field:ident) => {{
        let u = MaybeUninit::<$t>::uninit();
        let base = u.as_ptr();
        // SAFETY: only the address of a field is taken, nothing is read.
        (unsafe { addr_of!((*base).$field) } as usize) - (base as usize)
    }};
}

#[test]
fn record_layout() {
    assert_eq!(size_of::<shmrepl_record_t>(), 104);
    assert_eq!(align_of::<shmrepl_record_t>(), 8);
    let expect = [
        (offset!(shmrepl_record_t, kind), 0),
        (offset!(shmrepl_record_t, stream), 4),
        (offset!(shmrepl_record_t, flags), 8),
        (offset!(shmrepl_record_t, finish_status), 12),
        (offset!(shmrepl_record_t, execution_id), 16),
        (offset!(shmrepl_record_t, seq), 24),
        (offset!(shmrepl_record_t, timestamp_ns), 32),
        (offset!(shmrepl_record_t, data), 40),
        (offset!(shmrepl_record_t, data_len), 48),
        (offset!(shmrepl_record_t, raw), 56),
        (offset!(shmrepl_record_t, raw_len), 64),
        (offset!(shmrepl_record_t, exit_code), 72),
        (offset!(shmrepl_record_t, duration_ns), 80),
        (offset!(shmrepl_record_t, reserved), 88),
    ];
    for (i, (got, want)) in expect.iter().enumerate() {
        assert_eq!(got, want, "field #{} of shmrepl_record_t", i);
    }
    // The safe Record is the C struct itself (a batch is an array of them).
    assert_eq!(size_of::<shmrepl::Record>(), 104);
}

#[test]
fn option_struct_layouts() {
    assert_eq!(size_of::<shmrepl_reader_options_t>(), 8);
    assert_eq!(offset!(shmrepl_reader_options_t, start), 4);

    assert_eq!(size_of::<shmrepl_client_options_t>(), 40); // 32 in 1.0
    assert_eq!(offset!(shmrepl_client_options_t, request_timeout_ns), 32);
    assert_eq!(offset!(shmrepl_client_options_t, autostart), 4);
    assert_eq!(offset!(shmrepl_client_options_t, socket_path), 8);
    assert_eq!(offset!(shmrepl_client_options_t, engine_path), 16);
    assert_eq!(offset!(shmrepl_client_options_t, connect_timeout_ns), 24);

    // 1.1 grew it at its end (72 -> 88): timeout_ns at 72, memory_limit at 80.
    assert_eq!(size_of::<shmrepl_execute_options_t>(), 88);
    assert_eq!(SHMREPL_EXECUTE_OPTIONS_SIZE_1_0, 72);
    assert_eq!(offset!(shmrepl_execute_options_t, script), 4);
    assert_eq!(offset!(shmrepl_execute_options_t, session_id), 8);
    assert_eq!(offset!(shmrepl_execute_options_t, code), 16);
    assert_eq!(offset!(shmrepl_execute_options_t, code_len), 24);
    assert_eq!(offset!(shmrepl_execute_options_t, client_execution_id), 32);
    assert_eq!(offset!(shmrepl_execute_options_t, filename), 40);
    assert_eq!(offset!(shmrepl_execute_options_t, argv), 48);
    assert_eq!(offset!(shmrepl_execute_options_t, argc), 56);
    assert_eq!(offset!(shmrepl_execute_options_t, ring_capacity), 64);
    assert_eq!(offset!(shmrepl_execute_options_t, timeout_ns), 72);
    assert_eq!(offset!(shmrepl_execute_options_t, memory_limit), 80);

    assert_eq!(size_of::<shmrepl_session_options_t>(), 48);
    assert_eq!(align_of::<shmrepl_session_options_t>(), 8);
    assert_eq!(offset!(shmrepl_session_options_t, struct_size), 0);
    assert_eq!(offset!(shmrepl_session_options_t, flags), 4);
    assert_eq!(offset!(shmrepl_session_options_t, working_dir), 8);
    assert_eq!(offset!(shmrepl_session_options_t, env), 16);
    assert_eq!(offset!(shmrepl_session_options_t, envc), 24);
    assert_eq!(offset!(shmrepl_session_options_t, stdin_fd_plus_one), 32);
    assert_eq!(offset!(shmrepl_session_options_t, reserved), 36);
    // Since 1.2; the library still takes the 1.1 size, 40.
    assert_eq!(offset!(shmrepl_session_options_t, stdout_fd_plus_one), 40);
    assert_eq!(offset!(shmrepl_session_options_t, stderr_fd_plus_one), 44);

    assert_eq!(size_of::<shmrepl_bytes_t>(), 16);
    assert_eq!(offset!(shmrepl_bytes_t, len), 8);
}

#[test]
fn abi_version_is_1() {
    assert_eq!(shmrepl::abi_version(), 1);
    let v = shmrepl::version();
    assert_eq!(v.split('.').count(), 3, "version {:?}", v);
}

#[test]
fn status_codes_map_both_ways() {
    let known = [
        (-1, ErrorKind::Invalid),
        (-2, ErrorKind::NotFound),
        (-3, ErrorKind::Again),
        (-4, ErrorKind::Timeout),
        (-5, ErrorKind::Eof),
        (-6, ErrorKind::Corrupt),
        (-7, ErrorKind::Version),
        (-8, ErrorKind::ProducerDied),
        (-9, ErrorKind::NoSlot),
        (-10, ErrorKind::NoMem),
        (-11, ErrorKind::Permission),
        (-12, ErrorKind::System),
        (-13, ErrorKind::EngineDied),
        (-14, ErrorKind::Protocol),
        (-15, ErrorKind::State),
        (-16, ErrorKind::Connect),
        (-17, ErrorKind::TooLarge),
        (-18, ErrorKind::SessionDied),
        (-19, ErrorKind::Limit),
        (-99, ErrorKind::Internal),
    ];
    for (code, kind) in known.iter() {
        assert_eq!(ErrorKind::from_code(*code), *kind);
        assert_eq!(kind.code(), *code);
        assert!(!kind.description().is_empty());
    }
    // A code newer than this binding keeps its value.
    assert_eq!(ErrorKind::from_code(-42), ErrorKind::Unknown(-42));
    assert_eq!(ErrorKind::Unknown(-42).code(), -42);
    assert!(!ErrorKind::Unknown(-42).description().is_empty());
    assert_eq!(ErrorKind::SessionDied.description(), "the session's worker process died");
    let e = shmrepl::Error::new(ErrorKind::Timeout, "waited");
    let text = e.to_string();
    assert!(text.contains("waited") && text.contains("-4"), "{}", text);
    let _: &dyn std::error::Error = &e;
}

#[test]
fn enums_keep_unknown_values() {
    assert_eq!(Kind::from_raw(6), Kind::Finished);
    assert_eq!(Kind::from_raw(0), Kind::Unknown(0));
    assert_eq!(Kind::from_raw(42), Kind::Unknown(42));
    assert_eq!(Stream::from_raw(2), Stream::Stderr);
    assert_eq!(Stream::from_raw(9), Stream::Unknown(9));
    assert_eq!(FinishStatus::from_raw(2), FinishStatus::Cancelled);
    assert_eq!(FinishStatus::from_raw(4), FinishStatus::Aborted);
    assert_eq!(FinishStatus::from_raw(5), FinishStatus::Timeout);
    assert_eq!(FinishStatus::from_raw(6), FinishStatus::MemoryLimit);
    assert_eq!(FinishStatus::Timeout.name(), "TIMEOUT");
    assert_eq!(FinishStatus::MemoryLimit.name(), "MEMORY_LIMIT");
    assert_eq!(FinishStatus::from_raw(7), FinishStatus::Unknown(7));
    assert_eq!(FinishStatus::from_raw(137), FinishStatus::Unknown(137));
}
