// Connecting to an engine: the socket, Hello, and starting an engine when none
// listens.
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "client.hpp"
#include "rings.hpp"
#include "status.hpp"

namespace shmrepl::client {

namespace ctl = control::ctl;
using abi::fail;

Connection::~Connection() {
  close();
  for (auto& [id, ring] : background_rings)
    if (!ring.empty()) abi::forget_ring(ring);
}

void Connection::close() noexcept {
  std::lock_guard lock(mu_);
  closed_ = true;
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  close_received();
}

void Connection::close_received() noexcept {
  for (int& fd : received_fds_) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
}

Connection::Connection(int fd, bool worker, int64_t request_timeout_ns)
    : fd_(fd), worker_(worker), request_timeout_ns_(request_timeout_ns), timeout_ns_(request_timeout_ns) {}

void Connection::set_timeout(int64_t timeout_ns) noexcept {
  std::lock_guard lock(mu_);
  timeout_ns_ = timeout_ns;
}

shmrepl_status_t Connection::wait_closed(int64_t timeout_ns) {
  std::lock_guard lock(mu_);
  if (fd_ < 0) return SHMREPL_OK;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(timeout_ns);
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return fail(SHMREPL_E_TIMEOUT, "the engine did not stop in time");
    pollfd p{fd_, POLLIN, 0};
    int rc = poll(&p, 1, static_cast<int>(left.count()));
    if (rc < 0 && errno != EINTR) return fail(SHMREPL_E_SYSTEM, std::string("poll: ") + std::strerror(errno));
    if (rc <= 0) continue;
    char buf[256];
    ssize_t n = ::read(fd_, buf, sizeof buf);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
      dead_ = true;
      return SHMREPL_OK;
    }
  }
}

shmrepl_status_t Connection::begin(uint64_t* id) {
  if (closed_) return fail(SHMREPL_E_STATE, "the client is closed");
  if (timed_out_)
    return fail(SHMREPL_E_STATE,
                "an earlier request timed out (request_timeout_ns): this connection is unusable; connect again");
  if (dead_)
    return worker_ ? fail(SHMREPL_E_SESSION_DIED, "the session's worker process died; open a new session")
                   : fail(SHMREPL_E_ENGINE_DIED, "the connection to the engine is gone");
  *id = next_id_++;
  // One deadline for the whole request, sending and reading its reply (and the
  // replies to posted requests before it), however the peer trickles its bytes.
  deadline_ns_ = control::deadline_after(timeout_ns_);
  return SHMREPL_OK;
}

shmrepl_status_t Connection::die(shmrepl_status_t status, std::string text) {
  // The stream is out of step or closed: no later reply could be trusted.
  dead_ = true;
  if (worker_ && status == SHMREPL_E_ENGINE_DIED) {
    status = SHMREPL_E_SESSION_DIED;
    text = "the session's worker process died; open a new session (" + text + ")";
  }
  ::shutdown(fd_, SHUT_RDWR);
  return fail(status, std::move(text));
}

shmrepl_status_t Connection::send(const control::Frame& frame, std::span<const int> pass_fds) {
  std::string err;
  shmrepl_status_t st = control::write_all_with_fds(fd_, frame.data(), frame.size(),
                                                    pass_fds.data(), pass_fds.size(), &err, deadline_ns_);
  if (st == SHMREPL_E_TIMEOUT) {
    timed_out_ = true;
    return die(st, "the request could not be sent within request_timeout_ns");
  }
  if (st != SHMREPL_OK) return die(st == SHMREPL_E_SYSTEM ? st : SHMREPL_E_ENGINE_DIED, err);
  return SHMREPL_OK;
}

