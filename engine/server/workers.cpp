#include "workers.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <stdexcept>
#include <optional>
#include <system_error>
#include <utility>

#include "control.hpp"
#include "dispatcher.hpp"
#include "log.hpp"
#include "records.hpp"
#include "shmrepl/shm/layout.hpp"
#include "shmrepl/shm/producer.hpp"
#include "shmrepl/shm/sys.hpp"
#include "shmrepl/shmrepl_generated.h"

namespace shmrepl::server {

namespace {

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

// Supervisor -> zygote: fork a worker for this session (or a spare, for none yet);
// two descriptors ride along (the worker's ends of the client connection and of the
// supervisor channel), then those `extra` names, in this order. Supervisor -> spare,
// on its supervisor channel: its session, with the `extra` descriptors only.
enum : uint32_t { kHasStdin = 1, kHasStdout = 2, kHasStderr = 4 };
enum : uint32_t { kForked = 0, kFresh = 1, kSpare = 2 };
struct SpawnRequest {
  uint64_t session_id;
  uint32_t extra;  // kHas*: the session's stdin, the caller's stdout, stderr
  uint32_t kind;   // kForked; kFresh: exec'd, newly initialised; kSpare: forked ahead
};
std::size_t extra_count(uint32_t extra) {
  return ((extra & kHasStdin) != 0) + ((extra & kHasStdout) != 0) + ((extra & kHasStderr) != 0);
}
constexpr std::size_t kMaxSpawnFds = 5;
// Zygote -> supervisor: a worker ended (waitpid status).
struct ExitNotice {
  int32_t pid;
  int32_t status;
};
// Worker -> supervisor, on the supervisor channel.
// kRingCreated comes with the ring's descriptor (SCM_RIGHTS); kRingGone: the worker
// released it (finished, and released by its client). kRingReserve: may it create a
// ring of `bytes` (answered with a ReserveReply); kRingUnreserve: a granted one that
// it did not create after all.
enum : uint32_t { kReady = 1, kFailed = 2, kKillingForCancel = 3, kNoSuchFolder = 4, kNoMemory = 5,
                  kKillingForTimeout = 6, kRefused = 7, kRingCreated = 8, kRingGone = 9,
                  kRingReserve = 10, kRingUnreserve = 11 };
struct WorkerMessage {
  uint32_t kind;
  int32_t pid;
  uint64_t bytes;        // kRingReserve, kRingUnreserve: ring data bytes
  uint64_t reservation;  // kRingReserve: its number, echoed in the reply
  // kReady: the background ring; kFailed: why; kRing*: the ring's name (as created)
  char text[240];
};
// Supervisor -> worker: end the session (the kind alone), or the answer to a kRingReserve.
enum : uint32_t { kClose = 1, kReserveReply = 2 };
struct ReserveReply {
  uint32_t kind;  // kReserveReply
  uint32_t granted;
  uint64_t reservation;
  uint64_t bytes;
  char why[512];  // refused: which limit, for the client
};
// How long a worker waits for a ReserveReply. The supervisor's reaper answers at once
// unless it is closing a dead worker's rings (up to 2 s per ring a reader holds full).
constexpr int kReserveTimeoutMs = 10'000;

void send_fds(int sock, const void* data, std::size_t len, const int* fds, std::size_t nfds) {
  iovec iov{const_cast<void*>(data), len};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxSpawnFds)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (nfds > 0) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
    std::memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  }
  ssize_t n;
  do n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(len)) throw_errno("sendmsg");
}

// One datagram, and up to kMaxSpawnFds descriptors (close-on-exec). 0 at end of stream.
ssize_t recv_fds(int sock, void* data, std::size_t len, int* fds, std::size_t* nfds, int flags = 0) {
  iovec iov{data, len};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * (kMaxSpawnFds + 1))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | flags);
  while (n < 0 && errno == EINTR);
  std::size_t got = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
      if (got < kMaxSpawnFds) fds[got++] = fd;
      else ::close(fd);
    }
  }
  if (nfds != nullptr) *nfds = got;
  if ((msg.msg_flags & MSG_CTRUNC) != 0) {
    for (std::size_t i = 0; i < got; ++i) ::close(fds[i]);
    if (nfds != nullptr) *nfds = 0;
    errno = EMSGSIZE;
    return -1;
  }
  return n;
}

void send_message(int sock, uint32_t kind, const std::string& text, int fd = -1) {
  WorkerMessage m{};
  m.kind = kind;
  m.pid = static_cast<int32_t>(::getpid());
  std::strncpy(m.text, text.c_str(), sizeof m.text - 1);
  if (fd >= 0) {
    try {
      send_fds(sock, &m, sizeof m, &fd, 1);
    } catch (const std::exception&) {
      // The supervisor is gone: the worker ends with it.
    }
    return;
  }
  ssize_t ignored = ::send(sock, &m, sizeof m, MSG_NOSIGNAL);
  (void)ignored;
}

uint64_t now_ms() { return shm::monotonic_ns() / 1'000'000; }

// The session's setup travels to the worker on its supervisor channel, in pieces
// that fit a datagram: u64 total size, then the bytes: set_env (one byte), the
// working folder, NUL, then each environment entry, NUL-terminated.
constexpr std::size_t kChunk = 32 << 10;

void send_setup(int sock, const WorkerPool::Setup& setup) {
  std::string blob(1, setup.set_env ? '\1' : '\0');
  blob += setup.working_dir;
  blob.push_back('\0');
  for (const std::string& e : setup.env) {
    blob += e;
    blob.push_back('\0');
  }
  const uint64_t total = blob.size();
  if (::send(sock, &total, sizeof total, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof total)) throw_errno("send");
  for (std::size_t at = 0; at < blob.size(); at += kChunk) {
    const std::size_t n = std::min(kChunk, blob.size() - at);
    if (::send(sock, blob.data() + at, n, MSG_NOSIGNAL) != static_cast<ssize_t>(n)) throw_errno("send");
  }
}

bool recv_setup(int sock, WorkerPool::Setup* setup) {
  uint64_t total = 0;
  if (::recv(sock, &total, sizeof total, 0) != static_cast<ssize_t>(sizeof total) || total == 0 ||
      total > (256u << 20))
    return false;
  std::string blob(total, '\0');
  for (std::size_t at = 0; at < total;) {
    const ssize_t n = ::recv(sock, blob.data() + at, std::min<std::size_t>(kChunk, total - at), 0);
    if (n <= 0) return false;
    at += static_cast<std::size_t>(n);
  }
  setup->set_env = blob[0] != '\0';
  std::size_t at = 1;
  const std::size_t end = blob.find('\0', at);
  if (end == std::string::npos) return false;
  setup->working_dir = blob.substr(at, end - at);
  for (at = end + 1; at < blob.size();) {
    const std::size_t e = blob.find('\0', at);
    if (e == std::string::npos) return false;
    setup->env.push_back(blob.substr(at, e - at));
    at = e + 1;
  }
  return true;
}

// ---- the worker ----------------------------------------------------------------

