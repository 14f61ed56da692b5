// The client side of the C ABI: one connection to an engine, shared by the client
// handle and its execution handles (which may outlive the client handle).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "control.hpp"
#include "rings.hpp"
#include "shmrepl/shmrepl.h"

namespace shmrepl::client {

class Connection {
 public:
  // `worker`: a connection to a session's worker process; its end means the
  // session died (E_SESSION_DIED), not the engine.
  // `request_timeout_ns` > 0: a request whose reply does not come in time fails
  // with E_TIMEOUT and leaves the connection unusable (E_STATE after).
  explicit Connection(int fd, bool worker = false, int64_t request_timeout_ns = 0);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Sends the frame `build(request_id)` gives and reads its reply. On an Error reply
  // returns its code; on a reply of another type than `expected`, E_PROTOCOL.
  // Otherwise calls `take(reply)` (under the lock) and returns OK.
  // `pass_fds`: descriptors sent along with the request (SCM_RIGHTS).
  template <typename Build, typename Take>
  shmrepl_status_t request(Build&& build, control::ctl::Body expected, Take&& take,
                           std::span<const int> pass_fds = {}) {
    std::lock_guard lock(mu_);
    uint64_t id = 0;
    shmrepl_status_t st = begin(&id);
    if (st != SHMREPL_OK) return st;
    const control::ctl::Message* reply = nullptr;
    st = exchange(build(id), id, expected, &reply, pass_fds);
    if (st != SHMREPL_OK) return st;
    take(reply);
    return SHMREPL_OK;
  }

  // Sends a request whose reply nobody waits for (Release: its only answer is Ok or
  // "unknown"): the reply is read and dropped before the next request's reply, so
  // closing an execution costs no round trip.
  template <typename Build>
  shmrepl_status_t post(Build&& build) {
    std::lock_guard lock(mu_);
    uint64_t id = 0;
    shmrepl_status_t st = begin(&id);
    if (st != SHMREPL_OK) return st;
    st = send(build(id), {});
    if (st == SHMREPL_OK) unread_.push_back(id);
    return st;
  }

  // Marks the connection closed and closes the socket (the engine then cleans up).
  void close() noexcept;
  // Waits until the engine closes the connection (after a Shutdown request), at
  // most timeout_ns. OK or E_TIMEOUT.
  shmrepl_status_t wait_closed(int64_t timeout_ns);
  // Sets the time the next requests may take (0: none), e.g. Hello's.
  void set_timeout(int64_t timeout_ns) noexcept;
  int64_t request_timeout_ns() const noexcept { return request_timeout_ns_; }

  // The i-th descriptor that came with the last reply (SCM_RIGHTS), or -1. Call
  // from the `take` callback of request(); the caller owns it then.
  int take_received_fd(std::size_t i = 0) noexcept {
    int fd = received_fds_[i];
    received_fds_[i] = -1;
    return fd;
  }

  uint32_t engine_pid = 0;
  // Background ring names and worker connections of this client's open sessions
  // (guarded by bg_mu).
  std::mutex bg_mu;
  std::map<uint64_t, std::string> background_rings;
  std::map<uint64_t, std::shared_ptr<Connection>> workers;
  // A worker connection: the ring of the last execution, kept (its descriptor)
  // for the next one, which the worker may run in it again (same_ring).
  // Used under the connection's lock (request()'s `take`).
  std::shared_ptr<abi::RingEntry> last_ring;
  std::string last_ring_name;

 private:
  shmrepl_status_t begin(uint64_t* id);
  shmrepl_status_t exchange(const control::Frame& frame, uint64_t id, control::ctl::Body expected,
                            const control::ctl::Message** reply, std::span<const int> pass_fds);
  shmrepl_status_t send(const control::Frame& frame, std::span<const int> pass_fds);
  shmrepl_status_t read_reply(uint64_t id, const control::ctl::Message** out);
  shmrepl_status_t die(shmrepl_status_t status, std::string text);

  std::mutex mu_;
  int fd_;
  bool worker_ = false;
  int received_fds_[2] = {-1, -1};  // at most: SessionOpened's worker connection and background ring
  void close_received() noexcept;
  bool closed_ = false;  // by shmrepl_client_close
  bool dead_ = false;    // the engine went away or broke the protocol
  bool timed_out_ = false;  // a request timed out: the stream is out of step
  int64_t request_timeout_ns_ = 0;  // from the options
  int64_t timeout_ns_ = 0;          // what the next request may take
  int64_t deadline_ns_ = 0;         // the current request's (control::deadline_after)
  uint64_t next_id_ = 1;
  std::vector<uint8_t> body_;  // the last reply
  std::deque<uint64_t> unread_;  // posted requests whose replies are still to be dropped
};

// Connects (and auto-starts) as shmrepl_client_connect documents.
shmrepl_status_t connect(const shmrepl_client_options_t* options,
                         std::shared_ptr<Connection>* out);

}  // namespace shmrepl::client

struct shmrepl_client {
  std::shared_ptr<shmrepl::client::Connection> conn;
};

struct shmrepl_execution {
  std::shared_ptr<shmrepl::client::Connection> conn;
  uint64_t id = 0;
  std::string ring_name;
  bool ring_registered = false;  // its descriptor is in the ring registry (abi/src/rings.hpp)
};