// Reads the reply to request `id` into body_ (and received_fd_).
shmrepl_status_t Connection::read_reply(uint64_t id, const ctl::Message** out) {
  std::string err;
  const ctl::Message* m = nullptr;
  close_received();  // not taken by the last caller
  shmrepl_status_t st = control::read_message(fd_, &body_, &m, &err, received_fds_, 2, deadline_ns_);
  if (st == SHMREPL_E_EOF || st == SHMREPL_E_ENGINE_DIED)
    return die(SHMREPL_E_ENGINE_DIED, "the engine closed the connection");
  if (st == SHMREPL_E_TIMEOUT) {
    // Only a reply read in full keeps the stream in step: a late one would be taken
    // for the next request's.
    timed_out_ = true;
    return die(st, worker_ ? "the session's worker did not reply in time" : "the engine did not reply in time");
  }
  if (st != SHMREPL_OK) return die(st == SHMREPL_E_SYSTEM ? st : SHMREPL_E_PROTOCOL, err);
  if (m->request_id() != id)
    return die(SHMREPL_E_PROTOCOL, "reply to request " + std::to_string(m->request_id()) +
                                       ", expected " + std::to_string(id));
  *out = m;
  return SHMREPL_OK;
}

shmrepl_status_t Connection::exchange(const control::Frame& frame, uint64_t id, ctl::Body expected,
                                      const ctl::Message** reply, std::span<const int> pass_fds) {
  shmrepl_status_t st = send(frame, pass_fds);
  if (st != SHMREPL_OK) return st;
  const ctl::Message* m = nullptr;
  // Replies to posted requests come first (the peer answers in order); any answer
  // will do, but it must be theirs.
  for (; !unread_.empty(); unread_.pop_front())
    if ((st = read_reply(unread_.front(), &m)) != SHMREPL_OK) return st;
  if ((st = read_reply(id, &m)) != SHMREPL_OK) return st;
  if (m->body_type() == ctl::Body::Error) {
    const ctl::Error* e = m->body_as_Error();
    shmrepl_status_t code = e->code() < 0 ? e->code() : SHMREPL_E_PROTOCOL;
    return fail(code, std::string("engine: ") + (e->message() ? e->message()->str() : ""));
  }
  if (m->body_type() != expected)
    return die(SHMREPL_E_PROTOCOL, std::string("unexpected reply ") + control::body_name(m->body_type()) +
                                       ", expected " + control::body_name(expected));
  *reply = m;
  return SHMREPL_OK;
}

namespace {

constexpr int64_t kDefaultTimeoutNs = 5'000'000'000;

// Connects to `path`. *nobody is set when nothing listens there (so starting an
// engine may help).
shmrepl_status_t connect_socket(const std::string& path, int* out, bool* nobody) {
  *nobody = false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path)
    return fail(SHMREPL_E_INVALID, "socket path is too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return fail(SHMREPL_E_SYSTEM, std::string("socket: ") + std::strerror(errno));
  int rc;
  do rc = ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr);
  while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int e = errno;
    ::close(fd);
    *nobody = e == ENOENT || e == ECONNREFUSED;
    return fail(SHMREPL_E_CONNECT, "connect to " + path + ": " + std::strerror(e));
  }
  // Only an engine of our own user is trusted with our code.
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    int e = errno;
    ::close(fd);
    return fail(SHMREPL_E_SYSTEM, std::string("SO_PEERCRED: ") + std::strerror(e));
  }
  if (!control::peer_allowed(cred.uid, geteuid())) {
    ::close(fd);
    return fail(SHMREPL_E_PERMISSION,
                path + " is served by uid " + std::to_string(cred.uid) + ", not by us");
  }
  *out = fd;
  return SHMREPL_OK;
}

bool executable(const std::string& p) { return !p.empty() && access(p.c_str(), X_OK) == 0; }

std::string dir_of_real(const char* path) {
  char buf[PATH_MAX];
  if (path == nullptr || realpath(path, buf) == nullptr) return {};
  return control::parent_dir(buf);
}

std::string find_engine(const char* explicit_path) {
  if (explicit_path != nullptr && explicit_path[0] != '\0') return explicit_path;
  const char* env = std::getenv("SHMREPL_ENGINE");
  if (env != nullptr && env[0] != '\0') return env;
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&shmrepl_client_connect), &info) != 0) {
    std::string lib = dir_of_real(info.dli_fname);
    if (!lib.empty() && executable(lib + "/../bin/shmrepl-engine")) return lib + "/../bin/shmrepl-engine";
  }
  std::string exe = dir_of_real("/proc/self/exe");
  if (!exe.empty() && executable(exe + "/shmrepl-engine")) return exe + "/shmrepl-engine";
  return {};
}

