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

namespace {

std::string tmp_script(const std::string& name, const std::string& text) {
  std::string path = ::testing::TempDir() + name;
  FILE* f = std::fopen(path.c_str(), "wb");
  std::fwrite(text.data(), 1, text.size(), f);
  std::fclose(f);
  return path;
}

// Runs `code` as python3 FILE and through the engine (script mode, same file name);
// both streams and the exit status must agree.
void expect_like_python(engine::Engine& e, uint64_t session, const std::string& name,
                        const std::string& code, int* exit_code = nullptr) {
  std::string path = tmp_script(name, code);
  test::PyResult py = test::run_python({path}, false);
  test::RunOptions o;
  o.filename = path;
  o.script = true;
  Collected c = run(e, session, code, o);
  expect_well_formed(c);
  EXPECT_EQ(c.out, py.out) << name;
  EXPECT_EQ(c.err, py.err) << name;
  ASSERT_NE(c.finished(), nullptr);
  int code_seen = c.finished()->finish_status == SHMREPL_FINISH_OK ? 0 : static_cast<int>(c.finished()->exit_code);
  if (c.finished()->finish_status == SHMREPL_FINISH_ERROR) code_seen = 1;
  EXPECT_EQ(code_seen & 0xff, py.exit_code) << name;
  if (exit_code != nullptr) *exit_code = static_cast<int>(c.finished()->exit_code);
}

}  // namespace

TEST(Engine, ResultForTrailingExpression) {
  auto e = start_engine();
  uint64_t s = e->open_session();
  Collected c = run(*e, s, "x = 20\nx + 22");
  expect_well_formed(c);
  ASSERT_NE(c.find(SHMREPL_RECORD_RESULT), nullptr);
  EXPECT_EQ(c.find(SHMREPL_RECORD_RESULT)->data, "42");
  EXPECT_EQ(c.out, "");  // not printed
  EXPECT_EQ(c.records.size(), 3u);

  c = run(*e, s, "'a' + 'b'");
  ASSERT_NE(c.find(SHMREPL_RECORD_RESULT), nullptr);
  EXPECT_EQ(c.find(SHMREPL_RECORD_RESULT)->data, "'ab'");
  c = run(*e, s, "_ * 2");  // `_` holds the last result
  ASSERT_NE(c.find(SHMREPL_RECORD_RESULT), nullptr);
  EXPECT_EQ(c.find(SHMREPL_RECORD_RESULT)->data, "'abab'");

  for (const char* none : {"None", "print('p')", "y = 1", "def f():\n    return 1\n"}) {
    c = run(*e, s, none);
    expect_well_formed(c);
    EXPECT_EQ(c.find(SHMREPL_RECORD_RESULT), nullptr) << none;
  }
  test::RunOptions script;
  script.script = true;
  c = run(*e, s, "1 + 1", script);
  EXPECT_EQ(c.find(SHMREPL_RECORD_RESULT), nullptr);
}

TEST(Engine, NamespacePersistsPerSession) {
  auto e = start_engine();
  uint64_t a = e->open_session();
  uint64_t b = e->open_session();
  run(*e, a, "v = 'from a'\nimport math");
  Collected c = run(*e, a, "print(v, math.floor(2.5), __name__)");
  EXPECT_EQ(c.out, "from a 2 __main__\n");
  c = run(*e, b, "print('v' in globals())");
  EXPECT_EQ(c.out, "False\n");
}

