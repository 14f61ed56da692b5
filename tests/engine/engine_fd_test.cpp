// fd capture: raw writes to fds 1 and 2 (os.write, C code, child processes)
// become Output records. The capture redirects this process's fds 1 and 2, so
// each test collects what it needs, shuts the engine down (which restores the
// fds) and only then checks, so that gtest's own output stays visible.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "support.hpp"

using namespace shmrepl;
using shmrepl::test::Collected;

namespace {

std::unique_ptr<engine::Engine> start_engine() {
  engine::EngineOptions o;
  o.capture_fds = true;
  return engine::Engine::start(o);
}

ino_t inode_of(int fd) {
  struct stat sb {};
  fstat(fd, &sb);
  return sb.st_ino;
}

}  // namespace

TEST(FdCapture, W8SameAsPythonPerStreamAndInOrder) {
  ino_t out_before = inode_of(1), err_before = inode_of(2);
  std::string path = test::workload("w8_fd_level.py");
  Collected c;
  {
    auto e = start_engine();
    uint64_t s = e->open_session();
    test::RunOptions o;
    o.filename = path;
    o.script = true;
    c = test::run(*e, s, test::read_file(path), o);
    e->shutdown();
  }
  EXPECT_EQ(inode_of(1), out_before);  // restored
  EXPECT_EQ(inode_of(2), err_before);
  test::PyResult py = test::run_python({path}, false);
  test::PyResult merged = test::run_python({path}, true, {"PYTHONUNBUFFERED=1"});
  EXPECT_EQ(c.end_status, SHMREPL_E_EOF);
  EXPECT_TRUE(c.seq_ok);
  EXPECT_TRUE(c.exec_id_ok);
  EXPECT_EQ(c.finished_count, 1u);
  EXPECT_EQ(c.out, py.out);
  EXPECT_EQ(c.err, py.err);
  EXPECT_EQ(c.merged, merged.out);
}

TEST(FdCapture, ChildOutputArrivesWhileItRuns) {
  Collected c;
  std::vector<std::chrono::steady_clock::time_point> seen;
  {
    auto e = start_engine();
    uint64_t s = e->open_session();
    test::RunOptions o;
    o.read.on_output = [&](const shmrepl_record_t&) { seen.push_back(std::chrono::steady_clock::now()); };
    c = test::run(*e, s,
                  "import subprocess\n"
                  "subprocess.run(['sh', '-c', 'echo early; sleep 0.5; echo late >&2; printf tail'])\n"
                  "print('done')\n",
                  o);
    e->shutdown();
  }
  EXPECT_EQ(c.out, "early\ntaildone\n");
  EXPECT_EQ(c.err, "late\n");
  ASSERT_GE(seen.size(), 3u);
  EXPECT_GT(seen[1] - seen[0], std::chrono::milliseconds(400));  // `early` was not held back
}

TEST(FdCapture, RawWritesKeepTheirPlaceAmongPrints) {
  Collected c;
  {
    auto e = start_engine();
    uint64_t s = e->open_session();
    c = test::run(*e, s,
                  "import ctypes, os, sys\n"
                  "libc = ctypes.CDLL(None)\n"
                  "for i in range(20):\n"
                  "    print(f'p{i}')\n"
                  "    libc.write(1, f'c{i}\\n'.encode(), len(f'c{i}\\n'))\n"
                  "    os.write(1, f'o{i}\\n'.encode())\n"
                  "    sys.stdout.buffer.write(f'b{i}\\n'.encode())\n");
    e->shutdown();
  }
  std::string expect;
  for (int i = 0; i < 20; ++i)
    expect += "p" + std::to_string(i) + "\nc" + std::to_string(i) + "\no" + std::to_string(i) + "\nb" +
              std::to_string(i) + "\n";
  EXPECT_EQ(c.out, expect);
}

