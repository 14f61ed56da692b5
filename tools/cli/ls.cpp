// `shmrepl ls`: the engine at the socket, its workers and their rings (sealed memfds
// found through /proc/<pid>/fd of the workers and the engine, named ones in
// /dev/shm). The C ABI has
// no call for a ring's header (capacity, positions, readers), so the header pages are
// mapped read-only here, as shm/include/shmrepl/shm/layout.hpp lays them out; this
// attaches no reader and changes nothing in the ring.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <type_traits>

#include "cli.hpp"
#include "shmrepl/shm/layout.hpp"

namespace shmrepl::cli {

namespace {

const char* const kLsUsage =
    "usage: shmrepl [--socket PATH] ls [--json]\n"
    "\n"
    "Shows the engine at the socket (pid; its version is not given by the C ABI, the\n"
    "library's is shown), its worker processes (one per open session: pid, state as in\n"
    "/proc, RSS) and every ring of those workers (held by them or by the engine; named\n"
    "rings in /dev/shm too): name, execution id,\n"
    "capacity, fill (bytes written and not yet released by the slowest reader; with no\n"
    "reader, the bytes the producer keeps), bytes written, the readers and their\n"
    "positions, whether the producer is alive and whether the ring is finished.\n"
    "Starts no engine.\n"
    "\n"
    "options:\n"
    "  --json      one JSON object: {\"socket\", \"engine\", \"workers\", \"rings\"}\n"
    "  -h, --help  print this help\n"
    "\n"
    "JSON: engine {running, pid, version (null: not given by the C ABI),\n"
    "library_version, other_abi, executable, zygotes [{pid, state, rss_kb}]};\n"
    "workers [{pid, state, rss_kb, executing, rings [names]}]; rings [{name, worker_pid,\n"
    "background, execution_id, capacity, fill, bytes_written, readers [{pid,\n"
    "position}], reader_count, producer_pid, producer_alive, finished}] (a ring whose\n"
    "header cannot be read has {name, worker_pid, error} only).\n";

// The worker runs or queues an execution: one of its execution rings is not finished.
bool executing(int pid, const std::vector<RingView>& rings) {
  return std::any_of(rings.begin(), rings.end(), [&](const RingView& r) {
    return r.worker_pid == pid && !r.background && r.readable && !r.finished;
  });
}

// Process `pid` exists and started at `start_time` (not a reused pid), not a zombie.
bool alive(int pid, uint64_t start_time) {
  if (pid <= 0) return false;
  Proc p;
  if (!read_proc(pid, &p)) return kill(pid, 0) == 0 || errno == EPERM;
  return p.state != 'Z' && (start_time == 0 || p.start_time == start_time);
}

// `via_proc`: a descriptor of a process (/proc/<pid>/fd/<n>), a link to follow.
void read_header(const std::string& path, RingView* r, bool via_proc) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | (via_proc ? 0 : O_NOFOLLOW));
  if (fd < 0) {
    r->problem = std::string("cannot open: ") + std::strerror(errno);
    return;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(shm::kDataOffset)) {
    ::close(fd);
    r->problem = "being created (smaller than its header)";
    return;
  }
  void* m = mmap(nullptr, shm::kDataOffset, PROT_READ, MAP_SHARED, fd, 0);
  ::close(fd);
  if (m == MAP_FAILED) {
    r->problem = std::string("cannot map: ") + std::strerror(errno);
    return;
  }
  const auto* base = static_cast<const uint8_t*>(m);
  const auto* h = reinterpret_cast<const shm::RingHeader*>(base);
  const auto* p = reinterpret_cast<const shm::ProducerBlock*>(base + shm::kProducerOffset);
  const auto* slots = reinterpret_cast<const shm::ReaderSlot*>(base + shm::kSlotsOffset);
  if (h->magic != shm::kMagic) {
    r->problem = "not a ring (bad magic)";
  } else if (h->layout_version != shm::kLayoutVersion) {
    r->problem = "ring layout version " + std::to_string(h->layout_version) + ", this build reads " +
                 std::to_string(shm::kLayoutVersion);
  } else {
    r->readable = true;
    r->execution_id = h->execution_id;
    r->capacity = h->capacity;
    r->producer_pid = static_cast<int>(h->producer_pid);
    r->producer_alive = alive(r->producer_pid, h->producer_start_time);
    r->finished = h->state.load(std::memory_order_acquire) == static_cast<uint32_t>(shm::RingState::kFinished);
    r->write_pos = p->write_pos.load(std::memory_order_acquire);
    r->tail = p->tail.load(std::memory_order_acquire);
    const std::size_t n = std::min<std::size_t>(h->reader_slots, shm::kReaderSlots);
    uint64_t slowest = r->write_pos;
    for (std::size_t i = 0; i < n; ++i) {
      const uint32_t owner = static_cast<uint32_t>(slots[i].owner.load(std::memory_order_acquire));  // low half: pid
      if (owner == 0 || slots[i].active.load(std::memory_order_acquire) == 0) continue;
      const uint64_t pos = slots[i].read_pos.load(std::memory_order_acquire);
      r->readers.emplace_back(static_cast<int>(owner), pos);
      slowest = std::min(slowest, pos);
    }
    const uint64_t from = r->readers.empty() ? r->tail : slowest;
    r->fill = r->write_pos >= from ? r->write_pos - from : 0;
  }
  munmap(m, shm::kDataOffset);
}

