// CLOCK_REALTIME for record timestamps, cheaply: every record carries one, and
// clock_gettime costs ~25 ns in a VM (vDSO seqlock + rdtscp) against ~8 ns for rdtsc.
// The TSC is extrapolated from an anchor (tsc, realtime) re-taken from clock_gettime
// every kResyncNs, with the rate measured between the last two anchors, so the error
// stays far below a microsecond and a clock step is followed within kResyncNs.
// Without an invariant TSC it is clock_gettime.
#pragma once

#include <atomic>
#include <cstdint>

namespace shmrepl::engine {

class RecordClock {
 public:
  static uint64_t now() noexcept {
#if defined(__x86_64__)
    if (enabled_.load(std::memory_order_relaxed)) {
      // Seqlock read (acquire loads, no fences: TSan checks it). Pairs with the
      // release stores in resync(): if a field comes from a newer anchor, the seq
      // read after it has moved on, so an even, unchanged seq means the fields
      // belong together. d < limit keeps d * mult within 64 bits.
      uint32_t s1 = seq_.load(std::memory_order_acquire);
      uint64_t base_tsc = base_tsc_.load(std::memory_order_acquire);
      uint64_t base_ns = base_ns_.load(std::memory_order_acquire);
      uint64_t mult = mult_.load(std::memory_order_acquire);
      uint64_t limit = limit_tsc_.load(std::memory_order_acquire);
      uint64_t d = __builtin_ia32_rdtsc() - base_tsc;
      if ((s1 & 1) == 0 && s1 == seq_.load(std::memory_order_relaxed) && d < limit)
        return base_ns + ((d * mult) >> 32);
    }
#endif
    return resync();
  }

 private:
  static uint64_t resync() noexcept;
  static std::atomic<bool> enabled_;
  static std::atomic<uint32_t> seq_;
  static std::atomic<uint64_t> base_tsc_, base_ns_, mult_;  // mult: ns per tick << 32
  static std::atomic<uint64_t> limit_tsc_;  // ticks after which the anchor is re-taken
};

}  // namespace shmrepl::engine
