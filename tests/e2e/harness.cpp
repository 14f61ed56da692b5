#include "harness.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace shmrepl::test {

double test_scale() {
  const char* s = std::getenv("SHMREPL_TEST_SCALE");
  if (s == nullptr || *s == '\0') return 1.0;
  const double v = std::strtod(s, nullptr);
  return v > 0 ? v : 1.0;
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/shmrepl-e2e-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  path = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

void write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f) throw std::runtime_error("cannot write " + path);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void Digest::add(const void* data, std::size_t len) {
  const auto* p = static_cast<const unsigned char*>(data);
  uint64_t h = hash;
  for (std::size_t i = 0; i < len; ++i) {
    h ^= p[i];
    h *= 1099511628211ull;
  }
  hash = h;
  size += len;
  if (head.size() < kHead) head.append(reinterpret_cast<const char*>(p), std::min(len, kHead - head.size()));
}

std::string describe(const Digest& d) {
  std::string h = d.head.substr(0, 300);
  return std::to_string(d.size) + " bytes, hash " + std::to_string(d.hash) + ", starting \"" + h + "\"";
}

namespace {

std::vector<std::string> make_env(const EnvChanges& changes) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string kv = *e;
    std::string key = kv.substr(0, kv.find('='));
    if (changes.count(key) == 0) env.push_back(kv);
  }
  for (const auto& [k, v] : changes)
    if (v) env.push_back(k + "=" + *v);
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (std::string& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

pid_t spawn_with(const std::vector<std::string>& argv_in, const EnvChanges& changes,
                 posix_spawn_file_actions_t* fa) {
  std::vector<std::string> argv = argv_in;
  std::vector<std::string> env = make_env(changes);
  auto cargv = c_strings(argv);
  auto cenv = c_strings(env);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, cargv[0], fa, nullptr, cargv.data(), cenv.data());
  if (rc != 0) throw std::runtime_error("posix_spawn " + argv[0] + ": " + std::strerror(rc));
  return pid;
}

}  // namespace

ProcessResult run_process(const std::vector<std::string>& argv, const EnvChanges& env,
                          bool merge_stderr, bool keep_text, std::chrono::seconds timeout) {
  int out[2], err[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  if (!merge_stderr && pipe2(err, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, merge_stderr ? out[1] : err[1], 2);
  pid_t pid = spawn_with(argv, env, &fa);
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  if (!merge_stderr) close(err[1]);

  ProcessResult r;
  r.keep_text = keep_text;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<char> buf(1 << 16);
  int fds[2] = {out[0], merge_stderr ? -1 : err[0]};
  while (fds[0] >= 0 || fds[1] >= 0) {
    pollfd p[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    deadline - std::chrono::steady_clock::now()).count());
    if (left <= 0) {
      r.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    if (poll(p, 2, left) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i] < 0 || p[i].revents == 0) continue;
      ssize_t n = read(fds[i], buf.data(), buf.size());
      if (n <= 0) {
        if (n < 0 && errno == EINTR) continue;
        close(fds[i]);
        fds[i] = -1;
        continue;
      }
      (i == 0 ? r.out : r.err).add(buf.data(), static_cast<std::size_t>(n));
      if (keep_text) (i == 0 ? r.out_text : r.err_text).append(buf.data(), static_cast<std::size_t>(n));
    }
  }
  for (int fd : fds)
    if (fd >= 0) close(fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return r;
}

pid_t spawn(const std::vector<std::string>& argv, const EnvChanges& env, const std::string& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = spawn_with(argv, env, &fa);
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

int wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (r < 0 && errno != EINTR) return -1;
    if (std::chrono::steady_clock::now() >= deadline) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

bool process_gone(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, WNOHANG) == pid) return true;
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(f, stat)) return true;
  auto close_paren = stat.rfind(')');
  return close_paren != std::string::npos && close_paren + 2 < stat.size() && stat[close_paren + 2] == 'Z';
}

bool ring_exists(const std::string& name) {
  std::error_code ec;
  if (std::filesystem::exists("/dev/shm/" + name, ec)) return true;
  // A sealed ring (memfd) lives while a descriptor of it does: one held by another
  // process (the engine's worker or supervisor; ours are the client's own).
  const std::string target = "/memfd:" + name + " (deleted)";
  const std::string self = std::to_string(getpid());
  for (const auto& proc : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string pid = proc.path().filename();
    if (pid == self || pid.find_first_not_of("0123456789") != std::string::npos) continue;
    std::error_code e2;
    for (const auto& fd : std::filesystem::directory_iterator(proc.path() / "fd", e2)) {
      std::error_code e3;
      if (std::filesystem::read_symlink(fd.path(), e3).string() == target) return true;
    }
  }
  return false;
}

