#include "server.hpp"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <list>
#include <new>
#include <system_error>
#include <thread>

#include "control.hpp"
#include "log.hpp"
#include "workers.hpp"

namespace shmrepl::server {

namespace {

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

constexpr uint64_t kListenKey = 0;  // epoll keys; connections count from 1
constexpr uint64_t kWakeKey = ~0ull;
constexpr uint64_t kDoneKey = ~0ull - 1;
constexpr auto kAcceptPause = std::chrono::milliseconds(100);
constexpr std::size_t kReadChunk = 64 * 1024;
constexpr uint32_t kMaxRefusedOpen = 64;  // beyond: refused connections are closed unanswered
// Hello is a few dozen bytes: before it, nobody gets to make us hold more.
constexpr uint32_t kMaxBeforeHello = 64 * 1024;

// The descriptors that came with one message, in order (-1: none).
using Fds = std::array<int, control::kMaxPassedFds>;
constexpr Fds kNoFds = [] {
  Fds f{};
  f.fill(-1);
  return f;
}();
void close_fds(Fds& fds) noexcept {
  for (int& f : fds)
    if (f >= 0) {
      ::close(f);
      f = -1;
    }
}

}  // namespace

// Runs the requests that may wait. Keeps one thread, grows to `max` while every
// thread is busy, and lets a thread that idled kPoolIdle go; a thread that cannot be
// created is logged and the queue waits for the others. Tasks must not throw.
class TaskPool {
 public:
  explicit TaskPool(uint32_t max) : max_(std::max<uint32_t>(max, 1)) {
    std::lock_guard lock(mu_);  // the thread reads threads_ too
    threads_.emplace_back(&TaskPool::loop,
                          this);  // throws at start only: the engine does not start
  }
  ~TaskPool() { stop(); }

  // Throws std::bad_alloc only, and then nothing was queued.
  void submit(std::function<void()> task) {
    std::unique_lock lock(mu_);
    reap();
    queue_.push_back(std::move(task));
    if (idle_ < queue_.size() && threads_.size() < max_) {
      try {
        threads_.emplace_back(&TaskPool::loop, this);
      } catch (const std::system_error& e) {
        // The threads we have run it later.
        failed_.note("cannot start a control thread: ", e.what());
      } catch (const std::bad_alloc&) {
        failed_.note("cannot start a control thread: ", "out of memory");
      }
    }
    cv_.notify_one();
  }

  // Runs what is queued, then joins every thread.
  void stop() noexcept {
    std::list<std::thread> threads;
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      threads.swap(threads_);
      exited_.clear();
    }
    cv_.notify_all();
    for (std::thread& t : threads)
      if (t.joinable()) t.join();
  }

 private:
  static constexpr auto kPoolIdle = std::chrono::seconds(1);
  // Joins the threads that ended after idling [mu_]. They released mu_ before we
  // could see them here, so each join is immediate.
  void reap() noexcept {
    for (const std::thread::id id : exited_) {
      auto it = std::find_if(threads_.begin(), threads_.end(),
                             [id](const std::thread& t) { return t.get_id() == id; });
      if (it == threads_.end()) continue;
      it->join();
      threads_.erase(it);
    }
    exited_.clear();
  }

  void loop() {
    std::unique_lock lock(mu_);
    for (;;) {
      ++idle_;
      const bool woken =
          cv_.wait_for(lock, kPoolIdle, [this] { return stopping_ || !queue_.empty(); });
      --idle_;
      if (queue_.empty() && stopping_) return;
      if (queue_.empty()) {
        // One thread stays; the others end after idling.
        if (!woken && threads_.size() - exited_.size() > 1) {
          try {
            exited_.push_back(std::this_thread::get_id());
            return;
          } catch (const std::bad_alloc&) {
            // Stays, then.
          }
        }
        continue;
      }
      std::function<void()> task = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      try {
        task();
      } catch (...) {
        // Tasks catch what they can answer; nothing else may end the engine.
      }
      task = nullptr;  // what it holds goes before we sleep
      lock.lock();
    }
  }

