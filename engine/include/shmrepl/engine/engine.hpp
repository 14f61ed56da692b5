// The engine core: an embedded CPython that runs executions for sessions and
// writes everything they output into one ring per execution. Knows nothing of
// sockets or clients; the control plane (engine/server) drives it.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace shmrepl::engine {

struct EngineOptions {
  uint64_t ring_capacity = 1 << 20;  // data bytes of each execution's ring
  bool capture_fds = true;           // capture raw writes to fd 1 and 2 through pipes
};

struct ExecuteRequest {
  uint64_t session_id = 0;
  std::string code;
  std::string client_execution_id;  // optional, echoed in the Started record
  // Shown in tracebacks; when it names a file, linecache shows its lines (as python3 FILE).
  std::string filename = "<shmrepl>";
  std::vector<std::string> argv;    // sys.argv during the execution, if not empty
  // true: run as a program (python3 FILE): no Result record for a trailing expression.
  bool script = false;
  uint64_t ring_capacity = 0;       // 0 = EngineOptions::ring_capacity
};

struct Accepted {
  uint64_t execution_id;
  std::string ring_name;  // for shmrepl_reader_open()
};

class Engine {
 public:
  // Initializes CPython (once per process) and, if asked, fd capture.
  // Throws std::runtime_error on failure.
  static std::unique_ptr<Engine> start(const EngineOptions& options);
  virtual ~Engine() = default;

  // All calls below are thread-safe. They throw std::invalid_argument for an
  // unknown session/execution and std::runtime_error for other failures.
  virtual uint64_t open_session() = 0;
  // Cancels what runs or waits in the session, then drops its namespace.
  virtual void close_session(uint64_t session_id) = 0;
  // Queues an execution (a session runs one at a time, FIFO). Its ring exists and
  // holds the Started record when this returns.
  virtual Accepted execute(const ExecuteRequest& request) = 0;
  // Raises KeyboardInterrupt in the execution (also when it waits on a full ring
  // or sleeps); a queued one finishes cancelled without running. False if unknown
  // or already finished.
  virtual bool cancel(uint64_t execution_id) = 0;
  // Blocks until the execution's Finished record is written (for tests/tools).
  virtual void wait(uint64_t execution_id) = 0;
  // The client is done with the execution's ring: its name is unlinked once the
  // execution has finished (mapped readers keep working). close_session releases
  // all of the session's executions.
  virtual void release(uint64_t execution_id) = 0;
  // Cancels everything and stops the executor threads.
  virtual void shutdown() = 0;

  // The session's background ring: output that threads started by one of its
  // executions write after that execution finished. It is created with the
  // session and lives until close_session; its records carry the execution_id of
  // the execution that started the writing thread, and seq counts per ring (from
  // 0). The ring header's execution id is 0. close_session writes one Finished
  // record (execution_id 0) and unlinks it. See docs/engine.md.
  // Throws std::invalid_argument for an unknown session.
  virtual std::string session_background_ring(uint64_t session_id) {
    (void)session_id;
    return {};
  }
};

}  // namespace shmrepl::engine