// Runs engine.cancel (which needs the GIL, held as long as C code likes) away from
// the connection's thread, so that thread keeps serving and keeps time.
class Canceller {
 public:
  explicit Canceller(engine::Engine& e) : engine_(e), thread_([this] { loop(); }) { thread_.detach(); }
  // `timeout`: the execution's time is up (it finishes Timeout), else a cancel.
  void post(uint64_t id, bool timeout = false) {
    {
      std::lock_guard<std::mutex> l(mu_);
      queue_.push_back({id, timeout});
    }
    cv_.notify_one();
  }

 private:
  void loop() {
    for (;;) {
      std::pair<uint64_t, bool> job;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return !queue_.empty(); });
        job = queue_.front();
        queue_.pop_front();
      }
      try {
        if (job.second) engine_.time_out(job.first);
        else engine_.cancel(job.first);
      } catch (...) {
      }
    }
  }
  engine::Engine& engine_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<uint64_t, bool>> queue_;
  std::thread thread_;
};

// The worker's end of its supervisor channel. Read only by the thread that serves
// the client (it runs the Executes whose rings are reserved), so a reply to a
// reservation never meets another reader.
struct SupervisorChannel {
  int fd = -1;
  bool close_asked = false;    // a kClose came while a reservation waited: end the session
  uint64_t reservations = 0;   // the last kRingReserve's number
};

// The supervisor is gone: end now, as if killed with it (readers see the producer
// die; nobody is left to close the rings).
[[noreturn]] void supervisor_gone() {
  ::kill(::getpid(), SIGKILL);
  _exit(137);
}

void unreserve(const SupervisorChannel& ch, uint64_t bytes) {
  WorkerMessage m{};
  m.kind = kRingUnreserve;
  m.pid = static_cast<int32_t>(::getpid());
  m.bytes = bytes;
  ssize_t ignored = ::send(ch.fd, &m, sizeof m, MSG_NOSIGNAL);
  (void)ignored;
}

// A reply to an earlier reservation, whose wait timed out: a grant is given back.
void stale_reply(const SupervisorChannel& ch, const ReserveReply& r) {
  if (r.granted != 0) unreserve(ch, r.bytes);
}

