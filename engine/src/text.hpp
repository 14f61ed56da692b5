// Text pieces handed to the ring: bytes, or the code units of a Python str
// (PEP 393 kinds), encoded to UTF-8 straight into the ring so that a str is never
// copied into an intermediate buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace shmrepl::engine {

struct Segment {
  const void* data = nullptr;
  std::size_t len = 0;  // code units (bytes for kind 0)
  uint8_t kind = 0;     // 0: bytes (UTF-8 or raw); 1, 2, 4: UCS1/UCS2/UCS4 units
};

inline bool is_surrogate(uint32_t c) { return c >= 0xD800 && c <= 0xDFFF; }

// UTF-8 size of a segment. *surrogate is set if a UCS2/UCS4 segment holds one
// (not encodable with errors=strict; the caller takes the slow path).
inline std::size_t utf8_size(const Segment& s, bool* surrogate) {
  switch (s.kind) {
    case 1: {
      const auto* p = static_cast<const uint8_t*>(s.data);
      std::size_t n = s.len;
      for (std::size_t i = 0; i < s.len; ++i) n += p[i] >> 7;
      return n;
    }
    case 2: {
      const auto* p = static_cast<const uint16_t*>(s.data);
      std::size_t n = 0;
      for (std::size_t i = 0; i < s.len; ++i) {
        uint32_t c = p[i];
        n += c < 0x80 ? 1 : c < 0x800 ? 2 : 3;
        if (is_surrogate(c)) *surrogate = true;
      }
      return n;
    }
    case 4: {
      const auto* p = static_cast<const uint32_t*>(s.data);
      std::size_t n = 0;
      for (std::size_t i = 0; i < s.len; ++i) {
        uint32_t c = p[i];
        n += c < 0x80 ? 1 : c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
        if (is_surrogate(c)) *surrogate = true;
      }
      return n;
    }
    default:
      return s.len;
  }
}

inline std::size_t put_utf8(uint32_t c, unsigned char* d) {
  if (c < 0x80) {
    d[0] = static_cast<unsigned char>(c);
    return 1;
  }
  if (c < 0x800) {
    d[0] = static_cast<unsigned char>(0xC0 | (c >> 6));
    d[1] = static_cast<unsigned char>(0x80 | (c & 0x3F));
    return 2;
  }
  if (c < 0x10000) {
    d[0] = static_cast<unsigned char>(0xE0 | (c >> 12));
    d[1] = static_cast<unsigned char>(0x80 | ((c >> 6) & 0x3F));
    d[2] = static_cast<unsigned char>(0x80 | (c & 0x3F));
    return 3;
  }
  d[0] = static_cast<unsigned char>(0xF0 | (c >> 18));
  d[1] = static_cast<unsigned char>(0x80 | ((c >> 12) & 0x3F));
  d[2] = static_cast<unsigned char>(0x80 | ((c >> 6) & 0x3F));
  d[3] = static_cast<unsigned char>(0x80 | (c & 0x3F));
  return 4;
}

template <typename Unit>
std::size_t encode_units(const Unit* p, std::size_t* pos, std::size_t end, unsigned char* d,
                         std::size_t cap) {
  std::size_t out = 0;
  std::size_t i = *pos;
  for (; i < end; ++i) {
    uint32_t c = p[i];
    if (c < 0x80) {
      if (out == cap) break;
      d[out++] = static_cast<unsigned char>(c);
      continue;
    }
    std::size_t need = c < 0x800 ? 2 : c < 0x10000 ? 3 : 4;
    if (cap - out < need) break;
    out += put_utf8(c, d + out);
  }
  *pos = i;
  return out;
}

// Encodes units from *pos on into d (at most cap bytes), whole characters only;
// advances *pos. `text` bytes (kind 0) are cut only at UTF-8 character starts.
inline std::size_t encode_some(const Segment& s, std::size_t* pos, unsigned char* d,
                               std::size_t cap, bool text) {
  switch (s.kind) {
    case 1:
      return encode_units(static_cast<const uint8_t*>(s.data), pos, s.len, d, cap);
    case 2:
      return encode_units(static_cast<const uint16_t*>(s.data), pos, s.len, d, cap);
    case 4:
      return encode_units(static_cast<const uint32_t*>(s.data), pos, s.len, d, cap);
    default: {
      const auto* p = static_cast<const unsigned char*>(s.data);
      std::size_t n = s.len - *pos;
      if (n > cap) {
        n = cap;
        if (text)
          while (n > 0 && (p[*pos + n] & 0xC0) == 0x80) --n;
      }
      std::memcpy(d, p + *pos, n);
      *pos += n;
      return n;
    }
  }
}

}  // namespace shmrepl::engine