void put_json_string(std::string& s, const std::string& v) {
  s.push_back('"');
  for (const char ch : v) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      s.push_back('\\');
      s.push_back(ch);
    } else if (c < 0x20 || c == 0x7f) {
      char b[8];
      std::snprintf(b, sizeof b, "\\u%04x", c);
      s += b;
    } else {
      s.push_back(ch);
    }
  }
  s.push_back('"');
}

template <typename T>
void put_field(std::string& s, const char* name, T v) {
  s += "\"";
  s += name;
  s += "\":";
  if constexpr (std::is_same_v<T, bool>)
    s += v ? "true" : "false";
  else
    s += std::to_string(v);
}

void put_proc(std::string& s, const Proc& p) {
  put_field(s, "pid", p.pid);
  s += ",\"state\":\"";
  s.push_back(p.state);
  s += "\",";
  put_field(s, "rss_kb", p.rss_kb);
}

std::string json_of(const std::string& socket, const EngineView& v, const std::vector<RingView>& rings) {
  std::string s = "{\"socket\":";
  put_json_string(s, socket);
  s += ",\"engine\":{";
  put_field(s, "running", v.running);
  if (v.running) {
    s += ",";
    put_field(s, "pid", v.pid);
    s += ",\"version\":null,\"version_note\":";
    put_json_string(s, version_note());
    s += ",\"library_version\":";
    put_json_string(s, shmrepl_version());
    s += ",";
    put_field(s, "other_abi", v.other_abi);
    s += ",\"executable\":";
    put_json_string(s, v.exe);
    s += ",\"zygotes\":[";
    for (std::size_t i = 0; i < v.zygotes.size(); ++i) {
      s += i ? ",{" : "{";
      put_proc(s, v.zygotes[i]);
      s += "}";
    }
    s += "]";
  }
  s += "},\"workers\":[";
  for (std::size_t i = 0; i < v.workers.size(); ++i) {
    s += i ? ",{" : "{";
    put_proc(s, v.workers[i]);
    s += ",";
    put_field(s, "executing", executing(v.workers[i].pid, rings));
    s += ",\"rings\":[";
    bool first = true;
    for (const RingView& r : rings) {
      if (r.worker_pid != v.workers[i].pid) continue;
      if (!first) s.push_back(',');
      first = false;
      put_json_string(s, r.name);
    }
    s += "]}";
  }
  s += "],\"rings\":[";
  for (std::size_t i = 0; i < rings.size(); ++i) {
    const RingView& r = rings[i];
    s += i ? ",{\"name\":" : "{\"name\":";
    put_json_string(s, r.name);
    s += ",";
    put_field(s, "worker_pid", r.worker_pid);
    s += ",";
    put_field(s, "background", r.background);
    if (!r.readable) {
      s += ",\"error\":";
      put_json_string(s, r.problem);
      s += "}";
      continue;
    }
    s += ",";
    put_field(s, "execution_id", r.execution_id);
    s += ",";
    put_field(s, "capacity", r.capacity);
    s += ",";
    put_field(s, "fill", r.fill);
    s += ",";
    put_field(s, "bytes_written", r.write_pos);
    s += ",\"readers\":[";
    for (std::size_t j = 0; j < r.readers.size(); ++j) {
      s += j ? ",{" : "{";
      put_field(s, "pid", r.readers[j].first);
      s += ",";
      put_field(s, "position", r.readers[j].second);
      s += "}";
    }
    s += "],";
    put_field(s, "reader_count", r.readers.size());
    s += ",";
    put_field(s, "producer_pid", r.producer_pid);
    s += ",";
    put_field(s, "producer_alive", r.producer_alive);
    s += ",";
    put_field(s, "finished", r.finished);
    s += "}";
  }
  s += "]}\n";
  return s;
}

