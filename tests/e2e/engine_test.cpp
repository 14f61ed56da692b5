// shmrepl-engine (the real engine core) through the public C ABI: output in real
// time, concurrent sessions, cancel, a killed engine, bad control messages, and
// what a client leaves behind.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "harness.hpp"

using namespace shmrepl::test;
using Clock = std::chrono::steady_clock;
namespace control = shmrepl::control;

namespace {

class EngineTest : public ::testing::Test {
 protected:
  TempDir dir;
  std::string socket = dir.file("engine.sock");
  EngineProcess engine{engine_binary(), socket};
};

// Python source: waits (polling) for `path` to exist, at most `seconds`; exits 3
// on timeout so a test that never creates it fails instead of hanging.
// `indent` prefixes every line (to place it in a function body).
std::string wait_for_file(const std::string& path, int seconds = 30, const std::string& indent = "") {
  const std::string i = indent;
  return i + "import os, sys, time\n" +
         i + "_deadline = time.monotonic() + " + std::to_string(seconds) + "\n" +
         i + "while not os.path.exists('" + path + "'):\n" +
         i + "    if time.monotonic() > _deadline:\n" +
         i + "        print('timed out waiting for " + path + "', file=sys.stderr)\n" +
         i + "        sys.exit(3)\n" +
         i + "    time.sleep(0.005)\n";
}

// Reads until an OUTPUT record contains `needle`; returns false on timeout/end.
bool read_until(shmrepl_reader_t* reader, const std::string& needle, std::string* seen,
                std::chrono::seconds timeout = std::chrono::seconds(30)) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    shmrepl_record_t r;
    shmrepl_status_t st = shmrepl_reader_next(reader, 100'000'000, &r);
    if (st == SHMREPL_E_TIMEOUT) continue;
    if (st != SHMREPL_OK) return false;
    if (r.kind == SHMREPL_RECORD_OUTPUT) seen->append(reinterpret_cast<const char*>(r.data), r.data_len);
    shmrepl_reader_release(reader, 1);
    if (seen->find(needle) != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_F(EngineTest, HelloReportsTheEngine) {
  Client c(socket);
  EXPECT_EQ(shmrepl_client_engine_pid(c.c), static_cast<uint32_t>(engine.pid()));
}

// Real time without timing: the program prints a line (no flush) and then waits
// for a file that the test creates only after it has read that line from the
// ring. An engine that held output back until the end would never deliver the
// line, the program would time out and exit 3, and the test fail.
TEST_F(EngineTest, OutputArrivesWhileTheProgramRuns) {
  Client c(socket);
  Session s(c.c);
  const std::string flag = dir.file("go");
  const std::string code = "print('line before waiting')\n" + wait_for_file(flag) + "print('done')\n";
  shmrepl_execution_t* e = s.execute(code);
  shmrepl_reader_t* reader = nullptr;
  ASSERT_EQ(shmrepl_execution_reader(e, nullptr, &reader), SHMREPL_OK);
  std::string seen;
  ASSERT_TRUE(read_until(reader, "line before waiting\n", &seen)) << seen;
  write_file(flag, "");
  Collected rest = collect(reader, shmrepl_execution_id(e));
  EXPECT_EQ(rest.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK)) << rest.err.head;
  EXPECT_EQ(rest.out.head, "done\n");
  shmrepl_reader_close(reader);
  shmrepl_execution_close(e);
}

// Two sessions at once, each waiting for the other's marker: they can only both
// finish if they really run concurrently; each ring holds only its own output.
TEST_F(EngineTest, ConcurrentSessionsGetOnlyTheirOwnOutput) {
  Client c(socket);
  Session a(c.c), b(c.c);
  auto program = [&](const std::string& me, const std::string& other) {
    return "import sys\n"
           "for i in range(2000):\n"
           "    print('" + me + "', i)\n"
           "    if i % 500 == 0: print('" + me + " err', i, file=sys.stderr)\n"
           "open('" + dir.file(me) + "', 'w').close()\n" +
           wait_for_file(dir.file(other)) +
           "for i in range(2000, 4000):\n"
           "    print('" + me + "', i)\n";
  };
  shmrepl_execution_t* ea = a.execute(program("A", "B"));
  shmrepl_execution_t* eb = b.execute(program("B", "A"));
  shmrepl_reader_t *ra = nullptr, *rb = nullptr;
  ASSERT_EQ(shmrepl_execution_reader(ea, nullptr, &ra), SHMREPL_OK);
  ASSERT_EQ(shmrepl_execution_reader(eb, nullptr, &rb), SHMREPL_OK);
  Collected ca, cb;
  std::thread ta([&] { ca = collect(ra, shmrepl_execution_id(ea)); });
  std::thread tb([&] { cb = collect(rb, shmrepl_execution_id(eb)); });
  ta.join();
  tb.join();
  for (auto* x : {&ca, &cb}) {
    const std::string me = x == &ca ? "A" : "B";
    SCOPED_TRACE(me);
    EXPECT_EQ(x->finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK)) << x->err.head;
    EXPECT_TRUE(x->seq_gap_free && x->ids_match) << x->first_problem;
    std::string expected, expected_err;
    for (int i = 0; i < 4000; ++i) {
      expected += me + " " + std::to_string(i) + "\n";
      if (i < 2000 && i % 500 == 0) expected_err += me + " err " + std::to_string(i) + "\n";
    }
    EXPECT_EQ(x->out.head, expected);
    EXPECT_EQ(x->err.head, expected_err);
  }
  EXPECT_NE(shmrepl_execution_id(ea), shmrepl_execution_id(eb));
  shmrepl_reader_close(ra);
  shmrepl_reader_close(rb);
  shmrepl_execution_close(ea);
  shmrepl_execution_close(eb);
}

