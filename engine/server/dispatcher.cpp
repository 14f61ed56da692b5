#include "dispatcher.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <new>
#include <stdexcept>
#include <string>
#include <system_error>

#include "shmrepl/shm/layout.hpp"
#include "workers.hpp"

namespace shmrepl::server {

namespace ctl = control::ctl;

namespace {

std::string str(const flatbuffers::String* s) { return s != nullptr ? s->str() : std::string(); }

Reply error(uint64_t request_id, shmrepl_status_t code, const std::string& message, bool close = false) {
  return Reply{control::error(request_id, code, message), close, false};
}

Reply ok(uint64_t request_id) { return Reply{control::ok(request_id), false, false}; }

}  // namespace

Reply Dispatcher::handle(std::span<const uint8_t> body, const int* received_fds) noexcept {
  uint64_t request_id = 0;
  // No request keeps the descriptors beyond its own handling.
  struct Closer {
    const int* fds;
    ~Closer() {
      for (std::size_t i = 0; i < control::kMaxPassedFds; ++i)
        if (fds[i] >= 0) ::close(fds[i]);
    }
  } closer{received_fds};
  try {
    std::string err;
    const ctl::Message* m = control::verify(body, &err);
    // Nothing in a message that fails verification can be trusted, not even its id.
    if (m == nullptr) return error(0, SHMREPL_E_PROTOCOL, err, true);
    request_id = m->request_id();
    return dispatch(request_id, *m, received_fds);
  } catch (const std::invalid_argument& e) {
    return error(request_id, SHMREPL_E_NOT_FOUND, e.what());
  } catch (const SessionRefused& e) {
    return error(request_id, SHMREPL_E_INVALID, e.what());
  } catch (const engine::LimitExceeded& e) {
    return error(request_id, SHMREPL_E_LIMIT, e.what());
  } catch (const std::bad_alloc&) {
    return error(request_id, SHMREPL_E_NOMEM, "out of memory");
  } catch (const std::system_error& e) {
    // ENOSPC: /dev/shm has no room for a ring. EMFILE/ENFILE: no descriptor left for
    // a worker's sockets (RLIMIT_NOFILE), a limit like ours.
    const int c = e.code().value();
    if (c == EMFILE || c == ENFILE)
      return error(request_id, SHMREPL_E_LIMIT, std::string("the engine is out of file descriptors: ") + e.what());
    // The supervisor did not answer a ring reservation in time: retry later.
    if (c == ETIMEDOUT) return error(request_id, SHMREPL_E_TIMEOUT, e.what());
    return error(request_id, c == ENOSPC || c == ENOMEM ? SHMREPL_E_NOMEM : SHMREPL_E_SYSTEM, e.what());
  } catch (const std::exception& e) {
    return error(request_id, SHMREPL_E_INTERNAL, e.what());
  } catch (...) {
    return error(request_id, SHMREPL_E_INTERNAL, "unknown exception");
  }
}

Reply Dispatcher::dispatch(uint64_t rid, const ctl::Message& m, const int* received_fds) {
  const ctl::Body type = m.body_type();
  const std::string name = control::body_name(type);
  if (!control::is_request(type))
    return error(rid, SHMREPL_E_PROTOCOL, name + " is not a request", true);
  if (!hello_ && type != ctl::Body::Hello)
    return error(rid, SHMREPL_E_PROTOCOL, "expected Hello first, got " + name);

  if (worker_ && type != ctl::Body::Execute && type != ctl::Body::Cancel &&
      type != ctl::Body::Release && type != ctl::Body::InputReply)
    return error(rid, SHMREPL_E_PROTOCOL, name + " goes to the engine, not to a session's worker");
  // libshmrepl sends these here only for a session (or execution) it has no worker
  // connection for: one that is not its own, as the header documents.
  if (pool_ != nullptr && type == ctl::Body::Execute)
    return error(rid, SHMREPL_E_NOT_FOUND,
                 "unknown session " + std::to_string(m.body_as_Execute()->session_id()) +
                     " (a session's executions go to its worker, on the connection that came with SessionOpened)");
  if (pool_ != nullptr &&
      (type == ctl::Body::Cancel || type == ctl::Body::Release || type == ctl::Body::InputReply))
    return error(rid, SHMREPL_E_NOT_FOUND, "unknown execution (" + name + " goes to the session's worker)");

  switch (type) {
    case ctl::Body::Hello: {
      if (hello_) return error(rid, SHMREPL_E_PROTOCOL, "Hello was already said");
      const uint32_t abi = m.body_as_Hello()->abi_version();
      if (abi != SHMREPL_ABI_VERSION)
        return error(rid, SHMREPL_E_VERSION,
                     "client speaks ABI version " + std::to_string(abi) + ", engine " +
                         std::to_string(SHMREPL_ABI_VERSION),
                     true);
      hello_ = true;
      return Reply{control::hello_reply(rid, SHMREPL_ABI_VERSION, engine_pid_, SHMREPL_ENGINE_VERSION),
                   false, false};
    }
    case ctl::Body::OpenSession: {
      const ctl::OpenSession* o = m.body_as_OpenSession();
      const bool options = (o->working_dir() != nullptr && o->working_dir()->size() != 0) ||
                           o->set_env() || o->stdin() || o->stdout_tty() || o->stderr_tty();
      // The passed descriptors, in order, for the flags that are set.
      std::size_t next = 0;
      auto take = [&](bool flag) {
        return flag && next < control::kMaxPassedFds ? received_fds[next++] : -1;
      };
      const int stdin_fd = take(o->stdin());
      const int stdout_fd = take(o->stdout_tty());
      const int stderr_fd = take(o->stderr_tty());
      if ((o->stdin() && stdin_fd < 0) || (o->stdout_tty() && stdout_fd < 0) ||
          (o->stderr_tty() && stderr_fd < 0))
        return error(rid, SHMREPL_E_PROTOCOL,
                     "OpenSession names more descriptors than came with it");
      // Counted before the fork, given back if the session does not come to be.
      std::string why;
      if (quota_ != nullptr && !quota_->add_session(client_, &why)) return error(rid, SHMREPL_E_LIMIT, why);
      struct Counted {
        Quota* quota;
        pid_t client;
        ~Counted() {
          if (quota != nullptr) quota->remove_session(client);
        }
      } counted{quota_, client_};
      if (pool_ != nullptr) {
        WorkerPool::Setup setup;
        setup.working_dir = str(o->working_dir());
        setup.set_env = o->set_env();
        if (o->env() != nullptr)
          for (const flatbuffers::String* e : *o->env()) setup.env.push_back(str(e));
        setup.stdin_fd = stdin_fd;
        setup.stdout_fd = stdout_fd;
        setup.stderr_fd = stderr_fd;
        setup.client = client_;
        WorkerPool::Spawned w = pool_->spawn(setup);
        sessions_.insert(w.session_id);
        counted.quota = nullptr;
        return Reply{control::session_opened(rid, w.session_id, w.background_ring, static_cast<uint32_t>(w.pid)),
                     false, false, w.client_fd, w.background_ring_fd};
      }
      if (options)
        return error(rid, SHMREPL_E_INVALID,
                     "this engine runs sessions in its own process: no working folder, "
                     "environment, stdin or terminal");
      const uint64_t id = engine_->open_session();
      sessions_.insert(id);
      counted.quota = nullptr;
      return Reply{control::session_opened(rid, id, engine_->session_background_ring(id)), false, false};
    }
    case ctl::Body::Execute: {
      const ctl::Execute* x = m.body_as_Execute();
      if (sessions_.count(x->session_id()) == 0)
        return error(rid, SHMREPL_E_NOT_FOUND, "unknown session " + std::to_string(x->session_id()));
      const uint64_t cap = x->ring_capacity();
      if (cap != 0 && (cap < shm::kMinCapacity || cap > shm::kMaxCapacity))
        return error(rid, SHMREPL_E_INVALID,
                     "ring_capacity must be 0 or within [" + std::to_string(shm::kMinCapacity) +
                         ", " + std::to_string(shm::kMaxCapacity) + "]");
      engine::ExecuteRequest req;
      req.session_id = x->session_id();
      req.code = str(x->code());
      req.client_execution_id = str(x->client_execution_id());
      if (x->filename() != nullptr && x->filename()->size() != 0) req.filename = x->filename()->str();
      if (x->argv() != nullptr)
        for (const flatbuffers::String* a : *x->argv()) req.argv.push_back(str(a));
      req.script = x->script();
      req.ring_capacity = cap;
      req.memory_limit = x->memory_limit();
      if (x->timeout_ns() < 0) return error(rid, SHMREPL_E_INVALID, "timeout_ns < 0");
      if ((x->timeout_ns() > 0 || x->memory_limit() > 0) && !worker_)
        return error(rid, SHMREPL_E_INVALID, "this engine runs sessions in its own process: no limits");
      req.held = worker_;
      engine::Accepted a = engine_->execute(req);
      executions_[a.execution_id] = req.session_id;
      Reply r{control::accepted(rid, a.execution_id, a.ring_name, a.reused), false, false};
      // A reused ring's descriptor is with the client already: only a new one goes.
      if (a.ring_fd >= 0 && !a.reused) r.pass_fd = ::fcntl(a.ring_fd, F_DUPFD_CLOEXEC, 0);
      if (worker_) {
        r.held_execution = a.execution_id;
        r.timeout_ns = x->timeout_ns();
      }
      return r;
    }
    case ctl::Body::Cancel: {
      const uint64_t id = m.body_as_Cancel()->execution_id();
      if (executions_.count(id) == 0)
        return error(rid, SHMREPL_E_NOT_FOUND, "unknown execution " + std::to_string(id));
      engine_->cancel(id);  // false: it had already finished, which is fine
      return ok(rid);
    }
    case ctl::Body::Release: {
      const uint64_t id = m.body_as_Release()->execution_id();
      if (executions_.count(id) == 0)
        return error(rid, SHMREPL_E_NOT_FOUND, "unknown execution " + std::to_string(id));
      engine_->release(id);
      executions_.erase(id);
      return ok(rid);
    }
    case ctl::Body::InputReply: {
      const ctl::InputReply* r = m.body_as_InputReply();
      const uint64_t id = r->execution_id();
      if (executions_.count(id) == 0)
        return error(rid, SHMREPL_E_NOT_FOUND, "unknown execution " + std::to_string(id));
      if (!engine_->send_input(id, str(r->text())))
        return error(rid, SHMREPL_E_STATE,
                     "execution " + std::to_string(id) + " is not waiting for input");
      return ok(rid);
    }
    case ctl::Body::CloseSession: {
      const uint64_t id = m.body_as_CloseSession()->session_id();
      if (sessions_.count(id) == 0)
        return error(rid, SHMREPL_E_NOT_FOUND, "unknown session " + std::to_string(id));
      sessions_.erase(id);
      if (quota_ != nullptr) quota_->remove_session(client_);
      std::erase_if(executions_, [id](const auto& kv) { return kv.second == id; });
      if (pool_ != nullptr) pool_->close(id);
      else engine_->close_session(id);
      return ok(rid);
    }
    case ctl::Body::OpenRing: {
      // The peer's uid was checked at accept: any process of ours may read any ring.
      const std::string ring = str(m.body_as_OpenRing()->name());
      const int fd = pool_ != nullptr ? pool_->open_ring(ring) : -1;
      if (fd < 0) return error(rid, SHMREPL_E_NOT_FOUND, "no live ring named '" + ring + "'");
      Reply r{control::ok(rid), false, false};
      r.pass_fd = fd;
      return r;
    }
    case ctl::Body::Shutdown:
      return Reply{control::ok(rid), false, true};
    default:
      return error(rid, SHMREPL_E_PROTOCOL, name + " is not a request", true);
  }
}

void Dispatcher::cleanup() noexcept {
  for (uint64_t id : sessions_) {
    try {
      if (pool_ != nullptr) pool_->close(id);
      else engine_->close_session(id);
    } catch (...) {
      // Already gone (e.g. the engine is shutting down): nothing left to free.
    }
    if (quota_ != nullptr) quota_->remove_session(client_);
  }
  sessions_.clear();
  executions_.clear();
}

}  // namespace shmrepl::server
