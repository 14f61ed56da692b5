// `shmrepl dump` (text and JSON Lines, parsed back by python3's json) and `shmrepl gc`.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "harness.hpp"

using namespace shmrepl::test;
using namespace std::chrono_literals;

namespace {

const EnvChanges kEnv = {{"PYTHONUNBUFFERED", std::nullopt}, {"SHMREPL_SOCKET", std::nullopt}};

ProcessResult cli(std::vector<std::string> args) {
  args.insert(args.begin(), cli_binary());
  return run_process(args, kEnv, false, true, std::chrono::seconds(120));
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

class DumpTest : public ::testing::Test {
 protected:
  TempDir dir;
  EngineProcess engine{engine_binary(), dir.file("engine.sock")};
  shmrepl_client_t* client = connect_to(engine.socket());
  void TearDown() override {
    ASSERT_EQ(shmrepl_engine_shutdown(client), SHMREPL_OK);
    shmrepl_client_close(client);
    EXPECT_EQ(engine.wait(30s), 0);
  }
};

// Writes to both streams, bytes that are not UTF-8, one write split over several records
// (a 4 KiB ring), then raises.
const char kProgram[] =
    "import os, sys\n"
    "print('hello\\t\"world\" \\u00e9')\n"
    "sys.stdout.flush()\n"
    "os.write(1, b'\\xff\\xfe raw\\n')\n"
    "print('to stderr', file=sys.stderr)\n"
    "sys.stdout.write('x' * 20000 + '\\n')\n"
    "sys.stdout.flush()\n"
    "def inner():\n"
    "    raise ValueError('bad \"value\"')\n"
    "inner()\n";

}  // namespace

TEST_F(DumpTest, TextDecodesEveryRecord) {
  Session s(client);
  shmrepl_execution_t* e = s.execute(kProgram, true, "prog.py", {}, 4096);
  const std::string ring = shmrepl_execution_ring_name(e);
  const std::string id = std::to_string(shmrepl_execution_id(e));
  ProcessResult r = cli({"--socket", engine.socket(), "dump", "-f", ring});
  shmrepl_execution_close(e);
  ASSERT_EQ(r.exit_code, 0) << r.err_text;
  EXPECT_EQ(r.err_text, "");
  const std::string& t = r.out_text;
  EXPECT_EQ(t.rfind("#0 STARTED exec=" + id + " t=", 0), 0u) << t.substr(0, 500);
  EXPECT_TRUE(contains(t, " OUTPUT exec=")) << t.substr(0, 2000);
  EXPECT_TRUE(contains(t, "stdout len=17 \"hello\\t\\\"world\\\" \xc3\xa9\\n\"")) << t.substr(0, 2000);
  EXPECT_TRUE(contains(t, "stdout len=7 \"\\xff\\xfe raw\\n\"")) << t.substr(0, 2000);
  EXPECT_TRUE(contains(t, "stderr len=10 \"to stderr\\n\"")) << t.substr(0, 2000);
  EXPECT_TRUE(contains(t, " stdout MORE len=")) << t.substr(0, 2000);
  EXPECT_TRUE(contains(t, " stdout MORE CONTINUED len=") || contains(t, " stdout CONTINUED len="))
      << t.substr(0, 2000);
  EXPECT_TRUE(contains(t, "\n  ename=\"ValueError\"\n  evalue=\"bad \\\"value\\\"\"\n")) << t;
  EXPECT_TRUE(contains(t, "  traceback[0]=\"Traceback (most recent call last):\\n\"\n")) << t;
  EXPECT_TRUE(contains(t, "in inner\\n\"\n")) << t;
  EXPECT_TRUE(contains(t, " FINISHED exec=")) << t;
  EXPECT_TRUE(contains(t, "status=ERROR exit_code=")) << t;
  // One line per record (and its ERROR detail lines), seq from 0 without a hole.
  std::istringstream lines(t);
  std::string line;
  uint64_t next = 0;
  while (std::getline(lines, line)) {
    if (line.rfind("  ", 0) == 0) continue;
    ASSERT_EQ(line.rfind(std::string("#").append(std::to_string(next)).append(" "), 0), 0u) << line;
    ++next;
  }
  EXPECT_GT(next, 8u);
}

TEST_F(DumpTest, JsonLinesParseBack) {
  Session s(client);
  shmrepl_execution_t* e = s.execute(kProgram, true, "prog.py", {}, 4096);
  const std::string ring = shmrepl_execution_ring_name(e);
  const uint64_t id = shmrepl_execution_id(e);
  ProcessResult r = cli({"--socket", engine.socket(), "dump", "--json", "-f", ring});
  shmrepl_execution_close(e);
  ASSERT_EQ(r.exit_code, 0) << r.err_text;
  const std::string jsonl = dir.file("dump.jsonl");
  write_file(jsonl, r.out_text);
  // python3 parses every line and reassembles the streams from data / data_base64.
  const char* check =
      "import base64, json, sys\n"
      "recs = [json.loads(l) for l in open(sys.argv[1], encoding='utf-8')]\n"
      "def raw(r):\n"
      "    return base64.b64decode(r['data_base64']) if 'data_base64' in r else r['data'].encode()\n"
      "out = b''.join(raw(r) for r in recs if r['kind'] == 'OUTPUT' and r['stream'] == 'stdout')\n"
      "err = b''.join(raw(r) for r in recs if r['kind'] == 'OUTPUT' and r['stream'] == 'stderr')\n"
      "print('seqs', [r['seq'] for r in recs] == list(range(len(recs))))\n"
      "print('ids', sorted({r['execution_id'] for r in recs}))\n"
      "print('kinds', recs[0]['kind'], recs[-1]['kind'])\n"
      "print('lens', all(len(raw(r)) == r['data_len'] for r in recs))\n"
      "print('times', all(r['timestamp_ns'] > 0 and r['time'].endswith('Z') for r in recs))\n"
      "print('stdout', repr(out[:40]), len(out), out.count(b'x'))\n"
      "print('stderr_head', repr(err[:10]))\n"
      "print('flags', sorted({'+'.join(r['flags']) for r in recs if r['flags']}))\n"
      "print('raw_base64', [r['data_base64'] for r in recs if 'data_base64' in r])\n"
      "e = [r for r in recs if r['kind'] == 'ERROR'][0]\n"
      "print('error', e['ename'], e['evalue'], len(e['traceback']), e['traceback'][0].strip())\n"
      "f = recs[-1]\n"
      "print('finished', f['finish_status'], f['exit_code'], f['duration_ns'] > 0)\n";
  ProcessResult py = run_process({kPython, "-c", check, jsonl}, kEnv, false, true);
  ASSERT_EQ(py.exit_code, 0) << py.err_text << "\n" << r.out_text.substr(0, 3000);
  const std::string& o = py.out_text;
  EXPECT_TRUE(contains(o, "seqs True\n")) << o;
  EXPECT_TRUE(contains(o, "ids [" + std::to_string(id) + "]\n")) << o;
  EXPECT_TRUE(contains(o, "kinds STARTED FINISHED\n")) << o;
  EXPECT_TRUE(contains(o, "lens True\n")) << o;
  EXPECT_TRUE(contains(o, "times True\n")) << o;
  // The first 40 bytes: 17 + 7 of the first writes, then the first 16 of the 20000 'x'.
  EXPECT_TRUE(contains(o, "stdout b'hello\\t\"world\" \\xc3\\xa9\\n\\xff\\xfe raw\\n" +
                              std::string(16, 'x') + "' 20025 20000\n"))
      << o;
  EXPECT_TRUE(contains(o, "stderr_head b'to stderr\\n'\n")) << o;
  EXPECT_TRUE(contains(o, "'MORE'")) << o;
  EXPECT_TRUE(contains(o, "CONTINUED")) << o;
  EXPECT_TRUE(contains(o, "raw_base64 ['//4gcmF3Cg==']\n")) << o;
  EXPECT_TRUE(contains(o, "error ValueError bad \"value\" ")) << o;
  EXPECT_TRUE(contains(o, " Traceback (most recent call last):\n")) << o;
  EXPECT_TRUE(contains(o, "finished ERROR ")) << o;
}

TEST_F(DumpTest, WithoutFollowStopsAtWhatIsThere) {
  Session s(client);
  const std::string ready = dir.file("ready"), go = dir.file("go");
  const std::string code = "import os, sys, time\nprint('waiting')\nsys.stdout.flush()\nopen(" +
                           std::string("'") + ready + "', 'w').close()\nwhile not os.path.exists('" +
                           go + "'): time.sleep(0.01)\nprint('done')\n";
  shmrepl_execution_t* e = s.execute(code);
  const std::string ring = shmrepl_execution_ring_name(e);
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (!std::filesystem::exists(ready) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(10ms);
  ASSERT_TRUE(std::filesystem::exists(ready));
  const auto t0 = std::chrono::steady_clock::now();
  ProcessResult now = cli({"--socket", engine.socket(), "dump", ring});
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 30s);
  EXPECT_EQ(now.exit_code, 0) << now.err_text;
  EXPECT_TRUE(contains(now.out_text, "#0 STARTED")) << now.out_text;
  EXPECT_TRUE(contains(now.out_text, "stdout len=8 \"waiting\\n\"")) << now.out_text;
  EXPECT_FALSE(contains(now.out_text, "FINISHED")) << now.out_text;
  write_file(go, "");
  ProcessResult rest = cli({"--socket", engine.socket(), "dump", "-f", ring});
  shmrepl_execution_close(e);
  EXPECT_EQ(rest.exit_code, 0) << rest.err_text;
  EXPECT_TRUE(contains(rest.out_text, "stdout len=5 \"done\\n\"")) << rest.out_text;
  EXPECT_TRUE(contains(rest.out_text, " FINISHED exec=")) << rest.out_text;
  EXPECT_TRUE(contains(rest.out_text, "status=OK exit_code=0")) << rest.out_text;
}

TEST(DumpErrors, OneLineAndNonZero) {
  ProcessResult missing = cli({"dump", "shmrepl.0.999999999.nothing-here"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.out_text, "");
  EXPECT_TRUE(contains(missing.err_text, "cannot open ring shmrepl.0.999999999.nothing-here"))
      << missing.err_text;
  EXPECT_EQ(std::count(missing.err_text.begin(), missing.err_text.end(), '\n'), 1) << missing.err_text;
  ProcessResult none = cli({"dump"});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_EQ(std::count(none.err_text.begin(), none.err_text.end(), '\n'), 1) << none.err_text;
  ProcessResult bad = cli({"dump", "--bogus", "x"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(contains(bad.err_text, "unknown option --bogus")) << bad.err_text;
  ProcessResult help = cli({"dump", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_EQ(help.out_text.rfind("usage: shmrepl dump", 0), 0u) << help.out_text;
  EXPECT_TRUE(contains(help.out_text, "_base64")) << help.out_text;
}

// ---- gc ----

namespace {

// A pid that has exited and been reaped.
pid_t dead_pid() {
  const pid_t p = fork();
  if (p == 0) _exit(0);
  waitpid(p, nullptr, 0);
  return p;
}

struct Zombie {
  pid_t pid = fork();
  Zombie() {
    if (pid == 0) _exit(0);
    // Not reaped yet: a zombie once /proc says so.
    for (int i = 0; i < 1000; ++i) {
      std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
      std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
      const auto close = s.rfind(')');
      if (close != std::string::npos && close + 2 < s.size() && s[close + 2] == 'Z') return;
      std::this_thread::sleep_for(5ms);
    }
  }
  ~Zombie() { waitpid(pid, nullptr, 0); }
};

std::string ring_file_name(pid_t pid, const std::string& rest) {
  return "shmrepl." + std::to_string(geteuid()) + "." + std::to_string(pid) + "." + rest;
}

}  // namespace

TEST(Gc, RemovesRingsOfDeadAndZombieProcessesOnly) {
  TempDir dir;
  Zombie zombie;
  const pid_t dead = dead_pid();
  const std::string uid = std::to_string(geteuid());
  const std::string dead_ring = ring_file_name(dead, "7"), zombie_ring = ring_file_name(zombie.pid, "bg3"),
                    live_ring = ring_file_name(getpid(), "8");
  const std::vector<std::string> kept = {
      live_ring,
      "shmrepl." + std::to_string(geteuid() + 1) + "." + std::to_string(dead) + ".1",  // not our uid
      "shmrepl." + uid + ".12ab.1",                                                  // not a pid
      "shmrepl." + uid + "." + std::to_string(dead),                                 // no dot after it
      "other." + uid + "." + std::to_string(dead) + ".1"};                           // not ours
  for (const std::string& n : kept) write_file(dir.file(n), "");
  write_file(dir.file(dead_ring), "");
  write_file(dir.file(zombie_ring), "");

  ProcessResult dry = cli({"gc", "--dry-run", "--dir", dir.path});
  EXPECT_EQ(dry.exit_code, 0) << dry.err_text;
  EXPECT_TRUE(contains(dry.out_text, "would remove " + dir.file(dead_ring) + " (process " +
                                         std::to_string(dead) + " is gone)\n"))
      << dry.out_text;
  EXPECT_TRUE(contains(dry.out_text, "would remove " + dir.file(zombie_ring) + " (process " +
                                         std::to_string(zombie.pid) + " is a zombie)\n"))
      << dry.out_text;
  EXPECT_TRUE(std::filesystem::exists(dir.file(dead_ring)));
  EXPECT_TRUE(std::filesystem::exists(dir.file(zombie_ring)));

  ProcessResult gc = cli({"gc", "--dir", dir.path});
  EXPECT_EQ(gc.exit_code, 0) << gc.err_text;
  EXPECT_TRUE(contains(gc.out_text, "removed " + dir.file(dead_ring) + " (process")) << gc.out_text;
  EXPECT_TRUE(contains(gc.out_text, "removed " + dir.file(zombie_ring) + " (process")) << gc.out_text;
  EXPECT_TRUE(contains(gc.out_text, "removed 2 rings of dead processes; kept 1 of live ones\n"))
      << gc.out_text;
  EXPECT_FALSE(std::filesystem::exists(dir.file(dead_ring)));
  EXPECT_FALSE(std::filesystem::exists(dir.file(zombie_ring)));
  for (const std::string& n : kept) EXPECT_TRUE(std::filesystem::exists(dir.file(n))) << n;
}

TEST(Gc, DevShm) {
  // Real shared-memory objects: one named after a dead pid, one after this live process.
  const pid_t dead = dead_pid();
  const std::string tag = "cli-tools-test-" + std::to_string(getpid());
  const std::string dead_ring = ring_file_name(dead, tag), live_ring = ring_file_name(getpid(), tag);
  for (const std::string& n : {dead_ring, live_ring}) {
    const int fd = shm_open(("/" + n).c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    ASSERT_GE(fd, 0) << n;
    close(fd);
  }
  ProcessResult gc = cli({"gc"});
  EXPECT_EQ(gc.exit_code, 0) << gc.err_text;
  EXPECT_TRUE(contains(gc.out_text, "removed /dev/shm/" + dead_ring + " (process")) << gc.out_text;
  EXPECT_FALSE(contains(gc.out_text, live_ring)) << gc.out_text;
  EXPECT_FALSE(ring_exists(dead_ring));
  EXPECT_TRUE(ring_exists(live_ring));
  unlink_ring(live_ring);
  unlink_ring(dead_ring);  // in case gc failed
}

TEST(Gc, HelpAndErrors) {
  ProcessResult help = cli({"gc", "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_EQ(help.out_text.rfind("usage: shmrepl gc", 0), 0u) << help.out_text;
  ProcessResult bad = cli({"gc", "--bogus"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(std::count(bad.err_text.begin(), bad.err_text.end(), '\n'), 1) << bad.err_text;
  ProcessResult nodir = cli({"gc", "--dir", "/nonexistent-shmrepl-dir"});
  EXPECT_EQ(nodir.exit_code, 1);
  EXPECT_TRUE(contains(nodir.err_text, "cannot read /nonexistent-shmrepl-dir")) << nodir.err_text;
  EXPECT_EQ(std::count(nodir.err_text.begin(), nodir.err_text.end(), '\n'), 1) << nodir.err_text;
}
