// `shmrepl tail`: the records of any ring, by name.
#include <cinttypes>
#include <cstdlib>
#include <cstdio>
#include <string>

#include "cli.hpp"

namespace shmrepl::cli {

namespace {

const char* const kTailUsage =
    "usage: shmrepl [--socket PATH] tail [-f] [--raw] RING_NAME | --execution ID\n"
    "\n"
    "Prints the output held in the ring RING_NAME (as an engine names it, e.g.\n"
    "shmrepl.1000.4242.7.c0ffee), or in the ring of execution ID: the one named\n"
    "shmrepl.<uid>.<pid>.<ID>.*, of a worker of the engine at the socket (of any\n"
    "process of ours in /dev/shm when no engine listens there). A live ring is a\n"
    "sealed memfd that the engine hands over (one round trip); a named ring in\n"
    "/dev/shm is opened by name.\n"
    "Without -f, prints what the ring holds now and stops; with -f, waits for what\n"
    "follows until the execution finishes. Exits with the code its program would once\n"
    "the FINISHED record is printed, else 0.\n"
    "\n"
    "options:\n"
    "  -f, --follow      wait for more records until the execution finishes\n"
    "  --execution ID    the ring of execution ID (as `shmrepl ls` shows it)\n"
    "  --raw             one line per record instead: seq, kind, stream, flags and the\n"
    "                    data (escaped), for debugging\n"
    "  -h, --help        print this help\n";

// The ring of execution `id` among our rings in /dev/shm (those of the socket's
// engine when one listens). Empty, with a message printed, if none or several.
std::string ring_of_execution(const Global& g, const std::string& id) {
  std::vector<int> pids;
  EngineView v;
  if (probe_engine(g, &v) && v.running) {
    pids.push_back(v.pid);
    for (const Proc& w : v.workers) pids.push_back(w.pid);
  }
  std::vector<std::string> found;
  for (const RingView& r : list_rings(pids)) {
    // shmrepl.<uid>.<pid>.<id>.<random> (list_rings names a reused ring after the
    // execution in its header)
    int pid = 0;
    const std::size_t a = parse_ring_name(r.name, &pid);
    const std::size_t b = a == 0 ? std::string::npos : r.name.find('.', a);
    if (b != std::string::npos && r.name.compare(a, b - a, id) == 0) found.push_back(r.name);
  }
  if (found.size() == 1) return found[0];
  if (found.empty())
    std::fprintf(stderr, "shmrepl tail: no ring of execution %s%s\n", id.c_str(),
                 v.running ? (" of the engine (pid " + std::to_string(v.pid) + ")").c_str() : "");
  else
    std::fprintf(stderr, "shmrepl tail: %zu rings of execution %s (%s, %s...): give the ring's name\n",
                 found.size(), id.c_str(), found[0].c_str(), found[1].c_str());
  return {};
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

int cmd_tail(const Global& g, const std::vector<std::string>& args) {
  bool raw = false, follow = false;
  std::string ring, execution;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kTailUsage, stdout);
      return 0;
    } else if (a == "--raw") {
      raw = true;
    } else if (a == "-f" || a == "--follow") {
      follow = true;
    } else if (a == "--execution" || a.rfind("--execution=", 0) == 0) {
      if (a == "--execution" && i + 1 >= args.size()) {
        std::fprintf(stderr, "shmrepl tail: --execution needs an id (see shmrepl tail --help)\n");
        return 2;
      }
      execution = a == "--execution" ? args[++i] : a.substr(12);
      if (execution.empty() || execution.find_first_not_of("0123456789") != std::string::npos) {
        std::fprintf(stderr, "shmrepl tail: --execution takes a number, not '%s'\n", execution.c_str());
        return 2;
      }
    } else if (a.size() > 1 && a[0] == '-') {
      std::fprintf(stderr, "shmrepl tail: unknown option %s (see shmrepl tail --help)\n", a.c_str());
      return 2;
    } else if (ring.empty()) {
      ring = a;
    } else {
      std::fprintf(stderr, "shmrepl tail: one RING_NAME only (see shmrepl tail --help)\n");
      return 2;
    }
  }
  if (!ring.empty() && !execution.empty()) {
    std::fprintf(stderr, "shmrepl tail: a RING_NAME or --execution, not both (see shmrepl tail --help)\n");
    return 2;
  }
  if (ring.empty() && execution.empty()) {
    std::fprintf(stderr, "shmrepl tail: RING_NAME or --execution ID is needed (see shmrepl tail --help)\n");
    return 2;
  }
  if (!execution.empty()) {
    ring = ring_of_execution(g, execution);
    if (ring.empty()) return 1;
  }
  int code = 0;  // the program's, from FINISHED (not with --raw)
  const int rc = read_ring(g, ring, nullptr, follow, [&](const shmrepl_record_t* records, size_t n) {
    if (raw) {
      for (size_t i = 0; i < n; ++i) print_raw(records[i]);
      return true;
    }
    if (!write_outputs(records, n)) return false;
    for (size_t i = 0; i < n; ++i)
      if (records[i].kind == SHMREPL_RECORD_FINISHED) code = exit_code_of(records[i]);
    return true;
  });
  return rc != 0 ? rc : code;
}

}  // namespace shmrepl::cli
