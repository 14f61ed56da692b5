// The engine's own log lines. The engine core redirects fd 1 and 2 into pipes to
// capture what executions write there, so the log goes to a copy of fd 2 taken
// before the core starts.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

namespace shmrepl::server {

// Duplicates fd 2 as the log (call before Engine::start).
void log_init() noexcept;
// Writes "shmrepl-engine[pid]: <line>\n" in one write(2).
void log_line(std::string_view line) noexcept;
// The log's descriptor (for the fatal-signal handler, which may only write(2)).
int log_fd() noexcept;

// Logs a kind of event at most once per interval (10 s), with how often it happened
// since the last line: a client or a full system that repeats a failure cannot flood
// the log.
class ThrottledLog {
 public:
  void note(std::string_view what, std::string_view detail = {}) noexcept;

 private:
  uint64_t count_ = 0;
  std::chrono::steady_clock::time_point last_{};
  bool ever_ = false;
};

}  // namespace shmrepl::server
