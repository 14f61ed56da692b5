// Faults and hostile inputs against the real engine: a killed engine with a writer
// blocked on a full ring, killed readers and clients, user code that exits, crashes or
// exhausts resources, leaks over many executions and sessions, permissions, hostile
// names and sizes. Each test runs its own engine on a private socket.
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <pwd.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "engine_main.hpp"
#include "harness.hpp"
#include "shmrepl/shm/sys.hpp"
#include "shmrepl/shm/layout.hpp"

using namespace shmrepl::test;
using Clock = std::chrono::steady_clock;
namespace control = shmrepl::control;
namespace fs = std::filesystem;

namespace {

// Loop counts scaled by SHMREPL_TEST_SCALE (harness.hpp; sanitizer runs set it lower).
int scaled(int n) {
  const int v = static_cast<int>(n * test_scale());
  return v < 1 ? 1 : v;
}

// Names of /dev/shm objects that start with `prefix`.
std::vector<std::string> shm_names(const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator("/dev/shm")) {
    const std::string n = e.path().filename().string();
    if (n.compare(0, prefix.size(), prefix) == 0) out.push_back(n);
  }
  return out;
}

std::string ring_prefix(pid_t engine) {
  return "shmrepl." + std::to_string(geteuid()) + "." + std::to_string(engine) + ".";
}

bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!cond()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

uint64_t rss_bytes(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

std::string lines(int n, const std::string& prefix = "") {
  std::string s;
  for (int i = 0; i < n; ++i) s += prefix + std::to_string(i) + "\n";
  return s;
}

class FaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A crashing engine must not spend seconds writing a core file.
    rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    engine = std::make_unique<EngineProcess>(engine_binary(), socket);
  }
  TempDir dir;
  std::string socket = dir.file("engine.sock");
  std::unique_ptr<EngineProcess> engine;
};

}  // namespace

// 1. The engine SIGKILLed while its writer waits on a full ring that nobody reads: a
// reader that attaches afterwards gets every record, then PRODUCER_DIED at once; a
// new engine on the same socket starts (stale socket) and removes the dead rings.
TEST_F(FaultsTest, EngineKilledWhileWriterBlockedThenRestartCleansUp) {
  Client c(socket);
  Session s(c.c);
  shmrepl_execution_t* e = s.execute("for i in range(1000000):\n    print(i)\n", true, {}, {}, 4096);
  const std::string ring = shmrepl_execution_ring_name(e);
  const pid_t dead = engine->pid();
  // The ring fills up within milliseconds; give the writer time to block on it.
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // Attach before the kill: an engine that another test starts meanwhile removes a
  // dead engine's ring names (mapped readers keep working).
  ASSERT_TRUE(ring_exists(ring));
  shmrepl_reader_t* reader = nullptr;
  const shmrepl_status_t opened = shmrepl_reader_open(ring.c_str(), nullptr, &reader);
  ASSERT_EQ(opened, SHMREPL_OK) << status_text(opened);
  engine->kill9();
  const auto t0 = Clock::now();
  Collected r = collect(reader, shmrepl_execution_id(e), false, std::chrono::seconds(10));
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(1500));
  EXPECT_EQ(r.end, SHMREPL_E_PRODUCER_DIED) << status_text(r.end);
  EXPECT_TRUE(r.seq_gap_free);
  EXPECT_TRUE(r.ids_match);
  EXPECT_GT(r.records, 10u);
  EXPECT_EQ(r.finished, 0);
  // Every line it got is whole and in order: 0, 1, 2...
  EXPECT_EQ(r.out.head.substr(0, 40), lines(200).substr(0, 40));
  shmrepl_reader_close(reader);
  shmrepl_execution_close(e);
  uint64_t sid = 0;
  EXPECT_EQ(shmrepl_session_open(c.c, &sid), SHMREPL_E_ENGINE_DIED);

  // A name of a live pid (ours) and one of another uid must survive the clean-up.
  const std::string live = "shmrepl." + std::to_string(geteuid()) + "." + std::to_string(getpid()) + ".777";
  const std::string other = "shmrepl." + std::to_string(geteuid() + 4242) + "." + std::to_string(dead) + ".1";
  // One more of the dead engine's, in case an engine of a parallel test already
  // cleaned up the real one.
  const std::string stale = ring_prefix(dead) + "999";
  for (const std::string& n : {live, other, stale}) {
    int fd = shm_open(("/" + n).c_str(), O_CREAT | O_RDWR, 0600);
    ASSERT_GE(fd, 0) << n;
    close(fd);
  }

  engine = std::make_unique<EngineProcess>(engine_binary(), socket);  // same path, stale socket
  EXPECT_TRUE(shm_names(ring_prefix(dead)).empty()) << shm_names(ring_prefix(dead))[0];
  EXPECT_FALSE(ring_exists(ring));
  EXPECT_TRUE(ring_exists(live));
  EXPECT_TRUE(ring_exists(other));
  shm_unlink(("/" + live).c_str());
  shm_unlink(("/" + other).c_str());
  EXPECT_NE(read_file(engine->log()).find("rings of dead engines"), std::string::npos);
  Client c2(socket);
  Session s2(c2.c);
  EXPECT_EQ(execute_and_collect(s2, "print('fresh')\n").out.head, "fresh\n");
}

