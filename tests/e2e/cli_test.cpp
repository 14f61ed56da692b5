// The shmrepl command line: output and exit codes as python3's, help, errors,
// Ctrl-C, tail, shutdown and auto-start.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "harness.hpp"

using namespace shmrepl::test;
using Clock = std::chrono::steady_clock;

namespace {

// Auto-started engines detach; as subreaper this process can still reap them.
const int g_subreaper = prctl(PR_SET_CHILD_SUBREAPER, 1);

const EnvChanges kBuffered = {{"PYTHONUNBUFFERED", std::nullopt}, {"SHMREPL_SOCKET", std::nullopt}};

class CliTest : public ::testing::Test {
 protected:
  TempDir dir;
  std::string socket = dir.file("engine.sock");
  EngineProcess engine{engine_binary(), socket};

  ProcessResult cli(std::vector<std::string> args, bool keep_text = true) {
    args.insert(args.begin(), {cli_binary(), "--socket", socket});
    return run_process(args, kBuffered, false, keep_text, std::chrono::seconds(300));
  }
  ProcessResult python(const std::vector<std::string>& args) {
    std::vector<std::string> a = {kPython};
    a.insert(a.end(), args.begin(), args.end());
    return run_process(a, kBuffered, false, true);
  }
  void expect_same(const std::vector<std::string>& args) {
    SCOPED_TRACE(args.back());
    ProcessResult mine = cli([&] {
      std::vector<std::string> a = {"run"};
      a.insert(a.end(), args.begin(), args.end());
      return a;
    }(), false);
    ProcessResult ref = python(args);
    EXPECT_EQ(mine.exit_code, ref.exit_code) << mine.err.head;
    EXPECT_EQ(mine.out, ref.out) << describe(mine.out) << "\nvs python3: " << describe(ref.out);
    EXPECT_EQ(mine.err, ref.err) << describe(mine.err) << "\nvs python3: " << describe(ref.err);
  }
};

}  // namespace

TEST_F(CliTest, WorkloadsByteForByte) {
  for (const char* w : {"w1_seed_lines.py", "w4_tiny_writes.py", "w7_unicode.py", "w8_fd_level.py",
                        "w9_exception.py"})
    expect_same({workload(w)});
}

TEST_F(CliTest, ExitCodes) {
  write_file(dir.file("ok.py"), "print('fine')\n");
  write_file(dir.file("raise.py"), "print('before')\nraise RuntimeError('bad thing')\n");
  write_file(dir.file("exit3.py"), "import sys\nprint('leaving')\nsys.exit(3)\n");
  write_file(dir.file("exitmsg.py"), "import sys\nsys.exit('a message')\n");
  write_file(dir.file("syntax.py"), "def f(:\n  pass\n");
  ProcessResult ok = cli({"run", dir.file("ok.py")});
  EXPECT_EQ(ok.exit_code, 0);
  EXPECT_EQ(ok.out_text, "fine\n");
  ProcessResult bad = cli({"run", dir.file("raise.py")});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err_text.find("Traceback (most recent call last):"), std::string::npos) << bad.err_text;
  EXPECT_NE(bad.err_text.find("RuntimeError: bad thing"), std::string::npos) << bad.err_text;
  ProcessResult three = cli({"run", dir.file("exit3.py")});
  EXPECT_EQ(three.exit_code, 3);
  EXPECT_EQ(three.out_text, "leaving\n");
  for (const char* f : {"raise.py", "exit3.py", "exitmsg.py", "syntax.py"}) expect_same({dir.file(f)});
}

