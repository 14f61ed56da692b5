// The client side of the C ABI and the engine's server, over the fake engine (no
// Python): connect, auto-start and its race, sessions, cancel, bad control
// messages, shutdown, and an engine that dies.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <thread>

#include "control.hpp"
#include "harness.hpp"

using namespace shmrepl::test;
namespace control = shmrepl::control;
namespace ctl = shmrepl::ctl;
using Clock = std::chrono::steady_clock;

namespace {

// Engines that clients start detach from them; as a subreaper this process
// inherits them, so they can be waited for.
const int g_subreaper = prctl(PR_SET_CHILD_SUBREAPER, 1);

class FakeEngineTest : public ::testing::Test {
 protected:
  TempDir dir;
  std::string socket = dir.file("engine.sock");
};

// The engine still serves a well-behaved client.
void expect_serving(const std::string& socket) {
  Client c(socket);
  Session s(c.c);
  Collected r = execute_and_collect(s, "out still here\n");
  EXPECT_EQ(r.end, SHMREPL_E_EOF);
  EXPECT_EQ(r.out.head, "still here\n");
}

}  // namespace

TEST_F(FakeEngineTest, ExecuteReadsEveryRecord) {
  EngineProcess engine(fake_engine_binary(), socket);
  Client c(socket);
  EXPECT_EQ(shmrepl_client_engine_pid(c.c), static_cast<uint32_t>(engine.pid()));
  Session s(c.c);
  Collected r = execute_and_collect(s, "out one\nerr two\nout three\nexit 3\n");
  EXPECT_EQ(r.end, SHMREPL_E_EOF);
  EXPECT_TRUE(r.seq_gap_free) << r.first_problem;
  EXPECT_TRUE(r.ids_match) << r.first_problem;
  EXPECT_EQ(r.finished, 1);
  EXPECT_EQ(r.out.head, "one\nthree\n");
  EXPECT_EQ(r.err.head, "two\n");
  EXPECT_EQ(r.both.head, "one\ntwo\nthree\n");
  EXPECT_EQ(r.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_EXITED));
  EXPECT_EQ(r.exit_code, 3);
}

TEST_F(FakeEngineTest, CancelAndReleaseAndUnknownIds) {
  EngineProcess engine(fake_engine_binary(), socket);
  Client c(socket);
  Session s(c.c);
  shmrepl_execution_t* e = s.execute("out started\nhang\n");
  shmrepl_reader_t* reader = nullptr;
  ASSERT_EQ(shmrepl_execution_reader(e, nullptr, &reader), SHMREPL_OK);
  EXPECT_EQ(shmrepl_reader_execution_id(reader), shmrepl_execution_id(e));
  EXPECT_EQ(shmrepl_execution_cancel(e), SHMREPL_OK);
  Collected r = collect(reader, shmrepl_execution_id(e));
  EXPECT_EQ(r.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_CANCELLED));
  shmrepl_reader_close(reader);
  EXPECT_EQ(shmrepl_execution_cancel(e), SHMREPL_OK);  // finished: nothing to do
  shmrepl_execution_close(e);
  EXPECT_EQ(shmrepl_session_close(c.c, 999999), SHMREPL_E_NOT_FOUND);
  EXPECT_NE(std::string(shmrepl_last_error()).find("unknown session"), std::string::npos);
}

