// `shmrepl engine start|stop|status|restart` (and `shmrepl shutdown`): the engine at
// the socket, its processes from /proc.
#include <dirent.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "cli.hpp"

namespace shmrepl::cli {

namespace {

const char* const kEngineUsage =
    "usage: shmrepl [--socket PATH] engine start|stop|status|restart [--force]\n"
    "\n"
    "  start    start an engine at the socket and print its pid (nothing to do if one\n"
    "           runs there already)\n"
    "  stop     stop the engine: it cancels every execution and removes its rings and\n"
    "           its socket (the same as `shmrepl shutdown`); an engine of another ABI\n"
    "           version, which refuses our Hello, is sent SIGTERM\n"
    "  status   whether an engine listens at the socket: its pid, executable, zygote and\n"
    "           worker processes (one per open session) with state and RSS\n"
    "  restart  stop, then start: replaces an engine of an older version. Refused while\n"
    "           an execution runs or waits in some worker (a ring of it not finished);\n"
    "           idle sessions are closed (their clients get E_SESSION_DIED)\n"
    "\n"
    "options:\n"
    "  --force     restart even while executions run (they end CANCELLED or ABORTED)\n"
    "  -h, --help  print this help\n"
    "\n"
    "The engine's version string is not given by the C ABI: status prints the pid and\n"
    "the version of this libshmrepl, and says so.\n"
    "Exit status: 0; status: 3 when no engine is running; 1 on an error, 2 on bad usage.\n";

const char* const kShutdownUsage =
    "usage: shmrepl shutdown\n"
    "\n"
    "Stops the engine at the socket: it cancels every execution, removes its rings and\n"
    "its socket. Does nothing if no engine listens there. Same as `shmrepl engine stop`.\n";

std::vector<Proc> all_procs() {
  std::vector<Proc> out;
  DIR* d = opendir("/proc");
  if (d == nullptr) return out;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    const long pid = std::strtol(e->d_name, &end, 10);
    Proc p;
    if (pid > 0 && *end == '\0' && read_proc(static_cast<int>(pid), &p)) out.push_back(p);
  }
  closedir(d);
  std::sort(out.begin(), out.end(), [](const Proc& a, const Proc& b) { return a.pid < b.pid; });
  return out;
}

// The pid of the process serving `path` (SO_PEERCRED), 0 if nothing listens. For an
// engine that refuses our Hello.
int peer_pid(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return 0;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  int pid = 0;
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0) {
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid == geteuid()) pid = cred.pid;
  }
  ::close(fd);
  return pid;
}

// Gone, or a zombie (an engine is re-parented; a subreaper may not have reaped it yet).
bool gone(int pid) {
  Proc p;
  return (kill(pid, 0) != 0 && errno == ESRCH) || !read_proc(pid, &p) || p.state == 'Z';
}

