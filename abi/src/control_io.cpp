// Blocking reads and writes of whole control messages on a stream socket.
#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "control.hpp"

namespace shmrepl::control {

int64_t monotonic_ns() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

namespace {
// With a deadline every call is non-blocking and waits in poll() for what is left of
// the deadline, so a peer that trickles one byte at a time cannot stretch a call.
int io_flags(int64_t deadline_ns) noexcept { return deadline_ns != 0 ? MSG_DONTWAIT : 0; }

// After EAGAIN: waits until `fd` is ready for `events`. OK, or E_TIMEOUT (also when
// there is no deadline: then EAGAIN came from SO_RCVTIMEO/SO_SNDTIMEO) or E_SYSTEM.
shmrepl_status_t wait_ready(int fd, short events, int64_t deadline_ns, const char* what,
                            std::string* error_text) {
  for (;;) {
    const int64_t left = deadline_ns == 0 ? 0 : deadline_ns - monotonic_ns();
    if (left <= 0) {
      *error_text = std::string(what) + ": timed out";
      return SHMREPL_E_TIMEOUT;
    }
    pollfd p{fd, events, 0};
    const int ms = static_cast<int>(std::min<int64_t>((left + 999'999) / 1'000'000, INT_MAX));
    const int rc = ::poll(&p, 1, ms);
    if (rc > 0) return SHMREPL_OK;  // ready, or an error the next call reports
    if (rc < 0 && errno != EINTR) {
      *error_text = std::string("poll: ") + std::strerror(errno);
      return SHMREPL_E_SYSTEM;
    }
  }
}
}  // namespace

shmrepl_status_t read_exact(int fd, void* buf, std::size_t len, std::string* error_text,
                            int64_t deadline_ns) {
  auto* p = static_cast<uint8_t*>(buf);
  std::size_t got = 0;
  while (got < len) {
    ssize_t n = ::recv(fd, p + got, len - got, io_flags(deadline_ns));
    if (n > 0) {
      got += static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0) {
      *error_text = "connection closed by peer";
      return got == 0 ? SHMREPL_E_EOF : SHMREPL_E_ENGINE_DIED;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (shmrepl_status_t st = wait_ready(fd, POLLIN, deadline_ns, "read from socket", error_text);
          st != SHMREPL_OK)
        return st;
      continue;
    }
    *error_text = std::string("read from socket: ") + std::strerror(errno);
    return errno == ECONNRESET ? SHMREPL_E_ENGINE_DIED : SHMREPL_E_SYSTEM;
  }
  return SHMREPL_OK;
}

shmrepl_status_t write_all(int fd, const void* buf, std::size_t len, std::string* error_text,
                           int64_t deadline_ns) {
  const auto* p = static_cast<const uint8_t*>(buf);
  std::size_t done = 0;
  while (done < len) {
    ssize_t n = ::send(fd, p + done, len - done, MSG_NOSIGNAL | io_flags(deadline_ns));
    if (n >= 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (shmrepl_status_t st = wait_ready(fd, POLLOUT, deadline_ns, "write to socket", error_text);
          st != SHMREPL_OK)
        return st;
      continue;
    }
    *error_text = std::string("write to socket: ") + std::strerror(errno);
    return (errno == EPIPE || errno == ECONNRESET) ? SHMREPL_E_ENGINE_DIED : SHMREPL_E_SYSTEM;
  }
  return SHMREPL_OK;
}

shmrepl_status_t write_all_with_fd(int fd, const void* buf, std::size_t len, int pass_fd,
                                   std::string* error_text, int64_t deadline_ns) {
  return write_all_with_fds(fd, buf, len, &pass_fd, 1, error_text, deadline_ns);
}

shmrepl_status_t write_all_with_fds(int fd, const void* buf, std::size_t len, const int* fds,
                                    std::size_t nfds, std::string* error_text, int64_t deadline_ns) {
  if (len == 0) return SHMREPL_OK;
  if (nfds == 0) return write_all(fd, buf, len, error_text, deadline_ns);
  if (nfds > kMaxPassedFds) {
    *error_text = "too many descriptors for one message";
    return SHMREPL_E_INVALID;
  }
  // The descriptors ride on the first byte; the rest follows as usual.
  iovec iov{const_cast<void*>(buf), 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxPassedFds)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
  std::memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
  for (;;) {
    ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | io_flags(deadline_ns));
    if (n == 1) break;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (shmrepl_status_t st = wait_ready(fd, POLLOUT, deadline_ns, "sendmsg", error_text); st != SHMREPL_OK)
        return st;
      continue;
    }
    *error_text = std::string("sendmsg: ") + std::strerror(errno);
    return (errno == EPIPE || errno == ECONNRESET) ? SHMREPL_E_ENGINE_DIED : SHMREPL_E_SYSTEM;
  }
  return write_all(fd, static_cast<const uint8_t*>(buf) + 1, len - 1, error_text, deadline_ns);
}

namespace {
// Takes up to `max` descriptors into received[0..max) (those still -1); closes the rest.
shmrepl_status_t read_prefix_fd(int fd, uint8_t* prefix, int* received, std::size_t max,
                                std::string* error_text, int64_t deadline_ns = 0) {
  iovec iov{prefix, 1};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * (kMaxPassedFds + 1))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  for (;;) {
    n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC | io_flags(deadline_ns));
    if (n >= 0) break;
    if (errno == EINTR) continue;
    if (errno != EAGAIN && errno != EWOULDBLOCK) break;
    if (shmrepl_status_t st = wait_ready(fd, POLLIN, deadline_ns, "recvmsg", error_text); st != SHMREPL_OK)
      return st;
  }
  if (n == 0) {
    *error_text = "connection closed by peer";
    return SHMREPL_E_EOF;
  }
  if (n < 0) {
    *error_text = std::string("recvmsg: ") + std::strerror(errno);
    return errno == ECONNRESET ? SHMREPL_E_ENGINE_DIED : SHMREPL_E_SYSTEM;
  }
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    const std::size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (std::size_t i = 0; i < count; ++i) {
      int got;
      std::memcpy(&got, CMSG_DATA(c) + i * sizeof(int), sizeof got);
      std::size_t slot = 0;
      while (slot < max && received[slot] >= 0) ++slot;
      if (slot < max) received[slot] = got;
      else ::close(got);  // more than this message may carry
    }
  }
  if ((msg.msg_flags & MSG_CTRUNC) != 0) {
    *error_text = "a passed descriptor was cut off (MSG_CTRUNC)";
    return SHMREPL_E_PROTOCOL;
  }
  return read_exact(fd, prefix + 1, kPrefixSize - 1, error_text, deadline_ns);
}
}  // namespace