TEST(Engine, ErrorRecordAndTracebackOnStderr) {
  auto e = start_engine();
  uint64_t s = e->open_session();
  std::string code = test::read_file(test::workload("w9_exception.py"));
  ASSERT_FALSE(code.empty());
  // python3 FILE on the workload itself: stderr byte for byte.
  test::PyResult py = test::run_python({test::workload("w9_exception.py")}, false);
  ASSERT_EQ(py.exit_code, 1);
  test::RunOptions o;
  o.filename = test::workload("w9_exception.py");
  o.script = true;
  Collected c = run(*e, s, code, o);
  expect_well_formed(c);
  EXPECT_EQ(c.out, py.out);
  EXPECT_EQ(c.err, py.err);
  const test::Rec* err = c.find(SHMREPL_RECORD_ERROR);
  ASSERT_NE(err, nullptr);
  EXPECT_EQ(err->ename, "ValueError");
  EXPECT_EQ(err->evalue, "boom");
  std::string joined;
  for (auto& l : err->traceback) joined += l;
  EXPECT_EQ(joined, py.err);
  EXPECT_GE(err->traceback.size(), 5u);
  EXPECT_EQ(c.finished()->finish_status, SHMREPL_FINISH_ERROR);
  // The traceback comes before the Error record, which comes right before Finished.
  EXPECT_EQ(c.records[c.records.size() - 2].kind, SHMREPL_RECORD_ERROR);
}

TEST(Engine, ErrorsLikePython) {
  auto e = start_engine();
  uint64_t s = e->open_session();
  expect_like_python(*e, s, "syntax.py", "print('x')\ndef f(:\n    pass\n");
  expect_like_python(*e, s, "chained.py",
                     "try:\n    1/0\nexcept Exception as e:\n    raise KeyError('k') from e\n");
  expect_like_python(*e, s, "carets.py", "d = {'a': [1]}\nx = d['a'][0] + d['b']\n");
  expect_like_python(*e, s, "name.py", "print(undefined_name)\n");
  // The session survives errors.
  Collected c = run(*e, s, "print('alive')");
  EXPECT_EQ(c.out, "alive\n");
}

TEST(Engine, SysExitLikePython) {
  auto e = start_engine();
  uint64_t s = e->open_session();
  int code = -1;
  expect_like_python(*e, s, "exit3.py", "print('a')\nimport sys\nsys.exit(3)\nprint('never')\n", &code);
  EXPECT_EQ(code, 3);
  expect_like_python(*e, s, "exit0.py", "import sys\nsys.exit()\n", &code);
  EXPECT_EQ(code, 0);
  expect_like_python(*e, s, "exitnone.py", "raise SystemExit(None)\n", &code);
  EXPECT_EQ(code, 0);
  expect_like_python(*e, s, "exitmsg.py", "import sys\nsys.exit('bye now')\n", &code);
  EXPECT_EQ(code, 1);
  expect_like_python(*e, s, "exittrue.py", "raise SystemExit(True)\n", &code);
  EXPECT_EQ(code, 1);
  expect_like_python(*e, s, "exitlist.py", "raise SystemExit([1, 2])\n", &code);
  EXPECT_EQ(code, 1);
  test::RunOptions o;
  Collected c = run(*e, s, "import sys\nsys.exit(7)", o);
  expect_well_formed(c);
  EXPECT_EQ(c.finished()->finish_status, SHMREPL_FINISH_EXITED);
  EXPECT_EQ(c.finished()->exit_code, 7);
  EXPECT_EQ(c.find(SHMREPL_RECORD_ERROR), nullptr);
  c = run(*e, s, "print('engine still here')");
  EXPECT_EQ(c.out, "engine still here\n");
}