// engine::EngineOptions::ring_reserve: asks the supervisor, waits for its answer.
void reserve_ring(SupervisorChannel& ch, uint64_t bytes) {
  WorkerMessage m{};
  m.kind = kRingReserve;
  m.pid = static_cast<int32_t>(::getpid());
  m.bytes = bytes;
  m.reservation = ++ch.reservations;
  if (::send(ch.fd, &m, sizeof m, MSG_NOSIGNAL) != static_cast<ssize_t>(sizeof m)) supervisor_gone();
  const uint64_t deadline = shm::monotonic_ns() / 1'000'000 + kReserveTimeoutMs;
  for (;;) {
    const uint64_t now = shm::monotonic_ns() / 1'000'000;
    pollfd p{ch.fd, POLLIN, 0};
    const int rc = now >= deadline ? 0 : ::poll(&p, 1, static_cast<int>(deadline - now));
    if (rc < 0 && errno == EINTR) continue;
    if (rc == 0)
      throw std::system_error(ETIMEDOUT, std::generic_category(),
                              "the engine did not answer this execution's ring reservation in " +
                                  std::to_string(kReserveTimeoutMs / 1000) + " s");
    ReserveReply r{};
    const ssize_t n = ::recv(ch.fd, &r, sizeof r, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
    if (n == static_cast<ssize_t>(sizeof(uint32_t)) && r.kind == kClose) {
      ch.close_asked = true;
      throw std::runtime_error("session is closing");
    }
    if (n != static_cast<ssize_t>(sizeof r) || r.kind != kReserveReply) supervisor_gone();
    if (r.reservation != m.reservation) {
      stale_reply(ch, r);
      continue;
    }
    if (r.granted != 0) return;
    r.why[sizeof r.why - 1] = '\0';
    throw engine::LimitExceeded(r.why);
  }
}

[[noreturn]] void kill_self_for_cancel(int sup_fd, uint32_t why = kKillingForCancel) {
  send_message(sup_fd, why, "");
  ::kill(::getpid(), SIGKILL);
  _exit(137);
}

// How long one message to or from the client may take once begun: a client that
// sends half a request, or stops taking replies until the socket is full, must not
// stall the loop that runs timeouts and cancels. The session ends then.
constexpr int64_t kPeerIoTimeoutNs = 5'000'000'000;

// The worker's connection to its client (Execute, Cancel, Release) and to the
// supervisor (close). Returns when either side ends the session.
void serve_worker(engine::Engine& engine, uint64_t session_id, int client_fd, SupervisorChannel& sup) {
  const int sup_fd = sup.fd;
  Dispatcher dispatcher(engine, static_cast<uint32_t>(::getpid()), session_id);
  auto* canceller = new Canceller(engine);  // lives as long as the process
  // What happens when: an execution's timeout (interrupt it), then the end of the
  // grace period after an interrupt (kill).
  enum class Due { kTimeout, kKillCancelled, kKillTimedOut };
  struct Deadline {
    uint64_t when;
    uint64_t id;
    Due due;
  };
  std::vector<Deadline> deadlines;
  std::vector<uint8_t> body;
  std::string err;
  for (;;) {
    int timeout = -1;
    const uint64_t now = now_ms();
    std::vector<Deadline> next;
    for (auto it = deadlines.begin(); it != deadlines.end();) {
      if (engine.finished(it->id)) {
        it = deadlines.erase(it);
        continue;
      }
      if (it->when <= now) {
        if (it->due == Due::kKillCancelled) kill_self_for_cancel(sup_fd);
        if (it->due == Due::kKillTimedOut) kill_self_for_cancel(sup_fd, kKillingForTimeout);
        canceller->post(it->id, true);
        next.push_back({now + kGraceMs, it->id, Due::kKillTimedOut});
        it = deadlines.erase(it);
        continue;
      }
      const int left = static_cast<int>(it->when - now);
      timeout = timeout < 0 ? left : std::min(timeout, left);
      ++it;
    }
    deadlines.insert(deadlines.end(), next.begin(), next.end());
    if (!next.empty()) timeout = 0;
    if (!deadlines.empty()) timeout = std::min(timeout < 0 ? 100 : timeout, 100);
    pollfd p[2] = {{client_fd, POLLIN, 0}, {sup_fd, POLLIN, 0}};
    if (::poll(p, 2, timeout) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[1].revents != 0) {
      ReserveReply r{};
      const ssize_t n = ::recv(sup_fd, &r, sizeof r, MSG_DONTWAIT);
      if (n == static_cast<ssize_t>(sizeof(uint32_t)) && r.kind == kClose) break;
      if (n == static_cast<ssize_t>(sizeof r) && r.kind == kReserveReply) {
        stale_reply(sup, r);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
      supervisor_gone();
    }
    if (p[0].revents == 0) continue;
    const control::ctl::Message* m = nullptr;
    if (const shmrepl_status_t st = control::read_message(client_fd, &body, &m, &err, nullptr, 0,
                                                          control::deadline_after(kPeerIoTimeoutNs));
        st != SHMREPL_OK) {
      if (st != SHMREPL_E_EOF) log_line("session " + std::to_string(session_id) + ": " + err);
      break;
    }
    if (m->body_type() == control::ctl::Body::Cancel &&
        dispatcher.has_execution(m->body_as_Cancel()->execution_id())) {
      const uint64_t id = m->body_as_Cancel()->execution_id();
      if (!engine.finished(id)) {
        deadlines.push_back({now_ms() + kGraceMs, id, Due::kKillCancelled});
        canceller->post(id);
      }
      control::Frame ok = control::ok(m->request_id());
      if (control::write_all(client_fd, ok.data(), ok.size(), &err, control::deadline_after(kPeerIoTimeoutNs)) !=
          SHMREPL_OK)
        break;
      continue;
    }
    Reply reply = dispatcher.handle(body);
    // An Accepted reply carries its ring (SCM_RIGHTS): the client maps that, never a name.
    const int64_t deadline = control::deadline_after(kPeerIoTimeoutNs);
    const shmrepl_status_t sent =
        reply.pass_fd >= 0 ? control::write_all_with_fd(client_fd, reply.frame.data(), reply.frame.size(),
                                                        reply.pass_fd, &err, deadline)
                           : control::write_all(client_fd, reply.frame.data(), reply.frame.size(), &err, deadline);
    if (reply.pass_fd >= 0) ::close(reply.pass_fd);
    if (reply.held_execution != 0) {
      if (reply.timeout_ns > 0)
        deadlines.push_back({now_ms() + static_cast<uint64_t>(reply.timeout_ns) / 1'000'000, reply.held_execution,
                             Due::kTimeout});
      engine.go(reply.held_execution);
    }
    // A close that came while this request waited for a ring reservation: refused, now ended.
    if (sent != SHMREPL_OK || reply.close || sup.close_asked) break;
  }
  // Closing cancels what runs; if that does not end it in time, the kill does.
  std::thread([sup_fd] {
    std::this_thread::sleep_for(std::chrono::milliseconds(kGraceMs));
    kill_self_for_cancel(sup_fd);
  }).detach();
  dispatcher.cleanup();
}

// A fresh worker's CPython starts here, with the session's environment; what it
// writes to stderr meanwhile is kept for the program's stderr (python3 shows it there).
void start_fresh_interpreter(const ZygoteHooks& hooks, engine::EngineOptions* eo) {
  const int saved = ::fcntl(2, F_DUPFD_CLOEXEC, 3);
  const int mem = saved >= 0 ? ::memfd_create("shmrepl-startup-stderr", MFD_CLOEXEC) : -1;
  if (mem >= 0) ::dup2(mem, 2);
  std::string failure;
  try {
    hooks.preinitialize();
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (mem >= 0) {
    ::dup2(saved, 2);
    char buf[4096];
    ssize_t n;
    for (off_t at = 0; (n = ::pread(mem, buf, sizeof buf, at)) > 0 && at < (1 << 20); at += n)
      eo->startup_stderr.append(buf, static_cast<std::size_t>(n));
    ::close(mem);
  }
  if (saved >= 0) ::close(saved);
  if (!failure.empty())
    throw std::runtime_error(failure + (eo->startup_stderr.empty() ? "" : ": " + eo->startup_stderr));
}

// What a worker process does first, whatever its session. Returns the signals meant
// for the program, blocked until the engine's threads exist.
sigset_t worker_process_init(pid_t zygote) {
  // The zygote (and through it the supervisor) gone means we go too.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != zygote) _exit(1);
  // Registered for the rings' fence-free publish now, while single-threaded: once the
  // engine's threads exist the kernel makes the registration wait for an RCU grace
  // period (~10 ms here, once per worker). The producer then finds it done.
  shm::register_fenced_publisher(::getpid());
  // Die of what user code does as python3 would: the supervisor reports the signal.
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1,
                  SIGUSR2, SIGALRM, SIGCHLD})
    ::signal(sig, SIG_DFL);
  // Signals sent to the program (shmrepl run passes them on) go to the main thread,
  // where user code runs, as in python3: the engine's own threads, started below,
  // inherit them blocked; the main thread unblocks them once they exist.
  sigset_t program;
  sigemptyset(&program);
  for (int sig : {SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM}) sigaddset(&program, sig);
  ::sigprocmask(SIG_SETMASK, &program, nullptr);
  return program;
}

// `terminal_fds`: the caller's stdout and stderr (-1: none), asked only isatty()
// and the terminal size; they stay open (close-on-exec) for the worker's life.
[[noreturn]] void run_worker(uint64_t session_id, int client_fd, int sup_fd, int stdin_fd,
                             const int* terminal_fds, const sigset_t& program, const EngineFactory& factory,
                             engine::EngineOptions eo, bool fresh, const ZygoteHooks* hooks) {
  ::prctl(PR_SET_NAME, "shmrepl-worker");
  WorkerPool::Setup setup;
  if (!recv_setup(sup_fd, &setup)) _exit(1);
  if (!setup.working_dir.empty() && ::chdir(setup.working_dir.c_str()) != 0) {
    const int e = errno;
    send_message(sup_fd, e == ENOENT || e == ENOTDIR ? kNoSuchFolder : kFailed,
                 "working folder " + setup.working_dir + ": " + std::strerror(e));
    _exit(1);
  }
  if (stdin_fd >= 0) {
    ::dup2(stdin_fd, 0);
    ::close(stdin_fd);
  }
  eo.virtual_env = setup.set_env;
  if (fresh && setup.set_env) {
    // CPython is not initialised yet: it starts with the session's environment, as
    // python3 would (os.environ, sys.path from PYTHONPATH, the hash secret...).
    ::clearenv();
    for (const std::string& e : setup.env) {
      const std::size_t eq = e.find('=');
      if (eq != 0 && eq != std::string::npos) ::setenv(e.substr(0, eq).c_str(), e.c_str() + eq + 1, 1);
    }
    eo.started_with_environment = true;
  }
  eo.worker = true;
  eo.capture_fds = true;
  eo.child_closes[0] = client_fd;
  eo.child_closes[1] = sup_fd;
  eo.input_requests = stdin_fd < 0;  // input() asks the client (InputRequest)
  eo.terminal_fds[0] = terminal_fds[0];
  eo.terminal_fds[1] = terminal_fds[1];
  eo.set_environment = setup.set_env;
  eo.environment = std::move(setup.env);
  // Every ring is a sealed memfd; the supervisor gets each one (the guardian's
  // takeover, late readers) and hears when the worker is done with it.
  eo.sealed_rings = true;
  eo.ring_created = [sup_fd](const std::string& name, int fd) { send_message(sup_fd, kRingCreated, name, fd); };
  eo.ring_gone = [sup_fd](const std::string& name) { send_message(sup_fd, kRingGone, name); };
  SupervisorChannel channel{sup_fd};
  eo.ring_reserve = [&channel](uint64_t bytes) { reserve_ring(channel, bytes); };
  eo.ring_unreserve = [&channel](uint64_t bytes) { unreserve(channel, bytes); };
  std::unique_ptr<engine::Engine> engine;
  std::string bg;
  try {
    if (fresh && hooks != nullptr) start_fresh_interpreter(*hooks, &eo);
    engine = factory(eo);
    engine->open_session_as(session_id);
    bg = engine->session_background_ring(session_id);
  } catch (const std::system_error& e) {
    const int c = e.code().value();
    send_message(sup_fd, c == ENOSPC || c == ENOMEM ? kNoMemory : kFailed, e.what());
    _exit(1);
  } catch (const std::invalid_argument& e) {
    send_message(sup_fd, kRefused, e.what());
    _exit(1);
  } catch (const std::exception& e) {
    send_message(sup_fd, kFailed, e.what());
    _exit(1);
  }
  send_message(sup_fd, kReady, bg);
  std::thread control([&] { serve_worker(*engine, session_id, client_fd, channel); });
  ::pthread_sigmask(SIG_UNBLOCK, &program, nullptr);
  engine->run_session(session_id);  // user code runs here, on the main thread
  control.join();
  _exit(0);
}

[[noreturn]] void worker_main(uint64_t session_id, int client_fd, int sup_fd, int stdin_fd,
                              const int* terminal_fds, pid_t zygote, const EngineFactory& factory,
                              const engine::EngineOptions& eo, bool fresh, const ZygoteHooks* hooks) {
  const sigset_t program = worker_process_init(zygote);
  run_worker(session_id, client_fd, sup_fd, stdin_fd, terminal_fds, program, factory, eo, fresh, hooks);
}

// A warm spare: a worker forked before its session is known, prepared as far as no
// session is needed, then waiting on its supervisor channel for one. The supervisor
// closing the channel unused ends it.
[[noreturn]] void spare_main(int client_fd, int sup_fd, pid_t zygote, const EngineFactory& factory,
                             const engine::EngineOptions& eo, const ZygoteHooks& hooks) {
  const sigset_t program = worker_process_init(zygote);
  try {
    hooks.prepare_worker();
  } catch (const std::exception& e) {
    // The supervisor sees the channel end and forks a worker instead.
    log_line(std::string("spare worker: ") + e.what());
    _exit(1);
  }
  SpawnRequest req{};
  int fds[kMaxSpawnFds] = {-1, -1, -1, -1, -1};
  std::size_t nfds = 0;
  if (recv_fds(sup_fd, &req, sizeof req, fds, &nfds) != static_cast<ssize_t>(sizeof req) ||
      nfds != extra_count(req.extra))
    _exit(0);
  std::size_t at = 0;
  const int stdin_fd = (req.extra & kHasStdin) != 0 ? fds[at++] : -1;
  int terminal_fds[2] = {-1, -1};
  if ((req.extra & kHasStdout) != 0) terminal_fds[0] = fds[at++];
  if ((req.extra & kHasStderr) != 0) terminal_fds[1] = fds[at++];
  run_worker(req.session_id, client_fd, sup_fd, stdin_fd, terminal_fds, program, factory, eo, false, nullptr);
}

bool startup_only(const std::string& name) {
  for (std::size_t i = 0; i < kStartupOnlyCount; ++i)
    if (name == kStartupOnlyVariables[i]) return true;
  return false;
}

// ---- the zygote ------------------------------------------------------------------

// In the zygote's child: becomes a fresh worker (fresh_worker_main) with the same
// descriptors. Only the execution-id page and these survive the exec.
// fds: client connection, supervisor channel, stdin, the caller's stdout and stderr
// (terminals; -1: none).
[[noreturn]] void exec_fresh_worker(const std::string& exe, uint64_t session_id, const int fds[5], pid_t zygote,
                                    int ids_fd, const engine::EngineOptions& eo) {
  for (int fd : {fds[0], fds[1], fds[2], fds[3], fds[4], ids_fd})
    if (fd >= 0) ::fcntl(fd, F_SETFD, 0);
  std::vector<std::string> args = {"shmrepl-engine",
                                   kFreshWorkerFlag,
                                   std::to_string(session_id),
                                   std::to_string(fds[0]),
                                   std::to_string(fds[1]),
                                   std::to_string(fds[2]),
                                   std::to_string(fds[3]),
                                   std::to_string(fds[4]),
                                   std::to_string(zygote),
                                   std::to_string(ids_fd),
                                   std::to_string(eo.guardian_pid),
                                   std::to_string(eo.ring_capacity)};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  ::execv(exe.c_str(), argv.data());
  _exit(127);  // the supervisor sees the worker's channel end: "did not start"
}

[[noreturn]] void zygote_main(int sock, pid_t supervisor, const ZygoteHooks& hooks,
                              const EngineFactory& factory, const engine::EngineOptions& eo, int ids_fd) {
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (::getppid() != supervisor) _exit(1);
  ::prctl(PR_SET_NAME, "shmrepl-zygote");
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  ::sigprocmask(SIG_BLOCK, &chld, nullptr);
  const int sfd = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) _exit(1);
  try {
    hooks.preinitialize();
  } catch (const std::exception& e) {
    log_line(std::string("zygote: ") + e.what());
    _exit(1);
  }
  for (;;) {
    pollfd p[2] = {{sock, POLLIN, 0}, {sfd, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    if (p[1].revents != 0) {
      signalfd_siginfo info;
      while (::read(sfd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
      }
      int status = 0;
      pid_t pid;
      while ((pid = ::waitpid(-1, &status, WNOHANG)) > 0) {
        ExitNotice n{static_cast<int32_t>(pid), static_cast<int32_t>(status)};
        ssize_t ignored = ::send(sock, &n, sizeof n, MSG_NOSIGNAL);
        (void)ignored;
      }
    }
    if (p[0].revents == 0) continue;
    SpawnRequest req{};
    int fds[kMaxSpawnFds] = {-1, -1, -1, -1, -1};
    std::size_t nfds = 0;
    const ssize_t n = recv_fds(sock, &req, sizeof req, fds, &nfds);
    if (n == 0) _exit(0);  // the supervisor is done: workers follow (PDEATHSIG)
    const bool spare = req.kind == kSpare && hooks.prepare_worker;
    if (n != static_cast<ssize_t>(sizeof req) || nfds != 2u + (spare ? 0u : extra_count(req.extra))) {
      for (std::size_t i = 0; i < nfds; ++i) ::close(fds[i]);
      continue;
    }
    const pid_t self = ::getpid();
    if (spare) {
      // Named so before it exists, for `ps` (`shmrepl ls` tells it by its lack of a session).
      ::prctl(PR_SET_NAME, "shmrepl-spare");
      const pid_t pid = hooks.fork_interpreter();
      if (pid == 0) {
        ::close(sock);
        ::close(sfd);
        ::close(ids_fd);  // the page is mapped already
        spare_main(fds[0], fds[1], self, factory, eo, hooks);
      }
      ::prctl(PR_SET_NAME, "shmrepl-zygote");
      ::close(fds[0]);
      ::close(fds[1]);
      continue;
    }
    std::size_t at = 2;
    const int stdin_fd = (req.extra & kHasStdin) != 0 ? fds[at++] : -1;
    int terminal_fds[2] = {-1, -1};
    if ((req.extra & kHasStdout) != 0) terminal_fds[0] = fds[at++];
    if ((req.extra & kHasStderr) != 0) terminal_fds[1] = fds[at++];
    const bool fresh = req.kind == kFresh && !hooks.fresh_worker_exe.empty();
    // A fresh worker execs at once: a plain fork will do.
    const pid_t pid = fresh ? ::fork() : hooks.fork_interpreter();
    if (pid == 0) {
      ::close(sock);
      ::close(sfd);
      const int passed[5] = {fds[0], fds[1], stdin_fd, terminal_fds[0], terminal_fds[1]};
      if (fresh) exec_fresh_worker(hooks.fresh_worker_exe, req.session_id, passed, self, ids_fd, eo);
      ::close(ids_fd);  // a warm worker has the page mapped already
      worker_main(req.session_id, fds[0], fds[1], stdin_fd, terminal_fds, self, factory, eo, false, nullptr);
    }
    // A failed fork closes the worker's ends: the supervisor sees the channel end.
    for (std::size_t i = 0; i < nfds; ++i) ::close(fds[i]);
  }
}

}  // namespace

// ---- the supervisor ----------------------------------------------------------------

std::unique_ptr<WorkerPool> WorkerPool::start(const ZygoteHooks& hooks, const EngineFactory& factory,
                                              const engine::EngineOptions& options, const Limits& limits) {
  std::unique_ptr<WorkerPool> pool(new WorkerPool(limits));
  pool->background_ring_bytes_ =
      std::bit_ceil(std::clamp<uint64_t>(options.ring_capacity, shm::kMinCapacity, shm::kMaxCapacity));
  // Ids shared with every worker: sessions here, executions in the workers. A memfd,
  // so that a fresh worker maps the same page after its exec.
  const int ids_fd = ::memfd_create("shmrepl-ids", MFD_CLOEXEC);
  if (ids_fd < 0) throw_errno("memfd_create");
  if (::ftruncate(ids_fd, 4096) != 0) throw_errno("ftruncate");
  void* page = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ids_fd, 0);
  if (page == MAP_FAILED) throw_errno("mmap");
  pool->fresh_possible_ = !hooks.fresh_worker_exe.empty();
  for (std::size_t i = 0; i < kStartupOnlyCount; ++i)
    if (const char* v = std::getenv(kStartupOnlyVariables[i]); v != nullptr && v[0] != '\0')
      pool->zygote_startup_env_[kStartupOnlyVariables[i]] = v;
  pool->counters_ = new (page) std::atomic<uint64_t>[2];
  pool->counters_[0].store(1);
  pool->counters_[1].store(1);
  engine::EngineOptions eo = options;
  eo.guardian_pid = ::getpid();
  eo.execution_ids = &pool->counters_[1];

  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) throw_errno("socketpair");
  const pid_t self = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    ::close(sv[0]);
    zygote_main(sv[1], self, hooks, factory, eo, ids_fd);
  }
  ::close(sv[1]);
  ::close(ids_fd);
  pool->zygote_fd_ = sv[0];
  pool->zygote_pid_ = pid;
  pool->wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (pool->wake_fd_ < 0) throw_errno("eventfd");
  pool->keep_spare_ = static_cast<bool>(hooks.prepare_worker);
  pool->reaper_ = std::thread([p = pool.get()] { p->reaper_loop(); });
  pool->request_spare();
  return pool;
}

