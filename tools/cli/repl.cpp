// `shmrepl repl`: an interactive Python prompt whose code runs in an engine session.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "cli.hpp"

#ifdef SHMREPL_HAVE_LIBEDIT
#include <dlfcn.h>
#include <editline/readline.h>
#endif


namespace shmrepl::cli {

namespace {

const char* const kReplUsage =
    "usage: shmrepl repl [--socket PATH] [--no-autostart]\n"
    "\n"
    "An interactive Python prompt, as `python3` gives one, whose code runs in a session\n"
    "of the engine (started if none runs), in this folder, with this environment and\n"
    "this terminal as stdin (input() works). Multi-line statements end with an empty\n"
    "line; the value of an expression is echoed; output is shown as it is produced.\n"
    "Ctrl-C cancels the running code (or clears the line at the prompt); Ctrl-D exits\n"
    "0, exit(N) and sys.exit(N) exit N. As with python3, SIGTERM, SIGHUP, SIGQUIT,\n"
    "SIGUSR1 and SIGUSR2 go to the running code (its handler runs, or it dies of the\n"
    "signal and so does shmrepl repl); at the prompt they end shmrepl repl by the signal.\n"
#ifdef SHMREPL_HAVE_LIBEDIT
    "Line editing, tab completion of names and history (libedit); the history is kept\n"
    "in $SHMREPL_HISTORY, else ~/.shmrepl_history.\n"
#else
    "This build has no line editing, completion or history (built without libedit).\n"
#endif
    "\n"
    "options:\n"
    "  --socket PATH    the engine's socket (default: $SHMREPL_SOCKET, else the default)\n"
    "  --no-autostart   fail instead of starting an engine when none listens\n"
    "  -h, --help       print this help\n";

// Signals that no running code took (the relay hands them over), one byte each, for
// the prompt's poll().
int g_sigpipe[2] = {-1, -1};

void on_idle_signal(int sig) {
  const auto b = static_cast<unsigned char>(sig);
  [[maybe_unused]] ssize_t n = ::write(g_sigpipe[1], &b, 1);
}

// Takes what came: 0 (nothing), SIGINT, or another signal (which wins: it ends the REPL).
int take_signal() {
  int sig = 0;
  unsigned char buf[64];
  ssize_t n;
  while ((n = ::read(g_sigpipe[0], buf, sizeof buf)) > 0)
    for (ssize_t i = 0; i < n; ++i)
      if (sig == 0 || sig == SIGINT) sig = buf[i];
  return sig;
}

int g_ending_signal = 0;  // the one that ends the REPL

shmrepl_client_t* g_client = nullptr;
uint64_t g_session = 0;

enum class Mode { Show, Capture };

struct Outcome {
  int finish = -1;    // the FINISHED status; -1: it could not run (reported)
  int exit_code = 0;  // as python3 would exit after it
  int died_of = 0;    // the signal that killed the session's worker
};

// Runs `code` in the session (interactive mode: an expression's value comes as a
// RESULT). Show: output to our stdout/stderr as it comes, the RESULT echoed; the
// relay gives it our signals. Capture: stdout into *out, nothing shown; signals wait
// for the prompt.
Outcome run_code(const std::string& code, Mode mode, std::string* out) {
  shmrepl_execute_options_t eo{};
  eo.struct_size = sizeof eo;
  eo.script = 0;
  eo.session_id = g_session;
  eo.code = code.data();
  eo.code_len = code.size();
  eo.filename = "<stdin>";
  const char* argv0 = "";
  eo.argv = &argv0;
  eo.argc = 1;
  const bool show = mode == Mode::Show;
  Outcome outcome;
  if (show) relay_starting();
  shmrepl_execution_t* exec = nullptr;
  shmrepl_status_t st = shmrepl_execute(g_client, &eo, &exec);
  if (st != SHMREPL_OK) {
    if (show) relay_idle();
    report("cannot execute", st);
    return outcome;
  }
  if (show) relay_running(g_client, exec);
  shmrepl_reader_t* reader = nullptr;
  st = shmrepl_execution_reader(exec, nullptr, &reader);
  if (st != SHMREPL_OK) {
    if (show) relay_idle();
    report("cannot read the execution's ring", st);
    shmrepl_execution_close(exec);
    return outcome;
  }
  constexpr size_t kBatch = 256;
  shmrepl_record_t records[kBatch];
  for (;;) {
    size_t n = 0;
    st = shmrepl_reader_next_batch(reader, records, kBatch, &n, -1);
    if (st == SHMREPL_E_EOF) break;
    if (st == SHMREPL_E_PRODUCER_DIED) {
      std::fprintf(stderr, "shmrepl: the session's worker died during the execution\n");
      break;
    }
    if (st != SHMREPL_OK) {
      report("reading the output", st);
      break;
    }
    for (size_t i = 0; i < n; ++i) {
      const shmrepl_record_t& r = records[i];
      if (r.kind == SHMREPL_RECORD_FINISHED) {
        outcome.finish = static_cast<int>(r.finish_status);
        outcome.exit_code = exit_code_of(r);
        if (r.finish_status == SHMREPL_FINISH_ABORTED) outcome.died_of = static_cast<int>(r.reserved[0]);
        if (show && outcome.died_of != 0)
          std::fprintf(stderr, "shmrepl repl: the session's worker was killed by signal %d (%s)\n",
                       outcome.died_of, strsignal(outcome.died_of));
      } else if (mode == Mode::Capture) {
        if (r.kind == SHMREPL_RECORD_OUTPUT && r.stream == SHMREPL_STREAM_STDOUT)
          out->append(reinterpret_cast<const char*>(r.data), r.data_len);
      } else if (r.kind == SHMREPL_RECORD_OUTPUT) {
        write_outputs(&r, 1);
      } else if (r.kind == SHMREPL_RECORD_RESULT) {
        write_all(1, r.data, r.data_len);
        if ((r.flags & SHMREPL_FLAG_MORE) == 0) write_all(1, "\n", 1);  // the last part of a split repr
      }
    }
    shmrepl_reader_release(reader, n);
  }
  if (show) relay_idle();
  shmrepl_reader_close(reader);
  shmrepl_execution_close(exec);
  return outcome;
}

// A Python expression for the text, whatever bytes it holds.
std::string py_str(const std::string& s) {
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char c : s) {
    hex += kHex[c >> 4];
    hex += kHex[c & 15];
  }
  return "bytes.fromhex('" + hex + "').decode('utf-8', 'surrogateescape')";
}

// As the interactive interpreter decides: complete unless codeop says "more to
// come"; a SyntaxError is complete (running it shows the error).
bool is_complete(const std::string& src) {
  std::string out;
  const Outcome o = run_code("print(__import__('codeop').compile_command(" + py_str(src) +
                                 ", '<stdin>', 'single') is not None)",
                             Mode::Capture, &out);
  return o.finish != SHMREPL_FINISH_OK || out.rfind("False", 0) != 0;
}

enum class Read { Line, Eof, Interrupt, Signal };

// What a signal that came at the prompt means: none (Line), SIGINT, or the end.
Read pending_signal() {
  const int sig = take_signal();
  if (sig == 0) return Read::Line;
  if (sig == SIGINT) return Read::Interrupt;
  g_ending_signal = sig;
  return Read::Signal;
}

#ifdef SHMREPL_HAVE_LIBEDIT
// libedit, loaded by the REPL alone: linked, it and the libraries it needs (libtinfo,
// libbsd, libmd) were loaded and relocated at every start of `shmrepl run` too.
struct Edit {
  decltype(&::rl_callback_handler_install) callback_handler_install;
  decltype(&::rl_callback_read_char) callback_read_char;
  decltype(&::rl_callback_handler_remove) callback_handler_remove;
  decltype(&::add_history) add_history;
  decltype(&::using_history) using_history;
  decltype(&::stifle_history) stifle_history;
  decltype(&::read_history) read_history;
  decltype(&::write_history) write_history;
  decltype(&::rl_readline_name) readline_name;
  decltype(&::rl_completion_entry_function) completion_entry_function;
  decltype(&::rl_completion_append_character) completion_append_character;
};
Edit g_rl;

// False (plain lines) when no libedit can be loaded.
bool load_libedit() {
  void* lib = nullptr;
  for (const char* name : {"libedit.so.2", "libedit.so.0", "libedit.so"})
    if ((lib = ::dlopen(name, RTLD_NOW | RTLD_LOCAL)) != nullptr) break;
  if (lib == nullptr) return false;
  bool ok = true;
  auto sym = [&](auto& to, const char* name) {
    void* p = ::dlsym(lib, name);
    ok = ok && p != nullptr;
    to = reinterpret_cast<std::remove_reference_t<decltype(to)>>(p);
  };
  sym(g_rl.callback_handler_install, "rl_callback_handler_install");
  sym(g_rl.callback_read_char, "rl_callback_read_char");
  sym(g_rl.callback_handler_remove, "rl_callback_handler_remove");
  sym(g_rl.add_history, "add_history");
  sym(g_rl.using_history, "using_history");
  sym(g_rl.stifle_history, "stifle_history");
  sym(g_rl.read_history, "read_history");
  sym(g_rl.write_history, "write_history");
  sym(g_rl.readline_name, "rl_readline_name");
  sym(g_rl.completion_entry_function, "rl_completion_entry_function");
  sym(g_rl.completion_append_character, "rl_completion_append_character");
  return ok;
}

bool g_done = false;
bool g_eof = false;
std::string g_line;

void on_line(char* line) {
  g_done = true;
  g_eof = line == nullptr;
  if (line != nullptr) g_line = line;
  std::free(line);
}

std::vector<std::string> g_matches;

// Names of the session (globals and builtins) that start with `text`.
char* complete_name(const char* text, int state) {
  if (state == 0) {
    g_matches.clear();
    std::string out;
    const std::string code =
        "print('\\n'.join(sorted(n for n in set(dir(__import__('builtins')) + list(globals())) "
        "if n.startswith(" + py_str(text) + "))))";
    if (run_code(code, Mode::Capture, &out).finish == SHMREPL_FINISH_OK) {
      size_t b = 0;
      while (b < out.size()) {
        size_t e = out.find('\n', b);
        if (e == std::string::npos) e = out.size();
        if (e > b) g_matches.emplace_back(out, b, e - b);
        b = e + 1;
      }
    }
  }
  if (static_cast<size_t>(state) >= g_matches.size()) return nullptr;
  return strdup(g_matches[static_cast<size_t>(state)].c_str());
}

bool g_edit = false;  // libedit drives the terminal (stdin and stdout are terminals)
#endif

Read read_line(const char* prompt, std::string* line) {
  line->clear();
#ifdef SHMREPL_HAVE_LIBEDIT
  if (g_edit) {
    g_done = false;
    g_rl.callback_handler_install(prompt, on_line);
    Read result = Read::Line;
    for (;;) {
      pollfd fds[2] = {{0, POLLIN, 0}, {g_sigpipe[0], POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0 && errno != EINTR) {
        result = Read::Eof;
        break;
      }
      if (fds[1].revents != 0 && (result = pending_signal()) != Read::Line) break;
      if (fds[0].revents == 0) continue;
      g_rl.callback_read_char();
      if (g_done) {
        result = g_eof ? Read::Eof : Read::Line;
        *line = g_line;
        break;
      }
    }
    g_rl.callback_handler_remove();
    if (result == Read::Line && !line->empty()) g_rl.add_history(line->c_str());
    return result;
  }
#endif
  if (isatty(0)) {
    write_all(1, prompt, std::strlen(prompt));
  }
  for (;;) {
    pollfd fds[2] = {{0, POLLIN, 0}, {g_sigpipe[0], POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return Read::Eof;
    if (fds[1].revents != 0) {
      if (const Read r = pending_signal(); r != Read::Line) return r;
    }
    if (fds[0].revents == 0) continue;
    char c;
    const ssize_t n = ::read(0, &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return line->empty() ? Read::Eof : Read::Line;
    if (c == '\n') return Read::Line;
    *line += c;
  }
}

std::string history_path() {
  const char* h = std::getenv("SHMREPL_HISTORY");
  if (h != nullptr && h[0] != '\0') return h;
  const char* home = std::getenv("HOME");
  if (home == nullptr || home[0] == '\0') return {};
  return std::string(home) + "/.shmrepl_history";
}

}  // namespace

int cmd_repl(const Global& g, const std::vector<std::string>& args) {
  ConnectArgs connect_args{g.socket};
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kReplUsage, stdout);
      return 0;
    } else if (const Taken t = take_connect_arg("repl", args, &i, &connect_args); t != Taken::kNotOurs) {
      if (t == Taken::kBad) return 2;
    } else {
      std::fprintf(stderr, "shmrepl repl: unknown argument %s (see shmrepl repl --help)\n",
                   a.c_str());
      return 2;
    }
  }

  if (::pipe2(g_sigpipe, O_CLOEXEC | O_NONBLOCK) != 0) {
    std::fprintf(stderr, "shmrepl repl: pipe: %s\n", std::strerror(errno));
    return 1;
  }
  start_signal_relay(on_idle_signal);

  shmrepl_status_t st = connect_engine(connect_args, &g_client);
  if (st != SHMREPL_OK) {
    report("cannot reach an engine", st);
    return 1;
  }
  const CallerSession caller;
  st = shmrepl_session_open_ex(g_client, &caller.options, &g_session);
  if (st != SHMREPL_OK) {
    report("cannot open a session", st);
    shmrepl_client_close(g_client);
    return 1;
  }

  const std::string hist = history_path();
#ifdef SHMREPL_HAVE_LIBEDIT
  g_edit = isatty(0) && isatty(1) && load_libedit();
  if (g_edit) {
    *g_rl.readline_name = "shmrepl";
    *g_rl.completion_entry_function = complete_name;
    *g_rl.completion_append_character = '\0';
    g_rl.using_history();
    g_rl.stifle_history(1000);
    if (!hist.empty()) g_rl.read_history(hist.c_str());
  }
#endif
  if (isatty(0))
    std::printf("Python through shmrepl %s. Ctrl-D exits, Ctrl-C interrupts.\n", shmrepl_version());
  std::fflush(stdout);

  int rc = 0;
  std::string buffer;  // the statement being typed
  std::string line;
  for (;;) {
    Read r = read_line(buffer.empty() ? ">>> " : "... ", &line);
    if (r == Read::Line) {
      if (buffer.empty() && line.find_first_not_of(" \t\r") == std::string::npos) continue;
      buffer += buffer.empty() ? line : "\n" + line;
      if (!is_complete(buffer)) continue;
      r = pending_signal();  // one that came while it was compiled, as python3 compiles
    }
    if (r == Read::Eof) {
      if (isatty(0)) write_all(1, "\n", 1);
      break;
    }
    if (r == Read::Signal) break;
    if (r == Read::Interrupt) {
      write_all(1, "\nKeyboardInterrupt\n", 19);
      buffer.clear();
      continue;
    }
    const Outcome o = run_code(buffer + "\n", Mode::Show, nullptr);
    // As python3: exit() / sys.exit(n) / os._exit(n) end the REPL with that status, a
    // signal that kills the code kills it.
    if (o.finish == SHMREPL_FINISH_EXITED || o.finish == SHMREPL_FINISH_ABORTED) {
      rc = o.exit_code;
      g_ending_signal = o.died_of;
      break;
    }
    buffer.clear();
  }

#ifdef SHMREPL_HAVE_LIBEDIT
  if (g_edit && !hist.empty() && g_rl.write_history(hist.c_str()) != 0)
    std::fprintf(stderr, "shmrepl repl: cannot write the history to %s\n", hist.c_str());
#endif
  shmrepl_session_close(g_client, g_session);
  shmrepl_client_close(g_client);
  if (g_ending_signal != 0) die_of(g_ending_signal);
  return rc;
}

}  // namespace shmrepl::cli
