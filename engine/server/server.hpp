// The engine's control socket: accepts connections from peers of our uid and
// serves each on its own thread through a Dispatcher.
#pragma once

#include <atomic>
#include <list>
#include <mutex>
#include <string>
#include <thread>

#include "shmrepl/engine/engine.hpp"

namespace shmrepl::server {

class WorkerPool;

class Server {
 public:
  explicit Server(engine::Engine& engine);
  // The supervisor: sessions live in worker processes of `pool`.
  explicit Server(WorkerPool& pool);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Binds `path` (removing a stale socket: the caller holds the socket's lock, so
  // no live engine owns it) and listens. Throws std::system_error.
  void listen(const std::string& path);
  // Serves until request_stop() (a signal, or a client's Shutdown request).
  void run();
  // Async-signal-safe: makes run() return.
  void request_stop() noexcept;
  // After run(): ends every connection (their sessions are closed), joins the
  // threads, and removes the socket.
  void close();

 private:
  struct Conn {
    int fd;
    std::thread thread;
    std::atomic<bool> done{false};
  };
  void serve(Conn* conn);
  void reap(bool all);

  engine::Engine* engine_ = nullptr;
  WorkerPool* pool_ = nullptr;
  std::string path_;
  int listen_fd_ = -1;
  int wake_[2] = {-1, -1};
  std::mutex mu_;
  std::list<Conn> conns_;
};

}  // namespace shmrepl::server