// The clean-up function itself, on a private folder.
TEST(StaleRings, OnlyDeadPidsOfOurUid) {
  TempDir d;
  // A pid that is not alive: a child that has exited and been reaped.
  pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  const std::string uid = std::to_string(geteuid());
  const std::vector<std::string> gone = {"shmrepl." + uid + "." + std::to_string(child) + ".1",
                                         "shmrepl." + uid + "." + std::to_string(child) + ".bg3"};
  const std::vector<std::string> kept = {
      "shmrepl." + uid + "." + std::to_string(getpid()) + ".1",     // alive
      "shmrepl." + std::to_string(geteuid() + 1) + "." + std::to_string(child) + ".1",  // other uid
      "shmrepl." + uid + ".x" + std::to_string(child) + ".1",       // not a pid
      "shmrepl." + uid + "." + std::to_string(child),               // no dot after the pid
      "other." + uid + "." + std::to_string(child) + ".1"};
  for (const auto& n : gone) write_file(d.file(n), "x");
  for (const auto& n : kept) write_file(d.file(n), "x");
  // A dead worker's ring whose guardian (its supervisor: here, us) still runs is the
  // guardian's to close, not stale; with a dead guardian it is.
  auto ring_header = [&](uint32_t guardian) {
    std::string page(sizeof(shmrepl::shm::RingHeader), '\0');
    auto put = [&](std::size_t at, const void* v, std::size_t n) { std::memcpy(page.data() + at, v, n); };
    const uint64_t magic = shmrepl::shm::kMagic, start = shmrepl::shm::process_start_time(getpid());
    const uint32_t version = shmrepl::shm::kLayoutVersion;
    put(offsetof(shmrepl::shm::RingHeader, magic), &magic, 8);
    put(offsetof(shmrepl::shm::RingHeader, layout_version), &version, 4);
    put(offsetof(shmrepl::shm::RingHeader, guardian_pid), &guardian, 4);
    put(offsetof(shmrepl::shm::RingHeader, guardian_start_time), &start, 8);
    return page;
  };
  const std::string guarded = "shmrepl." + uid + "." + std::to_string(child) + ".7.guarded";
  const std::string orphan = "shmrepl." + uid + "." + std::to_string(child) + ".8.orphan";
  write_file(d.file(guarded), ring_header(static_cast<uint32_t>(getpid())));
  write_file(d.file(orphan), ring_header(static_cast<uint32_t>(child)));
  EXPECT_EQ(shmrepl::server::remove_stale_rings(geteuid(), d.path), 3);
  for (const auto& n : gone) EXPECT_FALSE(fs::exists(d.file(n))) << n;
  for (const auto& n : kept) EXPECT_TRUE(fs::exists(d.file(n))) << n;
  EXPECT_TRUE(fs::exists(d.file(guarded)));
  EXPECT_FALSE(fs::exists(d.file(orphan)));
}

