// What `shmrepl run` and `shmrepl repl` share: how they reach an engine, and the
// session they open for the caller's program.
#include <fcntl.h>
#include <unistd.h>

#include <cstdio>

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

}  // namespace shmrepl::cli
