// One worker process per session (docs/architecture.md, "Processes").
//
// The supervisor (shmrepl-engine's first process) forks a zygote before it starts
// any thread. The zygote initialises CPython once, stays single-threaded, and forks
// one worker per session on request. A worker runs its session's executions on its
// main thread and is the only producer of its rings; the client talks to it over a
// socket pair that the supervisor hands over (SCM_RIGHTS). The zygote reaps workers
// and reports each exit to the supervisor, which then closes every ring the dead
// worker left open (it is the rings' guardian) with a Finished record. The
// supervisor also counts every ring's bytes against the ring-byte limits: a worker
// asks it before it creates a ring (docs/engine.md, "Limits").
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "limits.hpp"
#include "shmrepl/engine/engine.hpp"

namespace shmrepl::server {

using EngineFactory =
    std::function<std::unique_ptr<engine::Engine>(const engine::EngineOptions& options)>;

// What the zygote needs of the engine core (kept out of this Python-free library).
struct ZygoteHooks {
  std::function<void()> preinitialize;      // in the zygote, before any fork
  std::function<pid_t()> fork_interpreter;  // fork() as CPython's os.fork does
  // An executable that runs fresh_worker_main() when given kFreshWorkerFlag first
  // (shmrepl-engine itself); empty: every worker is forked warm.
  std::string fresh_worker_exe;
  // In a warm spare (a worker forked ahead, before its session is known): the
  // engine core's session-independent start-up. Empty: no spare is kept.
  std::function<void()> prepare_worker;
};

// Variables CPython reads only while it starts (`python3 -h`), that a warm worker
// forked from the zygote cannot take: a session whose environment gives one of them
// another value than the zygote's (set or unset) gets a fresh worker, a newly
// initialised interpreter (docs/architecture.md, "Fresh workers").
extern const char* const kStartupOnlyVariables[];
extern const std::size_t kStartupOnlyCount;

// argv[1] of a fresh worker: shmrepl-engine --fresh-worker SESSION CLIENT_FD SUP_FD
// STDIN_FD ZYGOTE_PID IDS_FD GUARDIAN_PID RING_CAPACITY (internal, not for users).
inline constexpr const char* kFreshWorkerFlag = "--fresh-worker";

// The fresh worker's main (in the process the zygote's child exec'd). Does not return.
[[noreturn]] void fresh_worker_main(int argc, char** argv, const EngineFactory& factory, const ZygoteHooks& hooks);

// How long a worker may take to end after a close, a shutdown or a cancel before
// it is killed (SIGKILL). Documented in docs/engine.md.
inline constexpr int kGraceMs = 3000;

// The session's environment cannot be served (a virtual environment of another
// Python): the client gets SHMREPL_E_INVALID with this message.
class SessionRefused : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class WorkerPool {
 public:
  // Forks the zygote. Call before any thread of this process exists.
  // Throws std::system_error.
  // `limits`: its ring-byte limits (max_ring_bytes, max_client_ring_bytes).
  static std::unique_ptr<WorkerPool> start(const ZygoteHooks& hooks, const EngineFactory& factory,
                                           const engine::EngineOptions& options, const Limits& limits = {});
  ~WorkerPool();  // closes every worker (killing what lingers) and ends the zygote
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  struct Spawned {
    uint64_t session_id = 0;
    pid_t pid = 0;
    int client_fd = -1;  // the client's end of the connection to the worker (owned)
    std::string background_ring;
    int background_ring_fd = -1;  // its descriptor (owned), -1 if none
  };
  // Where the session's worker runs.
  struct Setup {
    std::string working_dir;           // empty: the engine's
    bool set_env = false;
    std::vector<std::string> env;      // the whole environment, "NAME=value"
    int stdin_fd = -1;                 // the session's stdin (not owned)
    // The caller's stdout/stderr: only asked isatty() and the terminal size (not owned).
    int stdout_fd = -1;
    int stderr_fd = -1;
    pid_t client = 0;  // the client process whose ring bytes its rings count as
  };
  // Whether a session with this environment needs a fresh worker (see above).
  bool needs_fresh(const Setup& setup) const;
  // A new session in a new worker. Throws std::invalid_argument (a working folder
  // that does not exist), engine::LimitExceeded (its background ring would pass a
  // ring-byte limit), std::runtime_error, std::system_error.
  Spawned spawn(const Setup& setup);
  // Asks the session's worker to end; kills it after kGraceMs. Its rings are closed
  // (Cancelled if it had to be killed) and unlinked. Unknown sessions are ignored.
  void close(uint64_t session_id);
  void close_all();
  // The worker's pid, 0 if the session is unknown or its worker is gone.
  pid_t worker_pid(uint64_t session_id);
  // A new descriptor (close-on-exec, the caller's) of the live ring `name` of one of
  // the workers, or -1 if no worker holds such a ring (late readers: OpenRing).
  int open_ring(const std::string& name);
  // Ring bytes counted now: `client`'s, and in all.
  uint64_t ring_bytes_used(pid_t client) { return budget_.used_by(client); }
  uint64_t ring_bytes_used() { return budget_.used(); }

