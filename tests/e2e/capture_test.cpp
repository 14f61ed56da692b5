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
      case SHMREPL_RECORD_ERROR: {
        ++f.errors;
        shmrepl_bytes_t ename{}, evalue{};
        std::size_t n = 0;
        if (shmrepl_record_error(&rec, &ename, &evalue, &n) == SHMREPL_OK) {
          f.ename.assign(reinterpret_cast<const char*>(ename.ptr), ename.len);
          f.evalue.assign(reinterpret_cast<const char*>(evalue.ptr), evalue.len);
          for (std::size_t i = 0; i < n; ++i) {
            shmrepl_bytes_t line{};
            if (shmrepl_record_traceback_line(&rec, i, &line) == SHMREPL_OK)
              f.traceback.append(reinterpret_cast<const char*>(line.ptr), line.len);
          }
        }
        break;
      }
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
  Job(Session& s, const std::string& code, uint64_t ring_capacity = 0, bool script = true) {
    ex = s.execute(code, script, {}, {}, ring_capacity);
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
  if (f.out != expected) {
    const std::size_t at = static_cast<std::size_t>(
        std::mismatch(f.out.begin(), f.out.end(), expected.begin(), expected.end()).first - f.out.begin());
    const std::size_t from = at > 40 ? at - 40 : 0;
    ADD_FAILURE() << "first difference at byte " << at << ":\n got: " << f.out.substr(from, 80)
                  << "\n expected: " << expected.substr(from, 80);
  }
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

// fd bytes written after their execution into a background ring that is full (nobody
// reads it yet) wait parked; once a reader comes they all arrive, whole and in order,
// and executions ran meanwhile.
TEST_F(CaptureTest, ParkedBackgroundBytesArriveWholeAndInOrder) {
  Client a(socket);
  Session s(a.c);
  {
    Job first(s,
              "import ctypes, threading\n"
              "go = threading.Event()\n"
              "def late():\n"
              "    go.wait()\n"
              "    buf = b''.join(b'%07d\\n' % i for i in range(300000))\n"
              "    ctypes.CDLL(None).write(1, buf, len(buf))\n"
              "threading.Thread(target=late, daemon=True).start()\n");
    EXPECT_EQ(read_all(first.reader).end, SHMREPL_E_EOF);
  }
  {
    Job release(s, "go.set()");
    EXPECT_EQ(read_all(release.reader).end, SHMREPL_E_EOF);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  for (int i = 0; i < 3; ++i) {
    Job meanwhile(s, "print('meanwhile')");
    EXPECT_EQ(read_all(meanwhile.reader).out, "meanwhile\n");
  }
  shmrepl_reader_t* bg = nullptr;
  ASSERT_EQ(shmrepl_reader_open(shmrepl_session_background_ring(a.c, s.id), nullptr, &bg), SHMREPL_OK);
  std::string expected;
  char line[16];
  for (int i = 0; i < 300000; ++i) {
    std::snprintf(line, sizeof line, "%07d\n", i);
    expected += line;
  }
  std::string got;
  bool gap_free = true;
  uint64_t seq = 0;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (got.size() < expected.size() && Clock::now() < deadline) {
    shmrepl_record_t rec;
    shmrepl_status_t st = shmrepl_reader_next(bg, 100'000'000, &rec);
    if (st == SHMREPL_E_TIMEOUT) continue;
    ASSERT_EQ(st, SHMREPL_OK) << status_text(st);
    if (rec.seq != seq++) gap_free = false;
    if (rec.kind == SHMREPL_RECORD_OUTPUT && rec.stream == SHMREPL_STREAM_STDOUT)
      got.append(reinterpret_cast<const char*>(rec.data), rec.data_len);
    shmrepl_reader_release(bg, 1);
  }
  shmrepl_reader_close(bg);
  EXPECT_TRUE(gap_free);
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected);
}

// Records larger than what one record of the ring holds (a 4 KiB ring: 1016 bytes)
// are never cut silently nor dropped after their seq was taken: a repr is split into
// Result parts, an Error record is shortened with visible markers (the whole
// traceback is on stderr), and so is a client execution id that does not fit.
constexpr uint64_t kSmallRing = 4096;

TEST_F(CaptureTest, AHugeReprArrivesWholeInResultParts) {
  Client a(socket), b(socket);
  Session small(a.c), other(b.c);
  Job side(other, "'o' * (1 << 20)", 0, false);  // the default ring, at the same time
  Job ascii(small, "'x' * (1 << 20)", kSmallRing, false);
  Read f = read_all(ascii.reader);
  EXPECT_EQ(f.end, SHMREPL_E_EOF) << status_text(f.end);
  EXPECT_TRUE(f.gap_free);
  EXPECT_TRUE(f.chains_closed);
  EXPECT_EQ(f.status, static_cast<uint32_t>(SHMREPL_FINISH_OK));
  EXPECT_EQ(f.results, 1);
  EXPECT_TRUE(f.result == "'" + std::string(1 << 20, 'x') + "'") << f.result.size();
  // Split on character boundaries: two-byte characters come whole.
  Job text(small, "'\u00e9' * 300000", kSmallRing, false);
  f = read_all(text.reader);
  EXPECT_TRUE(f.gap_free);
  EXPECT_TRUE(f.chains_closed);
  std::string e;
  for (int i = 0; i < 300000; ++i) e += "\u00e9";
  EXPECT_TRUE(f.result == "'" + e + "'") << f.result.size();
  const Read o = read_all(side.reader);
  EXPECT_TRUE(o.gap_free);
  EXPECT_TRUE(o.result == "'" + std::string(1 << 20, 'o') + "'") << o.result.size();
}

TEST_F(CaptureTest, AHugeExceptionIsShortenedVisiblyAndWholeOnStderr) {
  Client a(socket);
  Session s(a.c);
  Job big(s, "raise ValueError('m' * (1 << 20))", kSmallRing);
  Read f = read_all(big.reader);
  EXPECT_EQ(f.end, SHMREPL_E_EOF) << status_text(f.end);
  EXPECT_TRUE(f.gap_free);
  EXPECT_EQ(f.status, static_cast<uint32_t>(SHMREPL_FINISH_ERROR));
  EXPECT_EQ(f.errors, 1);
  EXPECT_EQ(f.ename, "ValueError");
  EXPECT_EQ(f.evalue.rfind("mmm", 0), 0u);
  EXPECT_NE(f.evalue.find(" bytes omitted ...]"), std::string::npos) << f.evalue;
  EXPECT_LT(f.evalue.size(), 1016u);
  EXPECT_NE(f.err.find("ValueError: " + std::string(1 << 20, 'm') + "\n"), std::string::npos);
  // A deep traceback (frames that differ, so python3 does not fold them): the first
  // line, the last frames, and how many were left out.
  Job deep(s,
           "def down(n):\n    return up(n - 1) if n else 1 / 0\n"
           "def up(n):\n    return down(n - 1)\n"
           "down(200)\n",
           kSmallRing);
  f = read_all(deep.reader);
  EXPECT_TRUE(f.gap_free);
  EXPECT_EQ(f.errors, 1);
  EXPECT_EQ(f.ename, "ZeroDivisionError");
  EXPECT_EQ(f.evalue, "division by zero");
  EXPECT_EQ(f.traceback.rfind("Traceback (most recent call last):\n", 0), 0u) << f.traceback;
  EXPECT_NE(f.traceback.find(" entries omitted ...]"), std::string::npos) << f.traceback;
  EXPECT_NE(f.traceback.find("ZeroDivisionError: division by zero"), std::string::npos) << f.traceback;
  // A huge repr inside the message of a huge traceback, on the default ring too.
  Job both(s, "def down(n):\n    return down(n - 1) if n else int('9' * 5000)\ndown(300)\n");
  f = read_all(both.reader);
  EXPECT_TRUE(f.gap_free);
  EXPECT_EQ(f.errors, 1);
  EXPECT_EQ(f.ename, "ValueError");
}

TEST_F(CaptureTest, AClientExecutionIdIsKeptWholeOrShortenedVisibly) {
  Client a(socket);
  Session s(a.c);
  auto started = [&](const std::string& id) {
    shmrepl_execute_options_t o{};
    o.struct_size = sizeof o;
    o.session_id = s.id;
    o.code = "print('ran')";
    o.code_len = 12;
    o.client_execution_id = id.c_str();
    o.ring_capacity = kSmallRing;
    shmrepl_execution_t* ex = nullptr;
    EXPECT_EQ(shmrepl_execute(a.c, &o, &ex), SHMREPL_OK) << shmrepl_last_error();
    shmrepl_reader_t* r = nullptr;
    EXPECT_EQ(shmrepl_execution_reader(ex, nullptr, &r), SHMREPL_OK);
    const Read f = read_all(r);
    EXPECT_TRUE(f.gap_free);
    EXPECT_EQ(f.out, "ran\n");
    shmrepl_reader_close(r);
    shmrepl_execution_close(ex);
    return f.started_id;
  };
  const std::string fits(700, 'i');
  EXPECT_EQ(started(fits), fits);
  const std::string huge(100000, 'i');
  const std::string got = started(huge);
  const std::size_t kept = got.rfind("[... ");
  ASSERT_NE(kept, std::string::npos) << got;
  EXPECT_EQ(got, huge.substr(0, kept) + "[... " + std::to_string(huge.size() - kept) + " bytes omitted ...]");
  EXPECT_LE(got.size(), 760u);  // a 4 KiB ring: 1016 bytes a record, less 256 of framing
  EXPECT_GT(got.size(), 700u);
}

// input() with a prompt too long for an InputRequest record: shortened visibly, and
// the reply still reaches the program.
TEST_F(CaptureTest, AHugeInputPromptIsShortenedVisibly) {
  Client a(socket);
  Session s(a.c);
  Job job(s, "print('got', input('p' * 100000))", kSmallRing);
  std::string prompt, out;
  int requests = 0;
  shmrepl_status_t end = SHMREPL_OK;
  const auto deadline = Clock::now() + std::chrono::seconds(60);
  while (Clock::now() < deadline) {
    shmrepl_record_t rec;
    end = shmrepl_reader_next(job.reader, 100'000'000, &rec);
    if (end == SHMREPL_E_TIMEOUT) continue;
    if (end != SHMREPL_OK) break;
    if (rec.kind == SHMREPL_RECORD_INPUT_REQUEST) {
      ++requests;
      prompt.assign(reinterpret_cast<const char*>(rec.data), rec.data_len);
      EXPECT_EQ(shmrepl_execution_send_input(job.ex, "ok\n", 3), SHMREPL_OK) << shmrepl_last_error();
    } else if (rec.kind == SHMREPL_RECORD_OUTPUT && rec.stream == SHMREPL_STREAM_STDOUT) {
      out.append(reinterpret_cast<const char*>(rec.data), rec.data_len);
    }
    shmrepl_reader_release(job.reader, 1);
  }
  EXPECT_EQ(end, SHMREPL_E_EOF) << status_text(end);
  EXPECT_EQ(requests, 1);
  const std::size_t kept = prompt.rfind("[... ");
  ASSERT_NE(kept, std::string::npos) << prompt;
  EXPECT_GT(kept, 100u);
  EXPECT_EQ(prompt, std::string(kept, 'p') + "[... " + std::to_string(100000 - kept) + " bytes omitted ...]");
  EXPECT_EQ(out, "got ok\n");
}

}  // namespace
