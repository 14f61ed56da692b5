// The control protocol without sockets: framing, verification, the peer rule, the
// socket path, the engine's options, and the Dispatcher over a fake engine.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <random>

#include "control.hpp"
#include "dispatcher.hpp"
#include "fake_engine.hpp"
#include "harness.hpp"
#include "limits.hpp"
#include "options.hpp"

namespace ctl = shmrepl::ctl;
namespace control = shmrepl::control;
using shmrepl::server::Dispatcher;
using shmrepl::server::Reply;

namespace {

// The body of a frame, in aligned storage.
std::vector<uint8_t> body_of(const control::Frame& f) {
  return std::vector<uint8_t>(f.begin() + control::kPrefixSize, f.end());
}

struct Parsed {
  std::vector<uint8_t> body;
  const ctl::Message* m = nullptr;
};

Parsed parse(const control::Frame& f) {
  Parsed p{body_of(f), nullptr};
  std::string err;
  p.m = control::verify(p.body, &err);
  return p;
}

}  // namespace

TEST(ControlCodec, RoundTripsEveryMessage) {
  control::ExecuteFields f;
  f.session_id = 7;
  f.code = "print('hi')\n";
  f.client_execution_id = "cid-1";
  f.filename = "prog.py";
  f.argv = {"prog.py", "a", "b"};
  f.script = true;
  f.ring_capacity = 1 << 16;
  Parsed p = parse(control::execute(42, f));
  ASSERT_NE(p.m, nullptr);
  EXPECT_EQ(p.m->request_id(), 42u);
  ASSERT_EQ(p.m->body_type(), ctl::Body::Execute);
  const ctl::Execute* x = p.m->body_as_Execute();
  EXPECT_EQ(x->session_id(), 7u);
  EXPECT_EQ(x->code()->str(), "print('hi')\n");
  EXPECT_EQ(x->client_execution_id()->str(), "cid-1");
  EXPECT_EQ(x->filename()->str(), "prog.py");
  ASSERT_EQ(x->argv()->size(), 3u);
  EXPECT_EQ(x->argv()->Get(2)->str(), "b");
  EXPECT_TRUE(x->script());
  EXPECT_EQ(x->ring_capacity(), 1u << 16);

  struct Case {
    control::Frame frame;
    ctl::Body type;
  };
  const Case cases[] = {
      {control::hello(1, 1, 99), ctl::Body::Hello},
      {control::open_session(2), ctl::Body::OpenSession},
      {control::cancel(3, 5), ctl::Body::Cancel},
      {control::release(4, 5), ctl::Body::Release},
      {control::close_session(5, 6), ctl::Body::CloseSession},
      {control::shutdown(6), ctl::Body::Shutdown},
      {control::hello_reply(7, 1, 123, "0.1.0"), ctl::Body::HelloReply},
      {control::session_opened(8, 9, ""), ctl::Body::SessionOpened},
      {control::accepted(9, 10, "shmrepl.0.1.2"), ctl::Body::Accepted},
      {control::ok(10), ctl::Body::Ok},
      {control::error(11, SHMREPL_E_NOT_FOUND, "nope"), ctl::Body::Error},
      {control::input_reply(12, 13, "text\n"), ctl::Body::InputReply},
  };
  for (const Case& c : cases) {
    Parsed q = parse(c.frame);
    ASSERT_NE(q.m, nullptr) << control::body_name(c.type);
    EXPECT_EQ(q.m->body_type(), c.type);
    uint32_t len = 0;
    std::memcpy(&len, c.frame.data(), 4);
    EXPECT_EQ(len, c.frame.size() - 4);
  }
  Parsed e = parse(control::error(11, SHMREPL_E_NOT_FOUND, "nope"));
  EXPECT_EQ(e.m->body_as_Error()->code(), SHMREPL_E_NOT_FOUND);
  EXPECT_EQ(e.m->body_as_Error()->message()->str(), "nope");
  EXPECT_TRUE(control::is_request(ctl::Body::Execute));
  EXPECT_TRUE(control::is_request(ctl::Body::InputReply));
  EXPECT_FALSE(control::is_request(ctl::Body::Accepted));
  Parsed in = parse(control::input_reply(12, 13, "text\n"));
  EXPECT_EQ(in.m->body_as_InputReply()->execution_id(), 13u);
  EXPECT_EQ(in.m->body_as_InputReply()->text()->str(), "text\n");
  control::SessionFields tty;
  tty.stdin = true;
  tty.stderr_tty = true;
  Parsed os = parse(control::open_session(14, tty));
  const ctl::OpenSession* o = os.m->body_as_OpenSession();
  EXPECT_TRUE(o->stdin());
  EXPECT_FALSE(o->stdout_tty());
  EXPECT_TRUE(o->stderr_tty());
}

