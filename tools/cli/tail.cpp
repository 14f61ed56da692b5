// `shmrepl tail`: the records of any ring, by name.
#include <cinttypes>
#include <cstdio>
#include <string>

#include "cli.hpp"

namespace shmrepl::cli {

namespace {

const char* const kTailUsage =
    "usage: shmrepl tail [--raw] RING_NAME\n"
    "\n"
    "Prints the output held in the ring RING_NAME (as an engine names it, e.g.\n"
    "shmrepl.1000.4242.7) and what follows, until the execution finishes; exits with\n"
    "the code its program would. With --raw, prints one line per record instead:\n"
    "seq, kind, stream, flags and the data (escaped), for debugging.\n";

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

std::string escaped(const uint8_t* p, size_t n) {
  std::string s;
  s.reserve(n + 2);
  s.push_back('"');
  for (size_t i = 0; i < n; ++i) {
    const uint8_t c = p[i];
    if (c == '\\' || c == '"') {
      s.push_back('\\');
      s.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      s += "\\n";
    } else if (c >= 0x20 && c < 0x7f) {
      s.push_back(static_cast<char>(c));
    } else {
      char b[5];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      s += b;
    }
  }
  s.push_back('"');
  return s;
}

void print_raw(const shmrepl_record_t& r) {
  std::string line = "seq=" + std::to_string(r.seq) + " exec=" + std::to_string(r.execution_id) +
                     " t=" + std::to_string(r.timestamp_ns) + " " + kind_name(r.kind);
  if (r.kind == SHMREPL_RECORD_OUTPUT)
    line += r.stream == SHMREPL_STREAM_STDERR ? " stderr" : " stdout";
  if (r.flags & SHMREPL_FLAG_MORE) line += " MORE";
  if (r.flags & SHMREPL_FLAG_CONTINUED) line += " CONTINUED";
  if (r.kind == SHMREPL_RECORD_FINISHED) {
    line += " status=" + std::to_string(r.finish_status) + " exit_code=" + std::to_string(r.exit_code) +
            " duration_ns=" + std::to_string(r.duration_ns);
  } else if (r.kind == SHMREPL_RECORD_ERROR) {
    shmrepl_bytes_t ename{}, evalue{};
    size_t lines = 0;
    if (shmrepl_record_error(&r, &ename, &evalue, &lines) == SHMREPL_OK) {
      // Appended piece by piece: `" " + std::string&&` trips GCC 12's -Wrestrict false
      // positive at -O3 (GCC bug 105651).
      line += " ";
      line += escaped(ename.ptr, ename.len);
      line += " ";
      line += escaped(evalue.ptr, evalue.len);
      line += " traceback_lines=" + std::to_string(lines);
    }
  } else {
    line += " len=" + std::to_string(r.data_len) + " " + escaped(r.data, r.data_len);
  }
  line.push_back('\n');
  write_all(1, line.data(), line.size());
}

}  // namespace

int cmd_tail(const Global&, const std::vector<std::string>& args) {
  bool raw = false;
  std::string ring;
  for (const std::string& a : args) {
    if (a == "-h" || a == "--help") {
      std::fputs(kTailUsage, stdout);
      return 0;
    } else if (a == "--raw") {
      raw = true;
    } else if (a.size() > 1 && a[0] == '-') {
      std::fprintf(stderr, "shmrepl tail: unknown option %s\n%s", a.c_str(), kTailUsage);
      return 2;
    } else if (ring.empty()) {
      ring = a;
    } else {
      std::fprintf(stderr, "shmrepl tail: one RING_NAME only\n%s", kTailUsage);
      return 2;
    }
  }
  if (ring.empty()) {
    std::fprintf(stderr, "shmrepl tail: RING_NAME is needed\n%s", kTailUsage);
    return 2;
  }
  shmrepl_reader_t* reader = nullptr;
  shmrepl_status_t st = shmrepl_reader_open(ring.c_str(), nullptr, &reader);
  if (st != SHMREPL_OK) {
    report("cannot open ring " + ring, st);
    return 1;
  }
  constexpr size_t kBatch = 256;
  shmrepl_record_t records[kBatch];
  int code = 0;
  for (;;) {
    size_t n = 0;
    st = shmrepl_reader_next_batch(reader, records, kBatch, &n, -1);
    if (st == SHMREPL_E_EOF) break;
    if (st != SHMREPL_OK) {
      report("reading ring " + ring, st);
      code = 1;
      break;
    }
    if (raw) {
      for (size_t i = 0; i < n; ++i) print_raw(records[i]);
    } else if (!write_outputs(records, n)) {
      code = 1;
      break;
    }
    for (size_t i = 0; i < n; ++i)
      if (records[i].kind == SHMREPL_RECORD_FINISHED && !raw) code = exit_code_of(records[i]);
    shmrepl_reader_release(reader, n);
  }
  shmrepl_reader_close(reader);
  return code;
}

}  // namespace shmrepl::cli