TEST_F(CliTest, ArgvAndInlineCode) {
  write_file(dir.file("argv.py"), "import sys\nprint(sys.argv)\n");
  expect_same({dir.file("argv.py"), "one", "two words", "--flag"});
  ProcessResult c = cli({"run", "-c", "import sys; print(sys.argv); print('e', file=sys.stderr)", "x", "-y"});
  ProcessResult ref = python({"-c", "import sys; print(sys.argv); print('e', file=sys.stderr)", "x", "-y"});
  EXPECT_EQ(c.exit_code, 0);
  EXPECT_EQ(c.out_text, ref.out_text);
  EXPECT_EQ(c.err_text, ref.err_text);
  ProcessResult r = cli({"run", "-c", "1/0"});
  ProcessResult rref = python({"-c", "1/0"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err_text, rref.err_text);
}

TEST_F(CliTest, MissingFileLikePython) {
  const std::string missing = dir.file("no-such-file.py");
  ProcessResult r = cli({"run", missing});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err_text, "shmrepl: can't open file '" + missing + "': [Errno 2] No such file or directory\n");
  ProcessResult ref = python({missing});
  EXPECT_EQ(ref.exit_code, 2);
  EXPECT_NE(ref.err_text.find("can't open file '" + missing + "': [Errno 2]"), std::string::npos);
  EXPECT_TRUE(r.out_text.empty());
}

TEST_F(CliTest, HelpAndBadUsage) {
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {"--help"}, {"help"}, {"run", "--help"}, {"tail", "--help"}, {"shutdown", "--help"}}) {
    ProcessResult r = cli(args);
    EXPECT_EQ(r.exit_code, 0) << args[0];
    EXPECT_EQ(r.out_text.rfind("usage: shmrepl", 0), 0u) << r.out_text;
  }
  ProcessResult none = run_process({cli_binary()}, kBuffered, false, true);
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_NE(none.err_text.find("usage:"), std::string::npos);
  EXPECT_EQ(cli({"frobnicate"}).exit_code, 2);
  EXPECT_EQ(cli({"run"}).exit_code, 2);
  EXPECT_EQ(cli({"run", "--bogus", "x.py"}).exit_code, 2);
  EXPECT_EQ(cli({"run", "-c"}).exit_code, 2);
  EXPECT_EQ(cli({"tail"}).exit_code, 2);
  ProcessResult eh = run_process({engine_binary(), "--help"}, kBuffered, false, true);
  EXPECT_EQ(eh.exit_code, 0);
  EXPECT_EQ(eh.out_text.rfind("usage: shmrepl-engine", 0), 0u);
  EXPECT_EQ(run_process({engine_binary(), "--bogus"}, kBuffered).exit_code, 2);
  EXPECT_EQ(run_process({engine_binary(), "--ring-capacity", "12"}, kBuffered).exit_code, 2);
  // The ring-byte limits: in the help; a bad value, by flag or environment, says which.
  EXPECT_NE(eh.out_text.find("--max-client-ring-bytes SIZE"), std::string::npos) << eh.out_text;
  EXPECT_NE(eh.out_text.find("[SHMREPL_MAX_RING_BYTES]"), std::string::npos) << eh.out_text;
  ProcessResult bad = run_process({engine_binary(), "--max-client-ring-bytes", "0"}, kBuffered, false, true);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err_text.find("--max-client-ring-bytes: not a size > 0"), std::string::npos) << bad.err_text;
  EnvChanges env = kBuffered;
  env["SHMREPL_MAX_RING_BYTES"] = "2X";
  bad = run_process({engine_binary(), "--version"}, env, false, true);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err_text.find("SHMREPL_MAX_RING_BYTES"), std::string::npos) << bad.err_text;
}