TEST(Engine, WriterBehavesLikeTextIOWrapper) {
  auto e = start_engine();
  uint64_t s = e->open_session();
  Collected c = run(*e, s,
                    "import sys\n"
                    "o, r = sys.stdout, []\n"
                    "r.append(o.isatty()); r.append(o.encoding); r.append(o.errors); r.append(sys.stderr.errors)\n"
                    "r.append(o.fileno()); r.append(sys.stderr.fileno()); r.append(o.writable()); r.append(o.readable())\n"
                    "r.append(o.closed); r.append(o.name); r.append(sys.stderr.name); r.append(o.line_buffering)\n"
                    "r.append(o.write('abc')); r.append(o.flush())\n"
                    "r.append(o.buffer.write(b'raw\\n')); r.append(o.buffer.write(memoryview(b'mv\\n')))\n"
                    "o.reconfigure(line_buffering=True, encoding='utf-8')\n"
                    "print(r)\n");
  expect_well_formed(c);
  EXPECT_EQ(c.out, "abcraw\nmv\n[False, 'utf-8', 'strict', 'backslashreplace', 1, 2, True, False, False, "
                   "'<stdout>', '<stderr>', False, 3, None, 4, 3]\n");
  // Same errors as CPython's TextIOWrapper.
  c = run(*e, s,
          "import sys\n"
          "try:\n    sys.stdout.write(b'x')\nexcept TypeError as e:\n    print(e)\n"
          "try:\n    sys.stdout.write('a\\ud800b')\nexcept UnicodeEncodeError as e:\n    print(e)\n"
          "sys.stderr.write('s\\udc80t\\n')\n"
          "print('é', '\\ud83d', file=sys.stderr)\n");
  expect_well_formed(c);
  EXPECT_EQ(c.out,
            "write() argument must be str, not bytes\n"
            "'utf-8' codec can't encode character '\\ud800' in position 1: surrogates not allowed\n");
  EXPECT_EQ(c.err, "s\\udc80t\n\xc3\xa9 \\ud83d\n");
}

TEST(Engine, PrintMatchesBuiltinSemantics) {
  auto e = start_engine();
  uint64_t s = e->open_session();
  Collected c = run(*e, s,
                    "import io, sys\n"
                    "class S:\n    def __str__(self): return 'S!'\n"
                    "print(1, 2.5, None, S(), [1, 'x'], sep=None, end=None)\n"
                    "print(*range(3), sep='', end='|\\n', flush=True)\n"
                    "print()\n"
                    "buf = io.StringIO()\nprint('to buf', file=buf)\nprint(repr(buf.getvalue()))\n"
                    "try:\n    print('a', sep=1)\nexcept TypeError as e:\n    print(e)\n"
                    "class Bad:\n    def __str__(self): raise RuntimeError('no str')\n"
                    "try:\n    print('before', Bad())\nexcept RuntimeError as e:\n    print('|', e)\n"
                    "print('\\u00e9\\u65e5\\U0001f40d', 'caf\\xe9')\n");
  expect_well_formed(c);
  EXPECT_EQ(c.out,
            "1 2.5 None S! [1, 'x']\n012|\n\n'to buf\\n'\nsep must be None or a string, not int\n"
            "before | no str\n\xc3\xa9\xe6\x97\xa5\xf0\x9f\x90\x8d caf\xc3\xa9\n");
}

TEST(Engine, ArgvAndFile) {
  auto e = start_engine();
  uint64_t s = e->open_session();
  test::RunOptions o;
  o.argv = {"prog.py", "--flag", "x"};
  o.script = true;
  o.filename = "/nonexistent/prog.py";
  Collected c = run(*e, s, "import sys\nprint(sys.argv, __file__)", o);
  EXPECT_EQ(c.out, "['prog.py', '--flag', 'x'] /nonexistent/prog.py\n");
}

