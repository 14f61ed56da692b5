#include "options.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>

namespace shmrepl::server {

const char* const kUsage =
    "usage: shmrepl-engine [--socket PATH] [--ring-capacity BYTES] [limits]\n"
    "\n"
    "Runs Python code for shmrepl clients. Serves clients of the same user over a Unix\n"
    "domain socket; every execution's output goes to its own shared-memory ring.\n"
    "Clients start it on demand, so running it by hand is rarely needed.\n"
    "\n"
    "options:\n"
    "  --socket PATH          listen at PATH (default: $SHMREPL_SOCKET, else\n"
    "                         $XDG_RUNTIME_DIR/shmrepl/default.sock, else\n"
    "                         /tmp/shmrepl-<uid>/default.sock)\n"
    "  --ring-capacity BYTES  data bytes of each execution's ring (default 1 MiB;\n"
    "                         rounded up to a power of two; suffixes K, M, G)\n"
    "\n"
    "limits (each also from the environment variable in brackets; a request over one\n"
    "is refused with SHMREPL_E_LIMIT):\n"
    "  --max-connections N    control connections in all (default 1024)\n"
    "                         [SHMREPL_MAX_CONNECTIONS]\n"
    "  --max-client-connections N\n"
    "                         ... of one client process (default 128)\n"
    "                         [SHMREPL_MAX_CLIENT_CONNECTIONS]\n"
    "  --max-sessions N       sessions (worker processes) in all (default 512)\n"
    "                         [SHMREPL_MAX_SESSIONS]\n"
    "  --max-client-sessions N\n"
    "                         ... opened by one client process (default 128)\n"
    "                         [SHMREPL_MAX_CLIENT_SESSIONS]\n"
    "  --max-ring-bytes SIZE  capacity of all rings in all (default 32G): background\n"
    "                         rings, rings of executions not yet released, the ring a\n"
    "                         session keeps for its next execution; suffixes K, M, G\n"
    "                         [SHMREPL_MAX_RING_BYTES]\n"
    "  --max-client-ring-bytes SIZE\n"
    "                         ... of the sessions of one client process (default 8G)\n"
    "                         [SHMREPL_MAX_CLIENT_RING_BYTES]\n"
    "  --hello-timeout SECONDS\n"
    "                         close a connection that has not said Hello this long\n"
    "                         after connecting, or whose message stays unfinished this\n"
    "                         long (default 5) [SHMREPL_HELLO_TIMEOUT]\n"
    "\n"
    "  --version              print the version and exit\n"
    "  -h, --help             print this help and exit\n"
    "\n"
    "Stops on SIGTERM, SIGINT or a client's Shutdown request (`shmrepl shutdown`):\n"
    "cancels every execution and removes its rings and its socket. Logs to stderr.\n";

namespace {

bool parse_size(const std::string& s, uint64_t* out) {
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p == s.data()) return false;
  std::string suffix(p, s.data() + s.size());
  uint64_t mul = 1;
  if (suffix == "K" || suffix == "k") mul = 1ull << 10;
  else if (suffix == "M" || suffix == "m") mul = 1ull << 20;
  else if (suffix == "G" || suffix == "g") mul = 1ull << 30;
  else if (!suffix.empty()) return false;
  if (v > UINT64_MAX / mul) return false;
  *out = v * mul;
  return true;
}

bool parse_count(const std::string& s, uint32_t* out) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v == 0) return false;
  *out = v;
  return true;
}

bool parse_seconds(const std::string& s, int64_t* ms) {
  if (s.empty()) return false;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size() || !std::isfinite(v) || v <= 0 || v > 86400) return false;
  *ms = std::max<int64_t>(1, static_cast<int64_t>(v * 1000));
  return true;
}

// A limit's flag or environment variable: "--max-sessions" / "SHMREPL_MAX_SESSIONS".
bool set_limit(const std::string& name, const std::string& v, Limits* l, std::string* error) {
  bool ok = true;
  if (name == "--max-connections") ok = parse_count(v, &l->max_connections);
  else if (name == "--max-client-connections") ok = parse_count(v, &l->max_client_connections);
  else if (name == "--max-sessions") ok = parse_count(v, &l->max_sessions);
  else if (name == "--max-client-sessions") ok = parse_count(v, &l->max_client_sessions);
  else if (name == "--max-ring-bytes") ok = parse_size(v, &l->max_ring_bytes) && l->max_ring_bytes != 0;
  else if (name == "--max-client-ring-bytes")
    ok = parse_size(v, &l->max_client_ring_bytes) && l->max_client_ring_bytes != 0;
  else if (name == "--hello-timeout") ok = parse_seconds(v, &l->hello_timeout_ms);
  if (!ok)
    *error = name + (name == "--hello-timeout"    ? ": not a number of seconds > 0: "
                     : name.ends_with("-bytes") ? ": not a size > 0 (bytes, or with K, M, G): "
                                                : ": not a count >= 1: ") +
             v;
  return ok;
}

const char* const kLimitFlags[][2] = {
    {"--max-connections", "SHMREPL_MAX_CONNECTIONS"},
    {"--max-client-connections", "SHMREPL_MAX_CLIENT_CONNECTIONS"},
    {"--max-sessions", "SHMREPL_MAX_SESSIONS"},
    {"--max-client-sessions", "SHMREPL_MAX_CLIENT_SESSIONS"},
    {"--max-ring-bytes", "SHMREPL_MAX_RING_BYTES"},
    {"--max-client-ring-bytes", "SHMREPL_MAX_CLIENT_RING_BYTES"},
    {"--hello-timeout", "SHMREPL_HELLO_TIMEOUT"},
};

}  // namespace

bool parse_limits_env(Options* out, std::string* error) {
  for (const auto& [flag, env] : kLimitFlags) {
    const char* v = std::getenv(env);
    if (v == nullptr || v[0] == '\0') continue;
    if (!set_limit(flag, v, &out->limits, error)) {
      *error = std::string(env) + " (" + *error + ")";
      return false;
    }
  }
  return true;
}

bool parse_options(const std::vector<std::string>& args, Options* out, std::string* error) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    auto value = [&](const std::string& name, std::string* v) {
      if (a.size() > name.size() && a.compare(0, name.size() + 1, name + "=") == 0) {
        *v = a.substr(name.size() + 1);
        return true;
      }
      if (a != name) return false;
      if (i + 1 >= args.size()) {
        *error = name + " needs a value";
        return false;
      }
      *v = args[++i];
      return true;
    };
    std::string v;
    if (a == "-h" || a == "--help") {
      out->help = true;
    } else if (a == "--version") {
      out->version = true;
    } else if (value("--socket", &v)) {
      if (v.empty()) {
        *error = "--socket needs a path";
        return false;
      }
      out->socket = v;
    } else if (value("--ring-capacity", &v)) {
      if (!parse_size(v, &out->ring_capacity) || out->ring_capacity == 0) {
        *error = "--ring-capacity: not a size: " + v;
        return false;
      }
    } else {
      bool limit = false;
      for (const auto& [flag, env] : kLimitFlags) {
        (void)env;
        if (!value(flag, &v)) {
          if (!error->empty()) return false;
          continue;
        }
        if (!set_limit(flag, v, &out->limits, error)) return false;
        limit = true;
        break;
      }
      if (limit) continue;
      if (error->empty()) *error = "unknown argument: " + a;
      return false;
    }
  }
  return true;
}

}  // namespace shmrepl::server
