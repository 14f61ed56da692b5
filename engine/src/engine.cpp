// The engine core: sessions, their executor threads, and the life of an
// execution from Started to Finished.
#include "shmrepl/engine/engine.hpp"

#include <Python.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/random.h>
#include <unistd.h>

#include <cinttypes>
#include <cstdio>

#include <algorithm>
#include <bit>
#include <chrono>
#include <cerrno>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <system_error>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <vector>

#include "execution.hpp"
#include "clock.hpp"
#include "fd_capture.hpp"
#include "output.hpp"
#include "pyhooks.hpp"
#include "records.hpp"
#include "runtime.hpp"
#include "shmrepl/shm/sys.hpp"

namespace shmrepl::engine {

namespace {

// Process-wide, so that ring names stay unique across Engine instances.
std::atomic<uint64_t> g_next_execution{1};
std::atomic<uint64_t> g_next_session{1};

// A random suffix makes a ring's name unguessable: nobody can create it first.
std::string random_suffix() {
  uint64_t r = 0;
  if (getrandom(&r, sizeof r, 0) != static_cast<ssize_t>(sizeof r))
    r = shm::monotonic_ns() * 0x9E3779B97F4A7C15ull ^ static_cast<uint64_t>(::getpid());
  char buf[24];
  std::snprintf(buf, sizeof buf, ".%016" PRIx64, r);
  return buf;
}

// Creates the ring `base` + a random suffix. Its name taken already means someone
// squats it: another suffix. Out of memory in /dev/shm is a system_error (ENOSPC).
std::unique_ptr<shm::Producer> create_ring(const std::string& base, uint64_t capacity,
                                           uint64_t execution_id, pid_t guardian,
                                           const EngineOptions& options) {
  // The guardian (the supervisor) outlives this worker: one /proc read serves every ring.
  static std::mutex mu;
  static pid_t known = 0;
  static uint64_t known_start = 0;
  uint64_t guardian_start = 0;
  if (guardian != 0) {
    std::lock_guard<std::mutex> l(mu);
    if (known != guardian || known_start == 0) {
      known_start = shm::process_start_time(guardian);
      known = guardian;
    }
    guardian_start = known_start;
  }
  shm::ProducerOptions o;
  o.capacity = capacity;
  o.execution_id = execution_id;
  o.guardian_pid = static_cast<uint32_t>(guardian);
  o.guardian_start_time = guardian_start;
  o.sealed = options.sealed_rings;
  for (int attempt = 0;; ++attempt) {
    try {
      auto p = shm::Producer::create(base + random_suffix(), o);
      if (options.ring_created) options.ring_created(p->name(), p->fd());
      return p;
    } catch (const std::system_error& e) {
      if (e.code().value() != EEXIST || attempt == 8) throw;
    }
  }
}

void init_sink(Sink& s, std::unique_ptr<shm::Producer> p) {
  s.max_data = p->max_payload() - records::kOutputOverhead;
  s.producer = std::move(p);
}

// UTF-8 of a str; lone surrogates become backslash escapes.
std::string utf8(PyObject* s) {
  if (s == nullptr || !PyUnicode_Check(s)) return {};
  PyObject* b = PyUnicode_AsEncodedString(s, "utf-8", "backslashreplace");
  if (b == nullptr) {
    PyErr_Clear();
    return {};
  }
  std::string out(PyBytes_AS_STRING(b), static_cast<std::size_t>(PyBytes_GET_SIZE(b)));
  Py_DECREF(b);
  return out;
}

std::string str_of(PyObject* o) {
  PyObject* s = o != nullptr ? PyObject_Str(o) : nullptr;
  if (s == nullptr) {
    PyErr_Clear();
    return "<unprintable object>";
  }
  std::string out = utf8(s);
  Py_DECREF(s);
  return out;
}

// Text bytes that one record holds besides its FlatBuffers framing.
uint32_t budget_of(const Sink& s) { return s.producer->max_payload() - 256; }

// An Error record that fits one record (the whole traceback is on stderr already):
// long values are cut with a visible marker, and of a long traceback the first line
// and the last frames are kept, with a line saying how many were left out.
void encode_error_fitted(std::vector<std::byte>& out, const records::Meta& meta, std::string ename,
                         std::string evalue, std::vector<std::string> lines, uint32_t max) {
  auto encode = [&] {
    std::vector<std::string_view> views(lines.begin(), lines.end());
    records::encode_error(out, meta, ename, evalue, views);
  };
  encode();
  for (std::size_t budget = max - 256; out.size() > max; budget /= 2) {
    shorten_visibly(ename, budget / 8);
    shorten_visibly(evalue, budget / 4);
    for (auto& l : lines) shorten_visibly(l, budget / 8);
    std::size_t total = ename.size() + evalue.size() + 16 * lines.size();
    for (auto& l : lines) total += l.size();
    std::size_t omitted = 0;
    while (total > budget / 2 && lines.size() > 2) {
      total -= lines[1].size() + 16;
      lines.erase(lines.begin() + 1);
      ++omitted;
    }
    if (omitted > 0) {
      if (lines.size() > 1 && lines[1].rfind("  [... ", 0) == 0) lines.erase(lines.begin() + 1);
      lines.insert(lines.begin() + 1, "  [... " + std::to_string(omitted) + " entries omitted ...]\n");
    }
    if (budget < 64) {  // cannot happen with rings of at least kMinCapacity; never drop it
      ename.clear();
      evalue = "[... omitted ...]";
      lines.clear();
    }
    encode();
    if (budget < 64) break;
  }
}

// [GIL] The owner of `sink` writes `repr` as Result records: one, or consecutive
// parts flagged MORE / CONTINUED (split on UTF-8 boundaries), as Output is split.
void write_result(Sink& sink, uint64_t execution_id, std::string_view repr) {
  std::vector<std::byte> rec;
  std::size_t at = 0;
  do {
    std::size_t len = utf8_cut(repr.substr(at), budget_of(sink));
    if (len == 0) len = std::min<std::size_t>(repr.size() - at, budget_of(sink));  // not UTF-8: any cut
    const uint32_t flags = (at > 0 ? shm::kFlagContinued : 0) | (at + len < repr.size() ? shm::kFlagMore : 0);
    records::encode_result(rec, {execution_id, sink.seq++, RecordClock::now()}, repr.substr(at, len));
    write_record(sink, rec, true, false, flags);
    at += len;
  } while (at < repr.size());
}

// ---- worker mode -------------------------------------------------------------

int g_child_closes[2] = {-1, -1};

extern "C" void on_fork_child() {
  // A child of user code: no ring, no socket of the worker (its peers must see the
  // worker's end when the worker dies, not when this child does).
  mark_forked_child();
  for (int fd : g_child_closes)
    if (fd >= 0) ::close(fd);
}

void set_sigint_blocked(bool blocked) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  pthread_sigmask(blocked ? SIG_BLOCK : SIG_UNBLOCK, &set, nullptr);
}

// [GIL] SIGINT is blocked: takes a pending one, and runs Python's handler for one
// already delivered, dropping the KeyboardInterrupt it raises.
void drain_sigint() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  timespec zero{};
  while (sigtimedwait(&set, nullptr, &zero) == SIGINT) {
  }
  if (PyErr_CheckSignals() != 0) PyErr_Clear();
}

// Python's SIGINT handler in a worker: default_int_handler, counted, so cancel can
// tell a SIGINT that was handled from one that was lost before a blocking call.
std::atomic<uint64_t> g_sigint_handled{0};
PyObject* g_sigint_handler = nullptr;

PyObject* on_sigint(PyObject*, PyObject* const*, Py_ssize_t) {
  g_sigint_handled.fetch_add(1);
  PyErr_SetNone(PyExc_KeyboardInterrupt);
  return nullptr;
}
PyMethodDef g_sigint_def = {"default_int_handler",
                            reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(on_sigint)),
                            METH_FASTCALL, "Raises KeyboardInterrupt (SIGINT: Ctrl-C or a cancel)."};

