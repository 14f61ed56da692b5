package shmrepl

/*
#include <stddef.h>
#include <shmrepl/shmrepl.h>

// sizeof/offsetof as the C compiler sees the header, for the layout test.
static void shmrepl_go_layout(size_t* out) {
  size_t i = 0;
  out[i++] = sizeof(shmrepl_record_t);
  out[i++] = offsetof(shmrepl_record_t, kind);
  out[i++] = offsetof(shmrepl_record_t, stream);
  out[i++] = offsetof(shmrepl_record_t, flags);
  out[i++] = offsetof(shmrepl_record_t, finish_status);
  out[i++] = offsetof(shmrepl_record_t, execution_id);
  out[i++] = offsetof(shmrepl_record_t, seq);
  out[i++] = offsetof(shmrepl_record_t, timestamp_ns);
  out[i++] = offsetof(shmrepl_record_t, data);
  out[i++] = offsetof(shmrepl_record_t, data_len);
  out[i++] = offsetof(shmrepl_record_t, raw);
  out[i++] = offsetof(shmrepl_record_t, raw_len);
  out[i++] = offsetof(shmrepl_record_t, exit_code);
  out[i++] = offsetof(shmrepl_record_t, duration_ns);
  out[i++] = offsetof(shmrepl_record_t, reserved);
  out[i++] = sizeof(shmrepl_reader_options_t);
  out[i++] = sizeof(shmrepl_client_options_t);
  out[i++] = sizeof(shmrepl_execute_options_t);
  out[i++] = offsetof(shmrepl_execute_options_t, timeout_ns);
  out[i++] = offsetof(shmrepl_execute_options_t, memory_limit);
  out[i++] = sizeof(shmrepl_bytes_t);
  out[i++] = sizeof(shmrepl_session_options_t);
  out[i++] = offsetof(shmrepl_session_options_t, flags);
  out[i++] = offsetof(shmrepl_session_options_t, working_dir);
  out[i++] = offsetof(shmrepl_session_options_t, env);
  out[i++] = offsetof(shmrepl_session_options_t, envc);
  out[i++] = offsetof(shmrepl_session_options_t, stdin_fd_plus_one);
  out[i++] = offsetof(shmrepl_session_options_t, reserved);
  out[i++] = offsetof(shmrepl_session_options_t, stdout_fd_plus_one);
  out[i++] = offsetof(shmrepl_session_options_t, stderr_fd_plus_one);
}
*/
import "C"

import "unsafe"

// layoutNames names the values shmrepl_go_layout fills, in order.
var layoutNames = []string{
	"sizeof record", "record.kind", "record.stream", "record.flags", "record.finish_status",
	"record.execution_id", "record.seq", "record.timestamp_ns", "record.data",
	"record.data_len", "record.raw", "record.raw_len", "record.exit_code",
	"record.duration_ns", "record.reserved",
	"sizeof reader_options", "sizeof client_options", "sizeof execute_options",
	"execute_options.timeout_ns", "execute_options.memory_limit", "sizeof bytes",
	"sizeof session_options", "session_options.flags", "session_options.working_dir",
	"session_options.env", "session_options.envc", "session_options.stdin_fd_plus_one",
	"session_options.reserved", "session_options.stdout_fd_plus_one",
	"session_options.stderr_fd_plus_one",
}

// cLayout is what the C compiler says about the header's structs.
func cLayout() map[string]uintptr {
	out := make([]C.size_t, len(layoutNames))
	C.shmrepl_go_layout(&out[0])
	m := make(map[string]uintptr, len(out))
	for i, n := range layoutNames {
		m[n] = uintptr(out[i])
	}
	return m
}

// goLayout is the same for this package's mirrors: Record, the sizes it puts
// in struct_size, and the session and execute options' fields as cgo
// translated them.
func goLayout() map[string]uintptr {
	var r Record
	var so C.shmrepl_session_options_t
	var eo C.shmrepl_execute_options_t
	return map[string]uintptr{
		"sizeof record": unsafe.Sizeof(r), "record.kind": unsafe.Offsetof(r.Kind),
		"record.stream": unsafe.Offsetof(r.Stream), "record.flags": unsafe.Offsetof(r.Flags),
		"record.finish_status": unsafe.Offsetof(r.FinishStatus),
		"record.execution_id":  unsafe.Offsetof(r.ExecutionID), "record.seq": unsafe.Offsetof(r.Seq),
		"record.timestamp_ns": unsafe.Offsetof(r.TimestampNs), "record.data": unsafe.Offsetof(r.data),
		"record.data_len": unsafe.Offsetof(r.dataLen), "record.raw": unsafe.Offsetof(r.raw),
		"record.raw_len": unsafe.Offsetof(r.rawLen), "record.exit_code": unsafe.Offsetof(r.ExitCode),
		"record.duration_ns": unsafe.Offsetof(r.DurationNs), "record.reserved": unsafe.Offsetof(r.reserved),
		"sizeof reader_options":              readerOptionsSize,
		"sizeof client_options":              clientOptionsSize,
		"sizeof execute_options":             executeOptionsSize,
		"execute_options.timeout_ns":         unsafe.Offsetof(eo.timeout_ns),
		"execute_options.memory_limit":       unsafe.Offsetof(eo.memory_limit),
		"sizeof bytes":                       unsafe.Sizeof(C.shmrepl_bytes_t{}),
		"sizeof session_options":             sessionOptionsSize,
		"session_options.flags":              unsafe.Offsetof(so.flags),
		"session_options.working_dir":        unsafe.Offsetof(so.working_dir),
		"session_options.env":                unsafe.Offsetof(so.env),
		"session_options.envc":               unsafe.Offsetof(so.envc),
		"session_options.stdin_fd_plus_one":  unsafe.Offsetof(so.stdin_fd_plus_one),
		"session_options.reserved":           unsafe.Offsetof(so.reserved),
		"session_options.stdout_fd_plus_one": unsafe.Offsetof(so.stdout_fd_plus_one),
		"session_options.stderr_fd_plus_one": unsafe.Offsetof(so.stderr_fd_plus_one),
	}
}