WorkerPool::~WorkerPool() {
  close_all();
  ::shutdown(zygote_fd_, SHUT_RDWR);  // the zygote exits; the reaper sees the end
  if (reaper_.joinable()) reaper_.join();
  ::close(zygote_fd_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
  int status;
  while (::waitpid(zygote_pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

WorkerPool::Spawned WorkerPool::spawn(const Setup& setup) {
  // Its background ring is counted before the worker exists (it cannot be refused
  // after); the worker's own count of it takes this over (start_worker).
  std::string why;
  if (!budget_.reserve(setup.client, background_ring_bytes_, &why))
    throw engine::LimitExceeded("cannot open a session: " + why);
  struct Reserved {
    WorkerPool* pool;
    pid_t client;
    bool kept = false;
    ~Reserved() {
      if (!kept) pool->budget_.release(client, pool->background_ring_bytes_);
    }
  } reserved{this, setup.client};
  Spawned s = spawn_reserved(setup);
  reserved.kept = true;
  return s;
}

WorkerPool::Spawned WorkerPool::spawn_reserved(const Setup& setup) {
  const bool fresh = needs_fresh(setup);
  const uint64_t session_id = counters_[0].fetch_add(1);
  std::optional<Spawned> spawned;
  if (!fresh)
    if (const Spare spare = take_spare(); spare.sup_fd >= 0) {
      try {
        spawned = start_worker(session_id, setup, fresh, &spare);
      } catch (...) {
        request_spare();  // no session will close for this one
        throw;
      }
    }
  if (spawned) return *spawned;  // the next spare is forked when a session closes
  // No spare (or it had died): this session's fork first, then one for the next.
  struct Refill {
    WorkerPool* pool;
    ~Refill() { pool->request_spare(); }
  } refill{this};
  return *start_worker(session_id, setup, fresh, nullptr);
}

// A worker for the session: the spare if given, else one the zygote forks (or starts
// fresh). Empty only when a spare ended before it took the session (the caller then
// asks the zygote). Throws as spawn() does.
std::optional<WorkerPool::Spawned> WorkerPool::start_worker(uint64_t session_id, const Setup& setup, bool fresh,
                                                            const Spare* spare) {
  int client[2] = {-1, -1}, sup[2] = {-1, -1};
  if (spare != nullptr) {
    client[0] = spare->client_fd;
    sup[0] = spare->sup_fd;
  } else {
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, client) != 0) throw_errno("socketpair");
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sup) != 0) {
      const int e = errno;
      ::close(client[0]);
      ::close(client[1]);
      throw std::system_error(e, std::generic_category(), "socketpair");
    }
  }
  auto fail = [&](const std::string& what) {
    ::close(client[0]);
    ::close(sup[0]);
    throw std::runtime_error(what);
  };
  SpawnRequest req{session_id, 0, fresh ? kFresh : kForked};
  int fds[kMaxSpawnFds] = {client[1], sup[1], -1, -1, -1};
  std::size_t nfds = 2;
  for (auto [fd, bit] :
       {std::pair{setup.stdin_fd, kHasStdin}, std::pair{setup.stdout_fd, kHasStdout},
        std::pair{setup.stderr_fd, kHasStderr}})
    if (fd >= 0) {
      req.extra |= bit;
      fds[nfds++] = fd;
    }
  try {
    if (spare != nullptr) {
      send_fds(sup[0], &req, sizeof req, fds + 2, nfds - 2);
    } else {
      std::lock_guard<std::mutex> l(mu_);  // one request at a time on the zygote's socket
      send_fds(zygote_fd_, &req, sizeof req, fds, nfds);
    }
    send_setup(sup[0], setup);
  } catch (const std::exception& e) {
    if (spare != nullptr) {
      // It ended while it waited (killed, out of memory): a forked worker instead.
      ::close(client[0]);
      ::close(sup[0]);
      return std::nullopt;
    }
    ::close(client[1]);
    ::close(sup[1]);
    fail(std::string("asking the zygote for a worker: ") + e.what());
  }
  if (spare == nullptr) {
    ::close(client[1]);
    ::close(sup[1]);
  }
  // The worker says it is ready, or its end closes (it died, or the fork failed).
  pollfd p{sup[0], POLLIN, 0};
  int rc;
  do rc = ::poll(&p, 1, 30'000);
  while (rc < 0 && errno == EINTR);
  // Its rings come first (the background ring), each with its descriptor.
  std::map<std::string, int> rings;
  auto close_rings_fds = [&] {
    for (auto& [name, fd] : rings) ::close(fd);
    rings.clear();
  };
  WorkerMessage m{};
  ssize_t n = -1;
  for (;;) {
    int fd = -1;
    std::size_t nfd = 0;
    n = rc > 0 ? recv_fds(sup[0], &m, sizeof m, &fd, &nfd) : -1;
    if (n != static_cast<ssize_t>(sizeof m) || m.kind != kRingCreated) {
      if (nfd > 0) ::close(fd);
      break;
    }
    m.text[sizeof m.text - 1] = '\0';
    if (nfd == 1) rings[m.text] = fd;
    do rc = ::poll(&p, 1, 30'000);
    while (rc < 0 && errno == EINTR);
  }
  if (n == 0 && spare != nullptr && rings.empty()) {
    // The spare ended before it took the session (killed while it waited).
    ::close(client[0]);
    ::close(sup[0]);
    return std::nullopt;
  }
  if (n != static_cast<ssize_t>(sizeof m)) {
    close_rings_fds();
    fail("the session's worker process did not start");
  }
  m.text[sizeof m.text - 1] = '\0';
  if (m.kind != kReady) close_rings_fds();
  if (m.kind == kNoSuchFolder || m.kind == kNoMemory) {
    ::close(client[0]);
    ::close(sup[0]);
    if (m.kind == kNoMemory) throw std::system_error(ENOSPC, std::generic_category(), m.text);
    throw std::invalid_argument(m.text);
  }
  if (m.kind == kRefused) {
    ::close(client[0]);
    ::close(sup[0]);
    throw SessionRefused(m.text);
  }
  if (m.kind != kReady) fail(std::string("the session's worker failed to start: ") + m.text);
  auto w = std::make_shared<Worker>();
  w->pid = m.pid;
  w->session_id = session_id;
  w->sup_fd = sup[0];
  w->client = setup.client;
  w->pending = background_ring_bytes_;  // spawn() counted it
  int bg_fd = -1;
  if (auto it = rings.find(m.text); it != rings.end()) bg_fd = ::fcntl(it->second, F_DUPFD_CLOEXEC, 0);
  {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& [name, fd] : rings) add_ring(*w, name, fd);
    // What it was granted and did not use (no background ring?) is given back.
    budget_.release(w->client, std::exchange(w->pending, 0));
    sessions_[session_id] = w;
    pids_[w->pid] = w;
  }
  wake_reaper();  // its channel joins the polled ones
  return Spawned{session_id, w->pid, client[0], m.text, bg_fd};
}

// Asks the zygote for a spare, unless one is kept already. Best effort: without a
// spare, sessions get forked workers.
void WorkerPool::request_spare() {
  int client[2], sup[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, client) != 0) return;
  if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sup) != 0) {
    ::close(client[0]);
    ::close(client[1]);
    return;
  }
  bool sent = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (keep_spare_ && spare_.sup_fd < 0) {
      const SpawnRequest req{0, 0, kSpare};
      const int fds[2] = {client[1], sup[1]};
      try {
        send_fds(zygote_fd_, &req, sizeof req, fds, 2);
        spare_ = Spare{client[0], sup[0]};
        sent = true;
      } catch (const std::exception&) {
      }
    }
  }
  ::close(client[1]);
  ::close(sup[1]);
  if (!sent) {
    ::close(client[0]);
    ::close(sup[0]);
  }
}