// Starts `engine` detached (its own session, not our child), stdin from /dev/null,
// stdout and stderr appended to `log`. Fails only when it cannot be executed.
shmrepl_status_t spawn_engine(const std::string& engine, const std::string& socket,
                              const std::string& log) {
  // Everything the children use is prepared before fork: after it, only
  // async-signal-safe calls.
  std::string arg0 = engine, arg1 = "--socket", arg2 = socket;
  char* argv[] = {arg0.data(), arg1.data(), arg2.data(), nullptr};
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return fail(SHMREPL_E_SYSTEM, std::string("pipe: ") + std::strerror(errno));
  pid_t child = fork();
  if (child < 0) {
    int e = errno;
    ::close(pipefd[0]);
    ::close(pipefd[1]);
    return fail(SHMREPL_E_SYSTEM, std::string("fork: ") + std::strerror(e));
  }
  if (child == 0) {
    setsid();
    if (fork() != 0) _exit(0);  // the engine is re-parented and never our zombie
    int in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (out < 0) out = open("/dev/null", O_WRONLY | O_CLOEXEC);
    if (in >= 0) dup2(in, 0);
    if (out >= 0) {
      dup2(out, 1);
      dup2(out, 2);
    }
    // No descriptor of the host program leaks into the long-lived engine.
    syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC);
    // A client may block or ignore signals (the CLI blocks SIGINT); the engine must not.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGPIPE, SIGQUIT}) sigaction(sig, &dfl, nullptr);
    execv(argv[0], argv);
    int e = errno;
    ssize_t ignored = write(pipefd[1], &e, sizeof e);
    (void)ignored;
    _exit(127);
  }
  ::close(pipefd[1]);
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  // EOF: the exec succeeded (the pipe is close-on-exec); else the child's errno.
  int child_errno = 0;
  ssize_t n;
  do n = read(pipefd[0], &child_errno, sizeof child_errno);
  while (n < 0 && errno == EINTR);
  ::close(pipefd[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno))
    return fail(SHMREPL_E_CONNECT, "cannot start " + engine + ": " + std::strerror(child_errno));
  return SHMREPL_OK;
}

// One line for a user who upgraded shmrepl while an old engine kept running: both
// versions and the command that replaces the engine.
shmrepl_status_t other_version(const std::string& path, bool is_default, const std::string& engine_abi,
                               const std::string& engine_version) {
  const std::string restart =
      is_default ? "shmrepl engine restart" : "shmrepl --socket " + path + " engine restart";
  return fail(SHMREPL_E_VERSION,
              "the engine at " + path + " is of another version (" +
                  (engine_version.empty() ? "" : "shmrepl " + engine_version + ", ") + "ABI " + engine_abi +
                  ") than this library (shmrepl " + shmrepl_version() + ", ABI " +
                  std::to_string(SHMREPL_ABI_VERSION) + "); `" + restart + "` replaces it");
}

shmrepl_status_t hello(const std::shared_ptr<Connection>& conn, int64_t timeout_ns, const std::string& path,
                       bool is_default) {
  // Something that accepts but never answers must not hang us.
  conn->set_timeout(timeout_ns);
  uint32_t abi_version = 0;
  std::string engine_version;
  shmrepl_status_t st = conn->request(
      [](uint64_t id) {
        return control::hello(id, SHMREPL_ABI_VERSION, static_cast<uint32_t>(getpid()));
      },
      ctl::Body::HelloReply,
      [&](const ctl::Message* m) {
        conn->engine_pid = m->body_as_HelloReply()->engine_pid();
        abi_version = m->body_as_HelloReply()->abi_version();
        if (m->body_as_HelloReply()->engine_version() != nullptr)
          for (const char c : m->body_as_HelloReply()->engine_version()->string_view())
            if (c > ' ' && c < 0x7f && engine_version.size() < 40) engine_version.push_back(c);  // one line
      });
  conn->set_timeout(conn->request_timeout_ns());
  if (st == SHMREPL_OK && abi_version != SHMREPL_ABI_VERSION)
    return other_version(path, is_default, std::to_string(abi_version), engine_version);
  if (st == SHMREPL_E_VERSION) {
    // The engine refused our Hello: "engine: client speaks ABI version X, engine Y".
    const std::string said = abi::t_last_error_cstr();
    const std::size_t at = said.rfind(", engine ");
    const std::size_t digits = at == std::string::npos ? 0 : said.find_first_not_of("0123456789", at + 9) - (at + 9);
    return other_version(path, is_default, digits == 0 ? "unknown" : said.substr(at + 9, digits), "");
  }
  return st;
}

}  // namespace

