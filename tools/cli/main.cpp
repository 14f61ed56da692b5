// shmrepl: run Python programs through a shmrepl engine.
#include <fcntl.h>
#include <unistd.h>

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
    "  repl                   an interactive Python prompt backed by a session\n"
    "  tail [-f] [--raw] RING|--execution ID  print the output of a ring (another client's)\n"
    "  dump [-f] [--json] RING  every record of a ring, decoded (--json: JSON Lines)\n"
    "  gc [--dry-run]         remove the rings that dead engines left in /dev/shm\n"
    "  ls [--json]            the engine, its worker processes and their rings\n"
    "  engine start|stop|status|restart  control the engine at the socket\n"
    "  shutdown               stop the engine (cancels what runs); = engine stop\n"
    "  help                   print this help\n"
    "\n"
    "options:\n"
    "  --socket PATH  the engine's socket (default: $SHMREPL_SOCKET, else\n"
    "                 $XDG_RUNTIME_DIR/shmrepl/default.sock, else /tmp/shmrepl-<uid>/default.sock)\n"
    "  --version      print the version of libshmrepl\n"
    "  -h, --help     print this help; `shmrepl COMMAND --help` for a command\n"
    "\n"
    "An engine is started automatically when none listens at the socket.\n";

}  // namespace

int main(int argc, char** argv) {
  // A closed fd 0, 1 or 2 gets /dev/null before anything else opens a descriptor: else
  // the engine's socket would take the number, and `run` would pass it on as the
  // program's stdin (input() would then wait for a reply nobody sends).
  for (int fd = 0; fd <= 2; ++fd)
    if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) != fd) return 2;
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
  // --socket may follow these commands too (not `run`, whose arguments are the program's).
  if (cmd == "engine" || cmd == "ls" || cmd == "tail" || cmd == "shutdown" ||
      cmd == "repl") {
    for (size_t j = 0; j < rest.size();) {
      if (rest[j] == "--socket") {
        if (j + 1 >= rest.size()) {
          std::fprintf(stderr, "shmrepl: --socket needs a path\n");
          return 2;
        }
        g.socket = rest[j + 1];
        rest.erase(rest.begin() + static_cast<std::ptrdiff_t>(j), rest.begin() + static_cast<std::ptrdiff_t>(j) + 2);
      } else if (rest[j].rfind("--socket=", 0) == 0) {
        g.socket = rest[j].substr(9);
        rest.erase(rest.begin() + static_cast<std::ptrdiff_t>(j));
      } else {
        ++j;
      }
    }
  }
  if (cmd == "run") return shmrepl::cli::cmd_run(g, rest);
  if (cmd == "repl") return shmrepl::cli::cmd_repl(g, rest);
  if (cmd == "tail") return shmrepl::cli::cmd_tail(g, rest);
  if (cmd == "dump") return shmrepl::cli::cmd_dump(g, rest);
  if (cmd == "gc") return shmrepl::cli::cmd_gc(g, rest);
  if (cmd == "ls") return shmrepl::cli::cmd_ls(g, rest);
  if (cmd == "engine") return shmrepl::cli::cmd_engine(g, rest);
  if (cmd == "shutdown") return shmrepl::cli::cmd_shutdown(g, rest);
  if (cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  std::fprintf(stderr, "shmrepl: unknown command '%s'\n%s", cmd.c_str(), kUsage);
  return 2;
}