  const uint32_t max_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::list<std::thread> threads_;       // [mu_]
  std::vector<std::thread::id> exited_;  // [mu_] ended, not joined yet
  std::size_t idle_ = 0;
  bool stopping_ = false;
  ThrottledLog failed_;
};

// A connection's Dispatcher, shared with the pool's tasks: a request and the
// clean-up after the connection ended never run at once.
struct Served {
  std::mutex mu;
  std::unique_ptr<Dispatcher> d;
};

struct Server::Conn {
  uint64_t id = 0;
  int fd = -1;
  pid_t client = 0;
  bool counted = false;                  // holds a connection in quota_
  bool spare = false;                    // accepted on the spare descriptor
  shmrepl_status_t refuse = SHMREPL_OK;  // answer the first request with this, then close
  std::string refuse_text;
  std::shared_ptr<Served> dispatcher;
  bool hello = false;
  Clock::time_point accepted{};
  Clock::time_point deadline = Clock::time_point::max();
  // The message being read: prefix, then body (grown as it arrives).
  uint8_t prefix[control::kPrefixSize] = {};
  std::size_t prefix_got = 0;
  uint32_t length = 0;
  std::vector<uint8_t> body;
  Fds msg_fds = kNoFds;  // descriptors that came with it (a session's stdin, terminals)
  Clock::time_point message_started{};
  bool busy = false;  // a request runs on the pool: nothing is read meanwhile
  // The reply being written.
  control::Frame out;
  std::size_t out_off = 0;
  int out_fd = -1;
  int out_fd2 = -1;
  bool close_after = false;
  bool stop_after = false;
  Clock::time_point out_started{};
  uint32_t events = 0;  // what epoll watches (0: not registered)

  ~Conn() {
    close_fds(msg_fds);
    if (out_fd >= 0) ::close(out_fd);
    if (out_fd2 >= 0) ::close(out_fd2);
  }
};

// What the pool hands back to the loop.
struct Server::Done {
  enum Kind { kReply, kStopped } kind = kReply;
  uint64_t conn = 0;
  Reply reply;
  Done() = default;
  Done(Kind k, uint64_t c, Reply r) : kind(k), conn(c), reply(std::move(r)) {}
  Done(Done&& o) noexcept : kind(o.kind), conn(o.conn), reply(std::move(o.reply)) {
    o.reply.pass_fd = -1;
    o.reply.pass_fd2 = -1;
  }
  Done& operator=(Done&& o) noexcept {
    std::swap(kind, o.kind);
    std::swap(conn, o.conn);
    std::swap(reply, o.reply);
    return *this;
  }
  ~Done() {
    if (reply.pass_fd >= 0) ::close(reply.pass_fd);  // never sent
    if (reply.pass_fd2 >= 0) ::close(reply.pass_fd2);
  }
};

Server::Server(engine::Engine& engine, const Limits& limits)
    : engine_(&engine), limits_(limits), quota_(limits) {
  init();
}

Server::Server(WorkerPool& pool, const Limits& limits)
    : pool_(&pool), limits_(limits), quota_(limits) {
  init();
}

void Server::init() {
  if (pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) throw_errno("pipe");
  done_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (done_fd_ < 0) throw_errno("eventfd");
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throw_errno("epoll_create1");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWakeKey;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, wake_[0], &ev) != 0) throw_errno("epoll_ctl");
  ev.data.u64 = kDoneKey;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, done_fd_, &ev) != 0) throw_errno("epoll_ctl");
  spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  tasks_ = std::make_unique<TaskPool>(limits_.control_threads);
}

Server::~Server() {
  close();
  for (int fd : {wake_[0], wake_[1], done_fd_, epoll_fd_, spare_fd_})
    if (fd >= 0) ::close(fd);
}