TEST(Engine, ThreadOutputAfterItsExecutionGoesToTheBackgroundRing) {
  auto e = start_engine();
  uint64_t s = e->open_session();
  std::string bg = e->session_background_ring(s);
  ASSERT_FALSE(bg.empty());
  // Read the background ring until the session closes (its Finished record).
  test::Collected bgc;
  std::thread reader([&] {
    test::ReadOptions ro;
    ro.any_execution_id = true;
    ro.keep_outputs = true;
    bgc = test::read_ring(bg, ro);
  });
  engine::ExecuteRequest req;
  req.session_id = s;
  req.code =
      "import threading, time\n"
      "ev = threading.Event()\n"
      "def late():\n    print('inside')\n    ev.wait()\n    time.sleep(0.05)\n    print('late line')\n"
      "    import sys; sys.stderr.write('late err\\n')\n"
      "t = threading.Thread(target=late)\nt.start()\n"
      "time.sleep(0.1)\nprint('main done')\n";
  auto first = e->execute(req);
  Collected c1 = test::read_ring(first.ring_name);
  expect_well_formed(c1);
  EXPECT_EQ(c1.out, "inside\nmain done\n");
  // A second execution runs while the thread prints: it must not get that output.
  auto second = e->execute({s, "ev.set()\nt.join()\nprint('second')", "", "<shmrepl>", {}, false, 0});
  Collected c2 = test::read_ring(second.ring_name);
  expect_well_formed(c2);
  EXPECT_EQ(c2.out, "second\n");
  EXPECT_TRUE(c2.exec_id_ok);
  e->close_session(s);
  reader.join();
  EXPECT_EQ(bgc.end_status, SHMREPL_E_EOF);
  EXPECT_TRUE(bgc.seq_ok);
  EXPECT_EQ(bgc.out, "late line\n");
  EXPECT_EQ(bgc.err, "late err\n");
  int outputs = 0;
  for (auto& r : bgc.records) {
    if (r.kind == SHMREPL_RECORD_OUTPUT) {
      ++outputs;
      EXPECT_EQ(r.execution_id, first.execution_id);
    }
  }
  EXPECT_EQ(outputs, 2);
  ASSERT_NE(bgc.finished(), nullptr);
  EXPECT_THROW(e->session_background_ring(s), std::invalid_argument);
}

TEST(Engine, TwoSessionsAtOnceGetOnlyTheirOwnOutput) {
  auto e = start_engine();
  uint64_t a = e->open_session();
  uint64_t b = e->open_session();
  const long per = test::scaled(20000);
  auto code = [&](const char* tag) {
    return std::string("import threading\n"
                       "def w(k):\n    for i in range(") + std::to_string(per) + "):\n        print('" + tag +
           " %d %d' % (k, i))\n"
                       "ts = [threading.Thread(target=w, args=(k,)) for k in range(2)]\n"
                       "for t in ts: t.start()\nw(9)\nfor t in ts: t.join()\n";
  };
  auto ra = e->execute({a, code("A"), "", "<shmrepl>", {}, false, 0});
  auto rb = e->execute({b, code("B"), "", "<shmrepl>", {}, false, 0});
  Collected ca, cb;
  std::thread ta([&] { ca = test::read_ring(ra.ring_name); });
  std::thread tb([&] { cb = test::read_ring(rb.ring_name); });
  ta.join();
  tb.join();
  for (auto* c : {&ca, &cb}) {
    expect_well_formed(*c);
    EXPECT_EQ(std::count(c->out.begin(), c->out.end(), '\n'), 3 * per);
  }
  EXPECT_EQ(ca.out.find('B'), std::string::npos);
  EXPECT_EQ(cb.out.find('A'), std::string::npos);
}

TEST(Engine, CancelWhileBlockedOnFullRing) {
  auto e = start_engine();
  uint64_t s = e->open_session();
  engine::ExecuteRequest req{s, "while True:\n    print('y' * 100)\n", "", "<shmrepl>", {}, false, 4096};
  auto a = e->execute(req);
  // Nobody reads yet: the ring fills and the writer waits.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_TRUE(e->cancel(a.execution_id));
  Collected c = test::read_ring(a.ring_name);
  expect_well_formed(c);
  EXPECT_EQ(c.finished()->finish_status, SHMREPL_FINISH_CANCELLED);
  const test::Rec* err = c.find(SHMREPL_RECORD_ERROR);
  ASSERT_NE(err, nullptr);
  EXPECT_EQ(err->ename, "KeyboardInterrupt");
  EXPECT_NE(c.err.find("KeyboardInterrupt"), std::string::npos);
  Collected next = run(*e, s, "print('next')");
  EXPECT_EQ(next.out, "next\n");
}