// Cancel through the client API: a busy loop and a long sleep; the session then
// runs the next execution (and keeps its namespace).
TEST_F(EngineTest, CancelBusyLoopAndSleepThenRunAgain) {
  Client c(socket);
  Session s(c.c);
  Collected setup = execute_and_collect(s, "kept = 42\n");
  ASSERT_EQ(setup.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  for (const std::string body : {"while True: pass\n", "import time\ntime.sleep(1000)\n"}) {
    SCOPED_TRACE(body);
    shmrepl_execution_t* e = s.execute("print('running')\n" + body);
    shmrepl_reader_t* reader = nullptr;
    ASSERT_EQ(shmrepl_execution_reader(e, nullptr, &reader), SHMREPL_OK);
    std::string seen;
    ASSERT_TRUE(read_until(reader, "running\n", &seen));
    const auto t0 = Clock::now();
    EXPECT_EQ(shmrepl_execution_cancel(e), SHMREPL_OK);
    Collected r = collect(reader, shmrepl_execution_id(e), false, std::chrono::seconds(30));
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
    EXPECT_EQ(r.end, SHMREPL_E_EOF);
    EXPECT_EQ(r.finished, 1);
    EXPECT_EQ(r.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_CANCELLED));
    EXPECT_NE(r.err.head.find("KeyboardInterrupt"), std::string::npos) << r.err.head;
    shmrepl_reader_close(reader);
    shmrepl_execution_close(e);
    Collected next = execute_and_collect(s, "print('after', kept)\n");
    EXPECT_EQ(next.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK)) << next.err.head;
    EXPECT_EQ(next.out.head, "after 42\n");
  }
}