void Server::listen(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    throw std::system_error(ENAMETOOLONG, std::generic_category(), "socket path " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  listen_fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0) throw_errno("socket");
  struct stat st {};
  if (lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      throw std::system_error(EEXIST, std::generic_category(),
                              path + " exists and is not a socket");
    ::unlink(path.c_str());  // stale: its engine is gone (we hold the lock)
  }
  // Only our user may connect at all (SO_PEERCRED checks again per connection).
  const mode_t old = umask(0177);
  const int rc = ::bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  umask(old);
  if (rc != 0) throw_errno("bind " + path);
  {
    std::lock_guard lock(mu_);
    path_ = path;
  }
  if (::listen(listen_fd_, 128) != 0) throw_errno("listen " + path);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kListenKey;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev) != 0) throw_errno("epoll_ctl");
  listening_ = true;
}

void Server::request_stop() noexcept {
  const char c = 's';
  ssize_t ignored = write(wake_[1], &c, 1);
  (void)ignored;  // a full pipe already holds a wake-up
}

void Server::post(Done done) {
  {
    std::lock_guard lock(done_mu_);
    done_.push_back(std::move(done));
  }
  const uint64_t one = 1;
  ssize_t ignored = write(done_fd_, &one, sizeof one);
  (void)ignored;  // the counter is already non-zero
}

void Server::run() {
  epoll_event events[64];
  auto next_check = Clock::now();
  while (!stopping_) {
    auto now = Clock::now();
    auto wake_at = next_check;
    if (!listening_ && listen_fd_ >= 0) wake_at = std::min(wake_at, accept_paused_until_);
    const auto wait_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(wake_at - now).count() + 1;
    const int n =
        epoll_wait(epoll_fd_, events, 64, static_cast<int>(std::clamp<int64_t>(wait_ms, 0, 1000)));
    if (n < 0 && errno != EINTR) {
      error_log_.note("epoll_wait: ", std::strerror(errno));
      std::this_thread::sleep_for(std::chrono::milliseconds(10));  // never spin
      continue;
    }
    // Nothing may leave the loop: a failure ends one connection at worst.
    for (int i = 0; i < std::max(n, 0); ++i) {
      const uint64_t key = events[i].data.u64;
      try {
        if (key == kWakeKey) {
          stopping_ = true;
        } else if (key == kDoneKey) {
          uint64_t count;
          ssize_t ignored = read(done_fd_, &count, sizeof count);
          (void)ignored;
        } else if (key == kListenKey) {
          accept_ready();
        } else {
          auto it = conns_.find(key);
          if (it == conns_.end()) continue;
          Conn& c = *it->second;
          // A reply still going out is finished (or fails) first; then we read on.
          if (!c.out.empty())
            flush(c);
          else
            on_readable(c);
        }
      } catch (const std::bad_alloc&) {
        error_log_.note("out of memory serving a connection; it is closed");
        if (key != kWakeKey && key != kDoneKey && key != kListenKey) close_conn(key);
      } catch (const std::exception& e) {
        error_log_.note("serving a connection (it is closed): ", e.what());
        if (key != kWakeKey && key != kDoneKey && key != kListenKey) close_conn(key);
      }
    }
    try {
      drain_done();
    } catch (const std::exception& e) {
      error_log_.note("handing back replies: ", e.what());
    }
    now = Clock::now();
    try {
      resume_and_check(now, &next_check);
    } catch (const std::exception& e) {
      error_log_.note("checking connections: ", e.what());
    }
  }
}

// Watches the listening socket again after a pause, and closes late connections.
void Server::resume_and_check(Clock::time_point now, Clock::time_point* next_check) {
  if (!listening_ && listen_fd_ >= 0 && now >= accept_paused_until_) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenKey;
    if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, listen_fd_, &ev) == 0) listening_ = true;
  }
  if (now >= *next_check) {
    check_deadlines(now);
    *next_check = now + std::chrono::milliseconds(100);
  }
}

