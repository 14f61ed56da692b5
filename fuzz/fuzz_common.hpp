// Helpers shared by the fuzz targets: a check that aborts (so libFuzzer and the
// replay driver both report it as a crash with the input saved) and a byte reader.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>

#define SHMREPL_FUZZ_CHECK(cond)                                                    \
  do {                                                                              \
    if (!(cond)) {                                                                  \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                 \
    }                                                                               \
  } while (0)

namespace shmrepl::fuzz {

// True when [p, p + n) lies inside [lo, lo + size). n == 0 still needs p in range.
inline bool within(const void* p, std::size_t n, const void* lo, std::size_t size) {
  auto a = reinterpret_cast<std::uintptr_t>(p);
  auto b = reinterpret_cast<std::uintptr_t>(lo);
  return a >= b && a <= b + size && n <= b + size - a;
}

// Reads every byte of a range, so ASan checks it is addressable.
inline unsigned touch(const void* p, std::size_t n) {
  unsigned sum = 0;
  const auto* b = static_cast<const volatile unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) sum += b[i];
  return sum;
}

// Consumes fuzzer bytes front to back; past the end it yields zeros. The seed
// generator (make_seeds.cpp) writes inputs in the same order.
class Bytes {
 public:
  explicit Bytes(std::span<const uint8_t> in) : in_(in) {}
  template <typename T>
  T take() {
    T v{};
    std::size_t n = std::min(sizeof v, in_.size());
    if (n > 0) std::memcpy(&v, in_.data(), n);
    in_ = in_.subspan(n);
    return v;
  }
  std::span<const uint8_t> take_bytes(std::size_t n) {
    n = std::min(n, in_.size());
    auto out = in_.first(n);
    in_ = in_.subspan(n);
    return out;
  }
  std::span<const uint8_t> rest() const { return in_; }
  bool empty() const { return in_.empty(); }

 private:
  std::span<const uint8_t> in_;
};

}  // namespace shmrepl::fuzz