// The engine killed during an execution: the reader (producer died) and the
// client (socket closed) both get a clear status within a second.
TEST_F(EngineTest, KilledEngineGivesClearStatusesWithinASecond) {
  Client c(socket);
  Session s(c.c);
  shmrepl_execution_t* e = s.execute("import time\nfor i in range(100000):\n    print(i)\n    time.sleep(0.01)\n");
  shmrepl_reader_t* reader = nullptr;
  ASSERT_EQ(shmrepl_execution_reader(e, nullptr, &reader), SHMREPL_OK);
  std::string seen;
  ASSERT_TRUE(read_until(reader, "2\n", &seen));
  engine.kill9();
  const auto t0 = Clock::now();
  shmrepl_status_t st;
  uint32_t finish_status = 99;
  do {
    shmrepl_record_t r;
    st = shmrepl_reader_next(reader, 10'000'000'000, &r);
    if (st == SHMREPL_OK && r.kind == SHMREPL_RECORD_FINISHED) finish_status = r.finish_status;
    if (st == SHMREPL_OK) shmrepl_reader_release(reader, 1);
  } while (st == SHMREPL_OK);
  // The worker dies with its engine: no FINISHED (nobody is left to write it).
  EXPECT_EQ(st, SHMREPL_E_PRODUCER_DIED) << status_text(st);
  EXPECT_EQ(finish_status, 99u);
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(1));
  const auto t1 = Clock::now();
  st = shmrepl_execution_cancel(e);
  // The session's worker died with its engine.
  EXPECT_EQ(st, SHMREPL_E_SESSION_DIED) << status_text(st);
  uint64_t sid = 0;
  EXPECT_EQ(shmrepl_session_open(c.c, &sid), SHMREPL_E_ENGINE_DIED);
  EXPECT_LT(Clock::now() - t1, std::chrono::seconds(1));
  shmrepl_reader_close(reader);
  unlink_ring(shmrepl_execution_ring_name(e));  // its engine cannot any more
  unlink_ring(shmrepl_session_background_ring(c.c, s.id));
  shmrepl_execution_close(e);
}

TEST_F(EngineTest, BadControlMessagesDoNotStopTheEngine) {
  Client good(socket);  // connected before, must survive the others
  {
    Raw r(socket);
    std::vector<uint8_t> junk(132, 0xC3);
    junk[0] = 128;
    junk[1] = junk[2] = junk[3] = 0;
    ASSERT_TRUE(r.send_bytes(junk.data(), junk.size()));
    EXPECT_EQ(r.reply(), SHMREPL_E_PROTOCOL);
    EXPECT_TRUE(r.closed_by_peer());
  }
  {
    Raw r(socket);
    const uint32_t len = 0xffffffffu;
    ASSERT_TRUE(r.send_bytes(&len, 4));
    EXPECT_EQ(r.reply(), SHMREPL_E_TOO_LARGE);
    EXPECT_TRUE(r.closed_by_peer());
  }
  {
    Raw r(socket);
    ASSERT_TRUE(r.send(control::execute(5, {1, "print(1)", "", "", {}, true, 0})));
    EXPECT_EQ(r.reply(), SHMREPL_E_PROTOCOL);
    ASSERT_TRUE(r.send(control::hello(6, SHMREPL_ABI_VERSION, 0)));
    EXPECT_EQ(r.reply(), SHMREPL_OK);
    // Executions go to a session's worker: on the engine's socket no session has one.
    ASSERT_TRUE(r.send(control::execute(7, {123456, "print(1)", "", "", {}, true, 0})));
    EXPECT_EQ(r.reply(), SHMREPL_E_NOT_FOUND);
    ASSERT_TRUE(r.send(control::close_session(8, 123456)));
    EXPECT_EQ(r.reply(), SHMREPL_E_NOT_FOUND);
  }
  Session s(good.c);
  Collected r = execute_and_collect(s, "print('still serving')\n");
  EXPECT_EQ(r.out.head, "still serving\n");
  Client late(socket);
  Session s2(late.c);
  EXPECT_EQ(execute_and_collect(s2, "print(2 + 2)\n").out.head, "4\n");
}