TEST(Engine, CancelQueuedExecutionFinishesWithoutRunning) {
  auto e = start_engine();
  uint64_t s = e->open_session();
  auto busy = e->execute({s, "import time\ntime.sleep(1000)", "", "<shmrepl>", {}, false, 0});
  auto queued = e->execute({s, "print('must not run')", "", "<shmrepl>", {}, false, 0});
  EXPECT_TRUE(e->cancel(queued.execution_id));
  e->wait(queued.execution_id);  // finished right away, while `busy` still runs
  Collected q = test::read_ring(queued.ring_name);
  expect_well_formed(q);
  EXPECT_EQ(q.records.size(), 2u);
  EXPECT_EQ(q.finished()->finish_status, SHMREPL_FINISH_CANCELLED);
  EXPECT_EQ(q.out, "");
  EXPECT_TRUE(e->cancel(busy.execution_id));
  Collected b = test::read_ring(busy.ring_name);
  EXPECT_EQ(b.finished()->finish_status, SHMREPL_FINISH_CANCELLED);
}

TEST(Engine, CaughtCancelAndSecondCancel) {
  auto e = start_engine();
  uint64_t s = e->open_session();
  auto a = e->execute({s,
                       "import time\n"
                       "try:\n    time.sleep(1000)\nexcept KeyboardInterrupt:\n    print('caught')\n"
                       "time.sleep(1000)\n",
                       "", "<shmrepl>", {}, false, 0});
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(e->cancel(a.execution_id));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_TRUE(e->cancel(a.execution_id));
  Collected c = test::read_ring(a.ring_name);
  expect_well_formed(c);
  EXPECT_EQ(c.out, "caught\n");
  EXPECT_EQ(c.finished()->finish_status, SHMREPL_FINISH_CANCELLED);
}

// print() keeps a line whole even when threads contend for a full ring.
TEST(Engine, PrintStaysWholeUnderFullRingWithThreads) {
  auto e = start_engine();
  uint64_t s = e->open_session();
  const long per = test::scaled(3000);
  std::string code =
      "import threading, sys\n"
      "def w(n):\n"
      "    for i in range(" + std::to_string(per) + "):\n"
      "        print(f't{n}', i, 'z' * (i % 50), sep=' ')\n"
      "        if i % 500 == 0:\n"
      "            print(f't{n}', i, 'L' * 3000)\n"  // larger than one record: split
      "ts = [threading.Thread(target=w, args=(n,)) for n in range(4)]\n"
      "for t in ts: t.start()\n"
      "for t in ts: t.join()\n";
  engine::ExecuteRequest req{s, code, "", "<shmrepl>", {}, false, 4096};
  auto a = e->execute(req);
  test::ReadOptions ro;
  int batches = 0;
  ro.on_output = [&](const shmrepl_record_t&) {
    if (++batches % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));  // slow reader
  };
  ro.expect_execution_id = a.execution_id;
  Collected c = test::read_ring(a.ring_name, ro);
  expect_well_formed(c);
  EXPECT_TRUE(c.split_ok);
  std::vector<int> next(4, 0);
  std::size_t pos = 0, lines = 0;
  while (pos < c.out.size()) {
    std::size_t nl = c.out.find('\n', pos);
    ASSERT_NE(nl, std::string::npos);
    std::string line = c.out.substr(pos, nl - pos);
    pos = nl + 1;
    int n = -1, i = -1;
    char rest[8] = {};
    ASSERT_GE(std::sscanf(line.c_str(), "t%d %d%7s", &n, &i, rest), 2) << line;
    ASSERT_TRUE(n >= 0 && n < 4) << line;
    std::string expect = "t" + std::to_string(n) + " " + std::to_string(i) + " ";
    bool big = line.size() > expect.size() && line[expect.size()] == 'L';
    if (big) {
      EXPECT_EQ(line, expect + std::string(3000, 'L'));
    } else {
      EXPECT_EQ(line, expect + std::string(static_cast<std::size_t>(i % 50), 'z'));
      EXPECT_EQ(i, next[n]) << "thread " << n << " out of order";
      next[n] = i + 1;
    }
    ++lines;
  }
  EXPECT_EQ(lines, 4u * static_cast<std::size_t>(per + (per + 499) / 500));
}

