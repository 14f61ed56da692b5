#include "support.hpp"

#include <dirent.h>
#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>

extern char** environ;

namespace shmrepl::test {

const Rec* Collected::finished() const { return find(SHMREPL_RECORD_FINISHED); }

const Rec* Collected::find(uint32_t kind) const {
  for (const Rec& r : records)
    if (r.kind == kind) return &r;
  return nullptr;
}

namespace {

struct Checker {
  Collected& c;
  const ReadOptions& o;
  uint64_t expect_id;
  uint64_t next_seq = 0;
  bool in_split = false;
  uint32_t split_stream = 0;

  void add(const shmrepl_record_t& r) {
    ++c.total_records;
    if (r.seq != next_seq) c.seq_ok = false;
    next_seq = r.seq + 1;
    if (!o.any_execution_id && r.execution_id != expect_id) c.exec_id_ok = false;
    if (r.kind == SHMREPL_RECORD_OUTPUT) {
      ++c.output_records;
      if (in_split) {
        if (r.stream != split_stream || (r.flags & SHMREPL_FLAG_CONTINUED) == 0) c.split_ok = false;
      } else if ((r.flags & SHMREPL_FLAG_CONTINUED) != 0) {
        c.split_ok = false;
      }
      in_split = (r.flags & SHMREPL_FLAG_MORE) != 0;
      split_stream = r.stream;
      if (o.keep_streams) {
        const char* d = reinterpret_cast<const char*>(r.data);
        (r.stream == SHMREPL_STREAM_STDERR ? c.err : c.out).append(d, r.data_len);
        c.merged.append(d, r.data_len);
      }
      if (o.on_output) o.on_output(r);
      if (!o.keep_outputs) return;
    } else if (in_split) {
      c.split_ok = false;
      in_split = false;
    }
    Rec rec;
    rec.kind = r.kind;
    rec.stream = r.stream;
    rec.flags = r.flags;
    rec.finish_status = r.finish_status;
    rec.execution_id = r.execution_id;
    rec.seq = r.seq;
    rec.timestamp_ns = r.timestamp_ns;
    rec.exit_code = r.exit_code;
    if (r.data != nullptr) rec.data.assign(reinterpret_cast<const char*>(r.data), r.data_len);
    if (r.kind == SHMREPL_RECORD_FINISHED) ++c.finished_count;
    if (r.kind == SHMREPL_RECORD_ERROR) {
      shmrepl_bytes_t ename{}, evalue{};
      size_t n = 0;
      if (shmrepl_record_error(&r, &ename, &evalue, &n) == SHMREPL_OK) {
        rec.ename.assign(reinterpret_cast<const char*>(ename.ptr), ename.len);
        rec.evalue.assign(reinterpret_cast<const char*>(evalue.ptr), evalue.len);
        for (size_t i = 0; i < n; ++i) {
          shmrepl_bytes_t line{};
          shmrepl_record_traceback_line(&r, i, &line);
          rec.traceback.emplace_back(reinterpret_cast<const char*>(line.ptr), line.len);
        }
      }
    }
    c.records.push_back(std::move(rec));
  }
};

}  // namespace

Collected read_ring(const std::string& ring, const ReadOptions& o) {
  Collected c;
  shmrepl_reader_t* r = nullptr;
  shmrepl_status_t st = shmrepl_reader_open(ring.c_str(), nullptr, &r);
  if (st != SHMREPL_OK) {
    c.end_status = st;
    return c;
  }
  Checker check{c, o, o.expect_execution_id != 0 ? o.expect_execution_id : shmrepl_reader_execution_id(r)};
  shmrepl_record_t recs[256];
  for (;;) {
    size_t n = 0;
    st = shmrepl_reader_next_batch(r, recs, 256, &n, o.timeout_ns);
    if (st != SHMREPL_OK) break;
    for (size_t i = 0; i < n; ++i) check.add(recs[i]);
    shmrepl_reader_release(r, n);
  }
  c.end_status = st;
  shmrepl_reader_close(r);
  return c;
}

Collected run(engine::Engine& engine, uint64_t session, const std::string& code, const RunOptions& o) {
  engine::ExecuteRequest req;
  req.session_id = session;
  req.code = code;
  req.filename = o.filename;
  req.script = o.script;
  req.ring_capacity = o.ring_capacity;
  req.argv = o.argv;
  engine::Accepted a = engine.execute(req);
  ReadOptions ro = o.read;
  ro.expect_execution_id = a.execution_id;
  Collected c = read_ring(a.ring_name, ro);
  engine.release(a.execution_id);
  return c;
}

PyResult run_python(const std::vector<std::string>& args, bool merge, const std::vector<std::string>& env) {
  std::vector<std::string> envs;
  for (char** e = environ; *e != nullptr; ++e)
    if (std::strncmp(*e, "PYTHONUNBUFFERED=", 17) != 0) envs.emplace_back(*e);
  for (const auto& e : env) envs.push_back(e);
  std::vector<char*> envp, argv;
  for (auto& e : envs) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> a = args;
  a.insert(a.begin(), "/usr/bin/python3");
  for (auto& s : a) argv.push_back(s.data());
  argv.push_back(nullptr);

  int out[2], err[2];
  if (pipe(out) != 0 || pipe(err) != 0) throw std::runtime_error("pipe");
  pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(merge ? out[1] : err[1], 2);
    close(out[0]);
    close(err[0]);
    close(out[1]);
    close(err[1]);
    execve(argv[0], argv.data(), envp.data());
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  PyResult res;
  pollfd p[2] = {{out[0], POLLIN, 0}, {err[0], POLLIN, 0}};
  int open_fds = 2;
  char buf[65536];
  while (open_fds > 0) {
    if (poll(p, 2, -1) < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (p[i].fd < 0 || p[i].revents == 0) continue;
      ssize_t n = read(p[i].fd, buf, sizeof buf);
      if (n > 0) {
        (i == 0 ? res.out : res.err).append(buf, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(p[i].fd);
        p[i].fd = -1;
        --open_fds;
      }
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  res.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return res;
}

std::string workload(const std::string& name) { return std::string(SHMREPL_WORKLOADS_DIR) + "/" + name; }

double test_scale() {
  const char* s = std::getenv("SHMREPL_TEST_SCALE");
  double v = s != nullptr ? std::atof(s) : 1.0;
  return v > 0 ? v : 1.0;
}

long scaled(long n) { return std::max(1L, static_cast<long>(static_cast<double>(n) * test_scale())); }

std::string scaled_workload(const std::string& name) {
  if (test_scale() >= 1.0) return workload(name);
  std::string text = read_file(workload(name)), out;
  for (std::size_t i = 0; i < text.size();) {
    bool starts = std::isdigit(static_cast<unsigned char>(text[i])) &&
                  (i == 0 || !(std::isalnum(static_cast<unsigned char>(text[i - 1])) || text[i - 1] == '_'));
    if (!starts) {
      out += text[i++];
      continue;
    }
    std::size_t j = i;
    std::string digits;
    while (j < text.size() && (std::isdigit(static_cast<unsigned char>(text[j])) || text[j] == '_')) {
      if (text[j] != '_') digits += text[j];
      ++j;
    }
    long v = std::stol(digits);
    out += std::to_string(v >= 1000 ? scaled(v) : v);
    i = j;
  }
  std::string path = ::testing::TempDir() + name;
  std::ofstream(path, std::ios::binary) << out;
  return path;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

int count_rings() {
  std::string prefix = "shmrepl." + std::to_string(getuid()) + "." + std::to_string(getpid()) + ".";
  int n = 0;
  DIR* d = opendir("/dev/shm");
  if (d == nullptr) return -1;
  while (dirent* e = readdir(d))
    if (std::strncmp(e->d_name, prefix.c_str(), prefix.size()) == 0) ++n;
  closedir(d);
  return n;
}

static long status_kib(const char* key) {
  std::ifstream f("/proc/self/status");
  std::string line;
  size_t klen = std::strlen(key);
  while (std::getline(f, line))
    if (line.compare(0, klen, key) == 0) return std::stol(line.substr(klen));
  return -1;
}

long vm_hwm_kib() { return status_kib("VmHWM:"); }
long vm_rss_kib() { return status_kib("VmRSS:"); }

}  // namespace shmrepl::test
