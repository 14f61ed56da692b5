// Every workload (tests/workloads, except w8 which needs fd capture: see
// engine_fd_test) run through the engine must give exactly what python3 FILE
// gives, per stream, byte for byte.
#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <thread>

#include "support.hpp"

using namespace shmrepl;
using shmrepl::test::Collected;

namespace {

std::unique_ptr<engine::Engine> start_engine() {
  engine::EngineOptions o;
  o.capture_fds = false;
  return engine::Engine::start(o);
}

struct Outcome {
  Collected ring;
  test::PyResult python;
};

Outcome run_workload(const std::string& name, test::ReadOptions ro = {}) {
  auto e = start_engine();
  uint64_t s = e->open_session();
  std::string path = test::scaled_workload(name);
  test::RunOptions o;
  o.filename = path;
  o.script = true;
  o.read = std::move(ro);
  Outcome out;
  out.ring = test::run(*e, s, test::read_file(path), o);
  e->shutdown();
  out.python = test::run_python({path}, false);
  return out;
}

void expect_same_as_python(const Outcome& o) {
  const Collected& c = o.ring;
  EXPECT_EQ(c.end_status, SHMREPL_E_EOF);
  EXPECT_TRUE(c.seq_ok);
  EXPECT_TRUE(c.exec_id_ok);
  EXPECT_TRUE(c.split_ok);
  EXPECT_EQ(c.finished_count, 1u);
  EXPECT_EQ(c.out.size(), o.python.out.size());
  EXPECT_TRUE(c.out == o.python.out) << "stdout differs";
  EXPECT_EQ(c.err, o.python.err);
}

bool valid_utf8(const uint8_t* p, std::size_t n) {
  std::size_t i = 0;
  while (i < n) {
    uint8_t b = p[i];
    std::size_t len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > n) return false;
    for (std::size_t k = 1; k < len; ++k)
      if ((p[i + k] & 0xC0) != 0x80) return false;
    i += len;
  }
  return true;
}

}  // namespace

TEST(Workloads, W1SeedLines) {
  Outcome o = run_workload("w1_seed_lines.py");
  expect_same_as_python(o);
  EXPECT_EQ(o.ring.output_records, static_cast<uint64_t>(test::scaled(10000)));  // one per print
}

TEST(Workloads, W2MillionLines) { expect_same_as_python(run_workload("w2_million_lines.py")); }

TEST(Workloads, W3BigWrite) {
  Outcome o = run_workload("w3_big_write.py");
  expect_same_as_python(o);
  EXPECT_EQ(o.ring.out.size(), static_cast<std::size_t>(test::scaled(100'000'000)) + 1);
  EXPECT_GT(o.ring.output_records, 1u);
}

TEST(Workloads, W4TinyWrites) { expect_same_as_python(run_workload("w4_tiny_writes.py")); }

TEST(Workloads, W5InterleavedKeepsOrder) {
  Outcome o = run_workload("w5_interleaved.py");
  expect_same_as_python(o);
  // The true interleaving: python3 unbuffered with both streams on one pipe.
  test::PyResult merged =
      test::run_python({test::scaled_workload("w5_interleaved.py")}, true, {"PYTHONUNBUFFERED=1"});
  EXPECT_TRUE(o.ring.merged == merged.out) << "interleaving differs";
}

TEST(Workloads, W6ThreadsKeepLinesWholeAndInOrder) {
  Outcome o = run_workload("w6_threads.py");
  const Collected& c = o.ring;
  EXPECT_TRUE(c.seq_ok);
  EXPECT_EQ(c.finished_count, 1u);
  EXPECT_EQ(c.err, o.python.err);
  std::map<int, int> next;
  std::size_t pos = 0, lines = 0;
  bool well_formed = true, ordered = true;
  while (pos < c.out.size()) {
    std::size_t nl = c.out.find('\n', pos);
    if (nl == std::string::npos) {
      well_formed = false;
      break;
    }
    int n = -1, i = -1, used = 0;
    std::string line = c.out.substr(pos, nl - pos);
    if (std::sscanf(line.c_str(), "t%d %d%n", &n, &i, &used) != 2 || used != static_cast<int>(line.size()))
      well_formed = false;  // glued or torn line
    else if (next[n] != i)
      ordered = false;
    next[n] = i + 1;
    pos = nl + 1;
    ++lines;
  }
  EXPECT_TRUE(well_formed);
  EXPECT_TRUE(ordered);
  EXPECT_EQ(lines, 4u * static_cast<std::size_t>(test::scaled(100'000)));
  for (int n = 0; n < 4; ++n) EXPECT_EQ(next[n], test::scaled(100'000));
  // Same multiset of bytes as python3 (the interleaving of threads differs by nature).
  EXPECT_EQ(c.out.size(), o.python.out.size());
}

TEST(Workloads, W7UnicodeSplitOnCharacterBoundaries) {
  test::ReadOptions ro;
  bool all_valid = true;
  ro.on_output = [&](const shmrepl_record_t& r) {
    if (!valid_utf8(r.data, r.data_len)) all_valid = false;
  };
  Outcome o = run_workload("w7_unicode.py", ro);
  expect_same_as_python(o);
  EXPECT_TRUE(all_valid);
  EXPECT_GT(o.ring.output_records, static_cast<uint64_t>(test::scaled(1000)) + 1);
}

TEST(Workloads, W9Exception) {
  Outcome o = run_workload("w9_exception.py");
  expect_same_as_python(o);
  ASSERT_NE(o.ring.finished(), nullptr);
  EXPECT_EQ(o.ring.finished()->finish_status, SHMREPL_FINISH_ERROR);
  EXPECT_EQ(o.python.exit_code, 1);
  ASSERT_NE(o.ring.find(SHMREPL_RECORD_ERROR), nullptr);
}

TEST(Workloads, W10RealTime) {
  auto e = start_engine();
  uint64_t s = e->open_session();
  std::string path = test::workload("w10_realtime.py");
  engine::ExecuteRequest req{s, test::read_file(path), "", path, {}, true, 0};
  auto t0 = std::chrono::steady_clock::now();
  auto a = e->execute(req);
  std::vector<std::chrono::steady_clock::time_point> seen;
  test::ReadOptions ro;
  ro.on_output = [&](const shmrepl_record_t&) { seen.push_back(std::chrono::steady_clock::now()); };
  Collected c = test::read_ring(a.ring_name, ro);
  EXPECT_EQ(c.out, "first\nsecond\n");
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_LT(seen[0] - t0, std::chrono::milliseconds(500));
  EXPECT_GT(seen[1] - seen[0], std::chrono::milliseconds(900));
  EXPECT_EQ(c.out, test::run_python({path}, false).out);
}
