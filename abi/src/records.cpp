#include "records.hpp"

#include <flatbuffers/flatbuffers.h>

#include <array>
#include <cstring>

#include "shmrepl/shmrepl_generated.h"

namespace shmrepl::records {

namespace fbs = shmrepl::fb;

namespace {

// Hand layout of an Output Record (all little-endian, offsets from the start):
//   0  u32  root offset -> 24          4  "SHRP" file identifier
//   8  Record vtable: size 14, object size 33, fields at 8 16 24 32 4
//  24  Record table: i32 soffset 16 (to the vtable at 8)
//  28  u32 body offset -> 68          32 u64 execution_id
//  40  u64 seq                        48 u64 timestamp_ns      56 u8 body_type
//  58  Output vtable: size 8, object size 9, stream at 8, data at 4
//  68  Output table: i32 soffset 10   72 u32 data offset -> 80  76 u8 stream
//  80  u32 length                     84 data bytes
// tests/abi/records_test.cpp checks it against FlatBufferBuilder and the Verifier.
static_assert(kOutputOverhead == 84);

template <typename T>
inline void put(std::byte* p, std::size_t at, T v) noexcept {
  static_assert(std::endian::native == std::endian::little, "the ring is little-endian");
  std::memcpy(p + at, &v, sizeof v);
}

constexpr uint16_t kRecordVtable[7] = {14, 33, 8, 16, 24, 32, 4};
constexpr uint16_t kOutputVtable[4] = {8, 9, 8, 4};

template <typename Builder>
void finish_record(Builder& fbb, const Meta& meta, fbs::Body type, flatbuffers::Offset<void> body) {
  fbs::RecordBuilder rb(fbb);
  rb.add_timestamp_ns(meta.timestamp_ns);
  rb.add_seq(meta.seq);
  rb.add_execution_id(meta.execution_id);
  rb.add_body(body);
  rb.add_body_type(type);
  fbb.Finish(rb.Finish(), fbs::RecordIdentifier());
}

void copy_out(flatbuffers::FlatBufferBuilder& fbb, std::vector<std::byte>& out) {
  auto* p = reinterpret_cast<const std::byte*>(fbb.GetBufferPointer());
  out.assign(p, p + fbb.GetSize());
}

flatbuffers::Offset<flatbuffers::String> str(flatbuffers::FlatBufferBuilder& fbb, std::string_view s) {
  return fbb.CreateString(s.data(), s.size());
}

// The hand layout with zero contents (meta, stream, length): written with one copy,
// and what decode() compares a record with before it trusts it without the Verifier.
constexpr std::array<std::byte, kOutputOverhead> output_bytes() {
  std::array<std::byte, kOutputOverhead> p{};
  auto put16 = [&](std::size_t at, uint16_t v) {
    p[at] = static_cast<std::byte>(v & 0xFF);
    p[at + 1] = static_cast<std::byte>(v >> 8);
  };
  auto put32 = [&](std::size_t at, uint32_t v) {
    for (std::size_t i = 0; i < 4; ++i) p[at + i] = static_cast<std::byte>((v >> (8 * i)) & 0xFF);
  };
  put32(0, 24);
  p[4] = std::byte{'S'}, p[5] = std::byte{'H'}, p[6] = std::byte{'R'}, p[7] = std::byte{'P'};
  for (std::size_t i = 0; i < 7; ++i) put16(8 + 2 * i, kRecordVtable[i]);
  put32(24, 16);
  put32(28, 68 - 28);
  p[56] = static_cast<std::byte>(fbs::Body::Output);
  for (std::size_t i = 0; i < 4; ++i) put16(58 + 2 * i, kOutputVtable[i]);
  put32(68, 68 - 58);
  put32(72, 80 - 72);
  return p;
}
constexpr std::array<std::byte, kOutputOverhead> kOutputBytes = output_bytes();

}  // namespace

std::byte* encode_output_header(std::span<std::byte> dst, const Meta& meta,
                                shmrepl_stream_t stream, std::size_t data_len) noexcept {
  std::byte* p = dst.data();
  std::memcpy(p, kOutputBytes.data(), kOutputOverhead);
  put<uint64_t>(p, 32, meta.execution_id);
  put<uint64_t>(p, 40, meta.seq);
  put<uint64_t>(p, 48, meta.timestamp_ns);
  put<uint8_t>(p, 76, static_cast<uint8_t>(stream));
  put<uint32_t>(p, 80, static_cast<uint32_t>(data_len));
  return p + kOutputOverhead;
}

std::size_t encode_output(std::span<std::byte> dst, const Meta& meta, shmrepl_stream_t stream,
                          std::span<const std::byte> data) noexcept {
  std::byte* d = encode_output_header(dst, meta, stream, data.size());
  if (!data.empty()) std::memcpy(d, data.data(), data.size());
  return output_size(data.size());
}

void encode_started(std::vector<std::byte>& out, const Meta& meta, uint64_t session_id,
                    std::string_view client_execution_id) {
  flatbuffers::FlatBufferBuilder fbb(128);
  auto id = str(fbb, client_execution_id);
  auto body = fbs::CreateStarted(fbb, session_id, id);
  finish_record(fbb, meta, fbs::Body::Started, body.Union());
  copy_out(fbb, out);
}

void encode_result(std::vector<std::byte>& out, const Meta& meta, std::string_view repr) {
  flatbuffers::FlatBufferBuilder fbb(128 + repr.size());
  auto r = str(fbb, repr);
  auto body = fbs::CreateResult(fbb, r);
  finish_record(fbb, meta, fbs::Body::Result, body.Union());
  copy_out(fbb, out);
}

void encode_error(std::vector<std::byte>& out, const Meta& meta, std::string_view ename,
                  std::string_view evalue, std::span<const std::string_view> traceback) {
  flatbuffers::FlatBufferBuilder fbb(256);
  std::vector<flatbuffers::Offset<flatbuffers::String>> lines;
  lines.reserve(traceback.size());
  for (std::string_view l : traceback) lines.push_back(str(fbb, l));
  auto tb = fbb.CreateVector(lines);
  auto n = str(fbb, ename);
  auto v = str(fbb, evalue);
  auto body = fbs::CreateError(fbb, n, v, tb);
  finish_record(fbb, meta, fbs::Body::Error, body.Union());
  copy_out(fbb, out);
}

void encode_input_request(std::vector<std::byte>& out, const Meta& meta, std::string_view prompt,
                          bool password) {
  flatbuffers::FlatBufferBuilder fbb(128);
  auto p = str(fbb, prompt);
  auto body = fbs::CreateInputRequest(fbb, p, password);
  finish_record(fbb, meta, fbs::Body::InputRequest, body.Union());
  copy_out(fbb, out);
}

void encode_finished(std::vector<std::byte>& out, const Meta& meta,
                     shmrepl_finish_status_t status, int32_t exit_code, uint64_t duration_ns,
                     int32_t signal) {
  flatbuffers::FlatBufferBuilder fbb(128);
  auto body = fbs::CreateFinished(fbb, static_cast<fbs::FinishStatus>(status), exit_code, duration_ns,
                                  signal);
  finish_record(fbb, meta, fbs::Body::Finished, body.Union());
  copy_out(fbb, out);
}

std::size_t utf8_split_point(std::span<const std::byte> data, std::size_t max) noexcept {
  if (data.size() <= max) return data.size();
  auto continuation = [&](std::size_t i) { return (std::to_integer<unsigned>(data[i]) & 0xC0u) == 0x80u; };
  std::size_t p = max;
  while (p > 0 && max - p < 3 && continuation(p)) --p;
  if (p == 0 || continuation(p)) return max;
  return p;
}

namespace {
template <typename V>
void set_data(shmrepl_record_t* out, const V* v) {
  if (v != nullptr) {
    out->data = reinterpret_cast<const uint8_t*>(v->data());
    out->data_len = v->size();
  }
}
}  // namespace

namespace {

// Exactly what encode_output writes: valid by construction (the Verifier accepts it
// for every length, tests/abi/records_test.cpp), so it needs no Verifier pass.
// Anything else, valid or not, takes the Verifier's path.
bool decode_own_output(std::span<const std::byte> payload, uint32_t frame_flags, shmrepl_record_t* out) noexcept {
  const std::byte* p = payload.data();
  if (payload.size() < kOutputOverhead) return false;
  // Every byte that does not depend on the contents: offsets 0-31 and 56-75.
  if (std::memcmp(p, kOutputBytes.data(), 32) != 0 || std::memcmp(p + 56, kOutputBytes.data() + 56, 20) != 0)
    return false;
  uint8_t stream;
  uint8_t pad[3];
  uint32_t len;
  std::memcpy(&stream, p + 76, 1);
  std::memcpy(pad, p + 77, 3);
  std::memcpy(&len, p + 80, 4);
  if ((stream != 1 && stream != 2) || (pad[0] | pad[1] | pad[2]) != 0 || len != payload.size() - kOutputOverhead)
    return false;
  // Field by field: a `*out = {}` first costs more than the rest of this function.
  out->kind = SHMREPL_RECORD_OUTPUT;
  out->stream = stream;
  out->flags = frame_flags & (SHMREPL_FLAG_MORE | SHMREPL_FLAG_CONTINUED);
  out->finish_status = 0;
  std::memcpy(&out->execution_id, p + 32, 8);
  std::memcpy(&out->seq, p + 40, 8);
  std::memcpy(&out->timestamp_ns, p + 48, 8);
  out->data = reinterpret_cast<const uint8_t*>(p + kOutputOverhead);
  out->data_len = len;
  out->raw = reinterpret_cast<const uint8_t*>(p);
  out->raw_len = payload.size();
  out->exit_code = 0;
  out->duration_ns = 0;
  out->reserved[0] = 0;
  out->reserved[1] = 0;
  return true;
}
}  // namespace

shmrepl_status_t decode(std::span<const std::byte> payload, uint32_t frame_flags,
                        shmrepl_record_t* out) noexcept {
  if (decode_own_output(payload, frame_flags, out)) return SHMREPL_OK;
  const auto* buf = reinterpret_cast<const uint8_t*>(payload.data());
  flatbuffers::Verifier::Options opts;
  opts.max_depth = 8;
  opts.max_tables = 1u << 16;
  flatbuffers::Verifier verifier(buf, payload.size(), opts);
  if (payload.size() < 8 || !fbs::VerifyRecordBuffer(verifier)) return SHMREPL_E_CORRUPT;
  const fbs::Record* rec = fbs::GetRecord(buf);
  // The Verifier accepts a union whose table is absent; every kind below needs it.
  if (rec->body() == nullptr) return SHMREPL_E_CORRUPT;
  *out = shmrepl_record_t{};
  out->execution_id = rec->execution_id();
  out->seq = rec->seq();
  out->timestamp_ns = rec->timestamp_ns();
  out->flags = frame_flags & (SHMREPL_FLAG_MORE | SHMREPL_FLAG_CONTINUED);
  out->raw = buf;
  out->raw_len = payload.size();
  switch (rec->body_type()) {
    case fbs::Body::Output: {
      const fbs::Output* o = rec->body_as_Output();
      out->kind = SHMREPL_RECORD_OUTPUT;
      auto s = o->stream();
      if (s != fbs::Stream::Stdout && s != fbs::Stream::Stderr) return SHMREPL_E_CORRUPT;
      out->stream = static_cast<uint32_t>(s);
      set_data(out, o->data());
      break;
    }
    case fbs::Body::Started:
      out->kind = SHMREPL_RECORD_STARTED;
      set_data(out, rec->body_as_Started()->client_execution_id());
      break;
    case fbs::Body::Result:
      out->kind = SHMREPL_RECORD_RESULT;
      set_data(out, rec->body_as_Result()->repr());
      break;
    case fbs::Body::Error:
      out->kind = SHMREPL_RECORD_ERROR;
      set_data(out, rec->body_as_Error()->evalue());
      break;
    case fbs::Body::InputRequest:
      out->kind = SHMREPL_RECORD_INPUT_REQUEST;
      set_data(out, rec->body_as_InputRequest()->prompt());
      if (rec->body_as_InputRequest()->password()) out->flags |= SHMREPL_FLAG_PASSWORD;
      break;
    case fbs::Body::Finished: {
      const fbs::Finished* f = rec->body_as_Finished();
      out->kind = SHMREPL_RECORD_FINISHED;
      out->finish_status = static_cast<uint32_t>(f->status());
      out->exit_code = f->exit_code();
      out->duration_ns = f->duration_ns();
      out->reserved[0] = static_cast<uint64_t>(static_cast<uint32_t>(f->signal()));
      break;
    }
    case fbs::Body::NONE:
      return SHMREPL_E_CORRUPT;
    default:
      out->kind = SHMREPL_RECORD_UNKNOWN;  // written by a newer producer
      break;
  }
  if (out->data == nullptr) out->data = buf;  // a valid pointer even when empty
  return SHMREPL_OK;
}

}  // namespace shmrepl::records
