#include "options.hpp"

#include <charconv>

namespace shmrepl::server {

const char* const kUsage =
    "usage: shmrepl-engine [--socket PATH] [--ring-capacity BYTES]\n"
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

}  // namespace

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
      if (error->empty()) *error = "unknown argument: " + a;
      return false;
    }
  }
  return true;
}

}  // namespace shmrepl::server
