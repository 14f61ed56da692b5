// Writing records into rings from Python threads and the fd forwarder. Every
// function here is called with the GIL held unless it says otherwise.
#pragma once

#include <Python.h>

#include <atomic>
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
// GIL not held (the fd forwarder): the owner flag of `sink`, waiting until it is
// free; false if *stop became true first. try_own_sink: only if free now.
bool own_without_gil(Sink& sink, const std::atomic<bool>* stop);
bool try_own_sink(Sink& sink);
// (Both also wait, after taking the flag, for a GIL holder on emit's fast path to
// finish its write.)
// GIL not held; the caller owns the sink. Raw bytes as Output records. wait: as
// long as it takes (until the sink is abandoned, /dev/shm is full or *stop: the rest
// is dropped), parts chained MORE/CONTINUED; !wait: only what fits now, each part
// a record of its own. Returns the bytes done (written or dropped).
std::size_t write_raw_without_gil(Sink& sink, uint64_t execution_id, shmrepl_stream_t stream,
                                  const char* data, std::size_t len, bool wait,
                                  const std::atomic<bool>* stop);

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

// Copies a finished record (encode_*), at most max_payload bytes, into the ring,
// waiting for space (not cancellable). The caller owns the sink, or is the only
// writer (gil=false: the GIL is not held and not released). `flags`: the frame's
// (MORE / CONTINUED of a split record).
void write_record(Sink& sink, std::span<const std::byte> record, bool gil, bool closing = false,
                  uint32_t flags = 0);

// The largest n <= max that cuts `s` on a UTF-8 character boundary (GIL not needed).
std::size_t utf8_cut(std::string_view s, std::size_t max);
// Cuts `s` to at most `max` bytes ending in a marker "[... N bytes omitted ...]", so a
// value too long for its record is never cut silently (GIL not needed).
void shorten_visibly(std::string& s, std::size_t max);

// Output of the calling thread: resolves the sink, drains fd capture, writes.
// False with a Python exception set.
bool emit(shmrepl_stream_t stream, const Segment* segs, std::size_t n, bool text);

// input() for a client: writes an InputRequest record (prompt, password) into the
// ring of `ex` (the calling thread's, its executor) and waits, GIL released, for
// Engine::send_input. Python signal handlers run while it waits (a cancel's SIGINT
// raises KeyboardInterrupt). True with *text; false with an exception set.
bool request_input(Execution& ex, std::string_view prompt, bool password, std::string* text);

// Hook for fd capture (fd_capture.cpp), called while owning `sink` for `ex` just
// before a write at time `now` (CLOCK_REALTIME ns). How it looks into the capture
// pipes: kIfNeeded when the forwarder saw bytes or the writer was quiet for a while
// (text writes: no system call in a tight loop); kLook always (bytes writes: os.write,
// .buffer.write, exact against C writes); kForce also before an execution's closing
// records (FdCapture::execution_ending puts a closed fd 1/2 back before FINISHED).
enum class Drain { kIfNeeded, kLook, kForce };
using DrainHook = void (*)(Sink& sink, Execution& ex, uint64_t now, Drain mode);

// When a text write looks into the pipes (kIfNeeded), decided without a call: fd
// capture keeps this up to date, emit's fast path and the drain hook both ask it.
struct DrainGate {
  // A write that follows a quiet time of at least this long (ns) looks into the
  // pipes first; writes in a tight loop do not (no system call on the hot path).
  static constexpr uint64_t kQuietGap = 2'000;
  const Execution* target = nullptr;  // [GIL] the fd target: only its writes drain
  uint64_t last_write_ns = 0;         // [GIL] the target's last write
  std::atomic<bool> pending{false};   // the forwarder saw bytes not yet in a ring

  // [GIL] A text write of `ex` at `now` must look into the pipes first (kIfNeeded);
  // `record`: it will be written, so it counts as the target's last write.
  bool due(const Execution& ex, uint64_t now, bool record) noexcept {
    if (&ex != target) return false;
    const uint64_t quiet = now - last_write_ns;  // huge if the clock stepped back: drain
    const bool due = pending.load(std::memory_order_relaxed) || quiet >= kQuietGap;
    if (record) last_write_ns = now;
    return due;
  }
};

// fd capture's hook and gate (nullptr: no capture). `gate` stays valid until the hook
// is unset. Registers the process for the forwarder's fence (see emit): without it the
// fast path is off while fd capture is on.
void set_drain_hook(DrainHook hook, DrainGate* gate) noexcept;
void drain_fds(Sink& sink, Execution& ex, bool force);

}  // namespace shmrepl::engine
