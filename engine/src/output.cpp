#include "output.hpp"
#include "clock.hpp"

#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "records.hpp"
#include "shmrepl/shm/sys.hpp"

namespace shmrepl::engine {

namespace {

thread_local Execution* t_exec = nullptr;
thread_local std::shared_ptr<Execution> t_exec_ref;
thread_local bool t_executor = false;

std::atomic<int> g_log_fd{2};
DrainHook g_drain = nullptr;    // [GIL]
DrainGate* g_gate = nullptr;    // [GIL]
// This process may fence its GIL writers (membarrier PRIVATE_EXPEDITED is
// registered): emit's fast path also runs while fd capture is on. Set before the
// forwarder starts, read by it.
std::atomic<bool> g_fenced{false};

constexpr auto kWaitSlice = std::chrono::milliseconds(50);

bool g_forked = false;  // this process is a child that user code forked

void write_fd_segments(int fd, const Segment* segs, std::size_t n) {
  std::string text;
  for (std::size_t i = 0; i < n; ++i) {
    bool sur = false;
    std::size_t size = utf8_size(segs[i], &sur);
    std::size_t at = text.size();
    text.resize(at + size);
    std::size_t pos = 0;
    encode_some(segs[i], &pos, reinterpret_cast<unsigned char*>(text.data() + at), size, false);
  }
  const char* p = text.data();
  std::size_t left = text.size();
  while (left > 0) {
    ssize_t w = ::write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    left -= static_cast<std::size_t>(w);
  }
}

void write_log_segments(const Segment* segs, std::size_t n) {
  std::string text;
  for (std::size_t i = 0; i < n; ++i) {
    bool sur = false;
    std::size_t size = utf8_size(segs[i], &sur);
    std::size_t at = text.size();
    text.resize(at + size);
    std::size_t pos = 0;
    encode_some(segs[i], &pos, reinterpret_cast<unsigned char*>(text.data() + at), size, false);
  }
  write_log(text.data(), text.size());
}

// Space for a record, waiting with the GIL released while the ring is full.
// Empty on cancel (*cancelled, exception set), when the sink is abandoned, or when
// /dev/shm has no room for the ring to grow (allocation_failed(); nothing set).
// `closing`: a closing record, which may use the ring's closing reserve.
std::span<std::byte> reserve(Sink& s, std::size_t payload, Execution* cx, bool* cancelled,
                             bool closing = false) {
  std::span<std::byte> room = s.producer->try_reserve(payload, closing);
  while (room.empty()) {
    if (s.producer->allocation_failed()) return {};
    if (!enter_wait(cx)) {
      *cancelled = true;
      return {};
    }
    bool give_up = false;
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
      if (s.abandon.load(std::memory_order_acquire)) {
        give_up = true;
        break;
      }
      if (cx != nullptr && cx->cancel_pending.load(std::memory_order_acquire)) break;
      if (s.producer->wait_for_space(payload, kWaitSlice, closing) == shm::WaitResult::kReady) break;
    }
    Py_END_ALLOW_THREADS
    if (!leave_wait(cx)) {
      *cancelled = true;
      return {};
    }
    if (give_up) return {};
    room = s.producer->try_reserve(payload, closing);
  }
  return room;
}

// [GIL] What a write raises when /dev/shm cannot hold more of its ring: what
// python3 raises writing to a full disk.
void set_no_space() {
  PyObject* e = PyObject_CallFunction(PyExc_OSError, "is", ENOSPC,
                                      "No space left on device (/dev/shm has no room for the output ring)");
  if (e != nullptr) {
    PyErr_SetObject(PyExc_OSError, e);
    Py_DECREF(e);
  }
}

// Ends a split write cut short by a cancel, so readers see its last part.
void terminate_split(Sink& s, uint64_t execution_id, shmrepl_stream_t stream) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);  // reserve() must not see the pending exception
  bool cancelled = false;
  std::span<std::byte> room = reserve(s, records::kOutputOverhead, nullptr, &cancelled);
  if (!room.empty()) {
    records::encode_output_header(room, {execution_id, s.seq++, RecordClock::now()}, stream, 0);
    s.producer->commit(records::kOutputOverhead, shm::kFlagContinued);
  }
  PyErr_Restore(type, value, tb);
}

}  // namespace