// [GIL]
bool sigint_handler_is_ours() {
  PyObject* signal = PyImport_ImportModule("signal");
  PyObject* h = signal != nullptr ? PyObject_CallMethod(signal, "getsignal", "i", SIGINT) : nullptr;
  const bool ours = h != nullptr && h == g_sigint_handler;
  Py_XDECREF(h);
  Py_XDECREF(signal);
  PyErr_Clear();
  return ours;
}

// [GIL] os.environ (and the C environment under it) becomes exactly `env`; with
// `add_pythonpath`, PYTHONPATH's entries go on sys.path as python3 puts them.
void set_environment(const std::vector<std::string>& env, bool add_pythonpath) {
  PyObject* os = PyImport_ImportModule("os");
  PyObject* environ = os != nullptr ? PyObject_GetAttrString(os, "environ") : nullptr;
  // Only what differs is changed: a caller's environment is mostly the engine's, and
  // each change is a putenv/unsetenv through os.environ (clearing and refilling it
  // cost ~0.35 ms of every worker's start). What it holds is compared as os.environ
  // keeps it, bytes to bytes in its `_data` (walking os.environ itself decodes every
  // entry in Python: ~0.1 ms).
  PyObject* data = environ != nullptr ? PyObject_GetAttrString(environ, "_data") : nullptr;
  PyErr_Clear();
  if (data != nullptr && PyDict_Check(data)) {
    std::unordered_set<std::string_view> names;
    for (const std::string& e : env) {
      const std::size_t eq = e.find('=');
      if (eq == 0 || eq == std::string::npos) continue;
      names.insert(std::string_view(e).substr(0, eq));
      PyObject* kb = PyBytes_FromStringAndSize(e.data(), static_cast<Py_ssize_t>(eq));
      PyObject* had = kb != nullptr ? PyDict_GetItemWithError(data, kb) : nullptr;  // borrowed
      const std::string_view value = std::string_view(e).substr(eq + 1);
      if (had == nullptr || !PyBytes_Check(had) ||
          std::string_view(PyBytes_AS_STRING(had), static_cast<std::size_t>(PyBytes_GET_SIZE(had))) != value) {
        PyObject* k = PyUnicode_DecodeFSDefaultAndSize(e.data(), static_cast<Py_ssize_t>(eq));
        PyObject* v = PyUnicode_DecodeFSDefaultAndSize(value.data(), static_cast<Py_ssize_t>(value.size()));
        if (k != nullptr && v != nullptr) PyObject_SetItem(environ, k, v);
        Py_XDECREF(k);
        Py_XDECREF(v);
      }
      Py_XDECREF(kb);
      PyErr_Clear();
    }
    std::vector<PyObject*> gone;
    PyObject* k = nullptr;
    PyObject* v = nullptr;
    Py_ssize_t at = 0;
    while (PyDict_Next(data, &at, &k, &v))
      if (PyBytes_Check(k) &&
          names.count(std::string_view(PyBytes_AS_STRING(k), static_cast<std::size_t>(PyBytes_GET_SIZE(k)))) == 0)
        gone.push_back(PyUnicode_DecodeFSDefaultAndSize(PyBytes_AS_STRING(k), PyBytes_GET_SIZE(k)));
    for (PyObject* name : gone) {
      if (name != nullptr) PyObject_DelItem(environ, name);
      Py_XDECREF(name);
      PyErr_Clear();
    }
  } else if (environ != nullptr) {
    PyObject* current = PyDict_New();
    PyObject* wanted = PyDict_New();
    if (current != nullptr && wanted != nullptr && PyDict_Merge(current, environ, 1) == 0) {
      for (const std::string& e : env) {
        const std::size_t eq = e.find('=');
        if (eq == 0 || eq == std::string::npos) continue;
        PyObject* k = PyUnicode_DecodeFSDefaultAndSize(e.data(), static_cast<Py_ssize_t>(eq));
        PyObject* v = PyUnicode_DecodeFSDefaultAndSize(e.data() + eq + 1, static_cast<Py_ssize_t>(e.size() - eq - 1));
        if (k != nullptr && v != nullptr && PyDict_SetItem(wanted, k, v) == 0) {
          PyObject* had = PyDict_GetItemWithError(current, k);  // borrowed
          if (had == nullptr || PyObject_RichCompareBool(had, v, Py_EQ) != 1) PyObject_SetItem(environ, k, v);
        }
        Py_XDECREF(k);
        Py_XDECREF(v);
        PyErr_Clear();
      }
      PyObject* k = nullptr;
      PyObject* v = nullptr;
      Py_ssize_t at = 0;
      while (PyDict_Next(current, &at, &k, &v)) {
        if (PyDict_Contains(wanted, k) == 0) PyObject_DelItem(environ, k);
        PyErr_Clear();
      }
    }
    Py_XDECREF(current);
    Py_XDECREF(wanted);
  }
  Py_XDECREF(data);
  Py_XDECREF(environ);
  Py_XDECREF(os);
  PyErr_Clear();
  // What python3 takes from PYTHONPATH at start-up: its entries, in front of the
  // standard library (after the program's folder, which comes later).
  for (const std::string& e : env) {
    if (!add_pythonpath || e.rfind("PYTHONPATH=", 0) != 0) continue;
    PyObject* path = PySys_GetObject("path");  // borrowed
    std::size_t at = 11;
    Py_ssize_t where = 0;
    while (path != nullptr && PyList_Check(path) && at <= e.size()) {
      std::size_t end = e.find(':', at);
      if (end == std::string::npos) end = e.size();
      if (end > at) {
        PyObject* d = PyUnicode_DecodeFSDefaultAndSize(e.data() + at, static_cast<Py_ssize_t>(end - at));
        if (d != nullptr) PyList_Insert(path, where++, d);
        Py_XDECREF(d);
      }
      at = end + 1;
    }
    PyErr_Clear();
  }
}

// [GIL] os.environ as "NAME=value" entries.
std::vector<std::string> current_environment() {
  std::vector<std::string> env;
  PyObject* os = PyImport_ImportModule("os");
  PyObject* environb = os != nullptr ? PyObject_GetAttrString(os, "environb") : nullptr;
  PyObject* items = environb != nullptr ? PyObject_CallMethod(environb, "items", nullptr) : nullptr;
  PyObject* it = items != nullptr ? PyObject_GetIter(items) : nullptr;
  while (PyObject* kv = it != nullptr ? PyIter_Next(it) : nullptr) {
    PyObject* k = PyTuple_Check(kv) && PyTuple_GET_SIZE(kv) == 2 ? PyTuple_GET_ITEM(kv, 0) : nullptr;
    PyObject* v = k != nullptr ? PyTuple_GET_ITEM(kv, 1) : nullptr;
    if (k != nullptr && PyBytes_Check(k) && PyBytes_Check(v))
      env.push_back(std::string(PyBytes_AS_STRING(k), static_cast<std::size_t>(PyBytes_GET_SIZE(k))) + "=" +
                    std::string(PyBytes_AS_STRING(v), static_cast<std::size_t>(PyBytes_GET_SIZE(v))));
    Py_DECREF(kv);
  }
  Py_XDECREF(it);
  Py_XDECREF(items);
  Py_XDECREF(environb);
  Py_XDECREF(os);
  PyErr_Clear();
  return env;
}

