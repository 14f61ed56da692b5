// One worker process per session (issue: a user program can no longer corrupt, hang
// or kill anyone else's output): crashes, signals, fork, multiprocessing, hangs and
// per-process state, each with another session of another client beside it.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "harness.hpp"

using namespace shmrepl::test;
using Clock = std::chrono::steady_clock;

namespace {

class WorkerTest : public ::testing::Test {
 protected:
  TempDir dir;
  std::string socket = dir.file("engine.sock");
  EngineProcess engine{engine_binary(), socket};
};

struct Job {
  shmrepl_execution_t* ex = nullptr;
  shmrepl_reader_t* reader = nullptr;
  Job(Session& s, const std::string& code) {
    ex = s.execute(code);
    EXPECT_EQ(shmrepl_execution_reader(ex, nullptr, &reader), SHMREPL_OK) << shmrepl_last_error();
  }
  ~Job() {
    shmrepl_reader_close(reader);
    shmrepl_execution_close(ex);
  }
  Collected collect(bool keep = true, int seconds = 60) {
    return shmrepl::test::collect(reader, shmrepl_execution_id(ex), keep, std::chrono::seconds(seconds));
  }
};

std::string stdout_of(const Collected& c) {
  std::string s;
  for (const Rec& r : c.kept)
    if (r.kind == SHMREPL_RECORD_OUTPUT && r.stream == SHMREPL_STREAM_STDOUT) s += r.data;
  return s;
}
std::string stderr_of(const Collected& c) {
  std::string s;
  for (const Rec& r : c.kept)
    if (r.kind == SHMREPL_RECORD_OUTPUT && r.stream == SHMREPL_STREAM_STDERR) s += r.data;
  return s;
}

// The signal of the FINISHED record, read straight from the ring (reserved[0]).
struct Finish {
  uint32_t status = 99;
  int64_t exit_code = -1;
  uint64_t signal = 0;
  int finished = 0;
  bool gap_free = true;
  std::string out;
  shmrepl_status_t end = SHMREPL_OK;
};
Finish read_all(shmrepl_reader_t* r, int seconds = 60) {
  Finish f;
  uint64_t expect = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(seconds);
  while (Clock::now() < deadline) {
    shmrepl_record_t rec;
    shmrepl_status_t st = shmrepl_reader_next(r, 100'000'000, &rec);
    if (st == SHMREPL_E_TIMEOUT) continue;
    if (st != SHMREPL_OK) {
      f.end = st;
      return f;
    }
    if (rec.seq != expect++) f.gap_free = false;
    if (rec.kind == SHMREPL_RECORD_OUTPUT && rec.stream == SHMREPL_STREAM_STDOUT)
      f.out.append(reinterpret_cast<const char*>(rec.data), rec.data_len);
    if (rec.kind == SHMREPL_RECORD_FINISHED) {
      ++f.finished;
      f.status = rec.finish_status;
      f.exit_code = rec.exit_code;
      f.signal = rec.reserved[0];
    }
    shmrepl_reader_release(r, 1);
  }
  f.end = SHMREPL_E_TIMEOUT;
  return f;
}

// A streaming session that must lose nothing while the other one dies.
constexpr const char* kStream = "for i in range(200000): print(f'Line {i}: ' + 'x' * 100)\n";

void expect_stream_whole(const Finish& f) {
  EXPECT_EQ(f.end, SHMREPL_E_EOF);
  EXPECT_TRUE(f.gap_free);
  EXPECT_EQ(f.status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  std::size_t expected = 0;
  for (int i = 0; i < 200000; ++i) expected += 7 + std::to_string(i).size() + 100 + 1;
  EXPECT_EQ(f.out.size(), expected);
  EXPECT_NE(f.out.find("Line 199999: "), std::string::npos);
}

TEST_F(WorkerTest, ACrashEndsOnlyItsSession) {
  struct Case {
    const char* name;
    const char* code;
    int signal;
  } cases[] = {
      {"segfault", "import ctypes\nctypes.string_at(0)\n", SIGSEGV},
      {"self-SIGTERM", "import os, signal\nprint('before', flush=True)\nos.kill(os.getpid(), signal.SIGTERM)\n",
       SIGTERM},
      {"abort", "import os\nos.abort()\n", SIGABRT},
  };
  const char* step = "";
  for (const Case& c : cases) try {
    SCOPED_TRACE(c.name);
    step = "sessions";
    Client a(socket), b(socket);
    Session streaming(a.c), dying(b.c);
    step = "stream";
    Job stream(streaming, kStream);
    step = "crash";
    Job crash(dying, c.code);
    step = "after";
    const Finish died = read_all(crash.reader);
    if (died.end != SHMREPL_E_EOF) ADD_FAILURE() << c.name << ": engine log:\n" << read_file(engine.log());
    EXPECT_EQ(died.end, SHMREPL_E_EOF) << status_text(died.end);
    EXPECT_EQ(died.finished, 1);
    EXPECT_TRUE(died.gap_free);
    EXPECT_EQ(died.status, static_cast<uint32_t>(SHMREPL_FINISH_ABORTED));
    EXPECT_EQ(died.signal, static_cast<uint64_t>(c.signal));
    expect_stream_whole(read_all(stream.reader));
    // The engine is the same process; the dead session says so; a new one works.
    EXPECT_EQ(shmrepl_client_engine_pid(b.c), static_cast<uint32_t>(engine.pid()));
    EXPECT_EQ(kill(engine.pid(), 0), 0);
    shmrepl_execute_options_t o{};
    o.struct_size = sizeof o;
    o.session_id = dying.id;
    o.code = "pass";
    o.code_len = 4;
    shmrepl_execution_t* ex = nullptr;
    EXPECT_EQ(shmrepl_execute(b.c, &o, &ex), SHMREPL_E_SESSION_DIED);
    step = "again";
    Session again(b.c);
    Collected ok = execute_and_collect(again, "print('alive')", true, {}, {}, true);
    EXPECT_EQ(ok.end, SHMREPL_E_EOF);
    EXPECT_EQ(stdout_of(ok), "alive\n");
  } catch (const std::exception& e) {
    ADD_FAILURE() << c.name << " at " << step << ": " << e.what() << "\nengine log:\n" << read_file(engine.log());
  }
}

TEST_F(WorkerTest, OsExitEndsTheSessionWithItsCode) {
  Client a(socket);
  Session s(a.c);
  shmrepl_reader_t* bg = nullptr;
  ASSERT_EQ(shmrepl_reader_open(shmrepl_session_background_ring(a.c, s.id), nullptr, &bg), SHMREPL_OK);
  Job r(s, "import os\ntry:\n    os._exit(7)\nfinally:\n    print('finally must not run')\n");
  const Finish f = read_all(r.reader);
  // The session's background ring, empty, ends too.
  const Finish b = read_all(bg);
  shmrepl_reader_close(bg);
  EXPECT_EQ(b.end, SHMREPL_E_EOF) << status_text(b.end);
  EXPECT_EQ(b.finished, 1);
  EXPECT_EQ(b.status, static_cast<uint32_t>(SHMREPL_FINISH_ABORTED));
  EXPECT_EQ(b.exit_code, 7);
  EXPECT_EQ(f.end, SHMREPL_E_EOF);
  EXPECT_EQ(f.status, static_cast<uint32_t>(SHMREPL_FINISH_ABORTED));
  EXPECT_EQ(f.exit_code, 7);
  EXPECT_EQ(f.signal, 0u);
  EXPECT_EQ(f.out, "");
}

TEST_F(WorkerTest, ForkedChildOutputArrivesAndOnlyTheParentFinishes) {
  Client a(socket);
  Session s(a.c);
  {
    Job r(s,
          "import os\n"
          "pid = os.fork()\n"
          "if pid == 0:\n"
          "    for i in range(2000): print(f'child {i}')\n"
          "    os._exit(0)\n"
          "os.waitpid(pid, 0)\n"
          "print('parent done')\n");
    const Finish f = read_all(r.reader);
    EXPECT_EQ(f.end, SHMREPL_E_EOF);
    EXPECT_EQ(f.finished, 1);
    EXPECT_TRUE(f.gap_free);
    std::string expected;
    for (int i = 0; i < 2000; ++i) expected += "child " + std::to_string(i) + "\n";
    expected += "parent done\n";
    EXPECT_EQ(f.out, expected);
  }
  {
    // A child that falls off the end of the code exits there, as python3's would.
    Job r(s,
          "import os\n"
          "pid = os.fork()\n"
          "if pid == 0:\n"
          "    print('child ends here')\n"
          "else:\n"
          "    _, st = os.waitpid(pid, 0)\n"
          "    print('parent saw', os.waitstatus_to_exitcode(st))\n");
    const Finish f = read_all(r.reader);
    EXPECT_EQ(f.end, SHMREPL_E_EOF);
    EXPECT_EQ(f.finished, 1);
    EXPECT_EQ(f.status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
    EXPECT_EQ(f.out, "child ends here\nparent saw 0\n");
  }
  // The session goes on.
  Collected c = execute_and_collect(s, "print('still here')", true, {}, {}, true);
  EXPECT_EQ(stdout_of(c), "still here\n");
}

TEST_F(WorkerTest, MultiprocessingWorks) {
  Client a(socket);
  Session s(a.c);
  Collected pool = execute_and_collect(s,
                                       "from multiprocessing import Pool\n"
                                       "def square(x):\n"
                                       "    return x * x\n"
                                       "with Pool(2) as p:\n"
                                       "    print(p.map(square, range(10)))\n",
                                       true, {}, {}, true);
  EXPECT_EQ(pool.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK)) << stderr_of(pool);
  EXPECT_EQ(stdout_of(pool), "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]\n");
  Collected term = execute_and_collect(s,
                                       "import multiprocessing as mp, time\n"
                                       "def sleeper():\n"
                                       "    time.sleep(100)\n"
                                       "p = mp.Process(target=sleeper)\n"
                                       "p.start()\n"
                                       "p.terminate()\n"
                                       "p.join()\n"
                                       "print(p.exitcode)\n",
                                       true, {}, {}, true);
  EXPECT_EQ(stdout_of(term), "-15\n") << stderr_of(term);
  Collected after = execute_and_collect(s, "print('worker alive')", true, {}, {}, true);
  EXPECT_EQ(stdout_of(after), "worker alive\n");
}

TEST_F(WorkerTest, PerProcessStateIsTheSessionsOwn) {
  Client a(socket), b(socket);
  Session one(a.c), two(b.c);
  Collected set = execute_and_collect(one,
                                      "import os, sys, io\n"
                                      "os.chdir('/tmp')\n"
                                      "os.environ['SHMREPL_ISOLATION'] = 'one'\n"
                                      "sys.argv = ['changed']\n"
                                      "sys.stdout = io.StringIO()\n",
                                      true, {}, {}, true);
  EXPECT_EQ(set.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  Collected seen = execute_and_collect(two,
                                       "import os, sys\n"
                                       "print(os.getcwd() != '/tmp', os.environ.get('SHMREPL_ISOLATION'),\n"
                                       "      sys.argv == ['changed'], type(sys.stdout).__name__ != 'StringIO')\n",
                                       true, {}, {}, true);
  EXPECT_EQ(stdout_of(seen), "True None False True\n") << stderr_of(seen);
}

TEST_F(WorkerTest, CancelInterruptsABlockingWait) {
  Client a(socket);
  Session s(a.c);
  Job r(s, "import threading\nprint('waiting', flush=True)\nthreading.Event().wait()\n");
  shmrepl_record_t rec;
  // Wait until it runs, then cancel: SIGINT interrupts the wait as Ctrl-C would.
  for (int i = 0; i < 2;) {
    ASSERT_EQ(shmrepl_reader_next(r.reader, 10'000'000'000, &rec), SHMREPL_OK);
    ++i;
    shmrepl_reader_release(r.reader, 1);
  }
  const auto t0 = Clock::now();
  ASSERT_EQ(shmrepl_execution_cancel(r.ex), SHMREPL_OK);
  const Finish f = read_all(r.reader);
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(2500));
  EXPECT_EQ(f.status, static_cast<uint32_t>(SHMREPL_FINISH_CANCELLED));
  // Interrupted, not killed: the session lives on, and no late SIGINT hits it.
  Collected after = execute_and_collect(s, "import time\ntime.sleep(0.2)\nprint('next')", true, {}, {}, true);
  EXPECT_EQ(after.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  EXPECT_EQ(stdout_of(after), "next\n");
}

// Every program of a warm session ends as `python3 FILE` would, not only the first:
// its non-daemon threads are waited for (their output is its own), its atexit handlers
// run once, and threading and concurrent.futures work again in the next one.
TEST_F(WorkerTest, EachProgramOfASessionEndsAsAFreshPython) {
  Client a(socket);
  Session s(a.c);
  Collected one = execute_and_collect(s, "print('one')", true, {}, {}, true);
  EXPECT_EQ(stdout_of(one), "one\n") << stderr_of(one);

  Collected two = execute_and_collect(s,
                                      "import atexit, threading, time\n"
                                      "def late():\n"
                                      "    time.sleep(0.3)\n"
                                      "    print('late')\n"
                                      "threading.Thread(target=late).start()\n"
                                      "atexit.register(print, 'atexit two')\n"
                                      "print('main done')\n",
                                      true, {}, {}, true);
  EXPECT_EQ(two.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  EXPECT_FALSE(two.record_after_finished);
  EXPECT_EQ(stdout_of(two), "main done\nlate\natexit two\n") << stderr_of(two);

  Collected three = execute_and_collect(s,
                                        "import threading\n"
                                        "from concurrent.futures import ThreadPoolExecutor\n"
                                        "with ThreadPoolExecutor(2) as pool:\n"
                                        "    print(pool.submit(pow, 2, 10).result())\n"
                                        "print(threading.main_thread().is_alive())\n",
                                        true, {}, {}, true);
  EXPECT_EQ(three.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  EXPECT_EQ(stdout_of(three), "1024\nTrue\n") << stderr_of(three);

  // A pool left open: its threads are joined at the program's end (concurrent.futures'
  // exit hook), so the pool is shut down for the next program, which can make its own.
  Collected four = execute_and_collect(s,
                                       "from concurrent.futures import ThreadPoolExecutor\n"
                                       "old = ThreadPoolExecutor(1)\n"
                                       "print(old.submit(pow, 3, 2).result())\n",
                                       true, {}, {}, true);
  EXPECT_EQ(stdout_of(four), "9\n") << stderr_of(four);
  Collected five = execute_and_collect(s,
                                       "from concurrent.futures import ThreadPoolExecutor\n"
                                       "try:\n"
                                       "    old.submit(pow, 3, 3)\n"
                                       "except RuntimeError as e:\n"
                                       "    print(e)\n"
                                       "with ThreadPoolExecutor(1) as pool:\n"
                                       "    print(pool.submit(pow, 3, 3).result())\n",
                                       true, {}, {}, true);
  EXPECT_EQ(five.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  EXPECT_EQ(stdout_of(five), "cannot schedule new futures after shutdown\n27\n") << stderr_of(five);
}

// concurrent.futures.process has an exit hook and a refuse-new-work flag of its own.
TEST_F(WorkerTest, ProcessPoolsWorkInEachProgramOfASession) {
  Client a(socket);
  Session s(a.c);
  const std::string code =
      "from concurrent.futures import ProcessPoolExecutor\n"
      "with ProcessPoolExecutor(1) as pool:\n"
      "    print(pool.submit(pow, 2, 3).result())\n";
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    Collected c = execute_and_collect(s, code, true, {}, {}, true);
    EXPECT_EQ(c.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
    EXPECT_EQ(stdout_of(c), "8\n") << stderr_of(c);
  }
}

// multiprocessing registers its exit hook (join the non-daemon children) with atexit
// once, at import; logging its own (flush the handlers). Each program's end runs them.
TEST_F(WorkerTest, ModulesExitHooksRunAtEachProgramsEnd) {
  Client a(socket);
  Session s(a.c);
  const std::string code =
      "import logging, multiprocessing, time\n"
      "def child():\n"
      "    time.sleep(0.3)\n"
      "    print('child', flush=True)\n"
      "multiprocessing.Process(target=child).start()\n"
      "class Flushed(logging.Handler):\n"
      "    def flush(self): print('flushed')\n"
      "logging.getLogger().handlers = [Flushed()]\n"
      "print('parent')\n";
  for (int i = 0; i < 2; ++i) {
    SCOPED_TRACE(i);
    Collected c = execute_and_collect(s, code, true, {}, {}, true);
    EXPECT_EQ(c.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
    EXPECT_EQ(stdout_of(c), "parent\nchild\nflushed\n") << stderr_of(c);
  }
}

// A cancel while a program's end waits for a thread ends the wait; the thread it left
// is not waited for again by the session's next program.
TEST_F(WorkerTest, CancelWhileAProgramWaitsForItsThreads) {
  Client a(socket);
  Session s(a.c);
  // The thread says when the program's end waits for it (the main thread is stopped).
  Job r(s,
        "import threading, time\n"
        "stop = threading.Event()\n"
        "def wait():\n"
        "    while threading.main_thread().is_alive(): time.sleep(0.01)\n"
        "    print('at the end', flush=True)\n"
        "    stop.wait()\n"
        "threading.Thread(target=wait).start()\n");
  std::string out;
  while (out.find("at the end") == std::string::npos) {
    shmrepl_record_t rec;
    ASSERT_EQ(shmrepl_reader_next(r.reader, 10'000'000'000, &rec), SHMREPL_OK);
    if (rec.kind == SHMREPL_RECORD_OUTPUT) out.append(reinterpret_cast<const char*>(rec.data), rec.data_len);
    shmrepl_reader_release(r.reader, 1);
  }
  ASSERT_EQ(shmrepl_execution_cancel(r.ex), SHMREPL_OK);
  const Finish f = read_all(r.reader, 10);
  EXPECT_EQ(f.end, SHMREPL_E_EOF);
  EXPECT_EQ(f.status, static_cast<uint32_t>(SHMREPL_FINISH_CANCELLED));

  Collected next = execute_and_collect(s,
                                       "import threading, time\n"
                                       "def late():\n"
                                       "    time.sleep(0.2)\n"
                                       "    print('late')\n"
                                       "threading.Thread(target=late).start()\n"
                                       "print('next')\n",
                                       true, {}, {}, true);
  EXPECT_EQ(next.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  EXPECT_EQ(stdout_of(next), "next\nlate\n") << stderr_of(next);
  Collected stopped = execute_and_collect(s, "stop.set()\nprint('stopped')", true, {}, {}, true);
  EXPECT_EQ(stdout_of(stopped), "stopped\n");
}

// The same while the end waits for a thread pool (concurrent.futures' exit hook joins its
// threads, before _shutdown() joins the others): the next program's end waits neither
// for that pool nor for the program's other thread.
TEST_F(WorkerTest, CancelWhileAProgramWaitsForItsThreadPool) {
  Client a(socket);
  Session s(a.c);
  Job r(s,
        "import threading, time\n"
        "from concurrent.futures import ThreadPoolExecutor\n"
        "stop = threading.Event()\n"
        "threading.Thread(target=stop.wait).start()\n"
        "def task():\n"
        "    while not threading._SHUTTING_DOWN: time.sleep(0.01)\n"
        "    print('at the end', flush=True)\n"
        "    stop.wait()\n"
        "pool = ThreadPoolExecutor(1)\n"
        "pool.submit(task)\n");
  std::string out;
  while (out.find("at the end") == std::string::npos) {
    shmrepl_record_t rec;
    ASSERT_EQ(shmrepl_reader_next(r.reader, 10'000'000'000, &rec), SHMREPL_OK);
    if (rec.kind == SHMREPL_RECORD_OUTPUT) out.append(reinterpret_cast<const char*>(rec.data), rec.data_len);
    shmrepl_reader_release(r.reader, 1);
  }
  ASSERT_EQ(shmrepl_execution_cancel(r.ex), SHMREPL_OK);
  const Finish f = read_all(r.reader, 10);
  EXPECT_EQ(f.status, static_cast<uint32_t>(SHMREPL_FINISH_CANCELLED));

  Job next(s,
           "from concurrent.futures import ThreadPoolExecutor\n"
           "with ThreadPoolExecutor(1) as p:\n"
           "    print(p.submit(pow, 2, 5).result())\n");
  const Collected c = next.collect(true, 20);
  EXPECT_EQ(c.end, SHMREPL_E_EOF) << "its end waits for the cancelled program's threads";
  EXPECT_EQ(c.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  EXPECT_EQ(stdout_of(c), "32\n") << stderr_of(c);
  if (c.end != SHMREPL_E_EOF) (void)shmrepl_execution_cancel(next.ex);
  Collected stopped = execute_and_collect(s, "stop.set()\nprint('stopped')", true, {}, {}, true);
  EXPECT_EQ(stdout_of(stopped), "stopped\n");
}

TEST_F(WorkerTest, CancelThatCannotInterruptKillsAfterTheGracePeriod) {
  Client a(socket);
  Session s(a.c);
  Job r(s, "import signal, threading\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nprint('x', flush=True)\nthreading.Event().wait()\n");
  shmrepl_record_t rec;
  for (int i = 0; i < 2; ++i) {
    ASSERT_EQ(shmrepl_reader_next(r.reader, 10'000'000'000, &rec), SHMREPL_OK);
    shmrepl_reader_release(r.reader, 1);
  }
  const auto t0 = Clock::now();
  ASSERT_EQ(shmrepl_execution_cancel(r.ex), SHMREPL_OK);
  const Finish f = read_all(r.reader);
  const auto took = Clock::now() - t0;
  EXPECT_GE(took, std::chrono::milliseconds(2500));
  EXPECT_LT(took, std::chrono::milliseconds(8000));
  EXPECT_EQ(f.end, SHMREPL_E_EOF);
  EXPECT_EQ(f.status, static_cast<uint32_t>(SHMREPL_FINISH_CANCELLED));
  EXPECT_EQ(f.signal, static_cast<uint64_t>(SIGKILL));
}

TEST_F(WorkerTest, CloseAndShutdownEndWithinTheGracePeriod) {
  Client a(socket), b(socket);
  Session s(a.c);
  Job r(s, "import signal, threading\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nthreading.Event().wait()\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  auto t0 = Clock::now();
  EXPECT_EQ(shmrepl_session_close(a.c, s.id), SHMREPL_OK) << shmrepl_last_error();
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(6000));
  s.id = 0;
  const Finish f = read_all(r.reader);
  EXPECT_EQ(f.end, SHMREPL_E_EOF);
  EXPECT_EQ(f.status, static_cast<uint32_t>(SHMREPL_FINISH_CANCELLED));

  Session other(b.c);
  Job stuck(other, "import threading\nthreading.Event().wait()\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  t0 = Clock::now();
  EXPECT_EQ(shmrepl_engine_shutdown(b.c), SHMREPL_OK) << shmrepl_last_error();
  EXPECT_EQ(engine.wait(std::chrono::milliseconds(8000)), 0);
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(8000));
  const Finish g = read_all(stuck.reader);
  EXPECT_EQ(g.end, SHMREPL_E_EOF);
  EXPECT_EQ(g.status, static_cast<uint32_t>(SHMREPL_FINISH_CANCELLED));
}

TEST_F(WorkerTest, RingNamesAreUnguessableAndForeignRingsRefused) {
  Client a(socket);
  Session s(a.c);
  shmrepl_execution_t* e1 = s.execute("pass");
  shmrepl_execution_t* e2 = s.execute("pass");
  const std::string n1 = shmrepl_execution_ring_name(e1), n2 = shmrepl_execution_ring_name(e2);
  // shmrepl.<uid>.<worker pid>.<id>.<64 random bits>
  EXPECT_EQ(std::count(n1.begin(), n1.end(), '.'), 4) << n1;
  EXPECT_NE(n1.substr(n1.rfind('.')), n2.substr(n2.rfind('.')));
  shmrepl_execution_close(e1);
  shmrepl_execution_close(e2);
  // A ring open to others (as another user's squat would be) is refused.
  const std::string squat = "shmrepl." + std::to_string(geteuid()) + ".1.squat";
  const std::string path = "/dev/shm/" + squat;
  write_file(path, std::string(4 * 4096 + 4096, '\0'));
  chmod(path.c_str(), 0644);
  shmrepl_reader_t* r = nullptr;
  EXPECT_EQ(shmrepl_reader_open(squat.c_str(), nullptr, &r), SHMREPL_E_PERMISSION);
  unlink(path.c_str());
}

// Sealed rings are memfds, on the kernel's internal tmpfs: a full /dev/shm no longer
// reaches them (it used to be E_NOMEM from execute and ENOSPC in the program). Their
// memory is still reserved before it is written (RingSealed tests the fallocate).
TEST(WorkerShm, FullDevShmDoesNotReachSealedRings) {
  if (geteuid() != 0 || access("/usr/bin/unshare", X_OK) != 0) GTEST_SKIP() << "needs root and unshare";
  TempDir dir;
  // The engine and its clients in their own mount namespace, with a full 2 MiB /dev/shm.
  const std::string sock = dir.file("engine.sock"), cli = cli_binary();
  const std::string script =
      "set -u\n"
      "mount -t tmpfs -o size=2m tmpfs /dev/shm || exit 90\n"
      "dd if=/dev/zero of=/dev/shm/fill bs=64k count=40 2>/dev/null\n"
      "export SHMREPL_SOCKET=" + sock + "\n" + engine_binary() + " --socket " + sock +
      " --ring-capacity 8388608 2>/dev/null &\n"
      "for i in $(seq 500); do [ -S " + sock + " ] && break; sleep 0.01; done\n" +
      cli + " run -c 'print(len(\"x\" * 4_000_000))'; echo big=$?\n" +
      cli + " run -c 'pass'; echo pass=$?\n" +
      "ls /dev/shm | grep -c '^shmrepl'; rm -f /dev/shm/fill\n" +
      cli + " shutdown >/dev/null; echo shutdown=$?\n";
  ProcessResult r = run_process({"/usr/bin/unshare", "-m", "/bin/sh", "-c", script}, {}, false, true,
                                std::chrono::seconds(60));
  EXPECT_EQ(r.exit_code, 0) << r.err_text;
  EXPECT_EQ(r.out_text, "4000000\nbig=0\npass=0\n0\nshutdown=0\n") << r.err_text;
}

}  // namespace

namespace {

struct LimitsTest : WorkerTest {};

// A limited execution: its own options, read to the end.
Finish limited(shmrepl_client_t* c, uint64_t session, const std::string& code, int64_t timeout_ns,
               uint64_t memory_limit) {
  shmrepl_execute_options_t o{};
  o.struct_size = sizeof o;
  o.script = 1;
  o.session_id = session;
  o.code = code.data();
  o.code_len = code.size();
  o.timeout_ns = timeout_ns;
  o.memory_limit = memory_limit;
  shmrepl_execution_t* ex = nullptr;
  EXPECT_EQ(shmrepl_execute(c, &o, &ex), SHMREPL_OK) << shmrepl_last_error();
  shmrepl_reader_t* r = nullptr;
  EXPECT_EQ(shmrepl_execution_reader(ex, nullptr, &r), SHMREPL_OK);
  Finish f = read_all(r);
  shmrepl_reader_close(r);
  shmrepl_execution_close(ex);
  return f;
}

TEST_F(LimitsTest, TimeoutInterruptsAndTheSessionGoesOn) {
  Client a(socket);
  Session s(a.c);
  const auto t0 = Clock::now();
  Finish f = limited(a.c, s.id, "import time\nprint('start', flush=True)\ntime.sleep(60)\n", 300'000'000, 0);
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(3));
  EXPECT_EQ(f.end, SHMREPL_E_EOF);
  EXPECT_EQ(f.status, static_cast<uint32_t>(SHMREPL_FINISH_TIMEOUT));
  EXPECT_EQ(f.out, "start\n");
  // Interrupted in time: the worker lives, its namespace too.
  Finish next = limited(a.c, s.id, "print('next')", 0, 0);
  EXPECT_EQ(next.status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  EXPECT_EQ(next.out, "next\n");
}

TEST_F(LimitsTest, TimeoutOfCodeThatIgnoresInterruptsKillsTheWorker) {
  Client a(socket);
  Session s(a.c);
  const auto t0 = Clock::now();
  Finish f = limited(a.c, s.id,
                     "import signal, threading\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\n"
                     "threading.Event().wait()\n",
                     200'000'000, 0);
  const auto took = Clock::now() - t0;
  EXPECT_GE(took, std::chrono::milliseconds(2500));
  EXPECT_LT(took, std::chrono::seconds(8));
  EXPECT_EQ(f.end, SHMREPL_E_EOF);
  EXPECT_EQ(f.status, static_cast<uint32_t>(SHMREPL_FINISH_TIMEOUT));
  EXPECT_EQ(f.signal, static_cast<uint64_t>(SIGKILL));
}

TEST_F(LimitsTest, MemoryLimitIsAMemoryErrorOfItsOwn) {
  if (kSanitized) GTEST_SKIP() << "sanitizers reserve far more than any limit";
  Client a(socket);
  Session s(a.c);
  Finish f = limited(a.c, s.id, "x = bytearray(512 << 20)\nprint('not reached')\n", 0, 64 << 20);
  EXPECT_EQ(f.end, SHMREPL_E_EOF);
  EXPECT_EQ(f.status, static_cast<uint32_t>(SHMREPL_FINISH_MEMORY_LIMIT));
  EXPECT_EQ(f.out, "");
  // The limit is the execution's: the next one may use more.
  Finish next = limited(a.c, s.id, "x = bytearray(256 << 20)\nprint(len(x))\n", 0, 0);
  EXPECT_EQ(next.status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  EXPECT_EQ(next.out, std::to_string(256 << 20) + "\n");
  // Within the limit all is well.
  Finish small = limited(a.c, s.id, "y = bytearray(8 << 20)\nprint('ok')\n", 0, 64 << 20);
  EXPECT_EQ(small.status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  EXPECT_EQ(small.out, "ok\n");
}

TEST_F(LimitsTest, ExecuteOptionsOfThe10SizeStillWork) {
  Client a(socket);
  Session s(a.c);
  shmrepl_execute_options_t o{};
  o.struct_size = 72;  // the 1.0 struct: no limits
  o.session_id = s.id;
  o.code = "print(7)";
  o.code_len = 8;
  o.timeout_ns = 1;  // past struct_size: must not be read
  shmrepl_execution_t* ex = nullptr;
  ASSERT_EQ(shmrepl_execute(a.c, &o, &ex), SHMREPL_OK) << shmrepl_last_error();
  shmrepl_reader_t* r = nullptr;
  ASSERT_EQ(shmrepl_execution_reader(ex, nullptr, &r), SHMREPL_OK);
  Finish f = read_all(r);
  EXPECT_EQ(f.status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  EXPECT_EQ(f.out, "7\n");
  shmrepl_reader_close(r);
  shmrepl_execution_close(ex);
  o.struct_size = 71;
  EXPECT_EQ(shmrepl_execute(a.c, &o, &ex), SHMREPL_E_INVALID);
}

}  // namespace

// Issue #9 item 1: a ring is a sealed memfd. Another process of our user that finds
// it (here through /proc/<worker>/fd, the way left open to it) can neither shrink
// nor grow it, and the reader reads every record through the attempt.
namespace {
// Finds ring NAME among the descriptors of process PID and tries to resize it;
// prints what each attempt gave.
constexpr const char* kResizer = R"(import errno, os, sys
pid, name = sys.argv[1], sys.argv[2]
for fd in os.listdir(f'/proc/{pid}/fd'):
    try:
        target = os.readlink(f'/proc/{pid}/fd/{fd}')
    except OSError:
        continue
    if target == f'/memfd:{name} (deleted)':
        f = os.open(f'/proc/{pid}/fd/{fd}', os.O_RDWR)
        for size in (4096, 1 << 30):
            try:
                os.ftruncate(f, size)
                print('resized')
            except OSError as e:
                print(errno.errorcode[e.errno])
        break
else:
    print('not found')
)";

// Prints 200 lines, waits for the file GO, prints 200 more.
std::string two_halves(const std::string& go) {
  return "import os, time\n"
         "for i in range(200): print(f'line {i}')\n"
         "while not os.path.exists(" + std::string("'") + go + "'): time.sleep(0.01)\n"
         "for i in range(200, 400): print(f'line {i}')\n";
}
std::string expected_lines() {
  std::string s;
  for (int i = 0; i < 400; ++i) s += "line " + std::to_string(i) + "\n";
  return s;
}
// The worker pid in shmrepl.<uid>.<pid>.<id>.<random>.
std::string worker_of(const std::string& ring) {
  const std::size_t a = ring.find('.', ring.find('.') + 1) + 1;
  return ring.substr(a, ring.find('.', a) - a);
}
}  // namespace

TEST_F(WorkerTest, SealedRingCannotBeResizedByAnotherProcess) {
  Client c(socket);
  Session s(c.c);
  const std::string go = dir.file("go");
  Job job(s, two_halves(go));
  const std::string ring = shmrepl_execution_ring_name(job.ex);
  // Not a name in /dev/shm any more: nothing there to replace or squat.
  EXPECT_FALSE(std::filesystem::exists("/dev/shm/" + ring));
  ProcessResult r = run_process({kPython, "-c", kResizer, worker_of(ring), ring}, {}, false, true);
  EXPECT_EQ(r.out_text, "EPERM\nEPERM\n") << r.err_text;
  // The engine keeps it too (the guardian): the same seals there.
  ProcessResult e = run_process({kPython, "-c", kResizer, std::to_string(engine.pid()), ring}, {}, false, true);
  EXPECT_EQ(e.out_text, "EPERM\nEPERM\n") << e.err_text;
  write_file(go, "");
  Collected all = job.collect();
  EXPECT_EQ(all.end, SHMREPL_E_EOF);
  EXPECT_TRUE(all.seq_gap_free);
  EXPECT_EQ(all.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  EXPECT_EQ(stdout_of(all), expected_lines());
}

TEST_F(WorkerTest, LateReaderInAnotherProcessGetsEveryRecord) {
  Client c(socket);
  Session s(c.c);
  const std::string go = dir.file("go");
  std::string ring;
  {
    Job job(s, two_halves(go));  // attached, not reading yet: the ring keeps everything
    ring = shmrepl_execution_ring_name(job.ex);
    // `shmrepl tail -f NAME` in another process: shmrepl_reader_open(name) there asks
    // the engine for the ring's descriptor.
    const std::string log = dir.file("tail.log");
    const pid_t tail = spawn({cli_binary(), "--socket", socket, "tail", "-f", ring}, {}, log);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    write_file(go, "");
    EXPECT_EQ(wait_exit(tail, std::chrono::milliseconds(30'000)), 0) << read_file(log);
    EXPECT_EQ(read_file(log), expected_lines());
    Collected all = job.collect();
    EXPECT_EQ(all.end, SHMREPL_E_EOF);
    EXPECT_EQ(stdout_of(all), expected_lines());
  }
  // Finished and released: the session's next executions reset it for themselves
  // (ring reuse) or, if it was not back yet, replace it as the kept one. Either
  // way the old name is gone for a late reader; the newest one's name gives it.
  std::string renamed;
  for (int i = 0; i < 3; ++i) {
    Job next(s, "print('next', " + std::to_string(i) + ")\n");
    renamed = shmrepl_execution_ring_name(next.ex);
    EXPECT_EQ(stdout_of(next.collect()), "next " + std::to_string(i) + "\n");
  }
  ProcessResult now = run_process({cli_binary(), "--socket", socket, "tail", renamed}, {}, false, true);
  EXPECT_EQ(now.out_text, "next 2\n") << now.err_text;
  ProcessResult old = run_process({cli_binary(), "--socket", socket, "tail", ring}, {}, false, true);
  EXPECT_NE(old.exit_code, 0);
  EXPECT_NE(old.err_text.find("no live ring"), std::string::npos) << old.err_text;
}

// Whether [base, base + len) is still mapped in this process (/proc/self/maps).
bool mapped(const uint8_t* base, size_t len) {
  const auto lo = reinterpret_cast<uintptr_t>(base), hi = lo + len;
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    uintptr_t a = 0, b = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &a, &b) == 2 && a <= lo && lo < b) return hi <= b || mapped(reinterpret_cast<const uint8_t*>(b), hi - b);
  }
  return false;
}

// Ring reuse on the client's side: the readers of a session's executions, one after
// another, share the mapping of its one ring (mapped by the first, kept between them)
// and each still reads only its own execution's records.
TEST_F(WorkerTest, ReadersOfAReusedRingShareOneMapping) {
  Client c(socket);
  Session s(c.c);
  const uint8_t* first = nullptr;
  size_t first_len = 0;
  for (int i = 0; i < 5; ++i) {
    Job job(s, "print('run', " + std::to_string(i) + ")\n");
    const uint8_t* base = nullptr;
    size_t len = 0;
    ASSERT_EQ(shmrepl_reader_mapping(job.reader, &base, &len), SHMREPL_OK) << shmrepl_last_error();
    EXPECT_EQ(stdout_of(job.collect()), "run " + std::to_string(i) + "\n");
    if (i == 0) {
      first = base;
      first_len = len;
    } else if (i >= 2) {
      // From the third on the ring is the kept one (the second may come before the
      // first's release reaches the worker): the same mapping, never unmapped.
      EXPECT_EQ(base, first);
      EXPECT_EQ(len, first_len);
    }
    shmrepl_reader_close(job.reader);
    job.reader = nullptr;
    EXPECT_TRUE(mapped(base, len)) << "run " << i;
  }
}
