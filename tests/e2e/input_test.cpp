// input() for API clients (INPUT_REQUEST records answered with
// shmrepl_execution_send_input), and the caller's terminal seen by the program
// (stdout_fd_plus_one / stderr_fd_plus_one), over the real engine.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include "harness.hpp"

using namespace shmrepl::test;
using Clock = std::chrono::steady_clock;

namespace {

class InputTest : public ::testing::Test {
 protected:
  TempDir dir;
  std::string socket = dir.file("engine.sock");
  EngineProcess engine{engine_binary(), socket};
  shmrepl_client_t* client = connect_to(socket);
  ~InputTest() override { shmrepl_client_close(client); }

  // A session opened with `so` (nullptr: the defaults).
  uint64_t open(const shmrepl_session_options_t* so = nullptr) {
    uint64_t id = 0;
    const shmrepl_status_t st = shmrepl_session_open_ex(client, so, &id);
    EXPECT_EQ(st, SHMREPL_OK) << status_text(st);
    return id;
  }

  shmrepl_execution_t* execute(uint64_t session, const std::string& code, int64_t timeout_ns = 0) {
    shmrepl_execute_options_t o{};
    o.struct_size = sizeof o;
    o.timeout_ns = timeout_ns;
    o.script = 1;
    o.session_id = session;
    o.code = code.data();
    o.code_len = code.size();
    shmrepl_execution_t* ex = nullptr;
    const shmrepl_status_t st = shmrepl_execute(client, &o, &ex);
    EXPECT_EQ(st, SHMREPL_OK) << status_text(st);
    return ex;
  }
};

struct Outcome {
  std::string out, err;
  std::vector<Rec> requests;  // INPUT_REQUEST records, in order
  std::string order;          // 'o' per OUTPUT, 'i' per INPUT_REQUEST
  uint32_t finish_status = 99;
  shmrepl_status_t end = SHMREPL_OK;
};

// Reads `ex` to its end; `on_request(index, record)` answers each INPUT_REQUEST.
Outcome drive(shmrepl_execution_t* ex,
              const std::function<void(std::size_t, const Rec&)>& on_request,
              const std::function<void(const Outcome&)>& on_output = {}, int seconds = 60) {
  Outcome run;
  shmrepl_reader_t* r = nullptr;
  EXPECT_EQ(shmrepl_execution_reader(ex, nullptr, &r), SHMREPL_OK) << shmrepl_last_error();
  const auto deadline = Clock::now() + std::chrono::seconds(seconds);
  run.end = SHMREPL_E_TIMEOUT;
  while (r != nullptr && Clock::now() < deadline) {
    shmrepl_record_t rec;
    const shmrepl_status_t st = shmrepl_reader_next(r, 100'000'000, &rec);
    if (st == SHMREPL_E_TIMEOUT) continue;
    if (st != SHMREPL_OK) {
      run.end = st;
      break;
    }
    const std::string data(reinterpret_cast<const char*>(rec.data), rec.data_len);
    if (rec.kind == SHMREPL_RECORD_OUTPUT) {
      (rec.stream == SHMREPL_STREAM_STDERR ? run.err : run.out) += data;
      run.order += 'o';
    }
    if (rec.kind == SHMREPL_RECORD_FINISHED) run.finish_status = rec.finish_status;
    Rec kept{rec.kind,         rec.stream, rec.flags,     rec.finish_status,
             rec.execution_id, rec.seq,    rec.exit_code, data};
    shmrepl_reader_release(r, 1);
    if (rec.kind == SHMREPL_RECORD_OUTPUT && on_output) on_output(run);
    if (kept.kind == SHMREPL_RECORD_INPUT_REQUEST) {
      run.order += 'i';
      run.requests.push_back(kept);
      on_request(run.requests.size() - 1, kept);
    }
  }
  shmrepl_reader_close(r);
  return run;
}

void reply(shmrepl_execution_t* ex, const std::string& text) {
  const shmrepl_status_t st = shmrepl_execution_send_input(ex, text.data(), text.size());
  EXPECT_EQ(st, SHMREPL_OK) << status_text(st);
}

TEST_F(InputTest, InputRoundTrip) {
  const uint64_t s = open();
  shmrepl_execution_t* ex = execute(s, "name = input('who? ')\nprint('hi', name)\n");
  const Outcome run = drive(ex, [&](std::size_t, const Rec&) { reply(ex, "X\n"); });
  EXPECT_EQ(run.end, SHMREPL_E_EOF) << status_text(run.end);
  ASSERT_EQ(run.requests.size(), 1u);
  EXPECT_EQ(run.requests[0].data, "who? ");
  EXPECT_EQ(run.requests[0].flags & SHMREPL_FLAG_PASSWORD, 0u);
  EXPECT_EQ(run.out, "hi X\n");  // the prompt is in the request, not in stdout
  EXPECT_EQ(run.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK)) << run.err;
  shmrepl_execution_close(ex);
}

