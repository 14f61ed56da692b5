// Writing records into rings from Python threads. Every function here is called
// with the GIL held unless it says otherwise.
#pragma once

#include <Python.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "execution.hpp"
#include "shmrepl/shmrepl.h"
#include "text.hpp"

namespace shmrepl::engine {

// The calling thread's current execution (nullptr: an engine thread, or a thread
// that user code did not start). Threads started by user code inherit it.
Execution* current_execution() noexcept;
// In a child that user code forked (worker mode): forget the execution, and write
// Python output to fds 1/2 from now on. Called by the at-fork child handler.
void mark_forked_child() noexcept;
bool forked_child() noexcept;
std::shared_ptr<Execution> current_execution_ref();
// `executor`: this thread is the execution's own (cancel raises in it).
void set_current_execution(std::shared_ptr<Execution> ex, bool executor);
// The execution whose cancel applies to waits of the calling thread, if any.
Execution* cancellable_execution() noexcept;

// Where output without an execution goes: the engine's own stderr.
void set_log_fd(int fd) noexcept;
void write_log(const void* data, std::size_t n) noexcept;  // GIL not needed

// Our own blocking waits on the executor thread: enter_wait raises a pending
// asynchronous exception instead of waiting; leave_wait raises KeyboardInterrupt if
// a cancel came meanwhile. Both return false with the exception set.
bool enter_wait(Execution* ex);
bool leave_wait(Execution* ex);

// The owner flag of the sink `ex` writes to now: its own ring while it runs, the
// session's background ring after it finished, nullptr (write to the log) if both
// are closed. Waits (GIL released) while another thread owns it. On cancel returns
// nullptr with *failed = true and KeyboardInterrupt set.
Sink* acquire_sink(Execution& ex, bool* failed);
void release_sink(Sink& sink);
// The owner flag of `sink` itself, waiting as long as it takes (not cancellable).
void acquire_owner(Sink& sink);

// Raises an asynchronous exception set on this thread but not raised yet (the
// interpreter raises it at its next check; this makes it happen now). True if one
// was raised: it is then the current exception.
bool raise_pending_async();

// Writes the text `segs` (total UTF-8 bytes `total`) as Output records, split at
// character boundaries (any byte boundary if !text) when larger than one record.
// The caller owns the sink. False with an exception set if cancelled.
// `now`: the first record's timestamp (0: read the clock).
bool write_output(Sink& sink, uint64_t execution_id, shmrepl_stream_t stream,
                  const Segment* segs, std::size_t n, std::size_t total, bool text,
                  Execution* cancel_ex, uint64_t now = 0, bool raise = false);
// (`raise`: a Python-level write; when /dev/shm has no room for the ring, OSError
// ENOSPC is raised and false returned. Otherwise such output is dropped.)

// Copies a finished record (encode_*) into the ring, waiting for space (not
// cancellable). The caller owns the sink, or is the only writer (gil=false: the
// GIL is not held and not released).
void write_record(Sink& sink, std::span<const std::byte> record, bool gil, bool closing = false);

// Output of the calling thread: resolves the sink, drains fd capture, writes.
// False with a Python exception set.
bool emit(shmrepl_stream_t stream, const Segment* segs, std::size_t n, bool text);

// input() for a client: writes an InputRequest record (prompt, password) into the
// ring of `ex` (the calling thread's, its executor) and waits, GIL released, for
// Engine::send_input. Python signal handlers run while it waits (a cancel's SIGINT
// raises KeyboardInterrupt). True with *text; false with an exception set.
bool request_input(Execution& ex, std::string_view prompt, bool password, std::string* text);

// Hook for fd capture (fd_capture.cpp), called while owning `sink` for `ex` just
// before a write at time `now` (CLOCK_REALTIME ns); force: drain unconditionally.
using DrainHook = void (*)(Sink& sink, Execution& ex, uint64_t now, bool force);
void set_drain_hook(DrainHook hook) noexcept;
void drain_fds(Sink& sink, Execution& ex, bool force);

}  // namespace shmrepl::engine
