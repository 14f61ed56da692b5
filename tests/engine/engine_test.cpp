// Engine core behaviour: records, results, errors, exits, cancel, threads, rings.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "support.hpp"

using namespace shmrepl;
using shmrepl::test::Collected;
using shmrepl::test::run;

namespace {

std::unique_ptr<engine::Engine> start_engine(uint64_t ring_capacity = 1 << 20) {
  engine::EngineOptions o;
  o.capture_fds = false;
  o.ring_capacity = ring_capacity;
  return engine::Engine::start(o);
}

void expect_well_formed(const Collected& c) {
  EXPECT_EQ(c.end_status, SHMREPL_E_EOF);
  EXPECT_TRUE(c.seq_ok);
  EXPECT_TRUE(c.exec_id_ok);
  EXPECT_TRUE(c.split_ok);
  EXPECT_EQ(c.finished_count, 1u);
  ASSERT_FALSE(c.records.empty());
  EXPECT_EQ(c.records.front().kind, SHMREPL_RECORD_STARTED);
  EXPECT_EQ(c.records.back().kind, SHMREPL_RECORD_FINISHED);
}

}  // namespace

TEST(Engine, PrintGoesToTheRingInOrder) {
  auto e = start_engine();
  uint64_t s = e->open_session();
  test::RunOptions o;
  o.read.keep_outputs = true;
  Collected c = run(*e, s, "import sys\nprint('hello')\nsys.stderr.write('err\\n')\nprint('a', 1, sep='-', end='!')\n", o);
  expect_well_formed(c);
  EXPECT_EQ(c.out, "hello\na-1!");
  EXPECT_EQ(c.err, "err\n");
  EXPECT_EQ(c.merged, "hello\nerr\na-1!");
  ASSERT_EQ(c.records.size(), 5u);
  EXPECT_EQ(c.records[1].data, "hello\n");  // one record per print
  EXPECT_EQ(c.records[2].stream, SHMREPL_STREAM_STDERR);
  EXPECT_EQ(c.finished()->finish_status, SHMREPL_FINISH_OK);
  EXPECT_EQ(c.records.front().seq, 0u);
}

TEST(Engine, StartedCarriesSessionAndClientId) {
  auto e = start_engine();
  uint64_t s = e->open_session();
  engine::ExecuteRequest req;
  req.session_id = s;
  req.code = "pass";
  req.client_execution_id = "client-42";
  auto a = e->execute(req);
  EXPECT_GE(a.execution_id, 1u);
  Collected c = test::read_ring(a.ring_name);
  expect_well_formed(c);
  EXPECT_EQ(c.records.front().data, "client-42");
  e->wait(a.execution_id);
  e->release(a.execution_id);
}

TEST(Engine, CancelBusyLoopThenSessionStillWorks) {
  auto e = start_engine();
  uint64_t s = e->open_session();
  engine::ExecuteRequest req;
  req.session_id = s;
  req.code = "x = 1\nwhile True:\n    pass\n";
  auto a = e->execute(req);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(e->cancel(a.execution_id));
  Collected c = test::read_ring(a.ring_name);
  expect_well_formed(c);
  EXPECT_EQ(c.finished()->finish_status, SHMREPL_FINISH_CANCELLED);
  EXPECT_FALSE(e->cancel(a.execution_id));
  e->release(a.execution_id);
  test::RunOptions o;
  Collected next = run(*e, s, "print(x + 1)", o);
  expect_well_formed(next);
  EXPECT_EQ(next.out, "2\n");
}

TEST(Engine, CancelSleep) {
  auto e = start_engine();
  uint64_t s = e->open_session();
  engine::ExecuteRequest req;
  req.session_id = s;
  req.code = "import time\nprint('before')\ntime.sleep(1000)\n";
  auto a = e->execute(req);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_TRUE(e->cancel(a.execution_id));
  Collected c = test::read_ring(a.ring_name);
  auto dt = std::chrono::steady_clock::now() - t0;
  EXPECT_LT(dt, std::chrono::seconds(5));
  expect_well_formed(c);
  EXPECT_EQ(c.finished()->finish_status, SHMREPL_FINISH_CANCELLED);
  EXPECT_EQ(c.out, "before\n");
  e->release(a.execution_id);
  Collected next = run(*e, s, "print('next')");
  expect_well_formed(next);
  EXPECT_EQ(next.out, "next\n");
}