shmrepl_status_t connect(const shmrepl_client_options_t* options, std::shared_ptr<Connection>* out) {
  shmrepl_client_options_t o{};
  o.struct_size = sizeof o;
  if (options != nullptr) {
    // Any size from the first published one (32) up: fields past struct_size are 0.
    if (options->struct_size < offsetof(shmrepl_client_options_t, connect_timeout_ns) + sizeof(int64_t))
      return fail(SHMREPL_E_INVALID, "options->struct_size is too small");
    std::memcpy(&o, options, std::min<std::size_t>(options->struct_size, sizeof o));
    o.struct_size = sizeof o;
  }
  if (o.autostart > SHMREPL_AUTOSTART_OFF) return fail(SHMREPL_E_INVALID, "unknown options->autostart");
  if (o.connect_timeout_ns < 0) return fail(SHMREPL_E_INVALID, "options->connect_timeout_ns < 0");
  if (o.request_timeout_ns < 0) return fail(SHMREPL_E_INVALID, "options->request_timeout_ns < 0");
  const int64_t timeout_ns = o.connect_timeout_ns != 0 ? o.connect_timeout_ns : kDefaultTimeoutNs;

  bool is_default = false;
  const std::string path = control::socket_path(o.socket_path, &is_default);
  if (is_default) {
    std::string err;
    shmrepl_status_t st = control::ensure_private_dir(control::parent_dir(path), &err);
    if (st != SHMREPL_OK) return fail(st, err);
  }

  int fd = -1;
  bool nobody = false;
  shmrepl_status_t st = connect_socket(path, &fd, &nobody);
  if (st != SHMREPL_OK) {
    if (!nobody) return st;
    if (o.autostart == SHMREPL_AUTOSTART_OFF)
      return fail(SHMREPL_E_CONNECT, "no engine listens at " + path + " (autostart is off)");
    const std::string engine = find_engine(o.engine_path);
    if (engine.empty())
      return fail(SHMREPL_E_CONNECT, "no engine listens at " + path +
                                         " and shmrepl-engine was not found (set SHMREPL_ENGINE)");
    st = spawn_engine(engine, path, path + ".log");
    if (st != SHMREPL_OK) return st;
    // Another client may be starting one too: whichever engine wins the socket's
    // lock serves both of us; the other exits.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::nanoseconds(timeout_ns);
    auto pause = std::chrono::milliseconds(2);
    for (;;) {
      st = connect_socket(path, &fd, &nobody);
      if (st == SHMREPL_OK || !nobody) break;
      if (std::chrono::steady_clock::now() >= deadline)
        return fail(SHMREPL_E_CONNECT, "started " + engine + " but nothing listens at " + path +
                                           " after " + std::to_string(timeout_ns / 1'000'000) +
                                           " ms; see " + path + ".log");
      std::this_thread::sleep_for(pause);
      pause = std::min(pause * 2, std::chrono::milliseconds(50));
    }
    if (st != SHMREPL_OK) return st;
  }
  auto conn = std::make_shared<Connection>(fd, false, o.request_timeout_ns);
  st = hello(conn, timeout_ns, path, is_default);
  if (st != SHMREPL_OK) return st;
  *out = std::move(conn);
  return SHMREPL_OK;
}

}  // namespace shmrepl::client