// What python3 run from the virtual environment $VIRTUAL_ENV would have: its
// site-packages in place of the system's (site.venv, as site.main runs it),
// sys.prefix and sys.executable. None, or a message when the venv was made by
// another Python than ours.
constexpr const char* kVenvSource = R"PY(
def apply_venv():
    import os, sys, site
    venv = os.environ.get('VIRTUAL_ENV', '')
    cfg = os.path.join(venv, 'pyvenv.cfg')
    if not venv or not os.path.isfile(cfg):
        return None
    home = version = None
    with open(cfg, encoding='utf-8') as f:
        for line in f:
            key, eq, value = line.partition('=')
            if eq:
                key, value = key.strip().lower(), value.strip()
                if key == 'home':
                    home = value
                elif key in ('version', 'version_info'):
                    version = value
    base = os.path.dirname(sys._base_executable)
    mine = '%d.%d' % sys.version_info[:2]
    if (home is None or os.path.realpath(home) != os.path.realpath(base)
            or (version and version != mine and not version.startswith(mine + '.'))):
        return ('the virtual environment %s (pyvenv.cfg: home = %s%s) is not based on the '
                "engine's Python (%s %s); run it with its own python3"
                % (venv, home, ', version = ' + version if version else '', sys._base_executable,
                   sys.version.split()[0]))
    exe = os.path.join(venv, 'bin', 'python3')
    if not os.path.exists(exe):
        exe = os.path.join(venv, 'bin', 'python')
    system = set(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        system.add(site.getusersitepackages())
    sys.path[:] = [p for p in sys.path if p not in system]
    sys.executable = exe
    sys._base_executable = os.path.realpath(sys._base_executable)  # as getpath finds it through the venv's link
    sys.prefix, sys.exec_prefix = sys.base_prefix, sys.base_exec_prefix
    site.PREFIXES = [sys.prefix, sys.exec_prefix]
    site.ENABLE_USER_SITE = None
    known = site.venv(site.removeduppaths())
    if site.ENABLE_USER_SITE is None:
        site.ENABLE_USER_SITE = site.check_enableusersite()
    site.addsitepackages(site.addusersitepackages(known))
    return None
)PY";

// [GIL] Empty, or why the session's virtual environment is refused.
std::string apply_virtual_env() {
  PyObject* globals = PyDict_New();
  std::string refused;
  if (globals != nullptr && PyDict_SetItemString(globals, "__builtins__", PyEval_GetBuiltins()) == 0) {
    PyObject* r = PyRun_String(kVenvSource, Py_file_input, globals, globals);
    Py_XDECREF(r);
    PyObject* f = r != nullptr ? PyDict_GetItemString(globals, "apply_venv") : nullptr;  // borrowed
    PyObject* msg = f != nullptr ? PyObject_CallNoArgs(f) : nullptr;
    if (msg != nullptr && PyUnicode_Check(msg)) {
      const char* u = PyUnicode_AsUTF8(msg);
      refused = u != nullptr ? u : "the virtual environment is not based on the engine's Python";
    }
    Py_XDECREF(msg);
  }
  if (PyErr_Occurred()) PyErr_Print();  // to the engine's log: the session goes on without it
  Py_XDECREF(globals);
  return refused;
}

// Lets the heap grow by `bytes` from here (RLIMIT_DATA: private writable memory; the
// rings, shared mappings, do not count). *saved gets the limit to restore.
bool limit_heap(uint64_t bytes, rlimit* saved) {
  if (getrlimit(RLIMIT_DATA, saved) != 0) return false;
  uint64_t data_kb = 0;
  if (FILE* f = std::fopen("/proc/self/status", "r")) {
    char line[256];
    while (std::fgets(line, sizeof line, f) != nullptr)
      if (std::sscanf(line, "VmData: %" SCNu64 " kB", &data_kb) == 1) break;
    std::fclose(f);
  }
  rlimit lim = *saved;
  const uint64_t want = data_kb * 1024 + bytes;
  lim.rlim_cur = saved->rlim_max == RLIM_INFINITY ? want : std::min<uint64_t>(want, saved->rlim_max);
  return setrlimit(RLIMIT_DATA, &lim) == 0;
}

// A warm spare's work done ahead (prepare_worker), taken by the first Engine::start.
bool g_worker_prepared = false;
std::unique_ptr<FdCapture> g_prepared_capture;

// What every worker process does, whatever its session.
void worker_process_setup() {
  reset_engine_pid();
  pthread_atfork(nullptr, nullptr, on_fork_child);
  // As python3: Ctrl-C is KeyboardInterrupt, a closed pipe is an error, not a death.
  signal(SIGPIPE, SIG_IGN);
  signal(SIGXFSZ, SIG_IGN);
  PyGILState_STATE g = PyGILState_Ensure();
  g_sigint_handler = PyCFunction_New(&g_sigint_def, nullptr);
  PyObject* signal = PyImport_ImportModule("signal");
  PyObject* r = signal != nullptr && g_sigint_handler != nullptr
                    ? PyObject_CallMethod(signal, "signal", "iO", SIGINT, g_sigint_handler)
                    : nullptr;
  if (r == nullptr) PyErr_Print();
  Py_XDECREF(r);
  Py_XDECREF(signal);
  PyGILState_Release(g);
}

void become_worker(const EngineOptions& options) {
  const int* child_closes = options.child_closes;
  g_child_closes[0] = child_closes[0];
  g_child_closes[1] = child_closes[1];
  set_terminal_fds(options.terminal_fds[0], options.terminal_fds[1]);
  set_input_requests(options.input_requests);
  if (!g_worker_prepared) worker_process_setup();
  PyGILState_STATE g = PyGILState_Ensure();
  if (options.set_environment) set_environment(options.environment, !options.started_with_environment);
  // Only a VIRTUAL_ENV of the session's own asks for the venv check (compiling it
  // cost ~0.5 ms of every worker's start).
  const bool venv = options.virtual_env &&
                    std::any_of(options.environment.begin(), options.environment.end(), [](const std::string& e) {
                      return e.rfind("VIRTUAL_ENV=", 0) == 0 && e.size() > 12;
                    });
  const std::string refused = venv ? apply_virtual_env() : std::string();
  configure_worker_streams();
  PyGILState_Release(g);
  if (!refused.empty()) throw std::invalid_argument(refused);
  // Every thread started from here on inherits the block; user code unblocks it
  // on this thread only while it runs.
  set_sigint_blocked(true);
}

struct Session {
  uint64_t id = 0;
  bool caller_runs = false;  // run_session() runs it (worker mode), not `thread`
  bool path0_set = false;    // [GIL] sys.path[0] is the first program's folder
  bool executor_done = false;  // [mu] its executor loop has returned
  PyObject* ns = nullptr;  // [GIL] the namespace, kept between executions
  std::shared_ptr<Sink> background;
  std::string background_name;
  // [mu] Sealed rings: the ring of an execution that finished and was released, for
  // the next one (reset, not created again: docs/performance.md, "Ring reuse").
  std::unique_ptr<shm::Producer> spare;
  std::string last_sent;  // [mu] the ring (as created) the client got last: it has that one
  std::deque<std::shared_ptr<Execution>> queue;  // [mu]
  std::shared_ptr<Execution> running;            // [mu]
  bool closing = false;                          // [mu]
  std::condition_variable cv;                    // [mu] queue or closing changed
  std::thread thread;
  // Adaptive spin of an idle executor (executor_main): bumped whenever `cv` is
  // notified; when the session's last execution came soon after the one before, the
  // executor watches this for a while before it sleeps on `cv`.
  std::atomic<uint64_t> wakes{0};
  std::atomic<uint64_t> idle_since{0};  // monotonic ns: the executor's last run ended
  std::atomic<bool> spin{false};        // the last idle time was short: spin the next one
};

// How long an idle executor spins for the next execution before it sleeps, when the
// session's last idle time was at most this long. A client that runs executions back
// to back (a test harness) finds the executor awake: no wake-up on its round trip
// (tens of µs on a loaded or virtual machine); an interactive session never spins.
constexpr uint64_t kExecutorSpinNs = 100'000;

// Marks `s` runnable (mu_ held or not): its executor, spinning or asleep, sees it.
void note_wake(Session& s) {
  const uint64_t idle = s.idle_since.load(std::memory_order_relaxed);
  s.spin.store(idle != 0 && shm::monotonic_ns() - idle <= kExecutorSpinNs, std::memory_order_relaxed);
  s.wakes.fetch_add(1, std::memory_order_release);
}

class EngineImpl final : public Engine {
 public:
  explicit EngineImpl(const EngineOptions& options) : options_(options) {
    prefix_ = "shmrepl." + std::to_string(::getuid()) + "." + std::to_string(::getpid()) + ".";
  }
  ~EngineImpl() override { shutdown(); }