std::size_t utf8_cut(std::string_view s, std::size_t max) {
  if (max >= s.size()) return s.size();
  while (max > 0 && (static_cast<unsigned char>(s[max]) & 0xC0) == 0x80) --max;
  return max;
}

void shorten_visibly(std::string& s, std::size_t max) {
  if (s.size() <= max) return;
  for (std::size_t keep = max;;) {
    const std::string marker = "[... " + std::to_string(s.size() - utf8_cut(s, keep)) + " bytes omitted ...]";
    if (marker.size() >= max) {
      s = marker.substr(0, utf8_cut(marker, max));
      return;
    }
    if (utf8_cut(s, keep) + marker.size() <= max) {
      s.resize(utf8_cut(s, keep));
      s += marker;
      return;
    }
    keep = max - marker.size();
  }
}

void mark_forked_child() noexcept {
  g_forked = true;
  t_exec = nullptr;
  t_executor = false;
  // The parent's reference stays counted: freeing here could run a destructor
  // that touches state only the parent owns.
  new (&t_exec_ref) std::shared_ptr<Execution>();
}
bool forked_child() noexcept { return g_forked; }

Execution* current_execution() noexcept { return t_exec; }
std::shared_ptr<Execution> current_execution_ref() { return t_exec_ref; }

void set_current_execution(std::shared_ptr<Execution> ex, bool executor) {
  t_exec_ref = std::move(ex);
  t_exec = t_exec_ref.get();
  t_executor = executor && t_exec != nullptr;
}

Execution* cancellable_execution() noexcept {
  return t_executor && t_exec->phase == Phase::kUser ? t_exec : nullptr;
}

void set_log_fd(int fd) noexcept { g_log_fd.store(fd, std::memory_order_relaxed); }

