// The client side of the C ABI: sessions and executions over a Connection.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <tuple>

#include "client.hpp"
#include "rings.hpp"
#include "status.hpp"

namespace {

namespace ctl = shmrepl::control::ctl;
namespace control = shmrepl::control;
using shmrepl::abi::fail;
using shmrepl::abi::guarded;

// An upper bound of the Execute message's size (each string costs its bytes plus
// length, NUL and padding; each argv entry an offset), so an oversized request is
// refused here instead of by the engine.
std::size_t execute_size_bound(const control::ExecuteFields& f) {
  std::size_t n = 256 + f.code.size() + f.client_execution_id.size() + f.filename.size() + 3 * 8;
  for (std::string_view a : f.argv) n += a.size() + 12;
  return n;
}

}  // namespace

extern "C" {

SHMREPL_API shmrepl_status_t shmrepl_client_connect(const shmrepl_client_options_t* options,
                                                    shmrepl_client_t** out) {
  return guarded([&] {
    if (out == nullptr) return fail(SHMREPL_E_INVALID, "out is NULL");
    *out = nullptr;
    auto client = std::make_unique<shmrepl_client>();
    shmrepl_status_t st = shmrepl::client::connect(options, &client->conn);
    if (st != SHMREPL_OK) return st;
    *out = client.release();
    return SHMREPL_OK;
  });
}

SHMREPL_API void shmrepl_client_close(shmrepl_client_t* client) {
  if (client == nullptr) return;
  {
    std::lock_guard lock(client->conn->bg_mu);
    for (auto& [id, w] : client->conn->workers) w->close();
    client->conn->workers.clear();
  }
  client->conn->close();
  delete client;
}

SHMREPL_API uint32_t shmrepl_client_engine_pid(const shmrepl_client_t* client) {
  return client != nullptr ? client->conn->engine_pid : 0;
}

SHMREPL_API shmrepl_status_t shmrepl_session_open(shmrepl_client_t* client, uint64_t* session_id) {
  return shmrepl_session_open_ex(client, nullptr, session_id);
}

SHMREPL_API shmrepl_status_t shmrepl_session_open_ex(shmrepl_client_t* client,
                                                     const shmrepl_session_options_t* options,
                                                     uint64_t* session_id) {
  return guarded([&] {
    if (client == nullptr || session_id == nullptr)
      return fail(SHMREPL_E_INVALID, "client or session_id is NULL");
    // Any size from the first published one up: fields past struct_size are 0.
    constexpr size_t kFirstSize = offsetof(shmrepl_session_options_t, reserved) + sizeof(uint32_t);
    shmrepl_session_options_t o{};
    if (options != nullptr) {
      if (options->struct_size < kFirstSize) return fail(SHMREPL_E_INVALID, "options->struct_size is too small");
      std::memcpy(&o, options, std::min<size_t>(options->struct_size, sizeof o));
    }
    if (o.env == nullptr && o.envc != 0) return fail(SHMREPL_E_INVALID, "options->env is NULL");
    if (o.stdin_fd_plus_one < 0) return fail(SHMREPL_E_INVALID, "options->stdin_fd_plus_one < 0");
    if (o.stdout_fd_plus_one < 0) return fail(SHMREPL_E_INVALID, "options->stdout_fd_plus_one < 0");
    if (o.stderr_fd_plus_one < 0) return fail(SHMREPL_E_INVALID, "options->stderr_fd_plus_one < 0");
    control::SessionFields f;
    if (o.working_dir != nullptr) f.working_dir = o.working_dir;
    if (o.env != nullptr) {
      f.set_env = true;
      for (size_t i = 0; i < o.envc; ++i) {
        if (o.env[i] == nullptr) return fail(SHMREPL_E_INVALID, "options->env holds a NULL");
        f.env.emplace_back(o.env[i]);
      }
    }
    // Passed in this order, each if given: stdin, stdout, stderr.
    int pass[control::kMaxPassedFds];
    std::size_t npass = 0;
    for (auto [plus_one, flag, name] :
         {std::tuple{o.stdin_fd_plus_one, &f.stdin, "stdin"},
          std::tuple{o.stdout_fd_plus_one, &f.stdout_tty, "stdout"},
          std::tuple{o.stderr_fd_plus_one, &f.stderr_tty, "stderr"}}) {
      const int fd = plus_one - 1;
      if (fd < 0) continue;
      if (fcntl(fd, F_GETFD) < 0)
        return fail(SHMREPL_E_INVALID,
                    std::string("options->") + name + "_fd_plus_one names no open descriptor");
      *flag = true;
      pass[npass++] = fd;
    }
    std::string ring;
    int worker_fd = -1;
    int ring_fd = -1;
    shmrepl_status_t st = client->conn->request(
        [&](uint64_t id) { return control::open_session(id, f); }, ctl::Body::SessionOpened,
        [&](const ctl::Message* m) {
          const ctl::SessionOpened* so = m->body_as_SessionOpened();
          *session_id = so->session_id();
          if (so->background_ring() != nullptr) ring = so->background_ring()->str();
          worker_fd = client->conn->take_received_fd(0);
          ring_fd = client->conn->take_received_fd(1);
        },
        std::span<const int>(pass, npass));
    if (st != SHMREPL_OK) return st;
    if (ring_fd >= 0) {
      if (!ring.empty()) shmrepl::abi::register_ring(ring, std::make_shared<shmrepl::abi::RingEntry>(ring_fd));
      else ::close(ring_fd);
    }
    std::lock_guard lock(client->conn->bg_mu);
    client->conn->background_rings[*session_id] = std::move(ring);
    // The session's own worker process: its executions go there directly.
    if (worker_fd >= 0) client->conn->workers[*session_id] = std::make_shared<shmrepl::client::Connection>(
        worker_fd, true, client->conn->request_timeout_ns());
    return SHMREPL_OK;
  });
}

SHMREPL_API shmrepl_status_t shmrepl_session_close(shmrepl_client_t* client, uint64_t session_id) {
  return guarded([&] {
    if (client == nullptr) return fail(SHMREPL_E_INVALID, "client is NULL");
    shmrepl_status_t st = client->conn->request(
        [&](uint64_t id) { return control::close_session(id, session_id); }, ctl::Body::Ok,
        [](const ctl::Message*) {});
    if (st == SHMREPL_OK) {
      std::lock_guard lock(client->conn->bg_mu);
      if (auto bg = client->conn->background_rings.find(session_id); bg != client->conn->background_rings.end()) {
        shmrepl::abi::forget_ring(bg->second);
        client->conn->background_rings.erase(bg);
      }
      auto it = client->conn->workers.find(session_id);
      if (it != client->conn->workers.end()) {
        it->second->close();
        client->conn->workers.erase(it);
      }
    }
    return st;
  });
}

SHMREPL_API const char* shmrepl_session_background_ring(shmrepl_client_t* client, uint64_t session_id) {
  if (client == nullptr) return "";
  std::lock_guard lock(client->conn->bg_mu);
  auto it = client->conn->background_rings.find(session_id);
  return it != client->conn->background_rings.end() ? it->second.c_str() : "";
}

SHMREPL_API shmrepl_status_t shmrepl_execute(shmrepl_client_t* client,
                                             const shmrepl_execute_options_t* options,
                                             shmrepl_execution_t** out) {
  return guarded([&] {
    if (out == nullptr) return fail(SHMREPL_E_INVALID, "out is NULL");
    *out = nullptr;
    if (client == nullptr || options == nullptr) return fail(SHMREPL_E_INVALID, "client or options is NULL");
    // Any size from the first published one (72) up: fields past struct_size are 0.
    if (options->struct_size < offsetof(shmrepl_execute_options_t, ring_capacity) + sizeof(uint64_t))
      return fail(SHMREPL_E_INVALID, "options->struct_size is too small");
    shmrepl_execute_options_t full{};
    std::memcpy(&full, options, std::min<size_t>(options->struct_size, sizeof full));
    if (full.timeout_ns < 0) return fail(SHMREPL_E_INVALID, "options->timeout_ns < 0");
    if (options->code == nullptr && options->code_len != 0) return fail(SHMREPL_E_INVALID, "code is NULL");
    if (options->argv == nullptr && options->argc != 0) return fail(SHMREPL_E_INVALID, "argv is NULL");
    control::ExecuteFields f;
    f.session_id = options->session_id;
    if (options->code_len != 0) f.code = std::string_view(options->code, options->code_len);
    if (options->client_execution_id != nullptr) f.client_execution_id = options->client_execution_id;
    if (options->filename != nullptr) f.filename = options->filename;
    for (size_t i = 0; i < options->argc; ++i) {
      if (options->argv[i] == nullptr) return fail(SHMREPL_E_INVALID, "argv holds a NULL");
      f.argv.emplace_back(options->argv[i]);
    }
    f.script = options->script != 0;
    f.ring_capacity = options->ring_capacity;
    f.timeout_ns = full.timeout_ns;
    f.memory_limit = full.memory_limit;
    if (execute_size_bound(f) > control::kMaxMessage)
      return fail(SHMREPL_E_TOO_LARGE, "the request is larger than the 64 MiB message limit");
    auto e = std::make_unique<shmrepl_execution>();
    e->conn = client->conn;
    {
      std::lock_guard lock(client->conn->bg_mu);
      auto it = client->conn->workers.find(options->session_id);
      if (it != client->conn->workers.end()) e->conn = it->second;
    }
    shmrepl_status_t st = e->conn->request(
        [&](uint64_t id) { return control::execute(id, f); },
        ctl::Body::Accepted, [&](const ctl::Message* m) {
          const ctl::Accepted* a = m->body_as_Accepted();
          e->id = a->execution_id();
          e->ring_name = a->ring_name() != nullptr ? a->ring_name()->str() : "";
          // A worker's ring comes as a descriptor: what this process's readers map.
          // The same ring again (reset for this execution) comes without one.
          auto& conn = *e->conn;
          if (const int fd = conn.take_received_fd(); fd >= 0) {
            conn.last_ring = std::make_shared<shmrepl::abi::RingEntry>(fd);
            conn.last_ring_name = e->ring_name;
          } else if (a->same_ring()) {
            conn.last_ring_name = e->ring_name;  // the same descriptor, a new name
          } else {
            conn.last_ring.reset();  // a named ring (or none): opened by name
          }
          if (conn.last_ring != nullptr) {
            shmrepl::abi::register_ring(e->ring_name, conn.last_ring);
            e->ring_registered = true;
          }
        });
    if (st != SHMREPL_OK) return st;
    *out = e.release();
    return SHMREPL_OK;
  });
}

SHMREPL_API uint64_t shmrepl_execution_id(const shmrepl_execution_t* execution) {
  return execution != nullptr ? execution->id : 0;
}

SHMREPL_API const char* shmrepl_execution_ring_name(const shmrepl_execution_t* execution) {
  return execution != nullptr ? execution->ring_name.c_str() : "";
}

SHMREPL_API shmrepl_status_t shmrepl_execution_reader(const shmrepl_execution_t* execution,
                                                      const shmrepl_reader_options_t* options,
                                                      shmrepl_reader_t** out) {
  if (execution == nullptr) {
    if (out != nullptr) *out = nullptr;
    return fail(SHMREPL_E_INVALID, "execution is NULL");
  }
  return shmrepl_reader_open(execution->ring_name.c_str(), options, out);
}

SHMREPL_API shmrepl_status_t shmrepl_execution_cancel(shmrepl_execution_t* execution) {
  return guarded([&] {
    if (execution == nullptr) return fail(SHMREPL_E_INVALID, "execution is NULL");
    return execution->conn->request(
        [&](uint64_t id) { return control::cancel(id, execution->id); }, ctl::Body::Ok,
        [](const ctl::Message*) {});
  });
}

SHMREPL_API shmrepl_status_t shmrepl_execution_send_input(shmrepl_execution_t* execution,
                                                          const char* text, size_t len) {
  return guarded([&] {
    if (execution == nullptr) return fail(SHMREPL_E_INVALID, "execution is NULL");
    if (text == nullptr && len != 0) return fail(SHMREPL_E_INVALID, "text is NULL");
    if (len > control::kMaxMessage - 256)
      return fail(SHMREPL_E_TOO_LARGE, "the reply is larger than the 64 MiB message limit");
    const std::string_view t = len != 0 ? std::string_view(text, len) : std::string_view();
    return execution->conn->request(
        [&](uint64_t id) { return control::input_reply(id, execution->id, t); }, ctl::Body::Ok,
        [](const ctl::Message*) {});
  });
}

SHMREPL_API void shmrepl_execution_close(shmrepl_execution_t* execution) {
  if (execution == nullptr) return;
  guarded([&] {
    // Best effort: a closed client or a dead engine has nothing left to release.
    // Posted: its reply is dropped later, so closing costs no round trip.
    execution->conn->post([&](uint64_t id) { return control::release(id, execution->id); });
    return SHMREPL_OK;
  });
  if (execution->ring_registered) shmrepl::abi::forget_ring(execution->ring_name);
  delete execution;
}

SHMREPL_API shmrepl_status_t shmrepl_engine_shutdown(shmrepl_client_t* client) {
  return guarded([&] {
    if (client == nullptr) return fail(SHMREPL_E_INVALID, "client is NULL");
    shmrepl_status_t st = client->conn->request([](uint64_t id) { return control::shutdown(id); },
                                                ctl::Body::Ok, [](const ctl::Message*) {});
    if (st != SHMREPL_OK) return st;
    // The engine closes every connection once it has cancelled everything.
    return client->conn->wait_closed(30'000'000'000);
  });
}

}  // extern "C"