  uint64_t open_session() override;
  void close_session(uint64_t session_id) override;
  Accepted execute(const ExecuteRequest& request) override;
  bool cancel(uint64_t execution_id) override;
  bool send_input(uint64_t execution_id, const std::string& text) override;
  void wait(uint64_t execution_id) override;
  void release(uint64_t execution_id) override;
  void shutdown() override;
  std::string session_background_ring(uint64_t session_id) override;
  int session_background_ring_fd(uint64_t session_id) override;
  void open_session_as(uint64_t session_id) override;
  void run_session(uint64_t session_id) override;
  bool finished(uint64_t execution_id) override;
  void go(uint64_t execution_id) override;
  void time_out(uint64_t execution_id) override;

  std::unique_ptr<FdCapture> fd_capture;

 private:
  void executor_main(const std::shared_ptr<Session>& s);
  void run(Session& s, const std::shared_ptr<Execution>& ex);
  void report_error(Execution& ex, PyObject* type, PyObject* value, PyObject* tb);
  // [GIL] Whether a program's end has threads to wait for or handlers to run.
  bool program_end_pending();
  void end_program(Execution& ex, shmrepl_finish_status_t* status, bool work);
  void write_own(Execution& ex, const std::vector<std::byte>& record);
  void finish(Execution& ex, shmrepl_finish_status_t status, int32_t exit_code);
  void finish_queued(Execution& ex);
  void forget_if_done(Execution& ex);
  uint64_t add_session(uint64_t id, bool caller_runs);
  uint64_t next_execution_id() {
    return options_.execution_ids != nullptr ? options_.execution_ids->fetch_add(1)
                                             : g_next_execution.fetch_add(1);
  }

  EngineOptions options_;
  pthread_t main_thread_{};  // worker mode: where user code runs
  std::string prefix_;
  std::mutex mu_;
  std::condition_variable finished_cv_;
  std::map<uint64_t, std::shared_ptr<Session>> sessions_;      // [mu]
  std::map<uint64_t, std::shared_ptr<Execution>> executions_;  // [mu]
  bool stopped_ = false;                                       // [mu]
};

uint64_t EngineImpl::open_session() { return add_session(g_next_session.fetch_add(1), false); }

void EngineImpl::open_session_as(uint64_t session_id) { add_session(session_id, true); }

uint64_t EngineImpl::add_session(uint64_t id, bool caller_runs) {
  auto s = std::make_shared<Session>();
  s->id = id;
  s->caller_runs = caller_runs;
  s->background = std::make_shared<Sink>();
  init_sink(*s->background, create_ring(prefix_ + "bg" + std::to_string(s->id), options_.ring_capacity, 0,
                                        options_.guardian_pid, options_));
  s->background_name = s->background->producer->name();
  if (options_.worker) {
    // The program's namespace is __main__ itself: pickle (multiprocessing) finds its
    // functions and classes there.
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject* main = PyImport_AddModule("__main__");  // borrowed
    PyObject* ns = main != nullptr ? PyModule_GetDict(main) : nullptr;
    if (ns == nullptr) {
      PyErr_Clear();
      PyGILState_Release(g);
      throw std::runtime_error("cannot find the __main__ module");
    }
    Py_INCREF(ns);
    s->ns = ns;
    PyGILState_Release(g);
  } else {
    PyGILState_STATE g = PyGILState_Ensure();
    PyObject* ns = PyDict_New();
    PyObject* name = PyUnicode_FromString("__main__");
    bool ok = ns != nullptr && name != nullptr && PyDict_SetItemString(ns, "__name__", name) == 0 &&
              PyDict_SetItemString(ns, "__doc__", Py_None) == 0 &&
              PyDict_SetItemString(ns, "__package__", Py_None) == 0 &&
              PyDict_SetItemString(ns, "__loader__", Py_None) == 0 &&
              PyDict_SetItemString(ns, "__spec__", Py_None) == 0 &&
              PyDict_SetItemString(ns, "__builtins__", helpers().builtins) == 0;
    Py_XDECREF(name);
    if (!ok) {
      PyErr_Clear();
      Py_XDECREF(ns);
      PyGILState_Release(g);
      throw std::runtime_error("cannot create the session namespace");
    }
    s->ns = ns;
    PyGILState_Release(g);
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopped_) throw std::runtime_error("engine is shut down");
    if (sessions_.count(s->id) != 0) throw std::invalid_argument("session id in use");
    sessions_[s->id] = s;
    if (!caller_runs) s->thread = std::thread([this, s] { executor_main(s); });
  }
  return s->id;
}

void EngineImpl::run_session(uint64_t session_id) {
  std::shared_ptr<Session> s;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end() || !it->second->caller_runs) throw std::invalid_argument("unknown session");
    s = it->second;
  }
  main_thread_ = pthread_self();
  executor_main(s);
  {
    std::lock_guard<std::mutex> l(mu_);
    s->executor_done = true;
  }
  finished_cv_.notify_all();
}

void EngineImpl::go(uint64_t execution_id) {
  std::shared_ptr<Session> s;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = executions_.find(execution_id);
    if (it == executions_.end()) return;
    it->second->held = false;
    if (auto sit = sessions_.find(it->second->session_id); sit != sessions_.end()) s = sit->second;
  }
  // Notified after unlocking: the executor wakes to a free mutex, not straight into a wait on it.
  if (s != nullptr) {
    note_wake(*s);
    s->cv.notify_all();
  }
}

void EngineImpl::time_out(uint64_t execution_id) {
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = executions_.find(execution_id);
    if (it == executions_.end()) return;
    it->second->timed_out.store(true);
  }
  cancel(execution_id);
}

bool EngineImpl::finished(uint64_t execution_id) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = executions_.find(execution_id);
  return it == executions_.end() || it->second->state == ExecState::kFinished;
}

std::string EngineImpl::session_background_ring(uint64_t session_id) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) throw std::invalid_argument("unknown session");
  return it->second->background_name;
}

int EngineImpl::session_background_ring_fd(uint64_t session_id) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = sessions_.find(session_id);
  if (it == sessions_.end()) throw std::invalid_argument("unknown session");
  return options_.sealed_rings ? it->second->background->producer->fd() : -1;
}

// A ring reservation (EngineOptions::ring_reserve), given back unless a ring took it.
class RingReservation {
 public:
  explicit RingReservation(const EngineOptions& o) : o_(o) {}
  ~RingReservation() {
    if (bytes_ != 0 && o_.ring_unreserve) o_.ring_unreserve(bytes_);
  }
  RingReservation(const RingReservation&) = delete;
  RingReservation& operator=(const RingReservation&) = delete;
  // Asks for `capacity` unless held already (0: a capacity no ring can have; its
  // creation fails on its own).
  void take(uint64_t capacity) {
    if (bytes_ != 0 || capacity == 0 || !o_.ring_reserve) return;
    o_.ring_reserve(capacity);
    bytes_ = capacity;
  }
  void consumed() noexcept { bytes_ = 0; }

 private:
  const EngineOptions& o_;
  uint64_t bytes_ = 0;
};

// The data bytes of a ring asked for with `capacity`, 0 if too large for any.
uint64_t ring_bytes(uint64_t capacity) {
  return capacity > shm::kMaxCapacity ? 0 : std::bit_ceil(std::max<uint64_t>(capacity, shm::kMinCapacity));
}