WorkerPool::Spare WorkerPool::take_spare() {
  std::lock_guard<std::mutex> l(mu_);
  return std::exchange(spare_, Spare{});
}

// A process of the zygote's that was no session's worker ended: if it was the spare
// (its channel ended), another is forked.
void WorkerPool::drop_spare_if_dead() {
  Spare dead;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (spare_.sup_fd < 0) return;
    pollfd p{spare_.sup_fd, POLLIN, 0};
    if (::poll(&p, 1, 0) != 1 || (p.revents & (POLLHUP | POLLERR)) == 0) return;
    dead = std::exchange(spare_, Spare{});
  }
  ::close(dead.client_fd);
  ::close(dead.sup_fd);
  request_spare();
}

bool WorkerPool::needs_fresh(const Setup& setup) const {
  if (!fresh_possible_ || !setup.set_env) return false;
  // CPython takes an empty value as unset; a later entry of a name wins, as in os.environ.
  std::map<std::string, std::string> wanted;
  for (const std::string& e : setup.env) {
    const std::size_t eq = e.find('=');
    if (eq == std::string::npos || !startup_only(e.substr(0, eq))) continue;
    if (eq + 1 < e.size()) wanted[e.substr(0, eq)] = e.substr(eq + 1);
    else wanted.erase(e.substr(0, eq));
  }
  return wanted != zygote_startup_env_;
}

