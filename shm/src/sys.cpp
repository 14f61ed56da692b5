#include "shmrepl/shm/sys.hpp"

#include <linux/futex.h>
#include <linux/membarrier.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>

namespace shmrepl::shm {

void futex_wait(std::atomic<uint32_t>* word, uint32_t expected, int64_t timeout_ns) noexcept {
  timespec ts{};
  timespec* tsp = nullptr;
  if (timeout_ns >= 0) {
    ts.tv_sec = static_cast<time_t>(timeout_ns / 1'000'000'000);
    ts.tv_nsec = static_cast<long>(timeout_ns % 1'000'000'000);
    tsp = &ts;
  }
  // A relative timeout; EINTR/EAGAIN/ETIMEDOUT all mean "look again".
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT, expected, tsp, nullptr, 0);
}

void futex_wake(std::atomic<uint32_t>* word, int count) noexcept {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, count, nullptr, nullptr, 0);
}

bool register_fenced_publisher(pid_t self) noexcept {
  // Registration belongs to the process (its mm): a forked child registers again.
  static std::atomic<pid_t> registered{0};
  if (registered.load(std::memory_order_relaxed) == self) return true;
  if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED, 0, 0) != 0) return false;
  registered.store(self, std::memory_order_relaxed);
  return true;
}

bool fence_publishers() noexcept {
  return syscall(SYS_membarrier, MEMBARRIER_CMD_GLOBAL_EXPEDITED, 0, 0) == 0;
}

static uint64_t clock_ns(clockid_t id) noexcept {
  timespec ts{};
  clock_gettime(id, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t realtime_ns() noexcept { return clock_ns(CLOCK_REALTIME); }
uint64_t monotonic_ns() noexcept { return clock_ns(CLOCK_MONOTONIC); }

namespace {
struct ProcStat {
  uint64_t start_time = 0;
  char state = '?';
};

// Reads /proc/<pid>/stat; false if there is no such process.
bool read_proc_stat(pid_t pid, ProcStat* out) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  FILE* f = std::fopen(path, "re");
  if (f == nullptr) return false;
  char buf[1024];
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  // The command name (field 2) may hold spaces and ')': fields restart after the last ')'.
  const char* p = std::strrchr(buf, ')');
  if (p == nullptr || p[1] != ' ') return false;
  out->state = p[2];
  int field = 2;
  for (++p; *p != '\0'; ++p) {
    if (*p == ' ' && ++field == 22) {
      out->start_time = std::strtoull(p + 1, nullptr, 10);
      return true;
    }
  }
  return false;
}
}  // namespace

uint64_t process_start_time(pid_t pid) noexcept {
  ProcStat st;
  return read_proc_stat(pid, &st) ? st.start_time : 0;
}

uint64_t own_start_time() noexcept {
  static std::mutex mu;
  static pid_t pid = 0;
  static uint64_t start = 0;
  const pid_t self = ::getpid();
  std::lock_guard<std::mutex> l(mu);
  if (pid != self || start == 0) {  // a forked child reads its own
    start = process_start_time(self);
    pid = self;
  }
  return start;
}

bool process_alive(pid_t pid, uint64_t start_time) noexcept {
  if (pid <= 0) return false;
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  ProcStat st;
  if (!read_proc_stat(pid, &st)) return false;
  // A zombie has exited: it writes and reads nothing more.
  if (st.state == 'Z' || st.state == 'X') return false;
  return start_time == 0 || st.start_time == start_time;
}

}  // namespace shmrepl::shm
