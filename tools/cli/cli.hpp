// The `shmrepl` command line: its subcommands and what they share.
#pragma once

#include <signal.h>

#include <functional>
#include <string>
#include <vector>

#include "shmrepl/shmrepl.h"

namespace shmrepl::cli {

struct Global {
  std::string socket;  // --socket; empty: the library's default
};

int cmd_run(const Global& g, const std::vector<std::string>& args);
int cmd_repl(const Global& g, const std::vector<std::string>& args);
int cmd_tail(const Global& g, const std::vector<std::string>& args);
int cmd_dump(const Global& g, const std::vector<std::string>& args);
int cmd_gc(const Global& g, const std::vector<std::string>& args);
int cmd_engine(const Global& g, const std::vector<std::string>& args);
int cmd_shutdown(const Global& g, const std::vector<std::string>& args);
int cmd_ls(const Global& g, const std::vector<std::string>& args);

// ---- the engine's processes and rings (engine.cpp, ls.cpp) ----

struct Proc {
  int pid = 0;
  int ppid = 0;
  char state = '?';       // /proc/<pid>/stat field 3 (R, S, D, Z, T...)
  uint64_t start_time = 0;  // field 22
  uint64_t rss_kb = 0;    // VmRSS
  std::string comm;
};

// The socket the library will use: --socket, $SHMREPL_SOCKET, or the default.
std::string socket_path_of(const Global& g);
// "123 KiB" / "45.6 MiB".
std::string rss_text(uint64_t kb);
// /proc/<pid>/stat and VmRSS; false if the process is not there.
bool read_proc(int pid, Proc* p);

// The engine at the socket, as seen from outside.
struct EngineView {
  bool running = false;
  bool other_abi = false;  // it refused our Hello: another ABI version
  int pid = 0;             // the supervisor
  std::string exe;         // /proc/<pid>/exe ("... (deleted)" after an upgrade)
  std::vector<Proc> zygotes;  // children of the supervisor
  std::vector<Proc> workers;  // children of the zygote(s): one per session
  std::string error;       // why it could not be reached, when !running
};

// Asks the socket's engine for its pid (a client without autostart) and walks /proc.
// Returns false (with a message printed) only for errors other than "nothing listens".
bool probe_engine(const Global& g, EngineView* out);
// The version line: the C ABI does not give the engine's version string, so the
// library's is shown and said to be so.
std::string version_note();

// A ring in /dev/shm, read from its header (mapped read-only).
struct RingView {
  std::string name;
  int worker_pid = 0;
  bool background = false;  // a session's background ring (name ...<pid>.bg<id>.*)
  bool readable = false;    // header valid (else `problem` says why)
  std::string problem;
  uint64_t execution_id = 0, capacity = 0, write_pos = 0, tail = 0, fill = 0;
  bool finished = false, producer_alive = false;
  int producer_pid = 0;
  std::vector<std::pair<int, uint64_t>> readers;  // pid, read position
};
// Our rings in /dev/shm whose worker pid is one of `pids` (all of ours if empty),
// sorted by name.
std::vector<RingView> list_rings(const std::vector<int>& pids);
// The memfds `pid` holds: {name, /proc/<pid>/fd/<n>}. False if its descriptors
// cannot be read.
bool held_memfds(int pid, std::vector<std::pair<std::string, std::string>>* out);
// A ring name of ours, shmrepl.<uid>.<pid>.<execution id | bg<session id>>.<random>:
// the worker pid and where the part after it begins; 0 if it is none.
std::size_t parse_ring_name(const std::string& name, int* worker_pid);

// ---- what `run` and `repl` share (caller.cpp) ----

struct ConnectArgs {
  std::string socket;  // empty: the library's default
  bool autostart = true;
};
enum class Taken { kTaken, kNotOurs, kBad };
// Takes --socket PATH, --socket=PATH or --no-autostart at args[*i] (*i moves past a
// value). kBad after printing "shmrepl CMD: ..." (exit code 2).
Taken take_connect_arg(const char* cmd, const std::vector<std::string>& args, size_t* i, ConnectArgs* out);
// shmrepl_client_connect with these.
shmrepl_status_t connect_engine(const ConnectArgs& a, shmrepl_client_t** out);

// Session options that give a program the caller's folder, environment, stdin and
// terminal, as python3 started here would have them.
struct CallerSession {
  CallerSession();
  CallerSession(const CallerSession&) = delete;
  CallerSession& operator=(const CallerSession&) = delete;
  std::string cwd;  // empty if unknown (the engine's folder then)
  std::vector<const char*> env;
  shmrepl_session_options_t options{};
};

// Signals that reach the program as they would reach python3: SIGINT cancels the
// execution (KeyboardInterrupt); these are sent on to the program's worker process,
// where they kill it (the ring's FINISHED then carries the signal) or run the
// program's handler.
inline constexpr int kForwardedSignals[] = {SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};

// The signal relay: a thread of its own takes SIGINT and kForwardedSignals (blocked in
// every other thread: call this before any other thread starts) and gives them to the
// running execution as python3 would get them. Those that come while no execution
// runs, or that have no worker process to go to, are handed to `idle` (on the relay's
// thread, or in relay_idle()); those that come while one starts wait for it.
void start_signal_relay(void (*idle)(int sig));
// An execution is being requested: signals wait for relay_running or relay_idle.
void relay_starting();
// `exec` runs: SIGINT cancels it, the others go to its worker.
void relay_running(shmrepl_client_t* client, shmrepl_execution_t* exec);
// None runs (it ended, or never started): signals that waited go to `idle`.
void relay_idle();
// Dies of `sig` by its default action (the calling thread takes it), as a program
// that never caught it; exits 128 + sig if that action does not kill.
[[noreturn]] void die_of(int sig);

// Prints "shmrepl: <what>: <status text> (<last error>)" to stderr.
void report(const std::string& what, shmrepl_status_t status);
// Writes all of [data, data+len) to fd (loops over short writes). False on error.
bool write_all(int fd, const void* data, size_t len);

// Writes the OUTPUT records of a batch to fd 1 / fd 2, gathering runs of the same
// stream into one writev. Returns false if a write failed.
bool write_outputs(const shmrepl_record_t* records, size_t n);
// Reads `ring` (a sealed one from the engine at g's socket; `options` may be null) to
// its end, or without `follow` to what it holds now, handing each batch to `batch`
// before releasing it; `batch` returns false to stop (a failure it reported). Returns
// 0, or 1 after a failure.
int read_ring(const Global& g, const std::string& ring, const shmrepl_reader_options_t* options, bool follow,
              const std::function<bool(const shmrepl_record_t*, size_t)>& batch);
// STARTED, OUTPUT, ... FINISHED; UNKNOWN for a kind this library does not know.
const char* kind_name(uint32_t kind);
// The exit status python3 would have for a FINISHED record.
int exit_code_of(const shmrepl_record_t& finished);

}  // namespace shmrepl::cli
