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
  g_helpers.builtins = builtins;  // kept for the process lifetime
  if (g_helpers.compile_cell == nullptr || g_helpers.format_exception == nullptr) fail("helpers");
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
