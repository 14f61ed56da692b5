#include "runtime.hpp"

#include <mutex>
#include <stdexcept>
#include <string>

#include "pyhooks.hpp"

#ifndef SHMREPL_PYTHON_EXECUTABLE
#define SHMREPL_PYTHON_EXECUTABLE "/usr/bin/python3"
#endif

namespace shmrepl::engine {

namespace {

// Compiling happens in Python (ast), running in C++: PyEval_EvalCode adds no
// frame of ours to the traceback, so it reads exactly as python3's.
constexpr const char* kHelperSource = R"PY(
import ast
import traceback

def compile_cell(source, filename, script):
    if script:
        return compile(source, filename, 'exec', dont_inherit=True), None
    tree = ast.parse(source, filename, 'exec')
    expr = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
        expr = compile(last, filename, 'eval', dont_inherit=True)
    return compile(tree, filename, 'exec', dont_inherit=True), expr

format_exception = traceback.format_exception

# A program's end in a worker (CPython 3.11's threading): threading._shutdown() joins
# the non-daemon threads and atexit._run_exitfuncs() runs the handlers.

def program_end_pending(threading, atexit):
    # Anything for the end to do: handlers to run, or a thread _shutdown() would join.
    # Runs after every program: a loop, ~4x faster than any() over a generator.
    if atexit is not None and atexit._ncallbacks():
        return True
    if threading is None:
        return False
    if threading._threading_atexits:
        return True
    main = threading._main_thread._tstate_lock
    with threading._shutdown_locks_lock:
        for lock in threading._shutdown_locks:
            if lock is not main and lock.locked():
                return True
    return False

def program_ended(threading, interrupted):
    # _shutdown() left threading as at interpreter exit: the main thread stopped,
    # _register_atexit refused. The session's next program needs it live again.
    main = threading._main_thread
    if main.ident == threading.get_ident():
        lock = main._tstate_lock
        if lock is None or not lock.locked():
            main._is_stopped = False
            # A new sentinel of this thread state: released only when it is deleted.
            main._set_tstate_lock()
    if interrupted:
        # The threads the end no longer waits for are not the next program's to join.
        with threading._shutdown_locks_lock:
            threading._shutdown_locks.intersection_update((main._tstate_lock,))
    threading._SHUTTING_DOWN = False
    # concurrent.futures registers its exit hook once, at import: the hook stays and
    # runs at each program's end (it stops the pools' threads), and its flag that
    # refuses new work from then on is reset here, or no pool would work again.
    import sys
    thread = sys.modules.get('concurrent.futures.thread')
    if thread is not None:
        with thread._global_shutdown_lock:
            thread._shutdown = False
    process = sys.modules.get('concurrent.futures.process')
    if process is not None:
        process._global_shutdown = False
    # Modules that register with atexit once, at import: again, for the next program's
    # end (registered first, they run last, as after an import at a program's top).
    import atexit
    logging = sys.modules.get('logging')
    if logging is not None:  # flushes and closes the handlers, after the others
        atexit.register(logging.shutdown)
    util = sys.modules.get('multiprocessing.util')
    if util is not None:  # joins the non-daemon child processes
        util._exiting = False
        atexit.register(util._exit_function)
)PY";

Helpers g_helpers{};

[[noreturn]] void fail(const std::string& what) {
  if (PyErr_Occurred()) PyErr_Print();
  throw std::runtime_error("shmrepl engine: " + what);
}

void init_python() {
  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  // The engine owns its signals; cancel uses asynchronous exceptions instead.
  config.install_signal_handlers = 0;
  config.parse_argv = 0;
  PyStatus st = PyConfig_SetBytesString(&config, &config.program_name, SHMREPL_PYTHON_EXECUTABLE);
  if (!PyStatus_Exception(st)) st = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(st))
    throw std::runtime_error(std::string("shmrepl engine: Python init failed: ") +
                             (st.err_msg != nullptr ? st.err_msg : "?"));

  install_hooks();

  PyObject* mod = PyModule_New("_shmrepl_engine");
  if (mod == nullptr) fail("helper module");
  PyObject* dict = PyModule_GetDict(mod);
  PyObject* builtins = PyImport_ImportModule("builtins");
  if (builtins == nullptr || PyDict_SetItemString(dict, "__builtins__", builtins) < 0) fail("builtins");
  PyObject* r = PyRun_String(kHelperSource, Py_file_input, dict, dict);
  if (r == nullptr) fail("helper module source");
  Py_DECREF(r);
  g_helpers.compile_cell = PyDict_GetItemString(dict, "compile_cell");
  g_helpers.format_exception = PyDict_GetItemString(dict, "format_exception");
  g_helpers.program_end_pending = PyDict_GetItemString(dict, "program_end_pending");
  g_helpers.program_ended = PyDict_GetItemString(dict, "program_ended");
  g_helpers.builtins = builtins;  // kept for the process lifetime
  if (g_helpers.compile_cell == nullptr || g_helpers.format_exception == nullptr ||
      g_helpers.program_end_pending == nullptr || g_helpers.program_ended == nullptr)
    fail("helpers");
  // `mod` stays alive for the process lifetime too: the helpers live in its dict.
  PyEval_SaveThread();
}

}  // namespace

void ensure_python() {
  static std::once_flag once;
  std::call_once(once, init_python);
}

const Helpers& helpers() { return g_helpers; }

}  // namespace shmrepl::engine
