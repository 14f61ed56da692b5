// Output capture that no program can wedge: C code writing to fd 1/2 with the GIL
// held, a background ring nobody reads, records larger than a ring's largest
// payload. Over the real engine, with a session of another client beside each.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "harness.hpp"

using namespace shmrepl::test;
using Clock = std::chrono::steady_clock;

namespace {

struct Client {
  explicit Client(const std::string& socket) : c(connect_to(socket)) {}
  ~Client() { shmrepl_client_close(c); }
  shmrepl_client_t* c;
};

class CaptureTest : public ::testing::Test {
 protected:
  TempDir dir;
  std::string socket = dir.file("engine.sock");
  EngineProcess engine{engine_binary(), socket};
};

// Everything one reader gets, checked as it goes.
struct Read {
  shmrepl_status_t end = SHMREPL_OK;
  bool gap_free = true;
  bool chains_closed = true;  // every MORE part is followed by its CONTINUED part
  uint32_t status = 99;
  std::string out, err, result, ename, evalue, traceback, started_id;
  int results = 0, errors = 0;
};

Read read_all(shmrepl_reader_t* r, int seconds = 90) {
  Read f;
  uint64_t expect = 0;
  bool open_chain = false;
  const auto deadline = Clock::now() + std::chrono::seconds(seconds);
  while (Clock::now() < deadline) {
    shmrepl_record_t rec;
    shmrepl_status_t st = shmrepl_reader_next(r, 100'000'000, &rec);
    if (st == SHMREPL_E_TIMEOUT) continue;
    if (st != SHMREPL_OK) {
      f.end = st;
      if (open_chain) f.chains_closed = false;
      return f;
    }
    if (rec.seq != expect++) f.gap_free = false;
    const bool continued = (rec.flags & SHMREPL_FLAG_CONTINUED) != 0;
    if (continued != open_chain) f.chains_closed = false;
    open_chain = (rec.flags & SHMREPL_FLAG_MORE) != 0;
    std::string data(reinterpret_cast<const char*>(rec.data), rec.data_len);
    switch (rec.kind) {
      case SHMREPL_RECORD_OUTPUT:
        (rec.stream == SHMREPL_STREAM_STDERR ? f.err : f.out) += data;
        break;
      case SHMREPL_RECORD_STARTED:
        f.started_id += data;
        break;
      case SHMREPL_RECORD_RESULT:
        if (!continued) ++f.results;
        f.result += data;
        break;
      case SHMREPL_RECORD_ERROR:
        if (!continued) ++f.errors;
        break;
      case SHMREPL_RECORD_FINISHED:
        f.status = rec.finish_status;
        break;
      default:
        break;
    }
    shmrepl_reader_release(r, 1);
  }
  f.end = SHMREPL_E_TIMEOUT;
  return f;
}

struct Job {
  shmrepl_execution_t* ex = nullptr;
  shmrepl_reader_t* reader = nullptr;
  Job(Session& s, const std::string& code, uint64_t ring_capacity = 0) {
    ex = s.execute(code, true, {}, {}, ring_capacity);
    EXPECT_EQ(shmrepl_execution_reader(ex, nullptr, &reader), SHMREPL_OK) << shmrepl_last_error();
  }
  ~Job() {
    shmrepl_reader_close(reader);
    shmrepl_execution_close(ex);
  }
};

constexpr const char* kStream = "for i in range(100000): print(f'Line {i}: ' + 'x' * 100)\n";

void expect_stream_whole(const Read& f) {
  EXPECT_EQ(f.end, SHMREPL_E_EOF) << status_text(f.end);
  EXPECT_TRUE(f.gap_free);
  EXPECT_EQ(f.status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  std::size_t expected = 0;
  for (int i = 0; i < 100000; ++i) expected += 7 + std::to_string(i).size() + 100 + 1;
  EXPECT_EQ(f.out.size(), expected);
  EXPECT_NE(f.out.find("Line 99999: "), std::string::npos);
}

// C code that holds the GIL (PyDLL keeps it) writes 8 MiB to fd 1, far more than the
// capture pipe holds: the forwarder writes the ring without the GIL, so the write
// completes, whole and in order between the Python-level writes around it.
TEST_F(CaptureTest, CWriteOf8MiBWithTheGilHeldArrivesWholeAndInOrder) {
  Client a(socket), b(socket);
  Session streaming(a.c), writing(b.c);
  Job stream(streaming, kStream);
  Job big(writing,
          "import ctypes\n"
          "print('before', flush=True)\n"
          "buf = b''.join(b'%07d\\n' % i for i in range(1 << 20))\n"
          "n = ctypes.PyDLL(None).write(1, buf, len(buf))\n"
          "print('after', n)\n");
  const Read f = read_all(big.reader);
  EXPECT_EQ(f.end, SHMREPL_E_EOF) << status_text(f.end) << "\nengine log:\n" << read_file(engine.log());
  EXPECT_TRUE(f.gap_free);
  EXPECT_TRUE(f.chains_closed);
  EXPECT_EQ(f.status, static_cast<uint32_t>(SHMREPL_FINISH_OK)) << f.err;
  std::string expected = "before\n";
  char line[16];
  for (int i = 0; i < (1 << 20); ++i) {
    std::snprintf(line, sizeof line, "%07d\n", i);
    expected += line;
  }
  expected += "after 8388608\n";
  EXPECT_EQ(f.out.size(), expected.size());
  EXPECT_TRUE(f.out == expected) << "first difference at byte "
                                 << std::mismatch(f.out.begin(), f.out.end(), expected.begin(), expected.end())
                                            .first - f.out.begin();
  expect_stream_whole(read_all(stream.reader));
  // The session goes on.
  Job next(writing, "print('next')");
  EXPECT_EQ(read_all(next.reader).out, "next\n");
}

// A background ring nobody reads fills up (a Python thread blocks on it) while C
// code of another thread writes 8 MiB to fd 2 after the executions finished: the
// forwarder parks what it cannot place and never blocks, so the next execution's
// child prints 3 MB, all of it in that execution's ring.
TEST_F(CaptureTest, UnreadBackgroundRingDoesNotBlockTheNextExecution) {
  Client a(socket), b(socket);
  Session s(a.c), other(b.c);
  {
    Job first(s,
              "import ctypes, threading\n"
              "go = threading.Event()\n"
              "def spam():\n"
              "    go.wait()\n"
              "    for i in range(200000): print('background', i, 'y' * 100)\n"
              "def c_spam():\n"
              "    go.wait()\n"
              "    b = b'z' * (1 << 20)\n"
              "    for _ in range(8): ctypes.CDLL(None).write(2, b, len(b))\n"
              "threading.Thread(target=spam, daemon=True).start()\n"
              "threading.Thread(target=c_spam, daemon=True).start()\n"
              "print('started')\n");
    const Read f = read_all(first.reader);
    EXPECT_EQ(f.end, SHMREPL_E_EOF);
    EXPECT_EQ(f.out, "started\n");
  }
  {
    // The threads write once this has finished: all of it goes to the background ring.
    Job release(s, "go.set()");
    EXPECT_EQ(read_all(release.reader).end, SHMREPL_E_EOF);
  }
  // Time for both threads to fill what they can (background ring, parked bytes, pipe).
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  Job side(other, "print('other session')");
  const auto t0 = Clock::now();
  Job second(s,
             "import subprocess\n"
             "child = \"import sys\\nfor i in range(30000): sys.stdout.write('%05d' % i + 'C' * 94 + '\\\\n')\\n\"\n"
             "r = subprocess.run(['/usr/bin/python3', '-c', child])\n"
             "print('rc', r.returncode)\n");
  const Read f = read_all(second.reader, 60);
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(60));
  EXPECT_EQ(f.end, SHMREPL_E_EOF) << status_text(f.end) << "\nengine log:\n" << read_file(engine.log());
  EXPECT_TRUE(f.gap_free);
  EXPECT_EQ(f.status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  std::string expected;
  char line[128];
  for (int i = 0; i < 30000; ++i) {
    std::snprintf(line, sizeof line, "%05d%s\n", i, std::string(94, 'C').c_str());
    expected += line;
  }
  EXPECT_EQ(expected.size(), 3'000'000u);
  expected += "rc 0\n";
  EXPECT_EQ(f.out.size(), expected.size());
  EXPECT_TRUE(f.out == expected);
  // fd 2 bytes read while it ran are its own: only the other thread's 'z's.
  EXPECT_EQ(f.err.find_first_not_of('z'), std::string::npos);
  const Read o = read_all(side.reader);
  EXPECT_EQ(o.end, SHMREPL_E_EOF);
  EXPECT_EQ(o.out, "other session\n");
}

}  // namespace
