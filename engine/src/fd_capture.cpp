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
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "output.hpp"
#include "clock.hpp"
#include "pyhooks.hpp"
#include "shmrepl/shm/sys.hpp"

namespace shmrepl::engine {

namespace {
// A write that follows a quiet time of at least this long (ns) looks into the
// pipes first; writes in a tight loop do not (no system call on the hot path).
constexpr uint64_t kQuietGap = 2'000;
constexpr std::size_t kBufferCap = 4u << 20;         // per stream, read ahead of the GIL
constexpr int kPipeSize = 1 << 20;
}  // namespace

struct FdCapture::State {
  int saved[3] = {-1, -1, -1};  // the original fds 1 and 2 (index = fd)
  int rd[3] = {-1, -1, -1};     // read ends of the pipes now on fds 1 and 2
  // Copies of the write ends: the pipes never hang up (user code may close fd 1 and 2,
  // and the forwarder would spin on POLLHUP), and fds 1/2 can be put back.
  int wr[3] = {-1, -1, -1};
  dev_t dev[3] = {};
  ino_t ino[3] = {};
  int stop_fd = -1;
  std::thread forwarder;

  std::mutex buf_mu;
  std::string buf[3];  // [buf_mu] read from the pipes, not yet in a ring
  std::atomic<bool> pending{false};

  uint64_t last_write_ns = 0;                        // [GIL] the fd target's last write
  std::vector<std::shared_ptr<Execution>> running;   // [GIL] in start order
  std::shared_ptr<Execution> last_finished;          // [GIL]

  std::shared_ptr<Execution> target() const {
    return running.empty() ? last_finished : running.back();
  }

  // Moves what the pipes hold now into buf (buf_mu held). True if anything is buffered.
  bool read_pipes() {
    pollfd p[2] = {{rd[1], POLLIN, 0}, {rd[2], POLLIN, 0}};
    if (::poll(p, 2, 0) <= 0) return !buf[1].empty() || !buf[2].empty();  // one syscall when empty
    char tmp[65536];
    for (int fd = 1; fd <= 2; ++fd) {
      if (p[fd - 1].revents == 0) continue;
      while (buf[fd].size() < kBufferCap) {
        ssize_t n = ::read(rd[fd], tmp, std::min(sizeof tmp, kBufferCap - buf[fd].size()));
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        buf[fd].append(tmp, static_cast<std::size_t>(n));
      }
    }
    return !buf[1].empty() || !buf[2].empty();
  }

  void take(std::string* out, std::string* err) {
    std::lock_guard<std::mutex> g(buf_mu);
    pending.store(false, std::memory_order_relaxed);
    read_pipes();
    out->swap(buf[1]);
    err->swap(buf[2]);
  }

  void forward();
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
void drain(Sink& sink, Execution& ex, uint64_t now, bool force) {
  FdCapture::State* st = g_active;
  if (st == nullptr) return;
  if (st->running.empty() ? st->last_finished.get() != &ex : st->running.back().get() != &ex) return;
  // Forced drains come before Result/Error/Finished: fds are back before a client
  // can see the end and make the engine open a descriptor (its next ring).
  if (force) restore_closed_fds(st);
  uint64_t quiet = now - st->last_write_ns;  // huge if the clock stepped back: drain
  st->last_write_ns = now;
  if (!force && !st->pending.load(std::memory_order_relaxed) && quiet < kQuietGap) return;
  std::string out, err;
  st->take(&out, &err);
  if (!out.empty()) {
    Segment s{out.data(), out.size(), 0};
    write_output(sink, ex.id, SHMREPL_STREAM_STDOUT, &s, 1, out.size(), false, nullptr);
  }
  if (!err.empty()) {
    Segment s{err.data(), err.size(), 0};
    write_output(sink, ex.id, SHMREPL_STREAM_STDERR, &s, 1, err.size(), false, nullptr);
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

}  // namespace

// Takes the GIL and moves buffered pipe data into the fd target's ring.
void FdCapture::State::forward() {
  PyGILState_STATE g = PyGILState_Ensure();
  std::shared_ptr<Execution> t = target();
  Sink* s = nullptr;
  bool failed = false;
  if (t != nullptr) s = acquire_sink(*t, &failed);
  if (s != nullptr) {
    drain(*s, *t, RecordClock::now(), true);
    release_sink(*s);
  } else {
    std::string out, err;
    take(&out, &err);
    write_log(out.data(), out.size());
    write_log(err.data(), err.size());
  }
  PyGILState_Release(g);
}

void FdCapture::State::forwarder_loop() {
  for (;;) {
    bool full;
    {
      std::lock_guard<std::mutex> g(buf_mu);
      full = buf[1].size() >= kBufferCap || buf[2].size() >= kBufferCap;
    }
    pollfd p[3] = {{stop_fd, POLLIN, 0}, {rd[1], POLLIN, 0}, {rd[2], POLLIN, 0}};
    // With a full buffer, wait for the writers to take it instead of reading more.
    int n = ::poll(p, full ? 1 : 3, full ? 10 : -1);
    if (n < 0 && errno != EINTR) break;
    if (p[0].revents != 0) break;
    bool got;
    {
      std::lock_guard<std::mutex> g(buf_mu);
      got = read_pipes();
      if (got) pending.store(true, std::memory_order_relaxed);
    }
    if (got) forward();
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
  set_log_fd(st->saved[2]);
  {
    PyGILState_STATE g = PyGILState_Ensure();
    if (g_active != nullptr) {
      PyGILState_Release(g);
      throw std::runtime_error("fd capture: already active in this process");
    }
    g_active = st;
    set_drain_hook(drain);
    set_fd_captured_fn(fd_captured);
    PyGILState_Release(g);
  }
  st->forwarder = std::thread([st] { st->forwarder_loop(); });
  return cap;
}

FdCapture::~FdCapture() {
  State* st = state_.get();
  if (st->forwarder.joinable()) {
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
      st->forward();
      g_active = nullptr;
      set_drain_hook(nullptr);
      set_fd_captured_fn(nullptr);
    }
    st->running.clear();
    st->last_finished.reset();
    PyGILState_Release(g);
  }
  for (int fd = 1; fd <= 2; ++fd) {
    close_fd(st->saved[fd]);
    close_fd(st->rd[fd]);
    close_fd(st->wr[fd]);
  }
  close_fd(st->stop_fd);
}

void FdCapture::execution_started(const std::shared_ptr<Execution>& ex) {
  if (g_active != nullptr) g_active->running.push_back(ex);
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
  restore_closed_fds(st);
}

}  // namespace shmrepl::engine
