// Encoding and verification of Record payloads (abi/shmrepl.fbs).
// The Output encoder is the hot path: it lays the FlatBuffer out by hand straight
// into the ring, so the user's bytes are copied exactly once.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "shmrepl/shmrepl.h"

namespace shmrepl::records {

struct Meta {
  uint64_t execution_id;
  uint64_t seq;
  uint64_t timestamp_ns;
};

// Bytes an Output record with `data_len` data bytes takes.
constexpr std::size_t kOutputOverhead = 84;
constexpr std::size_t output_size(std::size_t data_len) { return kOutputOverhead + data_len; }

// Writes an Output record into dst (dst.size() >= output_size(data.size()); dst
// 8-byte aligned). Returns the bytes written.
std::size_t encode_output(std::span<std::byte> dst, const Meta& meta, shmrepl_stream_t stream,
                          std::span<const std::byte> data) noexcept;
// Like encode_output, but returns a pointer to the data area for the caller to fill
// (data_len bytes), e.g. to encode a Python str directly.
std::byte* encode_output_header(std::span<std::byte> dst, const Meta& meta,
                                shmrepl_stream_t stream, std::size_t data_len) noexcept;

// The rarer records, built with FlatBufferBuilder into `out` (cleared first).
void encode_started(std::vector<std::byte>& out, const Meta& meta, uint64_t session_id,
                    std::string_view client_execution_id);
void encode_result(std::vector<std::byte>& out, const Meta& meta, std::string_view repr);
void encode_error(std::vector<std::byte>& out, const Meta& meta, std::string_view ename,
                  std::string_view evalue, std::span<const std::string_view> traceback);
void encode_input_request(std::vector<std::byte>& out, const Meta& meta, std::string_view prompt,
                          bool password);
void encode_finished(std::vector<std::byte>& out, const Meta& meta,
                     shmrepl_finish_status_t status, int32_t exit_code, uint64_t duration_ns,
                     int32_t signal = 0);

// Where to split a write too large for one record: the longest prefix of `data` of
// at most `max` bytes that ends on a UTF-8 character boundary. It cuts inside a
// character only when there is no boundary in the 3 bytes before `max` (not UTF-8)
// or the first character alone is longer than `max`, so it is never 0 while both
// `max` and `data` are non-zero.
std::size_t utf8_split_point(std::span<const std::byte> data, std::size_t max) noexcept;

// Verifies `payload` as a Record and fills `out` (pointers into payload).
// Returns SHMREPL_OK or SHMREPL_E_CORRUPT. Never reads outside payload.
shmrepl_status_t decode(std::span<const std::byte> payload, uint32_t frame_flags,
                        shmrepl_record_t* out) noexcept;

}  // namespace shmrepl::records
