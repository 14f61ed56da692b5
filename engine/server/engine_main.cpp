// What shmrepl-engine does, given a way to start the engine core.
#include <dirent.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <algorithm>
#include <exception>
#include <string>
#include <vector>

#include "control.hpp"
#include "engine_main.hpp"
#include "log.hpp"
#include "options.hpp"
#include "server.hpp"
#include "shmrepl/engine/engine.hpp"
#include "shmrepl/shm/layout.hpp"
#include "shmrepl/shm/sys.hpp"

namespace {

using shmrepl::server::log_line;

std::atomic<shmrepl::server::Server*> g_server{nullptr};

// One line per fatal signal, formatted before anything can crash: the handler may
// only call async-signal-safe functions (no malloc, no stdio).
constexpr int kFatalSignals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
constexpr std::size_t kFatalCount = sizeof kFatalSignals / sizeof kFatalSignals[0];
char g_fatal_msg[kFatalCount][160];
std::size_t g_fatal_len[kFatalCount];

extern "C" void on_fatal_signal(int sig) {
  for (std::size_t i = 0; i < kFatalCount; ++i) {
    if (kFatalSignals[i] != sig) continue;
    ssize_t ignored = write(shmrepl::server::log_fd(), g_fatal_msg[i], g_fatal_len[i]);
    (void)ignored;
  }
  // SA_RESETHAND restored the default action: die by the same signal (readers of the
  // running executions see SHMREPL_E_PRODUCER_DIED, clients SHMREPL_E_ENGINE_DIED).
  raise(sig);
}

extern "C" void on_stop_signal(int) {
  shmrepl::server::Server* s = g_server.load();
  if (s != nullptr) s->request_stop();
}

int run(const shmrepl::server::Options& opt, const shmrepl::server::EngineFactory& factory,
        const shmrepl::server::ZygoteHooks* hooks) {
  bool is_default = false;
  const std::string path =
      shmrepl::control::socket_path(opt.socket.empty() ? nullptr : opt.socket.c_str(), &is_default);
  if (is_default) {
    std::string err;
    if (shmrepl::control::ensure_private_dir(shmrepl::control::parent_dir(path), &err) != SHMREPL_OK) {
      log_line("refusing to serve: " + err);
      return 1;
    }
  }

  // One engine per socket. The lock is held for the engine's life; a second engine
  // (two clients auto-starting at once) finds it taken and leaves quietly.
  const std::string lock_path = path + ".lock";
  int lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0) {
    log_line("cannot open " + lock_path + ": " + std::strerror(errno));
    return 1;
  }
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      log_line("another engine already serves " + path + "; exiting");
      return 0;
    }
    log_line("cannot lock " + lock_path + ": " + std::strerror(errno));
    return 1;
  }

  const int stale = shmrepl::server::remove_stale_rings(geteuid());
  if (stale > 0) log_line("removed " + std::to_string(stale) + " rings of dead engines");

  shmrepl::engine::EngineOptions eo;
  if (opt.ring_capacity != 0) eo.ring_capacity = opt.ring_capacity;
  // The zygote is forked first, while this process has one thread.
  std::unique_ptr<shmrepl::server::WorkerPool> pool;
  std::unique_ptr<shmrepl::engine::Engine> engine;
  if (hooks != nullptr) pool = shmrepl::server::WorkerPool::start(*hooks, factory, eo, opt.limits);
  else engine = factory(eo);

  std::unique_ptr<shmrepl::server::Server> owned_server =
      pool != nullptr ? std::make_unique<shmrepl::server::Server>(*pool, opt.limits)
                      : std::make_unique<shmrepl::server::Server>(*engine, opt.limits);
  shmrepl::server::Server& server = *owned_server;
  server.listen(path);
  g_server = &server;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaction(sig, &sa, nullptr);
  log_line("listening on " + path);

  server.run();

  log_line("stopping: cancelling executions");
  // The engine first: cancelling everything lets requests that wait on it finish;
  // then the connections (their sessions are closed) and the socket.
  if (pool != nullptr) pool->close_all();
  if (engine != nullptr) engine->shutdown();
  server.close();
  g_server = nullptr;
  engine.reset();  // unlinks what rings remain
  pool.reset();    // ends the zygote
  log_line("stopped");
  close(lock_fd);
  return 0;
}

}  // namespace