shmrepl_status_t read_prefix(int fd, uint8_t* prefix, int* received_fds, std::string* error_text) {
  for (std::size_t i = 0; i < kMaxPassedFds; ++i) received_fds[i] = -1;
  shmrepl_status_t st = read_prefix_fd(fd, prefix, received_fds, kMaxPassedFds, error_text);
  if (st != SHMREPL_OK)
    for (std::size_t i = 0; i < kMaxPassedFds; ++i)
      if (received_fds[i] >= 0) {
        ::close(received_fds[i]);
        received_fds[i] = -1;
      }
  return st;
}

shmrepl_status_t read_message(int fd, std::vector<uint8_t>* body, const ctl::Message** out,
                              std::string* error_text, int* received_fd) {
  return read_message(fd, body, out, error_text, received_fd, received_fd != nullptr ? 1 : 0);
}

shmrepl_status_t read_message(int fd, std::vector<uint8_t>* body, const ctl::Message** out,
                              std::string* error_text, int* received_fds, std::size_t max_fds,
                              int64_t deadline_ns) {
  *out = nullptr;
  uint8_t prefix[kPrefixSize];
  shmrepl_status_t st = max_fds > 0 ? read_prefix_fd(fd, prefix, received_fds, max_fds, error_text, deadline_ns)
                                    : read_exact(fd, prefix, sizeof prefix, error_text, deadline_ns);
  if (st == SHMREPL_E_EOF && max_fds > 0 && received_fds[0] >= 0) st = SHMREPL_E_ENGINE_DIED;
  if (st != SHMREPL_OK) return st;
  uint32_t len = 0;
  st = parse_prefix(std::span<const uint8_t, kPrefixSize>(prefix), &len, error_text);
  if (st != SHMREPL_OK) return st;
  body->resize(len);
  st = read_exact(fd, body->data(), len, error_text, deadline_ns);
  if (st == SHMREPL_E_EOF) st = SHMREPL_E_ENGINE_DIED;  // the prefix came, the body did not
  if (st != SHMREPL_OK) return st;
  *out = verify(*body, error_text);
  return *out != nullptr ? SHMREPL_OK : SHMREPL_E_PROTOCOL;
}

}  // namespace shmrepl::control
