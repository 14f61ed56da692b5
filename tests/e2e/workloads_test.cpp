// Every program of tests/workloads/ through the engine, compared with what
// /usr/bin/python3 prints for it: the same bytes per stream, the same exit code;
// and in every ring gap-free seq, the execution id on every record and exactly one
// FINISHED at the end.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <sstream>
#include <thread>

#include "harness.hpp"

using namespace shmrepl::test;
using Clock = std::chrono::steady_clock;

namespace {

enum class Compare {
  kExact,        // each stream byte for byte
  kInterleaved,  // and both streams' order against python3 -u with 2>&1
  kThreads,      // w6: threads interleave at will; each thread's lines in order
};

struct Workload {
  const char* file;
  Compare compare = Compare::kExact;
  // > 0: assert the engine's peak RSS grows by less than this plus the ring and
  // 64 MiB while the output streams through a slow reader.
  uint64_t rss_allowance = 0;
  bool check_rss = false;
};

void PrintTo(const Workload& w, std::ostream* os) { *os << w.file; }

int exit_code_of(const Collected& c) {
  switch (c.finish_status) {
    case SHMREPL_FINISH_OK: return 0;
    case SHMREPL_FINISH_ERROR: return 1;
    case SHMREPL_FINISH_EXITED: return static_cast<int>(static_cast<uint64_t>(c.exit_code) & 0xff);
    case SHMREPL_FINISH_CANCELLED: return 130;
    default: return -1;
  }
}

std::vector<std::string> lines_of(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string line;
  while (std::getline(in, line)) out.push_back(line);
  return out;
}

class WorkloadTest : public ::testing::TestWithParam<Workload> {
 protected:
  TempDir dir;
  std::string socket = dir.file("engine.sock");
  EngineProcess engine{engine_binary(), socket};
};

constexpr uint64_t kRingCapacity = 1 << 20;  // the engine's default
constexpr uint64_t kMiB = 1 << 20;

}  // namespace

TEST_P(WorkloadTest, SameOutputAsPython3) {
  Workload w = GetParam();
  if (w.check_rss && test_scale() < 1.0)
    GTEST_SKIP() << "over 100 MB of output: left out of scaled (sanitizer) runs";
  if (kSanitized) w.check_rss = false;
  const std::string path = workload(w.file);
  const std::string code = read_file(path);
  ASSERT_FALSE(code.empty()) << path;

  // python3 as a user runs it: buffered (PYTHONUNBUFFERED unset), stdout and stderr
  // on separate pipes.
  ProcessResult ref = run_process({kPython, path}, {{"PYTHONUNBUFFERED", std::nullopt}});
  ASSERT_FALSE(ref.timed_out);

  shmrepl_client_t* client = connect_to(socket);
  Collected got;
  std::string stdout_text;  // kThreads only
  uint64_t rss_before = 0, rss_after = 0;
  Clock::time_point first_output{}, last_output{};
  {
    Session s(client);
    Collected warm = execute_and_collect(s, "print('warm')\n");
    ASSERT_EQ(warm.out.head, "warm\n");
    rss_before = peak_rss(engine.pid());
    ASSERT_GT(rss_before, 0u);

    shmrepl_execution_t* e = s.execute(code, true, path, {path});
    shmrepl_reader_t* reader = nullptr;
    ASSERT_EQ(shmrepl_execution_reader(e, nullptr, &reader), SHMREPL_OK);
    bool paused = false;
    got = collect(reader, shmrepl_execution_id(e), false, std::chrono::seconds(600),
                  [&](const shmrepl_record_t& r) {
                    if (r.kind != SHMREPL_RECORD_OUTPUT) return;
                    const auto now = Clock::now();
                    if (first_output == Clock::time_point{}) first_output = now;
                    last_output = now;
                    if (w.compare == Compare::kThreads && r.stream == SHMREPL_STREAM_STDOUT)
                      stdout_text.append(reinterpret_cast<const char*>(r.data), r.data_len);
                    // A slow reader: the ring fills and the writer must wait, not buffer.
                    if (w.check_rss && !paused) {
                      paused = true;
                      std::this_thread::sleep_for(std::chrono::seconds(1));
                    }
                  });
    rss_after = peak_rss(engine.pid());
    shmrepl_reader_close(reader);
    shmrepl_execution_close(e);
  }
  shmrepl_client_close(client);

  EXPECT_EQ(got.end, SHMREPL_E_EOF) << status_text(got.end);
  EXPECT_TRUE(got.seq_gap_free) << got.first_problem;
  EXPECT_TRUE(got.ids_match) << got.first_problem;
  EXPECT_EQ(got.finished, 1);
  EXPECT_FALSE(got.record_after_finished);
  EXPECT_EQ(exit_code_of(got), ref.exit_code) << got.err.head;

  if (w.compare == Compare::kThreads) {
    EXPECT_EQ(got.out.size, ref.out.size);
    std::vector<std::string> mine = lines_of(stdout_text);
    // Each thread's lines in order, none glued to another.
    std::map<std::string, long> next;
    for (const std::string& l : mine) {
      auto sp = l.find(' ');
      ASSERT_NE(sp, std::string::npos) << l;
      const std::string t = l.substr(0, sp);
      ASSERT_EQ(l.substr(sp + 1), std::to_string(next[t])) << "thread " << t << " out of order: " << l;
      ++next[t];
    }
    // Every line of every thread. (python3's own output is no line-by-line reference:
    // its print writes the text and the newline separately, and threads glue lines.)
    EXPECT_EQ(mine.size(), 400000u);
    for (const auto& [t, n] : next) EXPECT_EQ(n, 100000) << "thread " << t;
    EXPECT_EQ(next.size(), 4u);
    EXPECT_EQ(got.err, ref.err) << describe(got.err) << "\nvs python3: " << describe(ref.err);
  } else {
    EXPECT_EQ(got.out, ref.out) << describe(got.out) << "\nvs python3: " << describe(ref.out);
    EXPECT_EQ(got.err, ref.err) << describe(got.err) << "\nvs python3: " << describe(ref.err);
  }

  if (w.compare == Compare::kInterleaved) {
    // python3 unbuffered into one pipe: the order in which the writes happened.
    ProcessResult merged = run_process({kPython, path}, {{"PYTHONUNBUFFERED", "1"}}, true);
    EXPECT_EQ(got.both, merged.out) << describe(got.both) << "\nvs python3 -u 2>&1: " << describe(merged.out);
  }

  if (w.check_rss) {
    // The engine's peak RSS may grow by what the program itself allocates (w3's
    // 100 MB str), the ring and 64 MiB of slack; an engine that buffered the
    // output (116 MB for w2, another 100 MB for w3) instead of blocking the writer
    // on the full ring would exceed it, since the reader paused for a second.
    const uint64_t growth = rss_after > rss_before ? rss_after - rss_before : 0;
    EXPECT_LT(growth, w.rss_allowance + kRingCapacity + 64 * kMiB)
        << "peak RSS grew by " << growth / kMiB << " MiB (from " << rss_before / kMiB << " MiB)";
    RecordProperty("engine_peak_rss_growth_mib", static_cast<int>(growth / kMiB));
  }

  if (std::string(w.file) == "w10_realtime.py") {
    // "first" is read about a second before "second": not held until the end.
    EXPECT_GT(last_output - first_output, std::chrono::milliseconds(800));
  }
}

