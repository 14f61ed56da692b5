// Blocking reads and writes of whole control messages on a stream socket.
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "control.hpp"

namespace shmrepl::control {

shmrepl_status_t read_exact(int fd, void* buf, std::size_t len, std::string* error_text) {
  auto* p = static_cast<uint8_t*>(buf);
  std::size_t got = 0;
  while (got < len) {
    ssize_t n = ::read(fd, p + got, len - got);
    if (n > 0) {
      got += static_cast<std::size_t>(n);
      continue;
    }
    if (n == 0) {
      *error_text = "connection closed by peer";
      return got == 0 ? SHMREPL_E_EOF : SHMREPL_E_ENGINE_DIED;
    }
    if (errno == EINTR) continue;
    *error_text = std::string("read from socket: ") + std::strerror(errno);
    if (errno == EAGAIN || errno == EWOULDBLOCK) return SHMREPL_E_TIMEOUT;  // SO_RCVTIMEO
    return errno == ECONNRESET ? SHMREPL_E_ENGINE_DIED : SHMREPL_E_SYSTEM;
  }
  return SHMREPL_OK;
}

shmrepl_status_t write_all(int fd, const void* buf, std::size_t len, std::string* error_text) {
  const auto* p = static_cast<const uint8_t*>(buf);
  std::size_t done = 0;
  while (done < len) {
    ssize_t n = ::send(fd, p + done, len - done, MSG_NOSIGNAL);
    if (n >= 0) {
      done += static_cast<std::size_t>(n);
      continue;
    }
    if (errno == EINTR) continue;
    *error_text = std::string("write to socket: ") + std::strerror(errno);
    return (errno == EPIPE || errno == ECONNRESET) ? SHMREPL_E_ENGINE_DIED : SHMREPL_E_SYSTEM;
  }
  return SHMREPL_OK;
}

shmrepl_status_t read_message(int fd, std::vector<uint8_t>* body, const ctl::Message** out,
                              std::string* error_text) {
  *out = nullptr;
  uint8_t prefix[kPrefixSize];
  shmrepl_status_t st = read_exact(fd, prefix, sizeof prefix, error_text);
  if (st != SHMREPL_OK) return st;
  uint32_t len = 0;
  st = parse_prefix(std::span<const uint8_t, kPrefixSize>(prefix), &len, error_text);
  if (st != SHMREPL_OK) return st;
  body->resize(len);
  st = read_exact(fd, body->data(), len, error_text);
  if (st == SHMREPL_E_EOF) st = SHMREPL_E_ENGINE_DIED;  // the prefix came, the body did not
  if (st != SHMREPL_OK) return st;
  *out = verify(*body, error_text);
  return *out != nullptr ? SHMREPL_OK : SHMREPL_E_PROTOCOL;
}

}  // namespace shmrepl::control
