// The record codec: the hand-laid Output record against FlatBufferBuilder and the
// Verifier, round trips of every kind, corrupt input, and utf8_split_point.
#include <flatbuffers/flatbuffers.h>
#include <gtest/gtest.h>
#include <rapidcheck.h>
#include <rapidcheck/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "records.hpp"
#include "ring_helpers.hpp"
#include "shmrepl/shmrepl.h"
#include "shmrepl/shmrepl_generated.h"

namespace {

using namespace shmrepl;
namespace fbs = shmrepl::fb;

// 8-byte aligned storage, as frames in the ring are.
struct Buf {
  std::vector<uint64_t> words;
  std::size_t size;
  explicit Buf(std::size_t n) : words((n + 7) / 8 + 1, 0), size(n) {}
  std::span<std::byte> span() { return {reinterpret_cast<std::byte*>(words.data()), size}; }
};

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
  std::vector<std::byte> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = static_cast<std::byte>((i * 131 + seed) & 0xFF);
  return v;
}

std::vector<std::byte> builder_output(const records::Meta& m, fbs::Stream stream, std::span<const std::byte> data) {
  flatbuffers::FlatBufferBuilder fbb;
  auto d = fbb.CreateVector(reinterpret_cast<const uint8_t*>(data.data()), data.size());
  auto out = fbs::CreateOutput(fbb, stream, d);
  fbs::RecordBuilder rb(fbb);
  rb.add_execution_id(m.execution_id);
  rb.add_seq(m.seq);
  rb.add_timestamp_ns(m.timestamp_ns);
  rb.add_body_type(fbs::Body::Output);
  rb.add_body(out.Union());
  fbb.Finish(rb.Finish(), fbs::RecordIdentifier());
  auto* p = reinterpret_cast<const std::byte*>(fbb.GetBufferPointer());
  return {p, p + fbb.GetSize()};
}

bool verifies(std::span<const std::byte> b) {
  flatbuffers::Verifier v(reinterpret_cast<const uint8_t*>(b.data()), b.size());
  return fbs::VerifyRecordBuffer(v);
}

std::string str(const uint8_t* p, std::size_t n) { return {reinterpret_cast<const char*>(p), n}; }

TEST(RecordsOutput, HandLayoutMatchesBuilderForManyLengths) {
  std::vector<std::size_t> lens;
  for (std::size_t i = 0; i <= 300; ++i) lens.push_back(i);
  lens.insert(lens.end(), {1000, 4095, 4096, 65536, 1u << 20});
  for (std::size_t len : lens) {
    const records::Meta meta{0x1122334455667788ull, len * 3, 1'700'000'000'000'000'000ull + len};
    auto data = pattern(len, static_cast<unsigned>(len));
    shmrepl_stream_t stream = len % 2 ? SHMREPL_STREAM_STDERR : SHMREPL_STREAM_STDOUT;
    Buf buf(records::output_size(len));
    ASSERT_EQ(records::encode_output(buf.span(), meta, stream, data), records::output_size(len));
    ASSERT_TRUE(verifies(buf.span())) << len;

    // The generated accessors read it as the schema says.
    const fbs::Record* rec = fbs::GetRecord(buf.words.data());
    ASSERT_EQ(rec->body_type(), fbs::Body::Output);
    EXPECT_EQ(rec->execution_id(), meta.execution_id);
    EXPECT_EQ(rec->seq(), meta.seq);
    EXPECT_EQ(rec->timestamp_ns(), meta.timestamp_ns);
    EXPECT_EQ(static_cast<uint32_t>(rec->body_as_Output()->stream()), static_cast<uint32_t>(stream));
    ASSERT_EQ(rec->body_as_Output()->data()->size(), len);

    auto built = builder_output(meta, static_cast<fbs::Stream>(stream), data);
    ASSERT_TRUE(verifies(built));
    Buf built_buf(built.size());
    std::memcpy(built_buf.span().data(), built.data(), built.size());
    shmrepl_record_t a{}, b{};
    ASSERT_EQ(records::decode(buf.span(), 0, &a), SHMREPL_OK) << len;
    ASSERT_EQ(records::decode(built_buf.span(), 0, &b), SHMREPL_OK) << len;
    EXPECT_EQ(a.kind, SHMREPL_RECORD_OUTPUT);
    EXPECT_EQ(a.kind, b.kind);
    EXPECT_EQ(a.stream, b.stream);
    EXPECT_EQ(a.execution_id, b.execution_id);
    EXPECT_EQ(a.seq, b.seq);
    EXPECT_EQ(a.timestamp_ns, b.timestamp_ns);
    ASSERT_EQ(a.data_len, len);
    ASSERT_EQ(b.data_len, len);
    if (len > 0) {
      EXPECT_EQ(std::memcmp(a.data, data.data(), len), 0);
      EXPECT_EQ(std::memcmp(b.data, data.data(), len), 0);
    }
    EXPECT_EQ(a.raw, reinterpret_cast<const uint8_t*>(buf.words.data()));
    EXPECT_EQ(a.raw_len, records::output_size(len));
    EXPECT_EQ(a.data, a.raw + records::kOutputOverhead);
  }
}