// Ctrl-C cancels the execution; the CLI exits 130 like python3 after a
// KeyboardInterrupt, with the traceback on stderr.
TEST_F(CliTest, InterruptCancels) {
  const std::string ready = dir.file("ready");
  write_file(dir.file("sleep.py"),
             "import time\nprint('sleeping')\nopen('" + ready + "', 'w').close()\ntime.sleep(1000)\n");
  const std::string log = dir.file("cli.log");
  pid_t pid = spawn({cli_binary(), "--socket", socket, "run", dir.file("sleep.py")}, kBuffered, log);
  struct stat st {};
  const auto deadline = Clock::now() + std::chrono::seconds(30);
  while (stat(ready.c_str(), &st) != 0 && Clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_EQ(stat(ready.c_str(), &st), 0);
  kill(pid, SIGINT);
  EXPECT_EQ(wait_exit(pid, std::chrono::seconds(20)), 130);
  const std::string out = read_file(log);
  EXPECT_NE(out.find("sleeping\n"), std::string::npos) << out;
  EXPECT_NE(out.find("KeyboardInterrupt"), std::string::npos) << out;
  // The engine lives on.
  EXPECT_EQ(cli({"run", "-c", "print('next')"}).out_text, "next\n");
}

TEST_F(CliTest, TailPrintsARing) {
  shmrepl_client_t* c = connect_to(socket);
  {
    Session s(c);
    shmrepl_execution_t* e = s.execute("import sys\nprint('to stdout')\nprint('to stderr', file=sys.stderr)\nsys.exit(4)\n");
    const std::string ring = shmrepl_execution_ring_name(e);
    ProcessResult r = cli({"tail", "-f", ring});
    EXPECT_EQ(r.exit_code, 4);
    EXPECT_EQ(r.out_text, "to stdout\n");
    EXPECT_EQ(r.err_text, "to stderr\n");
    ProcessResult raw = cli({"tail", "--raw", ring});  // finished by now: all of it
    EXPECT_EQ(raw.exit_code, 0);
    EXPECT_NE(raw.out_text.find("seq=0 "), std::string::npos) << raw.out_text;
    EXPECT_NE(raw.out_text.find("STARTED"), std::string::npos);
    EXPECT_NE(raw.out_text.find("OUTPUT stdout len=10 \"to stdout\\n\""), std::string::npos) << raw.out_text;
    EXPECT_NE(raw.out_text.find("FINISHED status=3 exit_code=4"), std::string::npos) << raw.out_text;
    shmrepl_execution_close(e);
  }
  shmrepl_client_close(c);
  ProcessResult none = cli({"tail", "shmrepl.0.0.0"});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err_text.find("not found"), std::string::npos) << none.err_text;
}

TEST_F(CliTest, ShutdownStopsTheEngine) {
  ProcessResult r = cli({"shutdown"});
  EXPECT_EQ(r.exit_code, 0) << r.err_text;
  EXPECT_EQ(engine.wait(std::chrono::seconds(20)), 0);
  struct stat st {};
  EXPECT_NE(lstat(socket.c_str(), &st), 0);
  ProcessResult again = cli({"shutdown"});
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_NE(again.err_text.find("no engine is running"), std::string::npos) << again.err_text;
}

// No engine listens: `shmrepl run` starts one (found next to libshmrepl).
TEST(CliAutostart, RunStartsAnEngine) {
  TempDir dir;
  const std::string socket = dir.file("auto.sock");
  ProcessResult r = run_process({cli_binary(), "--socket", socket, "run", "-c", "print('auto')"}, kBuffered,
                                false, true, std::chrono::seconds(60));
  EXPECT_EQ(r.exit_code, 0) << r.err_text << read_file(socket + ".log");
  EXPECT_EQ(r.out_text, "auto\n");
  ProcessResult off = run_process(
      {cli_binary(), "--socket", dir.file("other.sock"), "run", "--no-autostart", "-c", "print(1)"}, kBuffered,
      false, true);
  EXPECT_EQ(off.exit_code, 1);
  EXPECT_NE(off.err_text.find("autostart is off"), std::string::npos) << off.err_text;
  std::vector<pid_t> engines = children();
  EXPECT_EQ(engines.size(), 1u);
  EXPECT_EQ(run_process({cli_binary(), "--socket", socket, "shutdown"}, kBuffered).exit_code, 0);
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  for (pid_t p : engines)
    while (!process_gone(p) && Clock::now() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_TRUE(children().empty());
}
