// Unit tests of the ring itself (shm::Producer, shm::Reader): frame format, flow
// control, wake-ups, and untrusted ring images.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

#include "ring_helpers.hpp"
#include "shmrepl/shm/layout.hpp"
#include "shmrepl/shm/producer.hpp"
#include "shmrepl/shm/reader.hpp"
#include "shmrepl/shm/sys.hpp"

namespace shmrepl::shm {
namespace {

using test::unique_ring_name;
using namespace std::chrono_literals;

// A second, plain mapping of a ring object, to look at the bytes a peer sees.
struct RawMap {
  std::byte* base = nullptr;
  std::size_t size = 0;
  mode_t mode = 0;
  explicit RawMap(const std::string& name) {
    int fd = ::shm_open(("/" + name).c_str(), O_RDWR, 0);
    if (fd < 0) throw std::system_error(errno, std::system_category(), "shm_open");
    struct stat st {};
    ::fstat(fd, &st);
    size = static_cast<std::size_t>(st.st_size);
    mode = st.st_mode & 0777;
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) throw std::system_error(errno, std::system_category(), "mmap");
    base = static_cast<std::byte*>(p);
  }
  ~RawMap() { ::munmap(base, size); }
  RingHeader& header() { return *reinterpret_cast<RingHeader*>(base); }
  ProducerBlock& block() { return *reinterpret_cast<ProducerBlock*>(base + kProducerOffset); }
  ReaderSlot* slots() { return reinterpret_cast<ReaderSlot*>(base + kSlotsOffset); }
  FrameHeader frame_at(uint64_t off) {
    FrameHeader h;
    std::memcpy(&h, base + kDataOffset + off, sizeof h);
    return h;
  }
};

// The header's generation, read through a mapping of its own.
uint32_t RawHeaderGeneration(int fd) {
  void* m = ::mmap(nullptr, kDataOffset, PROT_READ, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) return ~0u;
  const uint32_t g = static_cast<const RingHeader*>(m)->generation.load();
  ::munmap(m, kDataOffset);
  return g;
}

bool shm_exists(const std::string& name) {
  int fd = ::shm_open(("/" + name).c_str(), O_RDONLY, 0);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

std::unique_ptr<Reader> open_reader(const std::string& name, shmrepl_reader_start_t start = SHMREPL_START_OLDEST) {
  shmrepl_status_t st = SHMREPL_E_INTERNAL;
  std::string err;
  auto r = Reader::open(name, start, &st, &err);
  EXPECT_EQ(st, SHMREPL_OK) << err;
  return r;
}

// A frame whose payload is its index, repeated: the reader can check contents.
std::vector<std::byte> indexed_payload(uint32_t index, std::size_t len) {
  std::vector<std::byte> v(len);
  for (std::size_t i = 0; i < len; ++i) v[i] = static_cast<std::byte>((index + i) & 0xFF);
  return v;
}
bool matches_index(const Frame& f, uint32_t index, std::size_t len) {
  if (f.payload.size() != len) return false;
  for (std::size_t i = 0; i < len; ++i)
    if (f.payload[i] != static_cast<std::byte>((index + i) & 0xFF)) return false;
  return true;
}

TEST(RingName, Validation) {
  EXPECT_TRUE(valid_ring_name("shmrepl.1000.42.7"));
  EXPECT_TRUE(valid_ring_name("a"));
  EXPECT_TRUE(valid_ring_name("A-z_0.9"));
  EXPECT_TRUE(valid_ring_name(std::string(200, 'x')));
  EXPECT_FALSE(valid_ring_name(""));
  EXPECT_FALSE(valid_ring_name(std::string(201, 'x')));
  EXPECT_FALSE(valid_ring_name(".hidden"));
  EXPECT_FALSE(valid_ring_name("a/b"));
  EXPECT_FALSE(valid_ring_name("/abs"));
  EXPECT_FALSE(valid_ring_name(".."));
  EXPECT_FALSE(valid_ring_name("sp ace"));
  EXPECT_FALSE(valid_ring_name(std::string("nul\0x", 5)));
  EXPECT_FALSE(valid_ring_name("caf\xc3\xa9"));
}

TEST(RingCreate, HeaderFields) {
  std::string name = unique_ring_name("hdr");
  auto p = Producer::create(name, {.capacity = 5000, .execution_id = 77, .max_payload = 0});
  EXPECT_EQ(p->capacity(), 8192u);
  EXPECT_EQ(p->max_payload(), 8192u / 4 - kFrameHeaderSize);
  EXPECT_EQ(p->execution_id(), 77u);
  RawMap m(name);
  EXPECT_EQ(m.size, kDataOffset + 8192);
  EXPECT_EQ(m.mode, 0600u);
  RingHeader& h = m.header();
  EXPECT_EQ(h.magic, kMagic);
  EXPECT_EQ(std::memcmp(&h.magic, "SHMREPL", 8), 0);
  EXPECT_EQ(h.layout_version, kLayoutVersion);
  EXPECT_EQ(h.header_size, kDataOffset);
  EXPECT_EQ(h.capacity, 8192u);
  EXPECT_EQ(h.execution_id, 77u);
  EXPECT_EQ(h.producer_pid, static_cast<uint32_t>(::getpid()));
  EXPECT_EQ(h.producer_start_time, process_start_time(::getpid()));
  EXPECT_NE(h.producer_start_time, 0u);
  EXPECT_EQ(h.reader_slots, kReaderSlots);
  EXPECT_EQ(h.max_payload, p->max_payload());
  // membarrier(2) works here (Linux >= 4.16): records are published without a fence,
  // and readers fence before they sleep.
  EXPECT_EQ(h.sleep_fence, 1u);
  EXPECT_EQ(h.state.load(), static_cast<uint32_t>(RingState::kOpen));
  p->finish();
  EXPECT_EQ(h.state.load(), static_cast<uint32_t>(RingState::kFinished));
}

TEST(RingCreate, CapacityBoundsAndMaxPayload) {
  auto small = Producer::create(unique_ring_name("cap"), {.capacity = 1, .execution_id = 0, .max_payload = 0});
  EXPECT_EQ(small->capacity(), kMinCapacity);
  auto capped = Producer::create(unique_ring_name("cap"), {.capacity = 65536, .execution_id = 0, .max_payload = 100});
  EXPECT_EQ(capped->max_payload(), 100u);
  auto big_max = Producer::create(unique_ring_name("cap"), {.capacity = 4096, .execution_id = 0, .max_payload = 1u << 30});
  EXPECT_EQ(big_max->max_payload(), 4096u / 4 - kFrameHeaderSize);
  EXPECT_THROW(Producer::create(unique_ring_name("cap"), {.capacity = kMaxCapacity + 1, .execution_id = 0, .max_payload = 0}),
               std::invalid_argument);
}

TEST(RingCreate, RejectsBadNamesAndDuplicates) {
  EXPECT_THROW(Producer::create("a/b", {}), std::invalid_argument);
  EXPECT_THROW(Producer::create("", {}), std::invalid_argument);
  EXPECT_THROW(Producer::create(std::string(201, 'n'), {}), std::invalid_argument);
  std::string name = unique_ring_name("dup");
  auto p = Producer::create(name, {.capacity = 4096, .execution_id = 0, .max_payload = 0});
  EXPECT_THROW(Producer::create(name, {.capacity = 4096, .execution_id = 0, .max_payload = 0}), std::system_error);
  EXPECT_TRUE(shm_exists(name));  // the failed second create did not remove the first
}

TEST(RingCreate, UnlinkOnCloseUnlessReleased) {
  std::string a = unique_ring_name("unl");
  Producer::create(a, {.capacity = 4096, .execution_id = 0, .max_payload = 0}).reset();
  EXPECT_FALSE(shm_exists(a));
  std::string b = unique_ring_name("unl");
  {
    auto p = Producer::create(b, {.capacity = 4096, .execution_id = 0, .max_payload = 0});
    p->release_name();
  }
  EXPECT_TRUE(shm_exists(b));
  ::shm_unlink(("/" + b).c_str());
  // unlink() removes the name while an attached reader keeps reading.
  std::string c = unique_ring_name("unl");
  auto p = Producer::create(c, {.capacity = 4096, .execution_id = 0, .max_payload = 0});
  auto r = open_reader(c);
  p->unlink();
  EXPECT_FALSE(shm_exists(c));
  p->write(test::as_bytes("still here"));
  Frame f{};
  std::string err;
  ASSERT_EQ(r->next(0, &f, &err), SHMREPL_OK);
  EXPECT_EQ(f.payload.size(), 10u);
}

TEST(RingFrames, HeadersAreAlignedAndCarryLengthAndFlags) {
  std::string name = unique_ring_name("frm");
  auto p = Producer::create(name, {.capacity = 4096, .execution_id = 0, .max_payload = 0});
  const std::size_t lens[] = {0, 1, 7, 8, 9, 100};
  const uint32_t flags[] = {0, kFlagMore, kFlagMore | kFlagContinued, kFlagContinued, 0, kFlagPad | kFlagMore};
  for (std::size_t i = 0; i < std::size(lens); ++i) p->write(indexed_payload(static_cast<uint32_t>(i), lens[i]), flags[i]);
  RawMap m(name);
  uint64_t off = 0;
  for (std::size_t i = 0; i < std::size(lens); ++i) {
    FrameHeader h = m.frame_at(off);
    EXPECT_EQ(h.length, lens[i]) << i;
    EXPECT_EQ(h.flags, flags[i] & ~kFlagPad) << i;  // a caller cannot forge a pad
    if (lens[i] > 0) {
      EXPECT_EQ(std::memcmp(m.base + kDataOffset + off + kFrameHeaderSize, indexed_payload(static_cast<uint32_t>(i), lens[i]).data(), lens[i]), 0);
    }
    off += frame_size(lens[i]);
    EXPECT_EQ(off % kFrameAlign, 0u);
  }
  EXPECT_EQ(m.block().write_pos.load(), off);
  EXPECT_EQ(p->write_pos(), off);

  auto r = open_reader(name);
  std::string err;
  for (std::size_t i = 0; i < std::size(lens); ++i) {
    Frame f{};
    ASSERT_EQ(r->next(0, &f, &err), SHMREPL_OK) << err;
    EXPECT_TRUE(matches_index(f, static_cast<uint32_t>(i), lens[i])) << i;
    EXPECT_EQ(f.flags, flags[i] & ~kFlagPad);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(f.payload.data()) % 8, 0u);  // records' u64 fields
  }
  Frame f{};
  EXPECT_EQ(r->next(0, &f, &err), SHMREPL_E_AGAIN);
  EXPECT_EQ(r->held(), std::size(lens));
}

TEST(RingFrames, PadFrameFillsTheEndAndTheNextFrameStartsAtZero) {
  std::string name = unique_ring_name("pad");
  auto p = Producer::create(name, {.capacity = 4096, .execution_id = 0, .max_payload = 0});
  auto r = open_reader(name);
  std::string err;
  // 4 frames of 960 bytes end at 3840; the fifth needs 960 and only 256 are left.
  // (At most 3584 bytes are unreleased at once: the rest is the closing reserve.)
  static_assert(frame_size(952) == 960);
  for (uint32_t i = 0; i < 4; ++i) {
    p->write(indexed_payload(i, 952));
    Frame f{};
    ASSERT_EQ(r->next(0, &f, &err), SHMREPL_OK);
    ASSERT_TRUE(matches_index(f, i, 952));
    ASSERT_EQ(r->release(1), SHMREPL_OK);
  }
  p->write(indexed_payload(4, 952));
  RawMap m(name);
  FrameHeader pad = m.frame_at(3840);
  EXPECT_EQ(pad.flags, kFlagPad);
  EXPECT_EQ(pad.length, 256u - kFrameHeaderSize);
  FrameHeader first = m.frame_at(0);
  EXPECT_EQ(first.length, 952u);
  EXPECT_EQ(p->write_pos(), 4096u + 960u);
  Frame f{};
  ASSERT_EQ(r->next(0, &f, &err), SHMREPL_OK);
  EXPECT_TRUE(matches_index(f, 4, 952));
  EXPECT_EQ(r->next(0, &f, &err), SHMREPL_E_AGAIN);
}

// The guardian's take-over of a dead producer's ring: it continues at write_pos and
// finds the newest frame even when last_frame is a frame (and a pad) behind.
TEST(RingTakeOver, FindsTheNewestFrameAndWritesIntoTheClosingReserve) {
  std::string name = unique_ring_name("takeover");
  auto p = Producer::create(name, {.capacity = 4096, .execution_id = 9, .max_payload = 0});
  auto r = open_reader(name);
  std::string err;
  for (uint32_t i = 0; i < 5; ++i) {
    p->write(indexed_payload(i, 952));  // frames of 960; the fifth wraps: a pad, then frame 4 at 0
    Frame f{};
    ASSERT_EQ(r->next(0, &f, &err), SHMREPL_OK);
    ASSERT_EQ(r->release(1), SHMREPL_OK);
  }
  RawMap m(name);
  auto* block = reinterpret_cast<ProducerBlock*>(m.base + kProducerOffset);
  for (uint64_t stale : {uint64_t{4096 + 0}, uint64_t{3 * 960}}) {  // exact, then two steps behind
    block->last_frame.store(stale);
    auto g = Producer::take_over(name);
    EXPECT_EQ(g->write_pos(), 4096u + 960u);
    std::span<const std::byte> last = g->last_payload();
    ASSERT_EQ(last.size(), 952u);
    EXPECT_EQ(std::memcmp(last.data(), indexed_payload(4, 952).data(), 952), 0);
  }
  // It writes on where the dead producer stopped; readers see it, then the end.
  auto g = Producer::take_over(name);
  EXPECT_FALSE(g->try_reserve(200, true).empty());
  g->commit(200);
  g->finish();
  Frame f{};
  ASSERT_EQ(r->next(0, &f, &err), SHMREPL_OK);
  EXPECT_EQ(f.payload.size(), 200u);
  ASSERT_EQ(r->release(1), SHMREPL_OK);
  EXPECT_EQ(r->next(0, &f, &err), SHMREPL_E_EOF);
  EXPECT_TRUE(Producer::force_finish(name));
  EXPECT_FALSE(Producer::force_finish(name + ".none"));
}

// A sealed ring (memfd): nobody resizes it, readers map it by descriptor, a reader
// refuses a descriptor that is not sealed, and its data area is read-only there.
TEST(RingSealed, CannotBeResizedAndIsReadByDescriptor) {
  const std::string name = unique_ring_name("sealed");
  auto p = Producer::create(name, {.capacity = 8192, .execution_id = 3, .sealed = true});
  ASSERT_GE(p->fd(), 0);
  EXPECT_FALSE(shm_exists(name));  // no name in /dev/shm
  const int seals = ::fcntl(p->fd(), F_GET_SEALS);
  EXPECT_EQ(seals & (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL), F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
  EXPECT_NE(::ftruncate(p->fd(), 4096), 0);
  EXPECT_EQ(errno, EPERM);
  EXPECT_NE(::ftruncate(p->fd(), 1 << 20), 0);
  EXPECT_EQ(errno, EPERM);
  // The closing reserve and the rest of the first lap still get their memory
  // (fallocate inside the sealed size).
  for (uint32_t i = 0; i < 7; ++i) p->write(indexed_payload(i, 1000));
  EXPECT_FALSE(p->allocation_failed());
  shmrepl_status_t st = SHMREPL_OK;
  std::string err;
  auto r = Reader::open_fd(p->fd(), name, SHMREPL_START_OLDEST, &st, &err);
  ASSERT_EQ(st, SHMREPL_OK) << err;
  Frame f{};
  ASSERT_EQ(r->next(0, &f, &err), SHMREPL_OK);
  EXPECT_EQ(std::memcmp(f.payload.data(), indexed_payload(0, 1000).data(), 1000), 0);
  // Read-only data: the reader's mapping of the data area has no write permission.
  const auto at = reinterpret_cast<uintptr_t>(f.payload.data());
  std::string perms;
  std::ifstream maps("/proc/self/maps");
  for (std::string line; std::getline(maps, line);) {
    uintptr_t lo = 0, hi = 0;
    char mode[5] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %4s", &lo, &hi, mode) == 3 && lo <= at && at < hi) perms = mode;
  }
  EXPECT_EQ(perms, "r--s");
  // The guardian takes over by descriptor.
  auto g = Producer::take_over(p->fd(), name);
  EXPECT_EQ(g->write_pos(), p->write_pos());
  EXPECT_TRUE(Producer::force_finish(p->fd()));

  // An unsealed memfd is refused: another process could shrink it under the reader.
  const int plain = ::memfd_create("shmrepl.unsealed", MFD_CLOEXEC);
  ASSERT_GE(plain, 0);
  ASSERT_EQ(::ftruncate(plain, kDataOffset + 4096), 0);
  EXPECT_EQ(Reader::open_fd(plain, "unsealed", SHMREPL_START_OLDEST, &st, &err), nullptr);
  EXPECT_EQ(st, SHMREPL_E_PERMISSION);
  ::close(plain);
}

// Ring reuse: a finished ring is reset for another execution only while no reader
// holds a slot; the new generation starts empty at position 0.
TEST(RingSealed, ResetOnlyWithoutReadersAndReadersSeeTheNewGeneration) {
  const std::string name = unique_ring_name("reset");
  auto p = Producer::create(name, {.capacity = 8192, .execution_id = 1, .sealed = true});
  for (uint32_t i = 0; i < 3; ++i) p->write(indexed_payload(i, 500));
  EXPECT_FALSE(p->try_reset(2));  // not finished
  p->finish();
  shmrepl_status_t st = SHMREPL_OK;
  std::string err;
  auto r = Reader::open_fd(p->fd(), name, SHMREPL_START_OLDEST, &st, &err);
  ASSERT_EQ(st, SHMREPL_OK) << err;
  EXPECT_FALSE(p->try_reset(2));  // a live reader holds a slot
  EXPECT_EQ(p->attached_readers(), 1u);
  r.reset();
  const uint32_t generation = RawHeaderGeneration(p->fd());
  ASSERT_TRUE(p->try_reset(2));
  EXPECT_EQ(RawHeaderGeneration(p->fd()), generation + 1);
  EXPECT_EQ(p->execution_id(), 2u);
  EXPECT_EQ(p->write_pos(), 0u);
  EXPECT_FALSE(p->finished());
  EXPECT_EQ(p->attached_readers(), 0u);
  p->write(indexed_payload(7, 100));
  r = Reader::open_fd(p->fd(), name, SHMREPL_START_OLDEST, &st, &err);
  ASSERT_EQ(st, SHMREPL_OK) << err;
  EXPECT_EQ(r->execution_id(), 2u);
  Frame f{};
  ASSERT_EQ(r->next(0, &f, &err), SHMREPL_OK);
  ASSERT_EQ(f.payload.size(), 100u);
  EXPECT_EQ(std::memcmp(f.payload.data(), indexed_payload(7, 100).data(), 100), 0);
  EXPECT_EQ(r->next(0, &f, &err), SHMREPL_E_AGAIN);
}

TEST(RingFrames, OversizedPayloadIsRefused) {
  auto p = Producer::create(unique_ring_name("big"), {.capacity = 4096, .execution_id = 0, .max_payload = 0});
  EXPECT_TRUE(p->try_reserve(p->max_payload() + 1).empty());
  EXPECT_FALSE(p->try_reserve(p->max_payload()).empty());
  std::span<std::byte> none = p->try_reserve(0);  // success, with nothing to fill
  EXPECT_TRUE(none.empty());
  EXPECT_NE(none.data(), nullptr);
  std::vector<std::byte> big(p->max_payload() + 1);
  EXPECT_THROW(p->write(big), std::length_error);
  EXPECT_EQ(p->wait_for_space(p->max_payload() + 1, 0ns), WaitResult::kReady);  // try_reserve decides
}

TEST(RingFlow, WithoutReadersEverythingIsKeptUntilFull) {
  std::string name = unique_ring_name("keep");
  auto p = Producer::create(name, {.capacity = 4096, .execution_id = 0, .max_payload = 0});
  uint32_t n = 0;
  for (;;) {
    auto payload = indexed_payload(n, 100);
    std::span<std::byte> room = p->try_reserve(payload.size());
    if (room.empty()) break;
    std::memcpy(room.data(), payload.data(), payload.size());
    p->commit(payload.size());
    ++n;
  }
  // An eighth of a small ring stays free for closing records.
  EXPECT_EQ(n, (4096u - 4096u / 8) / frame_size(100));
  EXPECT_EQ(p->wait_for_space(100, 5ms), WaitResult::kTimeout);
  EXPECT_EQ(p->wait_for_space(100, 5ms, true), WaitResult::kReady);
  EXPECT_FALSE(p->try_reserve(100, true).empty());
  auto r = open_reader(name);
  std::string err;
  for (uint32_t i = 0; i < n; ++i) {
    Frame f{};
    ASSERT_EQ(r->next(0, &f, &err), SHMREPL_OK);
    EXPECT_TRUE(matches_index(f, i, 100)) << i;
  }
  EXPECT_TRUE(p->try_reserve(100).empty());  // read, not released
  ASSERT_EQ(r->release(1), SHMREPL_OK);
  EXPECT_FALSE(p->try_reserve(100).empty());
}

TEST(RingFlow, ProducerWaitsForTheSlowestReader) {
  std::string name = unique_ring_name("slow");
  auto p = Producer::create(name, {.capacity = 4096, .execution_id = 0, .max_payload = 0});
  auto fast = open_reader(name);
  auto slow = open_reader(name);
  EXPECT_EQ(p->attached_readers(), 2u);
  uint32_t n = 0;
  while (test::try_write_output(*p, {0, n, 0}, SHMREPL_STREAM_STDOUT, test::as_bytes("0123456789"), 0)) ++n;
  std::string err;
  Frame f{};
  for (uint32_t i = 0; i < n; ++i) ASSERT_EQ(fast->next(0, &f, &err), SHMREPL_OK);
  ASSERT_EQ(fast->release(n), SHMREPL_OK);
  EXPECT_TRUE(p->try_reserve(94).empty()) << "overwrote what the slow reader holds";
  EXPECT_EQ(p->wait_for_space(94, 10ms), WaitResult::kTimeout);
  ASSERT_EQ(slow->next(0, &f, &err), SHMREPL_OK);
  ASSERT_EQ(slow->release(1), SHMREPL_OK);
  EXPECT_FALSE(p->try_reserve(94).empty());
  slow.reset();  // detaching the slow reader frees everything it held
  EXPECT_EQ(p->attached_readers(), 1u);
}

TEST(RingFlow, ReleaseRules) {
  std::string name = unique_ring_name("rel");
  auto p = Producer::create(name, {.capacity = 4096, .execution_id = 0, .max_payload = 0});
  auto r = open_reader(name);
  EXPECT_EQ(r->release(0), SHMREPL_OK);
  EXPECT_EQ(r->release(1), SHMREPL_E_INVALID);
  for (uint32_t i = 0; i < 3; ++i) p->write(indexed_payload(i, 10));
  std::string err;
  Frame f[3];
  for (auto& x : f) ASSERT_EQ(r->next(0, &x, &err), SHMREPL_OK);
  EXPECT_EQ(r->held(), 3u);
  EXPECT_EQ(r->release(4), SHMREPL_E_INVALID);
  EXPECT_EQ(r->held(), 3u);
  EXPECT_EQ(r->release(2), SHMREPL_OK);
  EXPECT_EQ(r->held(), 1u);
  RawMap m(name);
  bool found = false;
  for (std::size_t i = 0; i < kReaderSlots; ++i) {
    if (owner_pid(m.slots()[i].owner.load()) == static_cast<uint32_t>(::getpid())) {
      EXPECT_EQ(m.slots()[i].read_pos.load(), 2 * frame_size(10));
      EXPECT_EQ(m.slots()[i].active.load(), 1u);
      found = true;
    }
  }
  EXPECT_TRUE(found);
  EXPECT_TRUE(matches_index(f[2], 2, 10));  // the view still held is intact
}

TEST(RingFlow, ManyHeldFramesGrowTheBookkeeping) {
  std::string name = unique_ring_name("held");
  auto p = Producer::create(name, {.capacity = 1 << 16, .execution_id = 0, .max_payload = 0});
  auto r = open_reader(name);
  std::string err;
  for (uint32_t i = 0; i < 1000; ++i) p->write(indexed_payload(i, i % 17));
  std::vector<Frame> frames(1000);
  for (auto& f : frames) ASSERT_EQ(r->next(0, &f, &err), SHMREPL_OK);
  EXPECT_EQ(r->held(), 1000u);
  for (uint32_t i = 0; i < 1000; i += 100) {
    ASSERT_EQ(r->release(100), SHMREPL_OK);
    if (i + 100 < 1000) {
      EXPECT_TRUE(matches_index(frames[i + 100], i + 100, (i + 100) % 17));
    }
  }
  EXPECT_EQ(r->held(), 0u);
}

TEST(RingAttach, OldestGetsEverythingNewestOnlyWhatFollows) {
  std::string name = unique_ring_name("late");
  auto p = Producer::create(name, {.capacity = 4096, .execution_id = 0, .max_payload = 0});
  for (uint32_t i = 0; i < 5; ++i) p->write(indexed_payload(i, 20));
  auto oldest = open_reader(name, SHMREPL_START_OLDEST);
  auto newest = open_reader(name, SHMREPL_START_NEWEST);
  p->write(indexed_payload(5, 20));
  std::string err;
  Frame f{};
  for (uint32_t i = 0; i < 6; ++i) {
    ASSERT_EQ(oldest->next(0, &f, &err), SHMREPL_OK);
    EXPECT_TRUE(matches_index(f, i, 20));
  }
  ASSERT_EQ(newest->next(0, &f, &err), SHMREPL_OK);
  EXPECT_TRUE(matches_index(f, 5, 20));
  EXPECT_EQ(newest->next(0, &f, &err), SHMREPL_E_AGAIN);
}

TEST(RingAttach, OldestAfterReleaseStartsAtTheTail) {
  std::string name = unique_ring_name("tail");
  auto p = Producer::create(name, {.capacity = 4096, .execution_id = 0, .max_payload = 0});
  auto r = open_reader(name);
  std::string err;
  Frame f{};
  // Run a few laps so the producer moves the tail forward.
  uint32_t written = 0, read = 0;
  for (int lap = 0; lap < 40; ++lap) {
    while (test::try_write_output(*p, {0, written, 0}, SHMREPL_STREAM_STDOUT, test::as_bytes("abcdefgh"), 0)) ++written;
    while (r->next(0, &f, &err) == SHMREPL_OK) ++read;
    ASSERT_EQ(r->release(r->held()), SHMREPL_OK);
  }
  EXPECT_EQ(read, written);
  RawMap m(name);
  uint64_t tail = m.block().tail.load();
  EXPECT_GT(tail, 4096u);
  auto late = open_reader(name, SHMREPL_START_OLDEST);
  // Whatever it gets lies between the tail and the end, contiguous, ending at the newest.
  uint64_t count = 0;
  shmrepl_record_t first{}, last{};
  while (late->next(0, &f, &err) == SHMREPL_OK) {
    ASSERT_EQ(records::decode(f.payload, f.flags, count == 0 ? &first : &last), SHMREPL_OK);
    ++count;
  }
  ASSERT_GE(count, 2u);
  const uint64_t fs = frame_size(records::output_size(8));
  EXPECT_LE(count * fs, p->write_pos() - tail);
  EXPECT_LT(p->write_pos() - tail - count * fs, fs);  // at most one pad besides
  EXPECT_EQ(last.seq, written - 1);
  EXPECT_EQ(first.seq, written - count);
}

// Checks that a waiter is woken by the futex, not by its 100 ms liveness poll: the
// best of a few trials must be well below that.
template <typename Sleeper, typename Waker>
std::chrono::nanoseconds best_wake_latency(Sleeper sleeper, Waker waker) {
  auto best = std::chrono::nanoseconds::max();
  for (int trial = 0; trial < 5; ++trial) {
    std::atomic<int64_t> woke{0};
    std::thread t([&] { woke = static_cast<int64_t>(sleeper()); });
    std::this_thread::sleep_for(20ms);  // let it fall asleep
    int64_t t0 = static_cast<int64_t>(monotonic_ns());
    waker();
    t.join();
    best = std::min(best, std::chrono::nanoseconds(woke.load() - t0));
  }
  return best;
}

TEST(RingWait, SleepingReaderIsWokenByCommit) {
  std::string name = unique_ring_name("wakeR");
  auto p = Producer::create(name, {.capacity = 4096, .execution_id = 0, .max_payload = 0});
  auto r = open_reader(name);
  auto best = best_wake_latency(
      [&] {
        Frame f{};
        std::string err;
        EXPECT_EQ(r->next(-1, &f, &err), SHMREPL_OK);
        uint64_t t = monotonic_ns();
        EXPECT_EQ(r->release(1), SHMREPL_OK);
        return t;
      },
      [&] { p->write(test::as_bytes("wake")); });
  EXPECT_LT(best, 50ms);
}

TEST(RingWait, BlockedProducerIsWokenByRelease) {
  std::string name = unique_ring_name("wakeP");
  auto p = Producer::create(name, {.capacity = 4096, .execution_id = 0, .max_payload = 0});
  auto r = open_reader(name);
  std::string err;
  auto best = best_wake_latency(
      [&] {
        while (!p->try_reserve(500).empty()) p->commit(500);  // fill
        p->write(indexed_payload(0, 500));  // blocks until the release below
        return monotonic_ns();
      },
      [&] {
        Frame f{};
        while (r->next(0, &f, &err) == SHMREPL_OK) {
        }
        r->release(r->held());
      });
  EXPECT_LT(best, 50ms);
}

TEST(RingWait, TimeoutAgainAndFinish) {
  std::string name = unique_ring_name("tmo");
  auto p = Producer::create(name, {.capacity = 4096, .execution_id = 0, .max_payload = 0});
  auto r = open_reader(name);
  std::string err;
  Frame f{};
  EXPECT_EQ(r->next(0, &f, &err), SHMREPL_E_AGAIN);
  EXPECT_FALSE(r->ready());
  uint64_t t0 = monotonic_ns();
  EXPECT_EQ(r->next(30'000'000, &f, &err), SHMREPL_E_TIMEOUT);
  uint64_t dt = monotonic_ns() - t0;
  EXPECT_GE(dt, 30'000'000u);
  EXPECT_LT(dt, 1'000'000'000u);
  // A reader asleep with no timeout returns EOF when the ring finishes.
  std::thread t([&] {
    std::this_thread::sleep_for(20ms);
    p->write(test::as_bytes("last"));
    p->finish();
  });
  std::string err2;
  ASSERT_EQ(r->next(-1, &f, &err2), SHMREPL_OK);
  EXPECT_EQ(f.payload.size(), 4u);
  EXPECT_EQ(r->next(-1, &f, &err2), SHMREPL_E_EOF);
  EXPECT_EQ(r->next(0, &f, &err2), SHMREPL_E_EOF);
  t.join();
}

// Two threads, a 4 KiB ring, random lengths: every frame arrives intact and in order.
TEST(RingThreads, ProducerAndReaderThreadsAgreeOnEveryByte) {
  std::string name = unique_ring_name("spsc");
  auto p = Producer::create(name, {.capacity = 4096, .execution_id = 0, .max_payload = 0});
  auto r = open_reader(name);
  const uint32_t n = static_cast<uint32_t>(200'000 * test::test_scale());
  std::thread producer([&] {
    test::Rng rng(1);
    for (uint32_t i = 0; i < n; ++i) p->write(indexed_payload(i, rng.below(p->max_payload() + 1)), i & 3);
    p->finish();
  });
  test::Rng rng(1);
  std::string err;
  uint32_t i = 0;
  for (;; ++i) {
    Frame f{};
    // Hold frames while more are ready; release them all before waiting (the
    // producer may be waiting for exactly those).
    shmrepl_status_t st = r->next(0, &f, &err);
    if (st == SHMREPL_E_AGAIN) {
      ASSERT_EQ(r->release(r->held()), SHMREPL_OK);
      st = r->next(-1, &f, &err);
    }
    if (st == SHMREPL_E_EOF) break;
    ASSERT_EQ(st, SHMREPL_OK) << err;
    ASSERT_TRUE(matches_index(f, i, rng.below(p->max_payload() + 1))) << i;
    ASSERT_EQ(f.flags, i & 3);
    if (i % 7 == 0) {
      ASSERT_EQ(r->release(r->held()), SHMREPL_OK);
    }
  }
  producer.join();
  EXPECT_EQ(i, n);
}

// ---- untrusted images (a buggy or hostile peer) --------------------------

struct Image {
  std::byte* base;
  std::size_t size;
  explicit Image(std::size_t n) : base(static_cast<std::byte*>(std::aligned_alloc(kPageSize, n))), size(n) {}
  ~Image() { std::free(base); }
  RingHeader& header() { return *reinterpret_cast<RingHeader*>(base); }
  ProducerBlock& block() { return *reinterpret_cast<ProducerBlock*>(base + kProducerOffset); }
  ReaderSlot* slots() { return reinterpret_cast<ReaderSlot*>(base + kSlotsOffset); }
  void put_frame(uint64_t off, uint32_t length, uint32_t flags) {
    FrameHeader h{length, flags};
    std::memcpy(base + kDataOffset + off, &h, sizeof h);
  }
};

// A copy of a real ring holding three 10-byte frames (write_pos 3 * frame_size(10)).
std::unique_ptr<Image> good_image() {
  std::string name = unique_ring_name("img");
  auto p = Producer::create(name, {.capacity = 4096, .execution_id = 3, .max_payload = 0});
  for (uint32_t i = 0; i < 3; ++i) p->write(indexed_payload(i, 10));
  RawMap m(name);
  auto img = std::make_unique<Image>(m.size);
  std::memcpy(img->base, m.base, m.size);
  return img;
}

shmrepl_status_t attach(Image& img, std::size_t size = 0) {
  shmrepl_status_t st = SHMREPL_E_INTERNAL;
  std::string err;
  auto r = Reader::attach_image(img.base, size != 0 ? size : img.size, SHMREPL_START_OLDEST, &st, &err);
  EXPECT_EQ(r == nullptr, st != SHMREPL_OK);
  if (st != SHMREPL_OK) {
    EXPECT_FALSE(err.empty());
  }
  return st;
}

// Attaches, then reads until something other than OK.
shmrepl_status_t read_all(Image& img, int* frames = nullptr) {
  shmrepl_status_t st = SHMREPL_E_INTERNAL;
  std::string err;
  auto r = Reader::attach_image(img.base, img.size, SHMREPL_START_OLDEST, &st, &err);
  if (st != SHMREPL_OK) return st;
  Frame f{};
  int n = 0;
  while ((st = r->next(0, &f, &err)) == SHMREPL_OK) {
    EXPECT_GE(f.payload.data(), img.base + kDataOffset);
    EXPECT_LE(f.payload.data() + f.payload.size(), img.base + img.size);
    ++n;
  }
  if (frames != nullptr) *frames = n;
  return st;
}

TEST(RingImage, GoodImageReads) {
  auto img = good_image();
  int n = 0;
  EXPECT_EQ(read_all(*img, &n), SHMREPL_E_AGAIN);
  EXPECT_EQ(n, 3);
  img->header().state.store(static_cast<uint32_t>(RingState::kFinished));
  EXPECT_EQ(read_all(*img, &n), SHMREPL_E_EOF);
}

TEST(RingImage, BadHeaders) {
  { auto img = good_image(); img->header().magic ^= 1; EXPECT_EQ(attach(*img), SHMREPL_E_CORRUPT); }
  { auto img = good_image(); img->header().layout_version = kLayoutVersion + 1; EXPECT_EQ(attach(*img), SHMREPL_E_VERSION); }
  { auto img = good_image(); img->header().header_size = 4096; EXPECT_EQ(attach(*img), SHMREPL_E_CORRUPT); }
  { auto img = good_image(); img->header().capacity = 4096 + 8; EXPECT_EQ(attach(*img), SHMREPL_E_CORRUPT); }
  { auto img = good_image(); img->header().capacity = 8192; EXPECT_EQ(attach(*img), SHMREPL_E_CORRUPT); }  // > object
  { auto img = good_image(); img->header().capacity = 2048; EXPECT_EQ(attach(*img), SHMREPL_E_CORRUPT); }
  { auto img = good_image(); img->header().capacity = 0; EXPECT_EQ(attach(*img), SHMREPL_E_CORRUPT); }
  { auto img = good_image(); img->header().reader_slots = 0; EXPECT_EQ(attach(*img), SHMREPL_E_CORRUPT); }
  { auto img = good_image(); img->header().reader_slots = kReaderSlots + 1; EXPECT_EQ(attach(*img), SHMREPL_E_CORRUPT); }
  { auto img = good_image(); img->header().max_payload = 0; EXPECT_EQ(attach(*img), SHMREPL_E_CORRUPT); }
  { auto img = good_image(); img->header().max_payload = 4096; EXPECT_EQ(attach(*img), SHMREPL_E_CORRUPT); }
  { auto img = good_image(); EXPECT_EQ(attach(*img, kDataOffset + 4095), SHMREPL_E_CORRUPT); }
  { auto img = good_image(); EXPECT_EQ(attach(*img, kDataOffset - 1), SHMREPL_E_CORRUPT); }
  {
    shmrepl_status_t st = SHMREPL_OK;
    std::string err;
    EXPECT_EQ(Reader::attach_image(nullptr, 1 << 20, SHMREPL_START_OLDEST, &st, &err), nullptr);
    EXPECT_EQ(st, SHMREPL_E_CORRUPT);
  }
}

TEST(RingImage, PositionsOutOfRange) {
  { auto img = good_image(); img->block().tail = 80; EXPECT_EQ(attach(*img), SHMREPL_E_CORRUPT); }      // tail > write
  { auto img = good_image(); img->block().write_pos = 4096 + 8; EXPECT_EQ(attach(*img), SHMREPL_E_CORRUPT); }  // > tail + capacity
  { auto img = good_image(); img->block().write_pos = 71; EXPECT_EQ(attach(*img), SHMREPL_E_CORRUPT); }  // unaligned
  { auto img = good_image(); img->block().tail = 4; EXPECT_EQ(attach(*img), SHMREPL_E_CORRUPT); }
  {  // moved beyond capacity after the reader attached
    auto img = good_image();
    shmrepl_status_t st = SHMREPL_E_INTERNAL;
    std::string err;
    auto r = Reader::attach_image(img->base, img->size, SHMREPL_START_OLDEST, &st, &err);
    ASSERT_EQ(st, SHMREPL_OK);
    img->block().write_pos = 3 * 4096;
    Frame f{};
    EXPECT_EQ(r->next(0, &f, &err), SHMREPL_E_CORRUPT);
    EXPECT_EQ(r->next(0, &f, &err), SHMREPL_E_CORRUPT);  // it stays so
    EXPECT_EQ(r->held(), 0u);
  }
  {  // moved backwards
    auto img = good_image();
    shmrepl_status_t st = SHMREPL_E_INTERNAL;
    std::string err;
    auto r = Reader::attach_image(img->base, img->size, SHMREPL_START_OLDEST, &st, &err);
    ASSERT_EQ(st, SHMREPL_OK);
    Frame f{};
    for (int i = 0; i < 3; ++i) ASSERT_EQ(r->next(0, &f, &err), SHMREPL_OK);
    img->block().write_pos = 8;
    EXPECT_EQ(r->next(0, &f, &err), SHMREPL_E_CORRUPT);
  }
}

TEST(RingImage, BadFrames) {
  constexpr uint64_t f1 = frame_size(10), f2 = 2 * frame_size(10);  // frames 1 and 2 of good_image()
  { auto img = good_image(); img->put_frame(f1, 10, 0x10); EXPECT_EQ(read_all(*img), SHMREPL_E_CORRUPT); }       // unknown flag
  { auto img = good_image(); img->put_frame(f1, 4096, 0); EXPECT_EQ(read_all(*img), SHMREPL_E_CORRUPT); }        // > max_payload
  { auto img = good_image(); img->put_frame(f2, frame_size(10) - kFrameHeaderSize + 1, 0); EXPECT_EQ(read_all(*img), SHMREPL_E_CORRUPT); }  // past write_pos
  { auto img = good_image(); img->put_frame(0, 0xFFFFFFFFu, 0); EXPECT_EQ(read_all(*img), SHMREPL_E_CORRUPT); }
  { auto img = good_image(); img->put_frame(f1, 100, kFlagPad); EXPECT_EQ(read_all(*img), SHMREPL_E_CORRUPT); }  // pad not to the end
  {  // a pad that does reach the end, but write_pos does not go past it
    auto img = good_image();
    img->put_frame(0, 4096 - 8, kFlagPad);
    EXPECT_EQ(read_all(*img), SHMREPL_E_CORRUPT);
  }
  constexpr uint64_t near_end = 4096 - 2 * kFrameAlign;
  {  // a frame that would run past the end of the data area
    auto img = good_image();
    img->block().tail = near_end;
    img->block().write_pos = 4096 + kFrameAlign;
    img->put_frame(near_end, 200, 0);
    EXPECT_EQ(read_all(*img), SHMREPL_E_CORRUPT);
  }
  {  // a well-formed pad is skipped
    auto img = good_image();
    img->block().tail = near_end;
    img->block().write_pos = 4096 + kFrameAlign;
    img->put_frame(near_end, 4096 - near_end - 8, kFlagPad);
    img->put_frame(0, 3, 0);
    int n = 0;
    EXPECT_EQ(read_all(*img, &n), SHMREPL_E_AGAIN);
    EXPECT_EQ(n, 1);
  }
}

TEST(RingImage, AllSlotsTaken) {
  auto img = good_image();
  for (std::size_t i = 0; i < kReaderSlots; ++i) img->slots()[i].owner = make_owner(1, 5);  // init: alive
  EXPECT_EQ(attach(*img), SHMREPL_E_NO_SLOT);
  img->slots()[kReaderSlots - 1].owner = make_owner(0, 5);
  EXPECT_EQ(attach(*img), SHMREPL_OK);
  // Given back on close, one generation on.
  EXPECT_EQ(img->slots()[kReaderSlots - 1].owner.load(), make_owner(0, 6));
}

// A pid that is not running (a reaped child of ours).
pid_t dead_pid() {
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  int status = 0;
  ::waitpid(child, &status, 0);
  return child;
}

// Slots of dead owners are reclaimed by attach, by a CAS from the word checked:
// the generation moves on, the dead owner's position and start time go.
TEST(RingImage, DeadOwnersSlotsReclaimedAtAttach) {
  auto img = good_image();
  const pid_t dead = dead_pid();
  for (std::size_t i = 0; i < kReaderSlots; ++i) {
    ReaderSlot& s = img->slots()[i];
    s.owner = make_owner(static_cast<uint32_t>(dead), 7);
    s.owner_start_time = 12345;
    s.active = 1;
    s.read_pos = 0;
  }
  img->block().tail = 0;
  shmrepl_status_t st = SHMREPL_E_INTERNAL;
  std::string err;
  auto r = Reader::attach_image(img->base, img->size, SHMREPL_START_NEWEST, &st, &err);
  ASSERT_EQ(st, SHMREPL_OK) << err;
  const uint32_t me = static_cast<uint32_t>(::getpid());
  int mine = 0;
  for (std::size_t i = 0; i < kReaderSlots; ++i) {
    ReaderSlot& s = img->slots()[i];
    if (owner_pid(s.owner.load()) != me) continue;
    ++mine;
    EXPECT_EQ(owner_generation(s.owner.load()), 8u);
    EXPECT_EQ(s.owner_start_time.load(), process_start_time(::getpid()));
    EXPECT_EQ(s.read_pos.load(), img->block().write_pos.load());  // START_NEWEST, not the dead one's 0
    EXPECT_EQ(s.active.load(), 1u);
  }
  EXPECT_EQ(mine, 1);
  r.reset();
  int freed = 0;
  for (std::size_t i = 0; i < kReaderSlots; ++i) freed += img->slots()[i].owner.load() == make_owner(0, 8) ? 1 : 0;
  EXPECT_EQ(freed, 1);
}

// claim_reader_slot: never from a live owner, never from a word that changed after it was
// checked; a free slot only when asked to.
TEST(RingImage, ClaimSlotIsOneCasOverPidAndGeneration) {
  ReaderSlot s{};
  const uint32_t me = static_cast<uint32_t>(::getpid());
  EXPECT_FALSE(claim_reader_slot(s, me, false));  // free, not asked to take free slots
  EXPECT_TRUE(claim_reader_slot(s, me, true));
  EXPECT_EQ(s.owner.load(), make_owner(me, 1));
  s.owner_start_time = process_start_time(::getpid());
  EXPECT_FALSE(claim_reader_slot(s, 1, true));  // we are alive
  // Our own pid with another start time: a recycled pid, so the owner is dead.
  s.owner_start_time = process_start_time(::getpid()) + 1;
  EXPECT_TRUE(claim_reader_slot(s, 1, false));
  EXPECT_EQ(s.owner.load(), make_owner(1, 2));
  EXPECT_EQ(s.owner_start_time.load(), 0u);  // the dead owner's, cleared
  // A zombie is dead.
  pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT), 0);
  s.owner = make_owner(static_cast<uint32_t>(child), 9);
  s.owner_start_time = 0;
  EXPECT_TRUE(claim_reader_slot(s, me, false));
  EXPECT_EQ(s.owner.load(), make_owner(me, 10));
  int status = 0;
  ::waitpid(child, &status, 0);
  // A live owner keeps its slot and its start time.
  s.owner = make_owner(me, 11);
  s.owner_start_time = process_start_time(::getpid());
  EXPECT_FALSE(claim_reader_slot(s, 1, false));
  EXPECT_EQ(s.owner.load(), make_owner(me, 11));
  EXPECT_EQ(s.owner_start_time.load(), process_start_time(::getpid()));
}

// Racing claimers of one dead owner's slot (all of them alive): exactly one wins.
TEST(RingImage, ConcurrentReclaimHasOneWinner) {
  const pid_t dead = dead_pid();
  for (int round = 0; round < 50; ++round) {
    ReaderSlot s{};
    s.owner = make_owner(static_cast<uint32_t>(dead), 3);
    s.owner_start_time = 77;
    std::atomic<int> wins{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t)
      ts.emplace_back([&, t] { wins += claim_reader_slot(s, static_cast<uint32_t>(::getpid()), t % 2 == 0) ? 1 : 0; });
    for (auto& t : ts) t.join();
    EXPECT_EQ(wins.load(), 1);
    EXPECT_EQ(owner_generation(s.owner.load()), 4u);
  }
}

}  // namespace
}  // namespace shmrepl::shm