pid_t WorkerPool::worker_pid(uint64_t session_id) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = sessions_.find(session_id);
  return it == sessions_.end() || it->second->exited ? 0 : it->second->pid;
}

void WorkerPool::end_worker(const std::shared_ptr<Worker>& w, bool ask) {
  std::unique_lock<std::mutex> l(mu_);
  w->closing = true;
  if (ask && !w->exited) {
    const uint32_t kind = kClose;
    ssize_t ignored = ::send(w->sup_fd, &kind, sizeof kind, MSG_NOSIGNAL);
    (void)ignored;
  }
}

void WorkerPool::close(uint64_t session_id) {
  std::shared_ptr<Worker> w;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end()) return;
    w = it->second;
  }
  end_worker(w, true);
  // The next spare is forked now, when a session's client is done, rather than right
  // after a hand-over, where it would compete for the CPU with the new session's
  // first executions (measured: `shmrepl run -c pass` 4.9 ms against 2.8 ms).
  request_spare();
  std::unique_lock<std::mutex> l(mu_);
  if (!cv_.wait_for(l, std::chrono::milliseconds(kGraceMs), [&] { return w->exited; })) {
    log_line("the worker of session " + std::to_string(session_id) + " (pid " + std::to_string(w->pid) +
             ") did not end in time: killed");
    ::kill(w->pid, SIGKILL);
    cv_.wait(l, [&] { return w->exited; });
  }
  sessions_.erase(session_id);
  pids_.erase(w->pid);
  ::close(w->sup_fd);
  w->sup_fd = -1;
  // The last descriptors of its rings here: their memory goes with the last mapping,
  // and their bytes back to the client's count.
  while (!w->rings.empty()) drop_ring(*w, w->rings.begin()->first);
  budget_.release(w->client, std::exchange(w->pending, 0));
  wake_reaper();
}

void WorkerPool::wake_reaper() {
  const uint64_t one = 1;
  ssize_t ignored = ::write(wake_fd_, &one, sizeof one);
  (void)ignored;
}

