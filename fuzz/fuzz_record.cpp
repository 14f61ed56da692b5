// Fuzzes the record verifier (records::decode) and the C ABI's ERROR accessors with
// arbitrary bytes as a frame payload. Checks: no crash, no read outside the payload
// (ASan), every pointer handed out lies inside the payload, and a decoded record
// encodes back into one that decodes to the same fields.
#include <flatbuffers/flatbuffers.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"
#include "records.hpp"
#include "shmrepl/shmrepl.h"
#include "shmrepl/shmrepl_generated.h"

namespace {

using shmrepl::fuzz::touch;
using shmrepl::fuzz::within;
namespace records = shmrepl::records;
namespace fbs = shmrepl::fb;

std::string_view view(const flatbuffers::String* s) {
  return s != nullptr ? std::string_view(s->data(), s->size()) : std::string_view();
}

std::string_view view(const shmrepl_bytes_t& b) {
  return {reinterpret_cast<const char*>(b.ptr), b.len};
}

void check_bytes(const shmrepl_bytes_t& b, const uint8_t* data, size_t size) {
  if (b.ptr == nullptr) {
    SHMREPL_FUZZ_CHECK(b.len == 0);
    return;
  }
  SHMREPL_FUZZ_CHECK(within(b.ptr, b.len, data, size));
  touch(b.ptr, b.len);
}

struct ErrorParts {
  std::string_view ename, evalue;
  std::vector<std::string_view> lines;
};

// The ERROR accessors on `rec`; checks every pointer against [data, data + size).
ErrorParts check_error_accessors(const shmrepl_record_t& rec, const uint8_t* data, size_t size) {
  ErrorParts parts;
  shmrepl_bytes_t ename{}, evalue{}, line{};
  size_t n = 0;
  shmrepl_status_t st = shmrepl_record_error(&rec, &ename, &evalue, &n);
  if (rec.kind != SHMREPL_RECORD_ERROR) {
    SHMREPL_FUZZ_CHECK(st == SHMREPL_E_INVALID);
    SHMREPL_FUZZ_CHECK(shmrepl_record_traceback_line(&rec, 0, &line) == SHMREPL_E_INVALID);
    return parts;
  }
  // decode() verified the buffer with stricter limits than the accessors use.
  SHMREPL_FUZZ_CHECK(st == SHMREPL_OK);
  SHMREPL_FUZZ_CHECK(shmrepl_record_error(&rec, nullptr, nullptr, nullptr) == SHMREPL_OK);
  check_bytes(ename, data, size);
  check_bytes(evalue, data, size);
  if (evalue.ptr != nullptr)
    SHMREPL_FUZZ_CHECK(evalue.ptr == rec.data && evalue.len == rec.data_len);
  SHMREPL_FUZZ_CHECK(n <= size / 4);  // each line costs at least a 4-byte offset
  parts.ename = view(ename);
  parts.evalue = view(evalue);
  for (size_t i = 0; i < n; ++i) {
    SHMREPL_FUZZ_CHECK(shmrepl_record_traceback_line(&rec, i, &line) == SHMREPL_OK);
    check_bytes(line, data, size);
    parts.lines.push_back(view(line));
  }
  SHMREPL_FUZZ_CHECK(shmrepl_record_traceback_line(&rec, n, &line) == SHMREPL_E_INVALID);
  SHMREPL_FUZZ_CHECK(shmrepl_record_traceback_line(&rec, 0, nullptr) == SHMREPL_E_INVALID);
  return parts;
}

// Encodes what `rec` says again and checks that it decodes to the same fields.
void check_round_trip(const shmrepl_record_t& rec, const uint8_t* data, size_t size) {
  const records::Meta meta{rec.execution_id, rec.seq, rec.timestamp_ns};
  const fbs::Record* root = fbs::GetRecord(data);
  std::string_view payload(reinterpret_cast<const char*>(rec.data), rec.data_len);
  std::vector<std::byte> out;
  switch (rec.kind) {
    case SHMREPL_RECORD_OUTPUT:
      out.resize(records::output_size(rec.data_len));
      records::encode_output(out, meta, static_cast<shmrepl_stream_t>(rec.stream),
                             std::as_bytes(std::span(rec.data, rec.data_len)));
      break;
    case SHMREPL_RECORD_STARTED:
      records::encode_started(out, meta, root->body_as_Started()->session_id(),
                              view(root->body_as_Started()->client_execution_id()));
      break;
    case SHMREPL_RECORD_RESULT: records::encode_result(out, meta, payload); break;
    case SHMREPL_RECORD_ERROR: {
      ErrorParts e = check_error_accessors(rec, data, size);
      records::encode_error(out, meta, e.ename, e.evalue, e.lines);
      break;
    }
    case SHMREPL_RECORD_INPUT_REQUEST:
      records::encode_input_request(out, meta, payload, root->body_as_InputRequest()->password());
      break;
    case SHMREPL_RECORD_FINISHED:
      // A status this library does not know has no shmrepl_finish_status_t value.
      if (rec.finish_status > SHMREPL_FINISH_ABORTED) return;
      records::encode_finished(out, meta, static_cast<shmrepl_finish_status_t>(rec.finish_status),
                               root->body_as_Finished()->exit_code(), rec.duration_ns);
      break;
    default: return;  // UNKNOWN: nothing to re-encode
  }
  shmrepl_record_t again{};
  SHMREPL_FUZZ_CHECK(records::decode(out, 0, &again) == SHMREPL_OK);
  SHMREPL_FUZZ_CHECK(again.kind == rec.kind && again.stream == rec.stream &&
                     again.finish_status == rec.finish_status &&
                     again.execution_id == rec.execution_id && again.seq == rec.seq &&
                     again.timestamp_ns == rec.timestamp_ns && again.exit_code == rec.exit_code &&
                     again.duration_ns == rec.duration_ns &&
                     again.flags == (rec.flags & SHMREPL_FLAG_PASSWORD));
  SHMREPL_FUZZ_CHECK(again.data_len == rec.data_len);
  if (rec.data_len > 0) SHMREPL_FUZZ_CHECK(std::memcmp(again.data, rec.data, rec.data_len) == 0);
  if (rec.kind == SHMREPL_RECORD_ERROR) {
    ErrorParts a = check_error_accessors(rec, data, size);
    ErrorParts b =
        check_error_accessors(again, reinterpret_cast<const uint8_t*>(again.raw), again.raw_len);
    SHMREPL_FUZZ_CHECK(a.ename == b.ename && a.evalue == b.evalue && a.lines == b.lines);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const std::byte> payload(reinterpret_cast<const std::byte*>(data), size);
  shmrepl_record_t rec{};
  shmrepl_status_t st = records::decode(payload, ~0u, &rec);
  if (st != SHMREPL_OK) {
    SHMREPL_FUZZ_CHECK(st == SHMREPL_E_CORRUPT);
    return 0;
  }
  SHMREPL_FUZZ_CHECK(rec.raw == data && rec.raw_len == size);
  // The frame's flags, plus PASSWORD for a getpass() INPUT_REQUEST (checked below).
  SHMREPL_FUZZ_CHECK((rec.flags & ~SHMREPL_FLAG_PASSWORD) ==
                     (SHMREPL_FLAG_MORE | SHMREPL_FLAG_CONTINUED));
  SHMREPL_FUZZ_CHECK(rec.kind <= SHMREPL_RECORD_FINISHED);
  SHMREPL_FUZZ_CHECK(rec.data != nullptr && within(rec.data, rec.data_len, data, size));
  touch(rec.data, rec.data_len);
  if (rec.kind == SHMREPL_RECORD_OUTPUT)
    SHMREPL_FUZZ_CHECK(rec.stream == SHMREPL_STREAM_STDOUT || rec.stream == SHMREPL_STREAM_STDERR);
  else
    SHMREPL_FUZZ_CHECK(rec.stream == SHMREPL_STREAM_NONE);
  // `raw` is promised to be a verified Record (clients read it with generated code),
  // also when decode() took its fast path for the producer's own Output layout.
  flatbuffers::Verifier verifier(data, size);
  SHMREPL_FUZZ_CHECK(fbs::VerifyRecordBuffer(verifier));
  const fbs::Record* root = fbs::GetRecord(data);
  SHMREPL_FUZZ_CHECK(root->execution_id() == rec.execution_id && root->seq() == rec.seq &&
                     root->timestamp_ns() == rec.timestamp_ns);
  const bool password =
      rec.kind == SHMREPL_RECORD_INPUT_REQUEST && root->body_as_InputRequest()->password();
  SHMREPL_FUZZ_CHECK(((rec.flags & SHMREPL_FLAG_PASSWORD) != 0) == password);
  if (rec.kind == SHMREPL_RECORD_OUTPUT) {
    const fbs::Output* o = root->body_as_Output();
    SHMREPL_FUZZ_CHECK(o != nullptr && static_cast<uint32_t>(o->stream()) == rec.stream);
    if (o->data() != nullptr)
      SHMREPL_FUZZ_CHECK(o->data()->data() == rec.data && o->data()->size() == rec.data_len);
    else
      SHMREPL_FUZZ_CHECK(rec.data_len == 0);
  }
  check_error_accessors(rec, data, size);
  check_round_trip(rec, data, size);
  return 0;
}
