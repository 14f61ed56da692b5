// Soak (issue #9): 100 sessions stream for 60 s (both scaled by SHMREPL_TEST_SCALE)
// while one program per second crashes its session (segfault, os._exit, a timeout,
// a memory cap). Every line of every streaming session must arrive, in order and
// whole; at the end the engine's descriptors, threads, memory and rings are back to
// about where they started.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "harness.hpp"

using namespace shmrepl::test;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

namespace {

bool wait_until(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!cond()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

std::string line_of(int i) { return std::to_string(i) + " " + std::string(60, 'x') + "\n"; }

// Prints line_of(0), line_of(1)... for `seconds`, a burst of 10 lines every 50 ms.
std::string streamer(double seconds) {
  return "import time\n"
         "end = time.monotonic() + " +
         std::to_string(seconds) +
         "\n"
         "i = 0\n"
         "while time.monotonic() < end:\n"
         "    for _ in range(10):\n"
         "        print(i, 'x' * 60)\n"
         "        i += 1\n"
         "    time.sleep(0.05)\n";
}

struct Crash {
  const char* code;
  int64_t timeout_ns;
  uint64_t memory_limit;
  uint32_t finish;  // the FINISHED status it must end with
};

const Crash kCrashes[] = {
    {"import ctypes\nctypes.string_at(0)\n", 0, 0, SHMREPL_FINISH_ABORTED},
    {"import os\nos._exit(3)\n", 0, 0, SHMREPL_FINISH_ABORTED},
    {"import time\ntime.sleep(60)\n", 200'000'000, 0, SHMREPL_FINISH_TIMEOUT},
    {"x = bytearray(512 << 20)\n", 0, 64u << 20, SHMREPL_FINISH_MEMORY_LIMIT},
};

}  // namespace

TEST(Soak, HundredStreamingSessionsWhileProgramsCrash) {
  rlimit no_core{0, 0};
  setrlimit(RLIMIT_CORE, &no_core);
  TempDir dir;
  const std::string socket = dir.file("engine.sock");
  EngineProcess engine(engine_binary(), socket);
  const pid_t pid = engine.pid();
  const std::string fd_dir = "/proc/" + std::to_string(pid) + "/fd";
  const std::string task_dir = "/proc/" + std::to_string(pid) + "/task";
  const int sessions = std::max(4, static_cast<int>(100 * std::min(1.0, test_scale())));
  const double seconds = std::max(5.0, 60 * test_scale());

  shmrepl_client_t* client = connect_to(socket);
  {
    Session warm(client);
    execute_and_collect(warm, "print('warm')\n");
  }
  std::this_thread::sleep_for(1500ms);  // control threads that grew have idled out
  const std::size_t fds0 = count_dir(fd_dir), tasks0 = count_dir(task_dir);
  const uint64_t rss0 = status_kib(pid, "VmRSS");

  std::vector<std::string> rings;  // every ring the test saw: none may remain
  std::vector<std::unique_ptr<Session>> streams;
  std::vector<shmrepl_execution_t*> execs;
  for (int i = 0; i < sessions; ++i) {
    streams.push_back(std::make_unique<Session>(client));
    execs.push_back(streams.back()->execute(streamer(seconds)));
    rings.push_back(shmrepl_execution_ring_name(execs.back()));
  }
  struct Result {
    Collected c;
    int lines = 0;
    std::string bad;
  };
  std::vector<Result> results(static_cast<std::size_t>(sessions));
  std::vector<std::thread> readers;
  for (int i = 0; i < sessions; ++i) {
    readers.emplace_back([&, i] {
      Result& r = results[static_cast<std::size_t>(i)];
      shmrepl_reader_t* reader = nullptr;
      if (shmrepl_execution_reader(execs[static_cast<std::size_t>(i)], nullptr, &reader) !=
          SHMREPL_OK) {
        r.bad = "no reader: " + std::string(shmrepl_last_error());
        return;
      }
      r.c = collect(reader, shmrepl_execution_id(execs[static_cast<std::size_t>(i)]), false,
                    std::chrono::seconds(static_cast<int>(seconds) + 120),
                    [&](const shmrepl_record_t& rec) {
                      if (rec.kind != SHMREPL_RECORD_OUTPUT || !r.bad.empty()) return;
                      const std::string got(reinterpret_cast<const char*>(rec.data), rec.data_len);
                      if (got != line_of(r.lines))
                        r.bad = "line " + std::to_string(r.lines) + " is " + got;
                      ++r.lines;
                    });
      shmrepl_reader_close(reader);
    });
  }

  // One crash a second, each in a session of its own, while the others stream.
  int crashes = 0;
  std::string crash_problem;
  const auto end =
      Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000)) - 1s;
  for (auto next = Clock::now(); Clock::now() < end; next += 1s) {
    std::this_thread::sleep_until(next);
    // Sanitizers reserve far more than any memory limit: no memory cap there.
    const Crash& k = kCrashes[crashes % (kSanitized ? 3 : 4)];
    Session s(client);
    rings.push_back(shmrepl_session_background_ring(client, s.id));
    shmrepl_execute_options_t o{};
    o.struct_size = sizeof o;
    o.session_id = s.id;
    o.code = k.code;
    o.code_len = std::strlen(k.code);
    o.script = 1;
    o.timeout_ns = k.timeout_ns;
    o.memory_limit = k.memory_limit;
    shmrepl_execution_t* e = nullptr;
    ASSERT_EQ(shmrepl_execute(client, &o, &e), SHMREPL_OK) << shmrepl_last_error();
    rings.push_back(shmrepl_execution_ring_name(e));
    shmrepl_reader_t* reader = nullptr;
    ASSERT_EQ(shmrepl_execution_reader(e, nullptr, &reader), SHMREPL_OK);
    Collected c = collect(reader, shmrepl_execution_id(e), false, 60s);
    shmrepl_reader_close(reader);
    shmrepl_execution_close(e);
    if (crash_problem.empty() &&
        (c.end != SHMREPL_E_EOF || c.finished != 1 || c.finish_status != k.finish))
      crash_problem = std::string(k.code) + ": end " + std::to_string(c.end) + ", finished " +
                      std::to_string(c.finished) + ", status " + std::to_string(c.finish_status);
    ++crashes;
  }
  for (auto& t : readers) t.join();
  EXPECT_EQ(crash_problem, "");
  EXPECT_GE(crashes, static_cast<int>(seconds) / 2);

  int min_lines = 1 << 30;
  for (int i = 0; i < sessions; ++i) {
    const Result& r = results[static_cast<std::size_t>(i)];
    EXPECT_EQ(r.bad, "") << "session " << i;
    EXPECT_EQ(r.c.end, SHMREPL_E_EOF) << "session " << i << ": " << r.c.first_problem;
    EXPECT_TRUE(r.c.seq_gap_free) << "session " << i;
    EXPECT_EQ(r.c.finished, 1) << "session " << i;
    EXPECT_EQ(r.c.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK)) << "session " << i;
    EXPECT_EQ(r.c.out.size,
              [&] {
                uint64_t n = 0;
                for (int k = 0; k < r.lines; ++k) n += line_of(k).size();
                return n;
              }())
        << "session " << i;
    min_lines = std::min(min_lines, r.lines);
  }
  EXPECT_GE(min_lines, 10) << "a session streamed almost nothing";

  for (auto* e : execs) shmrepl_execution_close(e);
  for (auto& s : streams) rings.push_back(shmrepl_session_background_ring(client, s->id));
  streams.clear();
  shmrepl_client_close(client);

  // Back to about where it started: the engine's descriptors, threads, memory, rings.
  EXPECT_TRUE(wait_until([&] { return count_dir(fd_dir) <= fds0 + 2; }, 15s))
      << count_dir(fd_dir) << " descriptors, " << fds0 << " at the start";
  EXPECT_TRUE(wait_until([&] { return count_dir(task_dir) <= tasks0 + 1; }, 15s))
      << count_dir(task_dir) << " threads, " << tasks0 << " at the start";
  const uint64_t rss1 = status_kib(pid, "VmRSS");
  if (!kSanitized) {  // sanitizers keep freed memory in quarantine
    EXPECT_LT(rss1, rss0 + 30 * 1024) << "VmRSS " << rss0 << " -> " << rss1 << " KiB";
  }
  std::vector<std::string> left;
  EXPECT_TRUE(wait_until(
      [&] {
        left.clear();
        for (const std::string& r : rings)
          if (!r.empty() && ring_exists(r)) left.push_back(r);
        return left.empty();
      },
      15s))
      << left.size() << " rings left, e.g. " << (left.empty() ? "" : left[0]);
}
