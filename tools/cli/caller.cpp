// What `shmrepl run` and `shmrepl repl` share: how they reach an engine, the session
// they open for the caller's program, and the signals they give it.
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>

#include "cli.hpp"

extern char** environ;

namespace shmrepl::cli {

Taken take_connect_arg(const char* cmd, const std::vector<std::string>& args, size_t* i, ConnectArgs* out) {
  const std::string& a = args[*i];
  if (a == "--socket") {
    if (*i + 1 >= args.size()) {
      std::fprintf(stderr, "shmrepl %s: --socket needs a path\n", cmd);
      return Taken::kBad;
    }
    out->socket = args[++*i];
  } else if (a.rfind("--socket=", 0) == 0) {
    out->socket = a.substr(9);
  } else if (a == "--no-autostart") {
    out->autostart = false;
  } else {
    return Taken::kNotOurs;
  }
  return Taken::kTaken;
}

shmrepl_status_t connect_engine(const ConnectArgs& a, shmrepl_client_t** out) {
  shmrepl_client_options_t co{};
  co.struct_size = sizeof co;
  co.autostart = a.autostart ? SHMREPL_AUTOSTART_ON : SHMREPL_AUTOSTART_OFF;
  co.socket_path = a.socket.empty() ? nullptr : a.socket.c_str();
  return shmrepl_client_connect(&co, out);
}

CallerSession::CallerSession() {
  char buf[4096];
  if (getcwd(buf, sizeof buf) != nullptr) cwd = buf;
  for (char** e = environ; *e != nullptr; ++e) env.push_back(*e);
  options.struct_size = sizeof options;
  options.working_dir = cwd.empty() ? nullptr : cwd.c_str();
  options.env = env.data();
  options.envc = env.size();
  options.stdin_fd_plus_one = fcntl(0, F_GETFD) >= 0 ? 1 : 0;
  // Our terminal answers the program's isatty() and terminal size. Only a terminal is
  // passed: for anything else the answers are the same without it, and a pipe held
  // by the worker would keep its reader from seeing our end.
  options.stdout_fd_plus_one = isatty(1) ? 2 : 0;
  options.stderr_fd_plus_one = isatty(2) ? 3 : 0;
}

namespace {

// Ring names are shmrepl.<uid>.<worker pid>.<id>.<random> (docs/architecture.md).
pid_t worker_of_ring(const char* name) {
  const char* p = std::strchr(name, '.');
  p = p != nullptr ? std::strchr(p + 1, '.') : nullptr;
  if (p == nullptr) return 0;
  char* end = nullptr;
  const long pid = std::strtol(p + 1, &end, 10);
  return end != p + 1 && *end == '.' && pid > 1 ? static_cast<pid_t>(pid) : 0;
}

// The relay's state, shared by its thread and the command's.
enum class Relay { kIdle, kStarting, kRunning };
std::mutex g_mu;
Relay g_state = Relay::kIdle;
void (*g_idle)(int) = nullptr;
shmrepl_execution_t* g_exec = nullptr;
pid_t g_worker = 0;     // 0: none (an in-process engine)
std::vector<int> g_held;  // came while an execution was starting

void deliver(int sig) {
  switch (g_state) {
    case Relay::kStarting:
      g_held.push_back(sig);
      return;
    case Relay::kRunning:
      if (sig == SIGINT) {
        shmrepl_execution_cancel(g_exec);
        return;
      }
      if (g_worker != 0) {
        ::kill(g_worker, sig);
        return;
      }
      break;  // no worker to give it to
    case Relay::kIdle:
      break;
  }
  g_idle(sig);
}

void relay_thread(sigset_t set) {
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    std::lock_guard lock(g_mu);
    deliver(sig);
  }
}

}  // namespace

void start_signal_relay(void (*idle)(int sig)) {
  g_idle = idle;
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  for (int sig : kForwardedSignals) sigaddset(&set, sig);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::thread(relay_thread, set).detach();
}

void relay_starting() {
  std::lock_guard lock(g_mu);
  g_state = Relay::kStarting;
}

void relay_running(shmrepl_client_t* client, shmrepl_execution_t* exec) {
  std::lock_guard lock(g_mu);
  g_state = Relay::kRunning;
  g_exec = exec;
  g_worker = worker_of_ring(shmrepl_execution_ring_name(exec));
  if (g_worker == static_cast<pid_t>(shmrepl_client_engine_pid(client))) g_worker = 0;
  for (int sig : g_held) deliver(sig);
  g_held.clear();
}

void relay_idle() {
  std::lock_guard lock(g_mu);
  g_state = Relay::kIdle;
  g_exec = nullptr;
  g_worker = 0;  // its pid may be reused from here on
  for (int sig : g_held) g_idle(sig);
  g_held.clear();
}

[[noreturn]] void die_of(int sig) {
  std::fflush(nullptr);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigaction(sig, &dfl, nullptr);
  sigset_t one;
  sigemptyset(&one);
  sigaddset(&one, sig);
  pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
  ::raise(sig);
  std::_Exit(128 + sig);
}

}  // namespace shmrepl::cli