// 2. A reader process SIGKILLed while the producer waits for it to release: the
// producer detaches it and goes on; another reader gets everything.
TEST_F(FaultsTest, ReaderProcessKilledWhileProducerWaits) {
  Client c(socket);
  Session s(c.c);
  const int n = scaled(20000);
  shmrepl_execution_t* e =
      s.execute("for i in range(" + std::to_string(n) + "):\n    print(i)\n", true, {}, {}, 4096);
  const std::string ring = shmrepl_execution_ring_name(e);
  shmrepl_reader_t* good = nullptr;
  ASSERT_EQ(shmrepl_reader_open(ring.c_str(), nullptr, &good), SHMREPL_OK);
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t child = fork();
  if (child == 0) {
    // Attach, take a record and never release it.
    shmrepl_reader_t* r = nullptr;
    shmrepl_record_t rec;
    if (shmrepl_reader_open(ring.c_str(), nullptr, &r) != SHMREPL_OK) _exit(1);
    if (shmrepl_reader_next(r, 10'000'000'000, &rec) != SHMREPL_OK) _exit(2);
    char b = 'r';
    if (write(ready[1], &b, 1) != 1) _exit(3);
    for (;;) pause();
  }
  close(ready[1]);
  char b = 0;
  ASSERT_EQ(read(ready[0], &b, 1), 1);
  close(ready[0]);
  // Let the producer fill the ring and wait on the stuck reader, then kill it.
  std::thread killer([child] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    kill(child, SIGKILL);
  });
  Collected r = collect(good, shmrepl_execution_id(e), false, std::chrono::seconds(60));
  killer.join();
  EXPECT_EQ(wait_exit(child, std::chrono::seconds(10)), 128 + SIGKILL);
  EXPECT_EQ(r.end, SHMREPL_E_EOF) << status_text(r.end);
  EXPECT_TRUE(r.seq_gap_free);
  EXPECT_EQ(r.finished, 1);
  EXPECT_EQ(r.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  Digest want;
  const std::string all = lines(n);
  want.add(all.data(), all.size());
  EXPECT_EQ(r.out, want) << describe(r.out);
  shmrepl_reader_close(good);
  shmrepl_execution_close(e);
}

// 3. A client process that exits without closing anything: its session is closed,
// the running execution cancelled and its ring unlinked; others are still served.
TEST_F(FaultsTest, ClientProcessExitsWithoutClosing) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  pid_t child = fork();
  if (child == 0) {
    close(p[0]);
    shmrepl_client_options_t o{};
    o.struct_size = sizeof o;
    o.autostart = SHMREPL_AUTOSTART_OFF;
    o.socket_path = socket.c_str();
    shmrepl_client_t* c = nullptr;
    uint64_t sid = 0;
    if (shmrepl_client_connect(&o, &c) != SHMREPL_OK || shmrepl_session_open(c, &sid) != SHMREPL_OK) _exit(1);
    const std::string code = "import time\nprint('up')\ntime.sleep(1000)\n";
    shmrepl_execute_options_t x{};
    x.struct_size = sizeof x;
    x.session_id = sid;
    x.code = code.c_str();
    x.code_len = code.size();
    shmrepl_execution_t* e = nullptr;
    if (shmrepl_execute(c, &x, &e) != SHMREPL_OK) _exit(2);
    const std::string name = std::string(shmrepl_execution_ring_name(e)) + "\n";
    if (write(p[1], name.data(), name.size()) != static_cast<ssize_t>(name.size())) _exit(3);
    _exit(0);
  }
  close(p[1]);
  std::string name;
  char ch;
  while (read(p[0], &ch, 1) == 1 && ch != '\n') name += ch;
  close(p[0]);
  EXPECT_EQ(wait_exit(child, std::chrono::seconds(30)), 0);
  ASSERT_FALSE(name.empty());
  EXPECT_TRUE(wait_until([&] { return !ring_exists(name); }, std::chrono::seconds(5))) << name;
  const std::string bg_prefix = ring_prefix(engine->pid()) + "bg";
  EXPECT_TRUE(wait_until([&] { return shm_names(bg_prefix).empty(); }, std::chrono::seconds(5)));
  Client c(socket);
  Session s(c.c);
  EXPECT_EQ(execute_and_collect(s, "print('served')\n").out.head, "served\n");
}

// 4. User code that ends the process, crashes it or exhausts its resources.
TEST_F(FaultsTest, OsExitEndsTheSessionNotTheEngine) {
  Client c(socket);
  Session s(c.c);
  // As in python3: os._exit ends the process at once (no finally), with its code.
  Collected r = execute_and_collect(s, "import os\nprint('before')\ntry:\n    os._exit(3)\nfinally:\n    print('finally')\nprint('never')\n");
  EXPECT_EQ(r.end, SHMREPL_E_EOF);
  EXPECT_EQ(r.finished, 1);
  EXPECT_EQ(r.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_ABORTED));
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out.head, "before\n");
  Session s2(c.c);
  // A forked child's os._exit ends the child only.
  Collected f = execute_and_collect(
      s2, "import os\npid = os.fork()\nif pid == 0:\n    os._exit(7)\n_, st = os.waitpid(pid, 0)\nprint(os.waitstatus_to_exitcode(st))\n");
  EXPECT_EQ(f.out.head, "7\n");
  EXPECT_EQ(f.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  EXPECT_EQ(execute_and_collect(s2, "print('alive')\n").out.head, "alive\n");
  EXPECT_EQ(kill(engine->pid(), 0), 0);
}

