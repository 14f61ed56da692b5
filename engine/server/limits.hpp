// What one client (a peer process) and all clients together may hold in the
// supervisor, and the time a connection may take to say Hello or to finish a message.
// Documented in docs/engine.md ("Limits") and `shmrepl-engine --help`.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace shmrepl::server {

struct Limits {
  uint32_t max_connections = 1024;        // control connections in all
  uint32_t max_client_connections = 128;  // ... of one client process (its peer pid)
  uint32_t max_sessions = 512;            // sessions (worker processes) in all
  uint32_t max_client_sessions = 128;     // ... opened by one client process
  // Capacity of every ring that exists (background rings, executions' rings not yet
  // released, the released ring a worker keeps for reuse) of one client process's
  // sessions, and of all sessions. One ring of the largest size (4 GiB) and then some
  // fit a client; four clients at their limit fit in all.
  uint64_t max_client_ring_bytes = 8ull << 30;
  uint64_t max_ring_bytes = 32ull << 30;
  // A connection that has not said Hello this long after it was accepted, or whose
  // message (or our reply to it) is unfinished this long, is closed.
  int64_t hello_timeout_ms = 5000;
  uint32_t control_threads = 8;  // the pool that runs requests that wait
};

// Counts connections and sessions per client and in all; shared by every
// connection. Thread-safe.
class Quota {
 public:
  explicit Quota(const Limits& limits) : limits_(limits) {}
  // False with *why set when a limit is reached (nothing is counted then).
  bool add_connection(pid_t client, std::string* why);
  void remove_connection(pid_t client) noexcept;
  bool add_session(pid_t client, std::string* why);
  void remove_session(pid_t client) noexcept;
  const Limits& limits() const noexcept { return limits_; }

 private:
  struct Use {
    uint32_t connections = 0;
    uint32_t sessions = 0;
  };
  void forget_if_unused(pid_t client);
  const Limits limits_;
  std::mutex mu_;
  std::map<pid_t, Use> clients_;  // [mu_]
  uint32_t connections_ = 0;      // [mu_]
  uint32_t sessions_ = 0;         // [mu_]
};

// Ring bytes per client and in all (Limits::max_client_ring_bytes, max_ring_bytes).
// Thread-safe.
class RingBudget {
 public:
  explicit RingBudget(const Limits& limits)
      : client_limit_(limits.max_client_ring_bytes), limit_(limits.max_ring_bytes) {}
  // Counts `bytes` for `client` if both limits allow; else false with *why set (the
  // option, the limit, what is in use and what was asked), nothing counted.
  bool reserve(pid_t client, uint64_t bytes, std::string* why);
  // Counts `bytes` whatever the limits: memory that exists already.
  void charge(pid_t client, uint64_t bytes) noexcept;
  // Gives back what reserve() or charge() counted (never below zero).
  void release(pid_t client, uint64_t bytes) noexcept;
  uint64_t used() noexcept;
  uint64_t used_by(pid_t client) noexcept;

 private:
  const uint64_t client_limit_;
  const uint64_t limit_;
  std::mutex mu_;
  std::map<pid_t, uint64_t> clients_;  // [mu_] never 0
  uint64_t used_ = 0;                  // [mu_]
};

}  // namespace shmrepl::server