TEST(RecordsOutput, HeaderThenFillEqualsEncode) {
  auto data = pattern(77, 5);
  const records::Meta meta{1, 2, 3};
  Buf a(records::output_size(77)), b(records::output_size(77));
  records::encode_output(a.span(), meta, SHMREPL_STREAM_STDOUT, data);
  std::byte* d = records::encode_output_header(b.span(), meta, SHMREPL_STREAM_STDOUT, 77);
  EXPECT_EQ(d, b.span().data() + records::kOutputOverhead);
  std::memcpy(d, data.data(), 77);
  EXPECT_EQ(std::memcmp(a.span().data(), b.span().data(), a.size), 0);
}

TEST(RecordsOutput, FrameFlagsPassThrough) {
  Buf buf(records::output_size(3));
  records::encode_output(buf.span(), {0, 0, 0}, SHMREPL_STREAM_STDOUT, test::as_bytes("abc"));
  shmrepl_record_t r{};
  ASSERT_EQ(records::decode(buf.span(), SHMREPL_FLAG_MORE | SHMREPL_FLAG_CONTINUED | 0x80000000u, &r), SHMREPL_OK);
  EXPECT_EQ(r.flags, SHMREPL_FLAG_MORE | SHMREPL_FLAG_CONTINUED);
}

// ---- the other kinds ---------------------------------------------------------

shmrepl_record_t decode_vec(const std::vector<std::byte>& v, Buf& keep) {
  keep = Buf(v.size());
  std::memcpy(keep.span().data(), v.data(), v.size());
  shmrepl_record_t r{};
  EXPECT_EQ(records::decode(keep.span(), 0, &r), SHMREPL_OK);
  EXPECT_EQ(r.raw_len, v.size());
  EXPECT_TRUE(verifies(keep.span()));
  return r;
}

TEST(RecordsKinds, Started) {
  std::vector<std::byte> v;
  Buf keep(0);
  records::encode_started(v, {9, 0, 11}, 5, "client-id-7");
  shmrepl_record_t r = decode_vec(v, keep);
  EXPECT_EQ(r.kind, SHMREPL_RECORD_STARTED);
  EXPECT_EQ(r.execution_id, 9u);
  EXPECT_EQ(r.seq, 0u);
  EXPECT_EQ(r.timestamp_ns, 11u);
  EXPECT_EQ(str(r.data, r.data_len), "client-id-7");
  EXPECT_EQ(fbs::GetRecord(keep.words.data())->body_as_Started()->session_id(), 5u);
  records::encode_started(v, {9, 0, 11}, 5, "");
  r = decode_vec(v, keep);
  EXPECT_EQ(r.data_len, 0u);
  EXPECT_NE(r.data, nullptr);
}