INSTANTIATE_TEST_SUITE_P(
    Workloads, WorkloadTest,
    ::testing::Values(Workload{"w1_seed_lines.py"},
                      Workload{"w2_million_lines.py", Compare::kExact, 0, true},
                      Workload{"w3_big_write.py", Compare::kExact, 100'000'049, true},
                      Workload{"w4_tiny_writes.py"}, Workload{"w5_interleaved.py", Compare::kInterleaved},
                      Workload{"w6_threads.py", Compare::kThreads}, Workload{"w7_unicode.py"},
                      Workload{"w8_fd_level.py"}, Workload{"w9_exception.py"},
                      Workload{"w10_realtime.py"}),
    [](const ::testing::TestParamInfo<Workload>& p) {
      std::string n = p.param.file;
      return n.substr(0, n.find('_'));
    });

// The seed scenario in words: 10,000 lines of ~100 bytes, every line, in order.
TEST(SeedScenario, TenThousandLinesInOrder) {
  TempDir dir;
  EngineProcess engine(engine_binary(), dir.file("engine.sock"));
  shmrepl_client_t* client = connect_to(engine.socket());
  {
    Session s(client);
    std::string text;
    shmrepl_execution_t* e = s.execute(read_file(workload("w1_seed_lines.py")));
    shmrepl_reader_t* reader = nullptr;
    ASSERT_EQ(shmrepl_execution_reader(e, nullptr, &reader), SHMREPL_OK);
    Collected c = collect(reader, shmrepl_execution_id(e), false, std::chrono::seconds(120),
                          [&](const shmrepl_record_t& r) {
                            if (r.kind == SHMREPL_RECORD_OUTPUT)
                              text.append(reinterpret_cast<const char*>(r.data), r.data_len);
                          });
    shmrepl_reader_close(reader);
    shmrepl_execution_close(e);
    const std::vector<std::string> lines = lines_of(text);
    ASSERT_EQ(lines.size(), 10000u);
    for (int i = 0; i < 10000; ++i)
      ASSERT_EQ(lines[static_cast<std::size_t>(i)], "Line " + std::to_string(i) + ": " + std::string(100, 'x'));
    EXPECT_EQ(c.finished, 1);
  }
  shmrepl_client_close(client);
}