bool wait_gone(int pid, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!gone(pid)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// Stops the engine at the socket. 0: stopped (*stopped: its pid) or none ran (*stopped: 0).
int stop_engine(const Global& g, int* stopped) {
  const std::string path = socket_path_of(g);
  *stopped = 0;
  shmrepl_client_options_t co{};
  co.struct_size = sizeof co;
  co.autostart = SHMREPL_AUTOSTART_OFF;
  co.socket_path = g.socket.empty() ? nullptr : g.socket.c_str();
  shmrepl_client_t* client = nullptr;
  shmrepl_status_t st = shmrepl_client_connect(&co, &client);
  if (st == SHMREPL_E_CONNECT) return 0;
  if (st == SHMREPL_E_VERSION) {
    // It will not take our Shutdown: SIGTERM stops it the same way.
    const int pid = peer_pid(path);
    if (pid <= 0 || kill(pid, SIGTERM) != 0) {
      report("cannot stop the engine at " + path, st);
      return 1;
    }
    if (!wait_gone(pid, std::chrono::seconds(30))) {
      std::fprintf(stderr, "shmrepl: the engine (pid %d) did not stop within 30 s of SIGTERM\n", pid);
      return 1;
    }
    *stopped = pid;
    return 0;
  }
  if (st != SHMREPL_OK) {
    report("cannot reach the engine at " + path, st);
    return 1;
  }
  const int pid = static_cast<int>(shmrepl_client_engine_pid(client));
  st = shmrepl_engine_shutdown(client);
  shmrepl_client_close(client);
  if (st != SHMREPL_OK) {
    report("shutdown", st);
    return 1;
  }
  // The connection closes before the process ends: a start right after must not
  // meet the old engine still holding the socket.
  if (pid > 0 && !wait_gone(pid, std::chrono::seconds(30))) {
    std::fprintf(stderr, "shmrepl: the engine (pid %d) did not exit within 30 s of its shutdown\n", pid);
    return 1;
  }
  *stopped = pid;
  return 0;
}

int start_engine(const Global& g) {
  const std::string path = socket_path_of(g);
  EngineView v;
  if (!probe_engine(g, &v)) return 1;
  if (v.running) {
    std::printf("an engine is already running at %s (pid %d)%s\n", path.c_str(), v.pid,
                v.other_abi ? ", of another ABI version: `shmrepl engine restart` replaces it" : "");
    return 0;
  }
  shmrepl_client_options_t co{};
  co.struct_size = sizeof co;
  co.autostart = SHMREPL_AUTOSTART_ON;
  co.socket_path = g.socket.empty() ? nullptr : g.socket.c_str();
  shmrepl_client_t* client = nullptr;
  const shmrepl_status_t st = shmrepl_client_connect(&co, &client);
  if (st != SHMREPL_OK) {
    report("cannot start an engine at " + path, st);
    return 1;
  }
  std::printf("started engine pid %u at %s\n", shmrepl_client_engine_pid(client), path.c_str());
  shmrepl_client_close(client);
  return 0;
}

int status(const Global& g) {
  const std::string path = socket_path_of(g);
  EngineView v;
  if (!probe_engine(g, &v)) return 1;
  if (!v.running) {
    std::printf("engine: not running at %s\n", path.c_str());
    return 3;
  }
  std::printf("engine: running at %s\n", path.c_str());
  std::printf("pid: %d\n", v.pid);
  if (v.other_abi)
    std::printf("version: another ABI version than this libshmrepl %s (ABI %u): "
                "`shmrepl engine restart` replaces it\n",
                shmrepl_version(), shmrepl_abi_version());
  else
    std::printf("version: %s\n", version_note().c_str());
  if (!v.exe.empty()) std::printf("executable: %s\n", v.exe.c_str());
  for (const Proc& z : v.zygotes)
    std::printf("zygote: pid %d, state %c, RSS %s\n", z.pid, z.state, rss_text(z.rss_kb).c_str());
  std::printf("workers: %zu\n", v.workers.size());
  if (!v.workers.empty()) std::printf("  %8s  %5s  %10s\n", "PID", "STATE", "RSS");
  for (const Proc& w : v.workers)
    std::printf("  %8d  %5c  %10s\n", w.pid, w.state, rss_text(w.rss_kb).c_str());
  return 0;
}

int restart(const Global& g, bool force) {
  EngineView v;
  if (!probe_engine(g, &v)) return 1;
  if (v.running && !force) {
    std::vector<int> pids;
    for (const Proc& w : v.workers) pids.push_back(w.pid);
    if (!pids.empty())
      for (const RingView& r : list_rings(pids)) {
        if (r.background || !r.readable || r.finished) continue;
        std::fprintf(stderr,
                     "shmrepl engine restart: the engine (pid %d) is running execution %llu in worker %d; "
                     "use --force to restart anyway\n",
                     v.pid, static_cast<unsigned long long>(r.execution_id), r.worker_pid);
        return 1;
      }
  }
  if (v.running) {
    int stopped = 0;
    const int rc = stop_engine(g, &stopped);
    if (rc != 0) return rc;
    if (stopped != 0) std::printf("stopped the engine (pid %d)\n", stopped);
  }
  return start_engine(g);
}

}  // namespace

bool read_proc(int pid, Proc* p) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  // "pid (comm) S ppid ...": comm may hold spaces and parentheses.
  const std::size_t open = stat.find('('), close = stat.rfind(')');
  if (open == std::string::npos || close == std::string::npos || close + 2 >= stat.size()) return false;
  p->pid = pid;
  p->comm = stat.substr(open + 1, close - open - 1);
  p->state = stat[close + 2];
  // Fields after the state: 4 ppid ... 22 starttime.
  const char* s = stat.c_str() + close + 3;
  char* end = nullptr;
  for (int field = 4; field <= 22; ++field) {
    const unsigned long long v = std::strtoull(s, &end, 10);
    if (end == s) return false;
    if (field == 4) p->ppid = static_cast<int>(v);
    if (field == 22) p->start_time = v;
    s = end;
  }
  std::ifstream st("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(st, line);)
    if (line.rfind("VmRSS:", 0) == 0) p->rss_kb = std::strtoull(line.c_str() + 6, nullptr, 10);
  return true;
}

std::string socket_path_of(const Global& g) {
  if (!g.socket.empty()) return g.socket;
  const char* env = std::getenv("SHMREPL_SOCKET");
  if (env != nullptr && env[0] != '\0') return env;
  const char* runtime = std::getenv("XDG_RUNTIME_DIR");
  if (runtime != nullptr && runtime[0] == '/') return std::string(runtime) + "/shmrepl/default.sock";
  return "/tmp/shmrepl-" + std::to_string(geteuid()) + "/default.sock";
}

std::string rss_text(uint64_t kb) {
  char b[32];
  if (kb >= 10240)
    std::snprintf(b, sizeof b, "%.1f MiB", static_cast<double>(kb) / 1024.0);
  else
    std::snprintf(b, sizeof b, "%llu KiB", static_cast<unsigned long long>(kb));
  return b;
}

