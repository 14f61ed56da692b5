// shmrepl-bench-engine: each workload's wall time through the engine, with a C
// reader in this process (another process than the engine), from Execute until
// the FINISHED record is read; against, in the same run, the same program in
// /usr/bin/python3:
//   devnull  buffered, stdout and stderr on /dev/null
//   pipe     buffered, stdout and stderr on pipes that this process reads
//   pipe-u   the same with PYTHONUNBUFFERED=1 (what streaming through pipes needs)
// Python's times cover the program alone (a timer around runpy.run_path, plus the
// final flush), not interpreter start-up. Each figure is the median of --runs runs.
//
// Usage: shmrepl-bench-engine [--runs N] [--workloads w1,w2,...]
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "shmrepl/shmrepl.h"

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kPython = "/usr/bin/python3";

// Runs the program given as argv[1] as __main__ and writes the seconds it took,
// flushing included, to fd 3.
constexpr const char* kTimer =
    "import os, sys, time, runpy\n"
    "f = sys.argv[1]\n"
    "sys.argv = [f]\n"
    "t = time.perf_counter()\n"
    "try:\n"
    "    runpy.run_path(f, run_name='__main__')\n"
    "finally:\n"
    "    sys.stdout.flush()\n"
    "    sys.stderr.flush()\n"
    "    os.write(3, repr(time.perf_counter() - t).encode())\n";

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> env_with(std::optional<std::string> unbuffered) {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e)
    if (std::strncmp(*e, "PYTHONUNBUFFERED=", 17) != 0) env.emplace_back(*e);
  if (unbuffered) env.push_back("PYTHONUNBUFFERED=" + *unbuffered);
  return env;
}

