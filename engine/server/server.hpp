// The engine's control socket: accepts connections from peers of our uid and
// serves them all from one thread with epoll (docs/architecture.md, "Processes").
// Each connection's bytes are read as they arrive; a complete request that may
// wait (opening or closing a session, a shutdown) runs on a small bounded pool of
// threads while the loop serves the other connections.
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "dispatcher.hpp"
#include "limits.hpp"
#include "log.hpp"
#include "shmrepl/engine/engine.hpp"

namespace shmrepl::server {

class WorkerPool;
class TaskPool;

class Server {
 public:
  explicit Server(engine::Engine& engine, const Limits& limits = {});
  // The supervisor: sessions live in worker processes of `pool`.
  explicit Server(WorkerPool& pool, const Limits& limits = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds `path` (removing a stale socket: the caller holds the socket's lock, so
  // no live engine owns it) and listens. Throws std::system_error.
  void listen(const std::string& path);
  // Serves until request_stop() (a signal, or a client's Shutdown request).
  // Throws only if epoll itself cannot be set up.
  void run();
  // Async-signal-safe: makes run() return.
  void request_stop() noexcept;
  // After run(): ends every connection (their sessions are closed), waits for the
  // requests still running, and removes the socket.
  void close();

 private:
  using Clock = std::chrono::steady_clock;
  struct Conn;
  struct Done;

  void init();
  void accept_ready();
  void on_accept_error(int err);
  void admit(int fd, bool spare);
  void on_readable(Conn& c);
  void on_message(Conn& c);
  void submit_request(Conn& c, std::vector<uint8_t> body,
                      std::array<int, control::kMaxPassedFds> fds);
  void send(Conn& c, Reply reply);
  void flush(Conn& c);
  void after_sent(Conn& c);
  void interest(Conn& c, uint32_t events);
  void close_conn(uint64_t id);
  void drain_done();
  void hand_back(Conn& c, Done& d);
  void check_deadlines(Clock::time_point now);
  void resume_and_check(Clock::time_point now, Clock::time_point* next_check);
  // When the connection is closed if nothing changes (see Limits::hello_timeout_ms).
  void update_deadline(Conn& c);
  void post(Done done);

  engine::Engine* engine_ = nullptr;
  WorkerPool* pool_ = nullptr;
  Limits limits_;
  Quota quota_;
  std::string path_;  // [mu_]
  std::mutex mu_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  int epoll_fd_ = -1;
  int done_fd_ = -1;   // eventfd: the pool finished something (done_)
  int spare_fd_ = -1;  // given up at EMFILE to answer one client with E_LIMIT
  bool listening_ = false;
  bool stopping_ = false;
  Clock::time_point accept_paused_until_{};
  std::unique_ptr<TaskPool> tasks_;
  std::mutex done_mu_;
  std::vector<Done> done_;  // [done_mu_]
  uint64_t next_id_ = 1;
  std::map<uint64_t, std::unique_ptr<Conn>> conns_;  // the loop's thread only
  uint32_t refused_open_ = 0;                        // connections kept only to answer E_LIMIT
  ThrottledLog accept_log_, hello_log_, timeout_log_, refuse_log_, error_log_;
};

}  // namespace shmrepl::server