void Server::accept_ready() {
  for (int i = 0; i < 64 && listening_; ++i) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0) {
      admit(fd, false);
      continue;
    }
    if (errno == EINTR || errno == ECONNABORTED) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    on_accept_error(errno);
  }
}

void Server::on_accept_error(int err) {
  accept_log_.note("accept (pausing accepts for 100 ms): ", std::strerror(err));
  if ((err == EMFILE || err == ENFILE) && spare_fd_ >= 0) {
    // One client at a time learns why instead of waiting for its Hello to time out.
    ::close(spare_fd_);
    spare_fd_ = -1;
    // (EMFILE comes before the backlog is looked at: it may be empty.)
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd >= 0)
      admit(fd, true);
    else
      spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  // Stop watching the socket for a while: its backlog would wake us at once again.
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr) == 0) listening_ = false;
  accept_paused_until_ = Clock::now() + kAcceptPause;
}

void Server::admit(int fd, bool spare) {
  // Ours until the connection holds it (an exception before that must not leak it).
  struct Owned {
    int fd;
    ~Owned() {
      if (fd >= 0) ::close(fd);
    }
  } owned_fd{fd};
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
      !control::peer_allowed(cred.uid, geteuid())) {
    refuse_log_.note("refused a connection from uid " + std::to_string(cred.uid) + " pid " +
                     std::to_string(cred.pid));
    if (spare) spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
    return;
  }
  auto owned = std::make_unique<Conn>();
  Conn& c = *owned;
  c.id = next_id_++;
  c.fd = fd;
  c.client = cred.pid;
  c.spare = spare;
  c.accepted = Clock::now();
  std::string why;
  if (spare) {
    c.refuse = SHMREPL_E_LIMIT;
    c.refuse_text =
        "the engine has no file descriptor left for another connection (its RLIMIT_NOFILE)";
  } else if (!quota_.add_connection(c.client, &why)) {
    c.refuse = SHMREPL_E_LIMIT;
    c.refuse_text = why;
  } else {
    c.counted = true;
  }
  if (c.refuse != SHMREPL_OK) {
    refuse_log_.note("refused a connection of pid " + std::to_string(c.client) + ": " +
                     c.refuse_text);
    if (!spare && refused_open_ >= kMaxRefusedOpen) return;
    ++refused_open_;
  } else {
    const auto pid = static_cast<uint32_t>(getpid());
    c.dispatcher = std::make_shared<Served>();
    c.dispatcher->d = pool_ != nullptr ? std::make_unique<Dispatcher>(*pool_, pid)
                                       : std::make_unique<Dispatcher>(*engine_, pid);
    c.dispatcher->d->set_quota(&quota_, c.client);
  }
  update_deadline(c);
  const uint64_t id = c.id;
  conns_.emplace(id, std::move(owned));
  owned_fd.fd = -1;  // the connection's now
  interest(*conns_[id], EPOLLIN);
}

void Server::interest(Conn& c, uint32_t events) {
  if (events == c.events) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = c.id;
  // Not registered while a request runs: a hung-up peer would wake us for nothing.
  int rc;
  if (events == 0)
    rc = epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
  else if (c.events == 0)
    rc = epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c.fd, &ev);
  else
    rc = epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
  if (rc != 0) throw_errno("epoll_ctl");
  c.events = events;
}

