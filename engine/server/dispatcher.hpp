// The engine's side of the control protocol for one connection, without the
// socket: verifies each request, checks it against the connection's state (Hello
// first; only its own sessions and executions), calls the engine core and builds
// the reply. What the connection owns is cleaned up when it ends.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <span>

#include "control.hpp"
#include "limits.hpp"
#include "shmrepl/engine/engine.hpp"

namespace shmrepl::server {

struct Reply {
  control::Frame frame;       // always one reply frame
  bool close = false;         // close the connection after sending it
  bool stop_engine = false;   // a Shutdown request: stop after sending it
  int pass_fd = -1;           // a descriptor sent with the frame, then closed (owned)
  int pass_fd2 = -1;          // a second one, after it (owned)
  uint64_t held_execution = 0;  // a worker's Execute: call engine.go(id) once the reply is out
  int64_t timeout_ns = 0;       // ... and stop it after this long (0: never)
};

class WorkerPool;

class Dispatcher {
 public:
  // Sessions run in `engine`, in this process.
  Dispatcher(engine::Engine& engine, uint32_t engine_pid) : engine_(&engine), engine_pid_(engine_pid) {}
  // The supervisor: each session gets a worker process from `pool`; the client
  // sends its executions there.
  Dispatcher(WorkerPool& pool, uint32_t engine_pid) : pool_(&pool), engine_pid_(engine_pid) {}
  // A worker's connection to its client: Hello was said to the supervisor; the one
  // session is `session_id`.
  Dispatcher(engine::Engine& engine, uint32_t engine_pid, uint64_t session_id)
      : engine_(&engine), engine_pid_(engine_pid), hello_(true), worker_(true) {
    sessions_.insert(session_id);
  }
  ~Dispatcher() { cleanup(); }
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // One message body (8-byte aligned storage) in, one reply out. Never throws.
  // `received_fds`: the descriptors that came with the message, in order, -1 for
  // none (control::kMaxPassedFds of them; owned; closed here).
  Reply handle(std::span<const uint8_t> body, const int* received_fds) noexcept;
  Reply handle(std::span<const uint8_t> body, int received_fd = -1) noexcept {
    const int fds[control::kMaxPassedFds] = {received_fd, -1, -1};
    return handle(body, fds);
  }
  // The connection ended: close its sessions (which releases their executions).
  void cleanup() noexcept;

  // Sessions opened here count against `quota` as `client`'s (not owned; may be null).
  void set_quota(Quota* quota, pid_t client) noexcept {
    quota_ = quota;
    client_ = client;
  }
  bool said_hello() const noexcept { return hello_; }

  std::size_t sessions() const noexcept { return sessions_.size(); }
  std::size_t executions() const noexcept { return executions_.size(); }
  bool has_execution(uint64_t id) const { return executions_.count(id) != 0; }

 private:
  Reply dispatch(uint64_t request_id, const control::ctl::Message& m, const int* received_fds);

  engine::Engine* engine_ = nullptr;
  WorkerPool* pool_ = nullptr;
  uint32_t engine_pid_;
  bool hello_ = false;
  bool worker_ = false;
  Quota* quota_ = nullptr;
  pid_t client_ = 0;
  std::set<uint64_t> sessions_;
  std::map<uint64_t, uint64_t> executions_;  // execution id -> session id
};

}  // namespace shmrepl::server
