// shmrepl-bench-emit: the cost of one small write through the engine, in process,
// for profiles of the write path (valgrind --tool=callgrind gives steady instruction
// counts on a loaded machine). The engine runs here with fd capture on, as in
// shmrepl-engine; the reader is shmrepl-bench-reader in another process (exec'ed:
// under valgrind --trace-children=no it runs natively).
//
// Usage: shmrepl-bench-emit READER [N] [CODE]
//   CODE runs with `n` = N (default 200000); by default
//   `w = sys.stdout.write` and `w("x\n")` n times. Prints the time per write, wall
//   and CPU (this process's).
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "shmrepl/engine/engine.hpp"

extern char** environ;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s READER [N] [CODE]\n", argv[0]);
    return 2;
  }
  const long n = argc > 2 ? std::atol(argv[2]) : 200000;
  std::string code = argc > 3 ? argv[3] : "import sys\nw = sys.stdout.write\nfor _ in range(n):\n    w('x\\n')\n";
  code = "n = " + std::to_string(n) + "\n" + code;

  using namespace shmrepl::engine;
  EngineOptions opt;
  opt.capture_fds = true;
  auto engine = Engine::start(opt);
  const uint64_t session = engine->open_session();
  ExecuteRequest warm;
  warm.session_id = session;
  warm.code = "pass";
  Accepted a = engine->execute(warm);
  engine->wait(a.execution_id);
  engine->release(a.execution_id);

  ExecuteRequest req;
  req.session_id = session;
  req.code = code;
  req.held = true;
  a = engine->execute(req);
  char* args[] = {argv[1], a.ring_name.data(), nullptr};
  pid_t reader = 0;
  if (posix_spawn(&reader, argv[1], nullptr, nullptr, args, environ) != 0) {
    std::perror("posix_spawn");
    return 1;
  }
  // CPU time of this process (the writing thread, mostly): steadier than wall time
  // on a loaded machine, where the writer also waits for a CPU.
  auto cpu_ns = [] {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e9 +
           static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e3;
  };
  const double c0 = cpu_ns();
  const auto t0 = std::chrono::steady_clock::now();
  engine->go(a.execution_id);
  engine->wait(a.execution_id);
  const auto t1 = std::chrono::steady_clock::now();
  const double cpu = cpu_ns() - c0;
  int status = 0;
  waitpid(reader, &status, 0);
  engine->release(a.execution_id);
  engine->close_session(session);
  engine->shutdown();
  const double ns = std::chrono::duration<double, std::nano>(t1 - t0).count();
  std::fprintf(stderr, "writes=%ld total_ms=%.1f ns_per_write=%.1f cpu_ns_per_write=%.1f reader_status=%d\n", n,
               ns / 1e6, n > 0 ? ns / static_cast<double>(n) : 0.0, n > 0 ? cpu / static_cast<double>(n) : 0.0,
               status);
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
