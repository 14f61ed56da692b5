// Whole executions against tests/vectors/executions.json, through a real engine on a
// private socket and only the public C ABI: bytes per stream, record kinds in order,
// seq gap-free from 0, every record's execution_id, the client id in STARTED, the
// FINISHED status and exit code, and every view inside shmrepl_reader_mapping().
// Every binding runs the same file; this test is the reference reader.
//
//   shmrepl-test-conformance                      run the vectors (gtest)
//   shmrepl-test-conformance --regenerate FILE    rerun FILE's programs and rewrite
//                                                 its expected values (review the diff!)
// $SHMREPL_EXECUTION_VECTORS overrides the file the tests read.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "shmrepl/shmrepl.h"

#ifndef SHMREPL_EXECUTION_VECTORS_FILE
#error "SHMREPL_EXECUTION_VECTORS_FILE must name tests/vectors/executions.json"
#endif
#ifndef SHMREPL_CONFORMANCE_ENGINE
#define SHMREPL_CONFORMANCE_ENGINE ""
#endif

namespace {

constexpr int64_t kWaitNs = 60'000'000'000;  // per batch; a hung engine fails, not hangs

// ---- JSON (a small parser: the file is read as a binding without a JSON library would) ----

struct Json;
using JsonArray = std::vector<Json>;
using JsonObject = std::map<std::string, Json>;
struct Number {
  std::string text;
};
struct Json {
  std::variant<std::nullptr_t, bool, std::string, Number, JsonArray, JsonObject> v;
  bool is_obj() const { return std::holds_alternative<JsonObject>(v); }
  const std::string& str() const { return std::get<std::string>(v); }
  int64_t i64() const { return std::stoll(std::get<Number>(v).text); }
  bool boolean() const { return std::get<bool>(v); }
  const JsonArray& arr() const { return std::get<JsonArray>(v); }
  const JsonObject& obj() const { return std::get<JsonObject>(v); }
  bool has(const std::string& k) const { return obj().count(k) != 0; }
  const Json& operator[](const std::string& k) const {
    auto it = obj().find(k);
    if (it == obj().end()) throw std::runtime_error("missing field \"" + k + "\"");
    return it->second;
  }
};

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}
  Json parse() {
    Json j = value();
    ws();
    if (i_ != s_.size()) fail("trailing text");
    return j;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw std::runtime_error("JSON: " + what + " at byte " + std::to_string(i_));
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\r' || s_[i_] == '\n')) ++i_;
  }
  char peek() {
    ws();
    if (i_ >= s_.size()) fail("unexpected end");
    return s_[i_];
  }
  void expect(char c) {
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  Json value() {
    const char c = peek();
    if (c == '{') {
      ++i_;
      JsonObject o;
      if (peek() == '}') return ++i_, Json{std::move(o)};
      for (;;) {
        std::string k = string();
        expect(':');
        if (!o.emplace(k, value()).second) fail("duplicate key \"" + k + "\"");
        if (peek() == ',') {
          ++i_;
          continue;
        }
        expect('}');
        return Json{std::move(o)};
      }
    }
    if (c == '[') {
      ++i_;
      JsonArray a;
      if (peek() == ']') return ++i_, Json{std::move(a)};
      for (;;) {
        a.push_back(value());
        if (peek() == ',') {
          ++i_;
          continue;
        }
        expect(']');
        return Json{std::move(a)};
      }
    }
    if (c == '"') return Json{string()};
    if (s_.substr(i_, 4) == "true") return i_ += 4, Json{true};
    if (s_.substr(i_, 5) == "false") return i_ += 5, Json{false};
    if (s_.substr(i_, 4) == "null") return i_ += 4, Json{nullptr};
    const std::size_t start = i_;
    while (i_ < s_.size() && std::strchr("-+0123456789.eE", s_[i_]) != nullptr) ++i_;
    if (start == i_) fail("bad value");
    return Json{Number{std::string(s_.substr(start, i_ - start))}};
  }
  unsigned hex4() {
    if (i_ + 4 > s_.size()) fail("short \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = s_[i_++];
      v <<= 4;
      if (h >= '0' && h <= '9') v |= static_cast<unsigned>(h - '0');
      else if (h >= 'a' && h <= 'f') v |= static_cast<unsigned>(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') v |= static_cast<unsigned>(h - 'A' + 10);
      else fail("bad \\u escape");
    }
    return v;
  }
  static void utf8(std::string& out, unsigned cp) {
    auto put = [&](unsigned b) { out += static_cast<char>(static_cast<unsigned char>(b)); };
    if (cp < 0x80) {
      put(cp);
    } else if (cp < 0x800) {
      put(0xC0 | (cp >> 6));
      put(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      put(0xE0 | (cp >> 12));
      put(0x80 | ((cp >> 6) & 0x3F));
      put(0x80 | (cp & 0x3F));
    } else {
      put(0xF0 | (cp >> 18));
      put(0x80 | ((cp >> 12) & 0x3F));
      put(0x80 | ((cp >> 6) & 0x3F));
      put(0x80 | (cp & 0x3F));
    }
  }
  std::string string() {
    expect('"');
    std::string out;
    for (;;) {
      if (i_ >= s_.size()) fail("unterminated string");
      const char c = s_[i_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("raw control character in string");
      if (c != '\\') {
        out += c;
        continue;
      }
      if (i_ >= s_.size()) fail("unterminated escape");
      switch (const char e = s_[i_++]) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case '"': case '\\': case '/': out += e; break;
        case 'u': {
          unsigned cp = hex4();
          if (cp >= 0xD800 && cp < 0xDC00) {  // a surrogate pair
            if (s_.substr(i_, 2) != "\\u") fail("lone surrogate");
            i_ += 2;
            const unsigned lo = hex4();
            if (lo < 0xDC00 || lo >= 0xE000) fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          utf8(out, cp);
          break;
        }
        default: fail("bad escape");
      }
    }
  }
  std::string_view s_;
  std::size_t i_ = 0;
};

// JSON out: UTF-8 kept as is (readable), only what JSON requires escaped.
std::string quote(std::string_view s) {
  std::string o = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\t': o += "\\t"; break;
      case '\r': o += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          o += buf;
        } else {
          o += c;
        }
    }
  }
  return o + "\"";
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + path);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