Accepted EngineImpl::execute(const ExecuteRequest& request) {
  const uint64_t capacity = request.ring_capacity != 0 ? request.ring_capacity : options_.ring_capacity;
  const uint64_t bytes = ring_bytes(capacity);
  // A new ring is asked for before the lock (a round trip to the supervisor), and
  // only when the session's kept ring will not do: a warm session asks nothing.
  RingReservation reservation(options_);
  if (options_.sealed_rings) {
    std::unique_lock<std::mutex> l(mu_);
    // A released execution whose ring is finished becomes the kept ring as soon as
    // its executor is done with it: a client that read FINISHED, released it and
    // executed again at once would otherwise get a new ring (and ask for its bytes).
    auto handing_over = [&] {
      for (const auto& [id, ex] : executions_)
        if (ex->session_id == request.session_id && ex->released && ex->state != ExecState::kFinished &&
            ex->sink.producer->capacity() == bytes && ex->sink.producer->finished())
          return true;
      return false;
    };
    finished_cv_.wait_for(l, std::chrono::seconds(1), [&] { return !handing_over(); });
    auto sit = sessions_.find(request.session_id);
    const bool reusable = sit == sessions_.end() ||
                          (sit->second->spare != nullptr && sit->second->spare->capacity() == bytes);
    l.unlock();
    if (!reusable) reservation.take(bytes);
  }
  std::lock_guard<std::mutex> l(mu_);
  auto sit = sessions_.find(request.session_id);
  if (sit == sessions_.end()) throw std::invalid_argument("unknown session");
  Session& s = *sit->second;
  if (s.closing || stopped_) throw std::runtime_error("session is closing");
  auto ex = std::make_shared<Execution>();
  ex->id = next_execution_id();
  ex->session_id = s.id;
  ex->request = request;
  ex->background = s.background;
  bool reused = false;
  if (s.spare != nullptr && bytes != 0 && s.spare->capacity() == bytes && s.spare->try_reset(ex->id)) {
    init_sink(ex->sink, std::move(s.spare));
    reused = true;
    // Its name is this execution's (the random part kept, so `shmrepl ls` tells it
    // from the ring's label and header): a late reader of the previous one's name is
    // told it is gone, as when a ring was unlinked.
    const std::string& label = ex->sink.producer->name();
    // Nobody is told: the supervisor finds it by the random part and the header's
    // execution id (WorkerPool::open_ring).
    ex->ring_name = prefix_ + std::to_string(ex->id) + label.substr(label.rfind('.'));
  } else {
    reservation.take(bytes);  // the kept ring could not be reset after all (rare): asked under the lock
    init_sink(ex->sink, create_ring(prefix_ + std::to_string(ex->id), capacity, ex->id,
                                    options_.guardian_pid, options_));
    reservation.consumed();
  }
  if (ex->ring_name.empty()) ex->ring_name = ex->sink.producer->name();
  const std::string name = ex->ring_name;

  // An id longer than a Started record of this ring holds is shortened visibly.
  std::string client_id = request.client_execution_id;
  shorten_visibly(client_id, budget_of(ex->sink));
  std::vector<std::byte> rec;
  records::encode_started(rec, {ex->id, ex->sink.seq++, RecordClock::now()}, s.id, client_id);
  write_record(ex->sink, rec, false);  // the ring is new: nobody else writes to it yet

  ex->held = request.held;
  executions_[ex->id] = ex;
  s.queue.push_back(ex);
  // A held execution is woken by go(); waking the executor now would only send it
  // back to sleep (a context switch per execution).
  if (!ex->held) {
    note_wake(s);
    s.cv.notify_one();
  }
  // The client has this ring's descriptor only if it is the one it got last time.
  const bool same_ring = reused && s.last_sent == ex->sink.producer->name();
  s.last_sent = ex->sink.producer->name();
  return {ex->id, name, options_.sealed_rings ? ex->sink.producer->fd() : -1, same_ring};
}

void EngineImpl::executor_main(const std::shared_ptr<Session>& s) {
  PyGILState_STATE g = PyGILState_Ensure();
  PyThreadState* ts = PyEval_SaveThread();
  for (;;) {
    if (s->spin.load(std::memory_order_relaxed)) {
      // The GIL is free meanwhile; a yield now and then lets a thread of ours that
      // waits for this CPU run.
      const uint64_t seen = s->wakes.load(std::memory_order_acquire);
      const uint64_t until = shm::monotonic_ns() + kExecutorSpinNs;
      while (s->wakes.load(std::memory_order_acquire) == seen && shm::monotonic_ns() < until) {
        for (int i = 0; i < 64; ++i) shm::cpu_relax();
        std::this_thread::yield();
      }
    }
    std::shared_ptr<Execution> ex;
    {
      std::unique_lock<std::mutex> l(mu_);
      s->cv.wait(l, [&] { return (!s->queue.empty() && !s->queue.front()->held) || s->closing; });
      if (s->queue.empty()) break;
      ex = std::move(s->queue.front());
      s->queue.pop_front();
      ex->state = ExecState::kRunning;
      s->running = ex;
    }
    PyEval_RestoreThread(ts);
    run(*s, ex);
    ts = PyEval_SaveThread();
    s->idle_since.store(shm::monotonic_ns(), std::memory_order_relaxed);
    std::lock_guard<std::mutex> l(mu_);
    s->running.reset();
  }
  PyEval_RestoreThread(ts);
  PyGILState_Release(g);
}

// The exit code python3 would exit with for this SystemExit (pythonrun.c,
// _Py_HandleSystemExit), printing a non-integer code to stderr as it does.
int32_t system_exit_code(PyObject* value) {
  if (value == nullptr || value == Py_None) return 0;
  PyObject* code = value;
  Py_INCREF(code);
  if (PyExceptionInstance_Check(value)) {
    PyObject* c = PyObject_GetAttrString(value, "code");
    if (c != nullptr) {
      Py_DECREF(code);
      code = c;
      if (code == Py_None) {
        Py_DECREF(code);
        return 0;
      }
    }
    PyErr_Clear();
  }
  int32_t exit_code;
  if (PyLong_Check(code)) {
    exit_code = static_cast<int32_t>(PyLong_AsLong(code));
    PyErr_Clear();
  } else {
    PyObject* err = PySys_GetObject("stderr");
    if (err != nullptr && err != Py_None) PyFile_WriteObject(code, err, Py_PRINT_RAW);
    PyErr_Clear();
    PySys_WriteStderr("\n");
    exit_code = 1;
  }
  Py_DECREF(code);
  return exit_code;
}

// [GIL] The forked child of user code finished the code it inherited: it ends as
// python3 ends a program (uncaught exception printed, exit code, atexit).
[[noreturn]] void exit_forked_child(bool ok) {
  int code = 0;
  if (!ok) {
    if (PyErr_ExceptionMatches(PyExc_SystemExit)) {
      PyObject *type, *value, *tb;
      PyErr_Fetch(&type, &value, &tb);
      PyErr_NormalizeException(&type, &value, &tb);
      code = system_exit_code(value);
      Py_XDECREF(type);
      Py_XDECREF(value);
      Py_XDECREF(tb);
    } else {
      PyErr_Print();
      code = 1;
    }
  }
  PyObject* atexit = PyImport_ImportModule("atexit");
  PyObject* r = atexit != nullptr ? PyObject_CallMethod(atexit, "_run_exitfuncs", nullptr) : nullptr;
  Py_XDECREF(r);
  Py_XDECREF(atexit);
  PyErr_Clear();
  _exit(code);
}

