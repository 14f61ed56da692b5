// `shmrepl dump`: every record of a ring, decoded, as text or as JSON Lines.
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>

#include "cli.hpp"

namespace shmrepl::cli {

namespace {

const char* const kDumpUsage =
    "usage: shmrepl dump [-f] [--json] RING_NAME\n"
    "\n"
    "Prints every record held in the ring RING_NAME (as an engine names it; a live\n"
    "ring is handed over by the engine at the socket), oldest\n"
    "first, one per line: seq, kind, execution id, time, stream, flags, the data\n"
    "(escaped), an ERROR's type, message and traceback lines, a FINISHED record's\n"
    "status, exit code and duration. Stops at the end of the ring, or, while its\n"
    "execution still runs, when nothing more is there; -f waits for the FINISHED record.\n"
    "\n"
    "options:\n"
    "  -f, --follow  wait for more records until the execution finishes\n"
    "  --json        one JSON object per line (JSON Lines) instead of text\n"
    "  -h, --help    print this help\n"
    "\n"
    "JSON fields: seq, kind (STARTED, OUTPUT, RESULT, ERROR, INPUT_REQUEST, FINISHED,\n"
    "UNKNOWN), execution_id, timestamp_ns, time (UTC, ISO 8601), stream (\"stdout\",\n"
    "\"stderr\" or null), flags (a list of \"MORE\", \"CONTINUED\"), data_len, data;\n"
    "ERROR: ename, evalue, traceback (a list of lines); FINISHED: finish_status,\n"
    "exit_code, duration_ns; UNKNOWN: raw_len. Text is UTF-8: where bytes are not\n"
    "valid UTF-8, the string has U+FFFD in their place and a field <name>_base64 next\n"
    "to it holds the exact bytes (base64, RFC 4648).\n"
    "\n"
    "Exit status: 0, or 1 when the ring cannot be read or its producer died before\n"
    "finishing it (after every record it wrote is printed).\n";

const char* finish_name(uint32_t s) {
  switch (s) {
    case SHMREPL_FINISH_OK: return "OK";
    case SHMREPL_FINISH_ERROR: return "ERROR";
    case SHMREPL_FINISH_CANCELLED: return "CANCELLED";
    case SHMREPL_FINISH_EXITED: return "EXITED";
    case SHMREPL_FINISH_ABORTED: return "ABORTED";
    default: return "UNKNOWN";
  }
}

// Length of the valid UTF-8 sequence at p[0..n) (shortest form, no surrogates, at
// most U+10FFFF), or 0 if p[0] does not start one.
size_t utf8_len(const uint8_t* p, size_t n) {
  const uint8_t c = p[0];
  size_t len;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
    cp = c & 0x1fu;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    cp = c & 0x0fu;
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    cp = c & 0x07u;
  } else {
    return 0;
  }
  if (n < len) return 0;
  for (size_t i = 1; i < len; ++i) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3fu);
  }
  if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return len;
}

// Text form: "...", with \\ \" \n \r \t, other control bytes and bytes that are not
// UTF-8 as \xNN; valid UTF-8 characters as they are.
void put_text(std::string& s, const uint8_t* p, size_t n) {
  s.push_back('"');
  for (size_t i = 0; i < n;) {
    const uint8_t c = p[i];
    const size_t u = utf8_len(p + i, n - i);
    if (c == '\\' || c == '"') {
      s.push_back('\\');
      s.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      s += "\\n";
    } else if (c == '\r') {
      s += "\\r";
    } else if (c == '\t') {
      s += "\\t";
    } else if (u == 0 || c < 0x20 || c == 0x7f) {
      char b[5];
      std::snprintf(b, sizeof b, "\\x%02x", c);
      s += b;
    } else {
      s.append(reinterpret_cast<const char*>(p + i), u);
      i += u;
      continue;
    }
    ++i;
  }
  s.push_back('"');
}

void put_base64(std::string& s, const uint8_t* p, size_t n) {
  static const char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  for (size_t i = 0; i < n; i += 3) {
    const uint32_t v = (uint32_t{p[i]} << 16) | (i + 1 < n ? uint32_t{p[i + 1]} << 8 : 0u) |
                       (i + 2 < n ? uint32_t{p[i + 2]} : 0u);
    s.push_back(kAlphabet[(v >> 18) & 63]);
    s.push_back(kAlphabet[(v >> 12) & 63]);
    s.push_back(i + 1 < n ? kAlphabet[(v >> 6) & 63] : '=');
    s.push_back(i + 2 < n ? kAlphabet[v & 63] : '=');
  }
}