std::string text_of(const std::string& socket, const EngineView& v, const std::vector<RingView>& rings) {
  std::string s;
  char b[512];
  if (!v.running) return "no engine is running at " + socket + "\n";
  std::snprintf(b, sizeof b, "engine pid %d at %s\n", v.pid, socket.c_str());
  s += b;
  s += v.other_abi ? std::string("version: another ABI version (`shmrepl engine restart` replaces it)\n")
                   : "version: " + version_note() + "\n";
  for (const Proc& z : v.zygotes) {
    std::snprintf(b, sizeof b, "zygote pid %d, state %c, RSS %s\n", z.pid, z.state, rss_text(z.rss_kb).c_str());
    s += b;
  }
  std::snprintf(b, sizeof b, "workers: %zu\n", v.workers.size());
  s += b;
  if (!v.workers.empty()) {
    std::snprintf(b, sizeof b, "  %8s %5s %10s %5s  %s\n", "PID", "STATE", "RSS", "RINGS", "EXECUTION");
    s += b;
  }
  for (const Proc& w : v.workers) {
    const auto n = std::count_if(rings.begin(), rings.end(), [&](const RingView& r) { return r.worker_pid == w.pid; });
    std::snprintf(b, sizeof b, "  %8d %5c %10s %5td  %s\n", w.pid, w.state, rss_text(w.rss_kb).c_str(), n,
                  executing(w.pid, rings) ? "running" : "idle");
    s += b;
  }
  std::snprintf(b, sizeof b, "rings: %zu\n", rings.size());
  s += b;
  for (const RingView& r : rings) {
    s += "  " + r.name + "\n";
    if (!r.readable) {
      s += "    " + r.problem + "\n";
      continue;
    }
    std::snprintf(b, sizeof b,
                  "    %s %llu, worker %d, capacity %llu, fill %llu, written %llu bytes, producer %s, %s\n",
                  r.background ? "background ring, execution" : "execution",
                  static_cast<unsigned long long>(r.execution_id), r.worker_pid,
                  static_cast<unsigned long long>(r.capacity), static_cast<unsigned long long>(r.fill),
                  static_cast<unsigned long long>(r.write_pos), r.producer_alive ? "alive" : "gone",
                  r.finished ? "finished" : "open");
    s += b;
    std::snprintf(b, sizeof b, "    readers: %zu", r.readers.size());
    s += b;
    for (const auto& [pid, pos] : r.readers) {
      std::snprintf(b, sizeof b, " (pid %d at %llu)", pid, static_cast<unsigned long long>(pos));
      s += b;
    }
    s += "\n";
  }
  return s;
}

}  // namespace