TEST_F(FaultsTest, SegfaultEndsOnlyItsSessionVisibly) {
  Client c(socket);
  Session s(c.c);
  shmrepl_execution_t* e = s.execute("print('before', flush=True)\nimport ctypes\nctypes.string_at(0)\n");
  shmrepl_reader_t* reader = nullptr;
  ASSERT_EQ(shmrepl_execution_reader(e, nullptr, &reader), SHMREPL_OK);
  Collected r = collect(reader, shmrepl_execution_id(e), false, std::chrono::seconds(30));
  // The session's worker is gone; its ring ends with FINISHED{ABORTED}.
  EXPECT_EQ(r.end, SHMREPL_E_EOF) << status_text(r.end);
  EXPECT_EQ(r.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_ABORTED));
  EXPECT_EQ(r.out.head, "before\n");
  shmrepl_reader_close(reader);
  shmrepl_execution_close(e);
  EXPECT_EQ(kill(engine->pid(), 0), 0);
  EXPECT_NE(read_file(engine->log()).find("died: signal 11"), std::string::npos) << read_file(engine->log());
  Session s2(c.c);
  EXPECT_EQ(execute_and_collect(s2, "print('next session')\n").out.head, "next session\n");
}

TEST_F(FaultsTest, MemoryErrorAndRecursionErrorAreErrorsAndTheEngineSurvives) {
  Client c(socket);
  Session s(c.c);
  if (!kSanitized) {  // ASan aborts on an allocation this size instead of returning NULL
    Collected m = execute_and_collect(s, "x = bytearray(10**13)\n", true, {}, {}, true);
    EXPECT_EQ(m.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_ERROR));
    EXPECT_NE(m.err.head.find("MemoryError"), std::string::npos) << m.err.head;
    bool error_record = false;
    for (const Rec& k : m.kept) error_record |= k.kind == SHMREPL_RECORD_ERROR;
    EXPECT_TRUE(error_record);
  }
  Collected r = execute_and_collect(s, "def f():\n    f()\nf()\n");
  EXPECT_EQ(r.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_ERROR));
  EXPECT_NE(r.err.head.find("RecursionError: maximum recursion depth exceeded"), std::string::npos)
      << r.err.head.substr(0, 300);
  EXPECT_EQ(execute_and_collect(s, "print(sum(range(10)))\n").out.head, "45\n");
}