TEST(Engine, HundredMegabytesThroughOneMebibyteRingInBoundedMemory) {
  auto e = start_engine(1 << 20);
  uint64_t s = e->open_session();
  const long size = test::scaled(100'000'000);
  Collected prep = run(*e, s, "s = 'x' * " + std::to_string(size));  // the str is in memory before
  expect_well_formed(prep);
  long before = test::vm_hwm_kib();
  test::RunOptions o;
  o.read.keep_streams = false;
  std::size_t bytes = 0;
  bool content_ok = true;
  o.read.on_output = [&](const shmrepl_record_t& r) {
    for (std::size_t i = 0; i < r.data_len; ++i) {
      char expect = bytes + i == static_cast<std::size_t>(size) ? '\n' : 'x';
      if (static_cast<char>(r.data[i]) != expect) content_ok = false;
    }
    bytes += r.data_len;
  };
  Collected c = run(*e, s, "print(s)", o);
  long after = test::vm_hwm_kib();
  expect_well_formed(c);
  EXPECT_EQ(bytes, static_cast<std::size_t>(size) + 1);
  EXPECT_TRUE(content_ok);
  EXPECT_GT(c.output_records, static_cast<uint64_t>(size) / (1 << 18));  // split into many records
  EXPECT_LT(after - before, 20 * 1024) << "VmHWM grew by " << (after - before) << " KiB";
}

TEST(Engine, RingsAreUnlinkedOnReleaseAndShutdown) {
  int before = test::count_rings();
  {
    auto e = start_engine();
    uint64_t s = e->open_session();
    EXPECT_EQ(test::count_rings(), before + 1);  // the background ring
    auto a = e->execute({s, "print('kept')", "", "<shmrepl>", {}, false, 0});
    e->wait(a.execution_id);
    EXPECT_EQ(test::count_rings(), before + 2);
    shmrepl_reader_t* r = nullptr;
    ASSERT_EQ(shmrepl_reader_open(a.ring_name.c_str(), nullptr, &r), SHMREPL_OK);
    e->release(a.execution_id);
    EXPECT_EQ(test::count_rings(), before + 1);
    // The mapped reader keeps working after the unlink.
    shmrepl_record_t rec;
    int n = 0;
    while (shmrepl_reader_next(r, 0, &rec) == SHMREPL_OK) ++n;
    EXPECT_EQ(n, 3);
    shmrepl_reader_close(r);
    // Unreleased and running ones go at shutdown.
    e->execute({s, "print('not released')", "", "<shmrepl>", {}, false, 0});
    e->execute({s, "import time\ntime.sleep(1000)", "", "<shmrepl>", {}, false, 0});
    e->open_session();
    EXPECT_EQ(test::count_rings(), before + 4);
    e->shutdown();
    EXPECT_EQ(test::count_rings(), before);
  }
  EXPECT_EQ(test::count_rings(), before);
}

TEST(Engine, UnknownIds) {
  auto e = start_engine();
  EXPECT_THROW(e->execute({999999, "pass", "", "<shmrepl>", {}, false, 0}), std::invalid_argument);
  EXPECT_FALSE(e->cancel(999999));
  EXPECT_THROW(e->wait(999999), std::invalid_argument);
  EXPECT_THROW(e->release(999999), std::invalid_argument);
  EXPECT_THROW(e->close_session(999999), std::invalid_argument);
}