// A client that goes away without cleaning up: the engine closes its session,
// which cancels what runs and unlinks the rings.
TEST_F(EngineTest, DisconnectCancelsAndUnlinks) {
  shmrepl_client_t* c = connect_to(socket);
  uint64_t sid = 0;
  ASSERT_EQ(shmrepl_session_open(c, &sid), SHMREPL_OK);
  shmrepl_execute_options_t o{};
  o.struct_size = sizeof o;
  o.session_id = sid;
  const std::string code = "print('up', flush=True)\nimport time\ntime.sleep(1000)\n";
  o.code = code.c_str();
  o.code_len = code.size();
  shmrepl_execution_t* e = nullptr;
  ASSERT_EQ(shmrepl_execute(c, &o, &e), SHMREPL_OK);
  const std::string ring = shmrepl_execution_ring_name(e);
  shmrepl_reader_t* reader = nullptr;
  ASSERT_EQ(shmrepl_execution_reader(e, nullptr, &reader), SHMREPL_OK);
  std::string seen;
  ASSERT_TRUE(read_until(reader, "up\n", &seen));
  shmrepl_client_close(c);
  Collected r = collect(reader, shmrepl_execution_id(e), false, std::chrono::seconds(30));
  EXPECT_EQ(r.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_CANCELLED));
  shmrepl_reader_close(reader);
  shmrepl_execution_close(e);
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (ring_exists(ring) && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_FALSE(ring_exists(ring));
}

// Shutdown: executions are cancelled, rings and the socket removed, exit 0.
TEST_F(EngineTest, ShutdownRemovesRingsAndSocket) {
  Client c(socket);
  Session s(c.c);
  shmrepl_execution_t* e = s.execute("import time\ntime.sleep(1000)\n");
  const std::string ring = shmrepl_execution_ring_name(e);
  const std::string bg = shmrepl_session_background_ring(c.c, s.id);
  EXPECT_TRUE(ring_exists(ring));
  EXPECT_EQ(shmrepl_engine_shutdown(c.c), SHMREPL_OK);
  EXPECT_EQ(engine.wait(std::chrono::seconds(20)), 0);
  struct stat st {};
  EXPECT_NE(lstat(socket.c_str(), &st), 0);
  EXPECT_FALSE(ring_exists(ring));
  if (!bg.empty()) {
    EXPECT_FALSE(ring_exists(bg));
  }
  shmrepl_execution_close(e);
}

// The session's background ring gets what a thread writes after its execution ended.
TEST_F(EngineTest, BackgroundRingOfASession) {
  Client c(socket);
  Session s(c.c);
  const std::string bg = shmrepl_session_background_ring(c.c, s.id);
  if (bg.empty()) GTEST_SKIP() << "the engine core has no background ring";
  shmrepl_reader_t* reader = nullptr;
  ASSERT_EQ(shmrepl_reader_open(bg.c_str(), nullptr, &reader), SHMREPL_OK);
  const std::string flag = dir.file("late");
  const std::string code = "import threading\n"
                           "def late():\n" + wait_for_file(flag, 30, "    ") +
                           "    print('from the thread')\n"
                           "threading.Thread(target=late).start()\n"
                           "print('main done')\n";
  // Interactive (not a program, which waits for its threads at its end as python3).
  shmrepl_execution_t* e = s.execute(code, false);
  const uint64_t id = shmrepl_execution_id(e);
  shmrepl_reader_t* own = nullptr;
  ASSERT_EQ(shmrepl_execution_reader(e, nullptr, &own), SHMREPL_OK);
  Collected first = collect(own, id);
  EXPECT_EQ(first.out.head, "main done\n");
  shmrepl_reader_close(own);
  write_file(flag, "");
  shmrepl_record_t r;
  std::string seen;
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (seen.empty() && Clock::now() < deadline) {
    if (shmrepl_reader_next(reader, 100'000'000, &r) != SHMREPL_OK) continue;
    if (r.kind == SHMREPL_RECORD_OUTPUT) {
      seen.assign(reinterpret_cast<const char*>(r.data), r.data_len);
      EXPECT_EQ(r.execution_id, id);
    }
    shmrepl_reader_release(reader, 1);
  }
  EXPECT_EQ(seen, "from the thread\n");
  shmrepl_reader_close(reader);
  shmrepl_execution_close(e);
}
