// Units of the engine that need no interpreter: the record clock and the UTF-8
// encoding of str code units straight into a buffer.
#include <gtest/gtest.h>
#include <time.h>

#include <random>
#include <string>
#include <thread>
#include <vector>

#include "clock.hpp"
#include "text.hpp"

using shmrepl::engine::RecordClock;
using shmrepl::engine::Segment;

namespace {

uint64_t realtime() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<uint64_t>(ts.tv_nsec);
}

// The reference: code points to UTF-8 one at a time.
std::string reference(const std::vector<uint32_t>& cps) {
  std::string out;
  for (uint32_t c : cps) {
    unsigned char b[4];
    std::size_t n = shmrepl::engine::put_utf8(c, b);
    out.append(reinterpret_cast<char*>(b), n);
  }
  return out;
}

template <typename Unit>
void check_kind(uint8_t kind, uint32_t max_cp, std::mt19937& rng) {
  std::uniform_int_distribution<uint32_t> pick(0, max_cp);
  for (int round = 0; round < 200; ++round) {
    std::vector<uint32_t> cps(rng() % 300);
    std::vector<Unit> units;
    for (auto& c : cps) {
      do c = pick(rng);
      while (shmrepl::engine::is_surrogate(c));
      units.push_back(static_cast<Unit>(c));
    }
    Segment s{units.data(), units.size(), kind};
    bool sur = false;
    std::string expect = reference(cps);
    ASSERT_EQ(shmrepl::engine::utf8_size(s, &sur), expect.size());
    ASSERT_FALSE(sur);
    // Encode in pieces of random capacity: whole characters only, nothing lost.
    std::string got;
    std::size_t pos = 0;
    while (pos < s.len) {
      std::size_t cap = 4 + rng() % 40;
      std::string buf(cap, '\0');
      std::size_t n = shmrepl::engine::encode_some(s, &pos, reinterpret_cast<unsigned char*>(buf.data()), cap, true);
      ASSERT_LE(n, cap);
      ASSERT_GT(n, 0u);
      got.append(buf.data(), n);
      ASSERT_EQ(got, expect.substr(0, got.size()));  // cut at a character boundary
    }
    ASSERT_EQ(got, expect);
  }
}

}  // namespace

TEST(RecordClock, FollowsRealtime) {
  for (int i = 0; i < 20000; ++i) {
    uint64_t before = realtime();
    uint64_t t = RecordClock::now();
    uint64_t after = realtime();
    // Within 50 us of the system clock (extrapolation error plus scheduling).
    ASSERT_GE(t + 50'000, before);
    ASSERT_LE(t, after + 50'000);
    if (i % 1000 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

TEST(RecordClock, ManyThreads) {
  std::vector<std::thread> ts;
  std::atomic<bool> ok{true};
  for (int k = 0; k < 4; ++k)
    ts.emplace_back([&] {
      for (int i = 0; i < 20000; ++i) {
        uint64_t before = realtime();
        uint64_t t = RecordClock::now();
        uint64_t after = realtime();
        if (t + 50'000 < before || t > after + 50'000) ok = false;
      }
    });
  for (auto& t : ts) t.join();
  EXPECT_TRUE(ok);
}

TEST(Text, AllKindsEncodeLikeTheReference) {
  std::mt19937 rng(42);
  check_kind<uint8_t>(1, 0xFF, rng);
  check_kind<uint16_t>(2, 0xFFFF, rng);
  check_kind<uint32_t>(4, 0x10FFFF, rng);
}

TEST(Text, BytesAreCutAtCharacterStarts) {
  std::string text = "a\xc3\xa9\xe6\x97\xa5\xf0\x9f\x90\x8d";  // a é 日 🐍
  Segment s{text.data(), text.size(), 0};
  for (std::size_t cap = 4; cap <= text.size(); ++cap) {
    std::size_t pos = 0;
    std::string got;
    while (pos < s.len) {
      std::string buf(cap, '\0');
      std::size_t n = shmrepl::engine::encode_some(s, &pos, reinterpret_cast<unsigned char*>(buf.data()), cap, true);
      ASSERT_GT(n, 0u);
      ASSERT_TRUE(pos == s.len || (static_cast<unsigned char>(text[pos]) & 0xC0) != 0x80) << cap;
      got.append(buf.data(), n);
    }
    EXPECT_EQ(got, text);
  }
  // Raw bytes (not text) are cut anywhere.
  std::size_t pos = 0;
  unsigned char buf[2];
  EXPECT_EQ(shmrepl::engine::encode_some(s, &pos, buf, 2, false), 2u);
  EXPECT_EQ(pos, 2u);
}

TEST(Text, SurrogatesAreReported) {
  std::vector<uint16_t> u = {'a', 0xD800, 'b'};
  Segment s{u.data(), u.size(), 2};
  bool sur = false;
  shmrepl::engine::utf8_size(s, &sur);
  EXPECT_TRUE(sur);
}
