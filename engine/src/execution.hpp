// The state the engine keeps per ring (Sink) and per execution, shared by the
// control side (engine.cpp), the writers (writer.cpp) and fd capture.
//
// Locking: fields marked [GIL] are read and written only with the GIL held.
// Fields marked [mu] are guarded by the engine mutex. Lock order: GIL, then a
// mutex; never take the GIL while holding a mutex.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "shmrepl/engine/engine.hpp"
#include "shmrepl/shm/producer.hpp"

namespace shmrepl::engine {

// One ring and the state of its single producer. Several threads may write to the
// same ring: Python threads (with the GIL) and the fd forwarder (without it). The
// owner flag `busy` makes them take turns; it does not depend on the GIL (one
// compare-exchange when free, no system call), so the forwarder can write while C
// code holds the GIL. A writer keeps it for a whole write, even while it waits on a
// full ring (with the GIL released), so the records of one write are consecutive.
struct Sink {
  std::unique_ptr<shm::Producer> producer;
  uint64_t max_data = 0;     // data bytes one Output record holds
  uint64_t seq = 0;          // [owner] next record's seq
  // The owner flag: acquire on taking it, release on handing it back, so [owner]
  // fields are ordered between owners.
  std::atomic<bool> busy{false};
  // A GIL holder writes on emit's fast path, without the owner flag (see emit). A
  // writer without the GIL that takes the flag waits until this is false again.
  std::atomic<bool> gil_writer{false};
  bool closed = false;       // [GIL and owner] its Finished record is written; nothing follows
  std::atomic<int> waiters{0};  // threads waiting for the owner flag
  // Owner hand-off to waiters (they wait without the GIL).
  std::mutex handoff_mu;
  std::condition_variable handoff_cv;
  // Set when nobody will read any more (session closed, shutdown): a writer
  // blocked on a full ring drops its data instead of waiting forever.
  std::atomic<bool> abandon{false};
};

enum class ExecState { kQueued, kRunning, kFinished };
// Where a running execution is, for cancel(): before user code, in it, or after.
enum class Phase { kStarting, kUser, kPost };

struct Execution {
  uint64_t id = 0;
  uint64_t session_id = 0;
  ExecuteRequest request;
  Sink sink;
  std::string ring_name;  // its name: the ring's, or a new one for a reused ring
  // The session's background ring: output of this execution's threads after it finished.
  std::shared_ptr<Sink> background;

  ExecState state = ExecState::kQueued;  // [mu], and [GIL] for the move to kFinished
  bool held = false;                     // [mu] queued, not to run before go()
  bool released = false;                 // [mu]
  Phase phase = Phase::kStarting;        // [GIL]
  uint64_t start_ns = 0;                 // monotonic, when it started running

  // Cancellation. cancel() holds the GIL: when the executor thread sits in one of
  // our own waits (sleep, full ring, owner flag) it sets cancel_pending and wakes
  // it; otherwise it sets an asynchronous KeyboardInterrupt on the thread.
  std::atomic<bool> cancel_pending{false};
  bool cancel_requested = false;  // [GIL] at least one cancel() reached it
  std::atomic<bool> timed_out{false};  // its timeout passed: it finishes Timeout
  bool in_wait = false;           // [GIL] the executor is inside one of our waits
  unsigned long thread_ident = 0; // [GIL] the executor thread's Python id
  std::mutex wake_mu;             // with wake_cv: wakes the executor's sleep
  std::condition_variable wake_cv;
  // input() waiting for the client's InputReply (an InputRequest record is out).
  bool input_waiting = false;     // [wake_mu]
  bool input_replied = false;     // [wake_mu]
  std::string input_text;         // [wake_mu]
};

}  // namespace shmrepl::engine