TEST(ControlCodec, PrefixLimits) {
  std::string err;
  uint32_t len = 0;
  auto prefix = [](uint32_t n) {
    std::array<uint8_t, 4> p{};
    std::memcpy(p.data(), &n, 4);
    return p;
  };
  EXPECT_EQ(control::parse_prefix(prefix(100), &len, &err), SHMREPL_OK);
  EXPECT_EQ(len, 100u);
  EXPECT_EQ(control::parse_prefix(prefix(control::kMaxMessage), &len, &err), SHMREPL_OK);
  EXPECT_EQ(control::parse_prefix(prefix(control::kMaxMessage + 1), &len, &err), SHMREPL_E_TOO_LARGE);
  EXPECT_EQ(control::parse_prefix(prefix(0xffffffffu), &len, &err), SHMREPL_E_TOO_LARGE);
  EXPECT_EQ(control::parse_prefix(prefix(0), &len, &err), SHMREPL_E_PROTOCOL);
}

TEST(ControlCodec, RejectsGarbageAndTruncation) {
  std::string err;
  std::vector<uint8_t> junk(64, 0xAB);
  EXPECT_EQ(control::verify(junk, &err), nullptr);
  std::vector<uint8_t> tiny(3, 0);
  EXPECT_EQ(control::verify(tiny, &err), nullptr);
  // A truncation of a valid message fails verification unless it only cut the
  // trailing padding; it never reads outside the buffer (ASan checks that).
  control::Frame f = control::execute(1, control::ExecuteFields{3, "x = 1", "", "f.py", {"a"}, true, 0});
  std::vector<uint8_t> body = body_of(f);
  int refused = 0;
  for (std::size_t n = 0; n < body.size(); ++n) {
    std::vector<uint8_t> part(body.begin(), body.begin() + static_cast<std::ptrdiff_t>(n));
    const ctl::Message* m = control::verify(part, &err);
    if (m == nullptr) {
      ++refused;
      continue;
    }
    EXPECT_GE(n, body.size() - 8) << "only padding may be cut";
    EXPECT_EQ(m->body_as_Execute()->code()->str(), "x = 1");
  }
  EXPECT_GE(refused, static_cast<int>(body.size()) - 8);
  // A records-schema buffer (other identifier) is not a control message.
  std::vector<uint8_t> other = body;
  std::memcpy(other.data() + 4, "SHRP", 4);
  EXPECT_EQ(control::verify(other, &err), nullptr);
  // Random bit flips: verify either accepts (a still well-formed buffer) or refuses.
  std::mt19937 rng(1);
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> b = body;
    b[rng() % b.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
    const ctl::Message* m = control::verify(b, &err);
    if (m != nullptr && m->body_type() == ctl::Body::Execute && m->body_as_Execute()->code() != nullptr) {
      EXPECT_LE(m->body_as_Execute()->code()->size(), b.size());
    }
  }
}