TEST_F(InputTest, ReplyWithoutNewlineAndUnicode) {
  const uint64_t s = open();
  shmrepl_execution_t* ex = execute(s, "t = input()\nprint(repr(t), len(t))\n");
  const Outcome run = drive(ex, [&](std::size_t, const Rec&) { reply(ex, "h\xc3\xa9 there"); });
  ASSERT_EQ(run.requests.size(), 1u);
  EXPECT_EQ(run.requests[0].data, "");
  EXPECT_EQ(run.out, "'h\xc3\xa9 there' 8\n");
  shmrepl_execution_close(ex);
}

TEST_F(InputTest, GetpassHasThePasswordFlag) {
  const uint64_t s = open();
  shmrepl_execution_t* ex = execute(
      s, "import getpass\np = getpass.getpass('pw: ')\nq = getpass.getpass()\nprint(len(p), q)\n");
  const Outcome run =
      drive(ex, [&](std::size_t i, const Rec&) { reply(ex, i == 0 ? "secret\n" : "two"); });
  ASSERT_EQ(run.requests.size(), 2u);
  EXPECT_EQ(run.requests[0].data, "pw: ");
  EXPECT_NE(run.requests[0].flags & SHMREPL_FLAG_PASSWORD, 0u);
  EXPECT_EQ(run.requests[1].data, "Password: ");
  EXPECT_NE(run.requests[1].flags & SHMREPL_FLAG_PASSWORD, 0u);
  EXPECT_EQ(run.out, "6 two\n");
  EXPECT_EQ(run.err, "");  // no GetPassWarning: nothing went to a terminal
  shmrepl_execution_close(ex);
}

TEST_F(InputTest, TwoInputsInARow) {
  const uint64_t s = open();
  shmrepl_execution_t* ex =
      execute(s, "a = input('a? ')\nprint('got', a)\nb = input('b? ')\nprint(a + b)\n");
  const Outcome run =
      drive(ex, [&](std::size_t i, const Rec&) { reply(ex, i == 0 ? "1\n" : "2\n"); });
  ASSERT_EQ(run.requests.size(), 2u);
  EXPECT_EQ(run.requests[0].data, "a? ");
  EXPECT_EQ(run.requests[1].data, "b? ");
  EXPECT_EQ(run.out, "got 1\n12\n");
  EXPECT_EQ(run.order, "ioio");
  EXPECT_GT(run.requests[1].seq, run.requests[0].seq);
  EXPECT_EQ(run.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  shmrepl_execution_close(ex);
}

TEST_F(InputTest, CancelWhileWaitingEndsCancelledAndTheSessionLives) {
  const uint64_t s = open();
  shmrepl_execution_t* ex = execute(s, "try:\n  input('?')\nfinally:\n  print('finally ran')\n");
  Clock::time_point cancelled;
  const Outcome run = drive(ex, [&](std::size_t, const Rec&) {
    cancelled = Clock::now();
    EXPECT_EQ(shmrepl_execution_cancel(ex), SHMREPL_OK) << shmrepl_last_error();
  });
  const auto took = Clock::now() - cancelled;
  ASSERT_EQ(run.requests.size(), 1u);
  EXPECT_EQ(run.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_CANCELLED));
  EXPECT_EQ(run.out, "finally ran\n");  // KeyboardInterrupt in the program, not a kill
  EXPECT_NE(run.err.find("KeyboardInterrupt"), std::string::npos) << run.err;
  EXPECT_LT(took, std::chrono::milliseconds(2500));  // the kill would come after 3 s
  // Too late now: the execution is over.
  EXPECT_EQ(shmrepl_execution_send_input(ex, "x", 1), SHMREPL_E_STATE);
  shmrepl_execution_close(ex);
  // The worker was not killed: the session runs the next execution.
  shmrepl_execution_t* next = execute(s, "print('alive')\n");
  const Outcome again = drive(next, [](std::size_t, const Rec&) {});
  EXPECT_EQ(again.out, "alive\n");
  shmrepl_execution_close(next);
}