// ---- the vectors ------------------------------------------------------------------

struct Vector {
  std::string name, code, client_execution_id;
  bool script = false;
  uint64_t ring_capacity = 0;  // optional field; 0: the engine's default
  std::string out, err;
  std::vector<std::string> kinds;
  std::string finish_status;
  int64_t exit_code = 0;
};

// gtest names a failing parameter by this, not by a byte dump.
void PrintTo(const Vector& v, std::ostream* os) { *os << v.name; }

std::string vectors_path() {
  const char* p = std::getenv("SHMREPL_EXECUTION_VECTORS");
  return p != nullptr && *p != '\0' ? p : SHMREPL_EXECUTION_VECTORS_FILE;
}

struct VectorFile {
  std::string comment;
  std::vector<Vector> vectors;
};

// programs_only: read what a vector runs, not what it expects (for --regenerate).
VectorFile load(const std::string& path, bool programs_only = false) {
  const Json root = Parser(read_file(path)).parse();
  VectorFile f;
  f.comment = root["_comment"].str();
  for (const Json& j : root["executions"].arr()) {
    Vector v;
    v.name = j["name"].str();
    v.code = j["code"].str();
    v.script = j["script"].boolean();
    v.client_execution_id = j["client_execution_id"].str();
    if (j.has("ring_capacity")) v.ring_capacity = static_cast<uint64_t>(j["ring_capacity"].i64());
    if (!programs_only) {
      v.out = j["stdout"].str();
      v.err = j["stderr"].str();
      for (const Json& k : j["kinds"].arr()) v.kinds.push_back(k.str());
      v.finish_status = j["finish_status"].str();
      v.exit_code = j["exit_code"].i64();
    }
    f.vectors.push_back(std::move(v));
  }
  return f;
}

// ---- running one vector -------------------------------------------------------------

const char* kind_name(uint32_t k) {
  switch (k) {
    case SHMREPL_RECORD_STARTED: return "STARTED";
    case SHMREPL_RECORD_OUTPUT: return "OUTPUT";
    case SHMREPL_RECORD_RESULT: return "RESULT";
    case SHMREPL_RECORD_ERROR: return "ERROR";
    case SHMREPL_RECORD_INPUT_REQUEST: return "INPUT_REQUEST";
    case SHMREPL_RECORD_FINISHED: return "FINISHED";
    default: return "UNKNOWN";
  }
}