namespace shmrepl::server {

// The ring's guardian (a supervisor that closes a dead producer's ring) still runs:
// the ring is not stale yet, however dead its producer.
bool guardian_alive(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return false;
  unsigned char page[sizeof(shmrepl::shm::RingHeader)];
  const bool got = pread(fd, page, sizeof page, 0) == static_cast<ssize_t>(sizeof page);
  close(fd);
  uint64_t magic = 0, start = 0;
  uint32_t version = 0, pid = 0;
  std::memcpy(&magic, page + offsetof(shmrepl::shm::RingHeader, magic), sizeof magic);
  std::memcpy(&version, page + offsetof(shmrepl::shm::RingHeader, layout_version), sizeof version);
  std::memcpy(&start, page + offsetof(shmrepl::shm::RingHeader, guardian_start_time), sizeof start);
  std::memcpy(&pid, page + offsetof(shmrepl::shm::RingHeader, guardian_pid), sizeof pid);
  // A start time of 0 is forged (see Reader::producer_alive): no guardian keeps that ring.
  if (!got || magic != shmrepl::shm::kMagic || version != shmrepl::shm::kLayoutVersion || pid == 0 || start == 0)
    return false;
  return shmrepl::shm::process_alive(static_cast<pid_t>(pid), start);
}

int remove_stale_rings(uid_t uid, const std::string& dir) {
  const std::string prefix = "shmrepl." + std::to_string(uid) + ".";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return 0;
  int removed = 0;
  const pid_t self = getpid();
  while (dirent* e = readdir(d)) {
    const std::string name = e->d_name;
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    // shmrepl.<uid>.<pid>.<rest>: the pid is all digits and followed by a dot.
    std::size_t i = prefix.size(), j = i;
    while (j < name.size() && name[j] >= '0' && name[j] <= '9') ++j;
    if (j == i || j - i > 9 || j >= name.size() || name[j] != '.') continue;
    const pid_t pid = static_cast<pid_t>(std::stol(name.substr(i, j - i)));
    if (pid <= 0 || pid == self) continue;
    // EPERM means alive (another user's process with a reused pid): keep it. A
    // zombie is dead (nobody reaped it yet).
    if (kill(pid, 0) != 0 && errno != ESRCH) continue;
    if (shmrepl::shm::process_alive(pid, 0)) continue;
    struct stat st {};
    const std::string path = dir + "/" + name;
    if (lstat(path.c_str(), &st) != 0 || st.st_uid != uid || !S_ISREG(st.st_mode)) continue;
    // A dead worker's ring that its live supervisor is about to close is not ours.
    if (guardian_alive(path)) continue;
    const int rc = dir == "/dev/shm" ? shm_unlink(("/" + name).c_str()) : unlink(path.c_str());
    if (rc == 0) ++removed;
  }
  closedir(d);
  return removed;
}

void install_fatal_signal_handlers() noexcept {
  const char* names[kFatalCount] = {"SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGABRT"};
  for (std::size_t i = 0; i < kFatalCount; ++i) {
    const int n = std::snprintf(g_fatal_msg[i], sizeof g_fatal_msg[i],
                                "shmrepl-engine[%d]: fatal signal %s in the engine (likely the code "
                                "of an execution); every execution ends with it\n",
                                static_cast<int>(getpid()), names[i]);
    g_fatal_len[i] = n > 0 ? std::min(static_cast<std::size_t>(n), sizeof g_fatal_msg[i] - 1) : 0;
    struct sigaction sa {};
    sa.sa_handler = on_fatal_signal;
    sa.sa_flags = SA_RESETHAND | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(kFatalSignals[i], &sa, nullptr);
  }
}

int engine_main(int argc, char** argv, const EngineFactory& factory, const ZygoteHooks* hooks) {
  shmrepl::server::log_init();
  if (hooks != nullptr && argc > 1 && std::strcmp(argv[1], kFreshWorkerFlag) == 0)
    fresh_worker_main(argc, argv, factory, *hooks);
  shmrepl::server::install_fatal_signal_handlers();
  shmrepl::server::Options opt;
  std::string err;
  if (!shmrepl::server::parse_limits_env(&opt, &err) ||
      !shmrepl::server::parse_options(std::vector<std::string>(argv + 1, argv + argc), &opt, &err)) {
    std::fprintf(stderr, "shmrepl-engine: %s\n%s", err.c_str(), shmrepl::server::kUsage);
    return 2;
  }
  if (opt.help) {
    std::fputs(shmrepl::server::kUsage, stdout);
    return 0;
  }
  if (opt.version) {
    std::printf("shmrepl-engine %s\n", SHMREPL_ENGINE_VERSION);
    return 0;
  }
  if (opt.ring_capacity != 0 &&
      (opt.ring_capacity < shmrepl::shm::kMinCapacity || opt.ring_capacity > shmrepl::shm::kMaxCapacity)) {
    std::fprintf(stderr, "shmrepl-engine: --ring-capacity must be within [%llu, %llu]\n",
                 static_cast<unsigned long long>(shmrepl::shm::kMinCapacity),
                 static_cast<unsigned long long>(shmrepl::shm::kMaxCapacity));
    return 2;
  }
  try {
    return run(opt, factory, hooks);
  } catch (const std::exception& e) {
    log_line(std::string("fatal: ") + e.what());
    return 1;
  }
}

}  // namespace shmrepl::server