// A cancel at any moment around the start of the wait (before, during, after the
// request) ends it as KeyboardInterrupt, without the kill 3 s later.
TEST_F(InputTest, CancelRacingTheRequestIsNeverLost) {
  const uint64_t s = open();
  for (int i = 0; i < 12; ++i) {
    SCOPED_TRACE(i);
    shmrepl_execution_t* ex =
        execute(s, "import time\ntime.sleep(0.001 * " + std::to_string(i % 4) + ")\ninput()\n");
    std::this_thread::sleep_for(std::chrono::milliseconds(i % 3));
    const auto start = Clock::now();
    EXPECT_EQ(shmrepl_execution_cancel(ex), SHMREPL_OK) << shmrepl_last_error();
    const Outcome run = drive(ex, [](std::size_t, const Rec&) {});
    EXPECT_EQ(run.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_CANCELLED));
    EXPECT_LT(Clock::now() - start, std::chrono::milliseconds(2500));
    shmrepl_execution_close(ex);
  }
  shmrepl_execution_t* next = execute(s, "print('alive')\n");  // no kill happened
  EXPECT_EQ(drive(next, [](std::size_t, const Rec&) {}).out, "alive\n");
  shmrepl_execution_close(next);
}

TEST_F(InputTest, TimeoutWhileWaitingEndsTheWait) {
  const uint64_t s = open();
  const auto start = Clock::now();
  shmrepl_execution_t* ex =
      execute(s, "try:\n  input('?')\nfinally:\n  print('finally ran')\n", 500'000'000);
  const Outcome run = drive(ex, [](std::size_t, const Rec&) {});  // never answered
  ASSERT_EQ(run.requests.size(), 1u);
  EXPECT_EQ(run.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_TIMEOUT));
  EXPECT_EQ(run.out, "finally ran\n");  // interrupted, not killed
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(3));
  shmrepl_execution_close(ex);
}

TEST_F(InputTest, ClosingTheSessionEndsTheWait) {
  const uint64_t s = open();
  shmrepl_execution_t* ex = execute(s, "input('?')\n");
  shmrepl_reader_t* r = nullptr;
  ASSERT_EQ(shmrepl_execution_reader(ex, nullptr, &r), SHMREPL_OK);
  // Wait for the request, then close the session without answering.
  bool asked = false;
  uint32_t status = 99;
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (Clock::now() < deadline) {
    shmrepl_record_t rec;
    const shmrepl_status_t st = shmrepl_reader_next(r, 100'000'000, &rec);
    if (st == SHMREPL_E_TIMEOUT) continue;
    if (st != SHMREPL_OK) break;
    if (rec.kind == SHMREPL_RECORD_INPUT_REQUEST) {
      asked = true;
      EXPECT_EQ(shmrepl_session_close(client, s), SHMREPL_OK) << shmrepl_last_error();
    }
    if (rec.kind == SHMREPL_RECORD_FINISHED) status = rec.finish_status;
    shmrepl_reader_release(r, 1);
  }
  EXPECT_TRUE(asked);
  EXPECT_EQ(status, static_cast<uint32_t>(SHMREPL_FINISH_CANCELLED));
  shmrepl_reader_close(r);
  shmrepl_execution_close(ex);
}