void EngineImpl::run(Session& s, const std::shared_ptr<Execution>& ex_ref) {
  Execution& ex = *ex_ref;
  const ExecuteRequest& req = ex.request;
  ex.thread_ident = PyThread_get_thread_ident();
  ex.start_ns = shm::monotonic_ns();
  set_current_execution(ex_ref, true);
  if (ex.cancel_requested) {  // cancelled between the queue and here
    finish(ex, SHMREPL_FINISH_CANCELLED, 0);
    set_current_execution(nullptr, false);
    return;
  }
  ex.phase = Phase::kUser;
  FdCapture::execution_started(ex_ref);
  if (options_.worker) set_sigint_blocked(false);  // Ctrl-C / cancel reach user code
  rlimit saved_data{};
  const bool limited = options_.worker && req.memory_limit > 0 && limit_heap(req.memory_limit, &saved_data);

  PyObject* saved_argv = nullptr;
  if (!req.argv.empty()) {
    saved_argv = PySys_GetObject("argv");
    Py_XINCREF(saved_argv);
    PyObject* argv = PyList_New(0);
    for (const std::string& a : req.argv) {
      PyObject* item = PyUnicode_DecodeFSDefaultAndSize(a.data(), static_cast<Py_ssize_t>(a.size()));
      if (item != nullptr) PyList_Append(argv, item);
      Py_XDECREF(item);
    }
    PySys_SetObject("argv", argv);
    Py_DECREF(argv);
    PyErr_Clear();
  }
  if (options_.worker && req.script && !s.path0_set) {
    if (!options_.startup_stderr.empty()) {
      // As python3 prints it: before anything of the program.
      PyObject* err = PySys_GetObject("stderr");  // borrowed
      const std::string& said = options_.startup_stderr;
      PyObject* text = PyUnicode_DecodeFSDefaultAndSize(said.data(), static_cast<Py_ssize_t>(said.size()));
      PyObject* r = err != nullptr && text != nullptr ? PyObject_CallMethod(err, "write", "O", text) : nullptr;
      Py_XDECREF(r);
      Py_XDECREF(text);
      PyErr_Clear();
      options_.startup_stderr.clear();
    }
    // As python3 FILE / -c: the program's folder (or '') comes first on sys.path,
    // unless PYTHONSAFEPATH (a fresh worker's sys.flags.safe_path) says not to.
    s.path0_set = true;
    PyObject* flags = PySys_GetObject("flags");  // borrowed
    PyObject* safe = flags != nullptr ? PyObject_GetAttrString(flags, "safe_path") : nullptr;
    const bool safe_path = safe != nullptr && PyObject_IsTrue(safe) == 1;
    Py_XDECREF(safe);
    PyErr_Clear();
    std::string dir;
    if (!req.filename.empty() && req.filename[0] == '/') dir = req.filename.substr(0, req.filename.rfind('/'));
    if (dir.empty() && !req.filename.empty() && req.filename[0] == '/') dir = "/";
    PyObject* path = PySys_GetObject("path");  // borrowed
    PyObject* d = PyUnicode_DecodeFSDefaultAndSize(dir.data(), static_cast<Py_ssize_t>(dir.size()));
    if (!safe_path && path != nullptr && PyList_Check(path) && d != nullptr) PyList_Insert(path, 0, d);
    Py_XDECREF(d);
    PyErr_Clear();
  }
  if (req.script && !req.filename.empty() && req.filename[0] != '<') {
    PyObject* f = PyUnicode_DecodeFSDefault(req.filename.c_str());
    if (f != nullptr) PyDict_SetItemString(s.ns, "__file__", f);
    if (options_.worker && f != nullptr) {
      // The program's globals as python3 FILE has them.
      PyDict_SetItemString(s.ns, "__cached__", Py_None);
      PyObject* machinery = PyImport_ImportModule("importlib.machinery");
      PyObject* loader = machinery != nullptr
                             ? PyObject_CallMethod(machinery, "SourceFileLoader", "sO", "__main__", f)
                             : nullptr;
      if (loader != nullptr) PyDict_SetItemString(s.ns, "__loader__", loader);
      Py_XDECREF(loader);
      Py_XDECREF(machinery);
    }
    Py_XDECREF(f);
    PyErr_Clear();
  }

  // ---- user code: compile, run, and repr of a trailing expression ----
  bool compile_error = false;
  PyObject* value = nullptr;
  PyObject* repr = nullptr;
  bool ok = false;
  {
    PyObject* src = PyBytes_FromStringAndSize(req.code.data(), static_cast<Py_ssize_t>(req.code.size()));
    PyObject* fname = PyUnicode_DecodeFSDefault(req.filename.c_str());
    PyObject* compiled = src != nullptr && fname != nullptr
                             ? PyObject_CallFunctionObjArgs(helpers().compile_cell, src, fname,
                                                            req.script ? Py_True : Py_False, nullptr)
                             : nullptr;
    Py_XDECREF(src);
    Py_XDECREF(fname);
    if (compiled == nullptr || !PyTuple_Check(compiled) || PyTuple_GET_SIZE(compiled) != 2) {
      compile_error = true;
      if (compiled != nullptr && !PyErr_Occurred()) PyErr_SetString(PyExc_SystemError, "bad compile");
    } else {
      PyObject* body = PyTuple_GET_ITEM(compiled, 0);
      PyObject* expr = PyTuple_GET_ITEM(compiled, 1);
      PyObject* r = PyEval_EvalCode(body, s.ns, s.ns);
      ok = r != nullptr;
      Py_XDECREF(r);
      if (ok && expr != Py_None) {
        value = PyEval_EvalCode(expr, s.ns, s.ns);
        ok = value != nullptr;
        if (ok && value != Py_None) {
          repr = PyObject_Repr(value);
          ok = repr != nullptr;
        }
      }
    }
    Py_XDECREF(compiled);
  }
  if (forked_child()) exit_forked_child(ok);  // a fork of user code: never back to us
  PyObject *type = nullptr, *exc = nullptr, *tb = nullptr;
  if (!ok) PyErr_Fetch(&type, &exc, &tb);
  if (limited) setrlimit(RLIMIT_DATA, &saved_data);
  const bool out_of_memory = limited && type != nullptr && PyErr_GivenExceptionMatches(type, PyExc_MemoryError);
  // From here on a cancel has no effect; drop one that is still in flight.
  ex.phase = Phase::kPost;
  if (options_.worker) {
    // A SIGINT sent while user code ran must not hit the next execution.
    set_sigint_blocked(true);
    drain_sigint();
  }
  if (raise_pending_async()) PyErr_Clear();
  ex.cancel_pending.store(false);

  if (saved_argv != nullptr) {
    PySys_SetObject("argv", saved_argv);
    Py_DECREF(saved_argv);
  }
  // What C code and children wrote to fds 1/2 comes before the Result, the traceback and
  // what the program's threads and exit handlers write at its end. With none of these,
  // finish() drains right after: one look into the pipes, not two.
  const bool end_pending = options_.worker && req.script && program_end_pending();
  if (!ok || repr != nullptr || end_pending) {
    bool failed = false;
    if (Sink* sink = acquire_sink(ex, &failed)) {
      drain_fds(*sink, ex, true);
      release_sink(*sink);
    }
  }

  shmrepl_finish_status_t status = SHMREPL_FINISH_OK;
  int32_t exit_code = 0;
  if (!ok) {
    PyErr_NormalizeException(&type, &exc, &tb);
    if (compile_error) {
      // The helper's frames are not the user's: show it as python3 shows a
      // SyntaxError, without a traceback.
      Py_CLEAR(tb);
      if (exc != nullptr) PyException_SetTraceback(exc, Py_None);
    } else if (tb != nullptr && exc != nullptr) {
      PyException_SetTraceback(exc, tb);
    }
    if (type != nullptr && PyErr_GivenExceptionMatches(type, PyExc_SystemExit)) {
      exit_code = system_exit_code(exc);
      status = SHMREPL_FINISH_EXITED;
    } else {
      bool interrupted = type != nullptr && PyErr_GivenExceptionMatches(type, PyExc_KeyboardInterrupt);
      status = interrupted && ex.cancel_requested ? SHMREPL_FINISH_CANCELLED : SHMREPL_FINISH_ERROR;
      report_error(ex, type, exc, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(exc);
    Py_XDECREF(tb);
  } else if (repr != nullptr) {
    std::string text = utf8(repr);
    bool failed = false;
    if (Sink* sink = acquire_sink(ex, &failed)) {
      write_result(*sink, ex.id, text);
      release_sink(*sink);
    }
    // As the interactive interpreter's display hook does.
    PyDict_SetItemString(s.ns, "_", value);
    PyErr_Clear();
  }
  Py_XDECREF(repr);
  Py_XDECREF(value);
  // The program's excepthook ran since end_pending was known: it may have left work.
  if (options_.worker && req.script) end_program(ex, &status, end_pending || (!ok && program_end_pending()));
  if (out_of_memory) status = SHMREPL_FINISH_MEMORY_LIMIT;
  if (ex.timed_out.load()) status = SHMREPL_FINISH_TIMEOUT;
  finish(ex, status, exit_code);
  set_current_execution(nullptr, false);
}

// [GIL] sys.modules[name] (a new reference), or nullptr if it was never imported.
PyObject* imported_module(const char* name) {
  PyObject* n = PyUnicode_FromString(name);
  PyObject* m = n != nullptr ? PyImport_GetModule(n) : nullptr;
  Py_XDECREF(n);
  if (m == nullptr) PyErr_Clear();
  return m;
}

// [GIL] A program ends as python3 ends one: wait for its non-daemon threads (their
// output still goes to this execution), then run its atexit handlers. Cancellable
// like the code itself. Then threading is live again for the session's next program.
bool EngineImpl::program_end_pending() {
  // A module the program never imported has nothing to do at its end (CPython's own
  // end asks sys.modules for threading too).
  PyObject* threading = imported_module("threading");
  PyObject* atexit = imported_module("atexit");
  PyObject* pending = PyObject_CallFunctionObjArgs(helpers().program_end_pending,
                                                   threading != nullptr ? threading : Py_None,
                                                   atexit != nullptr ? atexit : Py_None, nullptr);
  const bool work = pending == nullptr || PyObject_IsTrue(pending) != 0;
  Py_XDECREF(pending);
  Py_XDECREF(atexit);
  Py_XDECREF(threading);
  PyErr_Clear();
  return work;
}

void EngineImpl::end_program(Execution& ex, shmrepl_finish_status_t* status, bool work) {
  PyObject* threading = imported_module("threading");
  PyObject* atexit = imported_module("atexit");
  // Nothing to wait for or run (most programs): no window for SIGINT to open and close.
  if (work) {
    ex.phase = Phase::kUser;
    set_sigint_blocked(false);
    bool interrupted = false;
    if (threading != nullptr) {
      PyObject* r = PyObject_CallMethod(threading, "_shutdown", nullptr);
      if (r == nullptr) {
        interrupted = true;
        if (PyErr_ExceptionMatches(PyExc_KeyboardInterrupt) && ex.cancel_requested)
          *status = SHMREPL_FINISH_CANCELLED;
        PyErr_Clear();
      }
      Py_XDECREF(r);
    }
    if (atexit != nullptr) {
      PyObject* r = PyObject_CallMethod(atexit, "_run_exitfuncs", nullptr);
      if (r == nullptr) PyErr_Clear();
      Py_XDECREF(r);
    }
    ex.phase = Phase::kPost;
    set_sigint_blocked(true);
    drain_sigint();
    if (raise_pending_async()) PyErr_Clear();
    ex.cancel_pending.store(false);
    // With SIGINT blocked again: a late cancel cannot stop this half way.
    if (threading != nullptr) {
      PyObject* r = PyObject_CallFunctionObjArgs(helpers().program_ended, threading,
                                                 interrupted ? Py_True : Py_False, nullptr);
      if (r == nullptr) PyErr_Clear();
      Py_XDECREF(r);
    }
  }
  Py_XDECREF(atexit);
  Py_XDECREF(threading);
}

// The traceback on the execution's stderr exactly as python3 prints an uncaught
// exception (sys.excepthook), then the structured Error record.
void EngineImpl::report_error(Execution& ex, PyObject* type, PyObject* value, PyObject* tb) {
  PyObject* tb_or_none = tb != nullptr ? tb : Py_None;
  PySys_SetObject("last_type", type);
  PySys_SetObject("last_value", value);
  PySys_SetObject("last_traceback", tb_or_none);
  PyObject* hook = PySys_GetObject("excepthook");
  PyObject* r = hook != nullptr ? PyObject_CallFunctionObjArgs(hook, type, value, tb_or_none, nullptr)
                                : nullptr;
  if (r == nullptr) {
    PyErr_Clear();
    PyErr_Display(type, value, tb);
  }
  Py_XDECREF(r);
  PyErr_Clear();

  std::vector<std::string> lines;
  PyObject* list = PyObject_CallFunctionObjArgs(helpers().format_exception, type, value, tb_or_none,
                                                nullptr);
  if (list != nullptr && PyList_Check(list)) {
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); ++i) lines.push_back(utf8(PyList_GET_ITEM(list, i)));
  }
  Py_XDECREF(list);
  PyErr_Clear();
  std::string ename;
  if (type != nullptr && PyType_Check(type)) ename = reinterpret_cast<PyTypeObject*>(type)->tp_name;
  if (auto dot = ename.rfind('.'); dot != std::string::npos) ename.erase(0, dot + 1);
  std::string evalue = str_of(value);

  bool failed = false;
  if (Sink* sink = acquire_sink(ex, &failed)) {
    std::vector<std::byte> rec;
    encode_error_fitted(rec, {ex.id, sink->seq++, RecordClock::now()}, ename, evalue, std::move(lines),
                        sink->producer->max_payload());
    write_record(*sink, rec, true);
    release_sink(*sink);
  }
  PyErr_Clear();
}

