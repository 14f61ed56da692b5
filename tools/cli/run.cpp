// `shmrepl run`: a Python program through the engine, output as python3 gives it.
#include <signal.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

#include "cli.hpp"

namespace shmrepl::cli {

namespace {

const char* const kRunUsage =
    "usage: shmrepl run [--socket PATH] [--no-autostart] FILE [ARGS...]\n"
    "       shmrepl run [--socket PATH] [--no-autostart] -c CODE [ARGS...]\n"
    "\n"
    "Runs a Python program in a fresh session of the engine (started if none runs) and\n"
    "writes what it prints to stdout and stderr as it is produced, byte for byte as\n"
    "`python3 FILE` would. Exits as python3 would: 0, 1 after an uncaught exception,\n"
    "N after sys.exit(N); Ctrl-C cancels the execution (KeyboardInterrupt in the\n"
    "program) and, as python3, shmrepl run then dies of SIGINT (a shell shows 130).\n"
    "sys.argv is [FILE, ARGS...] (or ['-c', ARGS...]). The program runs in a worker\n"
    "process of its own, in this folder, with this environment and this stdin. A\n"
    "program killed by a signal (a crash, os.kill) kills shmrepl run with the same one.\n"
    "SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2 sent to shmrepl run go to the\n"
    "program (its handler runs, or it dies of the signal and so does shmrepl run).\n"
    "\n"
    "options:\n"
    "  --socket PATH    the engine's socket (default: $SHMREPL_SOCKET, else the default)\n"
    "  --no-autostart   fail instead of starting an engine when none listens\n"
    "  -h, --help       print this help\n";

// What no execution takes: SIGINT is ignored (python3 has not started, or has ended);
// the others end shmrepl run by their default action.
void on_idle_signal(int sig) {
  if (sig != SIGINT) die_of(sig);
}

// A signal that came before a program that then never starts (no engine, a refused
// session) ends shmrepl run by its default action when cmd_run returns.
struct IdleAtReturn {
  ~IdleAtReturn() { relay_idle(); }
};

bool read_file(const std::string& path, std::string* out, std::string* error) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) {
    const int e = errno;
    std::string abs = path;
    if (path.empty() || path[0] != '/') {
      char cwd[4096];
      if (getcwd(cwd, sizeof cwd) != nullptr) abs = std::string(cwd) + "/" + path;
    }
    // As python3 words it.
    *error = "can't open file '" + abs + "': [Errno " + std::to_string(e) + "] " + std::strerror(e);
    return false;
  }
  char buf[1 << 16];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) out->append(buf, n);
  const bool failed = std::ferror(f) != 0;
  const int e = errno;
  std::fclose(f);
  if (failed) {
    *error = "can't read file '" + path + "': [Errno " + std::to_string(e) + "] " + std::strerror(e);
    return false;
  }
  return true;
}

// Reads the ring to its end, writing output as it comes. Returns the exit code.
int pump(shmrepl_reader_t* reader, int* died_of) {
  constexpr size_t kBatch = 256;
  bool interrupted = false;  // the last ERROR record is a KeyboardInterrupt
  shmrepl_record_t records[kBatch];
  int code = -1;
  for (;;) {
    size_t n = 0;
    shmrepl_status_t st = shmrepl_reader_next_batch(reader, records, kBatch, &n, -1);
    if (st == SHMREPL_E_EOF) break;
    if (st == SHMREPL_E_PRODUCER_DIED) {
      std::fprintf(stderr, "shmrepl: the engine died during the execution\n");
      return 1;
    }
    if (st != SHMREPL_OK) {
      report("reading the output", st);
      return 1;
    }
    if (!write_outputs(records, n)) {
      std::fprintf(stderr, "shmrepl: write: %s\n", std::strerror(errno));
      return 1;
    }
    for (size_t i = 0; i < n; ++i) {
      if (records[i].kind == SHMREPL_RECORD_ERROR) {
        shmrepl_bytes_t ename{};
        shmrepl_record_error(&records[i], &ename, nullptr, nullptr);
        interrupted = ename.len == 17 && std::memcmp(ename.ptr, "KeyboardInterrupt", 17) == 0;
      }
      if (records[i].kind != SHMREPL_RECORD_FINISHED) continue;
      code = exit_code_of(records[i]);
      const uint32_t status = records[i].finish_status;
      if (status == SHMREPL_FINISH_ABORTED && records[i].reserved[0] != 0)
        *died_of = static_cast<int>(records[i].reserved[0]);
      // python3 dies of SIGINT when a KeyboardInterrupt ends the program (Ctrl-C).
      if (status == SHMREPL_FINISH_CANCELLED || (status == SHMREPL_FINISH_ERROR && interrupted))
        *died_of = SIGINT;
    }
    shmrepl_reader_release(reader, n);
  }
  if (code < 0) {
    std::fprintf(stderr, "shmrepl: the output ended without a FINISHED record\n");
    return 1;
  }
  return code;
}

}  // namespace