TEST(FdCapture, ChildOutputAfterTheExecutionGoesToTheBackgroundRing) {
  Collected first, bgc;
  uint64_t first_id = 0;
  {
    auto e = start_engine();
    uint64_t s = e->open_session();
    std::string bg = e->session_background_ring(s);
    std::thread reader([&] {
      test::ReadOptions ro;
      ro.any_execution_id = true;
      ro.keep_outputs = true;
      bgc = test::read_ring(bg, ro);
    });
    auto a = e->execute({s,
                         "import subprocess\n"
                         "p = subprocess.Popen(['sh', '-c', 'sleep 0.3; echo from-child'])\n"
                         "print('started')\n",
                         "", "<shmrepl>", {}, false, 0});
    first_id = a.execution_id;
    first = test::read_ring(a.ring_name);
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    e->close_session(s);
    reader.join();
    e->shutdown();
  }
  EXPECT_EQ(first.out, "started\n");
  EXPECT_EQ(bgc.out, "from-child\n");
  for (auto& r : bgc.records)
    if (r.kind == SHMREPL_RECORD_OUTPUT) {
      EXPECT_EQ(r.execution_id, first_id);
    }
}

TEST(FdCapture, EngineRestartsCaptureAfterShutdown) {
  Collected a, b;
  for (Collected* c : {&a, &b}) {
    auto e = start_engine();
    uint64_t s = e->open_session();
    *c = test::run(*e, s, "import os\nos.system('echo via-system')\nprint('py')\n");
    e->shutdown();
  }
  EXPECT_EQ(a.out, "via-system\npy\n");
  EXPECT_EQ(b.out, "via-system\npy\n");
}

// Python prints take emit's fast path (no owner flag) while the forwarder writes what
// a child process writes to fd 1: the two never write the ring at once. An overlap
// would tear frames or reuse a seq, and the prints, or the child's bytes, would not
// come back whole and in their own order.
TEST(FdCapture, ForwarderAndFastPathPrintsNeverOverlap) {
  constexpr int kPrints = 200000, kRaw = 4000, kRawLen = 1000;
  constexpr int kRuns = 3;  // an overlap is a race: give it a few chances
  const std::string code = "import subprocess\n"
                           "child = subprocess.Popen(['sh', '-c', 'i=0; while [ $i -lt " + std::to_string(kRaw) +
                           " ]; do printf \"%0" + std::to_string(kRawLen - 1) + "d\\n\" 0; i=$((i+1)); done'])\n"
                           "for i in range(" + std::to_string(kPrints) + "):\n"
                           "    print(f'p{i}')\n"
                           "child.wait()\n";
  Collected runs[kRuns];
  {
    auto e = start_engine();
    uint64_t s = e->open_session();
    test::RunOptions o;
    o.read.keep_outputs = true;
    o.read.keep_streams = false;
    for (Collected& c : runs) c = test::run(*e, s, code, o);
    e->shutdown();
  }
  std::string expect_raw;
  for (int i = 0; i < kRaw; ++i) expect_raw += std::string(kRawLen - 1, '0') + "\n";
  for (const Collected& c : runs) {
    EXPECT_EQ(c.end_status, SHMREPL_E_EOF);
    EXPECT_TRUE(c.seq_ok);
    EXPECT_TRUE(c.split_ok);
    int next_print = 0;
    std::string raw;
    for (const auto& r : c.records) {
      if (r.kind != SHMREPL_RECORD_OUTPUT) continue;
      ASSERT_EQ(r.stream, SHMREPL_STREAM_STDOUT);
      if (!r.data.empty() && r.data[0] == 'p') {
        ASSERT_EQ(r.data, "p" + std::to_string(next_print) + "\n");
        ++next_print;
      } else {
        raw += r.data;
      }
    }
    EXPECT_EQ(next_print, kPrints);
    EXPECT_TRUE(raw == expect_raw) << "raw bytes: " << raw.size() << " of " << expect_raw.size();
  }
}