TEST_F(FaultsTest, ClosingFd1And2DoesNotBreakTheEngine) {
  Client c(socket);
  Session s(c.c);
  Collected r = execute_and_collect(s, "import os\nos.close(1)\nos.close(2)\nprint('after')\n");
  EXPECT_EQ(r.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  EXPECT_EQ(r.out.head, "after\n");
  // Raw writes and children are captured again in the next execution.
  Collected n = execute_and_collect(
      s, "import os, subprocess\nos.write(1, b'raw\\n')\nprint('py')\nsubprocess.run(['/bin/echo', 'child'])\n");
  EXPECT_EQ(n.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  EXPECT_EQ(n.out.head, "raw\npy\nchild\n");
  // Closed beneath Python (C code): the pipes come back when the execution ends.
  Collected cc = execute_and_collect(
      s, "import ctypes\nlibc = ctypes.CDLL(None)\nlibc.close(1)\nlibc.close(2)\nprint('after C close')\n");
  EXPECT_EQ(cc.out.head, "after C close\n");
  // The pipes are back unless the engine gave the freed number to another descriptor
  // meanwhile (seen under ASan); either way the engine goes on.
  Collected n2 = execute_and_collect(s, "import os\ntry:\n    os.write(1, b'raw again\\n')\nexcept OSError:\n    pass\nprint('py')\n");
  EXPECT_EQ(n2.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  if (!kSanitized) EXPECT_EQ(n2.out.head, "raw again\npy\n");
  else EXPECT_EQ(n2.out.head.substr(n2.out.head.size() - std::min<std::size_t>(3, n2.out.head.size())), "py\n");
  // The forwarder does not spin on a hung-up pipe: the engine is idle.
  std::ifstream f("/proc/" + std::to_string(engine->pid()) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  auto fields = [&](const std::string& st) {
    std::istringstream in(st.substr(st.rfind(')') + 2));
    std::string x;
    uint64_t ut = 0, stt = 0;
    for (int i = 3; i <= 15; ++i) {
      in >> x;
      if (i == 14) ut = std::stoull(x);
      if (i == 15) stt = std::stoull(x);
    }
    return ut + stt;
  };
  const uint64_t before = fields(stat);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::ifstream f2("/proc/" + std::to_string(engine->pid()) + "/stat");
  std::string stat2((std::istreambuf_iterator<char>(f2)), std::istreambuf_iterator<char>());
  EXPECT_LT(fields(stat2) - before, static_cast<uint64_t>(sysconf(_SC_CLK_TCK) / 5));  // < 40% of a core
}

// 5. Many executions and many concurrent sessions leave nothing behind: rings, fds,
// threads, memory.
TEST_F(FaultsTest, NoLeaksAfterManyExecutionsAndSessions) {
  const pid_t pid = engine->pid();
  const std::string fd_dir = "/proc/" + std::to_string(pid) + "/fd";
  const std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
  Client c(socket);
  std::size_t fds0 = 0, tasks0 = 0;
  uint64_t rss0 = 0;
  {
    Session warm(c.c);
    for (int i = 0; i < 20; ++i) execute_and_collect(warm, "print('warm', " + std::to_string(i) + ")\n");
  }
  // Baseline: a connected client, no session.
  ASSERT_TRUE(wait_until([&] { return shm_names(ring_prefix(pid)).empty(); }, std::chrono::seconds(5)));
  fds0 = count_dir(fd_dir);
  tasks0 = count_dir(task_dir);
  rss0 = rss_bytes(pid);
  {
    Session s(c.c);
    const int n = scaled(1000);
    for (int i = 0; i < n; ++i) {
      Collected r = execute_and_collect(s, "print(" + std::to_string(i) + ")\n");
      ASSERT_EQ(r.out.head, std::to_string(i) + "\n");
      ASSERT_EQ(r.end, SHMREPL_E_EOF);
    }
  }
  {
    const int n = scaled(100);
    std::vector<std::unique_ptr<Session>> sessions;
    std::vector<shmrepl_execution_t*> execs;
    for (int i = 0; i < n; ++i) {
      sessions.push_back(std::make_unique<Session>(c.c));
      execs.push_back(sessions.back()->execute("for i in range(50):\n    print('s" + std::to_string(i) + "', i)\n"));
    }
    for (int i = 0; i < n; ++i) {
      shmrepl_reader_t* reader = nullptr;
      ASSERT_EQ(shmrepl_execution_reader(execs[static_cast<std::size_t>(i)], nullptr, &reader), SHMREPL_OK);
      Collected r = collect(reader, shmrepl_execution_id(execs[static_cast<std::size_t>(i)]));
      std::string want;
      for (int k = 0; k < 50; ++k) want += "s" + std::to_string(i) + " " + std::to_string(k) + "\n";
      EXPECT_EQ(r.out.head, want);
      EXPECT_TRUE(r.seq_gap_free);
      shmrepl_reader_close(reader);
      shmrepl_execution_close(execs[static_cast<std::size_t>(i)]);
    }
  }
  EXPECT_TRUE(wait_until([&] { return shm_names(ring_prefix(pid)).empty(); }, std::chrono::seconds(10)))
      << shm_names(ring_prefix(pid)).size() << " rings left, e.g. " << shm_names(ring_prefix(pid))[0];
  EXPECT_TRUE(wait_until([&] { return count_dir(task_dir) <= tasks0; }, std::chrono::seconds(10)))
      << count_dir(task_dir) << " threads, baseline " << tasks0;
  EXPECT_LE(count_dir(fd_dir), fds0 + 2) << "baseline " << fds0;
  if (!kSanitized) {
    const uint64_t rss1 = rss_bytes(pid);
    EXPECT_LT(rss1, rss0 + (30u << 20)) << "RSS " << rss0 << " -> " << rss1;
  }
}

// 6. Permissions: rings 0600, the default socket folder 0700, other users refused.
TEST_F(FaultsTest, RingsArePrivate) {
  Client c(socket);
  Session s(c.c);
  shmrepl_execution_t* e = s.execute("print(1)\n");
  // Sealed memfds, reached through the engine's descriptors: the file is 0600 too.
  // (The worker sends the engine each ring on its own channel: it may come a little
  // after the reply that gave us the ring.)
  auto stat_ring = [&](const std::string& name, struct stat* st) {
    const std::string fds = "/proc/" + std::to_string(engine->pid()) + "/fd";
    return wait_until(
        [&] {
          for (const auto& fd : fs::directory_iterator(fds)) {
            std::error_code ec;
            if (fs::read_symlink(fd.path(), ec).string() == "/memfd:" + name + " (deleted)")
              return stat(fd.path().c_str(), st) == 0;
          }
          return false;
        },
        std::chrono::seconds(10));
  };
  struct stat st {};
  ASSERT_TRUE(stat_ring(shmrepl_execution_ring_name(e), &st));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(st.st_uid, geteuid());
  const char* bg = shmrepl_session_background_ring(c.c, s.id);
  ASSERT_NE(bg, nullptr);
  if (*bg != '\0') {
    ASSERT_TRUE(stat_ring(bg, &st));
    EXPECT_EQ(st.st_mode & 0777, 0600u);
  }
  shmrepl_execution_close(e);
  ASSERT_EQ(stat(socket.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0077, 0u) << std::oct << st.st_mode;
}

TEST(FaultsPermissions, DefaultSocketFolderIsPrivate) {
  TempDir d;
  const std::string runtime = d.file("run");
  ASSERT_EQ(mkdir(runtime.c_str(), 0755), 0);
  const std::string sock = runtime + "/shmrepl/default.sock";
  pid_t pid = spawn({engine_binary()}, {{"XDG_RUNTIME_DIR", runtime}, {"SHMREPL_SOCKET", std::nullopt}},
                    d.file("engine.log"));
  // "listening" is logged once the stop signals are handled.
  EXPECT_TRUE(wait_until([&] { return read_file(d.file("engine.log")).find("listening on") != std::string::npos; },
                         std::chrono::seconds(30)))
      << read_file(d.file("engine.log"));
  EXPECT_TRUE(fs::exists(sock));
  struct stat st {};
  ASSERT_EQ(stat((runtime + "/shmrepl").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  kill(pid, SIGTERM);
  EXPECT_EQ(wait_exit(pid, std::chrono::seconds(20)), 0);
  EXPECT_FALSE(fs::exists(sock));

  // A folder that others may enter is refused.
  ASSERT_EQ(chmod((runtime + "/shmrepl").c_str(), 0755), 0);
  pid = spawn({engine_binary()}, {{"XDG_RUNTIME_DIR", runtime}, {"SHMREPL_SOCKET", std::nullopt}},
              d.file("engine2.log"));
  EXPECT_EQ(wait_exit(pid, std::chrono::seconds(20)), 1);
  EXPECT_NE(read_file(d.file("engine2.log")).find("refusing to serve"), std::string::npos);
}

TEST_F(FaultsTest, PeerOfAnotherUidIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to act as another user";
  const char* user = "shmrepl-test-peer";
  if (getpwnam(user) == nullptr) {
    if (access("/usr/sbin/useradd", X_OK) != 0) GTEST_SKIP() << "useradd is not available";
    ProcessResult r = run_process({"/usr/sbin/useradd", "--system", "--no-create-home", user}, {}, true, true);
    if (getpwnam(user) == nullptr) GTEST_SKIP() << "useradd failed: " << r.out_text;
  }
  const passwd* pw = getpwnam(user);
  ASSERT_NE(pw, nullptr);
  const uid_t peer_uid = pw->pw_uid;
  const gid_t peer_gid = pw->pw_gid;
  // Let the other user reach the socket at all: the kernel's file check would refuse
  // it first, and this test is about the engine's own check.
  ASSERT_EQ(chmod(dir.path.c_str(), 0711), 0);
  ASSERT_EQ(chmod(socket.c_str(), 0666), 0);
  Client good(socket);
  pid_t child = fork();
  if (child == 0) {
    if (setgroups(0, nullptr) != 0 || setgid(peer_gid) != 0 || setuid(peer_uid) != 0) _exit(10);
    // Raw: the engine closes the connection without answering Hello.
    try {
      Raw raw(socket);
      if (!raw.send(control::hello(1, SHMREPL_ABI_VERSION, 0))) _exit(0);  // closed already: fine
      if (raw.reply() != SHMREPL_E_EOF) _exit(11);
    } catch (...) {
      _exit(12);
    }
    // The C ABI refuses too (it checks the engine's uid as well).
    shmrepl_client_options_t o{};
    o.struct_size = sizeof o;
    o.autostart = SHMREPL_AUTOSTART_OFF;
    o.socket_path = socket.c_str();
    shmrepl_client_t* c = nullptr;
    const shmrepl_status_t st = shmrepl_client_connect(&o, &c);
    if (st == SHMREPL_OK) _exit(13);
    _exit(st == SHMREPL_E_PERMISSION || st == SHMREPL_E_ENGINE_DIED ? 0 : 14);
  }
  EXPECT_EQ(wait_exit(child, std::chrono::seconds(30)), 0);
  EXPECT_NE(read_file(engine->log()).find("refused a connection from uid " + std::to_string(peer_uid)),
            std::string::npos)
      << read_file(engine->log());
  Session s(good.c);
  EXPECT_EQ(execute_and_collect(s, "print('still mine')\n").out.head, "still mine\n");
}

// 7. Hostile names and sizes.
TEST_F(FaultsTest, HostileRingNamesAreInvalid) {
  const std::string uid = std::to_string(geteuid());
  for (const std::string& n : {std::string("shmrepl/../../etc/passwd"), std::string("../shmrepl.") + uid + ".1.1",
                               "shmrepl." + uid + ".1/1", "/shmrepl." + uid + ".1.1",
                               std::string("shmrepl.") + std::string(300, '1'), std::string("..")}) {
    shmrepl_reader_t* r = nullptr;
    const shmrepl_status_t st = shmrepl_reader_open(n.c_str(), nullptr, &r);
    EXPECT_TRUE(st == SHMREPL_E_INVALID || st == SHMREPL_E_NOT_FOUND) << n << ": " << status_text(st);
    EXPECT_EQ(r, nullptr);
  }
  Client c(socket);
  Session s(c.c);
  EXPECT_EQ(execute_and_collect(s, "print('ok')\n").out.head, "ok\n");
}

TEST_F(FaultsTest, HostileExecutionIdsAndHugeCode) {
  Client c(socket);
  Session s(c.c);
  auto run_with_id = [&](const std::string& id, shmrepl_status_t* st) -> Collected {
    const std::string code = "print('x')\n";
    shmrepl_execute_options_t o{};
    o.struct_size = sizeof o;
    o.session_id = s.id;
    o.code = code.c_str();
    o.code_len = code.size();
    o.client_execution_id = id.c_str();
    shmrepl_execution_t* e = nullptr;
    *st = shmrepl_execute(c.c, &o, &e);
    if (*st != SHMREPL_OK) return {};
    shmrepl_reader_t* reader = nullptr;
    EXPECT_EQ(shmrepl_execution_reader(e, nullptr, &reader), SHMREPL_OK);
    Collected r = collect(reader, shmrepl_execution_id(e), false, std::chrono::seconds(30));
    EXPECT_TRUE(std::string(shmrepl_execution_ring_name(e)).find('/') == std::string::npos);
    shmrepl_reader_close(reader);
    shmrepl_execution_close(e);
    return r;
  };
  // Path separators are only text: echoed in Started, never part of a name.
  for (const std::string& id : {std::string("../../etc/x"), std::string("a/b\\c"), std::string(300, '/')}) {
    shmrepl_status_t st;
    Collected r = run_with_id(id, &st);
    ASSERT_EQ(st, SHMREPL_OK) << status_text(st);
    ASSERT_FALSE(r.kept.empty());
    EXPECT_EQ(r.kept[0].kind, static_cast<uint32_t>(SHMREPL_RECORD_STARTED));
    EXPECT_EQ(r.kept[0].data, id);
    EXPECT_EQ(r.out.head, "x\n");
  }
  // An id too long for one record (1 MiB, the ring's records are at most 256 KiB): the
  // execution runs and Started carries the id cut to fit, with a visible marker.
  {
    shmrepl_status_t st;
    const std::string id(1 << 20, 'i');
    Collected r = run_with_id(id, &st);
    ASSERT_EQ(st, SHMREPL_OK) << status_text(st);
    ASSERT_FALSE(r.kept.empty());
    const std::string& got = r.kept[0].data;
    EXPECT_GT(got.size(), 1000u);
    EXPECT_LT(got.size(), id.size());
    const std::size_t kept = got.rfind("[... ");
    ASSERT_NE(kept, std::string::npos);
    EXPECT_EQ(got, id.substr(0, kept) + "[... " + std::to_string(id.size() - kept) + " bytes omitted ...]");
    EXPECT_EQ(r.out.head, "x\n");
  }
  // 100 MB of code: over the 64 MiB request limit.
  {
    std::string code(100u << 20, ' ');
    code.replace(0, 9, "print(1)\n");
    shmrepl_execute_options_t o{};
    o.struct_size = sizeof o;
    o.session_id = s.id;
    o.code = code.data();
    o.code_len = code.size();
    shmrepl_execution_t* e = nullptr;
    EXPECT_EQ(shmrepl_execute(c.c, &o, &e), SHMREPL_E_TOO_LARGE);
    EXPECT_EQ(e, nullptr);
  }
  EXPECT_EQ(execute_and_collect(s, "print('after hostile')\n").out.head, "after hostile\n");
  Client other(socket);
  Session s2(other.c);
  EXPECT_EQ(execute_and_collect(s2, "print(6 * 7)\n").out.head, "42\n");
}