TEST_F(FakeEngineTest, ArgumentChecks) {
  EngineProcess engine(fake_engine_binary(), socket);
  Client c(socket);
  shmrepl_execution_t* e = nullptr;
  EXPECT_EQ(shmrepl_execute(c.c, nullptr, &e), SHMREPL_E_INVALID);
  shmrepl_execute_options_t o{};
  o.struct_size = 4;
  EXPECT_EQ(shmrepl_execute(c.c, &o, &e), SHMREPL_E_INVALID);
  o.struct_size = sizeof o;
  o.session_id = 12345;
  EXPECT_EQ(shmrepl_execute(c.c, &o, &e), SHMREPL_E_NOT_FOUND);
  EXPECT_EQ(e, nullptr);
  std::string huge(control::kMaxMessage + 1, 'x');
  o.code = huge.data();
  o.code_len = huge.size();
  EXPECT_EQ(shmrepl_execute(c.c, &o, &e), SHMREPL_E_TOO_LARGE);
  // The connection is still fine after refused requests.
  uint64_t sid = 0;
  EXPECT_EQ(shmrepl_session_open(c.c, &sid), SHMREPL_OK);
  shmrepl_client_options_t co{};
  co.struct_size = 3;
  shmrepl_client_t* other = nullptr;
  EXPECT_EQ(shmrepl_client_connect(&co, &other), SHMREPL_E_INVALID);
  shmrepl_client_close(nullptr);
  shmrepl_execution_close(nullptr);
}

TEST_F(FakeEngineTest, NoEngineAndNoAutostart) {
  shmrepl_client_options_t o{};
  o.struct_size = sizeof o;
  o.autostart = SHMREPL_AUTOSTART_OFF;
  o.socket_path = socket.c_str();
  shmrepl_client_t* c = nullptr;
  EXPECT_EQ(shmrepl_client_connect(&o, &c), SHMREPL_E_CONNECT);
  EXPECT_EQ(c, nullptr);
  o.autostart = SHMREPL_AUTOSTART_ON;
  o.engine_path = "/nonexistent/shmrepl-engine";
  EXPECT_EQ(shmrepl_client_connect(&o, &c), SHMREPL_E_CONNECT);
  EXPECT_NE(std::string(shmrepl_last_error()).find("cannot start"), std::string::npos)
      << shmrepl_last_error();
}