void Server::on_readable(Conn& c) {
  const uint64_t id = c.id;
  // Never read past the current message: a descriptor that comes with the next
  // one's first byte then cannot be taken for this one's.
  uint8_t chunk[kReadChunk];
  while (!c.busy && c.out.empty()) {
    ssize_t n;
    if (c.prefix_got < control::kPrefixSize) {
      iovec iov{c.prefix + c.prefix_got, control::kPrefixSize - c.prefix_got};
      alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof(int) * (control::kMaxPassedFds + 1))] = {};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = cbuf;
      msg.msg_controllen = sizeof cbuf;
      n = ::recvmsg(c.fd, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
      if (n > 0) {
        for (cmsghdr* h = CMSG_FIRSTHDR(&msg); h != nullptr; h = CMSG_NXTHDR(&msg, h)) {
          if (h->cmsg_level != SOL_SOCKET || h->cmsg_type != SCM_RIGHTS) continue;
          const std::size_t count = (h->cmsg_len - CMSG_LEN(0)) / sizeof(int);
          for (std::size_t i = 0; i < count; ++i) {
            int got;
            std::memcpy(&got, CMSG_DATA(h) + i * sizeof(int), sizeof got);
            auto slot = std::find(c.msg_fds.begin(), c.msg_fds.end(), -1);
            if (slot != c.msg_fds.end())
              *slot = got;
            else
              ::close(got);  // more than a message may carry
          }
        }
        if (c.prefix_got == 0) c.message_started = Clock::now();
        c.prefix_got += static_cast<std::size_t>(n);
        if (c.prefix_got == control::kPrefixSize) {
          std::string err;
          shmrepl_status_t st = control::parse_prefix(
              std::span<const uint8_t, control::kPrefixSize>(c.prefix), &c.length, &err);
          if (st == SHMREPL_OK && !c.hello && c.length > kMaxBeforeHello) {
            st = SHMREPL_E_TOO_LARGE;
            err = "a message of " + std::to_string(c.length) + " bytes before Hello (at most " +
                  std::to_string(kMaxBeforeHello) + ")";
          }
          if (st != SHMREPL_OK) {
            // Refused before a byte of its body is read; the stream cannot be framed after.
            Reply r{control::error(0, st, err), true, false};
            send(c, std::move(r));
            return;
          }
          c.body.clear();
          c.body.shrink_to_fit();
        }
        update_deadline(c);
        continue;
      }
    } else {
      const std::size_t want = std::min<std::size_t>(c.length - c.body.size(), sizeof chunk);
      n = ::recv(c.fd, chunk, want, MSG_DONTWAIT);
      if (n > 0) {
        // Grows with what came, never to what the prefix announced before it came.
        const std::size_t size = c.body.size() + static_cast<std::size_t>(n);
        if (size > c.body.capacity())
          c.body.reserve(std::min<std::size_t>(c.length, std::max(size, c.body.capacity() * 2)));
        c.body.insert(c.body.end(), chunk, chunk + n);
        if (c.body.size() == c.length) {
          on_message(c);
          if (conns_.count(id) == 0) return;  // closed while answering
        }
        continue;
      }
    }
    if (n == 0) {
      close_conn(id);
      return;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return;
    close_conn(id);  // reset, or worse
    return;
  }
}

void Server::on_message(Conn& c) {
  std::vector<uint8_t> body = std::move(c.body);
  c.body = {};
  c.prefix_got = 0;
  Fds fds = c.msg_fds;
  c.msg_fds = kNoFds;
  if (c.refuse != SHMREPL_OK) {
    close_fds(fds);
    std::string err;
    const control::ctl::Message* m = control::verify(body, &err);
    send(c, Reply{control::error(m != nullptr ? m->request_id() : 0, c.refuse, c.refuse_text), true,
                  false});
    return;
  }
  // Before Hello every request is answered at once (Hello, or an error).
  if (!c.hello) {
    Reply r;
    {
      std::lock_guard lock(c.dispatcher->mu);  // free: nothing runs for it before Hello
      r = c.dispatcher->d->handle(body, fds.data());
      c.hello = c.dispatcher->d->said_hello();
    }
    send(c, std::move(r));
    return;
  }
  submit_request(c, std::move(body), fds);
}