TEST(Engine, QueuedExecutionsRunInOrder) {
  auto e = start_engine();
  uint64_t s = e->open_session();
  std::vector<engine::Accepted> all;
  for (int i = 0; i < 20; ++i)
    all.push_back(e->execute({s, "import time\ntime.sleep(0.001)\nprint(" + std::to_string(i) + ")", "",
                              "<shmrepl>", {}, false, 0}));
  uint64_t last_ts = 0;
  for (int i = 0; i < 20; ++i) {
    EXPECT_GT(all[i].execution_id, i > 0 ? all[i - 1].execution_id : 0);
    Collected c = test::read_ring(all[i].ring_name);
    expect_well_formed(c);
    EXPECT_EQ(c.out, std::to_string(i) + "\n");
    EXPECT_GE(c.records.front().timestamp_ns, 1u);
    EXPECT_GE(c.finished()->timestamp_ns, last_ts);
    last_ts = c.finished()->timestamp_ns;
    e->release(all[i].execution_id);
  }
}

TEST(Engine, CloseSessionWhileRunningCancelsAndReleases) {
  int before = test::count_rings();
  auto e = start_engine();
  uint64_t s = e->open_session();
  uint64_t other = e->open_session();
  auto running = e->execute({s, "print('r')\nimport time\ntime.sleep(1000)", "", "<shmrepl>", {}, false, 0});
  auto queued = e->execute({s, "print('q')", "", "<shmrepl>", {}, false, 0});
  shmrepl_reader_t* r = nullptr;
  ASSERT_EQ(shmrepl_reader_open(running.ring_name.c_str(), nullptr, &r), SHMREPL_OK);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  auto t0 = std::chrono::steady_clock::now();
  e->close_session(s);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(test::count_rings(), before + 1);  // only `other`'s background ring is left
  // The reader mapped before still sees a finished ring.
  shmrepl_record_t rec;
  uint32_t last_kind = 0;
  shmrepl_status_t st;
  while ((st = shmrepl_reader_next(r, 1'000'000'000, &rec)) == SHMREPL_OK) {
    last_kind = rec.kind;
    shmrepl_reader_release(r, 1);
  }
  EXPECT_EQ(st, SHMREPL_E_EOF);
  EXPECT_EQ(last_kind, SHMREPL_RECORD_FINISHED);
  shmrepl_reader_close(r);
  EXPECT_THROW(e->execute({s, "pass", "", "<shmrepl>", {}, false, 0}), std::invalid_argument);
  EXPECT_THROW(e->wait(queued.execution_id), std::invalid_argument);  // released with the session
  Collected c = run(*e, other, "print('other lives')");
  EXPECT_EQ(c.out, "other lives\n");
}

TEST(Engine, ShutdownWithBusySessionsAndLingeringThreads) {
  int before = test::count_rings();
  {
    auto e = start_engine();
    uint64_t s = e->open_session();
    // A thread that outlives everything, still printing (to the engine's log at the end).
    run(*e, s,
        "import threading, time\n"
        "def late():\n    time.sleep(0.3)\n    print('(expected in the log) printed after shutdown')\n"
        "t = threading.Thread(target=late, daemon=True)\nt.start()\n");
    e->execute({s, "while True:\n    pass", "", "<shmrepl>", {}, false, 0});
    e->execute({s, "print('never')", "", "<shmrepl>", {}, false, 0});
    uint64_t s2 = e->open_session();
    e->execute({s2, "import time\ntime.sleep(1000)", "", "<shmrepl>", {}, false, 4096});
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto t0 = std::chrono::steady_clock::now();
    e->shutdown();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
    EXPECT_EQ(test::count_rings(), before);
    EXPECT_THROW(e->open_session(), std::runtime_error);
  }
  // The next engine in this process works, and the old thread's output has nowhere to go
  // but the log.
  auto e = start_engine();
  uint64_t s = e->open_session();
  Collected c = run(*e, s, "import time\ntime.sleep(0.4)\nprint('new engine')");
  EXPECT_EQ(c.out, "new engine\n");  // not the old thread's line
}

TEST(Engine, ManyExecutionsFromManyThreads) {
  auto e = start_engine();
  std::vector<uint64_t> sessions;
  for (int i = 0; i < 4; ++i) sessions.push_back(e->open_session());
  std::vector<std::thread> clients;
  std::atomic<int> good{0};
  for (int k = 0; k < 8; ++k)
    clients.emplace_back([&, k] {
      for (int i = 0; i < 10; ++i) {
        std::string tag = std::to_string(k) + "-" + std::to_string(i);
        Collected c = run(*e, sessions[static_cast<std::size_t>(k) % sessions.size()], "print('" + tag + "')");
        if (c.out == tag + "\n" && c.seq_ok && c.exec_id_ok && c.finished_count == 1) ++good;
      }
    });
  for (auto& t : clients) t.join();
  EXPECT_EQ(good.load(), 80);
}

// Rings the engine's owner counts (EngineOptions::ring_reserve, as a worker asks its
// supervisor): asked before each new execution ring with its real size, never for a
// reused one nor the background ring; a refusal is LimitExceeded and leaves the
// session usable; a reservation no ring came of is given back.
TEST(Engine, RingReservations) {
  engine::EngineOptions o;
  o.capture_fds = false;
  o.ring_capacity = 64 << 10;
  o.sealed_rings = true;
  std::vector<uint64_t> asked, returned;
  int created = 0;
  bool fail_create = false;
  uint64_t refuse_above = UINT64_MAX;
  o.ring_reserve = [&](uint64_t bytes) {
    if (bytes > refuse_above) throw engine::LimitExceeded("over the limit");
    asked.push_back(bytes);
  };
  o.ring_unreserve = [&](uint64_t bytes) { returned.push_back(bytes); };
  o.ring_created = [&](const std::string&, int) {
    if (fail_create) throw std::runtime_error("no ring today");
    ++created;
  };
  auto e = engine::Engine::start(o);
  const uint64_t s = e->open_session();
  EXPECT_TRUE(asked.empty());
  EXPECT_EQ(created, 1);  // the background ring
  auto run_released = [&](uint64_t capacity) {
    engine::ExecuteRequest req;
    req.session_id = s;
    req.code = "x = 1";
    req.ring_capacity = capacity;
    const engine::Accepted a = e->execute(req);
    e->wait(a.execution_id);
    e->release(a.execution_id);
  };
  run_released(0);
  EXPECT_EQ(asked, std::vector<uint64_t>{64 << 10});
  for (int i = 0; i < 5; ++i) run_released(0);  // the kept ring, reset
  EXPECT_EQ(asked.size(), 1u);
  EXPECT_EQ(created, 2);
  run_released(5000);  // another size: a new ring, asked as it will be (a power of two)
  EXPECT_EQ(asked.back(), 8192u);
  refuse_above = 1 << 20;
  engine::ExecuteRequest big;
  big.session_id = s;
  big.code = "pass";
  big.ring_capacity = 4 << 20;
  EXPECT_THROW(e->execute(big), engine::LimitExceeded);
  EXPECT_EQ(asked.size(), 2u);
  run_released(8192);  // still usable; and the kept ring again
  EXPECT_EQ(asked.size(), 2u);
  fail_create = true;
  big.ring_capacity = 16384;
  EXPECT_THROW(e->execute(big), std::runtime_error);
  EXPECT_EQ(asked.back(), 16384u);
  EXPECT_EQ(returned, std::vector<uint64_t>{16384});
  fail_create = false;
  run_released(16384);
  EXPECT_EQ(asked.back(), 16384u);
  EXPECT_EQ(returned.size(), 1u);  // the ring took this one
  e->close_session(s);
}