void EngineImpl::finish(Execution& ex, shmrepl_finish_status_t status, int32_t exit_code) {
  acquire_owner(ex.sink);
  FdCapture::execution_ending();
  drain_fds(ex.sink, ex, true);
  std::vector<std::byte> rec;
  records::encode_finished(rec, {ex.id, ex.sink.seq++, RecordClock::now()}, status, exit_code,
                           shm::monotonic_ns() - ex.start_ns);
  write_record(ex.sink, rec, true, true);
  ex.sink.closed = true;
  ex.sink.producer->finish();
  FdCapture::execution_finished(&ex);
  release_sink(ex.sink);
  {
    std::lock_guard<std::mutex> l(mu_);
    ex.state = ExecState::kFinished;
    forget_if_done(ex);
  }
  finished_cv_.notify_all();
}

// mu_ held; the execution never ran, so nothing else touches its ring.
void EngineImpl::finish_queued(Execution& ex) {
  std::vector<std::byte> rec;
  records::encode_finished(rec, {ex.id, ex.sink.seq++, RecordClock::now()}, SHMREPL_FINISH_CANCELLED,
                           0, 0);
  write_record(ex.sink, rec, false, true);
  ex.sink.closed = true;
  ex.sink.producer->finish();
  ex.state = ExecState::kFinished;
}

// mu_ held. A finished and released execution's ring name goes away.
void EngineImpl::forget_if_done(Execution& ex) {
  if (ex.state != ExecState::kFinished || !ex.released) return;
  ex.sink.producer->unlink();
  // A sealed ring is kept for the session's next execution (one at a time): the
  // previous spare, if any, goes.
  auto sit = options_.sealed_rings ? sessions_.find(ex.session_id) : sessions_.end();
  if (sit != sessions_.end() && !sit->second->closing) {
    std::unique_ptr<shm::Producer>& spare = sit->second->spare;
    if (spare != nullptr && options_.ring_gone) options_.ring_gone(spare->name());
    spare = std::move(ex.sink.producer);  // the sink is closed: nothing writes to it again
  } else if (options_.ring_gone) {
    options_.ring_gone(ex.sink.producer->name());
  }
  executions_.erase(ex.id);  // may destroy ex
}

