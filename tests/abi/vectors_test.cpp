// Conformance vectors (tests/vectors/records.json): records of every kind with their
// encoded bytes, plus invalid ones, for the C++ tests, every binding and the fuzz
// corpora. This test rebuilds the file from the encoders and fails if the committed
// one differs; it also parses the committed file as a binding would and decodes
// every vector through the codec and the C ABI accessors.
// Regenerate: SHMREPL_REGENERATE_VECTORS=1 <build>/bin/shmrepl-test-vectors
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include "records.hpp"
#include "shmrepl/shmrepl.h"
#include "shmrepl/shmrepl_generated.h"

#ifndef SHMREPL_VECTORS_FILE
#error "SHMREPL_VECTORS_FILE must name tests/vectors/records.json"
#endif

namespace {

using namespace shmrepl;

// ---- the vectors ---------------------------------------------------------------

struct Vector {
  std::string name;
  std::string expect = "ok";  // "ok" or "corrupt"
  std::string kind{};         // OUTPUT, STARTED, ... or UNKNOWN
  records::Meta meta{};
  std::string stream{};       // OUTPUT: "stdout" / "stderr"
  std::string data{};         // what shmrepl_record_t.data shows
  uint64_t session_id = 0;    // STARTED
  std::string ename{};        // ERROR
  std::vector<std::string> traceback{};
  bool password = false;      // INPUT_REQUEST
  std::string status{};       // FINISHED
  int32_t exit_code = 0;
  uint64_t duration_ns = 0;
  std::vector<std::byte> encoded{};
  std::string note{};
};

constexpr uint64_t kExec = 1000004242;
constexpr uint64_t kTime = 1767225600123456789ull;  // 2026-01-01T00:00:00.123456789Z

std::vector<std::byte> output(const records::Meta& m, shmrepl_stream_t s, std::string_view data) {
  std::vector<std::byte> v(records::output_size(data.size()));
  records::encode_output(v, m, s, {reinterpret_cast<const std::byte*>(data.data()), data.size()});
  return v;
}

std::vector<Vector> make_vectors() {
  std::vector<Vector> out;
  uint64_t seq = 0;
  auto meta = [&] { return records::Meta{kExec, seq++, kTime + seq * 1000}; };
  auto add_output = [&](std::string name, shmrepl_stream_t s, std::string data) {
    Vector v{.name = std::move(name), .kind = "OUTPUT", .meta = meta()};
    v.stream = s == SHMREPL_STREAM_STDOUT ? "stdout" : "stderr";
    v.data = std::move(data);
    v.encoded = output(v.meta, s, v.data);
    out.push_back(std::move(v));
  };
  {
    Vector v{.name = "started", .kind = "STARTED", .meta = meta()};
    v.session_id = 3;
    v.data = "client-exec-17";
    records::encode_started(v.encoded, v.meta, v.session_id, v.data);
    out.push_back(std::move(v));
  }
  {
    Vector v{.name = "started_without_client_id", .kind = "STARTED", .meta = meta()};
    v.session_id = 4;
    records::encode_started(v.encoded, v.meta, v.session_id, "");
    out.push_back(std::move(v));
  }
  add_output("output_empty", SHMREPL_STREAM_STDOUT, "");
  add_output("output_line", SHMREPL_STREAM_STDOUT, "hello, world\n");
  add_output("output_stderr", SHMREPL_STREAM_STDERR, "warning: careful\n");
  add_output("output_utf8", SHMREPL_STREAM_STDOUT, "h\xc3\xa9llo \xe2\x82\xac \xf0\x9d\x84\x9e \xf0\x9f\x98\x80\n");
  add_output("output_binary", SHMREPL_STREAM_STDOUT, std::string("\x00\xff\x80\x0a\"\\", 6));
  add_output("output_control_chars", SHMREPL_STREAM_STDOUT, "tab\there\r\n\x1b[1mbold\x1b[0m");
  {
    Vector v{.name = "result", .kind = "RESULT", .meta = meta()};
    v.data = "[1, 2, 3]";
    records::encode_result(v.encoded, v.meta, v.data);
    out.push_back(std::move(v));
  }
  {
    Vector v{.name = "result_multiline", .kind = "RESULT", .meta = meta()};
    v.data = "{'a': 1,\n 'b': '\xc3\xa9'}";
    records::encode_result(v.encoded, v.meta, v.data);
    out.push_back(std::move(v));
  }
  {
    Vector v{.name = "error", .kind = "ERROR", .meta = meta()};
    v.ename = "ZeroDivisionError";
    v.data = "division by zero";
    v.traceback = {"Traceback (most recent call last):\n", "  File \"<cell 1>\", line 1, in <module>\n",
                   "ZeroDivisionError: division by zero\n"};
    std::vector<std::string_view> tb(v.traceback.begin(), v.traceback.end());
    records::encode_error(v.encoded, v.meta, v.ename, v.data, tb);
    out.push_back(std::move(v));
  }
  {
    Vector v{.name = "error_without_traceback", .kind = "ERROR", .meta = meta()};
    v.ename = "KeyboardInterrupt";
    records::encode_error(v.encoded, v.meta, v.ename, "", {});
    out.push_back(std::move(v));
  }
  {
    Vector v{.name = "input_request", .kind = "INPUT_REQUEST", .meta = meta()};
    v.data = "Name: ";
    records::encode_input_request(v.encoded, v.meta, v.data, false);
    out.push_back(std::move(v));
  }
  {
    Vector v{.name = "input_request_password", .kind = "INPUT_REQUEST", .meta = meta()};
    v.data = "Password: ";
    v.password = true;
    records::encode_input_request(v.encoded, v.meta, v.data, true);
    out.push_back(std::move(v));
  }
  const std::pair<const char*, shmrepl_finish_status_t> statuses[] = {
      {"OK", SHMREPL_FINISH_OK}, {"ERROR", SHMREPL_FINISH_ERROR}, {"CANCELLED", SHMREPL_FINISH_CANCELLED},
      {"EXITED", SHMREPL_FINISH_EXITED}, {"ABORTED", SHMREPL_FINISH_ABORTED}};
  for (const auto& [name, st] : statuses) {
    Vector v{.name = std::string("finished_") + name, .kind = "FINISHED", .meta = meta()};
    v.status = name;
    v.exit_code = st == SHMREPL_FINISH_EXITED ? 3 : st == SHMREPL_FINISH_ERROR ? 1 : 0;
    v.duration_ns = 1234567 * (1 + static_cast<uint64_t>(st));
    records::encode_finished(v.encoded, v.meta, st, v.exit_code, v.duration_ns);
    out.push_back(std::move(v));
  }
  // From a newer producer: an Output whose union type this library does not know.
  {
    Vector v{.name = "unknown_kind", .kind = "UNKNOWN", .meta = meta()};
    v.encoded = output(v.meta, SHMREPL_STREAM_STDOUT, "future");
    v.encoded[56] = std::byte{42};  // Record.body_type
    v.note = "a union member added by a newer schema: skip it, raw stays valid";
    out.push_back(std::move(v));
  }
  // Invalid records: a reader must refuse each (E_CORRUPT), never crash.
  auto bad = [&](std::string name, std::vector<std::byte> bytes, std::string note) {
    Vector v{.name = std::move(name), .expect = "corrupt"};
    v.encoded = std::move(bytes);
    v.note = std::move(note);
    out.push_back(std::move(v));
  };
  const auto line = output({kExec, 99, kTime}, SHMREPL_STREAM_STDOUT, "hello\n");
  bad("corrupt_truncated", {line.begin(), line.begin() + 60}, "an Output cut short");
  {
    auto b = line;
    std::memcpy(b.data() + 4, "XXXX", 4);
    bad("corrupt_file_identifier", b, "file identifier is not SHRP");
  }
  {
    auto b = line;
    b[76] = std::byte{7};
    bad("corrupt_unknown_stream", b, "Output.stream is neither stdout (1) nor stderr (2)");
  }
  {
    auto b = line;
    b[80] = std::byte{200};
    bad("corrupt_data_length", b, "Output.data runs past the end of the record");
  }
  {
    flatbuffers::FlatBufferBuilder fbb;
    fb::RecordBuilder rb(fbb);
    rb.add_execution_id(kExec);
    rb.add_body_type(fb::Body::Output);
    fbb.Finish(rb.Finish(), fb::RecordIdentifier());
    auto* p = reinterpret_cast<const std::byte*>(fbb.GetBufferPointer());
    bad("corrupt_missing_body", {p, p + fbb.GetSize()}, "body_type Output without a body table");
  }
  return out;
}

// ---- JSON out --------------------------------------------------------------------

std::string hex(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (unsigned char c : bytes) {
    s += digits[c >> 4];
    s += digits[c & 15];
  }
  return s;
}
std::string hex(const std::vector<std::byte>& b) {
  return hex(std::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
}

std::string quote(std::string_view s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += static_cast<char>(c);
    } else if (c == '\n') {
      o += "\\n";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else {
      o += static_cast<char>(c);
    }
  }
  return o + "\"";
}

bool is_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (std::size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

std::string render(const std::vector<Vector>& vs) {
  std::ostringstream o;
  o << "{\n  \"_comment\": " << quote(
      "shmrepl record conformance vectors. Made by tests/abi/vectors_test.cpp from the C++ encoders "
      "(abi/src/records.cpp); regenerate with SHMREPL_REGENERATE_VECTORS=1 <build>/bin/shmrepl-test-vectors, "
      "and the test fails while this file and the encoders disagree. Each vector is one Record payload "
      "(abi/shmrepl.fbs) as it sits in a ring frame: encoded_hex. expect 'ok': decoding gives kind, "
      "execution_id, seq, timestamp_ns (64-bit integers, beyond 2^53), data (the bytes shmrepl_record_t.data "
      "shows, as data_hex, and as data when it is UTF-8) and the kind's fields. expect 'corrupt': a reader "
      "returns SHMREPL_E_CORRUPT. Frame flags (MORE/CONTINUED) live in the frame header, not here.") << ",\n";
  o << "  \"vectors\": [\n";
  for (std::size_t i = 0; i < vs.size(); ++i) {
    const Vector& v = vs[i];
    o << "    {\n      \"name\": " << quote(v.name) << ",\n      \"expect\": " << quote(v.expect) << ",\n";
    if (v.expect == "ok") {
      o << "      \"kind\": " << quote(v.kind) << ",\n";
      o << "      \"execution_id\": " << v.meta.execution_id << ",\n";
      o << "      \"seq\": " << v.meta.seq << ",\n";
      o << "      \"timestamp_ns\": " << v.meta.timestamp_ns << ",\n";
      if (v.kind == "OUTPUT") o << "      \"stream\": " << quote(v.stream) << ",\n";
      if (v.kind == "STARTED") o << "      \"session_id\": " << v.session_id << ",\n";
      if (v.kind == "ERROR") {
        o << "      \"ename\": " << quote(v.ename) << ",\n      \"traceback\": [";
        for (std::size_t k = 0; k < v.traceback.size(); ++k) o << (k ? ", " : "") << quote(v.traceback[k]);
        o << "],\n";
      }
      if (v.kind == "INPUT_REQUEST") o << "      \"password\": " << (v.password ? "true" : "false") << ",\n";
      if (v.kind == "FINISHED") {
        o << "      \"status\": " << quote(v.status) << ",\n      \"exit_code\": " << v.exit_code
          << ",\n      \"duration_ns\": " << v.duration_ns << ",\n";
      }
      if (v.kind != "UNKNOWN" && v.kind != "FINISHED") {
        if (is_utf8(v.data)) o << "      \"data\": " << quote(v.data) << ",\n";
        o << "      \"data_hex\": " << quote(hex(v.data)) << ",\n";
      }
    }
    if (!v.note.empty()) o << "      \"note\": " << quote(v.note) << ",\n";
    o << "      \"encoded_hex\": " << quote(hex(v.encoded)) << "\n    }" << (i + 1 < vs.size() ? "," : "") << "\n";
  }
  o << "  ]\n}\n";
  return o.str();
}

// ---- JSON in (a small parser, as a binding without a JSON library would have) ------

struct Json;
using JsonArray = std::vector<Json>;
using JsonObject = std::map<std::string, Json>;
struct Json {
  std::variant<std::nullptr_t, bool, std::string, std::string /*number text*/, JsonArray, JsonObject> v;
  const std::string& str() const { return std::get<2>(v); }
  uint64_t u64() const { return std::stoull(std::get<3>(v)); }
  int64_t i64() const { return std::stoll(std::get<3>(v)); }
  bool boolean() const { return std::get<1>(v); }
  const JsonArray& arr() const { return std::get<4>(v); }
  const JsonObject& obj() const { return std::get<5>(v); }
  bool has(const std::string& k) const { return obj().count(k) != 0; }
  const Json& operator[](const std::string& k) const { return obj().at(k); }
};

class Parser {
 public:
  explicit Parser(std::string_view s) : s_(s) {}
  Json parse() {
    Json j = value();
    ws();
    if (i_ != s_.size()) throw std::runtime_error("trailing text");
    return j;
  }

 private:
  void ws() {
    while (i_ < s_.size() && std::strchr(" \t\r\n", s_[i_]) != nullptr) ++i_;
  }
  char peek() {
    ws();
    if (i_ >= s_.size()) throw std::runtime_error("unexpected end");
    return s_[i_];
  }
  void expect(char c) {
    if (peek() != c) throw std::runtime_error(std::string("expected ") + c + " at " + std::to_string(i_));
    ++i_;
  }
  Json value() {
    char c = peek();
    if (c == '{') {
      ++i_;
      JsonObject o;
      if (peek() == '}') return ++i_, Json{o};
      for (;;) {
        std::string k = string();
        expect(':');
        o.emplace(k, value());
        if (peek() == ',') { ++i_; continue; }
        expect('}');
        return Json{o};
      }
    }
    if (c == '[') {
      ++i_;
      JsonArray a;
      if (peek() == ']') return ++i_, Json{a};
      for (;;) {
        a.push_back(value());
        if (peek() == ',') { ++i_; continue; }
        expect(']');
        return Json{a};
      }
    }
    if (c == '"') return Json{std::variant<std::nullptr_t, bool, std::string, std::string, JsonArray, JsonObject>(std::in_place_index<2>, string())};
    if (s_.substr(i_, 4) == "true") return i_ += 4, Json{true};
    if (s_.substr(i_, 5) == "false") return i_ += 5, Json{false};
    if (s_.substr(i_, 4) == "null") return i_ += 4, Json{nullptr};
    std::size_t start = i_;
    while (i_ < s_.size() && std::strchr("-+0123456789.eE", s_[i_]) != nullptr) ++i_;
    if (start == i_) throw std::runtime_error("bad value at " + std::to_string(i_));
    return Json{std::variant<std::nullptr_t, bool, std::string, std::string, JsonArray, JsonObject>(
        std::in_place_index<3>, std::string(s_.substr(start, i_ - start)))};
  }
  std::string string() {
    expect('"');
    std::string out;
    while (i_ < s_.size() && s_[i_] != '"') {
      char c = s_[i_++];
      if (c != '\\') {
        out += c;
        continue;
      }
      char e = s_.at(i_++);
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'u': {
          unsigned cp = static_cast<unsigned>(std::stoul(std::string(s_.substr(i_, 4)), nullptr, 16));
          i_ += 4;
          if (cp >= 0x80) throw std::runtime_error("\\u escapes above 0x7f are not used here");
          out += static_cast<char>(cp);
          break;
        }
        default: out += e;
      }
    }
    expect('"');
    return out;
  }
  std::string_view s_;
  std::size_t i_ = 0;
};

std::vector<uint64_t> unhex(const std::string& h) {  // 8-byte aligned storage
  std::vector<uint64_t> words(h.size() / 16 + 2, 0);
  auto* b = reinterpret_cast<unsigned char*>(words.data());
  for (std::size_t i = 0; i + 1 < h.size(); i += 2) b[i / 2] = static_cast<unsigned char>(std::stoul(h.substr(i, 2), nullptr, 16));
  return words;
}

std::string bytes_str(const uint8_t* p, std::size_t n) { return {reinterpret_cast<const char*>(p), n}; }

std::string read_file(const char* path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

TEST(Vectors, CommittedFileMatchesTheEncoders) {
  const std::string fresh = render(make_vectors());
  if (const char* regen = std::getenv("SHMREPL_REGENERATE_VECTORS"); regen != nullptr && *regen == '1') {
    std::ofstream(SHMREPL_VECTORS_FILE, std::ios::binary) << fresh;
    GTEST_SKIP() << "wrote " << SHMREPL_VECTORS_FILE;
  }
  const std::string committed = read_file(SHMREPL_VECTORS_FILE);
  ASSERT_FALSE(committed.empty()) << SHMREPL_VECTORS_FILE << " is missing";
  EXPECT_TRUE(committed == fresh) << "the encoders no longer produce " << SHMREPL_VECTORS_FILE
                                  << "; if the change is intended, regenerate it (see the file's _comment)";
}

TEST(Vectors, EveryVectorDecodesAsDescribed) {
  const std::string text = read_file(SHMREPL_VECTORS_FILE);
  ASSERT_FALSE(text.empty());
  Json root = Parser(text).parse();
  ASSERT_TRUE(root.has("_comment"));
  const JsonArray& vs = root["vectors"].arr();
  ASSERT_GE(vs.size(), 20u);
  const std::map<std::string, uint32_t> kinds = {
      {"UNKNOWN", SHMREPL_RECORD_UNKNOWN}, {"STARTED", SHMREPL_RECORD_STARTED}, {"OUTPUT", SHMREPL_RECORD_OUTPUT},
      {"RESULT", SHMREPL_RECORD_RESULT}, {"ERROR", SHMREPL_RECORD_ERROR}, {"INPUT_REQUEST", SHMREPL_RECORD_INPUT_REQUEST},
      {"FINISHED", SHMREPL_RECORD_FINISHED}};
  const std::map<std::string, uint32_t> statuses = {{"OK", SHMREPL_FINISH_OK}, {"ERROR", SHMREPL_FINISH_ERROR},
                                                    {"CANCELLED", SHMREPL_FINISH_CANCELLED},
                                                    {"EXITED", SHMREPL_FINISH_EXITED}, {"ABORTED", SHMREPL_FINISH_ABORTED}};
  int ok = 0, corrupt = 0;
  for (const Json& v : vs) {
    const std::string name = v["name"].str();
    SCOPED_TRACE(name);
    const std::string h = v["encoded_hex"].str();
    auto words = unhex(h);
    std::span<const std::byte> bytes{reinterpret_cast<const std::byte*>(words.data()), h.size() / 2};
    shmrepl_record_t r{};
    shmrepl_status_t st = records::decode(bytes, 0, &r);
    if (v["expect"].str() == "corrupt") {
      EXPECT_EQ(st, SHMREPL_E_CORRUPT);
      ++corrupt;
      continue;
    }
    ++ok;
    ASSERT_EQ(st, SHMREPL_OK);
    EXPECT_EQ(r.kind, kinds.at(v["kind"].str()));
    EXPECT_EQ(r.execution_id, v["execution_id"].u64());
    EXPECT_EQ(r.seq, v["seq"].u64());
    EXPECT_EQ(r.timestamp_ns, v["timestamp_ns"].u64());
    EXPECT_EQ(r.raw_len, bytes.size());
    if (v.has("data_hex")) {
      EXPECT_EQ(hex(bytes_str(r.data, r.data_len)), v["data_hex"].str());
      if (v.has("data")) {
        EXPECT_EQ(bytes_str(r.data, r.data_len), v["data"].str());
      }
    }
    if (v.has("stream")) {
      EXPECT_EQ(r.stream, v["stream"].str() == "stdout" ? SHMREPL_STREAM_STDOUT : SHMREPL_STREAM_STDERR);
    }
    if (v.has("session_id")) {
      EXPECT_EQ(fb::GetRecord(words.data())->body_as_Started()->session_id(), v["session_id"].u64());
    }
    if (v.has("password")) {
      EXPECT_EQ(fb::GetRecord(words.data())->body_as_InputRequest()->password(), v["password"].boolean());
    }
    if (v["kind"].str() == "FINISHED") {
      EXPECT_EQ(r.finish_status, statuses.at(v["status"].str()));
      EXPECT_EQ(r.exit_code, v["exit_code"].i64());
      EXPECT_EQ(r.duration_ns, v["duration_ns"].u64());
    }
    if (v["kind"].str() == "ERROR") {
      shmrepl_bytes_t ename{}, evalue{};
      std::size_t lines = 0;
      ASSERT_EQ(shmrepl_record_error(&r, &ename, &evalue, &lines), SHMREPL_OK);
      EXPECT_EQ(bytes_str(ename.ptr, ename.len), v["ename"].str());
      EXPECT_EQ(hex(bytes_str(evalue.ptr, evalue.len)), v["data_hex"].str());
      const JsonArray& tb = v["traceback"].arr();
      ASSERT_EQ(lines, tb.size());
      for (std::size_t i = 0; i < lines; ++i) {
        shmrepl_bytes_t line{};
        ASSERT_EQ(shmrepl_record_traceback_line(&r, i, &line), SHMREPL_OK);
        EXPECT_EQ(bytes_str(line.ptr, line.len), tb[i].str());
      }
    }
  }
  EXPECT_GE(ok, 15);
  EXPECT_GE(corrupt, 4);
}

}  // namespace