// A JSON string of the bytes; false if some were not UTF-8 (they became U+FFFD).
bool put_json_string(std::string& s, const uint8_t* p, size_t n) {
  bool exact = true;
  s.push_back('"');
  for (size_t i = 0; i < n;) {
    const uint8_t c = p[i];
    const size_t u = utf8_len(p + i, n - i);
    if (u == 0) {
      s += "\\ufffd";
      exact = false;
      ++i;
      continue;
    }
    if (c == '"' || c == '\\') {
      s.push_back('\\');
      s.push_back(static_cast<char>(c));
    } else if (c == '\n') {
      s += "\\n";
    } else if (c == '\r') {
      s += "\\r";
    } else if (c == '\t') {
      s += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char b[7];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      s += b;
    } else {
      s.append(reinterpret_cast<const char*>(p + i), u);
    }
    i += u;
  }
  s.push_back('"');
  return exact;
}

// ,"name":"..." and, if the bytes are not UTF-8, ,"name_base64":"...".
void put_json_field(std::string& s, const char* name, const uint8_t* p, size_t n) {
  s += ",\"";
  s += name;
  s += "\":";
  if (!put_json_string(s, p, n)) {
    s += ",\"";
    s += name;
    s += "_base64\":\"";
    put_base64(s, p, n);
    s.push_back('"');
  }
}

// Appends `label` and the decimal value (`"lit" + std::to_string()` temporaries trip
// GCC 12's -Wrestrict false positive at -O3).
template <typename T>
void put_num(std::string& s, const char* label, T v) {
  s += label;
  s += std::to_string(v);
}

std::string utc_time(uint64_t ns) {
  const auto secs = static_cast<time_t>(ns / 1000000000u);
  tm t{};
  gmtime_r(&secs, &t);
  char b[64];
  std::snprintf(b, sizeof b, "%04d-%02d-%02dT%02d:%02d:%02d.%09" PRIu64 "Z", t.tm_year + 1900,
                t.tm_mon + 1, t.tm_mday, t.tm_hour, t.tm_min, t.tm_sec, ns % 1000000000u);
  return b;
}

const char* stream_name(uint32_t s) {
  return s == SHMREPL_STREAM_STDOUT ? "stdout" : s == SHMREPL_STREAM_STDERR ? "stderr" : nullptr;
}

void put_text_record(std::string& s, const shmrepl_record_t& r) {
  put_num(s, "#", r.seq);
  s += " ";
  s += kind_name(r.kind);
  put_num(s, " exec=", r.execution_id);
  s += " t=";
  s += utc_time(r.timestamp_ns);
  if (const char* st = stream_name(r.stream)) {
    s += " ";
    s += st;
  }
  if (r.flags & SHMREPL_FLAG_MORE) s += " MORE";
  if (r.flags & SHMREPL_FLAG_CONTINUED) s += " CONTINUED";
  if (r.kind == SHMREPL_RECORD_FINISHED) {
    s += " status=";
    s += finish_name(r.finish_status);
    put_num(s, " exit_code=", r.exit_code);
    put_num(s, " duration_ns=", r.duration_ns);
  } else if (r.kind == SHMREPL_RECORD_UNKNOWN || r.kind > SHMREPL_RECORD_FINISHED) {
    put_num(s, " raw_len=", r.raw_len);
  } else if (r.kind != SHMREPL_RECORD_ERROR) {
    put_num(s, " len=", r.data_len);
    s += " ";
    put_text(s, r.data, r.data_len);
  }
  s.push_back('\n');
  if (r.kind != SHMREPL_RECORD_ERROR) return;
  shmrepl_bytes_t ename{}, evalue{};
  size_t lines = 0;
  if (shmrepl_record_error(&r, &ename, &evalue, &lines) != SHMREPL_OK) return;
  s += "  ename=";
  put_text(s, ename.ptr, ename.len);
  s += "\n  evalue=";
  put_text(s, evalue.ptr, evalue.len);
  s.push_back('\n');
  for (size_t i = 0; i < lines; ++i) {
    shmrepl_bytes_t line{};
    if (shmrepl_record_traceback_line(&r, i, &line) != SHMREPL_OK) break;
    put_num(s, "  traceback[", i);
    s += "]=";
    put_text(s, line.ptr, line.len);
    s.push_back('\n');
  }
}

