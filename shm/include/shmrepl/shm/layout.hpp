// The ring's layout in shared memory. Every field here is read by other processes,
// possibly of another build of shmrepl: change it only together with kLayoutVersion.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace shmrepl::shm {

inline constexpr uint64_t kMagic = 0x004C5045524D4853ull;  // "SHMREPL\0" little-endian
// 2: guardian (the supervisor that closes a dead producer's ring), last_frame, and
// room kept for closing records. 3: a reader slot's owner is one 64-bit word
// (pid + generation), so a dead owner's slot is reclaimed by one compare-exchange.
// 4: `sleep_fence`: the producer may publish write_pos with a plain release store,
// and a reader then fences the producer (membarrier) before it sleeps; frames start
// on cache lines (kFrameAlign 64, was 8); `generation`, bumped when a finished ring is
// reset for the session's next execution.
inline constexpr uint32_t kLayoutVersion = 4;
inline constexpr std::size_t kPageSize = 4096;
inline constexpr std::size_t kReaderSlots = 16;
inline constexpr std::size_t kFrameHeaderSize = 8;
// Frames start on cache lines: the producer writing one never takes the line a
// reader is reading the previous one from.
inline constexpr std::size_t kFrameAlign = 64;
inline constexpr uint64_t kMinCapacity = 4096;
inline constexpr uint64_t kMaxCapacity = 1ull << 32;

// Frame flags (FrameHeader::flags). Bits 0-1 are SHMREPL_FLAG_MORE / _CONTINUED.
inline constexpr uint32_t kFlagMore = 0x1;
inline constexpr uint32_t kFlagContinued = 0x2;
inline constexpr uint32_t kFlagPad = 0x80000000u;  // filler up to the end of the data area
inline constexpr uint32_t kKnownFlags = kFlagMore | kFlagContinued | kFlagPad;

enum class RingState : uint32_t { kOpen = 0, kFinished = 1 };

struct FrameHeader {
  uint32_t length;  // payload bytes after this header (a pad: bytes it fills)
  uint32_t flags;
};

// Page 0: written once by the producer before the object gets its final size,
// read-only afterwards except `state`.
struct RingHeader {
  uint64_t magic;
  uint32_t layout_version;
  uint32_t header_size;         // offset of the data area
  uint64_t capacity;            // data bytes, a power of two
  uint64_t execution_id;
  uint64_t created_ns;          // CLOCK_REALTIME
  uint64_t producer_start_time; // the producer's start time (/proc/<pid>/stat field 22)
  uint32_t producer_pid;
  uint32_t reader_slots;
  uint32_t max_payload;         // the largest record payload the producer writes
  // Bumped each time the producer resets the ring for another execution (with every
  // reader slot held by itself): an attaching reader that sees it change retries.
  std::atomic<uint32_t> generation;
  std::atomic<uint32_t> state;  // RingState; release-stored after the last frame
  uint32_t closing_reserve;     // data bytes only closing records may use
  // The process that finishes the ring if the producer dies (0: none). While it
  // lives, a dead producer is not the end of the stream: the guardian writes the
  // closing records, then marks the ring finished.
  uint64_t guardian_start_time;
  uint32_t guardian_pid;
  // 1: write_pos is published without a full fence, so a reader going to sleep must
  // call fence_publishers() between raising readers_sleeping and its last look at
  // write_pos (see Producer::commit). 0: the producer fences each publish itself.
  uint32_t sleep_fence;
};

// Page 1: the producer's position and the futex words. Each group of atomics that
// one side writes sits on its own cache line.
struct ProducerBlock {
  alignas(64) std::atomic<uint64_t> write_pos;  // free-running; stored per frame (commit)
  std::atomic<uint64_t> last_frame;            // start of the newest frame (for a guardian)
  alignas(64) std::atomic<uint32_t> data_seq;   // futex: bumped when data comes and readers sleep
  std::atomic<uint32_t> readers_sleeping;      // 1: some reader may sleep on data_seq
  alignas(64) std::atomic<uint64_t> tail;       // oldest byte the producer still keeps
  alignas(64) std::atomic<uint32_t> space_seq;  // futex: bumped on release when the producer sleeps
  std::atomic<uint32_t> producer_sleeping;     // 1: the producer may sleep on space_seq
};

// Page 2: one cache line per reader.
// `owner`: the pid in the low 32 bits (0 = free), a generation in the high 32 bits,
// bumped on every claim. Claims and reclaims are compare-exchanges from the exact
// word that was checked, so a slot that changed hands meanwhile is never taken.
// `owner_start_time` is 0 or the current owner's: it is cleared before a slot
// changes hands, so a new owner is never judged by the previous one's.
struct alignas(64) ReaderSlot {
  std::atomic<uint64_t> read_pos;     // everything before it is released
  std::atomic<uint64_t> owner;        // pid | generation << 32
  std::atomic<uint64_t> owner_start_time;
  std::atomic<uint32_t> active;       // 1 once read_pos is valid
  uint32_t reserved;
};

constexpr uint64_t make_owner(uint32_t pid, uint32_t generation) {
  return static_cast<uint64_t>(generation) << 32 | pid;
}
constexpr uint32_t owner_pid(uint64_t owner) { return static_cast<uint32_t>(owner); }
constexpr uint32_t owner_generation(uint64_t owner) { return static_cast<uint32_t>(owner >> 32); }

inline constexpr std::size_t kProducerOffset = kPageSize;
inline constexpr std::size_t kSlotsOffset = 2 * kPageSize;
inline constexpr std::size_t kDataOffset = 3 * kPageSize;

static_assert(std::atomic<uint64_t>::is_always_lock_free);
static_assert(std::atomic<uint32_t>::is_always_lock_free);
static_assert(sizeof(std::atomic<uint64_t>) == 8 && sizeof(std::atomic<uint32_t>) == 4);
static_assert(sizeof(FrameHeader) == kFrameHeaderSize);
static_assert(sizeof(RingHeader) == 88);
static_assert(offsetof(RingHeader, guardian_start_time) == 72 && offsetof(RingHeader, guardian_pid) == 80);
static_assert(offsetof(RingHeader, state) == 64);
static_assert(sizeof(ProducerBlock) == 256);
static_assert(offsetof(ProducerBlock, tail) == 128);
static_assert(sizeof(ReaderSlot) == 64);
static_assert(offsetof(ReaderSlot, owner) == 8 && offsetof(ReaderSlot, active) == 24);
static_assert(kReaderSlots * sizeof(ReaderSlot) <= kPageSize);

constexpr uint64_t align_frame(uint64_t n) { return (n + kFrameAlign - 1) & ~(kFrameAlign - 1); }
constexpr uint64_t frame_size(uint64_t payload) { return align_frame(kFrameHeaderSize + payload); }

}  // namespace shmrepl::shm
