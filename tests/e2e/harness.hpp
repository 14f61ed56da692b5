// Helpers of the end-to-end tests: temp folders, child processes with captured
// output, engines on private sockets, a client over the public C ABI, and
// streaming digests so 100 MB outputs are compared without being kept.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "control.hpp"
#include "shmrepl/shmrepl.h"

namespace shmrepl::test {

// Paths of the build's programs (compile definitions).
inline const char* engine_binary() { return SHMREPL_TEST_ENGINE; }
inline const char* fake_engine_binary() { return SHMREPL_TEST_FAKE_ENGINE; }
inline const char* cli_binary() { return SHMREPL_TEST_CLI; }
inline const char* silent_engine_binary() { return SHMREPL_TEST_SILENT_ENGINE; }
inline std::string workload(const std::string& name) {
  return std::string(SHMREPL_TEST_WORKLOADS) + "/" + name;
}
inline constexpr const char* kPython = "/usr/bin/python3";

// SHMREPL_TEST_SCALE (default 1): below 1 under sanitizers, where the largest
// workloads are left out.
double test_scale();
// True in an ASan or TSan build (their shadow memory makes RSS meaningless).
constexpr bool kSanitized =
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
    true;
#else
    false;
#endif
#else
    false;
#endif

struct TempDir {
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string path;
  std::string file(const std::string& name) const { return path + "/" + name; }
};

void write_file(const std::string& path, const std::string& text);
std::string read_file(const std::string& path);

// A running digest of a byte stream, and the first bytes for readable failures.
struct Digest {
  uint64_t hash = 1469598103934665603ull;  // FNV-1a 64
  uint64_t size = 0;
  std::string head;                        // up to kHead bytes
  static constexpr std::size_t kHead = 1 << 20;
  void add(const void* data, std::size_t len);
  bool operator==(const Digest& o) const { return hash == o.hash && size == o.size; }
};
std::string describe(const Digest& d);  // for assertion messages

// Environment changes for a child: a value sets the variable, nullopt unsets it.
using EnvChanges = std::map<std::string, std::optional<std::string>>;

struct ProcessResult {
  int exit_code = -1;   // the exit status, or 128 + signal
  bool timed_out = false;
  Digest out, err;      // err is empty when stderr was merged into out
  bool keep_text = false;
  std::string out_text, err_text;  // whole streams when keep_text
};

// Runs argv with stdin from /dev/null, stdout and stderr on pipes (or one pipe
// when merge), until it exits or `timeout` (then SIGKILL).
ProcessResult run_process(const std::vector<std::string>& argv, const EnvChanges& env,
                          bool merge_stderr = false, bool keep_text = false,
                          std::chrono::seconds timeout = std::chrono::seconds(300));

// Starts a child (stdin /dev/null, stdout/stderr appended to log) and returns its pid.
pid_t spawn(const std::vector<std::string>& argv, const EnvChanges& env, const std::string& log);
// Waits for the child up to `timeout`; returns the exit code (128+sig), -1 on timeout.
int wait_exit(pid_t pid, std::chrono::milliseconds timeout);
// True once `pid` has exited (gone, or a zombie).
bool process_gone(pid_t pid);
// True while ring `name` exists: its name in /dev/shm, or (a sealed memfd) a
// descriptor of it in another process (the engine's).
bool ring_exists(const std::string& name);
// Removes ring `name` (a test that killed its engine cleans up after it).
void unlink_ring(const std::string& name);
// The live children of this process (e.g. engines re-parented to it as subreaper).
std::vector<pid_t> children();
// VmHWM (peak resident set) of a process, in bytes; 0 if unreadable.
uint64_t peak_rss(pid_t pid);

// An engine of this build (or the fake one) on its own socket, stopped at the end.
// It must exit 0 (stop(), a Shutdown request) unless killed with kill9(): a
// sanitizer report in the engine fails the test that way.
class EngineProcess {
 public:
  EngineProcess(const std::string& binary, const std::string& socket,
                const std::vector<std::string>& extra_args = {});
  ~EngineProcess();
  EngineProcess(const EngineProcess&) = delete;
  EngineProcess& operator=(const EngineProcess&) = delete;
  pid_t pid() const { return pid_; }
  const std::string& socket() const { return socket_; }
  const std::string& log() const { return log_; }
  void kill9();
  // SIGTERM and wait; returns the exit code.
  int stop();
  // Waits for the engine to exit by itself; its exit code, or -1 on timeout.
  int wait(std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  std::string socket_, log_;
};

// Connects without starting an engine; throws std::runtime_error on failure.
shmrepl_client_t* connect_to(const std::string& socket);

// One record, copied out of the ring.
struct Rec {
  uint32_t kind, stream, flags, finish_status;
  uint64_t execution_id, seq;
  int64_t exit_code;
  std::string data;
};

// What a reader collected of one execution, checked as it went.
struct Collected {
  shmrepl_status_t end = SHMREPL_OK;  // E_EOF after a clean end
  uint64_t execution_id = 0;
  uint64_t records = 0;
  bool seq_gap_free = true;          // seq 0, 1, 2... without a hole
  bool ids_match = true;             // every record carries execution_id
  int finished = 0;                  // FINISHED records seen
  bool record_after_finished = false;
  uint32_t finish_status = 0;
  int64_t exit_code = 0;
  Digest out, err, both;             // both: every OUTPUT in record order
  std::vector<Rec> kept;             // non-OUTPUT records, and OUTPUT ones if keep_output
  std::string first_problem;
};

// Reads `reader` to its end (E_EOF), or until the status is not OK, or until
// `timeout`. `on_record` (optional) sees every record as it arrives.
Collected collect(shmrepl_reader_t* reader, uint64_t execution_id, bool keep_output = false,
                  std::chrono::seconds timeout = std::chrono::seconds(300),
                  const std::function<void(const shmrepl_record_t&)>& on_record = {});

// A session of a client, and executions in it.
struct Session {
  explicit Session(shmrepl_client_t* client);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  // Executes; throws std::runtime_error if the engine refuses.
  shmrepl_execution_t* execute(const std::string& code, bool script = true,
                               const std::string& filename = {},
                               const std::vector<std::string>& argv = {},
                               uint64_t ring_capacity = 0);
  shmrepl_client_t* client;
  uint64_t id = 0;
};

// Executes code and reads everything it writes.
Collected execute_and_collect(Session& s, const std::string& code, bool script = true,
                              const std::string& filename = {},
                              const std::vector<std::string>& argv = {}, bool keep_output = false);

std::string status_text(shmrepl_status_t st);  // "E_... (last error)"

// A client connected to `socket` (connect_to), closed with the object.
struct Client {
  explicit Client(const std::string& socket) : c(connect_to(socket)) {}
  ~Client() { shmrepl_client_close(c); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  shmrepl_client_t* c;
};

// Entries of a folder (e.g. /proc/<pid>/fd); 0 if it cannot be read.
std::size_t count_dir(const std::string& path);
// A "Key:   N kB" field of /proc/<pid>/status (VmRSS, VmSize...); 0 if absent.
uint64_t status_kib(pid_t pid, const std::string& key);

// A raw connection, for sending what a well-behaved client never would.
struct Raw {
  explicit Raw(const std::string& path);
  ~Raw();
  Raw(const Raw&) = delete;
  Raw& operator=(const Raw&) = delete;
  bool send_bytes(const void* p, std::size_t n);
  bool send(const control::Frame& f) { return send_bytes(f.data(), f.size()); }
  // The reply's status: its Error code, OK for any other reply, or E_EOF when the
  // engine closed the connection instead (waits at most 10 s).
  shmrepl_status_t reply(uint64_t* request_id = nullptr);
  // True if the engine has closed the connection (reads EOF).
  bool closed_by_peer();
  int fd = -1;
  std::vector<uint8_t> body;
  const control::ctl::Message* last = nullptr;
};

}  // namespace shmrepl::test