bool EngineImpl::cancel(uint64_t execution_id) {
  bool found = false;
  bool signalled = false;
  const uint64_t handled_before = g_sigint_handled.load();
  PyGILState_STATE g = PyGILState_Ensure();
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = executions_.find(execution_id);
    if (it != executions_.end()) {
      std::shared_ptr<Execution> ex = it->second;
      if (ex->state == ExecState::kQueued) {
        found = true;
        if (auto sit = sessions_.find(ex->session_id); sit != sessions_.end()) {
          auto& q = sit->second->queue;
          q.erase(std::remove(q.begin(), q.end(), ex), q.end());
        }
        finish_queued(*ex);
        forget_if_done(*ex);
      } else if (ex->state == ExecState::kRunning) {
        found = true;
        if (ex->phase == Phase::kStarting) {
          ex->cancel_requested = true;
        } else if (ex->phase == Phase::kUser) {
          ex->cancel_requested = true;
          if (ex->in_wait) {
            {
              std::lock_guard<std::mutex> w(ex->wake_mu);
              ex->cancel_pending.store(true, std::memory_order_release);
            }
            ex->wake_cv.notify_all();
          } else if (options_.worker) {
            // As Ctrl-C in python3: also interrupts blocking system calls.
            pthread_kill(main_thread_, SIGINT);
            signalled = true;
          } else {
            PyThreadState_SetAsyncExc(ex->thread_ident, PyExc_KeyboardInterrupt);
          }
        }
      }
    }
  }
  PyGILState_Release(g);
  finished_cv_.notify_all();
  // A SIGINT that lands after the interpreter's last look at its signals and before
  // it blocks (a lock, a read) is seen only when the call returns: python3 leaves
  // such a Ctrl-C to the user to repeat. We repeat it while our handler (not one of
  // the program's) has not run, so a cancel does not wait for the kill.
  for (int i = 0; signalled && i < 20; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (finished(execution_id) || g_sigint_handled.load() != handled_before) break;
    PyGILState_STATE g2 = PyGILState_Ensure();
    bool again = sigint_handler_is_ours();
    {
      std::lock_guard<std::mutex> l(mu_);
      auto it = executions_.find(execution_id);
      again = again && it != executions_.end() && it->second->state == ExecState::kRunning &&
              it->second->phase == Phase::kUser;
    }
    if (again) pthread_kill(main_thread_, SIGINT);
    PyGILState_Release(g2);
    if (!again) break;
  }
  return found;
}

bool EngineImpl::send_input(uint64_t execution_id, const std::string& text) {
  std::shared_ptr<Execution> ex;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = executions_.find(execution_id);
    if (it == executions_.end())
      throw std::invalid_argument("unknown execution " + std::to_string(execution_id));
    ex = it->second;
  }
  {
    std::lock_guard<std::mutex> w(ex->wake_mu);
    if (!ex->input_waiting || ex->input_replied) return false;
    ex->input_text = text;
    ex->input_replied = true;
  }
  ex->wake_cv.notify_all();
  return true;
}

void EngineImpl::wait(uint64_t execution_id) {
  std::unique_lock<std::mutex> l(mu_);
  auto it = executions_.find(execution_id);
  if (it == executions_.end()) throw std::invalid_argument("unknown execution");
  std::shared_ptr<Execution> ex = it->second;
  finished_cv_.wait(l, [&] { return ex->state == ExecState::kFinished; });
}

void EngineImpl::release(uint64_t execution_id) {
  std::lock_guard<std::mutex> l(mu_);
  auto it = executions_.find(execution_id);
  if (it == executions_.end()) throw std::invalid_argument("unknown execution");
  std::shared_ptr<Execution> ex = it->second;
  ex->released = true;
  forget_if_done(*ex);
}

void EngineImpl::close_session(uint64_t session_id) {
  std::shared_ptr<Session> s;
  std::shared_ptr<Execution> running;
  {
    std::lock_guard<std::mutex> l(mu_);
    auto it = sessions_.find(session_id);
    if (it == sessions_.end()) throw std::invalid_argument("unknown session");
    s = it->second;
    if (s->closing) return;
    s->closing = true;
    for (auto& q : s->queue) finish_queued(*q);
    s->queue.clear();
    running = s->running;
    // Nobody reads these rings any more: a writer blocked on one gives up.
    if (running != nullptr) running->sink.abandon.store(true);
    s->background->abandon.store(true);
    s->wakes.fetch_add(1, std::memory_order_release);
    s->cv.notify_all();
  }
  finished_cv_.notify_all();
  if (running != nullptr) cancel(running->id);
  if (s->thread.joinable()) s->thread.join();
  if (s->caller_runs) {
    std::unique_lock<std::mutex> l(mu_);
    finished_cv_.wait(l, [&] { return s->executor_done; });
  }

  {
    PyGILState_STATE g = PyGILState_Ensure();
    Py_CLEAR(s->ns);
    Sink& bg = *s->background;
    acquire_owner(bg);
    std::vector<std::byte> rec;
    records::encode_finished(rec, {0, bg.seq++, RecordClock::now()}, SHMREPL_FINISH_OK, 0, 0);
    write_record(bg, rec, true, true);
    bg.closed = true;
    bg.producer->finish();
    release_sink(bg);
    PyGILState_Release(g);
  }
  s->background->producer->unlink();

  std::lock_guard<std::mutex> l(mu_);
  if (s->spare != nullptr && options_.ring_gone) options_.ring_gone(s->spare->name());
  s->spare.reset();
  sessions_.erase(session_id);
  std::vector<std::shared_ptr<Execution>> mine;
  for (auto& [id, ex] : executions_)
    if (ex->session_id == session_id) mine.push_back(ex);
  for (auto& ex : mine) {
    ex->released = true;
    forget_if_done(*ex);
  }
}

void EngineImpl::shutdown() {
  std::vector<uint64_t> ids;
  {
    std::lock_guard<std::mutex> l(mu_);
    if (stopped_) return;
    stopped_ = true;
    for (auto& [id, s] : sessions_) ids.push_back(id);
  }
  for (uint64_t id : ids) close_session(id);
  fd_capture.reset();
  std::lock_guard<std::mutex> l(mu_);
  for (auto& [id, ex] : executions_) ex->sink.producer->unlink();
  executions_.clear();
}

}  // namespace

void preinitialize() {
  ensure_python();
  // Every worker imports these (its SIGINT handler, threads, atexit, programs run as
  // scripts): importing them here, once, takes ~1.5 ms off each worker's start. The
  // frozen objects are then left alone by the workers' garbage collector, so their
  // pages stay shared with the zygote instead of being copied on first collection.
  PyGILState_STATE g = PyGILState_Ensure();
  for (const char* name : {"signal", "threading", "atexit", "warnings", "traceback", "linecache",
                           "tokenize", "importlib.machinery", "importlib.util"}) {
    PyObject* m = PyImport_ImportModule(name);
    if (m == nullptr) PyErr_Clear();  // a worker that needs it reports the error itself
    Py_XDECREF(m);
  }
  PyObject* gc = PyImport_ImportModule("gc");
  PyObject* r = gc != nullptr ? PyObject_CallMethod(gc, "freeze", nullptr) : nullptr;
  if (r == nullptr) PyErr_Clear();
  Py_XDECREF(r);
  Py_XDECREF(gc);
  PyGILState_Release(g);
}

pid_t fork_interpreter() {
  PyGILState_STATE g = PyGILState_Ensure();
  PyOS_BeforeFork();
  const pid_t pid = fork();
  if (pid == 0) {
    PyOS_AfterFork_Child();
  } else {
    PyOS_AfterFork_Parent();
  }
  PyGILState_Release(g);
  return pid;
}

void prepare_worker() {
  ensure_python();
  worker_process_setup();
  // What a session's set-up then finds done: os.environ walked and compared (its
  // pages copied from the zygote's; the session's environment is mostly this one),
  // the streams' codec and locale looked up for the engine's environment.
  PyGILState_STATE g = PyGILState_Ensure();
  set_environment(current_environment(), false);  // changes nothing
  configure_worker_streams();
  PyGILState_Release(g);
  set_sigint_blocked(true);  // before the fd forwarder's thread starts
  g_prepared_capture = FdCapture::start();
  g_worker_prepared = true;
}

std::unique_ptr<Engine> Engine::start(const EngineOptions& options) {
  ensure_python();
  if (options.worker) become_worker(options);
  auto engine = std::make_unique<EngineImpl>(options);
  if (options.capture_fds)
    engine->fd_capture = g_prepared_capture != nullptr ? std::move(g_prepared_capture) : FdCapture::start();
  return engine;
}

}  // namespace shmrepl::engine
