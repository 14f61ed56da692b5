#include "log.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <string>

namespace shmrepl::server {

namespace {
int g_log_fd = 2;
}

void log_init() noexcept {
  int fd = fcntl(2, F_DUPFD_CLOEXEC, 3);
  if (fd >= 0) g_log_fd = fd;
}

int log_fd() noexcept { return g_log_fd; }

void log_line(std::string_view line) noexcept {
  try {
    std::string s = "shmrepl-engine[" + std::to_string(getpid()) + "]: ";
    s.append(line);
    s.push_back('\n');
    ssize_t ignored = write(g_log_fd, s.data(), s.size());
    (void)ignored;  // nowhere left to report a failing log
  } catch (...) {
  }
}

void ThrottledLog::note(std::string_view what, std::string_view detail) noexcept {
  ++count_;
  const auto now = std::chrono::steady_clock::now();
  if (ever_ && now - last_ < std::chrono::seconds(10)) return;
  try {
    log_line(std::string(what) + std::string(detail) +
             (count_ > 1 ? " (" + std::to_string(count_) + " times since the last report)" : ""));
  } catch (...) {
    log_line(what);  // no memory for the rest
  }
  count_ = 0;
  last_ = now;
  ever_ = true;
}

}  // namespace shmrepl::server
