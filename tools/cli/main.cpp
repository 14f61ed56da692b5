// shmrepl: run Python programs through a shmrepl engine.
#include <cstdio>
#include <string>
#include <vector>

#include "cli.hpp"

namespace {

const char* const kUsage =
    "usage: shmrepl [--socket PATH] COMMAND [ARGS...]\n"
    "\n"
    "commands:\n"
    "  run FILE [ARGS...]     run a Python program through the engine, output streamed\n"
    "  run -c CODE [ARGS...]  run CODE\n"
    "  tail [--raw] RING      print the records of a ring (e.g. another client's)\n"
    "  dump [-f] [--json] RING  every record of a ring, decoded (--json: JSON Lines)\n"
    "  gc [--dry-run]         remove the rings that dead engines left in /dev/shm\n"
    "  shutdown               stop the engine (cancels what runs)\n"
    "  help                   print this help\n"
    "\n"
    "options:\n"
    "  --socket PATH  the engine's socket (default: $SHMREPL_SOCKET, else\n"
    "                 $XDG_RUNTIME_DIR/shmrepl/default.sock, else /tmp/shmrepl-<uid>/default.sock)\n"
    "  --version      print the version of libshmrepl\n"
    "  -h, --help     print this help; `shmrepl COMMAND --help` for a command\n"
    "\n"
    "An engine is started automatically when none listens at the socket.\n";

const char* const kShutdownUsage =
    "usage: shmrepl shutdown\n"
    "\n"
    "Stops the engine at the socket: it cancels every execution, removes its rings and\n"
    "its socket. Does nothing if no engine listens there.\n";

int cmd_shutdown(const shmrepl::cli::Global& g, const std::vector<std::string>& args) {
  for (const std::string& a : args) {
    if (a == "-h" || a == "--help") {
      std::fputs(kShutdownUsage, stdout);
      return 0;
    }
    std::fprintf(stderr, "shmrepl shutdown: unexpected argument %s\n%s", a.c_str(), kShutdownUsage);
    return 2;
  }
  shmrepl_client_options_t co{};
  co.struct_size = sizeof co;
  co.autostart = SHMREPL_AUTOSTART_OFF;
  co.socket_path = g.socket.empty() ? nullptr : g.socket.c_str();
  shmrepl_client_t* client = nullptr;
  shmrepl_status_t st = shmrepl_client_connect(&co, &client);
  if (st == SHMREPL_E_CONNECT) {
    std::fprintf(stderr, "shmrepl: no engine is running (%s)\n", shmrepl_last_error());
    return 0;
  }
  if (st != SHMREPL_OK) {
    shmrepl::cli::report("cannot reach the engine", st);
    return 1;
  }
  st = shmrepl_engine_shutdown(client);
  shmrepl_client_close(client);
  if (st != SHMREPL_OK) {
    shmrepl::cli::report("shutdown", st);
    return 1;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  shmrepl::cli::Global g;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (a == "--version") {
      std::printf("shmrepl %s\n", shmrepl_version());
      return 0;
    } else if (a == "--socket") {
      if (++i >= args.size()) {
        std::fprintf(stderr, "shmrepl: --socket needs a path\n");
        return 2;
      }
      g.socket = args[i];
    } else if (a.rfind("--socket=", 0) == 0) {
      g.socket = a.substr(9);
    } else if (a.size() > 1 && a[0] == '-') {
      std::fprintf(stderr, "shmrepl: unknown option %s\n%s", a.c_str(), kUsage);
      return 2;
    } else {
      break;
    }
  }
  if (i >= args.size()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  const std::string cmd = args[i];
  std::vector<std::string> rest(args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
  if (cmd == "run") return shmrepl::cli::cmd_run(g, rest);
  if (cmd == "tail") return shmrepl::cli::cmd_tail(g, rest);
  if (cmd == "dump") return shmrepl::cli::cmd_dump(g, rest);
  if (cmd == "gc") return shmrepl::cli::cmd_gc(g, rest);
  if (cmd == "shutdown") return cmd_shutdown(g, rest);
  if (cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  std::fprintf(stderr, "shmrepl: unknown command '%s'\n%s", cmd.c_str(), kUsage);
  return 2;
}
