// The objects the engine puts into the interpreter: sys.stdout / sys.stderr
// writers (a heap type), a print() fast path, a cancellable time.sleep, an
// os.write that turns writes to captured fds 1/2 into records, and a thread
// start hook that hands the current execution to new threads.
#pragma once

#include <Python.h>

namespace shmrepl::engine {

// Installs everything above. GIL held; once per process. Throws on failure.
void install_hooks();
// A forked worker: the process whose os.close is ours is this one now, and
// os._exit is the real one (it ends the worker, and the supervisor reports its code).
void reset_engine_pid() noexcept;
// A worker, once its environment is the session's: the writers take the encoding and
// errors python3 would take from it (locale, PYTHONIOENCODING, PYTHONUTF8), are
// write-through, and close() closes them; sys.stdin is reconfigured to match. [GIL]
void configure_worker_streams();

// A worker: isatty() of sys.stdout/sys.stderr (and of their fds 1/2 through os.isatty)
// and the terminal size of fds 1/2 answer for these descriptors of the caller
// (-1: as before, not a terminal).
void set_terminal_fds(int stdout_fd, int stderr_fd) noexcept;

// A worker whose session has no stdin: input() and getpass.getpass() of an
// execution's own thread send an InputRequest record and wait for the reply.
void set_input_requests(bool on) noexcept;

// Set by fd capture: true if `fd` (1 or 2) is still our capture pipe. [GIL]
using FdCapturedFn = bool (*)(int fd);
void set_fd_captured_fn(FdCapturedFn fn) noexcept;

}  // namespace shmrepl::engine
