// The embedded interpreter: initialized once per process, never finalized (an
// interpreter cannot be re-initialized reliably once extension modules loaded).
#pragma once

#include <Python.h>

namespace shmrepl::engine {

// Initializes CPython and installs the engine's hooks on the first call; returns
// with the GIL released. Thread-safe. Throws std::runtime_error on failure.
void ensure_python();

// Functions of the engine's helper module (GIL held; borrowed references).
struct Helpers {
  PyObject* compile_cell;         // (source: bytes, filename, script) -> (code, expr code | None)
  PyObject* format_exception;     // traceback.format_exception
  PyObject* program_end_pending;  // (threading | None, atexit | None) -> the end has work
  PyObject* program_ended;        // (threading, interrupted: bool): threading live again after it
  PyObject* builtins;             // the builtins module
};
const Helpers& helpers();

}  // namespace shmrepl::engine
