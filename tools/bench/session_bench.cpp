// shmrepl-bench-session: what the process model costs. Worker start (session open to
// reply, p50/p99), executions per second in a warm session (`pass`, `print(1)`: submit
// to FINISHED read), and `shmrepl run -c pass` / `shmrepl run w1` against python3 on the
// same run, whole-process wall time, as ratios. Starts a private engine.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "shmrepl/shmrepl.h"

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

double pct(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

[[noreturn]] void die(const char* what, shmrepl_status_t st) {
  std::fprintf(stderr, "shmrepl-bench-session: %s: %s (%s)\n", what, shmrepl_status_str(st), shmrepl_last_error());
  std::exit(1);
}

// Runs argv with stdout/stderr on /dev/null; returns wall ms.
double run_ms(const std::vector<std::string>& argv, const char* socket) {
  const auto t0 = Clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    if (socket != nullptr) setenv("SHMREPL_SOCKET", socket, 1);
    std::FILE* null = std::fopen("/dev/null", "w");
    if (null != nullptr) {
      dup2(fileno(null), 1);
      dup2(fileno(null), 2);
    }
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::fprintf(stderr, "shmrepl-bench-session: %s failed\n", argv[0].c_str());
    std::exit(1);
  }
  return ms_since(t0);
}

double execute_ms(shmrepl_client_t* c, uint64_t session, const char* code) {
  const auto t0 = Clock::now();
  shmrepl_execute_options_t o{};
  o.struct_size = sizeof o;
  o.session_id = session;
  o.code = code;
  o.code_len = std::strlen(code);
  shmrepl_execution_t* ex = nullptr;
  shmrepl_status_t st = shmrepl_execute(c, &o, &ex);
  if (st != SHMREPL_OK) die("execute", st);
  shmrepl_reader_t* r = nullptr;
  st = shmrepl_execution_reader(ex, nullptr, &r);
  if (st != SHMREPL_OK) die("reader", st);
  shmrepl_record_t recs[16];
  size_t n = 0;
  while ((st = shmrepl_reader_next_batch(r, recs, 16, &n, -1)) == SHMREPL_OK) shmrepl_reader_release(r, n);
  if (st != SHMREPL_E_EOF) die("read", st);
  shmrepl_reader_close(r);
  shmrepl_execution_close(ex);
  return ms_since(t0);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || std::strcmp(argv[1], "--help") == 0) {
    std::printf(
        "usage: shmrepl-bench-session ENGINE CLI WORKLOADS_DIR [ROUNDS]\n"
        "Starts ENGINE on a private socket and prints worker start p50/p99, executions\n"
        "per second in a warm session, and `CLI run` against /usr/bin/python3.\n");
    return argc < 4 ? 2 : 0;
  }
  const std::string engine = argv[1], cli = argv[2], workloads = argv[3];
  const int rounds = argc > 4 ? std::atoi(argv[4]) : 20;
  char dir[] = "/tmp/shmrepl-bench-XXXXXX";
  if (mkdtemp(dir) == nullptr) return 1;
  const std::string socket = std::string(dir) + "/engine.sock";
  shmrepl_client_options_t co{};
  co.struct_size = sizeof co;
  co.socket_path = socket.c_str();
  co.engine_path = engine.c_str();
  shmrepl_client_t* c = nullptr;
  shmrepl_status_t st = shmrepl_client_connect(&co, &c);
  if (st != SHMREPL_OK) die("connect", st);

  std::fprintf(stderr, "worker start (%d sessions)...\n", rounds * 5);
  std::vector<double> starts;
  for (int i = 0; i < rounds * 5; ++i) {
    uint64_t s = 0;
    const auto t0 = Clock::now();
    st = shmrepl_session_open(c, &s);
    if (st != SHMREPL_OK) die("session_open", st);
    starts.push_back(ms_since(t0));
    shmrepl_session_close(c, s);
  }
  std::printf("worker start: p50 %.2f ms, p99 %.2f ms\n", pct(starts, 0.5), pct(starts, 0.99));

  uint64_t s = 0;
  if ((st = shmrepl_session_open(c, &s)) != SHMREPL_OK) die("session_open", st);
  for (const char* code : {"pass", "print(1)"}) {
    std::vector<double> t;
    for (int i = 0; i < 200; ++i) execute_ms(c, s, code);  // warm
    const auto t0 = Clock::now();
    const int n = rounds * 100;
    for (int i = 0; i < n; ++i) t.push_back(execute_ms(c, s, code));
    std::printf("warm session, %-8s: %.0f executions/s, p50 %.0f us, p99 %.0f us\n", code,
                n / (ms_since(t0) / 1000.0), pct(t, 0.5) * 1000, pct(t, 0.99) * 1000);
  }
  shmrepl_session_close(c, s);

  std::fprintf(stderr, "shmrepl run vs python3 (%d rounds, interleaved)...\n", rounds);
  const std::string w1 = workloads + "/w1_seed_lines.py";
  struct Pair {
    const char* name;
    std::vector<std::string> ours, theirs;
    std::vector<double> a, b;
  } pairs[] = {{"-c pass", {cli, "run", "-c", "pass"}, {"/usr/bin/python3", "-c", "pass"}, {}, {}},
               {"w1", {cli, "run", w1}, {"/usr/bin/python3", w1}, {}, {}}};
  for (int i = 0; i < rounds; ++i)
    for (Pair& p : pairs) {
      p.a.push_back(run_ms(p.ours, socket.c_str()));
      p.b.push_back(run_ms(p.theirs, nullptr));
    }
  for (Pair& p : pairs)
    std::printf("run %-8s: shmrepl %.1f ms, python3 %.1f ms (medians): %.2fx\n", p.name, pct(p.a, 0.5),
                pct(p.b, 0.5), pct(p.a, 0.5) / pct(p.b, 0.5));
  shmrepl_engine_shutdown(c);
  shmrepl_client_close(c);
  rmdir(dir);
  return 0;
}