TEST(ControlCodec, VerifyStreamSplitsFrames) {
  control::Frame a = control::hello(1, 1, 1), b = control::open_session(2);
  std::vector<uint8_t> stream(a.begin(), a.end());
  stream.insert(stream.end(), b.begin(), b.end());
  std::size_t count = 0;
  std::string err;
  EXPECT_EQ(control::verify_stream(stream, &count, &err), SHMREPL_OK);
  EXPECT_EQ(count, 2u);
  stream.pop_back();
  EXPECT_EQ(control::verify_stream(stream, &count, &err), SHMREPL_E_AGAIN);
  EXPECT_EQ(count, 1u);
  std::vector<uint8_t> big = {0xff, 0xff, 0xff, 0x7f, 1, 2, 3};
  EXPECT_EQ(control::verify_stream(big, &count, &err), SHMREPL_E_TOO_LARGE);
}

TEST(ControlPeers, OnlyTheSameUid) {
  EXPECT_TRUE(control::peer_allowed(1000, 1000));
  EXPECT_FALSE(control::peer_allowed(1001, 1000));
  EXPECT_FALSE(control::peer_allowed(0, 1000));  // not even root
  EXPECT_FALSE(control::peer_allowed(1000, 0));
  EXPECT_TRUE(control::peer_allowed(0, 0));
}

TEST(ControlPaths, ExplicitThenEnvThenDefault) {
  bool is_default = true;
  EXPECT_EQ(control::socket_path("/x/y.sock", &is_default), "/x/y.sock");
  EXPECT_FALSE(is_default);
  setenv("SHMREPL_SOCKET", "/env/e.sock", 1);
  EXPECT_EQ(control::socket_path(nullptr, &is_default), "/env/e.sock");
  EXPECT_FALSE(is_default);
  unsetenv("SHMREPL_SOCKET");
  setenv("XDG_RUNTIME_DIR", "/run/user/42", 1);
  EXPECT_EQ(control::socket_path("", &is_default), "/run/user/42/shmrepl/default.sock");
  EXPECT_TRUE(is_default);
  unsetenv("XDG_RUNTIME_DIR");
  EXPECT_EQ(control::socket_path(nullptr, &is_default),
            "/tmp/shmrepl-" + std::to_string(geteuid()) + "/default.sock");
  EXPECT_EQ(control::parent_dir("/a/b/c.sock"), "/a/b");
  EXPECT_EQ(control::parent_dir("c.sock"), ".");
}