void Server::submit_request(Conn& c, std::vector<uint8_t> body,
                            std::array<int, control::kMaxPassedFds> fds) {
  c.busy = true;
  update_deadline(c);
  interest(c, 0);
  std::shared_ptr<Served> d = c.dispatcher;
  const uint64_t id = c.id;
  try {
    auto shared_body = std::make_shared<std::vector<uint8_t>>(std::move(body));
    tasks_->submit([this, d, id, shared_body, fds] {
      Reply r;
      {
        std::lock_guard lock(d->mu);
        r = d->d->handle(*shared_body, fds.data());  // takes or closes them
      }
      try {
        post(Done(Done::kReply, id, std::move(r)));
      } catch (const std::bad_alloc&) {
        // (The lost Done closed the reply's descriptor.) The connection waits for a
        // reply that cannot be queued: end it (the loop's clean-up closes its sessions).
        post(Done(Done::kReply, id, Reply{control::Frame{}, true, false}));
      }
    });
  } catch (const std::bad_alloc&) {
    close_fds(fds);
    c.busy = false;
    send(c, Reply{control::error(0, SHMREPL_E_NOMEM, "the engine is out of memory"), true, false});
  }
}

void Server::send(Conn& c, Reply reply) {
  c.out = std::move(reply.frame);
  c.out_off = 0;
  c.out_fd = reply.pass_fd;
  c.out_fd2 = reply.pass_fd2;
  reply.pass_fd = -1;
  reply.pass_fd2 = -1;
  c.close_after = reply.close;
  c.stop_after = reply.stop_engine;
  c.out_started = Clock::now();
  if (c.out.empty()) {
    close_conn(c.id);
    return;
  }
  flush(c);
}

void Server::flush(Conn& c) {
  const uint64_t id = c.id;
  while (c.out_off < c.out.size()) {
    ssize_t n;
    if (c.out_fd >= 0) {
      // The descriptor rides on the first byte, as control::write_all_with_fd sends it.
      iovec iov{c.out.data(), 1};
      const int fds[2] = {c.out_fd, c.out_fd2};
      const std::size_t nfds = c.out_fd2 >= 0 ? 2 : 1;
      alignas(cmsghdr) char cbuf[CMSG_SPACE(sizeof fds)] = {};
      msghdr msg{};
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = cbuf;
      msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
      cmsghdr* h = CMSG_FIRSTHDR(&msg);
      h->cmsg_level = SOL_SOCKET;
      h->cmsg_type = SCM_RIGHTS;
      h->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
      std::memcpy(CMSG_DATA(h), fds, sizeof(int) * nfds);
      n = ::sendmsg(c.fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        ::close(c.out_fd);
        c.out_fd = -1;
        if (c.out_fd2 >= 0) ::close(c.out_fd2);
        c.out_fd2 = -1;
      }
    } else {
      n = ::send(c.fd, c.out.data() + c.out_off, c.out.size() - c.out_off,
                 MSG_NOSIGNAL | MSG_DONTWAIT);
    }
    if (n > 0) {
      c.out_off += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      interest(c, EPOLLOUT);
      update_deadline(c);
      return;
    }
    close_conn(id);
    return;
  }
  after_sent(c);
}

void Server::after_sent(Conn& c) {
  c.out.clear();
  c.out.shrink_to_fit();
  c.out_off = 0;
  if (c.stop_after) {
    // What the client waits for is done before it sees the connection end: every
    // session ended (their rings finished) and the socket gone.
    c.busy = true;
    interest(c, 0);
    const uint64_t id = c.id;
    WorkerPool* pool = pool_;
    tasks_->submit([this, pool, id] {
      if (pool != nullptr) pool->close_all();
      {
        std::lock_guard lock(mu_);
        if (!path_.empty()) ::unlink(path_.c_str());
        path_.clear();  // once: a new engine may bind the path right after
      }
      post(Done(Done::kStopped, id, Reply{}));
    });
    return;
  }
  if (c.close_after) {
    close_conn(c.id);
    return;
  }
  update_deadline(c);
  interest(c, EPOLLIN);
}

