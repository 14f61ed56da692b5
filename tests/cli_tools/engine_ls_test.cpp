// `shmrepl engine start|stop|status|restart`, `shmrepl ls --json` (parsed back by
// python3), `shmrepl tail --execution ID [-f]` over a real engine on a private
// socket, and the one-line message of a client that meets an engine of another ABI.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "harness.hpp"

using namespace shmrepl::test;
using namespace std::chrono_literals;

namespace {

const EnvChanges kEnv = {{"PYTHONUNBUFFERED", std::nullopt}, {"SHMREPL_SOCKET", std::nullopt}};

ProcessResult cli(const std::string& socket, std::vector<std::string> args) {
  args.insert(args.begin(), {cli_binary(), "--socket", socket});
  return run_process(args, kEnv, false, true, std::chrono::seconds(120));
}

bool contains(const std::string& hay, const std::string& needle) {
  return hay.find(needle) != std::string::npos;
}

long lines(const std::string& s) { return std::count(s.begin(), s.end(), '\n'); }

// The number after `label` in `text`, 0 if absent.
int number_after(const std::string& text, const std::string& label) {
  const std::size_t at = text.find(label);
  return at == std::string::npos ? 0 : std::atoi(text.c_str() + at + label.size());
}

bool wait_for(const std::function<bool()>& ok, std::chrono::seconds timeout = 60s) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!ok()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

// Stops whatever engine the test left at the socket (engines started by the CLI
// are not our children).
struct StopAtEnd {
  std::string socket;
  ~StopAtEnd() { cli(socket, {"engine", "stop"}); }
};

// A program that prints, signals `ready`, waits for `go`, prints more, exits 3.
std::string waiting_program(const TempDir& dir) {
  return "import os, sys, time\nprint('line 0', flush=True)\nopen('" + dir.file("ready") +
         "', 'w').close()\nwhile not os.path.exists('" + dir.file("go") +
         "'): time.sleep(0.01)\nfor i in range(1, 5): print('line', i, flush=True)\nsys.exit(3)\n";
}

}  // namespace