TEST(RecordsKinds, Result) {
  std::vector<std::byte> v;
  Buf keep(0);
  records::encode_result(v, {1, 4, 2}, "[1, 2, 3]");
  shmrepl_record_t r = decode_vec(v, keep);
  EXPECT_EQ(r.kind, SHMREPL_RECORD_RESULT);
  EXPECT_EQ(r.seq, 4u);
  EXPECT_EQ(str(r.data, r.data_len), "[1, 2, 3]");
  std::string big(100'000, 'r');
  records::encode_result(v, {1, 5, 2}, big);
  r = decode_vec(v, keep);
  EXPECT_EQ(str(r.data, r.data_len), big);
}

TEST(RecordsKinds, ErrorWithTraceback) {
  std::vector<std::byte> v;
  Buf keep(0);
  std::vector<std::string_view> tb = {"Traceback (most recent call last):\n", "  File \"x\", line 1\n", "",
                                      "KeyError: 'k'\n"};
  records::encode_error(v, {3, 8, 1}, "KeyError", "'k'", tb);
  shmrepl_record_t r = decode_vec(v, keep);
  EXPECT_EQ(r.kind, SHMREPL_RECORD_ERROR);
  EXPECT_EQ(str(r.data, r.data_len), "'k'");
  shmrepl_bytes_t ename{}, evalue{};
  std::size_t n = 0;
  ASSERT_EQ(shmrepl_record_error(&r, &ename, &evalue, &n), SHMREPL_OK);
  EXPECT_EQ(str(ename.ptr, ename.len), "KeyError");
  EXPECT_EQ(str(evalue.ptr, evalue.len), "'k'");
  ASSERT_EQ(n, tb.size());
  for (std::size_t i = 0; i < n; ++i) {
    shmrepl_bytes_t line{};
    ASSERT_EQ(shmrepl_record_traceback_line(&r, i, &line), SHMREPL_OK);
    EXPECT_EQ(str(line.ptr, line.len), tb[i]);
  }
  // No traceback at all.
  records::encode_error(v, {3, 9, 1}, "E", "", {});
  r = decode_vec(v, keep);
  ASSERT_EQ(shmrepl_record_error(&r, nullptr, nullptr, &n), SHMREPL_OK);
  EXPECT_EQ(n, 0u);
  shmrepl_bytes_t line{};
  EXPECT_EQ(shmrepl_record_traceback_line(&r, 0, &line), SHMREPL_E_INVALID);
}

TEST(RecordsKinds, InputRequest) {
  std::vector<std::byte> v;
  Buf keep(0);
  records::encode_input_request(v, {1, 2, 3}, "Password: ", true);
  shmrepl_record_t r = decode_vec(v, keep);
  EXPECT_EQ(r.kind, SHMREPL_RECORD_INPUT_REQUEST);
  EXPECT_EQ(str(r.data, r.data_len), "Password: ");
  EXPECT_TRUE(fbs::GetRecord(keep.words.data())->body_as_InputRequest()->password());
}

TEST(RecordsKinds, FinishedEveryStatus) {
  const shmrepl_finish_status_t all[] = {SHMREPL_FINISH_OK, SHMREPL_FINISH_ERROR, SHMREPL_FINISH_CANCELLED,
                                         SHMREPL_FINISH_EXITED, SHMREPL_FINISH_ABORTED};
  for (auto s : all) {
    std::vector<std::byte> v;
    Buf keep(0);
    records::encode_finished(v, {7, 100, 5}, s, -3, 123456789);
    shmrepl_record_t r = decode_vec(v, keep);
    EXPECT_EQ(r.kind, SHMREPL_RECORD_FINISHED);
    EXPECT_EQ(r.finish_status, static_cast<uint32_t>(s));
    EXPECT_EQ(r.exit_code, -3);
    EXPECT_EQ(r.duration_ns, 123456789u);
    EXPECT_EQ(r.seq, 100u);
    EXPECT_EQ(r.data_len, 0u);
  }
}

// ---- corrupt input -------------------------------------------------------------

// Records of every kind, the seeds for the corruption tests.
std::vector<std::vector<std::byte>> samples() {
  std::vector<std::vector<std::byte>> out;
  std::vector<std::byte> v;
  records::encode_started(v, {1, 0, 2}, 3, "cid");
  out.push_back(v);
  Buf o(records::output_size(20));
  records::encode_output(o.span(), {1, 1, 2}, SHMREPL_STREAM_STDERR, pattern(20, 1));
  out.emplace_back(o.span().begin(), o.span().end());
  records::encode_result(v, {1, 2, 2}, "42");
  out.push_back(v);
  std::string_view tb[] = {"a\n", "b\n"};
  records::encode_error(v, {1, 3, 2}, "ValueError", "bad", tb);
  out.push_back(v);
  records::encode_input_request(v, {1, 4, 2}, "? ", false);
  out.push_back(v);
  records::encode_finished(v, {1, 5, 2}, SHMREPL_FINISH_ERROR, 1, 9);
  out.push_back(v);
  return out;
}

// Decodes bytes held in an exactly sized heap block (so ASan sees any overread)
// and checks what a valid result promises.
shmrepl_status_t decode_checked(std::span<const std::byte> bytes) {
  std::unique_ptr<uint64_t[]> block(new uint64_t[(bytes.size() + 7) / 8 + 1]);
  auto* p = reinterpret_cast<std::byte*>(block.get());
  if (!bytes.empty()) std::memcpy(p, bytes.data(), bytes.size());
  shmrepl_record_t r{};
  shmrepl_status_t st = records::decode({p, bytes.size()}, 0, &r);
  EXPECT_TRUE(st == SHMREPL_OK || st == SHMREPL_E_CORRUPT) << st;
  if (st == SHMREPL_OK) {
    const auto* lo = reinterpret_cast<const uint8_t*>(p);
    EXPECT_GE(r.data, lo);
    EXPECT_LE(r.data + r.data_len, lo + bytes.size());
    EXPECT_LE(r.kind, static_cast<uint32_t>(SHMREPL_RECORD_FINISHED));
    if (r.kind == SHMREPL_RECORD_OUTPUT) {
      EXPECT_TRUE(r.stream == SHMREPL_STREAM_STDOUT || r.stream == SHMREPL_STREAM_STDERR);
    }
    if (r.kind == SHMREPL_RECORD_ERROR) {
      std::size_t n = 0;
      if (shmrepl_record_error(&r, nullptr, nullptr, &n) == SHMREPL_OK) {
        for (std::size_t i = 0; i < n; ++i) {
          shmrepl_bytes_t line{};
          EXPECT_EQ(shmrepl_record_traceback_line(&r, i, &line), SHMREPL_OK);
          EXPECT_GE(line.ptr, lo);
          EXPECT_LE(line.ptr + line.len, lo + bytes.size());
        }
      }
    }
  }
  return st;
}

TEST(RecordsCorrupt, EveryTruncationIsRefused) {
  for (const auto& s : samples()) {
    for (std::size_t n = 0; n < s.size(); ++n) {
      // A FlatBuffer cut short may still be valid only if nothing reached past n.
      decode_checked({s.data(), n});
    }
    EXPECT_EQ(decode_checked(s), SHMREPL_OK);
  }
  EXPECT_EQ(decode_checked({}), SHMREPL_E_CORRUPT);
}

TEST(RecordsCorrupt, TruncatedOutputIsRefused) {
  Buf o(records::output_size(20));
  records::encode_output(o.span(), {1, 1, 2}, SHMREPL_STREAM_STDOUT, pattern(20, 1));
  for (std::size_t n = 0; n < o.size; ++n) EXPECT_EQ(decode_checked(o.span().first(n)), SHMREPL_E_CORRUPT) << n;
}

TEST(RecordsCorrupt, SpecificDamage) {
  Buf o(records::output_size(4));
  records::encode_output(o.span(), {1, 1, 2}, SHMREPL_STREAM_STDOUT, test::as_bytes("abcd"));
  auto damaged = [&](std::size_t at, std::byte value) {
    std::vector<std::byte> v(o.span().begin(), o.span().end());
    v[at] = value;
    return decode_checked(v);
  };
  EXPECT_EQ(damaged(4, std::byte{'X'}), SHMREPL_E_CORRUPT);   // file identifier
  EXPECT_EQ(damaged(76, std::byte{3}), SHMREPL_E_CORRUPT);    // unknown stream
  EXPECT_EQ(damaged(56, std::byte{0}), SHMREPL_E_CORRUPT);    // body type NONE
  EXPECT_EQ(damaged(80, std::byte{5}), SHMREPL_E_CORRUPT);    // data longer than the buffer
  EXPECT_EQ(damaged(0, std::byte{0xF0}), SHMREPL_E_CORRUPT);  // root offset out of range
  EXPECT_EQ(damaged(56, std::byte{200}), SHMREPL_OK);         // a kind from a newer producer
  std::vector<std::byte> v(o.span().begin(), o.span().end());
  v[56] = std::byte{200};
  Buf b(v.size());
  std::memcpy(b.span().data(), v.data(), v.size());
  shmrepl_record_t r{};
  ASSERT_EQ(records::decode(b.span(), 0, &r), SHMREPL_OK);
  EXPECT_EQ(r.kind, SHMREPL_RECORD_UNKNOWN);
  EXPECT_EQ(r.raw_len, v.size());
}

// The Verifier accepts a union type whose table is missing (regression).
TEST(RecordsCorrupt, UnionTypeWithoutBody) {
  for (auto type : {fbs::Body::Output, fbs::Body::Started, fbs::Body::Result, fbs::Body::Error,
                    fbs::Body::InputRequest, fbs::Body::Finished}) {
    flatbuffers::FlatBufferBuilder fbb;
    fbs::RecordBuilder rb(fbb);
    rb.add_seq(1);
    rb.add_body_type(type);
    fbb.Finish(rb.Finish(), fbs::RecordIdentifier());
    std::span<const std::byte> bytes{reinterpret_cast<const std::byte*>(fbb.GetBufferPointer()), fbb.GetSize()};
    EXPECT_TRUE(verifies(bytes));
    EXPECT_EQ(decode_checked(bytes), SHMREPL_E_CORRUPT) << static_cast<int>(type);
  }
}

RC_GTEST_PROP(RecordsCorrupt, RandomFlipsNeverCrash, ()) {
  auto all = samples();
  const auto& s = all[*rc::gen::inRange<std::size_t>(0, all.size())];
  std::vector<std::byte> v = s;
  const int flips = *rc::gen::inRange(1, 6);
  for (int i = 0; i < flips; ++i) {
    std::size_t at = *rc::gen::inRange<std::size_t>(0, v.size());
    v[at] ^= static_cast<std::byte>(*rc::gen::inRange(1, 256));
  }
  std::size_t keep = *rc::gen::inRange<std::size_t>(0, v.size() + 1);
  v.resize(keep);
  shmrepl_status_t st = decode_checked(v);
  RC_CLASSIFY(st == SHMREPL_OK, "still valid");
  RC_ASSERT(st == SHMREPL_OK || st == SHMREPL_E_CORRUPT);
}

// ---- utf8_split_point --------------------------------------------------------

bool is_boundary(std::string_view s, std::size_t at) {
  return at == 0 || at == s.size() || (static_cast<unsigned char>(s[at]) & 0xC0) != 0x80;
}

TEST(Utf8Split, Examples) {
  auto split = [](std::string_view s, std::size_t max) { return records::utf8_split_point(test::as_bytes(s), max); };
  EXPECT_EQ(split("", 0), 0u);
  EXPECT_EQ(split("", 5), 0u);
  EXPECT_EQ(split("abc", 5), 3u);
  EXPECT_EQ(split("abcdef", 4), 4u);
  const std::string e = "a\xc3\xa9z";  // a é z
  EXPECT_EQ(split(e, 1), 1u);
  EXPECT_EQ(split(e, 2), 1u);  // not inside é
  EXPECT_EQ(split(e, 3), 3u);
  const std::string euro = "\xe2\x82\xac\xe2\x82\xac";  // € €
  EXPECT_EQ(split(euro, 5), 3u);
  EXPECT_EQ(split(euro, 4), 3u);
  EXPECT_EQ(split(euro, 3), 3u);
  EXPECT_EQ(split(euro, 2), 2u);  // the first character alone is longer: cut, never 0
  const std::string emoji = "\xf0\x9f\x98\x80!";
  EXPECT_EQ(split(emoji, 4), 4u);
  EXPECT_EQ(split(emoji, 3), 3u);
  const std::string conts(10, '\x80');  // not UTF-8 at all
  EXPECT_EQ(split(conts, 6), 6u);
  EXPECT_EQ(split("ab\xf0\x9f\x98\x80", 5), 2u);
}

RC_GTEST_PROP(Utf8Split, ValidTextSplitsAtTheLastBoundary, ()) {
  test::Rng rng(*rc::gen::arbitrary<uint64_t>());
  std::string s = test::random_utf8(rng, *rc::gen::inRange<std::size_t>(0, 200));
  std::size_t max = *rc::gen::inRange<std::size_t>(4, 250);
  std::size_t at = records::utf8_split_point(test::as_bytes(s), max);
  RC_ASSERT(at <= std::min(max, s.size()));
  RC_ASSERT(is_boundary(s, at));
  for (std::size_t k = at + 1; k <= std::min(max, s.size()); ++k) RC_ASSERT(!is_boundary(s, k));
  RC_ASSERT(s.size() == 0 || at > 0);
  // Splitting repeatedly rebuilds the text, each part valid on its own.
  auto parts = test::split_write(test::as_bytes(s), max, true);
  std::string joined;
  for (const auto& p : parts) {
    RC_ASSERT(p.data.size() <= max);
    std::string_view part(reinterpret_cast<const char*>(p.data.data()), p.data.size());
    RC_ASSERT(is_boundary(s, static_cast<std::size_t>(part.data() - s.data())));
    joined += part;
  }
  RC_ASSERT(joined == s);
}

RC_GTEST_PROP(Utf8Split, AnyBytesMakeProgress, (const std::vector<unsigned char>& raw)) {
  std::span<const std::byte> b{reinterpret_cast<const std::byte*>(raw.data()), raw.size()};
  std::size_t max = *rc::gen::inRange<std::size_t>(1, 20);
  std::size_t at = records::utf8_split_point(b, max);
  RC_ASSERT(at <= std::min(max, raw.size()));
  RC_ASSERT(raw.empty() || at > 0);
  const bool ok = raw.size() <= max ? at == raw.size() : at + 3 >= max;
  RC_ASSERT(ok);
}

}  // namespace