std::string version_note() {
  return std::string("not given by the C ABI; this libshmrepl is ") + shmrepl_version() + " (ABI " +
         std::to_string(shmrepl_abi_version()) + ")";
}

bool probe_engine(const Global& g, EngineView* out) {
  *out = EngineView{};
  const std::string path = socket_path_of(g);
  shmrepl_client_options_t co{};
  co.struct_size = sizeof co;
  co.autostart = SHMREPL_AUTOSTART_OFF;
  co.socket_path = g.socket.empty() ? nullptr : g.socket.c_str();
  shmrepl_client_t* client = nullptr;
  const shmrepl_status_t st = shmrepl_client_connect(&co, &client);
  if (st == SHMREPL_E_CONNECT) {
    out->error = shmrepl_last_error();
    return true;
  }
  if (st == SHMREPL_OK) {
    out->pid = static_cast<int>(shmrepl_client_engine_pid(client));
    shmrepl_client_close(client);
  } else if (st == SHMREPL_E_VERSION) {
    out->other_abi = true;
    out->pid = peer_pid(path);
  } else {
    report("cannot reach the engine at " + path, st);
    return false;
  }
  out->running = true;
  char exe[PATH_MAX];
  const ssize_t n = readlink(("/proc/" + std::to_string(out->pid) + "/exe").c_str(), exe, sizeof exe - 1);
  if (n > 0) out->exe.assign(exe, static_cast<std::size_t>(n));
  // supervisor -> zygote -> workers, but the warm spare: it has no session yet, so no
  // background ring, which the supervisor holds for every worker that has one. Its
  // name is only a fallback (a program may take that name too).
  std::set<int> with_session;
  std::vector<std::pair<std::string, std::string>> held;
  const bool rings_known = !out->other_abi && held_memfds(out->pid, &held);
  for (const auto& [name, fd_path] : held) {
    int worker = 0;
    const std::size_t rest = parse_ring_name(name, &worker);
    if (rest != 0 && name.compare(rest, 2, "bg") == 0) with_session.insert(worker);
  }
  const std::vector<Proc> procs = all_procs();
  std::multimap<int, const Proc*> children;
  for (const Proc& p : procs) children.emplace(p.ppid, &p);
  auto [zb, ze] = children.equal_range(out->pid);
  for (auto z = zb; z != ze; ++z) {
    out->zygotes.push_back(*z->second);
    auto [wb, we] = children.equal_range(z->second->pid);
    for (auto w = wb; w != we; ++w)
      if (rings_known ? with_session.count(w->second->pid) != 0 : w->second->comm != "shmrepl-spare")
        out->workers.push_back(*w->second);
  }
  return true;
}

int cmd_engine(const Global& g, const std::vector<std::string>& args) {
  std::string action;
  bool force = false;
  for (const std::string& a : args) {
    if (a == "-h" || a == "--help") {
      std::fputs(kEngineUsage, stdout);
      return 0;
    } else if (a == "--force") {
      force = true;
    } else if (a.size() > 1 && a[0] == '-') {
      std::fprintf(stderr, "shmrepl engine: unknown option %s (see shmrepl engine --help)\n", a.c_str());
      return 2;
    } else if (action.empty()) {
      action = a;
    } else {
      std::fprintf(stderr, "shmrepl engine: unexpected argument %s (see shmrepl engine --help)\n", a.c_str());
      return 2;
    }
  }
  if (force && action != "restart") {
    std::fprintf(stderr, "shmrepl engine: --force is for restart only (see shmrepl engine --help)\n");
    return 2;
  }
  if (action == "start") return start_engine(g);
  if (action == "status") return status(g);
  if (action == "restart") return restart(g, force);
  if (action == "stop") {
    int stopped = 0;
    const int rc = stop_engine(g, &stopped);
    if (rc == 0 && stopped == 0)
      std::fprintf(stderr, "shmrepl: no engine is running at %s\n", socket_path_of(g).c_str());
    else if (rc == 0)
      std::printf("stopped the engine (pid %d) at %s\n", stopped, socket_path_of(g).c_str());
    return rc;
  }
  if (action.empty())
    std::fprintf(stderr, "shmrepl engine: start, stop, status or restart is needed (see shmrepl engine --help)\n");
  else
    std::fprintf(stderr, "shmrepl engine: unknown action '%s' (see shmrepl engine --help)\n", action.c_str());
  return 2;
}

int cmd_shutdown(const Global& g, const std::vector<std::string>& args) {
  for (const std::string& a : args) {
    if (a == "-h" || a == "--help") {
      std::fputs(kShutdownUsage, stdout);
      return 0;
    }
    std::fprintf(stderr, "shmrepl shutdown: unexpected argument %s (see shmrepl shutdown --help)\n", a.c_str());
    return 2;
  }
  int stopped = 0;
  const int rc = stop_engine(g, &stopped);
  if (rc == 0 && stopped == 0) std::fprintf(stderr, "shmrepl: no engine is running at %s\n", socket_path_of(g).c_str());
  return rc;
}

}  // namespace shmrepl::cli
