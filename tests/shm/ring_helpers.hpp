// Helpers shared by the ring and C ABI tests: ring names, Output records written
// the way the engine writes them, splitting of large writes, digests.
#pragma once

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "records.hpp"
#include "shmrepl/shm/producer.hpp"
#include "shmrepl/shmrepl.h"

namespace shmrepl::test {

// A name no other test (or concurrent ctest process) uses.
inline std::string unique_ring_name(std::string_view tag) {
  static std::atomic<unsigned> counter{0};
  return "shmrepl-test." + std::to_string(::getpid()) + "." + std::string(tag) + "." +
         std::to_string(counter.fetch_add(1));
}

// SHMREPL_TEST_SCALE (default 1) shrinks or grows the long tests, e.g. 0.1 under sanitizers.
inline double test_scale() {
  const char* s = std::getenv("SHMREPL_TEST_SCALE");
  double v = s != nullptr ? std::strtod(s, nullptr) : 1.0;
  return v > 0 ? v : 1.0;
}

inline std::span<const std::byte> as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

struct Part {
  std::span<const std::byte> data;
  uint32_t flags;
};

// Splits one write into records of at most max_data bytes, the way a writer must
// when the write exceeds the ring's largest record: text at UTF-8 boundaries.
inline std::vector<Part> split_write(std::span<const std::byte> data, std::size_t max_data, bool text) {
  std::vector<Part> parts;
  std::size_t at = 0;
  do {
    std::span<const std::byte> rest = data.subspan(at);
    std::size_t n = text ? records::utf8_split_point(rest, max_data) : std::min(rest.size(), max_data);
    parts.push_back({rest.first(n), 0});
    at += n;
  } while (at < data.size());
  if (parts.size() > 1) {
    for (std::size_t i = 0; i < parts.size(); ++i)
      parts[i].flags = (i + 1 < parts.size() ? SHMREPL_FLAG_MORE : 0u) | (i > 0 ? SHMREPL_FLAG_CONTINUED : 0u);
  }
  return parts;
}

// The largest data an Output record can carry in this ring.
inline std::size_t max_output_data(const shm::Producer& p) { return p.max_payload() - records::kOutputOverhead; }

// Writes one Output record without waiting; false when the ring has no room.
inline bool try_write_output(shm::Producer& p, const records::Meta& meta, shmrepl_stream_t stream,
                             std::span<const std::byte> data, uint32_t flags) {
  std::span<std::byte> room = p.try_reserve(records::output_size(data.size()));
  if (room.empty()) return false;
  p.commit(records::encode_output(room, meta, stream, data), flags);
  return true;
}

// Writes one Output record, waiting for room as long as it takes.
inline void write_output(shm::Producer& p, const records::Meta& meta, shmrepl_stream_t stream,
                         std::span<const std::byte> data, uint32_t flags) {
  while (!try_write_output(p, meta, stream, data, flags))
    p.wait_for_space(records::output_size(data.size()), std::chrono::milliseconds(100));
}

// Writes a FlatBufferBuilder-made record (Started, Finished...).
inline void write_payload(shm::Producer& p, const std::vector<std::byte>& payload) {
  p.write(payload, 0);
}

constexpr uint64_t kFnvOffset = 0xcbf29ce484222325ull;
inline uint64_t fnv1a(uint64_t h, const void* p, std::size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

// Deterministic bytes for record contents (xorshift64*).
struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545F4914F6CDD1Dull;
  }
  uint64_t below(uint64_t n) { return n == 0 ? 0 : next() % n; }
  void fill(std::byte* p, std::size_t n) {
    while (n >= 8) {
      uint64_t v = next();
      std::memcpy(p, &v, 8);
      p += 8;
      n -= 8;
    }
    if (n == 0) return;
    uint64_t v = next();
    std::memcpy(p, &v, n);
  }
};

// Random valid UTF-8 with characters of every length.
inline std::string random_utf8(Rng& rng, std::size_t approx_bytes) {
  std::string s;
  while (s.size() < approx_bytes) {
    uint32_t cp;
    switch (rng.below(4)) {
      case 0: cp = 0x20 + static_cast<uint32_t>(rng.below(0x5F)); break;
      case 1: cp = 0x80 + static_cast<uint32_t>(rng.below(0x800 - 0x80)); break;
      case 2: cp = 0x800 + static_cast<uint32_t>(rng.below(0xD800 - 0x800)); break;
      default: cp = 0x10000 + static_cast<uint32_t>(rng.below(0x110000 - 0x10000)); break;
    }
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else if (cp < 0x800) {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      s += static_cast<char>(0xE0 | (cp >> 12));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      s += static_cast<char>(0xF0 | (cp >> 18));
      s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  return s;
}

}  // namespace shmrepl::test