TEST_F(InputTest, ReplyWhenNotWaitingIsAStateError) {
  const uint64_t s = open();
  EXPECT_EQ(shmrepl_execution_send_input(nullptr, "x", 1), SHMREPL_E_INVALID);
  shmrepl_execution_t* ex = execute(s,
                                    "import sys\nprint('ready', flush=True)\nsys.stdin.readline()\n"
                                    "import time\ntime.sleep(1.5)\nprint(input('now? '))\n");
  EXPECT_EQ(shmrepl_execution_send_input(ex, nullptr, 1), SHMREPL_E_INVALID);
  bool early_checked = false;
  const Outcome run = drive(
      ex,
      [&](std::size_t, const Rec&) {
        reply(ex, "answer\n");
        // One request, one answer.
        EXPECT_EQ(shmrepl_execution_send_input(ex, "again", 5), SHMREPL_E_STATE);
      },
      [&](const Outcome& r) {
        if (r.out == "ready\n" && !early_checked) {
          early_checked = true;
          EXPECT_EQ(shmrepl_execution_send_input(ex, "early\n", 6), SHMREPL_E_STATE)
              << shmrepl_last_error();
        }
      });
  EXPECT_TRUE(early_checked);
  EXPECT_EQ(run.out, "ready\nanswer\n");  // sys.stdin is /dev/null: readline() gives ''
  EXPECT_EQ(shmrepl_execution_send_input(ex, "late", 4), SHMREPL_E_STATE);
  shmrepl_execution_close(ex);
}

TEST_F(InputTest, OtherThreadsWriteWhileInputWaits) {
  const uint64_t s = open();
  shmrepl_execution_t* ex = execute(s,
                                    "import threading, time\n"
                                    "stop = False\n"
                                    "def tick():\n"
                                    "  i = 0\n"
                                    "  while not stop:\n"
                                    "    print('tick', i, flush=True); i += 1; time.sleep(0.02)\n"
                                    "t = threading.Thread(target=tick)\n"
                                    "t.start()\n"
                                    "x = input('go? ')\n"
                                    "stop = True\n"
                                    "t.join()\n"
                                    "print('done', x)\n");
  bool asked = false;
  std::size_t ticks_at_request = 0;
  bool replied = false;
  const Outcome run = drive(
      ex, [&](std::size_t, const Rec&) { asked = true; },
      [&](const Outcome& r) {
        if (!asked || replied) return;
        std::size_t ticks = 0;
        for (std::size_t at = 0; (at = r.out.find("tick", at)) != std::string::npos; at += 4)
          ++ticks;
        if (ticks_at_request == 0) ticks_at_request = ticks;
        // Five more ticks after the request: input() holds nothing up.
        if (ticks >= ticks_at_request + 5) {
          replied = true;
          reply(ex, "yes\n");
        }
      });
  EXPECT_TRUE(replied);
  EXPECT_NE(run.out.find("done yes\n"), std::string::npos) << run.out;
  EXPECT_EQ(run.finish_status, static_cast<uint32_t>(SHMREPL_FINISH_OK)) << run.err;
  shmrepl_execution_close(ex);
}

TEST_F(InputTest, AProgramsOwnStdinIsReadNotAsked) {
  const uint64_t s = open();
  shmrepl_execution_t* ex =
      execute(s, "import io, sys\nsys.stdin = io.StringIO('mine\\n')\nprint(input('x'))\n");
  const Outcome run = drive(ex, [&](std::size_t, const Rec&) { reply(ex, "client\n"); });
  EXPECT_TRUE(run.requests.empty());
  EXPECT_EQ(run.out, "xmine\n");  // python3's input() with a sys.stdin that is not a terminal
  shmrepl_execution_close(ex);
}

TEST_F(InputTest, ASessionWithStdinReadsIt) {
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  ASSERT_EQ(write(p[1], "piped\n", 6), 6);
  close(p[1]);
  shmrepl_session_options_t so{};
  so.struct_size = sizeof so;
  so.stdin_fd_plus_one = p[0] + 1;
  const uint64_t s = open(&so);
  close(p[0]);
  shmrepl_execution_t* ex = execute(s, "print(input())\n");
  const Outcome run = drive(ex, [&](std::size_t, const Rec&) { reply(ex, "client\n"); });
  EXPECT_TRUE(run.requests.empty());
  EXPECT_EQ(run.out, "piped\n");
  shmrepl_execution_close(ex);
}

// ---- the caller's terminal ----