TEST(ControlPaths, PrivateDirIsCreatedAndChecked) {
  shmrepl::test::TempDir t;
  std::string err;
  const std::string d = t.file("sock");
  ASSERT_EQ(control::ensure_private_dir(d, &err), SHMREPL_OK) << err;
  struct stat st {};
  ASSERT_EQ(stat(d.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  EXPECT_EQ(control::ensure_private_dir(d, &err), SHMREPL_OK);  // exists: fine
  chmod(d.c_str(), 0755);
  EXPECT_EQ(control::ensure_private_dir(d, &err), SHMREPL_E_PERMISSION);
  EXPECT_NE(err.find("group or others"), std::string::npos) << err;
  const std::string link = t.file("link");
  ASSERT_EQ(symlink(d.c_str(), link.c_str()), 0);
  EXPECT_EQ(control::ensure_private_dir(link, &err), SHMREPL_E_PERMISSION);
  shmrepl::test::write_file(t.file("plain"), "x");
  EXPECT_EQ(control::ensure_private_dir(t.file("plain"), &err), SHMREPL_E_PERMISSION);
}

TEST(EngineOptions, Parse) {
  shmrepl::server::Options o;
  std::string err;
  EXPECT_TRUE(shmrepl::server::parse_options({"--socket", "/s", "--ring-capacity", "64K"}, &o, &err));
  EXPECT_EQ(o.socket, "/s");
  EXPECT_EQ(o.ring_capacity, 65536u);
  shmrepl::server::Options o2;
  EXPECT_TRUE(shmrepl::server::parse_options({"--ring-capacity=2M", "--help"}, &o2, &err));
  EXPECT_EQ(o2.ring_capacity, 2u << 20);
  EXPECT_TRUE(o2.help);
  shmrepl::server::Options o3;
  EXPECT_FALSE(shmrepl::server::parse_options({"--socket"}, &o3, &err));
  err.clear();
  EXPECT_FALSE(shmrepl::server::parse_options({"--ring-capacity", "lots"}, &o3, &err));
  err.clear();
  EXPECT_FALSE(shmrepl::server::parse_options({"--bogus"}, &o3, &err));
  EXPECT_NE(err.find("--bogus"), std::string::npos);
}

// The limits: defaults, flags (also as --flag=value), the environment, bad values.
TEST(EngineOptions, Limits) {
  shmrepl::server::Options o;
  std::string err;
  EXPECT_EQ(o.limits.max_client_sessions, 128u);
  EXPECT_EQ(o.limits.hello_timeout_ms, 5000);
  EXPECT_TRUE(shmrepl::server::parse_options({"--max-sessions", "7", "--max-client-sessions=3", "--max-connections",
                                              "9", "--max-client-connections", "2", "--hello-timeout", "0.25"},
                                             &o, &err))
      << err;
  EXPECT_EQ(o.limits.max_sessions, 7u);
  EXPECT_EQ(o.limits.max_client_sessions, 3u);
  EXPECT_EQ(o.limits.max_connections, 9u);
  EXPECT_EQ(o.limits.max_client_connections, 2u);
  EXPECT_EQ(o.limits.hello_timeout_ms, 250);
  for (const char* bad : {"0", "-1", "x", "4294967296"}) {
    shmrepl::server::Options b;
    err.clear();
    EXPECT_FALSE(shmrepl::server::parse_options({"--max-sessions", bad}, &b, &err)) << bad;
    EXPECT_NE(err.find("--max-sessions"), std::string::npos) << err;
  }
  shmrepl::server::Options b;
  err.clear();
  EXPECT_FALSE(shmrepl::server::parse_options({"--hello-timeout", "0"}, &b, &err));
  setenv("SHMREPL_MAX_CLIENT_SESSIONS", "5", 1);
  shmrepl::server::Options e;
  err.clear();
  EXPECT_TRUE(shmrepl::server::parse_limits_env(&e, &err)) << err;
  EXPECT_EQ(e.limits.max_client_sessions, 5u);
  EXPECT_TRUE(shmrepl::server::parse_options({"--max-client-sessions", "6"}, &e, &err));  // the flag wins
  EXPECT_EQ(e.limits.max_client_sessions, 6u);
  setenv("SHMREPL_MAX_CLIENT_SESSIONS", "many", 1);
  shmrepl::server::Options f;
  err.clear();
  EXPECT_FALSE(shmrepl::server::parse_limits_env(&f, &err));
  EXPECT_NE(err.find("SHMREPL_MAX_CLIENT_SESSIONS"), std::string::npos) << err;
  unsetenv("SHMREPL_MAX_CLIENT_SESSIONS");
}

// The quota: per client and in all, given back on removal.
TEST(EngineLimits, QuotaCountsPerClientAndInAll) {
  shmrepl::server::Limits l;
  l.max_sessions = 3;
  l.max_client_sessions = 2;
  l.max_connections = 2;
  l.max_client_connections = 1;
  shmrepl::server::Quota q(l);
  std::string why;
  EXPECT_TRUE(q.add_session(10, &why));
  EXPECT_TRUE(q.add_session(10, &why));
  EXPECT_FALSE(q.add_session(10, &why));
  EXPECT_NE(why.find("--max-client-sessions"), std::string::npos);
  EXPECT_TRUE(q.add_session(11, &why));
  EXPECT_FALSE(q.add_session(12, &why));
  EXPECT_NE(why.find("--max-sessions"), std::string::npos);
  q.remove_session(10);
  EXPECT_TRUE(q.add_session(12, &why));
  EXPECT_TRUE(q.add_connection(10, &why));
  EXPECT_FALSE(q.add_connection(10, &why));
  EXPECT_TRUE(q.add_connection(11, &why));
  EXPECT_FALSE(q.add_connection(12, &why));
  q.remove_connection(10);
  q.remove_connection(10);  // once too often: ignored
  EXPECT_TRUE(q.add_connection(12, &why));
}

// Ring bytes: per client and in all, sizes near 2^64 refused without overflow,
// charges beyond the limits counted, releases never below zero.
TEST(EngineLimits, RingBudgetCountsBytesPerClientAndInAll) {
  shmrepl::server::Limits l;
  l.max_client_ring_bytes = 100;
  l.max_ring_bytes = 150;
  shmrepl::server::RingBudget b(l);
  std::string why;
  EXPECT_TRUE(b.reserve(10, 60, &why));
  EXPECT_TRUE(b.reserve(10, 40, &why));  // exactly the limit
  EXPECT_FALSE(b.reserve(10, 1, &why));
  EXPECT_NE(why.find("--max-client-ring-bytes"), std::string::npos) << why;
  EXPECT_NE(why.find("100 bytes"), std::string::npos) << why;
  EXPECT_EQ(b.used_by(10), 100u);
  EXPECT_TRUE(b.reserve(11, 50, &why));
  why.clear();
  EXPECT_FALSE(b.reserve(12, 1, &why));
  EXPECT_NE(why.find("--max-ring-bytes"), std::string::npos) << why;
  EXPECT_EQ(b.used(), 150u);
  // Sizes whose sum with what is held would wrap around.
  for (uint64_t huge : {UINT64_MAX, UINT64_MAX - 50, uint64_t{1} << 63}) {
    EXPECT_FALSE(b.reserve(11, huge, &why)) << huge;
    EXPECT_FALSE(b.reserve(13, huge, &why)) << huge;
  }
  EXPECT_EQ(b.used(), 150u);
  b.release(10, 60);
  EXPECT_TRUE(b.reserve(12, 60, &why)) << why;
  b.release(12, 1000);  // more than it holds: down to zero, no further
  EXPECT_EQ(b.used_by(12), 0u);
  EXPECT_EQ(b.used(), 90u);
  b.release(99, 10);  // a client with nothing counted
  EXPECT_EQ(b.used(), 90u);
  // What exists already is counted past the limits (and then refuses more).
  b.charge(10, UINT64_MAX);
  EXPECT_EQ(b.used_by(10), UINT64_MAX);
  EXPECT_FALSE(b.reserve(10, 1, &why));
  EXPECT_FALSE(b.reserve(14, 1, &why));
  EXPECT_NE(why.find("--max-ring-bytes"), std::string::npos) << why;
  b.release(10, UINT64_MAX);
  EXPECT_EQ(b.used_by(10), 0u);
  EXPECT_TRUE(b.reserve(14, 1, &why)) << why;
}

// The ring-byte limits: defaults, sizes with suffixes, the environment, bad values.
TEST(EngineOptions, RingByteLimits) {
  shmrepl::server::Options o;
  std::string err;
  EXPECT_EQ(o.limits.max_client_ring_bytes, 8ull << 30);
  EXPECT_EQ(o.limits.max_ring_bytes, 32ull << 30);
  EXPECT_TRUE(shmrepl::server::parse_options({"--max-client-ring-bytes", "512M", "--max-ring-bytes=3G"}, &o, &err))
      << err;
  EXPECT_EQ(o.limits.max_client_ring_bytes, 512ull << 20);
  EXPECT_EQ(o.limits.max_ring_bytes, 3ull << 30);
  EXPECT_TRUE(shmrepl::server::parse_options({"--max-ring-bytes", "65536"}, &o, &err)) << err;
  EXPECT_EQ(o.limits.max_ring_bytes, 65536u);
  for (const char* bad : {"0", "-1", "x", "1T", "12Q", "", "18446744073709551615G"}) {
    shmrepl::server::Options b;
    err.clear();
    EXPECT_FALSE(shmrepl::server::parse_options({"--max-client-ring-bytes", bad}, &b, &err)) << bad;
    EXPECT_NE(err.find("--max-client-ring-bytes"), std::string::npos) << err;
  }
  setenv("SHMREPL_MAX_RING_BYTES", "2G", 1);
  setenv("SHMREPL_MAX_CLIENT_RING_BYTES", "1G", 1);
  shmrepl::server::Options e;
  err.clear();
  EXPECT_TRUE(shmrepl::server::parse_limits_env(&e, &err)) << err;
  EXPECT_EQ(e.limits.max_ring_bytes, 2ull << 30);
  EXPECT_EQ(e.limits.max_client_ring_bytes, 1ull << 30);
  EXPECT_TRUE(shmrepl::server::parse_options({"--max-ring-bytes", "4G"}, &e, &err));  // the flag wins
  EXPECT_EQ(e.limits.max_ring_bytes, 4ull << 30);
  setenv("SHMREPL_MAX_CLIENT_RING_BYTES", "lots", 1);
  shmrepl::server::Options f;
  err.clear();
  EXPECT_FALSE(shmrepl::server::parse_limits_env(&f, &err));
  EXPECT_NE(err.find("SHMREPL_MAX_CLIENT_RING_BYTES"), std::string::npos) << err;
  unsetenv("SHMREPL_MAX_RING_BYTES");
  unsetenv("SHMREPL_MAX_CLIENT_RING_BYTES");
}

// ---- the Dispatcher over a fake engine ----

class DispatcherTest : public ::testing::Test {
 protected:
  shmrepl::test::FakeEngine engine{shmrepl::engine::EngineOptions{}};
  Dispatcher d{engine, 4242};

  Parsed send(const control::Frame& f, Reply* out = nullptr) {
    std::vector<uint8_t> body = body_of(f);
    Reply r = d.handle(body);
    Parsed p = parse(r.frame);
    EXPECT_NE(p.m, nullptr);
    if (out) *out = std::move(r);
    return p;
  }
  int32_t error_code(const Parsed& p) {
    return p.m->body_type() == ctl::Body::Error ? p.m->body_as_Error()->code() : 0;
  }
  void hello() { ASSERT_EQ(send(control::hello(1, SHMREPL_ABI_VERSION, 1)).m->body_type(), ctl::Body::HelloReply); }
};

TEST_F(DispatcherTest, HelloFirst) {
  Reply r;
  Parsed p = send(control::open_session(5), &r);
  EXPECT_EQ(error_code(p), SHMREPL_E_PROTOCOL);
  EXPECT_EQ(p.m->request_id(), 5u);
  EXPECT_FALSE(r.close);
  p = send(control::execute(6, {1, "out x", "", "", {}, true, 0}));
  EXPECT_EQ(error_code(p), SHMREPL_E_PROTOCOL);
  p = send(control::hello(7, SHMREPL_ABI_VERSION, 1));
  ASSERT_EQ(p.m->body_type(), ctl::Body::HelloReply);
  EXPECT_EQ(p.m->request_id(), 7u);
  EXPECT_EQ(p.m->body_as_HelloReply()->engine_pid(), 4242u);
  EXPECT_EQ(error_code(send(control::hello(8, SHMREPL_ABI_VERSION, 1))), SHMREPL_E_PROTOCOL);
}

TEST_F(DispatcherTest, WrongAbiVersionCloses) {
  Reply r;
  Parsed p = send(control::hello(1, SHMREPL_ABI_VERSION + 1, 1), &r);
  EXPECT_EQ(error_code(p), SHMREPL_E_VERSION);
  EXPECT_TRUE(r.close);
}

TEST_F(DispatcherTest, GarbageAndRepliesClose) {
  std::vector<uint8_t> junk(40, 0x5a);
  Reply r = d.handle(junk);
  Parsed p = parse(r.frame);
  EXPECT_EQ(error_code(p), SHMREPL_E_PROTOCOL);
  EXPECT_EQ(p.m->request_id(), 0u);
  EXPECT_TRUE(r.close);
  hello();
  p = send(control::ok(3), &r);  // a reply is no request
  EXPECT_EQ(error_code(p), SHMREPL_E_PROTOCOL);
  EXPECT_TRUE(r.close);
}

TEST_F(DispatcherTest, SessionsAndExecutionsBelongToTheConnection) {
  hello();
  Parsed p = send(control::open_session(2));
  ASSERT_EQ(p.m->body_type(), ctl::Body::SessionOpened);
  const uint64_t sid = p.m->body_as_SessionOpened()->session_id();
  EXPECT_EQ(error_code(send(control::execute(3, {sid + 100, "out x", "", "", {}, true, 0}))),
            SHMREPL_E_NOT_FOUND);
  EXPECT_EQ(error_code(send(control::execute(3, {sid, "out x", "", "", {}, true, 100}))),
            SHMREPL_E_INVALID);  // ring below the minimum
  p = send(control::execute(4, {sid, "out x", "", "", {}, true, 0}));
  ASSERT_EQ(p.m->body_type(), ctl::Body::Accepted);
  const uint64_t xid = p.m->body_as_Accepted()->execution_id();
  EXPECT_FALSE(p.m->body_as_Accepted()->ring_name()->str().empty());
  EXPECT_EQ(d.executions(), 1u);
  EXPECT_EQ(error_code(send(control::cancel(5, xid + 9))), SHMREPL_E_NOT_FOUND);
  EXPECT_EQ(send(control::cancel(6, xid)).m->body_type(), ctl::Body::Ok);
  EXPECT_EQ(send(control::release(7, xid)).m->body_type(), ctl::Body::Ok);
  EXPECT_EQ(error_code(send(control::release(8, xid))), SHMREPL_E_NOT_FOUND);
  EXPECT_EQ(send(control::close_session(9, sid)).m->body_type(), ctl::Body::Ok);
  EXPECT_EQ(error_code(send(control::close_session(10, sid))), SHMREPL_E_NOT_FOUND);
  EXPECT_EQ(d.sessions(), 0u);

  // Another connection cannot touch this one's session.
  p = send(control::open_session(11));
  const uint64_t mine = p.m->body_as_SessionOpened()->session_id();
  Dispatcher other(engine, 4242);
  std::vector<uint8_t> h = body_of(control::hello(1, SHMREPL_ABI_VERSION, 1));
  other.handle(h);
  std::vector<uint8_t> x = body_of(control::execute(2, {mine, "out x", "", "", {}, true, 0}));
  Parsed q = parse(other.handle(x).frame);
  EXPECT_EQ(error_code(q), SHMREPL_E_NOT_FOUND);
}

TEST_F(DispatcherTest, InputReplyOnlyForItsOwnWaitingExecution) {
  hello();
  Parsed p = send(control::open_session(2));
  const uint64_t sid = p.m->body_as_SessionOpened()->session_id();
  p = send(control::execute(3, {sid, "out x", "", "", {}, true, 0}));
  ASSERT_EQ(p.m->body_type(), ctl::Body::Accepted);
  const uint64_t xid = p.m->body_as_Accepted()->execution_id();
  EXPECT_EQ(error_code(send(control::input_reply(4, xid + 9, "x"))), SHMREPL_E_NOT_FOUND);
  // Nothing waits for input in the fake engine: a state error, not a crash.
  EXPECT_EQ(error_code(send(control::input_reply(5, xid, "x"))), SHMREPL_E_STATE);
  // A session that says it brings descriptors must bring them.
  control::SessionFields tty;
  tty.stdout_tty = true;
  EXPECT_EQ(error_code(send(control::open_session(6, tty))), SHMREPL_E_PROTOCOL);
}

TEST_F(DispatcherTest, ShutdownAsksToStop) {
  hello();
  Reply r;
  Parsed p = send(control::shutdown(3), &r);
  EXPECT_EQ(p.m->body_type(), ctl::Body::Ok);
  EXPECT_TRUE(r.stop_engine);
}

TEST_F(DispatcherTest, CleanupClosesSessions) {
  hello();
  send(control::open_session(2));
  send(control::open_session(3));
  EXPECT_EQ(d.sessions(), 2u);
  d.cleanup();
  EXPECT_EQ(d.sessions(), 0u);
}
