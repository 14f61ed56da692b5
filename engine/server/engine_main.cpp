// What shmrepl-engine does, given a way to start the engine core.
#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "control.hpp"
#include "engine_main.hpp"
#include "log.hpp"
#include "options.hpp"
#include "server.hpp"
#include "shmrepl/engine/engine.hpp"
#include "shmrepl/shm/layout.hpp"

namespace {

using shmrepl::server::log_line;

std::atomic<shmrepl::server::Server*> g_server{nullptr};

extern "C" void on_stop_signal(int) {
  shmrepl::server::Server* s = g_server.load();
  if (s != nullptr) s->request_stop();
}

int run(const shmrepl::server::Options& opt, const shmrepl::server::EngineFactory& factory) {
  bool is_default = false;
  const std::string path =
      shmrepl::control::socket_path(opt.socket.empty() ? nullptr : opt.socket.c_str(), &is_default);
  if (is_default) {
    std::string err;
    if (shmrepl::control::ensure_private_dir(shmrepl::control::parent_dir(path), &err) != SHMREPL_OK) {
      log_line("refusing to serve: " + err);
      return 1;
    }
  }

  // One engine per socket. The lock is held for the engine's life; a second engine
  // (two clients auto-starting at once) finds it taken and leaves quietly.
  const std::string lock_path = path + ".lock";
  int lock_fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd < 0) {
    log_line("cannot open " + lock_path + ": " + std::strerror(errno));
    return 1;
  }
  if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      log_line("another engine already serves " + path + "; exiting");
      return 0;
    }
    log_line("cannot lock " + lock_path + ": " + std::strerror(errno));
    return 1;
  }

  shmrepl::engine::EngineOptions eo;
  if (opt.ring_capacity != 0) eo.ring_capacity = opt.ring_capacity;
  std::unique_ptr<shmrepl::engine::Engine> engine = factory(eo);

  shmrepl::server::Server server(*engine);
  server.listen(path);
  g_server = &server;
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaction(sig, &sa, nullptr);
  log_line("listening on " + path);

  server.run();

  log_line("stopping: cancelling executions");
  // The engine first: cancelling everything lets connection threads that wait on
  // it finish; then the connections (their sessions are closed) and the socket.
  engine->shutdown();
  server.close();
  g_server = nullptr;
  engine.reset();  // unlinks what rings remain
  log_line("stopped");
  close(lock_fd);
  return 0;
}

}  // namespace

namespace shmrepl::server {

int engine_main(int argc, char** argv, const EngineFactory& factory) {
  shmrepl::server::log_init();
  shmrepl::server::Options opt;
  std::string err;
  if (!shmrepl::server::parse_options(std::vector<std::string>(argv + 1, argv + argc), &opt, &err)) {
    std::fprintf(stderr, "shmrepl-engine: %s\n%s", err.c_str(), shmrepl::server::kUsage);
    return 2;
  }
  if (opt.help) {
    std::fputs(shmrepl::server::kUsage, stdout);
    return 0;
  }
  if (opt.version) {
    std::printf("shmrepl-engine %s\n", SHMREPL_ENGINE_VERSION);
    return 0;
  }
  if (opt.ring_capacity != 0 &&
      (opt.ring_capacity < shmrepl::shm::kMinCapacity || opt.ring_capacity > shmrepl::shm::kMaxCapacity)) {
    std::fprintf(stderr, "shmrepl-engine: --ring-capacity must be within [%llu, %llu]\n",
                 static_cast<unsigned long long>(shmrepl::shm::kMinCapacity),
                 static_cast<unsigned long long>(shmrepl::shm::kMaxCapacity));
    return 2;
  }
  try {
    return run(opt, factory);
  } catch (const std::exception& e) {
    log_line(std::string("fatal: ") + e.what());
    return 1;
  }
}

}  // namespace shmrepl::server
