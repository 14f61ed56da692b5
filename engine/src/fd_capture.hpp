// Capture of raw writes to fd 1 and 2 (os.write from C, C extensions, child
// processes): pipes are dup2'ed onto 1 and 2, and what comes out of them becomes
// Output records. The forwarder thread writes them without the GIL (it takes the
// ring's owner flag), so C code holding the GIL can write any amount.
//
// Attribution: pipe data goes to the most recently started execution that still
// runs when it is read (fds are process-wide, so with several sessions running at
// once a child of an older one may land in the newer one); when none runs, to the
// execution that finished last, i.e. to its session's background ring. The
// forwarder never waits for a background ring: what does not fit is parked (up to
// kParkCap; then the pipes are not read until an execution runs).
//
// Order: before a Python-level write appends a record, it drains the pipes into
// the ring (when its execution is the fd target), so `os.write(1, ...)`, a child's
// echo, then print() arrive in that order. To keep tight write loops free of
// system calls, the pipes are looked into (one poll) only when the write follows a
// quiet time of kQuietGap (2 us) since the previous one, or when the forwarder
// thread has seen data. The one case left unordered: C code that writes to fd 1/2
// directly, with the GIL held, less than 2 us after a Python-level write and less
// than the forwarder's wake-up time before the next one. os.write to fd 1/2 from
// Python is always exact: it becomes a record directly. Between fd 1 and fd 2
// the order of raw writes is not kept (two pipes; stdout's data is taken first).
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
  // [GIL] Just before an execution's FINISHED record: puts back a capture pipe that
  // C code of it closed (fd 1 or 2), before its client can see the end and make the
  // engine open a descriptor that would take the free number.
  static void execution_ending();

  struct State;

 private:
  FdCapture() = default;
  std::unique_ptr<State> state_;
};

}  // namespace shmrepl::engine