 private:
  explicit WorkerPool(const Limits& limits) : budget_(limits) {}
  struct Worker {
    pid_t pid = 0;
    uint64_t session_id = 0;
    int sup_fd = -1;
    bool exited = false;
    bool closing = false;  // we asked it to end: a kill after that is a cancel
    bool killing_for_cancel = false;   // it said so before killing itself
    bool killing_for_timeout = false;
    bool hung_up = false;  // its channel ended (it died): polled no more
    // Its live rings (sealed memfds it sent us), by name: kept until it says it is
    // done with one, or until the session closes (after its death: taken over).
    std::map<std::string, int> rings;
    // Ring bytes, counted in budget_ as `client`'s: granted to it for a ring not yet
    // created, and each of `rings`' data bytes.
    pid_t client = 0;
    uint64_t pending = 0;
    std::map<std::string, uint64_t> ring_bytes;
  };
  // A warm spare: forked ahead by the zygote, prepared, waiting on its supervisor
  // channel for a session (docs/architecture.md, "Zygote").
  struct Spare {
    int client_fd = -1;  // the client's end of its connection
    int sup_fd = -1;     // its supervisor channel; -1: no spare
  };
  Spawned spawn_reserved(const Setup& setup);
  std::optional<Spawned> start_worker(uint64_t session_id, const Setup& setup, bool fresh, const Spare* spare);
  void request_spare();
  Spare take_spare();
  void drop_spare_if_dead();
  void reaper_loop();
  void on_exit(pid_t pid, int status);
  void end_worker(const std::shared_ptr<Worker>& w, bool ask);
  // [mu_ held] Takes what the worker sent on its supervisor channel so far.
  void drain(Worker& w);
  // [mu_ held] Keeps a ring it created (`fd` owned) and counts its bytes, out of
  // what it was granted first.
  void add_ring(Worker& w, const std::string& name, int fd);
  // [mu_ held] Closes a ring it is done with and gives back its bytes.
  void drop_ring(Worker& w, std::string name);  // a copy: it may be a key it erases
  // [mu_ held] Answers a kRingReserve.
  void answer_reservation(Worker& w, uint64_t reservation, uint64_t bytes);
  void wake_reaper();

  int zygote_fd_ = -1;
  pid_t zygote_pid_ = 0;
  std::atomic<uint64_t>* counters_ = nullptr;  // [0]: next session id, [1]: next execution id
  bool fresh_possible_ = false;
  bool keep_spare_ = false;  // [mu_] false once close_all() began
  std::map<std::string, std::string> zygote_startup_env_;  // its kStartupOnlyVariables set, by name
  RingBudget budget_;
  uint64_t background_ring_bytes_ = 0;  // each session's background ring
  std::mutex mu_;
  std::condition_variable cv_;  // a worker exited
  std::map<uint64_t, std::shared_ptr<Worker>> sessions_;  // [mu_]
  std::map<pid_t, std::shared_ptr<Worker>> pids_;         // [mu_]
  int wake_fd_ = -1;  // an eventfd: the set of workers changed (the reaper polls their channels)
  Spare spare_;                                           // [mu_]
  std::thread reaper_;
};

// Closes every ring of `rings` (name -> descriptor) whose producer `pid` left it
// open, with a Finished record of `status` (the guardian's job after its producer
// died). The descriptors stay open.
void close_rings(pid_t pid, const std::map<std::string, int>& rings, uint32_t status, int32_t exit_code,
                 int32_t signal);

}  // namespace shmrepl::server