std::vector<char*> c_strings(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

// python3 with the timer; pipes: read stdout/stderr here, else /dev/null.
double python_seconds(const std::string& file, bool pipes, bool unbuffered) {
  int timer[2], out[2] = {-1, -1}, err[2] = {-1, -1};
  if (pipe2(timer, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  if (pipes && (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)) throw std::runtime_error("pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  if (pipes) {
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  } else {
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&fa, timer[1], 3);
  std::vector<std::string> argv = {kPython, "-c", kTimer, file};
  std::vector<std::string> env = env_with(unbuffered ? std::optional<std::string>("1") : std::nullopt);
  auto cargv = c_strings(argv);
  auto cenv = c_strings(env);
  pid_t pid;
  if (posix_spawn(&pid, kPython, &fa, nullptr, cargv.data(), cenv.data()) != 0)
    throw std::runtime_error("spawn python3");
  posix_spawn_file_actions_destroy(&fa);
  close(timer[1]);
  if (pipes) {
    close(out[1]);
    close(err[1]);
    int fds[2] = {out[0], err[0]};
    char buf[1 << 16];
    while (fds[0] >= 0 || fds[1] >= 0) {
      pollfd p[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};
      if (poll(p, 2, -1) < 0) continue;
      for (int i = 0; i < 2; ++i) {
        if (fds[i] < 0 || p[i].revents == 0) continue;
        if (read(fds[i], buf, sizeof buf) <= 0) {
          close(fds[i]);
          fds[i] = -1;
        }
      }
    }
  }
  std::string t;
  char buf[64];
  ssize_t n;
  while ((n = read(timer[0], buf, sizeof buf)) > 0) t.append(buf, static_cast<size_t>(n));
  close(timer[0]);
  int status;
  waitpid(pid, &status, 0);
  if (t.empty()) throw std::runtime_error("python3 gave no time for " + file);
  return std::stod(t);
}

// Seconds python3 needs to build w3's string.
double python_build_string_seconds() {
  const std::string code = "import time\nt = time.perf_counter()\ns = 'x' * 100_000_000\nprint(time.perf_counter() - t)\n";
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  std::vector<std::string> argv = {kPython, "-c", code};
  std::vector<std::string> env = env_with(std::nullopt);
  auto cargv = c_strings(argv);
  auto cenv = c_strings(env);
  pid_t pid;
  if (posix_spawn(&pid, kPython, &fa, nullptr, cargv.data(), cenv.data()) != 0)
    throw std::runtime_error("spawn python3");
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  std::string t;
  char buf[64];
  ssize_t n;
  while ((n = read(out[0], buf, sizeof buf)) > 0) t.append(buf, static_cast<size_t>(n));
  close(out[0]);
  int status;
  waitpid(pid, &status, 0);
  return std::stod(t);
}

class Engine {
 public:
  explicit Engine(const std::string& socket) : socket_(socket) {
    std::vector<std::string> argv = {SHMREPL_BENCH_ENGINE, "--socket", socket};
    std::vector<std::string> env = env_with(std::nullopt);
    auto cargv = c_strings(argv);
    auto cenv = c_strings(env);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, (socket + ".log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (posix_spawn(&pid_, cargv[0], &fa, nullptr, cargv.data(), cenv.data()) != 0)
      throw std::runtime_error("spawn engine");
    posix_spawn_file_actions_destroy(&fa);
    shmrepl_client_options_t o{};
    o.struct_size = sizeof o;
    o.autostart = SHMREPL_AUTOSTART_OFF;
    o.socket_path = socket_.c_str();
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (shmrepl_client_connect(&o, &client_) != SHMREPL_OK) {
      if (Clock::now() > deadline) throw std::runtime_error("engine did not come up");
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (shmrepl_session_open(client_, &session_) != SHMREPL_OK) throw std::runtime_error("session");
  }
  ~Engine() {
    shmrepl_client_close(client_);
    kill(pid_, SIGTERM);
    int status;
    waitpid(pid_, &status, 0);
  }

  // Seconds from Execute until the FINISHED record is read; *bytes gets the output size.
  double run(const std::string& code, const std::string& file, uint64_t* bytes) {
    const char* argv[] = {file.c_str()};
    shmrepl_execute_options_t o{};
    o.struct_size = sizeof o;
    o.script = 1;
    o.session_id = session_;
    o.code = code.data();
    o.code_len = code.size();
    o.filename = file.c_str();
    o.argv = argv;
    o.argc = 1;
    const auto t0 = Clock::now();
    shmrepl_execution_t* e = nullptr;
    if (shmrepl_execute(client_, &o, &e) != SHMREPL_OK)
      throw std::runtime_error(std::string("execute: ") + shmrepl_last_error());
    shmrepl_reader_t* r = nullptr;
    if (shmrepl_execution_reader(e, nullptr, &r) != SHMREPL_OK) throw std::runtime_error("reader");
    shmrepl_record_t recs[256];
    size_t n = 0;
    uint64_t total = 0;
    bool finished = false;
    while (!finished) {
      shmrepl_status_t st = shmrepl_reader_next_batch(r, recs, 256, &n, -1);
      if (st != SHMREPL_OK) throw std::runtime_error(std::string("read: ") + shmrepl_status_str(st));
      for (size_t i = 0; i < n; ++i) {
        if (recs[i].kind == SHMREPL_RECORD_OUTPUT) total += recs[i].data_len;
        if (recs[i].kind == SHMREPL_RECORD_FINISHED) finished = true;
      }
      shmrepl_reader_release(r, n);
    }
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    shmrepl_reader_close(r);
    shmrepl_execution_close(e);
    *bytes = total;
    return s;
  }

 private:
  std::string socket_;
  pid_t pid_ = -1;
  shmrepl_client_t* client_ = nullptr;
  uint64_t session_ = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int runs = 3;
  std::vector<std::string> names = {"w1_seed_lines.py", "w2_million_lines.py", "w3_big_write.py",
                                    "w4_tiny_writes.py", "w5_interleaved.py", "w6_threads.py"};
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--runs" && i + 1 < argc) {
      runs = std::max(1, std::atoi(argv[++i]));
    } else if (a == "--workloads" && i + 1 < argc) {
      std::string list = argv[++i];
      std::vector<std::string> picked;
      for (const std::string& n : names) {
        const std::string key = n.substr(0, n.find('_'));
        if (("," + list + ",").find("," + key + ",") != std::string::npos) picked.push_back(n);
      }
      names = picked;
    } else {
      std::fprintf(stderr, "usage: shmrepl-bench-engine [--runs N] [--workloads w1,w2,...]\n");
      return a == "-h" || a == "--help" ? 0 : 2;
    }
  }
  char tmpl[] = "/tmp/shmrepl-bench-XXXXXX";
  if (mkdtemp(tmpl) == nullptr) return 1;
  const std::string dir = tmpl;
  int rc = 0;
  try {
    Engine engine(dir + "/engine.sock");
    uint64_t bytes = 0;
    engine.run("print('warm')\n", "<warm>", &bytes);

    std::printf("median of %d runs; ratio = shmrepl / baseline (lower is better)\n", runs);
    std::printf("%-4s %10s %9s %9s %9s %9s | %8s %8s %8s\n", "", "MB out", "devnull", "pipe",
                "pipe-u", "shmrepl", "/devnull", "/pipe", "/pipe-u");
    double w3_engine = 0;
    for (const std::string& name : names) {
      const std::string file = std::string(SHMREPL_BENCH_WORKLOADS) + "/" + name;
      const std::string code = read_file(file);
      std::vector<double> dn, pb, pu, sh;
      for (int r = 0; r < runs; ++r) {
        dn.push_back(python_seconds(file, false, false));
        pb.push_back(python_seconds(file, true, false));
        pu.push_back(python_seconds(file, true, true));
        sh.push_back(engine.run(code, file, &bytes));
      }
      const double d = median(dn), p = median(pb), u = median(pu), s = median(sh);
      if (name.rfind("w3", 0) == 0) w3_engine = s;
      std::printf("%-4s %10.1f %8.1fms %8.1fms %8.1fms %8.1fms | %8.2f %8.2f %8.2f\n",
                  name.substr(0, name.find('_')).c_str(), static_cast<double>(bytes) / 1e6, d * 1e3,
                  p * 1e3, u * 1e3, s * 1e3, s / d, s / p, s / u);
      std::fflush(stdout);
    }
    if (w3_engine > 0) {
      std::vector<double> b;
      for (int r = 0; r < runs; ++r) b.push_back(python_build_string_seconds());
      const double build = median(b);
      std::printf("w3: building the 100 MB str takes %.1f ms in python3; delivered through "
                  "shmrepl in %.1f ms: %+.1f ms beyond building it\n",
                  build * 1e3, w3_engine * 1e3, (w3_engine - build) * 1e3);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "shmrepl-bench-engine: %s\n", e.what());
    rc = 1;
  }
  std::string log = read_file(dir + "/engine.sock.log");
  unlink((dir + "/engine.sock.log").c_str());
  unlink((dir + "/engine.sock.lock").c_str());
  rmdir(dir.c_str());
  if (rc != 0) std::fputs(log.c_str(), stderr);
  return rc;
}