const char* finish_name(uint32_t s) {
  switch (s) {
    case SHMREPL_FINISH_OK: return "OK";
    case SHMREPL_FINISH_ERROR: return "ERROR";
    case SHMREPL_FINISH_CANCELLED: return "CANCELLED";
    case SHMREPL_FINISH_EXITED: return "EXITED";
    case SHMREPL_FINISH_ABORTED: return "ABORTED";
    default: return "UNKNOWN";
  }
}

std::string status_text(shmrepl_status_t st) {
  return std::string(shmrepl_status_str(st)) + " (" + shmrepl_last_error() + ")";
}

struct Observed {
  std::string out, err;
  std::vector<std::string> kinds;
  std::string finish_status = "(no FINISHED)";
  int64_t exit_code = 0;
  uint64_t output_records = 0, split_records = 0;
  std::vector<std::string> problems;  // broken invariants: seq, ids, views, flags, end
};

class Engine {
 public:
  Engine() {
    char tmpl[] = "/tmp/shmrepl-conformance-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    socket_ = dir_ + "/engine.sock";
    // Deterministic engine environment: the tests must not lean on the caller's.
    unsetenv("PYTHONUNBUFFERED");
    shmrepl_client_options_t o{};
    o.struct_size = sizeof o;
    o.autostart = SHMREPL_AUTOSTART_ON;
    o.socket_path = socket_.c_str();
    const std::string engine = SHMREPL_CONFORMANCE_ENGINE;
    o.engine_path = engine.empty() ? nullptr : engine.c_str();  // else $SHMREPL_ENGINE, libdir
    o.connect_timeout_ns = 20'000'000'000;
    const shmrepl_status_t st = shmrepl_client_connect(&o, &client_);
    if (st != SHMREPL_OK) {
      std::filesystem::remove_all(dir_);
      throw std::runtime_error("cannot start an engine at " + socket_ + ": " + status_text(st));
    }
  }
  ~Engine() {
    const shmrepl_status_t st = shmrepl_engine_shutdown(client_);
    if (st != SHMREPL_OK) std::fprintf(stderr, "engine shutdown: %s\n", status_text(st).c_str());
    shmrepl_client_close(client_);
    // The engine removes its socket just after it replied; removing the folder
    // meanwhile would race with it.
    std::error_code ec;
    for (int i = 0; i < 500 && std::filesystem::exists(socket_, ec); ++i) usleep(10'000);
    for (int i = 0; i < 10 && std::filesystem::exists(dir_, ec); ++i) std::filesystem::remove_all(dir_, ec);
  }
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;
  shmrepl_client_t* client() const { return client_; }

 private:
  std::string dir_, socket_;
  shmrepl_client_t* client_ = nullptr;
};

bool inside(const uint8_t* p, std::size_t n, const uint8_t* base, std::size_t len) {
  if (n == 0 && p == nullptr) return true;
  const auto a = reinterpret_cast<uintptr_t>(p), b = reinterpret_cast<uintptr_t>(base);
  return a >= b && a - b <= len && n <= len - (a - b);
}

// Runs `v` in a fresh session and reads its ring from the oldest record to E_EOF.
Observed run(shmrepl_client_t* client, const Vector& v) {
  Observed ob;
  auto problem = [&](const std::string& p) { ob.problems.push_back(p); };
  uint64_t session = 0;
  if (shmrepl_status_t st = shmrepl_session_open(client, &session); st != SHMREPL_OK) {
    problem("session_open: " + status_text(st));
    return ob;
  }
  shmrepl_execute_options_t eo{};
  eo.struct_size = sizeof eo;
  eo.script = v.script ? 1u : 0u;
  eo.session_id = session;
  eo.code = v.code.data();
  eo.code_len = v.code.size();
  eo.client_execution_id = v.client_execution_id.c_str();
  eo.ring_capacity = v.ring_capacity;
  shmrepl_execution_t* exec = nullptr;
  if (shmrepl_status_t st = shmrepl_execute(client, &eo, &exec); st != SHMREPL_OK) {
    problem("execute: " + status_text(st));
    shmrepl_session_close(client, session);
    return ob;
  }
  const uint64_t id = shmrepl_execution_id(exec);
  shmrepl_reader_options_t ro{};
  ro.struct_size = sizeof ro;
  ro.start = SHMREPL_START_OLDEST;
  shmrepl_reader_t* reader = nullptr;
  if (shmrepl_status_t ost = shmrepl_execution_reader(exec, &ro, &reader); ost != SHMREPL_OK) {
    problem("execution_reader: " + status_text(ost));
  } else {
    if (shmrepl_reader_execution_id(reader) != id) problem("the ring header's execution id is not the execution's");
    const uint8_t* base = nullptr;
    std::size_t len = 0;
    if (shmrepl_status_t mst = shmrepl_reader_mapping(reader, &base, &len); mst != SHMREPL_OK || base == nullptr || len == 0)
      problem("reader_mapping: " + status_text(mst));
    uint64_t next_seq = 0;
    bool finished = false, open_split = false;
    uint32_t split_stream = 0;
    shmrepl_record_t recs[64];
    for (;;) {
      std::size_t n = 0;
      const shmrepl_status_t st = shmrepl_reader_next_batch(reader, recs, 64, &n, kWaitNs);
      if (st == SHMREPL_E_EOF) break;
      if (st != SHMREPL_OK) {
        problem("next_batch: " + status_text(st));
        break;
      }
      for (std::size_t i = 0; i < n; ++i) {
        const shmrepl_record_t& r = recs[i];
        const std::string where = "record seq " + std::to_string(r.seq) + " (" + kind_name(r.kind) + "): ";
        if (r.seq != next_seq) problem(where + "expected seq " + std::to_string(next_seq));
        next_seq = r.seq + 1;
        if (r.execution_id != id)
          problem(where + "execution_id " + std::to_string(r.execution_id) + " is not " + std::to_string(id));
        if (finished) problem(where + "after FINISHED");
        if (!inside(r.data, r.data_len, base, len)) problem(where + "data lies outside the reader's mapping");
        if (r.raw == nullptr || !inside(r.raw, r.raw_len, base, len)) problem(where + "raw lies outside the reader's mapping");
        if (!inside(r.data, r.data_len, r.raw, r.raw_len)) problem(where + "data lies outside raw");
        const std::string data(reinterpret_cast<const char*>(r.data), r.data_len);
        ob.kinds.emplace_back(kind_name(r.kind));
        const bool more = (r.flags & SHMREPL_FLAG_MORE) != 0, cont = (r.flags & SHMREPL_FLAG_CONTINUED) != 0;
        if (cont != open_split || (cont && (r.kind != SHMREPL_RECORD_OUTPUT || r.stream != split_stream)))
          problem(where + "split flags out of order (flags " + std::to_string(r.flags) + ")");
        open_split = more;
        split_stream = r.stream;
        if ((more || cont) && r.kind != SHMREPL_RECORD_OUTPUT) problem(where + "split flags on a non-OUTPUT record");
        switch (r.kind) {
          case SHMREPL_RECORD_STARTED:
            if (r.seq != 0) problem(where + "STARTED is not the first record");
            if (data != v.client_execution_id) problem(where + "data \"" + data + "\" is not the client execution id");
            break;
          case SHMREPL_RECORD_OUTPUT:
            ++ob.output_records;
            if (more || cont) ++ob.split_records;
            if (r.stream == SHMREPL_STREAM_STDOUT) ob.out += data;
            else if (r.stream == SHMREPL_STREAM_STDERR) ob.err += data;
            else problem(where + "OUTPUT on stream " + std::to_string(r.stream));
            break;
          case SHMREPL_RECORD_ERROR: {
            shmrepl_bytes_t ename{}, evalue{};
            std::size_t lines = 0;
            if (shmrepl_status_t est = shmrepl_record_error(&r, &ename, &evalue, &lines); est != SHMREPL_OK) {
              problem(where + "record_error: " + status_text(est));
              break;
            }
            if (ename.len == 0) problem(where + "no exception type name");
            if (!inside(ename.ptr, ename.len, base, len) || !inside(evalue.ptr, evalue.len, base, len))
              problem(where + "error details lie outside the reader's mapping");
            for (std::size_t k = 0; k < lines; ++k) {
              shmrepl_bytes_t line{};
              if (shmrepl_record_traceback_line(&r, k, &line) != SHMREPL_OK || !inside(line.ptr, line.len, base, len))
                problem(where + "traceback line " + std::to_string(k) + " unreadable or outside the mapping");
            }
            break;
          }
          case SHMREPL_RECORD_FINISHED:
            finished = true;
            ob.finish_status = finish_name(r.finish_status);
            ob.exit_code = r.exit_code;
            break;
          default:
            break;
        }
      }
      if (shmrepl_status_t rst = shmrepl_reader_release(reader, n); rst != SHMREPL_OK)
        problem("release: " + status_text(rst));
    }
    if (!finished) problem("the ring ended without a FINISHED record");
    if (open_split) problem("the last OUTPUT record still had MORE");
    if (shmrepl_reader_held(reader) != 0) problem("records still held after release");
    shmrepl_reader_close(reader);
  }
  shmrepl_execution_close(exec);
  if (shmrepl_status_t st = shmrepl_session_close(client, session); st != SHMREPL_OK)
    problem("session_close: " + status_text(st));
  return ob;
}

// Where the observation differs from the vector's expectation ("" when it matches).
std::string show(const std::string& s) {
  std::string q = quote(s.size() > 400 ? s.substr(0, 400) + "..." : s);
  return q + " (" + std::to_string(s.size()) + " bytes)";
}

std::string first_difference(const std::string& a, const std::string& b) {
  std::size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  const std::size_t from = i > 40 ? i - 40 : 0;
  return "first difference at byte " + std::to_string(i) + ": expected ..." + quote(a.substr(from, 80)) +
         " got ..." + quote(b.substr(from, 80));
}

std::vector<std::string> compare(const Vector& v, const Observed& ob) {
  std::vector<std::string> d;
  if (ob.out != v.out) d.push_back("stdout: expected " + show(v.out) + ", got " + show(ob.out) + "; " + first_difference(v.out, ob.out));
  if (ob.err != v.err) d.push_back("stderr: expected " + show(v.err) + ", got " + show(ob.err) + "; " + first_difference(v.err, ob.err));
  if (ob.kinds != v.kinds) {
    auto join = [](const std::vector<std::string>& k) {
      std::string s;
      for (const auto& x : k) s += (s.empty() ? "" : ",") + x;
      return s;
    };
    d.push_back("kinds: expected [" + join(v.kinds) + "], got [" + join(ob.kinds) + "]");
  }
  if (ob.finish_status != v.finish_status) d.push_back("finish_status: expected " + v.finish_status + ", got " + ob.finish_status);
  if (ob.exit_code != v.exit_code)
    d.push_back("exit_code: expected " + std::to_string(v.exit_code) + ", got " + std::to_string(ob.exit_code));
  return d;
}

// ---- the tests ------------------------------------------------------------------------

// One engine for the whole process (each vector runs in its own session); stopped at exit.
class EngineEnv : public ::testing::Environment {
 public:
  void TearDown() override { engine.reset(); }
  static Engine& get() {
    if (!engine) engine = std::make_unique<Engine>();
    return *engine;
  }
  static inline std::unique_ptr<Engine> engine;
};

std::vector<Vector> load_for_tests() {
  try {
    return load(vectors_path()).vectors;
  } catch (const std::exception&) {
    return {};  // VectorFile.Loads reports why
  }
}

TEST(VectorFile, Loads) {
  VectorFile f;
  ASSERT_NO_THROW(f = load(vectors_path())) << vectors_path();
  EXPECT_FALSE(f.comment.empty());
  EXPECT_GE(f.vectors.size(), 12u);
  std::map<std::string, int> names;
  for (const Vector& v : f.vectors) {
    EXPECT_EQ(++names[v.name], 1) << "duplicate name " << v.name;
    EXPECT_FALSE(v.kinds.empty()) << v.name;
  }
}

class Execution : public ::testing::TestWithParam<Vector> {};

TEST_P(Execution, MatchesTheVector) {
  const Vector& v = GetParam();
  const Observed ob = run(EngineEnv::get().client(), v);
  for (const std::string& p : ob.problems) ADD_FAILURE() << v.name << ": " << p;
  for (const std::string& d : compare(v, ob)) ADD_FAILURE() << v.name << ": " << d;
}

INSTANTIATE_TEST_SUITE_P(Vectors, Execution, ::testing::ValuesIn(load_for_tests()),
                         [](const ::testing::TestParamInfo<Vector>& param) {
                           std::string n = param.param.name;
                           for (char& c : n)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return n;
                         });

// The comparison must notice a wrong expectation of every kind, or a wrong vector
// would pass: run one vector, then break its expectation field by field.
TEST(Comparison, RejectsEveryWrongExpectation) {
  Vector v;
  v.name = "probe";
  v.code = "import sys\nprint('out')\nprint('err', file=sys.stderr)\n";
  v.client_execution_id = "conformance-probe";
  const Observed ob = run(EngineEnv::get().client(), v);
  ASSERT_TRUE(ob.problems.empty()) << ob.problems.front();
  Vector good = v;
  good.out = ob.out;
  good.err = ob.err;
  good.kinds = ob.kinds;
  good.finish_status = ob.finish_status;
  good.exit_code = ob.exit_code;
  ASSERT_TRUE(compare(good, ob).empty());
  EXPECT_EQ(good.out, "out\n");
  EXPECT_EQ(good.err, "err\n");
  std::vector<Vector> wrong(7, good);
  wrong[0].out += "x";
  wrong[1].err = "Err\n";
  wrong[2].kinds.pop_back();
  wrong[3].kinds[1] = "RESULT";
  wrong[4].finish_status = "ERROR";
  wrong[5].exit_code = 1;
  wrong[6].out = "";
  for (std::size_t i = 0; i < wrong.size(); ++i) EXPECT_FALSE(compare(wrong[i], ob).empty()) << "mutation " << i;
}

// ---- --regenerate --------------------------------------------------------------------

int regenerate(const std::string& path) {
  VectorFile f = load(path, /*programs_only=*/true);
  {
    Engine engine;
    for (Vector& v : f.vectors) {
      const Observed ob = run(engine.client(), v);
      for (const std::string& p : ob.problems) std::fprintf(stderr, "%s: %s\n", v.name.c_str(), p.c_str());
      if (!ob.problems.empty()) return 1;
      v.out = ob.out;
      v.err = ob.err;
      v.kinds = ob.kinds;
      v.finish_status = ob.finish_status;
      v.exit_code = ob.exit_code;
      std::fprintf(stderr, "%-28s %-6s exit %lld, %llu OUTPUT records (%llu split), %zu+%zu bytes\n", v.name.c_str(),
                   v.finish_status.c_str(), static_cast<long long>(v.exit_code),
                   static_cast<unsigned long long>(ob.output_records), static_cast<unsigned long long>(ob.split_records),
                   v.out.size(), v.err.size());
    }
  }
  std::ostringstream o;
  o << "{\n  \"_comment\": " << quote(f.comment) << ",\n  \"executions\": [\n";
  for (std::size_t i = 0; i < f.vectors.size(); ++i) {
    const Vector& v = f.vectors[i];
    o << "    {\n      \"name\": " << quote(v.name) << ",\n      \"code\": " << quote(v.code)
      << ",\n      \"script\": " << (v.script ? "true" : "false") << ",\n      \"client_execution_id\": "
      << quote(v.client_execution_id) << ",\n";
    if (v.ring_capacity != 0) o << "      \"ring_capacity\": " << v.ring_capacity << ",\n";
    o << "      \"stdout\": " << quote(v.out) << ",\n      \"stderr\": " << quote(v.err) << ",\n      \"kinds\": [";
    for (std::size_t k = 0; k < v.kinds.size(); ++k) o << (k ? ", " : "") << quote(v.kinds[k]);
    o << "],\n      \"finish_status\": " << quote(v.finish_status) << ",\n      \"exit_code\": " << v.exit_code
      << "\n    }" << (i + 1 < f.vectors.size() ? "," : "") << "\n";
  }
  o << "  ]\n}\n";
  std::ofstream(path, std::ios::binary) << o.str();
  std::fprintf(stderr, "wrote %s (%zu executions)\n", path.c_str(), f.vectors.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc == 3 && std::strcmp(argv[1], "--regenerate") == 0) {
    try {
      return regenerate(argv[2]);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "%s\n", e.what());
      return 1;
    }
  }
  ::testing::InitGoogleTest(&argc, argv);
  ::testing::AddGlobalTestEnvironment(new EngineEnv);
  return RUN_ALL_TESTS();
}