constexpr const char* kTerminalProbe =
    "import os, sys, shutil\n"
    "def show():\n"
    "  try: size = tuple(os.get_terminal_size())\n"
    "  except OSError as e: size = 'OSError %d' % e.errno\n"
    "  try: size2 = tuple(os.get_terminal_size(2))\n"
    "  except OSError as e: size2 = 'OSError %d' % e.errno\n"
    "  print(sys.stdout.isatty(), sys.stderr.isatty(), os.isatty(1), size, size2,\n"
    "        tuple(shutil.get_terminal_size((11, 22))))\n"
    "show()\n";

struct Pty {
  int master = -1, slave = -1;
  Pty(int cols, int rows) {
    winsize ws{};
    ws.ws_col = static_cast<unsigned short>(cols);
    ws.ws_row = static_cast<unsigned short>(rows);
    if (openpty(&master, &slave, nullptr, nullptr, &ws) != 0)
      ADD_FAILURE() << "openpty: " << std::strerror(errno);
  }
  ~Pty() {
    close(master);
    close(slave);
  }
  void resize(int cols, int rows) {
    winsize ws{};
    ws.ws_col = static_cast<unsigned short>(cols);
    ws.ws_row = static_cast<unsigned short>(rows);
    EXPECT_EQ(ioctl(master, TIOCSWINSZ, &ws), 0);
  }
};

TEST_F(InputTest, StdoutOnATerminalFollowsItsSize) {
  Pty pty(123, 45);
  shmrepl_session_options_t so{};
  so.struct_size = sizeof so;
  so.stdout_fd_plus_one = pty.slave + 1;
  const uint64_t s = open(&so);
  shmrepl_execution_t* ex = execute(s, std::string(kTerminalProbe) + "input()\nshow()\n");
  const Outcome run = drive(ex, [&](std::size_t, const Rec&) {
    pty.resize(80, 24);
    reply(ex, "\n");
  });
  // shutil gives the terminal's size unless $COLUMNS/$LINES say otherwise.
  EXPECT_EQ(run.out,
            "True False True (123, 45) OSError 25 (123, 45)\n"
            "True False True (80, 24) OSError 25 (80, 24)\n")
      << run.err;
  // Nothing was written to the terminal.
  char buf[64];
  fcntl(pty.master, F_SETFL, O_NONBLOCK);
  EXPECT_LT(read(pty.master, buf, sizeof buf), 1);
  shmrepl_execution_close(ex);
}

TEST_F(InputTest, StderrOnATerminalAndDevNull) {
  Pty pty(100, 30);
  const int null = ::open("/dev/null", O_WRONLY);
  shmrepl_session_options_t so{};
  so.struct_size = sizeof so;
  so.stdout_fd_plus_one = null + 1;
  so.stderr_fd_plus_one = pty.slave + 1;
  const uint64_t s = open(&so);
  close(null);
  shmrepl_execution_t* ex = execute(s, kTerminalProbe);
  const Outcome run = drive(ex, [](std::size_t, const Rec&) {});
  EXPECT_EQ(run.out, "False True False OSError 25 (100, 30) (11, 22)\n") << run.err;
  shmrepl_execution_close(ex);
}

TEST_F(InputTest, WithoutTerminalsNothingChanges) {
  Pty pty(123, 45);
  // The 1.1 size: the fields past it are not read.
  shmrepl_session_options_t so{};
  so.struct_size = 40;
  so.stdout_fd_plus_one = pty.slave + 1;
  so.stderr_fd_plus_one = pty.slave + 1;
  const uint64_t s = open(&so);
  shmrepl_execution_t* ex = execute(s, kTerminalProbe);
  const Outcome run = drive(ex, [](std::size_t, const Rec&) {});
  EXPECT_EQ(run.out, "False False False OSError 25 OSError 25 (11, 22)\n") << run.err;
  shmrepl_execution_close(ex);
  so.struct_size = sizeof so;
  so.stdout_fd_plus_one = -1;
  uint64_t id = 0;
  EXPECT_EQ(shmrepl_session_open_ex(client, &so, &id), SHMREPL_E_INVALID);
  so.stdout_fd_plus_one = 0;
  so.stderr_fd_plus_one = 100000;  // no such descriptor
  EXPECT_EQ(shmrepl_session_open_ex(client, &so, &id), SHMREPL_E_INVALID);
}

}  // namespace
