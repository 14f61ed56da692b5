#include "fd_capture.hpp"

#include <Python.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <list>
#include <stdexcept>
#include <string>
#include <atomic>
#include <thread>
#include <vector>

#include "output.hpp"
#include "clock.hpp"
#include "pyhooks.hpp"
#include "shmrepl/shm/sys.hpp"

namespace shmrepl::engine {

namespace {
constexpr std::size_t kBufferCap = 4u << 20;  // per stream: read from the pipes, not yet in a ring
constexpr std::size_t kParkCap = 4u << 20;    // in all: waiting for room in background rings
constexpr int kRetryMs = 20;                  // parked bytes: look at their rings again
constexpr int kPipeSize = 1 << 20;
}  // namespace

// Bytes of a background ring that had no room (nobody reads it) or whose owner flag
// a writer holds: they wait here, in order, and the forwarder carries on.
struct Parked {
  std::shared_ptr<Execution> ex;  // its session's background ring, and the records' id
  std::string data[3];            // index = fd
};

struct FdCapture::State {
  int saved[3] = {-1, -1, -1};  // the original fds 1 and 2 (index = fd)
  int rd[3] = {-1, -1, -1};     // read ends of the pipes now on fds 1 and 2
  // Copies of the write ends: the pipes never hang up (user code may close fd 1 and 2,
  // and the forwarder would spin on POLLHUP), and fds 1/2 can be put back.
  int wr[3] = {-1, -1, -1};
  std::size_t pipe_size[3] = {};  // what each pipe holds at most
  dev_t dev[3] = {};
  ino_t ino[3] = {};
  int stop_fd = -1;
  int wake_fd = -1;                     // an execution started while the forwarder stalled
  std::atomic<bool> stopping{false};
  std::atomic<bool> stalled{false};
  std::thread forwarder;

  std::mutex buf_mu;
  std::string buf[3];           // [buf_mu] read from the pipes, not yet in a ring
  std::list<Parked> parked;     // [buf_mu] in the order they were read (a list: write_parked
                                // keeps its place while buf_mu is released)
  std::size_t parked_bytes = 0; // [buf_mu]
  DrainGate gate;               // the fd target, its last write, bytes pending

  std::vector<std::shared_ptr<Execution>> running;   // [GIL] in start order
  std::shared_ptr<Execution> last_finished;          // [GIL]
  // The forwarder's copy of the fd target (it runs without the GIL).
  std::mutex target_mu;
  std::shared_ptr<Execution> fwd_target;  // [target_mu]
  bool fwd_running = false;               // [target_mu] fwd_target still runs

  std::shared_ptr<Execution> target() const {
    return running.empty() ? last_finished : running.back();
  }
  // [GIL] after running / last_finished changed.
  void publish_target() {
    gate.target = target().get();
    std::lock_guard<std::mutex> g(target_mu);
    fwd_target = target();
    fwd_running = !running.empty();
  }

  // Moves what the pipes hold now into buf (buf_mu held). True if anything is buffered.
  // `whole`: everything the pipes hold (a write that follows must come after all of
  // it), else up to kBufferCap per stream (the forwarder's read-ahead).
  bool read_pipes(bool whole = false) {
    pollfd p[2] = {{rd[1], POLLIN, 0}, {rd[2], POLLIN, 0}};
    if (::poll(p, 2, 0) <= 0) return !buf[1].empty() || !buf[2].empty();  // one syscall when empty
    char tmp[65536];
    for (int fd = 1; fd <= 2; ++fd) {
      if (p[fd - 1].revents == 0) continue;
      // A pipe holds at most pipe_size: reading that much more gets all it held when
      // this began, even while its writers keep writing.
      const std::size_t cap = whole ? buf[fd].size() + pipe_size[fd] : kBufferCap;
      while (buf[fd].size() < cap) {
        ssize_t n = ::read(rd[fd], tmp, std::min(sizeof tmp, cap - buf[fd].size()));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        buf[fd].append(tmp, static_cast<std::size_t>(n));
      }
    }
    return !buf[1].empty() || !buf[2].empty();
  }