void write_log(const void* data, std::size_t n) noexcept {
  const char* p = static_cast<const char*>(data);
  int fd = g_log_fd.load(std::memory_order_relaxed);
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

bool enter_wait(Execution* ex) {
  if (ex == nullptr) return true;
  // A cancel that arrived as an asynchronous exception but has not been raised
  // yet: raise it now instead of sleeping through it.
  if (raise_pending_async()) return false;
  ex->in_wait = true;
  return true;
}

bool leave_wait(Execution* ex) {
  if (ex == nullptr) return true;
  ex->in_wait = false;
  if (ex->cancel_pending.exchange(false, std::memory_order_acq_rel)) {
    PyErr_SetNone(PyExc_KeyboardInterrupt);
    return false;
  }
  return true;
}

namespace {
bool try_own(Sink& s) {
  bool free = false;
  // acquire: pairs with the release in release_sink; [owner] fields follow it.
  return s.busy.compare_exchange_strong(free, true, std::memory_order_acquire, std::memory_order_relaxed);
}

// Waits (no GIL) until the owner flag looks free, a slice passes, or `stop` says so.
// waiters and busy are seq_cst on both sides (here and in release_sink): either the
// owner sees a waiter and notifies, or the waiter sees the flag free.
template <class Stop>
void wait_free(Sink& s, Stop stop) {
  s.waiters.fetch_add(1, std::memory_order_seq_cst);
  {
    std::unique_lock<std::mutex> l(s.handoff_mu);
    s.handoff_cv.wait_for(l, kWaitSlice, [&] { return !s.busy.load(std::memory_order_seq_cst) || stop(); });
  }
  s.waiters.fetch_sub(1, std::memory_order_relaxed);
}

// Waits (GIL released) until the owner of `s` hands it off, or a slice passes.
bool wait_owner(Sink& s, Execution* cx) {
  if (!enter_wait(cx)) return false;
  Py_BEGIN_ALLOW_THREADS
  wait_free(s, [&] { return cx != nullptr && cx->cancel_pending.load(std::memory_order_acquire); });
  Py_END_ALLOW_THREADS
  return leave_wait(cx);
}
}  // namespace

bool raise_pending_async() {
  PyThreadState* ts = PyThreadState_Get();
  if (ts->async_exc == nullptr) return false;
  // Running any code object reaches the interpreter's check, which raises the
  // exception and resets its "pending" signal (clearing async_exc by hand would
  // leave the signal set and slow every later loop iteration).
  static PyObject* noop = Py_CompileString("None", "<shmrepl>", Py_eval_input);
  static PyObject* globals = PyDict_New();
  PyObject* r = PyEval_EvalCode(noop, globals, globals);
  if (r != nullptr) {
    Py_DECREF(r);
    return false;
  }
  return true;
}

Sink* acquire_sink(Execution& ex, bool* failed) {
  *failed = false;
  for (;;) {
    Sink* s = ex.sink.closed ? ex.background.get() : &ex.sink;
    if (s == nullptr || s->closed) return nullptr;
    if (try_own(*s)) return s;
    // Another thread owns it (and waits on a full ring without the GIL).
    if (!wait_owner(*s, cancellable_execution())) {
      *failed = true;
      return nullptr;
    }
  }
}

void acquire_owner(Sink& s) {
  while (!try_own(s)) wait_owner(s, nullptr);
}

namespace {
// After a writer without the GIL took the owner flag: a GIL holder may be on emit's
// fast path, which writes without the flag. The fast path stores gil_writer, then
// loads busy; we stored busy, then load gil_writer. The membarrier runs a full fence
// on every running thread of this process (a thread not running had a context
// switch): wherever it falls in the fast path's program order, either the fast path
// sees busy (and takes the slow path), or we see gil_writer and wait for it (its write
// is short and never waits). Dekker's order with its cost on this, the rare side.
void exclude_gil_writer(Sink& s) {
  if (!g_fenced.load(std::memory_order_relaxed)) return;  // no fast path beside fd capture
  syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
  for (int spins = 0; s.gil_writer.load(std::memory_order_acquire); ++spins) {
    if (spins < 64) shm::cpu_relax();
    else std::this_thread::yield();
  }
}
}  // namespace

bool own_without_gil(Sink& s, const std::atomic<bool>* stop) {
  while (!try_own(s)) {
    if (stop->load(std::memory_order_relaxed)) return false;
    wait_free(s, [&] { return stop->load(std::memory_order_relaxed); });
  }
  exclude_gil_writer(s);
  return true;
}

bool try_own_sink(Sink& s) {
  if (!try_own(s)) return false;
  exclude_gil_writer(s);
  return true;
}

void release_sink(Sink& s) {
  s.busy.store(false, std::memory_order_seq_cst);  // release; seq_cst: see wait_free
  if (s.waiters.load(std::memory_order_seq_cst) > 0) {
    { std::lock_guard<std::mutex> g(s.handoff_mu); }  // a waiter between its check and its sleep
    s.handoff_cv.notify_all();
  }
}

std::size_t write_raw_without_gil(Sink& s, uint64_t execution_id, shmrepl_stream_t stream,
                                  const char* data, std::size_t len, bool wait,
                                  const std::atomic<bool>* stop) {
  std::size_t done = 0;
  bool first = true;
  while (done < len) {
    std::size_t cap = std::min<std::size_t>(len - done, s.max_data);
    std::span<std::byte> room = s.producer->try_reserve(records::kOutputOverhead + cap);
    while (room.empty() && wait) {
      if (s.producer->allocation_failed() || s.abandon.load(std::memory_order_acquire) ||
          stop->load(std::memory_order_relaxed))
        break;
      if (s.producer->wait_for_space(records::kOutputOverhead + cap, kWaitSlice) == shm::WaitResult::kReady)
        room = s.producer->try_reserve(records::kOutputOverhead + cap);
    }
    if (room.empty()) {
      if (!wait) return done;
      // Nobody will read it, or /dev/shm is full: the rest is dropped (an empty last
      // part ends a split write, so readers see where it ended).
      if (!first) {
        room = s.producer->try_reserve(records::kOutputOverhead);
        if (!room.empty()) {
          records::encode_output_header(room, {execution_id, s.seq++, RecordClock::now()}, stream, 0);
          s.producer->commit(records::kOutputOverhead, shm::kFlagContinued);
        }
      }
      return len;
    }
    std::byte* d = records::encode_output_header(room, {execution_id, s.seq++, RecordClock::now()}, stream, cap);
    std::memcpy(d, data + done, cap);
    done += cap;
    // Parts written without waiting stand alone: the next part may have to wait for
    // a reader, or go elsewhere, so no part promises another.
    uint32_t flags = wait ? ((first ? 0 : shm::kFlagContinued) | (done < len ? shm::kFlagMore : 0)) : 0;
    s.producer->commit(records::kOutputOverhead + cap, flags);
    first = false;
  }
  return done;
}

bool write_output(Sink& s, uint64_t execution_id, shmrepl_stream_t stream, const Segment* segs,
                  std::size_t n, std::size_t total, bool text, Execution* cx, uint64_t now, bool raise) {
  std::size_t seg = 0, pos = 0, remaining = total;
  bool first = true;
  while (remaining > 0) {
    std::size_t cap = std::min<std::size_t>(remaining, s.max_data);
    bool cancelled = false;
    std::span<std::byte> room = reserve(s, records::kOutputOverhead + cap, cx, &cancelled);
    if (room.empty()) {
      if (!first) terminate_split(s, execution_id, stream);
      if (!cancelled && raise && s.producer->allocation_failed()) {
        set_no_space();
        return false;
      }
      return !cancelled;
    }
    auto* d = reinterpret_cast<unsigned char*>(room.data()) + records::kOutputOverhead;
    std::size_t len = 0;
    while (seg < n && len < cap) {
      len += encode_some(segs[seg], &pos, d + len, cap - len, text);
      if (pos < segs[seg].len) break;  // this record is full up to a character boundary
      ++seg;
      pos = 0;
    }
    remaining -= len;
    uint32_t flags = (first ? 0 : shm::kFlagContinued) | (remaining > 0 ? shm::kFlagMore : 0);
    uint64_t ts = first && now != 0 ? now : RecordClock::now();
    records::encode_output_header(room, {execution_id, s.seq++, ts}, stream, len);
    s.producer->commit(records::kOutputOverhead + len, flags);
    first = false;
  }
  return true;
}

void write_record(Sink& s, std::span<const std::byte> record, bool gil, bool closing, uint32_t flags) {
  // Callers fit records to max_payload; one that does not would leave a seq gap.
  if (record.size() > s.producer->max_payload()) {
    static constexpr char kMsg[] = "shmrepl: internal error: a record larger than its ring's largest was dropped\n";
    write_log(kMsg, sizeof kMsg - 1);
    return;
  }
  if (!gil) {
    s.producer->write(record, flags, closing);
    return;
  }
  bool cancelled = false;
  std::span<std::byte> room = reserve(s, record.size(), nullptr, &cancelled, closing);
  if (room.empty()) return;  // abandoned
  std::memcpy(room.data(), record.data(), record.size());
  s.producer->commit(record.size(), flags);
}

namespace {
// The common case, with no locked instruction: a write that fits one record of the
// execution's own ring, with room now, nobody owning the ring, and (with fd capture)
// text that needs no look into the pipes. The GIL orders it against other Python
// writers; against a writer without the GIL (the fd forwarder), gil_writer and
// exclude_gil_writer do. False: nothing written, take the slow path.
bool emit_fast(Execution& ex, shmrepl_stream_t stream, const Segment* segs, std::size_t n, bool text) {
  Sink& s = ex.sink;
  if (s.closed) return false;
  if (g_drain != nullptr && (!text || !g_fenced.load(std::memory_order_relaxed))) return false;
  std::size_t total = 0;
  bool sur = false;
  for (std::size_t i = 0; i < n; ++i) total += utf8_size(segs[i], &sur);
  if (total - 1 >= s.max_data) return false;  // empty (the slow path returns) or split
  const uint64_t now = RecordClock::now();
  if (g_gate != nullptr && g_gate->due(ex, now, false)) return false;
  s.gil_writer.store(true, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);  // the CPU's order: exclude_gil_writer
  bool done = false;
  if (!s.busy.load(std::memory_order_acquire)) {
    std::span<std::byte> room = s.producer->try_reserve(records::kOutputOverhead + total);
    if (!room.empty()) {
      auto* d = reinterpret_cast<unsigned char*>(records::encode_output_header(room, {ex.id, s.seq++, now}, stream,
                                                                               total));
      std::size_t len = 0;
      for (std::size_t i = 0; i < n; ++i) {
        std::size_t pos = 0;
        len += encode_some(segs[i], &pos, d + len, total - len, text);
      }
      s.producer->commit(records::kOutputOverhead + len, 0);
      if (g_gate != nullptr) g_gate->due(ex, now, true);
      done = true;
    }
  }
  s.gil_writer.store(false, std::memory_order_release);
  return done;
}
}  // namespace

bool emit(shmrepl_stream_t stream, const Segment* segs, std::size_t n, bool text) {
  if (Execution* fx = t_exec; fx != nullptr && emit_fast(*fx, stream, segs, n, text)) return true;
  std::size_t total = 0;
  bool sur = false;
  for (std::size_t i = 0; i < n; ++i) total += utf8_size(segs[i], &sur);
  if (total == 0) return true;
  Execution* ex = t_exec;
  if (ex == nullptr) {
    if (g_forked) {
      // A forked child has no ring: its output takes the way of its other writes
      // to fds 1/2 (the parent's capture pipes), as python3's would.
      write_fd_segments(stream == SHMREPL_STREAM_STDERR ? 2 : 1, segs, n);
      return true;
    }
    write_log_segments(segs, n);
    return true;
  }
  bool failed = false;
  Sink* s = acquire_sink(*ex, &failed);
  if (s == nullptr) {
    if (failed) return false;
    write_log_segments(segs, n);  // its session is closed
    return true;
  }
  uint64_t now = RecordClock::now();
  if (g_drain != nullptr) g_drain(*s, *ex, now, text ? Drain::kIfNeeded : Drain::kLook);
  bool ok = write_output(*s, ex->id, stream, segs, n, total, text, cancellable_execution(), now, true);
  release_sink(*s);
  return ok;
}

bool request_input(Execution& ex, std::string_view prompt, bool password, std::string* text) {
  // Waiting before the request is out: a reply may come as soon as it is.
  {
    std::lock_guard<std::mutex> l(ex.wake_mu);
    ex.input_waiting = true;
    ex.input_replied = false;
    ex.input_text.clear();
  }
  auto stop_waiting = [&ex] {
    std::lock_guard<std::mutex> l(ex.wake_mu);
    ex.input_waiting = false;
    ex.input_replied = false;
  };
  bool failed = false;
  Sink* s = acquire_sink(ex, &failed);
  if (s == nullptr) {
    stop_waiting();
    if (!failed) PyErr_SetString(PyExc_EOFError, "EOF when reading a line");
    return false;
  }
  drain_fds(*s, ex, true);  // what the program wrote to fds 1/2 comes before the prompt
  // A prompt too long for one record is shortened visibly (at a character start).
  const std::size_t room = s->producer->max_payload() > 512 ? s->producer->max_payload() - 512 : 0;
  std::string shown(prompt);
  shorten_visibly(shown, room);
  std::vector<std::byte> rec;
  records::encode_input_request(rec, {ex.id, s->seq++, RecordClock::now()}, shown, password);
  write_record(*s, rec, true);
  release_sink(*s);
  // Nothing else waits on this: other threads keep writing while the GIL is free.
  if (!enter_wait(&ex)) {
    stop_waiting();
    return false;
  }
  for (;;) {
    bool replied = false;
    Py_BEGIN_ALLOW_THREADS
    {
      std::unique_lock<std::mutex> l(ex.wake_mu);
      ex.wake_cv.wait_for(l, std::chrono::milliseconds(100), [&] {
        return ex.input_replied || ex.cancel_pending.load(std::memory_order_acquire);
      });
      replied = ex.input_replied;
      if (replied) *text = std::move(ex.input_text);
    }
    Py_END_ALLOW_THREADS
    if (replied || ex.cancel_pending.load(std::memory_order_acquire)) break;
    // A signal (a cancel's SIGINT that came before we waited, or the program's
    // own handlers) is handled as python3's input() handles it.
    if (PyErr_CheckSignals() != 0) {
      // Its exception stands; a cancel that also set the flag is the same interrupt.
      ex.in_wait = false;
      ex.cancel_pending.store(false, std::memory_order_release);
      stop_waiting();
      return false;
    }
  }
  stop_waiting();
  return leave_wait(&ex);
}

void set_drain_hook(DrainHook hook, DrainGate* gate) noexcept {
  g_drain = hook;
  g_gate = gate;
  // Registered per process (a forked one registers again); a kernel that refuses
  // keeps the slow path.
  static pid_t registered = 0;
  if (hook != nullptr && registered != ::getpid() &&
      syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0)
    registered = ::getpid();
  g_fenced.store(hook != nullptr && registered == ::getpid(), std::memory_order_relaxed);
}

void drain_fds(Sink& sink, Execution& ex, bool force) {
  if (g_drain != nullptr) g_drain(sink, ex, RecordClock::now(), force ? Drain::kForce : Drain::kIfNeeded);
}

}  // namespace shmrepl::engine