void unlink_ring(const std::string& name) { shm_unlink(("/" + name).c_str()); }

std::vector<pid_t> children() {
  std::vector<pid_t> out;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream f(task.path() / "children");
    pid_t p;
    while (f >> p)
      if (!process_gone(p)) out.push_back(p);
  }
  return out;
}

uint64_t peak_rss(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

EngineProcess::EngineProcess(const std::string& binary, const std::string& socket,
                             const std::vector<std::string>& extra_args)
    : socket_(socket), log_(socket + ".log") {
  std::vector<std::string> argv = {binary, "--socket", socket};
  argv.insert(argv.end(), extra_args.begin(), extra_args.end());
  // The engine's own Python: buffering as python3 has it by default.
  pid_ = spawn(argv, {{"PYTHONUNBUFFERED", std::nullopt}}, log_);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    shmrepl_client_options_t o{};
    o.struct_size = sizeof o;
    o.autostart = SHMREPL_AUTOSTART_OFF;
    o.socket_path = socket_.c_str();
    shmrepl_client_t* c = nullptr;
    if (shmrepl_client_connect(&o, &c) == SHMREPL_OK) {
      shmrepl_client_close(c);
      return;
    }
    if (process_gone(pid_) || std::chrono::steady_clock::now() > deadline) {
      kill(pid_, SIGKILL);
      wait_exit(pid_, std::chrono::seconds(5));
      throw std::runtime_error("engine " + binary + " did not come up; log:\n" + read_file(log_));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

EngineProcess::~EngineProcess() {
  if (pid_ <= 0) return;
  const int code = stop();
  EXPECT_EQ(code, 0) << "the engine did not stop cleanly; its log:\n" << read_file(log_);
}

int EngineProcess::wait(std::chrono::milliseconds timeout) {
  const int code = wait_exit(pid_, timeout);
  if (code >= 0) {
    pid_ = -1;
    EXPECT_EQ(code, 0) << "the engine did not stop cleanly; its log:\n" << read_file(log_);
  }
  return code;
}

void EngineProcess::kill9() {
  kill(pid_, SIGKILL);
  wait_exit(pid_, std::chrono::seconds(10));
  pid_ = -1;
}

int EngineProcess::stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int code = wait_exit(pid_, std::chrono::seconds(20));
  if (code < 0) {
    kill(pid_, SIGKILL);
    code = wait_exit(pid_, std::chrono::seconds(10));
  }
  pid_ = -1;
  return code;
}

shmrepl_client_t* connect_to(const std::string& socket) {
  shmrepl_client_options_t o{};
  o.struct_size = sizeof o;
  o.autostart = SHMREPL_AUTOSTART_OFF;
  o.socket_path = socket.c_str();
  shmrepl_client_t* c = nullptr;
  shmrepl_status_t st = shmrepl_client_connect(&o, &c);
  if (st != SHMREPL_OK) throw std::runtime_error("connect " + socket + ": " + status_text(st));
  return c;
}

std::string status_text(shmrepl_status_t st) {
  return std::string(shmrepl_status_str(st)) + " [" + std::to_string(st) + "] (" + shmrepl_last_error() + ")";
}

Raw::Raw(const std::string& path) {
  fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    throw std::runtime_error("connect " + path + ": " + std::strerror(errno));
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
}

Raw::~Raw() { close(fd); }

bool Raw::send_bytes(const void* p, std::size_t n) {
  std::string err;
  return control::write_all(fd, p, n, &err) == SHMREPL_OK;
}

shmrepl_status_t Raw::reply(uint64_t* request_id) {
  std::string err;
  const control::ctl::Message* m = nullptr;
  shmrepl_status_t st = control::read_message(fd, &body, &m, &err);
  if (st != SHMREPL_OK) return st == SHMREPL_E_ENGINE_DIED ? SHMREPL_E_EOF : st;
  if (request_id) *request_id = m->request_id();
  last = m;
  return m->body_type() == control::ctl::Body::Error ? m->body_as_Error()->code() : SHMREPL_OK;
}

bool Raw::closed_by_peer() {
  char ch;
  return read(fd, &ch, 1) == 0;
}

Collected collect(shmrepl_reader_t* reader, uint64_t execution_id, bool keep_output,
                  std::chrono::seconds timeout,
                  const std::function<void(const shmrepl_record_t&)>& on_record) {
  Collected c;
  c.execution_id = execution_id;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  constexpr std::size_t kBatch = 256;
  shmrepl_record_t recs[kBatch];
  uint64_t next_seq = 0;
  auto problem = [&](const std::string& p) {
    if (c.first_problem.empty()) c.first_problem = p;
  };
  for (;;) {
    if (std::chrono::steady_clock::now() > deadline) {
      c.end = SHMREPL_E_TIMEOUT;
      problem("timed out while reading");
      return c;
    }
    std::size_t n = 0;
    shmrepl_status_t st = shmrepl_reader_next_batch(reader, recs, kBatch, &n, 100'000'000);
    if (st == SHMREPL_E_TIMEOUT) continue;
    if (st != SHMREPL_OK) {
      c.end = st;
      return c;
    }
    for (std::size_t i = 0; i < n; ++i) {
      const shmrepl_record_t& r = recs[i];
      if (on_record) on_record(r);
      ++c.records;
      if (r.seq != next_seq) {
        c.seq_gap_free = false;
        problem("seq " + std::to_string(r.seq) + " where " + std::to_string(next_seq) + " was due");
      }
      next_seq = r.seq + 1;
      if (r.execution_id != execution_id) {
        c.ids_match = false;
        problem("record with execution id " + std::to_string(r.execution_id));
      }
      if (c.finished > 0) c.record_after_finished = true;
      if (r.kind == SHMREPL_RECORD_OUTPUT) {
        (r.stream == SHMREPL_STREAM_STDERR ? c.err : c.out).add(r.data, r.data_len);
        c.both.add(r.data, r.data_len);
      }
      if (r.kind == SHMREPL_RECORD_FINISHED) {
        ++c.finished;
        c.finish_status = r.finish_status;
        c.exit_code = r.exit_code;
      }
      if (r.kind != SHMREPL_RECORD_OUTPUT || keep_output)
        c.kept.push_back(Rec{r.kind, r.stream, r.flags, r.finish_status, r.execution_id, r.seq,
                             r.exit_code, std::string(reinterpret_cast<const char*>(r.data), r.data_len)});
    }
    shmrepl_reader_release(reader, n);
  }
}

Session::Session(shmrepl_client_t* c) : client(c) {
  shmrepl_status_t st = shmrepl_session_open(client, &id);
  if (st != SHMREPL_OK) throw std::runtime_error("session_open: " + status_text(st));
}

Session::~Session() { shmrepl_session_close(client, id); }

shmrepl_execution_t* Session::execute(const std::string& code, bool script, const std::string& filename,
                                      const std::vector<std::string>& argv, uint64_t ring_capacity) {
  std::vector<const char*> cargv;
  for (const std::string& a : argv) cargv.push_back(a.c_str());
  shmrepl_execute_options_t o{};
  o.struct_size = sizeof o;
  o.script = script ? 1 : 0;
  o.session_id = id;
  o.code = code.data();
  o.code_len = code.size();
  o.filename = filename.empty() ? nullptr : filename.c_str();
  o.argv = cargv.data();
  o.argc = cargv.size();
  o.ring_capacity = ring_capacity;
  shmrepl_execution_t* e = nullptr;
  shmrepl_status_t st = shmrepl_execute(client, &o, &e);
  if (st != SHMREPL_OK) throw std::runtime_error("execute: " + status_text(st));
  return e;
}

Collected execute_and_collect(Session& s, const std::string& code, bool script,
                              const std::string& filename, const std::vector<std::string>& argv,
                              bool keep_output) {
  shmrepl_execution_t* e = s.execute(code, script, filename, argv);
  shmrepl_reader_t* reader = nullptr;
  shmrepl_status_t st = shmrepl_execution_reader(e, nullptr, &reader);
  if (st != SHMREPL_OK) {
    shmrepl_execution_close(e);
    throw std::runtime_error("execution_reader: " + status_text(st));
  }
  Collected c = collect(reader, shmrepl_execution_id(e), keep_output);
  shmrepl_reader_close(reader);
  shmrepl_execution_close(e);
  return c;
}

std::size_t count_dir(const std::string& path) {
  std::size_t n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator(path, ec); !ec && it != std::filesystem::directory_iterator();
       it.increment(ec))
    ++n;
  return n;
}

uint64_t status_kib(pid_t pid, const std::string& key) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key + ":", 0) == 0) return std::stoull(line.substr(key.size() + 1));
  return 0;
}

}  // namespace shmrepl::test