  void take(std::string* out, std::string* err) {
    std::lock_guard<std::mutex> g(buf_mu);
    gate.pending.store(false, std::memory_order_relaxed);
    read_pipes(true);
    out->swap(buf[1]);
    err->swap(buf[2]);
  }

  // buf_mu held: bytes for `ex`'s background ring go to the back of the queue.
  void park(const std::shared_ptr<Execution>& ex, std::string* data) {
    if (parked.empty() || parked.back().ex != ex) parked.push_back(Parked{ex, {}});
    for (int fd = 1; fd <= 2; ++fd) {
      parked_bytes += data[fd].size();
      parked.back().data[fd] += data[fd];
      data[fd].clear();
    }
  }

  void forward();
  void write_parked(bool last);
  void forwarder_loop();
};

namespace {

FdCapture::State* g_active = nullptr;  // [GIL]

// C code of an execution closed fd 1 or 2 (os.close leaves them): put the pipe back,
// so C code and children of later executions are captured again. A number reused
// meanwhile (open, but not our pipe) is left alone: it belongs to someone else now.
void restore_closed_fds(FdCapture::State* st) {
  for (int fd = 1; fd <= 2; ++fd) {
    struct stat sb;
    if (::fstat(fd, &sb) != 0 && errno == EBADF && st->wr[fd] >= 0) ::dup3(st->wr[fd], fd, 0);
  }
}

// Drain hook: called while owning the sink `ex` writes to.
void drain(Sink& sink, Execution& ex, uint64_t now, Drain mode) {
  FdCapture::State* st = g_active;
  if (st == nullptr) return;
  if (st->gate.target != &ex) return;
  if (!st->gate.due(ex, now, true) && mode == Drain::kIfNeeded) return;
  std::string data[3];
  {
    // Writing into the background ring: what was parked for it comes first.
    std::lock_guard<std::mutex> g(st->buf_mu);
    if (&sink != &ex.sink) {
      for (auto it = st->parked.begin(); it != st->parked.end();) {
        if (it->ex->background.get() != &sink) {
          ++it;
          continue;
        }
        for (int fd = 1; fd <= 2; ++fd) {
          st->parked_bytes -= it->data[fd].size();
          data[fd] += it->data[fd];
        }
        it = st->parked.erase(it);
      }
    }
  }
  std::string out, err;
  st->take(&out, &err);
  data[1] += out;
  data[2] += err;
  for (int fd = 1; fd <= 2; ++fd) {
    if (data[fd].empty()) continue;
    Segment s{data[fd].data(), data[fd].size(), 0};
    write_output(sink, ex.id, fd == 1 ? SHMREPL_STREAM_STDOUT : SHMREPL_STREAM_STDERR, &s, 1, data[fd].size(),
                 false, nullptr);
  }
}

bool fd_captured(int fd) {
  FdCapture::State* st = g_active;
  if (st == nullptr || (fd != 1 && fd != 2)) return false;
  struct stat sb;
  return ::fstat(fd, &sb) == 0 && sb.st_dev == st->dev[fd] && sb.st_ino == st->ino[fd];
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

constexpr shmrepl_stream_t stream_of(int fd) { return fd == 1 ? SHMREPL_STREAM_STDOUT : SHMREPL_STREAM_STDERR; }

}  // namespace

// GIL not held. Moves what the pipes hold into the fd target's ring. A running
// execution's ring is waited for as long as it takes (its client reads it, or the
// session closes and abandons it); a background ring is never waited for: what does
// not fit, or finds its owner flag taken, is parked.
void FdCapture::State::forward() {
  std::shared_ptr<Execution> t;
  bool is_running;
  {
    std::lock_guard<std::mutex> g(target_mu);
    t = fwd_target;
    is_running = fwd_running;
  }
  std::string data[3];
  if (t == nullptr) {
    take(&data[1], &data[2]);
    write_log(data[1].data(), data[1].size());
    write_log(data[2].data(), data[2].size());
    return;
  }
  if (is_running) {
    Sink& s = t->sink;
    if (!own_without_gil(s, &stopping)) return;
    if (!s.closed) {
      take(&data[1], &data[2]);
      for (int fd = 1; fd <= 2; ++fd)
        write_raw_without_gil(s, t->id, stream_of(fd), data[fd].data(), data[fd].size(), true, &stopping);
      release_sink(s);
      return;
    }
    release_sink(s);  // it finished meanwhile: its session's background ring takes what follows
  }
  take(&data[1], &data[2]);
  {
    std::lock_guard<std::mutex> g(buf_mu);
    park(t, data);
  }
  write_parked(false);
}

// GIL not held. Writes parked bytes into their background rings, as far as they fit
// now. `last`: at the end, when nobody else writes any more: the rest goes to the log.
void FdCapture::State::write_parked(bool last) {
  std::unique_lock<std::mutex> l(buf_mu);
  for (auto it = parked.begin(); it != parked.end();) {
    std::shared_ptr<Execution> ex = it->ex;
    Sink* bg = ex->background.get();
    // Owned before the bytes leave the queue: a Python writer's drain (which owns
    // the ring) then never sees later bytes without these, nor removes this entry.
    const bool owned = bg != nullptr && try_own_sink(*bg);
    if (!owned && !last && bg != nullptr) {
      ++it;
      continue;
    }
    std::string data[3];
    for (int fd = 1; fd <= 2; ++fd) data[fd].swap(it->data[fd]);
    l.unlock();
    std::size_t done[3] = {0, 0, 0};
    const bool unread = owned && (bg->closed || bg->abandon.load(std::memory_order_acquire));
    for (int fd = 1; fd <= 2 && owned && !unread; ++fd) {
      done[fd] = write_raw_without_gil(*bg, ex->id, stream_of(fd), data[fd].data(), data[fd].size(), false,
                                       &stopping);
    }
    if (owned) release_sink(*bg);
    if (last || unread || bg == nullptr) {
      // Nobody will read it: where output without a ring goes.
      for (int fd = 1; fd <= 2; ++fd) write_log(data[fd].data() + done[fd], data[fd].size() - done[fd]);
      done[1] = data[1].size();
      done[2] = data[2].size();
    }
    l.lock();
    for (int fd = 1; fd <= 2; ++fd) {
      parked_bytes -= done[fd];
      it->data[fd].insert(0, data[fd], done[fd]);
    }
    if (it->data[1].empty() && it->data[2].empty()) {
      it = parked.erase(it);
    } else {
      ++it;
    }
  }
}

void FdCapture::State::forwarder_loop() {
  for (;;) {
    bool waiting, stall;
    {
      std::lock_guard<std::mutex> g(buf_mu);
      waiting = !parked.empty();
      stall = parked_bytes >= kParkCap;
    }
    if (stall) {
      // Background rings hold no more and none of them is read: read no more unless
      // an execution runs (what it reads belongs to that execution).
      std::lock_guard<std::mutex> g(target_mu);
      stall = !fwd_running;
      stalled.store(stall, std::memory_order_seq_cst);
    }
    pollfd p[4] = {{stop_fd, POLLIN, 0}, {wake_fd, POLLIN, 0}, {rd[1], POLLIN, 0}, {rd[2], POLLIN, 0}};
    int n = ::poll(p, stall ? 2 : 4, waiting ? kRetryMs : -1);
    stalled.store(false, std::memory_order_relaxed);
    if (n < 0 && errno != EINTR) break;
    if (p[0].revents != 0) break;
    if (p[1].revents != 0) {
      uint64_t v;
      ssize_t r = ::read(wake_fd, &v, sizeof v);
      (void)r;
    }
    bool got = false;
    if (!stall) {
      std::lock_guard<std::mutex> g(buf_mu);
      got = read_pipes();
      if (got) gate.pending.store(true, std::memory_order_relaxed);
    }
    if (got) forward();
    if (waiting) write_parked(false);
  }
}

std::unique_ptr<FdCapture> FdCapture::start() {
  std::unique_ptr<FdCapture> cap(new FdCapture());
  cap->state_ = std::make_unique<State>();
  State* st = cap->state_.get();
  std::fflush(nullptr);
  for (int fd = 1; fd <= 2; ++fd) {
    int p[2];
    st->saved[fd] = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (st->saved[fd] < 0 || ::pipe2(p, O_CLOEXEC) != 0)
      throw std::runtime_error(std::string("fd capture: ") + std::strerror(errno));
    ::fcntl(p[0], F_SETFL, O_NONBLOCK);
    ::fcntl(p[0], F_SETPIPE_SZ, kPipeSize);  // best effort: fewer wake-ups
    const int size = ::fcntl(p[0], F_GETPIPE_SZ);
    st->pipe_size[fd] = size > 0 ? static_cast<std::size_t>(size) : std::size_t{kPipeSize};
    st->rd[fd] = p[0];
    if (::dup2(p[1], fd) < 0) throw std::runtime_error(std::string("fd capture: ") + std::strerror(errno));
    st->wr[fd] = ::fcntl(p[1], F_DUPFD_CLOEXEC, 3);
    ::close(p[1]);
    if (st->wr[fd] < 0) throw std::runtime_error(std::string("fd capture: ") + std::strerror(errno));
    struct stat sb;
    ::fstat(fd, &sb);
    st->dev[fd] = sb.st_dev;
    st->ino[fd] = sb.st_ino;
  }
  st->stop_fd = ::eventfd(0, EFD_CLOEXEC);
  st->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  set_log_fd(st->saved[2]);
  {
    PyGILState_STATE g = PyGILState_Ensure();
    if (g_active != nullptr) {
      PyGILState_Release(g);
      throw std::runtime_error("fd capture: already active in this process");
    }
    g_active = st;
    set_drain_hook(drain, &st->gate);
    set_fd_captured_fn(fd_captured);
    PyGILState_Release(g);
  }
  st->forwarder = std::thread([st] { st->forwarder_loop(); });
  return cap;
}

FdCapture::~FdCapture() {
  State* st = state_.get();
  if (st->forwarder.joinable()) {
    st->stopping.store(true);
    uint64_t one = 1;
    ssize_t w = ::write(st->stop_fd, &one, sizeof one);
    (void)w;
    st->forwarder.join();
  }
  std::fflush(nullptr);
  // Restore first: afterwards only children that still hold the pipes write into them.
  for (int fd = 1; fd <= 2; ++fd)
    if (st->saved[fd] >= 0) ::dup2(st->saved[fd], fd);
  set_log_fd(2);
  {
    PyGILState_STATE g = PyGILState_Ensure();
    if (g_active == st) {
      g_active = nullptr;
      set_drain_hook(nullptr, nullptr);
      set_fd_captured_fn(nullptr);
    }
    st->running.clear();
    st->last_finished.reset();
    st->publish_target();
    PyGILState_Release(g);
  }
  // Every session is closed by now: what is left goes to the log.
  st->forward();
  st->write_parked(true);
  for (int fd = 1; fd <= 2; ++fd) {
    close_fd(st->saved[fd]);
    close_fd(st->rd[fd]);
    close_fd(st->wr[fd]);
  }
  close_fd(st->stop_fd);
  close_fd(st->wake_fd);
}

void FdCapture::execution_started(const std::shared_ptr<Execution>& ex) {
  State* st = g_active;
  if (st == nullptr) return;
  st->running.push_back(ex);
  st->publish_target();
  // seq_cst: pairs with the forwarder's store of `stalled` before it polls without the pipes.
  if (st->stalled.load(std::memory_order_seq_cst)) {
    uint64_t one = 1;
    ssize_t w = ::write(st->wake_fd, &one, sizeof one);
    (void)w;
  }
}

void FdCapture::execution_finished(Execution* ex) {
  State* st = g_active;
  if (st == nullptr) return;
  for (auto it = st->running.begin(); it != st->running.end(); ++it) {
    if (it->get() == ex) {
      st->last_finished = *it;
      st->running.erase(it);
      break;
    }
  }
  st->publish_target();
}

void FdCapture::execution_ending() {
  if (State* st = g_active) restore_closed_fds(st);
}

}  // namespace shmrepl::engine
