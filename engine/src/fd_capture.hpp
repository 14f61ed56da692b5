// Capture of raw writes to fd 1 and 2 (os.write from C, C extensions, child
// processes): pipes are dup2'ed onto 1 and 2, and what comes out of them becomes
// Output records.
//
// Attribution: pipe data goes to the most recently started execution that still
// runs (fds are process-wide, so with several sessions running at once a child
// of an older one may land in the newer one); when none runs, to the execution
// that finished last, i.e. to its session's background ring.
//
// Order: a Python-level write first drains the pipes into the ring when its
// execution is the fd target, so `os.write(1, ...)`, a child's echo, then print()
// arrive in that order. To keep the write path free of system calls this drain
// runs at most every kDrainInterval of wall time unless the forwarder thread has
// seen data; a raw write by C code in the same thread less than that after a
// Python-level write may therefore come after the next Python-level write.
// (os.write to fd 1/2 from Python is exact: it is turned into a record directly.)
// Each execution drains the pipes before its Result/Error and Finished records.
#pragma once

#include <memory>

#include "execution.hpp"

namespace shmrepl::engine {

class FdCapture {
 public:
  // Redirects fds 1 and 2 (one capture per process). Throws std::runtime_error.
  // GIL not held.
  static std::unique_ptr<FdCapture> start();
  // Drains what is left, restores fds 1 and 2, stops the forwarder. GIL not held.
  ~FdCapture();
  FdCapture(const FdCapture&) = delete;
  FdCapture& operator=(const FdCapture&) = delete;

  // [GIL] An execution starts running user code / has finished.
  static void execution_started(const std::shared_ptr<Execution>& ex);
  static void execution_finished(Execution* ex);

  struct State;

 private:
  FdCapture() = default;
  std::unique_ptr<State> state_;
};

}  // namespace shmrepl::engine
