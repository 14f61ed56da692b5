// The engine core: an embedded CPython that runs executions for sessions and
// writes everything they output into one ring per execution. Knows nothing of
// sockets or clients; the control plane (engine/server) drives it.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace shmrepl::engine {

struct EngineOptions {
  uint64_t ring_capacity = 1 << 20;  // data bytes of each execution's ring
  bool capture_fds = true;           // capture raw writes to fd 1 and 2 through pipes
  // Worker mode (one process per session, see docs/architecture.md): the session's
  // namespace is the __main__ module, user code runs on the thread that calls
  // run_session() (the process's main thread, SIGINT unblocked only while user code
  // runs; cancel is a SIGINT to it), and a child that user code forks never writes a
  // ring: its Python output goes to fds 1/2, and it exits where it would return to us.
  bool worker = false;
  // Recorded in every ring: the process that closes a ring whose producer died.
  pid_t guardian_pid = 0;
  // Execution ids: a counter shared by all workers of one engine (a shared
  // mapping); nullptr = a counter of this process.
  std::atomic<uint64_t>* execution_ids = nullptr;
  // Worker mode: the session's whole environment (os.environ), if set.
  bool set_environment = false;
  std::vector<std::string> environment;  // "NAME=value"
  // Worker mode, for a session without a stdin of its own: input() and
  // getpass.getpass() on an execution's thread ask the client (an InputRequest record,
  // answered by send_input) instead of reading stdin.
  bool input_requests = false;
  // Worker mode: the caller's stdout and stderr (-1: none). Only asked whether they are
  // terminals and their size, for sys.stdout.isatty(), os.get_terminal_size() and
  // the like; never written.
  int terminal_fds[2] = {-1, -1};
  // Worker mode: the environment is the session's own (set_environment, or a fresh
  // worker's), so an activated virtual environment in it (VIRTUAL_ENV) applies.
  // Engine::start throws std::invalid_argument for one not based on this Python.
  bool virtual_env = false;
  // Worker mode: CPython started with `environment` already (a fresh worker), so
  // sys.path holds PYTHONPATH's entries; set_environment still makes os.environ exactly
  // `environment` (CPython's start-up may add LC_CTYPE to it).
  bool started_with_environment = false;
  // Worker mode: what CPython wrote to stderr while it started (a fresh worker: an
  // invalid PYTHONWARNINGS entry...), written first to the first program's stderr.
  std::string startup_stderr;
  // Descriptors a forked child of user code closes at once (the worker's sockets),
  // so the peers see them close when the worker dies. -1 = none.
  int child_closes[2] = {-1, -1};
  // Rings are sealed memfds (docs/architecture.md, "The ring"), reached through their
  // descriptors, not names in /dev/shm. Each new one is told to ring_created (its
  // descriptor is borrowed for the call), and ring_gone is told when an execution's
  // ring was released and finished (the engine holds it no more).
  bool sealed_rings = false;
  std::function<void(const std::string& name, int fd)> ring_created;
  std::function<void(const std::string& name)> ring_gone;
  // Asked before an execution gets a new ring (not one reused, not a background ring)
  // of `capacity` data bytes (as the ring will have them: a power of two); may throw
  // (LimitExceeded: over a limit), and execute() then throws that. What ring_created
  // then tells of takes the reservation; if no ring comes of it, ring_unreserve gets
  // it back.
  std::function<void(uint64_t capacity)> ring_reserve;
  std::function<void(uint64_t capacity)> ring_unreserve;
};

// A request over a limit of the engine's owner (e.g. ring bytes, from ring_reserve).
class LimitExceeded : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Worker mode, before any thread exists: initialises CPython in this process (the
// zygote), so that forked workers start warm. Throws std::runtime_error.
void preinitialize();
// Worker mode, in a process forked from the zygote before its session is known (a
// warm spare): what Engine::start does for every worker whatever its session (the
// signal handlers, the at-fork handler, fd capture with its thread), done ahead; the
// next Engine::start (worker mode) does only the session's part. Throws
// std::runtime_error.
void prepare_worker();
// Forks this single-threaded, initialised process as CPython's os.fork() does.
// Returns as fork() does.
pid_t fork_interpreter();

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
  // Worker mode: heap bytes the worker may grow by while it runs (RLIMIT_DATA); 0 = no
  // limit. A MemoryError then finishes it MemoryLimit.
  uint64_t memory_limit = 0;
  // Held until go(id): a worker replies to its client before the code may run (and,
  // say, crash the process before the reply is out).
  bool held = false;
};

struct Accepted {
  uint64_t execution_id;
  std::string ring_name;  // for shmrepl_reader_open()
  // A sealed ring's descriptor (-1: a named ring), borrowed: valid until release().
  int ring_fd = -1;
  // The ring of the session's previous execution, reset for this one (a new name),
  // and the one its client was given last: it has the descriptor already.
  bool reused = false;
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
  // Worker mode: the session with a given id, whose executions run on the thread
  // that calls run_session(id); returns when the session is closed.
  virtual void open_session_as(uint64_t session_id) {
    (void)session_id;
    throw std::runtime_error("sessions with a given id are not supported");
  }
  virtual void run_session(uint64_t session_id) { (void)session_id; }
  // Lets a held execution run.
  virtual void go(uint64_t execution_id) { (void)execution_id; }
  // Its time is up: it finishes Timeout, after a cancel (KeyboardInterrupt).
  virtual void time_out(uint64_t execution_id) { (void)execution_id; }
  // True once the execution wrote its Finished record (or is unknown). Never waits
  // for the GIL.
  virtual bool finished(uint64_t execution_id) {
    (void)execution_id;
    return true;
  }
  // Cancels what runs or waits in the session, then drops its namespace.
  virtual void close_session(uint64_t session_id) = 0;
  // Queues an execution (a session runs one at a time, FIFO). Its ring exists and
  // holds the Started record when this returns.
  virtual Accepted execute(const ExecuteRequest& request) = 0;
  // Raises KeyboardInterrupt in the execution (also when it waits on a full ring
  // or sleeps); a queued one finishes cancelled without running. False if unknown
  // or already finished.
  virtual bool cancel(uint64_t execution_id) = 0;
  // The answer to the execution's pending InputRequest: what its input() returns.
  // False if it is not waiting for one (never asked, answered, finished). Never
  // waits for the GIL. Throws std::invalid_argument for an unknown execution.
  virtual bool send_input(uint64_t execution_id, const std::string& text) {
    (void)execution_id;
    (void)text;
    return false;
  }
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
  // Its descriptor when rings are sealed (borrowed, valid until close_session), else -1.
  virtual int session_background_ring_fd(uint64_t session_id) {
    (void)session_id;
    return -1;
  }
};

}  // namespace shmrepl::engine