bool held_memfds(int pid, std::vector<std::pair<std::string, std::string>>* out) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return false;
  while (dirent* e = readdir(d)) {
    char link[512];
    const std::string path = dir + "/" + e->d_name;
    const ssize_t n = ::readlink(path.c_str(), link, sizeof link - 1);
    if (n <= 0) continue;
    std::string target(link, static_cast<std::size_t>(n));
    const std::string memfd = "/memfd:", deleted = " (deleted)";
    if (target.compare(0, memfd.size(), memfd) != 0) continue;
    target.erase(0, memfd.size());
    if (target.size() > deleted.size() && target.compare(target.size() - deleted.size(), deleted.size(), deleted) == 0)
      target.erase(target.size() - deleted.size());
    out->emplace_back(std::move(target), path);
  }
  closedir(d);
  return true;
}

std::size_t parse_ring_name(const std::string& name, int* worker_pid) {
  // shmrepl.<uid>.<pid>.<execution id | bg<session id>>.<random>
  const std::string prefix = "shmrepl." + std::to_string(geteuid()) + ".";
  if (name.compare(0, prefix.size(), prefix) != 0) return 0;
  const std::size_t dot = name.find('.', prefix.size());
  if (dot == std::string::npos || dot == prefix.size() || dot - prefix.size() > 9) return 0;
  const std::string pid_text = name.substr(prefix.size(), dot - prefix.size());
  if (pid_text.find_first_not_of("0123456789") != std::string::npos) return 0;
  *worker_pid = std::stoi(pid_text);
  return dot + 1;
}

std::vector<RingView> list_rings(const std::vector<int>& pids) {
  std::vector<RingView> out;
  // name -> where to open it: a named ring in /dev/shm, or a sealed memfd ring held
  // by one of `pids` (a worker, or the engine that keeps every live ring), opened
  // again through /proc/<pid>/fd.
  std::map<std::string, std::pair<std::string, bool>> found;
  if (DIR* d = opendir("/dev/shm")) {
    while (dirent* e = readdir(d)) found.emplace(e->d_name, std::pair{"/dev/shm/" + std::string(e->d_name), false});
    closedir(d);
  }
  for (int pid : pids) {
    std::vector<std::pair<std::string, std::string>> held;
    held_memfds(pid, &held);
    for (auto& [name, path] : held) found.emplace(std::move(name), std::pair{std::move(path), true});
  }
  for (const auto& [name, where] : found) {
    RingView r;
    const std::size_t dot = parse_ring_name(name, &r.worker_pid);
    if (dot == 0) continue;
    r.name = name;
    if (!pids.empty() && std::find(pids.begin(), pids.end(), r.worker_pid) == pids.end()) continue;
    r.background = name.compare(dot, 2, "bg") == 0;
    read_header(where.first, &r, where.second);
    // A ring a session reset for its next execution is named after that one (same
    // random part); its label keeps the first execution's id.
    const std::size_t id_end = name.find('.', dot);
    if (r.readable && !r.background && id_end != std::string::npos &&
        name.compare(dot, id_end - dot, std::to_string(r.execution_id)) != 0)
      r.name = name.substr(0, dot) + std::to_string(r.execution_id) + name.substr(id_end);
    out.push_back(std::move(r));
  }
  return out;
}

int cmd_ls(const Global& g, const std::vector<std::string>& args) {
  bool json = false;
  for (const std::string& a : args) {
    if (a == "-h" || a == "--help") {
      std::fputs(kLsUsage, stdout);
      return 0;
    } else if (a == "--json") {
      json = true;
    } else {
      std::fprintf(stderr, "shmrepl ls: unexpected argument %s (see shmrepl ls --help)\n", a.c_str());
      return 2;
    }
  }
  EngineView v;
  if (!probe_engine(g, &v)) return 1;
  std::vector<RingView> rings;
  if (v.running) {
    // Rings carry the producer's pid: the workers', or the engine's own when it runs
    // sessions in-process.
    std::vector<int> pids = {v.pid};
    for (const Proc& w : v.workers) pids.push_back(w.pid);
    rings = list_rings(pids);
  }
  const std::string socket = socket_path_of(g);
  const std::string s = json ? json_of(socket, v, rings) : text_of(socket, v, rings);
  if (!write_all(1, s.data(), s.size())) {
    std::perror("shmrepl ls: writing the output");
    return 1;
  }
  return 0;
}

}  // namespace shmrepl::cli