TEST_F(FakeEngineTest, AutostartRaceEndsWithOneEngine) {
  constexpr int kClients = 4;
  std::atomic<int> ok{0};
  std::vector<uint32_t> pids(kClients);
  std::vector<shmrepl_client_t*> clients(kClients, nullptr);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i)
    threads.emplace_back([&, i] {
      shmrepl_client_options_t o{};
      o.struct_size = sizeof o;  // autostart: default (on)
      o.socket_path = socket.c_str();
      o.engine_path = fake_engine_binary();
      if (shmrepl_client_connect(&o, &clients[i]) == SHMREPL_OK) {
        pids[i] = shmrepl_client_engine_pid(clients[i]);
        ++ok;
      }
    });
  for (auto& t : threads) t.join();
  ASSERT_EQ(ok.load(), kClients) << read_file(socket + ".log");
  const auto winner = static_cast<pid_t>(pids[0]);
  for (int i = 1; i < kClients; ++i) EXPECT_EQ(pids[i], pids[0]);
  // The started engine runs detached, in a session of its own (not ours).
  EXPECT_NE(getsid(winner), getsid(0));
  // Engines that lost the race leave without serving (as subreaper we see them).
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (children() != std::vector<pid_t>{winner} && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_EQ(children(), std::vector<pid_t>{winner});
  {
    Session s(clients[0]);
    Collected r = execute_and_collect(s, "out autostarted\n");
    EXPECT_EQ(r.out.head, "autostarted\n");
  }
  EXPECT_EQ(shmrepl_engine_shutdown(clients[0]), SHMREPL_OK);
  for (auto* c : clients) shmrepl_client_close(c);
  deadline = Clock::now() + std::chrono::seconds(10);
  while (!process_gone(winner) && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(process_gone(winner));
  struct stat st {};
  EXPECT_NE(lstat(socket.c_str(), &st), 0) << "the socket is removed";
}

TEST_F(FakeEngineTest, SecondEngineOnTheSameSocketLeaves) {
  EngineProcess engine(fake_engine_binary(), socket);
  pid_t second = spawn({fake_engine_binary(), "--socket", socket}, {}, dir.file("second.log"));
  EXPECT_EQ(wait_exit(second, std::chrono::seconds(10)), 0);
  EXPECT_NE(read_file(dir.file("second.log")).find("another engine"), std::string::npos);
  expect_serving(socket);
}

TEST_F(FakeEngineTest, StaleSocketIsReplaced) {
  {
    // A socket file nobody listens on, as a killed engine leaves it.
    int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strcpy(a.sun_path, socket.c_str());
    ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    close(fd);
  }
  EngineProcess engine(fake_engine_binary(), socket);
  expect_serving(socket);
}

TEST_F(FakeEngineTest, BadMessagesGetErrorsAndTheEngineServesOthers) {
  EngineProcess engine(fake_engine_binary(), socket);
  {
    SCOPED_TRACE("garbage bytes");
    Raw r(socket);
    std::vector<uint8_t> junk = {40, 0, 0, 0};
    junk.resize(44, 0xEE);
    ASSERT_TRUE(r.send_bytes(junk.data(), junk.size()));
    EXPECT_EQ(r.reply(), SHMREPL_E_PROTOCOL);
    EXPECT_TRUE(r.closed_by_peer());
  }
  {
    SCOPED_TRACE("oversized length");
    Raw r(socket);
    const uint32_t len = control::kMaxMessage + 1;
    ASSERT_TRUE(r.send_bytes(&len, 4));  // no body follows: refused on the prefix alone
    EXPECT_EQ(r.reply(), SHMREPL_E_TOO_LARGE);
    EXPECT_TRUE(r.closed_by_peer());
  }
  {
    SCOPED_TRACE("zero length");
    Raw r(socket);
    const uint32_t len = 0;
    ASSERT_TRUE(r.send_bytes(&len, 4));
    EXPECT_EQ(r.reply(), SHMREPL_E_PROTOCOL);
  }
  {
    SCOPED_TRACE("Execute before Hello, then Hello, then an unknown session");
    Raw r(socket);
    uint64_t rid = 0;
    ASSERT_TRUE(r.send(control::execute(17, {1, "out x", "", "", {}, true, 0})));
    EXPECT_EQ(r.reply(&rid), SHMREPL_E_PROTOCOL);
    EXPECT_EQ(rid, 17u);
    ASSERT_TRUE(r.send(control::hello(18, SHMREPL_ABI_VERSION, 0)));
    EXPECT_EQ(r.reply(&rid), SHMREPL_OK);
    EXPECT_EQ(rid, 18u);
    ASSERT_TRUE(r.send(control::execute(19, {987654, "out x", "", "", {}, true, 0})));
    EXPECT_EQ(r.reply(&rid), SHMREPL_E_NOT_FOUND);
    EXPECT_EQ(rid, 19u);
    ASSERT_TRUE(r.send(control::cancel(20, 424242)));
    EXPECT_EQ(r.reply(), SHMREPL_E_NOT_FOUND);
    ASSERT_TRUE(r.send(control::accepted(21, 1, "x")));  // a reply sent as a request
    EXPECT_EQ(r.reply(), SHMREPL_E_PROTOCOL);
  }
  {
    SCOPED_TRACE("a peer that vanishes mid-message");
    Raw r(socket);
    control::Frame f = control::hello(1, SHMREPL_ABI_VERSION, 0);
    ASSERT_TRUE(r.send_bytes(f.data(), f.size() - 3));
  }
  {
    SCOPED_TRACE("wrong ABI version");
    Raw r(socket);
    ASSERT_TRUE(r.send(control::hello(1, SHMREPL_ABI_VERSION + 7, 0)));
    EXPECT_EQ(r.reply(), SHMREPL_E_VERSION);
    EXPECT_TRUE(r.closed_by_peer());
  }
  expect_serving(socket);
}

TEST_F(FakeEngineTest, DisconnectClosesTheClientsSessions) {
  EngineProcess engine(fake_engine_binary(), socket);
  std::string ring;
  shmrepl_reader_t* reader = nullptr;
  {
    Client c(socket);
    Session s(c.c);
    shmrepl_execution_t* e = s.execute("out a\nhang\n");
    ring = shmrepl_execution_ring_name(e);
    ASSERT_EQ(shmrepl_execution_reader(e, nullptr, &reader), SHMREPL_OK);
    // Leave without closing the session or the execution: only the client goes.
    shmrepl_client_close(c.c);
    c.c = nullptr;
    shmrepl_execution_close(e);  // after its client: frees the handle only
    s.client = nullptr;
  }
  // The engine cancelled the execution and unlinked its ring; the mapped reader
  // still reads to the end.
  Collected r = collect(reader, 0, false, std::chrono::seconds(20));
  shmrepl_reader_close(reader);
  EXPECT_EQ(r.end, SHMREPL_E_EOF);
  EXPECT_EQ(r.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_CANCELLED));
  // The name goes right after the FINISHED record was written.
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (ring_exists(ring) && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  EXPECT_FALSE(ring_exists(ring));
}

TEST_F(FakeEngineTest, ShutdownStopsTheEngine) {
  EngineProcess engine(fake_engine_binary(), socket);
  Client c(socket);
  Session s(c.c);
  shmrepl_execution_t* e = s.execute("hang\n");
  const std::string ring = shmrepl_execution_ring_name(e);
  EXPECT_EQ(shmrepl_engine_shutdown(c.c), SHMREPL_OK);
  EXPECT_EQ(engine.wait(std::chrono::seconds(10)), 0);
  struct stat st {};
  EXPECT_NE(lstat(socket.c_str(), &st), 0);
  EXPECT_FALSE(ring_exists(ring));
  EXPECT_EQ(shmrepl_execution_cancel(e), SHMREPL_E_ENGINE_DIED);
  shmrepl_execution_close(e);
  EXPECT_EQ(shmrepl_session_close(c.c, s.id), SHMREPL_E_ENGINE_DIED);
}

TEST_F(FakeEngineTest, SigtermStopsTheEngine) {
  EngineProcess engine(fake_engine_binary(), socket);
  EXPECT_EQ(engine.stop(), 0);
  struct stat st {};
  EXPECT_NE(lstat(socket.c_str(), &st), 0);
}

TEST_F(FakeEngineTest, EngineKilledGivesClearStatusesFast) {
  EngineProcess engine(fake_engine_binary(), socket);
  Client c(socket);
  Session s(c.c);
  shmrepl_execution_t* e = s.execute("out before\nhang\n");
  shmrepl_reader_t* reader = nullptr;
  ASSERT_EQ(shmrepl_execution_reader(e, nullptr, &reader), SHMREPL_OK);
  shmrepl_record_t rec;
  ASSERT_EQ(shmrepl_reader_next(reader, 5'000'000'000, &rec), SHMREPL_OK);  // Started
  engine.kill9();
  const auto t0 = Clock::now();
  shmrepl_status_t st;
  do {
    st = shmrepl_reader_next(reader, 5'000'000'000, &rec);
    if (st == SHMREPL_OK) shmrepl_reader_release(reader, 1);
  } while (st == SHMREPL_OK);
  const auto reader_took = Clock::now() - t0;
  EXPECT_EQ(st, SHMREPL_E_PRODUCER_DIED) << status_text(st);
  EXPECT_LT(reader_took, std::chrono::seconds(1));
  const auto t1 = Clock::now();
  EXPECT_EQ(shmrepl_execution_cancel(e), SHMREPL_E_ENGINE_DIED);
  EXPECT_LT(Clock::now() - t1, std::chrono::seconds(1));
  uint64_t sid = 0;
  EXPECT_EQ(shmrepl_session_open(c.c, &sid), SHMREPL_E_ENGINE_DIED);
  shmrepl_reader_close(reader);
  unlink_ring(shmrepl_execution_ring_name(e));  // its engine cannot any more
  shmrepl_execution_close(e);
}

namespace {
// Connects to the peer at `socket` with request_timeout_ns 300 ms (once it listens),
// opens a session, expects E_TIMEOUT and then E_STATE ("connect again"), and returns
// how long the timed-out request took.
Clock::duration time_to_request_timeout(const std::string& socket) {
  shmrepl_client_options_t o{};
  o.struct_size = sizeof o;
  o.autostart = SHMREPL_AUTOSTART_OFF;
  o.socket_path = socket.c_str();
  o.request_timeout_ns = 300'000'000;
  shmrepl_client_t* c = nullptr;
  const auto up = Clock::now() + std::chrono::seconds(10);
  while (shmrepl_client_connect(&o, &c) != SHMREPL_OK && Clock::now() < up)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_NE(c, nullptr) << shmrepl_last_error();
  if (c == nullptr) return {};
  uint64_t id = 0;
  const auto t0 = Clock::now();
  EXPECT_EQ(shmrepl_session_open(c, &id), SHMREPL_E_TIMEOUT) << shmrepl_last_error();
  const auto took = Clock::now() - t0;
  EXPECT_EQ(shmrepl_session_open(c, &id), SHMREPL_E_STATE);
  EXPECT_NE(std::string(shmrepl_last_error()).find("connect again"), std::string::npos);
  shmrepl_client_close(c);
  return took;
}
}  // namespace

// A request whose reply never comes (an engine that answered Hello, then hangs):
// with request_timeout_ns it fails with E_TIMEOUT in about that time and leaves
// the connection unusable (E_STATE after); without it (0, or the 1.0 struct size
// that has no such field) connecting still works as before.
TEST_F(FakeEngineTest, RequestTimeoutEndsAHungRequest) {
  const pid_t peer = spawn({silent_engine_binary(), socket}, {}, dir.file("silent.log"));
  const auto took = time_to_request_timeout(socket);
  EXPECT_GE(took, std::chrono::milliseconds(250));
  EXPECT_LT(took, std::chrono::seconds(5));

  // The first published size (32 bytes, 1.0): accepted, no timeout field read.
  static_assert(offsetof(shmrepl_client_options_t, request_timeout_ns) == 32);
  struct {
    shmrepl_client_options_t o;
    int64_t poison;
  } old{};
  old.o.struct_size = 32;
  old.o.autostart = SHMREPL_AUTOSTART_OFF;
  old.o.socket_path = socket.c_str();
  old.o.request_timeout_ns = -1;  // past struct_size: must not be read
  shmrepl_client_t* c1 = nullptr;
  EXPECT_EQ(shmrepl_client_connect(&old.o, &c1), SHMREPL_OK) << shmrepl_last_error();
  shmrepl_client_close(c1);
  shmrepl_client_options_t o{};
  o.autostart = SHMREPL_AUTOSTART_OFF;
  o.socket_path = socket.c_str();
  o.struct_size = 31;
  EXPECT_EQ(shmrepl_client_connect(&o, &c1), SHMREPL_E_INVALID);
  o.struct_size = sizeof o;
  o.request_timeout_ns = -1;
  EXPECT_EQ(shmrepl_client_connect(&o, &c1), SHMREPL_E_INVALID);
  kill(peer, SIGTERM);
  wait_exit(peer, std::chrono::seconds(5));
}

// The timeout bounds the whole request, not each read: a peer that sends its reply
// one byte per 100 ms (never silent for 300 ms, done only after seconds) still ends
// the request with E_TIMEOUT in about request_timeout_ns.
TEST_F(FakeEngineTest, RequestTimeoutBoundsAReplyThatTrickles) {
  const pid_t peer = spawn({silent_engine_binary(), socket, "--trickle"}, {}, dir.file("trickle.log"));
  const auto took = time_to_request_timeout(socket);
  EXPECT_GE(took, std::chrono::milliseconds(250));
  EXPECT_LT(took, std::chrono::milliseconds(1500));  // the Ok would take > 2 s to arrive
  kill(peer, SIGTERM);
  wait_exit(peer, std::chrono::seconds(5));
}
