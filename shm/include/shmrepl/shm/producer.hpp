// The writing side of a ring: one producer per ring, used by one thread at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "shmrepl/shm/layout.hpp"

namespace shmrepl::shm {

struct ProducerOptions {
  uint64_t capacity = 1 << 20;  // data bytes; rounded up to a power of two
  uint64_t execution_id = 0;
  // Largest record payload; 0 = capacity / 4. Larger writes are split by the caller.
  uint32_t max_payload = 0;
  // The guardian recorded in the header (see RingHeader); 0 = none.
  uint32_t guardian_pid = 0;
  // The guardian's start time if the caller knows it (it outlives the producer, so
  // one /proc read serves every ring); 0 = read it.
  uint64_t guardian_start_time = 0;
  // A sealed memfd (F_SEAL_SHRINK | F_SEAL_GROW) labelled `name` instead of a name
  // in /dev/shm: nobody can resize it, and it is reached only through its
  // descriptor (fd()), handed over a Unix socket.
  bool sealed = false;
};

enum class WaitResult { kReady, kTimeout };

class Producer {
 public:
  // Creates the shared-memory object `name` (no leading slash, e.g.
  // "shmrepl.1000.42.7"), mode 0600. Throws std::system_error / std::invalid_argument.
  // Memory is reserved before it is written (posix_fallocate): the header and a first
  // part of the data area at creation (ENOSPC as std::system_error), the rest ahead of
  // the write position as the first lap proceeds, so a full /dev/shm is an error
  // (allocation_failed()), never a SIGBUS. The closing reserve is always reserved
  // ahead, so closing records fit whatever happens. The mapping is not inherited by
  // fork()ed children.
  static std::unique_ptr<Producer> create(std::string name, const ProducerOptions& options);
  // Becomes the producer of an existing ring whose producer died (the guardian's
  // job): writes continue at the published write position. The name is kept on
  // destruction. Throws std::system_error / std::runtime_error (not a valid ring).
  static std::unique_ptr<Producer> take_over(const std::string& name);
  // The same for a ring given by descriptor (not owned; `name` for messages).
  static std::unique_ptr<Producer> take_over(int fd, const std::string& name);
  // The guardian's last resort when it cannot append a closing record: marks the
  // ring finished, so readers end (E_CORRUPT: no FINISHED record) instead of
  // waiting on a guardian that has nothing more to write.
  static bool force_finish(const std::string& name) noexcept;
  static bool force_finish(int fd) noexcept;
  ~Producer();  // unmaps; unlinks a named object unless release_name() was called
  Producer(const Producer&) = delete;
  Producer& operator=(const Producer&) = delete;

  const std::string& name() const noexcept { return name_; }
  // The ring's descriptor (a creator's; -1 after take_over), valid while this lives.
  int fd() const noexcept { return fd_; }
  uint64_t capacity() const noexcept { return capacity_; }
  uint32_t max_payload() const noexcept { return max_payload_; }
  uint64_t execution_id() const noexcept;

  // Space for a payload of `payload` bytes (<= max_payload), or a span with a null
  // data() if the slowest reader has not released enough yet (payload 0 succeeds
  // with an empty, non-null span). Never blocks, no system call.
  // `closing`: a closing record (FINISHED) may also use the ring's closing reserve,
  // so it always fits once readers release what they hold... or nobody reads.
  std::span<std::byte> try_reserve(std::size_t payload, bool closing = false) noexcept;
  // Waits up to `timeout` until try_reserve(payload) can succeed; detaches readers
  // whose process died while waiting. Safe to call with no lock held by the caller
  // other than the producer's own exclusivity.
  WaitResult wait_for_space(std::size_t payload, std::chrono::nanoseconds timeout,
                            bool closing = false) noexcept;
  // Publishes the frame reserved last, with `length` <= reserved bytes of payload.
  // The record is readable once this returns.
  void commit(std::size_t length, uint32_t flags = 0) noexcept;
  // try_reserve + wait_for_space until ready, then copy and commit.
  void write(std::span<const std::byte> payload, uint32_t flags = 0, bool closing = false);

  // Marks the ring finished (after the last commit) and wakes readers.
  void finish() noexcept;
  // Makes a finished ring empty and open again for execution `execution_id` (a new
  // generation), if no reader holds a slot: every slot is claimed by the producer
  // while the positions go back to 0, so no reader attaches meanwhile. False (ring
  // unchanged) if a live reader is attached or the ring is not finished.
  bool try_reset(uint64_t execution_id) noexcept;
  // The object stays in /dev/shm after destruction; someone else unlinks it.
  void release_name() noexcept { unlink_on_close_ = false; }
  // Removes the name now (mapped readers keep working).
  void unlink() noexcept;

  uint64_t write_pos() const noexcept { return pos_; }
  // The payload of the newest frame (empty if none): a guardian reads its seq.
  std::span<const std::byte> last_payload() const noexcept;
  bool finished() const noexcept;
  // The last try_reserve failed because /dev/shm had no room to grow the ring's
  // reserved memory (not because readers are behind): the writer should give up.
  bool allocation_failed() const noexcept { return allocation_failed_; }
  uint32_t producer_pid() const noexcept;
  uint64_t producer_start_time() const noexcept;
  // Number of reader slots in use (for tests and diagnostics).
  std::size_t attached_readers() const noexcept;

 private:
  Producer() = default;
  uint64_t refresh_limit() noexcept;  // recomputes the slowest reader's position
  void detach_dead_readers() noexcept;

  struct Mapping;
  std::unique_ptr<Mapping> map_;
  std::string name_;
  RingHeader* header_ = nullptr;
  ProducerBlock* block_ = nullptr;
  ReaderSlot* slots_ = nullptr;
  std::byte* data_ = nullptr;
  uint64_t capacity_ = 0;
  uint64_t mask_ = 0;
  uint32_t max_payload_ = 0;
  uint64_t closing_reserve_ = 0;
  uint64_t allocated_ = 0;  // data bytes reserved in the object (first lap), up to capacity_
  int fd_ = -1;
  uint32_t self_pid_ = 0;  // claims dead readers' slots while freeing them
  bool allocation_failed_ = false;
  bool plain_publish_ = false;  // write_pos without a fence: readers fence us (sleep_fence)
  bool ensure_allocated(uint64_t end) noexcept;
  uint64_t pos_ = 0;        // local copy of write_pos
  uint64_t limit_ = 0;      // cached: nothing at or beyond limit_ + capacity_ may be written
  uint64_t reserved_at_ = 0;  // frame start of the current reservation
  uint64_t last_liveness_check_ = 0;  // monotonic ns of the last detach_dead_readers()
  // Per slot: the owner word last seen active without a start time (a reader
  // publishes its start right after its claim; seen so at two checks: forged).
  uint64_t startless_[kReaderSlots] = {};
  bool unlink_on_close_ = true;
  bool named_ = true;  // a name in /dev/shm (not a sealed memfd)
};

// Ring names: "shmrepl.<uid>.<pid>.<id>" style, [A-Za-z0-9._-], 1..200 chars,
// no leading dot. Used for both sides.
bool valid_ring_name(std::string_view name) noexcept;

// Makes `pid` the owner of `slot` (a new generation) if the slot is free (only with
// `take_free`) or its owner is dead or a zombie: one compare-exchange from the exact
// owner word that was checked, so an owner that took the slot meanwhile keeps it.
// The new owner's start time is 0 until the caller publishes it. Used by readers
// attaching and by the producer detaching dead readers.
bool claim_reader_slot(ReaderSlot& slot, uint32_t pid, bool take_free) noexcept;

}  // namespace shmrepl::shm