void Server::drain_done() {
  std::vector<Done> done;
  {
    std::lock_guard lock(done_mu_);
    done.swap(done_);
  }
  for (Done& d : done) {
    auto it = conns_.find(d.conn);
    if (it == conns_.end())
      continue;  // gone meanwhile (engine stopping); ~Done closes its descriptor
    try {
      hand_back(*it->second, d);
    } catch (const std::exception& e) {
      error_log_.note("handing back a reply: ", e.what());
      close_conn(d.conn);  // it waits for a reply it will not get
    }
  }
}

void Server::hand_back(Conn& c, Done& d) {
  if (d.kind == Done::kStopped) {
    close_conn(c.id);
    log_line("shutdown requested by a client");
    stopping_ = true;
    return;
  }
  c.busy = false;
  Reply r = std::move(d.reply);
  d.reply.pass_fd = -1;  // the connection owns it now
  d.reply.pass_fd2 = -1;
  send(c, std::move(r));
}

void Server::update_deadline(Conn& c) {
  const auto limit = std::chrono::milliseconds(limits_.hello_timeout_ms);
  if (!c.hello)
    c.deadline = c.accepted + limit;  // Hello, and its reply, within the limit
  else if (c.busy)
    c.deadline = Clock::time_point::max();  // a request may wait as long as it must
  else if (!c.out.empty())
    c.deadline = c.out_started + limit;
  else if (c.prefix_got != 0)
    c.deadline = c.message_started + limit;
  else
    c.deadline = Clock::time_point::max();
}

void Server::check_deadlines(Clock::time_point now) {
  std::vector<uint64_t> late;
  for (auto& [id, c] : conns_) {
    if (c->busy) continue;
    update_deadline(*c);
    if (now >= c->deadline) late.push_back(id);
  }
  for (uint64_t id : late) {
    Conn& c = *conns_[id];
    (c.hello ? timeout_log_ : hello_log_)
        .note(std::string("closed a connection of pid ") + std::to_string(c.client) +
              (c.hello ? ": its message or our reply did not finish in time"
                       : ": it did not say Hello in time"));
    close_conn(id);
  }
}

void Server::close_conn(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  std::unique_ptr<Conn> c = std::move(it->second);
  conns_.erase(it);
  if (c->fd >= 0) {
    if (c->events != 0) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c->fd, nullptr);
    // The peer sees the end now; its sessions are closed after.
    ::shutdown(c->fd, SHUT_RDWR);
    ::close(c->fd);
    c->fd = -1;
  }
  if (c->counted) quota_.remove_connection(c->client);
  if (c->refuse != SHMREPL_OK && !c->spare && refused_open_ > 0) --refused_open_;
  if (c->spare && spare_fd_ < 0) spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (c->dispatcher == nullptr) return;
  std::shared_ptr<Served> d = std::move(c->dispatcher);
  auto cleanup = [d] {
    std::lock_guard lock(d->mu);
    d->d->cleanup();
  };
  if (!c->busy && d->d->sessions() == 0) return;  // nothing that waits
  try {
    tasks_->submit(cleanup);
  } catch (const std::bad_alloc&) {
    cleanup();  // here, then: the sessions must not outlive their client
  }
}

void Server::close() {
  if (listen_fd_ >= 0) {
    if (listening_) epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, listen_fd_, nullptr);
    listening_ = false;
    ::close(listen_fd_);
    listen_fd_ = -1;
  }
  {
    std::lock_guard lock(mu_);
    if (!path_.empty()) ::unlink(path_.c_str());
    path_.clear();
  }
  std::vector<uint64_t> ids;
  for (auto& [id, c] : conns_) ids.push_back(id);
  for (uint64_t id : ids) close_conn(id);
  // The requests still running and the clean-ups finish before we return.
  if (tasks_ != nullptr) tasks_->stop();
  std::lock_guard lock(done_mu_);
  done_.clear();
}

}  // namespace shmrepl::server