void WorkerPool::drain(Worker& w) {
  if (w.sup_fd < 0) return;
  for (;;) {
    WorkerMessage m{};
    int fd = -1;
    std::size_t nfd = 0;
    const ssize_t n = recv_fds(w.sup_fd, &m, sizeof m, &fd, &nfd, MSG_DONTWAIT);
    if (n != static_cast<ssize_t>(sizeof m)) {
      if (nfd > 0) ::close(fd);
      if (n < 0 && errno == EMSGSIZE) continue;  // a cut-off descriptor: next message
      if (n == 0) w.hung_up = true;
      return;
    }
    m.text[sizeof m.text - 1] = '\0';
    if (m.kind == kRingCreated && nfd == 1) {
      add_ring(w, m.text, fd);
      continue;
    }
    if (nfd > 0) ::close(fd);
    if (m.kind == kRingGone) {
      drop_ring(w, m.text);
    } else if (m.kind == kRingReserve) {
      answer_reservation(w, m.reservation, m.bytes);
    } else if (m.kind == kRingUnreserve) {
      const uint64_t back = std::min(m.bytes, w.pending);
      w.pending -= back;
      budget_.release(w.client, back);
    } else if (m.kind == kKillingForCancel) {
      w.killing_for_cancel = true;
    } else if (m.kind == kKillingForTimeout) {
      w.killing_for_timeout = true;
    }
  }
}

void WorkerPool::add_ring(Worker& w, const std::string& name, int fd) {
  auto [it, added] = w.rings.emplace(name, fd);
  if (!added) {
    ::close(fd);
    return;
  }
  // Its data bytes: a sealed memfd's size cannot change.
  struct stat st {};
  const uint64_t size = ::fstat(fd, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  const uint64_t bytes = size > shm::kDataOffset ? size - shm::kDataOffset : 0;
  const uint64_t granted = std::min(bytes, w.pending);
  w.pending -= granted;
  budget_.charge(w.client, bytes - granted);  // more than it asked for: counted all the same
  w.ring_bytes[name] = bytes;
}

void WorkerPool::drop_ring(Worker& w, std::string name) {
  if (auto it = w.ring_bytes.find(name); it != w.ring_bytes.end()) {
    budget_.release(w.client, it->second);
    w.ring_bytes.erase(it);
  }
  if (auto it = w.rings.find(name); it != w.rings.end()) {
    ::close(it->second);
    w.rings.erase(it);
  }
}

void WorkerPool::answer_reservation(Worker& w, uint64_t reservation, uint64_t bytes) {
  ReserveReply r{};
  r.kind = kReserveReply;
  r.reservation = reservation;
  r.bytes = bytes;
  std::string why;
  if (budget_.reserve(w.client, bytes, &why)) r.granted = 1;
  if (r.granted == 0) std::strncpy(r.why, why.c_str(), sizeof r.why - 1);
  // Never blocks under mu_: the worker reads its channel while it waits for this.
  if (::send(w.sup_fd, &r, sizeof r, MSG_NOSIGNAL | MSG_DONTWAIT) == static_cast<ssize_t>(sizeof r)) {
    if (r.granted != 0) w.pending += bytes;
  } else if (r.granted != 0) {
    budget_.release(w.client, bytes);
  }
}

int WorkerPool::open_ring(const std::string& name) {
  // shmrepl.<uid>.<worker pid>.<id>.<random>: the pid says whose channel to read
  // first (the worker sent the ring before anyone could learn its name).
  pid_t pid = 0;
  if (const std::size_t a = name.find('.', name.find('.') + 1); a != std::string::npos)
    pid = static_cast<pid_t>(std::strtol(name.c_str() + a + 1, nullptr, 10));
  std::lock_guard<std::mutex> l(mu_);
  // A background ring keeps the name it was created with. An execution's ring is
  // reset for the session's next executions (ring reuse) and takes each one's name,
  // with the same random part, without a word to us: the ring created with that random
  // part is the one, if its header says it now serves the execution the name gives
  // (an earlier execution's name is gone).
  auto find = [&](Worker& w) -> int {
    if (auto it = w.rings.find(name); it != w.rings.end() && name.find(".bg") != std::string::npos)
      return ::fcntl(it->second, F_DUPFD_CLOEXEC, 0);
    const std::size_t last = name.rfind('.');
    const std::size_t id_at = last != std::string::npos ? name.rfind('.', last - 1) : std::string::npos;
    if (id_at == std::string::npos) return -1;
    char* end = nullptr;
    const uint64_t id = std::strtoull(name.c_str() + id_at + 1, &end, 10);
    if (end != name.c_str() + last || id == 0) return -1;
    const std::string_view random = std::string_view(name).substr(last);
    for (const auto& [created_as, fd] : w.rings) {
      if (!created_as.ends_with(random)) continue;
      uint64_t serves = 0;
      if (::pread(fd, &serves, sizeof serves, offsetof(shm::RingHeader, execution_id)) != sizeof serves ||
          serves != id)
        return -1;
      return ::fcntl(fd, F_DUPFD_CLOEXEC, 0);
    }
    return -1;
  };
  if (auto it = pids_.find(pid); it != pids_.end()) {
    drain(*it->second);
    return find(*it->second);
  }
  return -1;
}

void WorkerPool::close_all() {
  std::vector<uint64_t> ids;
  std::vector<std::shared_ptr<Worker>> all;
  Spare spare;
  {
    std::lock_guard<std::mutex> l(mu_);
    keep_spare_ = false;
    spare = std::exchange(spare_, Spare{});
    for (auto& [id, w] : sessions_) {
      ids.push_back(id);
      all.push_back(w);
    }
  }
  // The spare ends when its channel does.
  if (spare.sup_fd >= 0) {
    ::close(spare.client_fd);
    ::close(spare.sup_fd);
  }
  for (auto& w : all) end_worker(w, true);  // all at once: one grace period in all
  for (uint64_t id : ids) close(id);
}

void WorkerPool::reaper_loop() {
  // The zygote's exit notices, and every worker's channel (its rings come and go
  // there), so a worker never waits long for room on its channel.
  std::vector<pollfd> polled;
  std::vector<std::shared_ptr<Worker>> polled_workers;
  for (;;) {
    polled.assign({{zygote_fd_, POLLIN, 0}, {wake_fd_, POLLIN, 0}});
    polled_workers.clear();
    {
      std::lock_guard<std::mutex> l(mu_);
      for (auto& [pid, w] : pids_)
        if (w->sup_fd >= 0 && !w->exited && !w->hung_up) {
          polled.push_back({w->sup_fd, POLLIN, 0});
          polled_workers.push_back(w);
        }
    }
    if (::poll(polled.data(), polled.size(), -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (polled[1].revents != 0) {
      uint64_t count;
      ssize_t ignored = ::read(wake_fd_, &count, sizeof count);
      (void)ignored;
    }
    for (std::size_t i = 2; i < polled.size(); ++i)
      if (polled[i].revents != 0) {
        std::lock_guard<std::mutex> l(mu_);
        Worker& w = *polled_workers[i - 2];
        // A closed session's descriptor may be another's now: only its own.
        if (w.sup_fd == polled[i].fd) drain(w);
      }
    if (polled[0].revents == 0) continue;
    ExitNotice n{};
    ssize_t got;
    do got = ::recv(zygote_fd_, &n, sizeof n, MSG_DONTWAIT);
    while (got < 0 && errno == EINTR);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) continue;
    if (got <= 0) break;
    if (got == static_cast<ssize_t>(sizeof n)) on_exit(n.pid, n.status);
  }
  // The zygote is gone: its workers died with it (PDEATHSIG); no more spawns.
  std::lock_guard<std::mutex> l(mu_);
  for (auto& [pid, w] : pids_) w->exited = true;
  cv_.notify_all();
}

void WorkerPool::on_exit(pid_t pid, int status) {
  std::shared_ptr<Worker> w;
  bool cancelled = false;
  bool timed_out = false;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = pids_.find(pid);
    if (it != pids_.end()) {
      w = it->second;
      cancelled = w->closing;
    }
  }
  std::map<std::string, int> rings;
  if (w != nullptr) {
    // A kill it asked for after a cancel's grace period is a cancel too.
    std::lock_guard<std::mutex> l(mu_);
    drain(*w);
    cancelled = cancelled || w->killing_for_cancel;
    timed_out = w->killing_for_timeout;
    // Granted rings it never created; those it did count until the session closes.
    budget_.release(w->client, std::exchange(w->pending, 0));
    // Its descriptors stay open until the session closes (close() needs `exited`,
    // set below): late readers still get these rings, ended.
    rings = w->rings;
  }
  const int32_t code = WIFEXITED(status) ? WEXITSTATUS(status) : 0;
  const int32_t sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  // Logged before the rings end: whoever reads a ring's end finds the reason here.
  if (w != nullptr && !cancelled && !timed_out)
    log_line("the worker of session " + std::to_string(w->session_id) + " (pid " + std::to_string(pid) +
             ") died: " + (sig != 0 ? "signal " + std::to_string(sig) : "exit " + std::to_string(code)));
  close_rings(pid, rings,
              timed_out   ? SHMREPL_FINISH_TIMEOUT
              : cancelled ? SHMREPL_FINISH_CANCELLED
                          : SHMREPL_FINISH_ABORTED,
              code, sig);
  {
    std::lock_guard<std::mutex> l(mu_);
    if (w != nullptr) w->exited = true;
    cv_.notify_all();
  }
  if (w == nullptr) drop_spare_if_dead();
}

// From `python3 -h` (3.11): what acts only while CPython starts. PYTHONPATH,
// PYTHONIOENCODING, the locale and VIRTUAL_ENV a warm worker takes itself.
const char* const kStartupOnlyVariables[] = {
    "PYTHONHASHSEED",      "PYTHONWARNINGS",          "PYTHONDEVMODE",       "PYTHONUTF8",
    "PYTHONSAFEPATH",      "PYTHONINTMAXSTRDIGITS",   "PYTHONMALLOC",        "PYTHONMALLOCSTATS",
    "PYTHONFAULTHANDLER",  "PYTHONTRACEMALLOC",       "PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX",
    "PYTHONOPTIMIZE",      "PYTHONDEBUG",             "PYTHONVERBOSE",       "PYTHONNOUSERSITE",
    "PYTHONUSERBASE",      "PYTHONHOME",              "PYTHONPLATLIBDIR",    "PYTHONCOERCECLOCALE",
    "PYTHONWARNDEFAULTENCODING", "PYTHONNODEBUGRANGES", "PYTHONPROFILEIMPORTTIME"};
const std::size_t kStartupOnlyCount = sizeof kStartupOnlyVariables / sizeof kStartupOnlyVariables[0];

void fresh_worker_main(int argc, char** argv, const EngineFactory& factory, const ZygoteHooks& hooks) {
  if (argc != 12) _exit(2);
  auto num = [&](int i) { return std::strtoll(argv[i], nullptr, 10); };
  const uint64_t session_id = static_cast<uint64_t>(num(2));
  const int client_fd = static_cast<int>(num(3)), sup_fd = static_cast<int>(num(4));
  const int stdin_fd = static_cast<int>(num(5));
  const int terminal_fds[2] = {static_cast<int>(num(6)), static_cast<int>(num(7))};
  const pid_t zygote = static_cast<pid_t>(num(8));
  const int ids_fd = static_cast<int>(num(9));
  for (int fd : {client_fd, sup_fd, stdin_fd, terminal_fds[0], terminal_fds[1], ids_fd})
    if (fd >= 0) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  void* page = ::mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, ids_fd, 0);
  if (page == MAP_FAILED) _exit(1);
  ::close(ids_fd);
  engine::EngineOptions eo;
  eo.guardian_pid = static_cast<pid_t>(num(10));
  eo.ring_capacity = static_cast<uint64_t>(num(11));
  eo.execution_ids = &static_cast<std::atomic<uint64_t>*>(page)[1];
  worker_main(session_id, client_fd, sup_fd, stdin_fd, terminal_fds, zygote, factory, eo, true, &hooks);
}