int cmd_run(const Global& g, const std::vector<std::string>& args) {
  ConnectArgs connect_args{g.socket};
  std::string file, code;
  bool inline_code = false;
  std::vector<std::string> argv;
  size_t i = 0;
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kRunUsage, stdout);
      return 0;
    } else if (const Taken t = take_connect_arg("run", args, &i, &connect_args); t != Taken::kNotOurs) {
      if (t == Taken::kBad) return 2;
    } else if (a == "-c") {
      if (++i >= args.size()) {
        std::fprintf(stderr, "shmrepl run: -c needs an argument\n");
        return 2;
      }
      inline_code = true;
      code = args[i];
      argv.push_back("-c");
      ++i;
      break;
    } else if (a == "--") {
      ++i;
      if (i >= args.size()) break;
      file = args[i++];
      break;
    } else if (a.size() > 1 && a[0] == '-') {
      std::fprintf(stderr, "shmrepl run: unknown option %s\n%s", a.c_str(), kRunUsage);
      return 2;
    } else {
      file = a;
      ++i;
      break;
    }
  }
  if (!inline_code && file.empty()) {
    std::fprintf(stderr, "shmrepl run: a FILE or -c CODE is needed\n%s", kRunUsage);
    return 2;
  }
  // The program gets our folder, environment and stdin, as python3 would.
  const CallerSession caller;
  const std::string& cwd = caller.cwd;
  // As python3 >= 3.9: the script's path is absolute (__file__, tracebacks).
  std::string script_path = file;
  if (!inline_code) {
    std::string error;
    if (!read_file(file, &code, &error)) {
      std::fprintf(stderr, "shmrepl: %s\n", error.c_str());
      return 2;
    }
    argv.push_back(file);
    if (!file.empty() && file[0] != '/' && !cwd.empty()) script_path = cwd + "/" + file;
  }
  for (; i < args.size(); ++i) argv.push_back(args[i]);

  // SIGINT and the forwarded signals are taken by the relay's thread.
  start_signal_relay(on_idle_signal);
  relay_starting();
  IdleAtReturn idle_at_return;

  shmrepl_client_t* client = nullptr;
  shmrepl_status_t st = connect_engine(connect_args, &client);
  if (st != SHMREPL_OK) {
    report("cannot reach an engine", st);
    return 1;
  }
  uint64_t session = 0;
  st = shmrepl_session_open_ex(client, &caller.options, &session);
  if (st == SHMREPL_E_INVALID) {
    // The environment cannot be served (a virtual environment of another Python).
    std::fprintf(stderr, "shmrepl: %s\n", shmrepl_last_error());
    shmrepl_client_close(client);
    return 2;
  }
  if (st != SHMREPL_OK) {
    report("cannot open a session", st);
    shmrepl_client_close(client);
    return 1;
  }
  std::vector<const char*> cargv;
  for (const std::string& a : argv) cargv.push_back(a.c_str());
  shmrepl_execute_options_t eo{};
  eo.struct_size = sizeof eo;
  eo.script = 1;
  eo.session_id = session;
  eo.code = code.data();
  eo.code_len = code.size();
  eo.filename = inline_code ? "<string>" : script_path.c_str();
  eo.argv = cargv.data();
  eo.argc = cargv.size();
  shmrepl_execution_t* exec = nullptr;
  st = shmrepl_execute(client, &eo, &exec);
  if (st != SHMREPL_OK) {
    report("cannot execute", st);
    shmrepl_client_close(client);
    return 1;
  }
  relay_running(client, exec);
  shmrepl_reader_t* reader = nullptr;
  st = shmrepl_execution_reader(exec, nullptr, &reader);
  int rc = 1;
  int died_of = 0;
  if (st == SHMREPL_OK) {
    rc = pump(reader, &died_of);
    shmrepl_reader_close(reader);
  } else {
    report("cannot read the execution's ring", st);
  }
  relay_idle();
  shmrepl_execution_close(exec);
  shmrepl_client_close(client);
  // Die of the program's signal, so a shell sees what python3 would give it.
  if (died_of != 0) die_of(died_of);
  return rc;
}

}  // namespace shmrepl::cli