TEST(EngineCommand, StartStatusRestartStop) {
  TempDir dir;
  const std::string socket = dir.file("e.sock");
  StopAtEnd guard{socket};

  ProcessResult none = cli(socket, {"engine", "status"});
  EXPECT_EQ(none.exit_code, 3) << none.err_text;
  EXPECT_EQ(none.out_text, "engine: not running at " + socket + "\n");

  ProcessResult start = cli(socket, {"engine", "start"});
  ASSERT_EQ(start.exit_code, 0) << start.err_text;
  const int pid = number_after(start.out_text, "started engine pid ");
  ASSERT_GT(pid, 0) << start.out_text;
  EXPECT_EQ(start.out_text, "started engine pid " + std::to_string(pid) + " at " + socket + "\n");
  ProcessResult again = cli(socket, {"engine", "start"});
  EXPECT_EQ(again.exit_code, 0);
  EXPECT_EQ(again.out_text, "an engine is already running at " + socket + " (pid " + std::to_string(pid) + ")\n");

  ProcessResult idle = cli(socket, {"engine", "status"});
  EXPECT_EQ(idle.exit_code, 0) << idle.err_text;
  EXPECT_TRUE(contains(idle.out_text, "engine: running at " + socket + "\npid: " + std::to_string(pid) + "\n"))
      << idle.out_text;
  EXPECT_TRUE(contains(idle.out_text, "version: not given by the C ABI; this libshmrepl is ")) << idle.out_text;
  EXPECT_TRUE(contains(idle.out_text, "\nzygote: pid ")) << idle.out_text;
  EXPECT_TRUE(contains(idle.out_text, "\nworkers: 0\n")) << idle.out_text;

  // A session whose execution waits: one worker, and restart refuses.
  shmrepl_client_t* client = connect_to(socket);
  uint64_t worker = 0;
  {
    Session s(client);
    shmrepl_execution_t* e = s.execute(waiting_program(dir));
    ASSERT_TRUE(wait_for([&] { return std::filesystem::exists(dir.file("ready")); }));
    ProcessResult busy = cli(socket, {"engine", "status"});
    EXPECT_TRUE(contains(busy.out_text, "\nworkers: 1\n")) << busy.out_text;
    // "workers: 1", a header line, then "  <pid>  <state>  <rss>".
    const std::size_t at = busy.out_text.find("\nworkers: 1\n");
    ASSERT_NE(at, std::string::npos) << busy.out_text;
    const std::size_t row = busy.out_text.find('\n', at + 12);
    ASSERT_NE(row, std::string::npos) << busy.out_text;
    worker = std::strtoull(busy.out_text.c_str() + row + 1, nullptr, 10);
    ASSERT_GT(worker, 0u) << busy.out_text;
    EXPECT_TRUE(contains(busy.out_text.substr(row), " KiB\n") || contains(busy.out_text.substr(row), " MiB\n"))
        << busy.out_text;
    EXPECT_TRUE(contains(shmrepl_execution_ring_name(e), "." + std::to_string(worker) + "."));

    ProcessResult refused = cli(socket, {"engine", "restart"});
    EXPECT_EQ(refused.exit_code, 1);
    EXPECT_EQ(refused.out_text, "");
    EXPECT_EQ(refused.err_text, "shmrepl engine restart: the engine (pid " + std::to_string(pid) +
                                    ") is running execution " + std::to_string(shmrepl_execution_id(e)) +
                                    " in worker " + std::to_string(worker) + "; use --force to restart anyway\n");
    EXPECT_TRUE(contains(cli(socket, {"engine", "status"}).out_text, "pid: " + std::to_string(pid) + "\n"));

    write_file(dir.file("go"), "");
    shmrepl_reader_t* reader = nullptr;
    ASSERT_EQ(shmrepl_execution_reader(e, nullptr, &reader), SHMREPL_OK);
    Collected c = collect(reader, shmrepl_execution_id(e));
    shmrepl_reader_close(reader);
    EXPECT_EQ(c.end, SHMREPL_E_EOF);
    EXPECT_EQ(c.exit_code, 3);
    shmrepl_execution_close(e);
  }
  // Idle (its session still open): restart replaces it.
  ProcessResult restart = cli(socket, {"engine", "restart"});
  EXPECT_EQ(restart.exit_code, 0) << restart.err_text;
  const int pid2 = number_after(restart.out_text, "started engine pid ");
  EXPECT_TRUE(contains(restart.out_text, "stopped the engine (pid " + std::to_string(pid) + ")\n")) << restart.out_text;
  EXPECT_GT(pid2, 0);
  EXPECT_NE(pid2, pid);
  EXPECT_TRUE(process_gone(pid));
  EXPECT_TRUE(process_gone(static_cast<pid_t>(worker)));
  shmrepl_client_close(client);

  // --force: an execution that runs is cancelled.
  client = connect_to(socket);
  {
    Session s(client);
    std::filesystem::remove(dir.file("ready"));
    std::filesystem::remove(dir.file("go"));
    shmrepl_execution_t* e = s.execute(waiting_program(dir));
    ASSERT_TRUE(wait_for([&] { return std::filesystem::exists(dir.file("ready")); }));
    EXPECT_EQ(cli(socket, {"engine", "restart"}).exit_code, 1);
    ProcessResult forced = cli(socket, {"engine", "restart", "--force"});
    EXPECT_EQ(forced.exit_code, 0) << forced.err_text;
    EXPECT_TRUE(contains(forced.out_text, "stopped the engine (pid " + std::to_string(pid2) + ")\n"))
        << forced.out_text;
    shmrepl_execution_close(e);
  }
  shmrepl_client_close(client);
  const int pid3 = number_after(cli(socket, {"engine", "status"}).out_text, "pid: ");
  EXPECT_GT(pid3, 0);
  EXPECT_NE(pid3, pid2);

  ProcessResult stop = cli(socket, {"engine", "stop"});
  EXPECT_EQ(stop.exit_code, 0) << stop.err_text;
  EXPECT_EQ(stop.out_text, "stopped the engine (pid " + std::to_string(pid3) + ") at " + socket + "\n");
  EXPECT_TRUE(process_gone(pid3));
  EXPECT_EQ(cli(socket, {"engine", "status"}).exit_code, 3);
  ProcessResult stop2 = cli(socket, {"engine", "stop"});
  EXPECT_EQ(stop2.exit_code, 0);
  EXPECT_EQ(stop2.err_text, "shmrepl: no engine is running at " + socket + "\n");
  // `shutdown` is the same.
  ProcessResult shut = cli(socket, {"shutdown"});
  EXPECT_EQ(shut.exit_code, 0);
  EXPECT_EQ(shut.err_text, stop2.err_text);
}

