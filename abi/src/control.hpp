// The control protocol (abi/control.fbs) without any socket: framing, building
// and verifying messages, and where the engine's socket lives. Used by the client
// library and the engine's server, and the one place a fuzzer needs to target.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "shmrepl/control_generated.h"
#include "shmrepl/shmrepl.h"

namespace shmrepl::control {

namespace ctl = shmrepl::ctl;  // the generated types

// A message body larger than this is refused before it is read.
inline constexpr uint32_t kMaxMessage = 64u << 20;
inline constexpr std::size_t kPrefixSize = 4;

// A framed message: u32 little-endian length, then the FlatBuffers bytes.
using Frame = std::vector<uint8_t>;

// ---- building (each returns a whole frame, ready to send) ----
Frame hello(uint64_t request_id, uint32_t abi_version, uint32_t pid);
struct SessionFields {
  std::string_view working_dir;
  bool set_env = false;
  std::vector<std::string_view> env;
  bool stdin = false;
  bool stdout_tty = false;
  bool stderr_tty = false;
};
Frame open_session(uint64_t request_id, const SessionFields& fields = {});
struct ExecuteFields {
  uint64_t session_id = 0;
  std::string_view code;
  std::string_view client_execution_id;
  std::string_view filename;
  std::vector<std::string_view> argv;
  bool script = false;
  uint64_t ring_capacity = 0;
  int64_t timeout_ns = 0;
  uint64_t memory_limit = 0;
};
Frame execute(uint64_t request_id, const ExecuteFields& fields);
Frame cancel(uint64_t request_id, uint64_t execution_id);
Frame release(uint64_t request_id, uint64_t execution_id);
Frame close_session(uint64_t request_id, uint64_t session_id);
Frame shutdown(uint64_t request_id);
Frame input_reply(uint64_t request_id, uint64_t execution_id, std::string_view text);
Frame open_ring(uint64_t request_id, std::string_view name);
Frame hello_reply(uint64_t request_id, uint32_t abi_version, uint32_t engine_pid,
                  std::string_view engine_version);
Frame session_opened(uint64_t request_id, uint64_t session_id, std::string_view background_ring,
                     uint32_t worker_pid = 0);
Frame accepted(uint64_t request_id, uint64_t execution_id, std::string_view ring_name, bool same_ring = false);
Frame ok(uint64_t request_id);
Frame error(uint64_t request_id, shmrepl_status_t code, std::string_view message);

// ---- parsing ----
// The body length a prefix announces. OK, E_TOO_LARGE (> kMaxMessage) or
// E_PROTOCOL (0: no FlatBuffer is that small).
shmrepl_status_t parse_prefix(std::span<const uint8_t, kPrefixSize> prefix, uint32_t* length,
                              std::string* error_text);

// Verifies `body` as a Message (every offset, the identifier, the union). Returns
// the message (pointing into body) or nullptr with *error_text set. `body` must be
// 8-byte aligned (as a std::vector's storage is). Never reads outside body.
const ctl::Message* verify(std::span<const uint8_t> body, std::string* error_text) noexcept;

// True for the bodies a client may send (Hello ... Shutdown, InputReply, OpenRing).
bool is_request(ctl::Body type) noexcept;
// "Hello", "Execute"... for messages and logs.
const char* body_name(ctl::Body type) noexcept;

// Splits a byte stream into frames and verifies each: what a reader of the socket
// does, without the socket (fuzzing, tests). Stops at the first bad frame.
// Returns OK after `data` is consumed whole (a trailing partial frame is
// E_AGAIN), or the status of the first bad frame. *count gets the good messages.
shmrepl_status_t verify_stream(std::span<const uint8_t> data, std::size_t* count,
                               std::string* error_text);

// ---- where the engine listens ----
// The socket path: `explicit_path` if not NULL/empty, else $SHMREPL_SOCKET if set
// and not empty, else the default "$XDG_RUNTIME_DIR/shmrepl/default.sock" or
// "/tmp/shmrepl-<uid>/default.sock". *is_default tells whether it is the default
// (whose folder the caller creates and checks with ensure_private_dir).
std::string socket_path(const char* explicit_path, bool* is_default);
// The folder of a path ("." if none).
std::string parent_dir(const std::string& path);
// Creates `dir` (mode 0700) if it is missing and checks that it is a folder of
// ours with no group/other permission bits. OK, E_PERMISSION or E_SYSTEM.
shmrepl_status_t ensure_private_dir(const std::string& dir, std::string* error_text);
// The decision which peers an engine serves: the same uid only.
bool peer_allowed(uid_t peer_uid, uid_t engine_uid) noexcept;

// ---- blocking socket helpers (EINTR-safe; send never raises SIGPIPE) ----
// `deadline_ns`: 0 = none; else a CLOCK_MONOTONIC time (deadline_after()) by which the
// whole call must be done, however the peer trickles its bytes: E_TIMEOUT after it.
// OK, E_EOF (peer closed before the first byte), E_ENGINE_DIED (closed mid-way or
// reset), E_TIMEOUT (the deadline, or SO_RCVTIMEO/SO_SNDTIMEO, expired) or E_SYSTEM.
int64_t monotonic_ns() noexcept;
inline int64_t deadline_after(int64_t timeout_ns) noexcept {
  return timeout_ns > 0 ? monotonic_ns() + timeout_ns : 0;
}
shmrepl_status_t read_exact(int fd, void* buf, std::size_t len, std::string* error_text,
                            int64_t deadline_ns = 0);
shmrepl_status_t write_all(int fd, const void* buf, std::size_t len, std::string* error_text,
                           int64_t deadline_ns = 0);
// Reads one whole message into *body (aligned storage) and verifies it.
// With `received_fd`: also takes a descriptor passed with the message (SCM_RIGHTS,
// close-on-exec) into *received_fd (left as is if none came; the caller sets -1).
shmrepl_status_t read_message(int fd, std::vector<uint8_t>* body, const ctl::Message** out,
                              std::string* error_text, int* received_fd = nullptr);
// The same taking up to `max_fds` descriptors into received_fds[0..max_fds), in the
// order sent (those still -1 are filled; the caller sets them -1 first), within
// `deadline_ns` (as read_exact).
shmrepl_status_t read_message(int fd, std::vector<uint8_t>* body, const ctl::Message** out,
                              std::string* error_text, int* received_fds, std::size_t max_fds,
                              int64_t deadline_ns = 0);
// The most descriptors one message carries (OpenSession: stdin, stdout, stderr).
inline constexpr std::size_t kMaxPassedFds = 3;
// Reads a 4-byte prefix, taking the descriptors that came with it (close-on-exec, in
// the order sent) into received_fds[0..kMaxPassedFds) (-1 where none). As read_exact
// otherwise.
shmrepl_status_t read_prefix(int fd, uint8_t* prefix, int* received_fds, std::string* error_text);
// write_all, with descriptor `pass_fd` passed along (SCM_RIGHTS).
shmrepl_status_t write_all_with_fd(int fd, const void* buf, std::size_t len, int pass_fd,
                                   std::string* error_text, int64_t deadline_ns = 0);
// write_all, with descriptors fds[0..nfds) passed along (nfds <= kMaxPassedFds).
shmrepl_status_t write_all_with_fds(int fd, const void* buf, std::size_t len, const int* fds,
                                    std::size_t nfds, std::string* error_text, int64_t deadline_ns = 0);

}  // namespace shmrepl::control