void put_json_record(std::string& s, const shmrepl_record_t& r) {
  put_num(s, "{\"seq\":", r.seq);
  s += ",\"kind\":\"";
  s += kind_name(r.kind);
  put_num(s, "\",\"execution_id\":", r.execution_id);
  put_num(s, ",\"timestamp_ns\":", r.timestamp_ns);
  s += ",\"time\":\"";
  s += utc_time(r.timestamp_ns);
  s += "\",\"stream\":";
  const char* st = stream_name(r.stream);
  if (st != nullptr) {
    s.push_back('"');
    s += st;
    s.push_back('"');
  } else {
    s += "null";
  }
  s += ",\"flags\":[";
  if (r.flags & SHMREPL_FLAG_MORE) s += "\"MORE\"";
  if (r.flags & SHMREPL_FLAG_CONTINUED) s += (r.flags & SHMREPL_FLAG_MORE) ? ",\"CONTINUED\"" : "\"CONTINUED\"";
  put_num(s, "],\"data_len\":", r.data_len);
  put_json_field(s, "data", r.data, r.data_len);
  if (r.kind == SHMREPL_RECORD_ERROR) {
    shmrepl_bytes_t ename{}, evalue{};
    size_t lines = 0;
    if (shmrepl_record_error(&r, &ename, &evalue, &lines) == SHMREPL_OK) {
      put_json_field(s, "ename", ename.ptr, ename.len);
      put_json_field(s, "evalue", evalue.ptr, evalue.len);
      s += ",\"traceback\":[";
      std::string exact;  // the lines as base64, only if one of them is not UTF-8
      bool all_exact = true;
      for (size_t i = 0; i < lines; ++i) {
        shmrepl_bytes_t line{};
        if (shmrepl_record_traceback_line(&r, i, &line) != SHMREPL_OK) break;
        if (i > 0) {
          s.push_back(',');
          exact.push_back(',');
        }
        all_exact &= put_json_string(s, line.ptr, line.len);
        exact.push_back('"');
        put_base64(exact, line.ptr, line.len);
        exact.push_back('"');
      }
      s.push_back(']');
      if (!all_exact) {
        s += ",\"traceback_base64\":[";
        s += exact;
        s.push_back(']');
      }
    }
  } else if (r.kind == SHMREPL_RECORD_FINISHED) {
    s += ",\"finish_status\":\"";
    s += finish_name(r.finish_status);
    put_num(s, "\",\"exit_code\":", r.exit_code);
    put_num(s, ",\"duration_ns\":", r.duration_ns);
  } else if (r.kind == SHMREPL_RECORD_UNKNOWN || r.kind > SHMREPL_RECORD_FINISHED) {
    put_num(s, ",\"raw_len\":", r.raw_len);
  }
  s += "}\n";
}

}  // namespace

int cmd_dump(const Global& g, const std::vector<std::string>& args) {
  bool json = false, follow = false;
  std::string ring;
  for (const std::string& a : args) {
    if (a == "-h" || a == "--help") {
      std::fputs(kDumpUsage, stdout);
      return 0;
    } else if (a == "--json") {
      json = true;
    } else if (a == "-f" || a == "--follow") {
      follow = true;
    } else if (a.size() > 1 && a[0] == '-') {
      std::fprintf(stderr, "shmrepl dump: unknown option %s (see shmrepl dump --help)\n", a.c_str());
      return 2;
    } else if (ring.empty()) {
      ring = a;
    } else {
      std::fprintf(stderr, "shmrepl dump: one RING_NAME only (see shmrepl dump --help)\n");
      return 2;
    }
  }
  if (ring.empty()) {
    std::fprintf(stderr, "shmrepl dump: RING_NAME is needed (see shmrepl dump --help)\n");
    return 2;
  }
  shmrepl_reader_options_t ro{};
  ro.struct_size = sizeof ro;
  ro.start = SHMREPL_START_OLDEST;
  std::string out;
  return read_ring(g, ring, &ro, follow, [&](const shmrepl_record_t* records, size_t n) {
    out.clear();
    for (size_t i = 0; i < n; ++i) {
      if (json)
        put_json_record(out, records[i]);
      else
        put_text_record(out, records[i]);
    }
    if (write_all(1, out.data(), out.size())) return true;
    std::perror("shmrepl dump: writing the output");
    return false;
  });
}

}  // namespace shmrepl::cli
