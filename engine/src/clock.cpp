#include "clock.hpp"

#include <time.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

namespace shmrepl::engine {

std::atomic<bool> RecordClock::enabled_{false};
std::atomic<uint32_t> RecordClock::seq_{0};
std::atomic<uint64_t> RecordClock::base_tsc_{0};
std::atomic<uint64_t> RecordClock::base_ns_{0};
std::atomic<uint64_t> RecordClock::mult_{0};
std::atomic<uint64_t> RecordClock::limit_tsc_{0};

namespace {

constexpr uint64_t kResyncNs = 10'000'000;     // re-anchor every 10 ms of use
constexpr uint64_t kMinCalibrateNs = 10'000'000;  // measure the rate over >= 10 ms
constexpr uint64_t kMaxSampleTicks = 1u << 15;    // a longer clock read was preempted: unusable

uint64_t realtime() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

#if defined(__x86_64__)
// An invariant TSC ticks at a constant rate in every state (CPUID 0x80000007 EDX[8]).
bool invariant_tsc() noexcept {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(0x80000000u, &a, &b, &c, &d) == 0 || a < 0x80000007u) return false;
  __get_cpuid(0x80000007u, &a, &b, &c, &d);
  return (d & (1u << 8)) != 0;
}

std::atomic_flag g_resyncing = ATOMIC_FLAG_INIT;
#endif

}  // namespace

uint64_t RecordClock::resync() noexcept {
#if defined(__x86_64__)
  static const bool usable = invariant_tsc();
  // rdtsc right around the clock read: its midpoint is the tick of now_ns.
  uint64_t t0 = __builtin_ia32_rdtsc();
  uint64_t now_ns = realtime();
  uint64_t t1 = __builtin_ia32_rdtsc();
  if (!usable || t1 - t0 > kMaxSampleTicks) return now_ns;
  uint64_t tsc = t0 + (t1 - t0) / 2;
  if (g_resyncing.test_and_set(std::memory_order_acquire)) return now_ns;  // another thread does it
  // Only this thread writes the fields now.
  uint64_t old_tsc = base_tsc_.load(std::memory_order_relaxed);
  uint64_t old_ns = base_ns_.load(std::memory_order_relaxed);
  uint64_t mult = mult_.load(std::memory_order_relaxed);
  bool measured = old_tsc != 0 && tsc > old_tsc && now_ns > old_ns && now_ns - old_ns >= kMinCalibrateNs;
  if (measured) {
    double ns_per_tick = static_cast<double>(now_ns - old_ns) / static_cast<double>(tsc - old_tsc);
    mult = static_cast<uint64_t>(ns_per_tick * 4294967296.0);
  }
  // Keep the first anchor until the rate can be measured over kMinCalibrateNs.
  if (measured || old_tsc == 0) {
    uint32_t s = seq_.load(std::memory_order_relaxed);
    seq_.store(s + 1, std::memory_order_relaxed);  // odd: readers fall back to this function
    // Release stores: a reader that sees one of them also sees the odd seq.
    base_tsc_.store(tsc, std::memory_order_release);
    base_ns_.store(now_ns, std::memory_order_release);
    mult_.store(mult, std::memory_order_release);
    uint64_t limit = mult != 0 ? (kResyncNs << 32) / mult : 0;
    limit_tsc_.store(limit, std::memory_order_release);
    seq_.store(s + 2, std::memory_order_release);
    if (mult != 0) enabled_.store(true, std::memory_order_relaxed);
  }
  g_resyncing.clear(std::memory_order_release);
  return now_ns;
#else
  return realtime();
#endif
}

}  // namespace shmrepl::engine
