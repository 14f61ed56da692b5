#include "fake_engine.hpp"

#include <unistd.h>

#include <chrono>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "records.hpp"
#include "shmrepl/shm/sys.hpp"

namespace shmrepl::test {

namespace {

void put(shm::Producer& ring, const std::vector<std::byte>& payload) {
  ring.write(std::span<const std::byte>(payload.data(), payload.size()));
}

}  // namespace

FakeEngine::~FakeEngine() { shutdown(); }

uint64_t FakeEngine::open_session() {
  std::lock_guard lock(mu_);
  sessions_[next_session_] = true;
  return next_session_++;
}

engine::Accepted FakeEngine::execute(const engine::ExecuteRequest& r) {
  std::lock_guard lock(mu_);
  if (sessions_.count(r.session_id) == 0) throw std::invalid_argument("unknown session");
  const uint64_t id = next_exec_++;
  auto e = std::make_unique<Exec>();
  e->session = r.session_id;
  shm::ProducerOptions po;
  po.capacity = r.ring_capacity != 0 ? r.ring_capacity : options_.ring_capacity;
  po.execution_id = id;
  e->ring = shm::Producer::create(
      "shmrepl-fake." + std::to_string(getpid()) + "." + std::to_string(id), po);
  std::vector<std::byte> buf;
  records::encode_started(buf, {id, 0, shm::realtime_ns()}, r.session_id, r.client_execution_id);
  put(*e->ring, buf);
  Exec* raw = e.get();
  e->thread = std::thread([this, raw, code = r.code] { run(raw, code); });
  engine::Accepted a{id, e->ring->name()};
  execs_[id] = std::move(e);
  return a;
}

void FakeEngine::run(Exec* e, std::string code) {
  const uint64_t id = e->ring->execution_id();
  uint64_t seq = 1;
  const uint64_t t0 = shm::monotonic_ns();
  auto meta = [&] { return records::Meta{id, seq++, shm::realtime_ns()}; };
  auto output = [&](shmrepl_stream_t stream, const std::string& text) {
    std::vector<std::byte> buf(records::output_size(text.size()));
    records::encode_output(buf, meta(), stream,
                           std::as_bytes(std::span<const char>(text.data(), text.size())));
    put(*e->ring, buf);
  };
  shmrepl_finish_status_t status = SHMREPL_FINISH_OK;
  int32_t exit_code = 0;
  std::istringstream in(code);
  std::string line;
  while (status == SHMREPL_FINISH_OK && std::getline(in, line)) {
    if (e->cancel.load()) status = SHMREPL_FINISH_CANCELLED;
    else if (line.rfind("out ", 0) == 0) output(SHMREPL_STREAM_STDOUT, line.substr(4) + "\n");
    else if (line.rfind("err ", 0) == 0) output(SHMREPL_STREAM_STDERR, line.substr(4) + "\n");
    else if (line.rfind("sleep ", 0) == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(std::stoi(line.substr(6))));
    else if (line == "hang") {
      while (!e->cancel.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      status = SHMREPL_FINISH_CANCELLED;
    } else if (line.rfind("exit ", 0) == 0) {
      status = SHMREPL_FINISH_EXITED;
      exit_code = std::stoi(line.substr(5));
    }
  }
  if (status == SHMREPL_FINISH_OK && e->cancel.load()) status = SHMREPL_FINISH_CANCELLED;
  std::vector<std::byte> buf;
  records::encode_finished(buf, meta(), status, exit_code, shm::monotonic_ns() - t0);
  put(*e->ring, buf);
  e->ring->finish();
  std::lock_guard lock(mu_);
  e->done.store(true);
  if (e->released) e->ring->unlink();
}

bool FakeEngine::cancel(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = execs_.find(id);
  if (it == execs_.end() || it->second->done.load()) return false;
  it->second->cancel.store(true);
  return true;
}

void FakeEngine::wait(uint64_t id) {
  std::unique_lock lock(mu_);
  auto it = execs_.find(id);
  if (it == execs_.end()) throw std::invalid_argument("unknown execution");
  Exec* e = it->second.get();
  lock.unlock();
  while (!e->done.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void FakeEngine::drop(std::unique_lock<std::mutex>& lock, uint64_t id) {
  auto it = execs_.find(id);
  if (it == execs_.end()) return;
  std::unique_ptr<Exec> e = std::move(it->second);
  execs_.erase(it);
  e->cancel.store(true);
  lock.unlock();
  if (e->thread.joinable()) e->thread.join();
  e.reset();  // unlinks the ring's name
  lock.lock();
}

void FakeEngine::release(uint64_t id) {
  std::lock_guard lock(mu_);
  auto it = execs_.find(id);
  if (it == execs_.end()) throw std::invalid_argument("unknown execution");
  // The name goes once the execution has finished (now, or when it finishes).
  it->second->released = true;
  if (it->second->done.load()) it->second->ring->unlink();
}

void FakeEngine::close_session(uint64_t session_id) {
  std::unique_lock lock(mu_);
  if (sessions_.erase(session_id) == 0) throw std::invalid_argument("unknown session");
  std::vector<uint64_t> ids;
  for (auto& [id, e] : execs_)
    if (e->session == session_id) ids.push_back(id);
  for (uint64_t id : ids) drop(lock, id);
}

void FakeEngine::shutdown() {
  std::unique_lock lock(mu_);
  while (!execs_.empty()) drop(lock, execs_.begin()->first);
  sessions_.clear();
}

}  // namespace shmrepl::test