void close_rings(pid_t pid, const std::map<std::string, int>& rings, uint32_t status, int32_t exit_code,
                 int32_t signal) {
  for (const auto& [name, fd] : rings) {
    try {
      std::unique_ptr<shm::Producer> p = shm::Producer::take_over(fd, name);
      if (p->finished() || p->producer_pid() != static_cast<uint32_t>(pid)) continue;
      // The next seq follows the last record the worker published.
      // An empty ring (a background ring nobody wrote to) starts at seq 0.
      std::span<const std::byte> last = p->last_payload();
      uint64_t seq = 0;
      if (p->write_pos() != 0) {
        flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(last.data()), last.size());
        if (last.empty() || !fb::VerifyRecordBuffer(v)) {
          log_line("ring " + name + " of dead worker " + std::to_string(pid) +
                   ": no last record; ended without FINISHED");
          p->finish();
          continue;
        }
        seq = fb::GetRecord(last.data())->seq() + 1;
      }
      std::vector<std::byte> rec;
      records::encode_finished(rec, {p->execution_id(), seq, shm::realtime_ns()},
                               static_cast<shmrepl_finish_status_t>(status), exit_code, 0, signal);
      // The closing reserve holds it, unless a reader holds the whole ring: then wait
      // for it, a bounded time (a reader that never reads gets E_PRODUCER_DIED).
      std::span<std::byte> room = p->try_reserve(rec.size(), true);
      for (int i = 0; room.data() == nullptr && i < 20; ++i) {
        p->wait_for_space(rec.size(), std::chrono::milliseconds(100), true);
        room = p->try_reserve(rec.size(), true);
      }
      if (room.data() == nullptr) {
        log_line("ring " + name + " of dead worker " + std::to_string(pid) + ": no room; ended without FINISHED");
        p->finish();
        continue;
      }
      std::memcpy(room.data(), rec.data(), rec.size());
      p->commit(rec.size());
      p->finish();
    } catch (const std::exception& e) {
      // Readers must not wait for a FINISHED record that will never come.
      const bool ended = shm::Producer::force_finish(fd);
      log_line("closing ring " + name + " of dead worker " + std::to_string(pid) + ": " + e.what() +
               (ended ? "; ended without FINISHED" : ""));
    }
  }
}

}  // namespace shmrepl::server
