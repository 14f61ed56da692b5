#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cli.hpp"

namespace shmrepl::cli {

void report(const std::string& what, shmrepl_status_t status) {
  const char* detail = shmrepl_last_error();
  if (detail != nullptr && detail[0] != '\0')
    std::fprintf(stderr, "shmrepl: %s: %s (%s)\n", what.c_str(), shmrepl_status_str(status), detail);
  else
    std::fprintf(stderr, "shmrepl: %s: %s\n", what.c_str(), shmrepl_status_str(status));
}

bool write_all(int fd, const void* data, size_t len) {
  const auto* p = static_cast<const char*>(data);
  while (len > 0) {
    ssize_t n = ::write(fd, p, len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += n;
    len -= static_cast<size_t>(n);
  }
  return true;
}

namespace {

// writev until every byte of iov[0..cnt) is out.
bool writev_all(int fd, iovec* iov, int cnt) {
  while (cnt > 0) {
    ssize_t n = ::writev(fd, iov, cnt);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    auto left = static_cast<size_t>(n);
    while (cnt > 0 && left >= iov->iov_len) {
      left -= iov->iov_len;
      ++iov;
      --cnt;
    }
    if (cnt > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + left;
      iov->iov_len -= left;
    }
  }
  return true;
}

}  // namespace

bool write_outputs(const shmrepl_record_t* records, size_t n) {
  constexpr int kMaxIov = 256;
  iovec iov[kMaxIov];
  int cnt = 0;
  int fd = -1;
  auto flush = [&] {
    bool ok = cnt == 0 || writev_all(fd, iov, cnt);
    cnt = 0;
    return ok;
  };
  for (size_t i = 0; i < n; ++i) {
    const shmrepl_record_t& r = records[i];
    if (r.kind != SHMREPL_RECORD_OUTPUT || r.data_len == 0) continue;
    const int to = r.stream == SHMREPL_STREAM_STDERR ? 2 : 1;
    if ((to != fd || cnt == kMaxIov) && !flush()) return false;
    fd = to;
    iov[cnt++] = iovec{const_cast<uint8_t*>(r.data), r.data_len};
  }
  return flush();
}

int read_ring(const Global& g, const std::string& ring, const shmrepl_reader_options_t* options, bool follow,
              const std::function<bool(const shmrepl_record_t*, size_t)>& batch) {
  // A sealed ring comes from the engine at the default socket: make it this one.
  if (!g.socket.empty()) ::setenv("SHMREPL_SOCKET", g.socket.c_str(), 1);
  shmrepl_reader_t* reader = nullptr;
  shmrepl_status_t st = shmrepl_reader_open(ring.c_str(), options, &reader);
  if (st != SHMREPL_OK) {
    report("cannot open ring " + ring, st);
    return 1;
  }
  constexpr size_t kBatch = 256;
  shmrepl_record_t records[kBatch];
  int code = 0;
  for (;;) {
    size_t n = 0;
    // Without follow, what the ring holds now: a live execution's ring ends at E_AGAIN.
    st = shmrepl_reader_next_batch(reader, records, kBatch, &n, follow ? -1 : 0);
    if (st == SHMREPL_E_EOF || st == SHMREPL_E_AGAIN) break;
    if (st != SHMREPL_OK) {
      report("reading ring " + ring, st);
      code = 1;
      break;
    }
    const bool more = batch(records, n);
    shmrepl_reader_release(reader, n);
    if (!more) {
      code = 1;
      break;
    }
  }
  shmrepl_reader_close(reader);
  return code;
}

const char* kind_name(uint32_t k) {
  switch (k) {
    case SHMREPL_RECORD_STARTED: return "STARTED";
    case SHMREPL_RECORD_OUTPUT: return "OUTPUT";
    case SHMREPL_RECORD_RESULT: return "RESULT";
    case SHMREPL_RECORD_ERROR: return "ERROR";
    case SHMREPL_RECORD_INPUT_REQUEST: return "INPUT_REQUEST";
    case SHMREPL_RECORD_FINISHED: return "FINISHED";
    default: return "UNKNOWN";
  }
}

int exit_code_of(const shmrepl_record_t& f) {
  switch (f.finish_status) {
    case SHMREPL_FINISH_OK: return 0;
    case SHMREPL_FINISH_ERROR: return 1;
    // As a process exit status: sys.exit(256) exits 0, sys.exit(-1) 255.
    case SHMREPL_FINISH_EXITED: return static_cast<int>(static_cast<uint64_t>(f.exit_code) & 0xff);
    case SHMREPL_FINISH_CANCELLED: return 130;  // as a shell reports death by SIGINT
    // The worker died: os._exit(n) gives n; a signal 128 + N (cmd_run dies of it).
    case SHMREPL_FINISH_ABORTED:
      return f.reserved[0] != 0 ? 128 + static_cast<int>(f.reserved[0])
                                : static_cast<int>(static_cast<uint64_t>(f.exit_code) & 0xff);
    default: return 1;
  }
}

}  // namespace shmrepl::cli
