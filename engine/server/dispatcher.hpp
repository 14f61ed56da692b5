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
#include "shmrepl/engine/engine.hpp"

namespace shmrepl::server {

struct Reply {
  control::Frame frame;       // always one reply frame
  bool close = false;         // close the connection after sending it
  bool stop_engine = false;   // a Shutdown request: stop after sending it
};

class Dispatcher {
 public:
  Dispatcher(engine::Engine& engine, uint32_t engine_pid) : engine_(engine), engine_pid_(engine_pid) {}
  ~Dispatcher() { cleanup(); }
  Dispatcher(const Dispatcher&) = delete;
  Dispatcher& operator=(const Dispatcher&) = delete;

  // One message body (8-byte aligned storage) in, one reply out. Never throws.
  Reply handle(std::span<const uint8_t> body) noexcept;
  // The connection ended: close its sessions (which releases their executions).
  void cleanup() noexcept;

  std::size_t sessions() const noexcept { return sessions_.size(); }
  std::size_t executions() const noexcept { return executions_.size(); }

 private:
  Reply dispatch(uint64_t request_id, const control::ctl::Message& m);

  engine::Engine& engine_;
  uint32_t engine_pid_;
  bool hello_ = false;
  std::set<uint64_t> sessions_;
  std::map<uint64_t, uint64_t> executions_;  // execution id -> session id
};

}  // namespace shmrepl::server
