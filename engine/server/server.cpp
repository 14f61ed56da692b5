#include "server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <system_error>
#include <vector>

#include "control.hpp"
#include "dispatcher.hpp"
#include "log.hpp"
#include "workers.hpp"

namespace shmrepl::server {

namespace {

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

}  // namespace

Server::Server(engine::Engine& engine) : engine_(&engine) {
  if (pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) throw_errno("pipe");
}

Server::Server(WorkerPool& pool) : pool_(&pool) {
  if (pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) throw_errno("pipe");
}

Server::~Server() {
  close();
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void Server::listen(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    throw std::system_error(ENAMETOOLONG, std::generic_category(), "socket path " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw_errno("socket");
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      throw std::system_error(EEXIST, std::generic_category(), path + " exists and is not a socket");
    ::unlink(path.c_str());  // stale: its engine is gone (we hold the lock)
  }
  // Only our user may connect at all (SO_PEERCRED checks again per connection).
  const mode_t old = umask(0177);
  const int rc = ::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  umask(old);
  if (rc != 0) throw_errno("bind " + path);
  path_ = path;
  if (::listen(listen_fd_, 128) != 0) throw_errno("listen " + path);
}

void Server::request_stop() noexcept {
  const char c = 's';
  ssize_t ignored = write(wake_[1], &c, 1);
  (void)ignored;  // a full pipe already holds a wake-up
}

void Server::run() {
  const uid_t uid = geteuid();
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (poll(fds, 2, 1000) < 0) {
      if (errno == EINTR) continue;
      throw_errno("poll");
    }
    reap(false);
    if (fds[1].revents != 0) return;
    if ((fds[0].revents & POLLIN) == 0) continue;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      if (errno != EINTR && errno != EAGAIN && errno != ECONNABORTED)
        log_line(std::string("accept: ") + std::strerror(errno));
      continue;
    }
    ucred cred{};
    socklen_t len = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
        !control::peer_allowed(cred.uid, uid)) {
      log_line("refused a connection from uid " + std::to_string(cred.uid) + " pid " +
               std::to_string(cred.pid));
      ::close(fd);
      continue;
    }
    std::lock_guard lock(mu_);
    Conn& c = conns_.emplace_back();
    c.fd = fd;
    c.thread = std::thread([this, &c] { serve(&c); });
  }
}

void Server::serve(Conn* conn) {
  const int fd = conn->fd;
  const auto pid = static_cast<uint32_t>(getpid());
  std::unique_ptr<Dispatcher> owned =
      pool_ != nullptr ? std::make_unique<Dispatcher>(*pool_, pid) : std::make_unique<Dispatcher>(*engine_, pid);
  Dispatcher& dispatcher = *owned;
  std::vector<uint8_t> body;
  std::string err;
  bool stop = false;
  for (;;) {
    uint8_t prefix[control::kPrefixSize];
    // A session's stdin and terminal descriptors come with its OpenSession.
    int received[control::kMaxPassedFds];
    if (control::read_prefix(fd, prefix, received, &err) != SHMREPL_OK) break;
    auto close_received = [&] {
      for (int r : received)
        if (r >= 0) ::close(r);
    };
    uint32_t len = 0;
    shmrepl_status_t st =
        control::parse_prefix(std::span<const uint8_t, control::kPrefixSize>(prefix), &len, &err);
    if (st != SHMREPL_OK) {
      // Refused before reading the body; the rest of the stream cannot be framed.
      close_received();
      control::Frame reply = control::error(0, st, err);
      control::write_all(fd, reply.data(), reply.size(), &err);
      break;
    }
    body.resize(len);
    if (control::read_exact(fd, body.data(), len, &err) != SHMREPL_OK) {
      close_received();
      break;
    }
    Reply reply = dispatcher.handle(body, received);
    shmrepl_status_t sent;
    if (reply.pass_fd >= 0) {
      sent = control::write_all_with_fd(fd, reply.frame.data(), reply.frame.size(), reply.pass_fd, &err);
      ::close(reply.pass_fd);
    } else {
      sent = control::write_all(fd, reply.frame.data(), reply.frame.size(), &err);
    }
    if (sent != SHMREPL_OK) break;
    if (reply.stop_engine) {
      stop = true;
      break;
    }
    if (reply.close) break;
  }
  if (stop) {
    // What the client waits for is done before it sees the connection end: every
    // session ended (their rings finished) and the socket gone.
    if (pool_ != nullptr) pool_->close_all();
    std::lock_guard lock(mu_);
    if (!path_.empty()) ::unlink(path_.c_str());
    path_.clear();  // once: a new engine may bind the path right after
  }
  // The peer sees the end now; the descriptor itself is closed by reap().
  ::shutdown(fd, SHUT_RDWR);
  dispatcher.cleanup();
  if (stop) {
    log_line("shutdown requested by a client");
    request_stop();
  }
  conn->done.store(true, std::memory_order_release);  // pairs with the acquire in reap()
}

void Server::reap(bool all) {
  std::list<Conn> finished;
  {
    std::lock_guard lock(mu_);
    for (auto it = conns_.begin(); it != conns_.end();) {
      auto next = std::next(it);
      if (all || it->done.load(std::memory_order_acquire)) finished.splice(finished.end(), conns_, it);
      it = next;
    }
  }
  for (Conn& c : finished) {
    if (all) ::shutdown(c.fd, SHUT_RDWR);  // wakes a thread blocked in read
    if (c.thread.joinable()) c.thread.join();
    ::close(c.fd);  // only after the join: its number cannot be reused under the thread
  }
}

void Server::close() {
  if (listen_fd_ >= 0) {
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
  {
    std::lock_guard lock(mu_);
    if (!path_.empty()) ::unlink(path_.c_str());
    path_.clear();
  }
  reap(true);
}

}  // namespace shmrepl::server
