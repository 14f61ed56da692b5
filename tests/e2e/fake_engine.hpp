// An engine core without Python, for tests of the control plane: the "code" is a
// tiny script, one command per line:
//   out TEXT   TEXT + "\n" on stdout        err TEXT   the same on stderr
//   sleep MS   pause                         hang       run until cancelled
//   exit N     finish as sys.exit(N)
// Each execution runs on its own thread and writes real records into a real ring.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "shmrepl/engine/engine.hpp"
#include "shmrepl/shm/producer.hpp"

namespace shmrepl::test {

class FakeEngine final : public engine::Engine {
 public:
  explicit FakeEngine(const engine::EngineOptions& options) : options_(options) {}
  ~FakeEngine() override;

  uint64_t open_session() override;
  void close_session(uint64_t session_id) override;
  engine::Accepted execute(const engine::ExecuteRequest& request) override;
  bool cancel(uint64_t execution_id) override;
  void wait(uint64_t execution_id) override;
  void release(uint64_t execution_id) override;
  void shutdown() override;

 private:
  struct Exec {
    uint64_t session = 0;
    std::unique_ptr<shm::Producer> ring;
    std::thread thread;
    std::atomic<bool> cancel{false};
    std::atomic<bool> done{false};
    bool released = false;
  };
  void run(Exec* e, std::string code);
  void drop(std::unique_lock<std::mutex>& lock, uint64_t id);

  engine::EngineOptions options_;
  std::mutex mu_;
  uint64_t next_session_ = 1;
  uint64_t next_exec_ = 1;
  std::map<uint64_t, bool> sessions_;
  std::map<uint64_t, std::unique_ptr<Exec>> execs_;
};

}  // namespace shmrepl::test