class LiveEngine : public ::testing::Test {
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

TEST_F(LiveEngine, LsJsonShowsTheWorkerAndItsRing) {
  Session s(client);
  shmrepl_execution_t* e = s.execute(waiting_program(dir));
  const std::string ring = shmrepl_execution_ring_name(e);
  const uint64_t id = shmrepl_execution_id(e);
  ASSERT_TRUE(wait_for([&] { return std::filesystem::exists(dir.file("ready")); }));
  // A reader that holds the first records: its position shows, and fill > 0.
  shmrepl_reader_t* reader = nullptr;
  ASSERT_EQ(shmrepl_execution_reader(e, nullptr, &reader), SHMREPL_OK);
  shmrepl_record_t rec{};
  ASSERT_EQ(shmrepl_reader_next(reader, 10'000'000'000, &rec), SHMREPL_OK);
  ASSERT_EQ(shmrepl_reader_release(reader, 1), SHMREPL_OK);

  ProcessResult ls = cli(engine.socket(), {"ls", "--json"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err_text;
  EXPECT_EQ(lines(ls.out_text), 1) << ls.out_text;
  const std::string json = dir.file("ls.json");
  write_file(json, ls.out_text);
  const char* check =
      "import json, sys\n"
      "d = json.load(open(sys.argv[1]))\n"
      "print('keys', sorted(d))\n"
      "e = d['engine']\n"
      "print('engine', e['running'], e['pid'], e['version'], e['other_abi'], len(e['zygotes']))\n"
      "ring = [r for r in d['rings'] if r['name'] == sys.argv[2]][0]\n"
      "w = [w for w in d['workers'] if w['pid'] == ring['worker_pid']][0]\n"
      "print('workers', len(d['workers']), w['state'] in 'RSD', w['rss_kb'] > 1000, sys.argv[2] in w['rings'],\n"
      "      w['executing'])\n"
      "print('ring', ring['execution_id'], ring['producer_pid'] == w['pid'], ring['producer_alive'],\n"
      "      ring['finished'], ring['background'], ring['capacity'] >= 4096)\n"
      "print('fill', ring['bytes_written'] > 0, 0 <= ring['fill'] <= ring['bytes_written'])\n"
      "print('readers', ring['reader_count'], [r['pid'] for r in ring['readers']],\n"
      "      all(0 < r['position'] <= ring['bytes_written'] for r in ring['readers']))\n"
      "print('bg', sum(1 for r in d['rings'] if r['background'] and r['worker_pid'] == w['pid']))\n";
  auto parse = [&] {
    return run_process({"/usr/bin/python3", "-c", check, json, ring}, kEnv, false, true);
  };
  ProcessResult py = parse();
  ASSERT_EQ(py.exit_code, 0) << py.err_text << "\n" << ls.out_text;
  const std::string& o = py.out_text;
  EXPECT_TRUE(contains(o, "keys ['engine', 'rings', 'socket', 'workers']\n")) << o;
  EXPECT_TRUE(contains(o, "engine True " + std::to_string(engine.pid()) + " None False 1\n")) << o;
  EXPECT_TRUE(contains(o, "workers 1 True True True True\n")) << o;
  EXPECT_TRUE(contains(o, "ring " + std::to_string(id) + " True True False False True\n")) << o;
  EXPECT_TRUE(contains(o, "fill True True\n")) << o;
  EXPECT_TRUE(contains(o, "readers 1 [" + std::to_string(getpid()) + "] True\n")) << o;
  EXPECT_TRUE(contains(o, "bg 1\n")) << o;

  // The text form says the same.
  ProcessResult text = cli(engine.socket(), {"ls"});
  EXPECT_EQ(text.exit_code, 0) << text.err_text;
  EXPECT_TRUE(contains(text.out_text, "engine pid " + std::to_string(engine.pid()) + " at " + engine.socket()))
      << text.out_text;
  EXPECT_TRUE(contains(text.out_text, "  " + ring + "\n    execution " + std::to_string(id) + ", worker "))
      << text.out_text;
  EXPECT_TRUE(contains(text.out_text, " running\n")) << text.out_text;
  EXPECT_TRUE(contains(text.out_text, "producer alive, open\n    readers: 1 (pid " + std::to_string(getpid())))
      << text.out_text;

  // Finished: the same ring says so.
  write_file(dir.file("go"), "");
  Collected c = collect(reader, id);
  EXPECT_EQ(c.end, SHMREPL_E_EOF);
  ls = cli(engine.socket(), {"ls", "--json"});
  write_file(json, ls.out_text);
  py = parse();
  ASSERT_EQ(py.exit_code, 0) << py.err_text << "\n" << ls.out_text;
  EXPECT_TRUE(contains(py.out_text, "ring " + std::to_string(id) + " True True True False True\n")) << py.out_text;
  EXPECT_TRUE(contains(py.out_text, "workers 1 True True True False\n")) << py.out_text;
  shmrepl_reader_close(reader);
  shmrepl_execution_close(e);
}

TEST_F(LiveEngine, TailByExecutionFollowsUntilFinished) {
  Session s(client);
  shmrepl_execution_t* e = s.execute(waiting_program(dir));
  const std::string id = std::to_string(shmrepl_execution_id(e));
  ASSERT_TRUE(wait_for([&] { return std::filesystem::exists(dir.file("ready")); }));

  // Without -f: what is there, then it stops.
  ProcessResult now = cli(engine.socket(), {"tail", "--execution", id});
  EXPECT_EQ(now.exit_code, 0) << now.err_text;
  EXPECT_EQ(now.out_text, "line 0\n");

  // -f: the lines as they come, until FINISHED; the program's exit code.
  const std::string log = dir.file("tail.log");
  const pid_t tail = spawn({cli_binary(), "--socket", engine.socket(), "tail", "--execution", id, "-f"}, kEnv, log);
  ASSERT_TRUE(wait_for([&] { return read_file(log) == "line 0\n"; })) << read_file(log);
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(process_gone(tail)) << "tail -f ended before the execution did";
  write_file(dir.file("go"), "");
  EXPECT_EQ(wait_exit(tail, 60s), 3);
  EXPECT_EQ(read_file(log), "line 0\nline 1\nline 2\nline 3\nline 4\n");

  // By ring name, finished: all of it, with or without -f.
  ProcessResult by_name = cli(engine.socket(), {"tail", shmrepl_execution_ring_name(e)});
  EXPECT_EQ(by_name.exit_code, 3);
  EXPECT_EQ(by_name.out_text, "line 0\nline 1\nline 2\nline 3\nline 4\n");
  shmrepl_execution_close(e);

  ProcessResult missing = cli(engine.socket(), {"tail", "--execution", "987654321"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err_text, "shmrepl tail: no ring of execution 987654321 of the engine (pid " +
                                  std::to_string(engine.pid()) + ")\n");
}

// ---- an engine of another ABI version ----

namespace {

// A process that answers every Hello at `socket` with `reply`, as an engine of
// another version would; SIGTERM ends it (as `shmrepl engine stop` sends).
pid_t fake_other_engine(const std::string& socket, const shmrepl::control::Frame& reply) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket.c_str(), sizeof addr.sun_path - 1);
  const pid_t pid = fork();
  if (pid == 0) {
    // Listens here, not before fork: SO_PEERCRED names the process that listened.
    // Only async-signal-safe calls after fork.
    signal(SIGPIPE, SIG_IGN);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || listen(fd, 8) != 0) _exit(1);
    for (;;) {
      const int c = accept(fd, nullptr, nullptr);
      if (c < 0) continue;
      char buf[4096];
      if (read(c, buf, sizeof buf) > 0) {
        const ssize_t n = write(c, reply.data(), reply.size());
        (void)n;
      }
      close(c);
    }
  }
  // Listening (not only bound): a refused connect would make the CLI start an engine.
  auto listening = [&] {
    const int c = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const bool ok = connect(c, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
    close(c);
    return ok;
  };
  if (!wait_for([&] { return listening() || process_gone(pid); }, 10s) || process_gone(pid))
    throw std::runtime_error("the fake engine did not listen at " + socket);
  return pid;
}

}  // namespace

namespace {

// The zygote's children named `comm` (the warm spare: "shmrepl-spare").
std::vector<int> zygote_children(int zygote, const std::string& comm) {
  std::vector<int> out;
  std::ifstream f("/proc/" + std::to_string(zygote) + "/task/" + std::to_string(zygote) + "/children");
  for (int pid; f >> pid;) {
    std::ifstream c("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    if (std::getline(c, name) && name == comm) out.push_back(pid);
  }
  return out;
}

}  // namespace

// The engine keeps one worker forked ahead (docs/architecture.md, "Zygote"): it is no
// session's, so `engine status` and `ls` do not list it; the next warm session takes
// it; a session whose environment needs a fresh worker does not.
TEST(EngineCommand, WarmSpareIsNoSessionAndFreshSessionsBypassIt) {
  TempDir dir;
  const std::string socket = dir.file("e.sock");
  StopAtEnd guard{socket};
  EnvChanges env = kEnv;
  env["PYTHONHASHSEED"] = std::nullopt;  // the engine's and the warm sessions' environment
  auto run = [&](const EnvChanges& e, const std::string& code) {
    return run_process({cli_binary(), "--socket", socket, "run", "-c", code}, e, false, true, 120s);
  };
  ASSERT_EQ(run_process({cli_binary(), "--socket", socket, "engine", "start"}, env, false, true, 60s).exit_code, 0);
  const int zygote = number_after(cli(socket, {"engine", "status"}).out_text, "\nzygote: pid ");
  ASSERT_GT(zygote, 0);
  std::vector<int> spares;
  ASSERT_TRUE(wait_for([&] { return (spares = zygote_children(zygote, "shmrepl-spare")).size() == 1; }));
  const int spare = spares[0];

  ProcessResult status = cli(socket, {"engine", "status"});
  EXPECT_TRUE(contains(status.out_text, "\nworkers: 0\n")) << status.out_text;
  ProcessResult ls = cli(socket, {"ls", "--json"});
  EXPECT_TRUE(contains(ls.out_text, "\"workers\":[]")) << ls.out_text;

  // A warm session: the spare becomes its worker, listed while it runs.
  const std::string code =
      std::string("import os, subprocess\nprint(os.getpid())\n") +
      "print(subprocess.run(['" + std::string(cli_binary()) + "', '--socket', '" + socket +
      "', 'engine', 'status'], capture_output=True, text=True).stdout, end='')\n";
  ProcessResult first = run(env, code);
  ASSERT_EQ(first.exit_code, 0) << first.err_text;
  EXPECT_EQ(std::atoi(first.out_text.c_str()), spare) << first.out_text;
  EXPECT_TRUE(contains(first.out_text, "\nworkers: 1\n")) << first.out_text;
  EXPECT_TRUE(contains(first.out_text, "\n  " + std::string(8 - std::to_string(spare).size(), ' ') +
                                           std::to_string(spare) + "  "))
      << first.out_text;

  // Another spare is forked for the next session.
  int next = 0;
  ASSERT_TRUE(wait_for([&] {
    spares = zygote_children(zygote, "shmrepl-spare");
    return spares.size() == 1 && spares[0] != spare && (next = spares[0]) != 0;
  }));

  // A start-up-only variable of another value: a fresh worker, the spare left waiting.
  EnvChanges seeded = env;
  seeded["PYTHONHASHSEED"] = "0";
  ProcessResult fresh = run(seeded, "import os, sys\nprint(os.getpid(), sys.flags.hash_randomization)");
  ASSERT_EQ(fresh.exit_code, 0) << fresh.err_text;
  EXPECT_EQ(fresh.out_text.substr(fresh.out_text.find(' ')), " 0\n") << fresh.out_text;
  EXPECT_NE(std::atoi(fresh.out_text.c_str()), next) << fresh.out_text;
  EXPECT_EQ(zygote_children(zygote, "shmrepl-spare"), std::vector<int>{next});

  // The spare goes with the engine.
  ASSERT_EQ(cli(socket, {"engine", "stop"}).exit_code, 0);
  EXPECT_TRUE(wait_for([&] { return process_gone(next); }));
}

// A program may name itself as the spare is named: `ls` tells the spare by the session
// it has not got (no background ring in the engine), not by its name.
TEST_F(LiveEngine, LsListsAWorkerNamedLikeTheSpare) {
  auto pid_of = [&](const std::string& file) {
    int pid = 0;
    EXPECT_TRUE(wait_for([&] { return (pid = std::atoi(read_file(file).c_str())) > 0; }));
    return pid;
  };
  const int zygote = number_after(cli(engine.socket(), {"engine", "status"}).out_text, "\nzygote: pid ");
  ASSERT_GT(zygote, 0);
  ASSERT_TRUE(wait_for([&] { return zygote_children(zygote, "shmrepl-spare").size() == 1; }));
  // `a` takes the spare the engine started with; `b` finds none, so another is forked.
  Session a(client), b(client);
  shmrepl_execution_t* ea = a.execute(
      "import ctypes, os\nctypes.CDLL(None).prctl(15, b'shmrepl-spare', 0, 0, 0)\n"
      "open('" + dir.file("a.tmp") + "', 'w').write(str(os.getpid()))\n"
      "os.rename('" + dir.file("a.tmp") + "', '" + dir.file("a") + "')\n");
  shmrepl_execution_t* eb = b.execute(
      "import os\nopen('" + dir.file("b.tmp") + "', 'w').write(str(os.getpid()))\n"
      "os.rename('" + dir.file("b.tmp") + "', '" + dir.file("b") + "')\n");
  ASSERT_TRUE(wait_for([&] { return std::filesystem::exists(dir.file("a")) && std::filesystem::exists(dir.file("b")); }));
  const int pa = pid_of(dir.file("a")), pb = pid_of(dir.file("b"));
  std::vector<int> named;
  ASSERT_TRUE(wait_for([&] { return (named = zygote_children(zygote, "shmrepl-spare")).size() == 2; }))
      << "no spare beside the renamed worker";
  ASSERT_NE(std::find(named.begin(), named.end(), pa), named.end());

  ProcessResult ls = cli(engine.socket(), {"ls", "--json"});
  ASSERT_EQ(ls.exit_code, 0) << ls.err_text;
  const std::string json = dir.file("ls.json");
  write_file(json, ls.out_text);
  ProcessResult py = run_process({"/usr/bin/python3", "-c",
                                  "import json, sys\n"
                                  "print(sorted(w['pid'] for w in json.load(open(sys.argv[1]))['workers']))",
                                  json},
                                 kEnv, false, true);
  ASSERT_EQ(py.exit_code, 0) << py.err_text;
  const auto [lo, hi] = std::minmax(pa, pb);
  EXPECT_EQ(py.out_text, "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]\n") << ls.out_text;
  EXPECT_TRUE(contains(cli(engine.socket(), {"engine", "status"}).out_text, "\nworkers: 2\n"));
  shmrepl_execution_close(ea);
  shmrepl_execution_close(eb);
}

TEST(OtherVersion, OneLineWithBothVersionsAndTheFix) {
  TempDir dir;
  const std::string socket = dir.file("old.sock");
  const std::string fix = "`shmrepl --socket " + socket + " engine restart` replaces it";
  const std::string ours = "than this library (shmrepl " + std::string(shmrepl_version()) + ", ABI " +
                           std::to_string(SHMREPL_ABI_VERSION) + ")";
  const std::string other = std::to_string(SHMREPL_ABI_VERSION + 1);
  {
    SCOPED_TRACE("the engine refuses our Hello (an engine checks the client's ABI)");
    const pid_t fake = fake_other_engine(
        socket, shmrepl::control::error(1, SHMREPL_E_VERSION,
                                        "client speaks ABI version 1, engine " + other));
    ProcessResult run = cli(socket, {"run", "-c", "pass"});
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_EQ(lines(run.err_text), 1) << run.err_text;
    EXPECT_TRUE(contains(run.err_text, "the engine at " + socket + " is of another version (ABI " + other + ") " +
                                           ours + "; " + fix))
        << run.err_text;

    ProcessResult status = cli(socket, {"engine", "status"});
    EXPECT_EQ(status.exit_code, 0) << status.err_text;
    EXPECT_TRUE(contains(status.out_text, "pid: " + std::to_string(fake) + "\nversion: another ABI version"))
        << status.out_text;
    ProcessResult start = cli(socket, {"engine", "start"});
    EXPECT_EQ(start.exit_code, 0) << start.err_text;
    EXPECT_TRUE(contains(start.out_text, "of another ABI version: `shmrepl engine restart` replaces it"))
        << start.out_text;
    // It cannot take our Shutdown: stop sends SIGTERM.
    ProcessResult stop = cli(socket, {"engine", "stop"});
    EXPECT_EQ(stop.exit_code, 0) << stop.err_text;
    EXPECT_EQ(stop.out_text, "stopped the engine (pid " + std::to_string(fake) + ") at " + socket + "\n");
    EXPECT_EQ(wait_exit(fake, 10s), 128 + SIGTERM);
    std::filesystem::remove(socket);
  }
  {
    SCOPED_TRACE("the engine replies with its own ABI version");
    const pid_t fake = fake_other_engine(socket, shmrepl::control::hello_reply(1, SHMREPL_ABI_VERSION + 1, 4242, "9.9.9"));
    ProcessResult run = cli(socket, {"run", "-c", "pass"});
    EXPECT_EQ(run.exit_code, 1);
    EXPECT_EQ(lines(run.err_text), 1) << run.err_text;
    EXPECT_TRUE(contains(run.err_text, "is of another version (shmrepl 9.9.9, ABI " + other + ") " + ours + "; " + fix))
        << run.err_text;
    kill(fake, SIGKILL);
    wait_exit(fake, 10s);
  }
}

TEST(EngineCommand, HelpAndErrors) {
  TempDir dir;
  const std::string socket = dir.file("none.sock");
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"engine", "--help"}, {"ls", "--help"}, {"tail", "--help"}, {"engine", "start", "--help"}}) {
    ProcessResult r = cli(socket, args);
    EXPECT_EQ(r.exit_code, 0) << args[0];
    EXPECT_EQ(r.out_text.rfind("usage: shmrepl", 0), 0u) << r.out_text;
  }
  EXPECT_TRUE(contains(cli(socket, {"tail", "--help"}).out_text, "--execution ID"));
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"engine"}, {"engine", "bogus"}, {"engine", "status", "--force"}, {"ls", "--bogus"},
           {"tail", "--execution", "x"}, {"tail", "--execution"}, {"tail", "ring", "--execution", "1"}, {"tail"}}) {
    ProcessResult r = cli(socket, args);
    EXPECT_EQ(r.exit_code, 2) << args.back();
    EXPECT_EQ(lines(r.err_text), 1) << r.err_text;
    EXPECT_EQ(r.out_text, "");
  }
  ProcessResult ls = cli(socket, {"ls"});
  EXPECT_EQ(ls.exit_code, 0) << ls.err_text;
  EXPECT_EQ(ls.out_text, "no engine is running at " + socket + "\n");
  ProcessResult lsj = cli(socket, {"ls", "--json"});
  EXPECT_EQ(lsj.out_text, "{\"socket\":\"" + socket + "\",\"engine\":{\"running\":false},\"workers\":[],\"rings\":[]}\n");
  ProcessResult tail = cli(socket, {"tail", "--execution", "987654321"});
  EXPECT_EQ(tail.exit_code, 1);
  EXPECT_EQ(lines(tail.err_text), 1) << tail.err_text;
  EXPECT_FALSE(std::filesystem::exists(socket));  // nothing started an engine
}
