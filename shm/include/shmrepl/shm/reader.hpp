// The reading side of a ring. Any number of readers (up to kReaderSlots) attach
// to one ring, each sees every frame; the producer waits for the slowest.
// The mapping is untrusted input: every position and frame header is checked, and
// a bad one gives SHMREPL_E_CORRUPT, never an access outside the mapping.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "shmrepl/shm/layout.hpp"
#include "shmrepl/shmrepl.h"

namespace shmrepl::shm {

struct Frame {
  std::span<const std::byte> payload;  // points into the mapping
  uint32_t flags;                      // kFlagMore / kFlagContinued
};

// A ring mapped into this process: the header pages read-write (a reader's slot,
// the futex words), the data area read-only. Kept by the readers opened on it.
class RingMap {
 public:
  // Maps the ring behind `fd` (not kept), refusing (E_PERMISSION) a file not sealed
  // F_SEAL_SHRINK | F_SEAL_GROW when `require_seals`. nullptr with *status set.
  static std::shared_ptr<RingMap> map(int fd, const std::string& name, bool require_seals,
                                      shmrepl_status_t* status, std::string* error);
  ~RingMap();
  RingMap(const RingMap&) = delete;
  RingMap& operator=(const RingMap&) = delete;
  std::byte* base() const noexcept { return base_; }
  std::size_t size() const noexcept { return size_; }

 private:
  RingMap() = default;
  std::byte* base_ = nullptr;
  std::size_t size_ = 0;
};

class Reader {
 public:
  // Attaches to ring `name`. On error returns nullptr and sets *status and *error.
  static std::unique_ptr<Reader> open(const std::string& name, shmrepl_reader_start_t start,
                                      shmrepl_status_t* status, std::string* error);
  // Attaches to the ring behind descriptor `fd` (not kept: the mapping is enough),
  // named `name` in messages. Refuses (E_PERMISSION) a descriptor whose file is not
  // sealed F_SEAL_SHRINK | F_SEAL_GROW: another process could resize it under us.
  static std::unique_ptr<Reader> open_fd(int fd, const std::string& name, shmrepl_reader_start_t start,
                                         shmrepl_status_t* status, std::string* error);
  // Attaches to a ring mapped already (RingMap::map), kept as long as the reader.
  static std::unique_ptr<Reader> open_mapped(std::shared_ptr<RingMap> map, shmrepl_reader_start_t start,
                                             shmrepl_status_t* status, std::string* error);
  // Opens an already mapped image (fuzzing, tests): `base` of `size` bytes.
  static std::unique_ptr<Reader> attach_image(std::byte* base, std::size_t size,
                                              shmrepl_reader_start_t start,
                                              shmrepl_status_t* status, std::string* error);
  ~Reader();  // detaches
  Reader(const Reader&) = delete;
  Reader& operator=(const Reader&) = delete;

  // The next frame after the ones already handed out. timeout_ns as shmrepl_reader_next.
  shmrepl_status_t next(int64_t timeout_ns, Frame* out, std::string* error);
  // Hands back the oldest n frames handed out.
  shmrepl_status_t release(std::size_t n) noexcept;
  std::size_t held() const noexcept { return held_count_; }
  // Takes back the frame that next() handed out last (its record failed
  // verification): it is no longer held and next() returns it again.
  void unread_last() noexcept;
  // The newest frame of a finished ring (where the producer's last commit ended),
  // whatever this reader was handed: for a reader that attached after the end.
  // False if the ring is not finished or the frame is not where it should be.
  bool newest_frame(Frame* out) noexcept;
  // Frames ready now without waiting (cheap check of write_pos).
  bool ready() noexcept;

  uint64_t execution_id() const noexcept { return execution_id_; }
  // The whole mapping of the ring (header, slots, data): every frame lies inside it.
  const std::byte* mapping_base() const noexcept { return base_; }
  std::size_t mapping_size() const noexcept { return size_; }
  uint64_t capacity() const noexcept { return capacity_; }
  uint32_t max_payload() const noexcept { return max_payload_; }

 private:
  Reader() = default;
  shmrepl_status_t init(shmrepl_reader_start_t start, std::string* error);
  // One attempt: E_AGAIN if the ring was reset for another execution meanwhile.
  shmrepl_status_t attach(shmrepl_reader_start_t start, std::string* error);
  void detach() noexcept;
  shmrepl_status_t wait(int64_t timeout_ns, std::string* error);
  bool producer_alive() const noexcept;
  void wake_producer() noexcept;
  void push_end(uint64_t end);

  std::shared_ptr<RingMap> map_;
  std::byte* base_ = nullptr;
  std::size_t size_ = 0;
  const RingHeader* header_ = nullptr;
  ProducerBlock* block_ = nullptr;
  ReaderSlot* slot_ = nullptr;
  uint64_t owner_ = 0;  // our owner word in slot_
  const std::byte* data_ = nullptr;
  uint64_t capacity_ = 0;
  uint64_t mask_ = 0;
  uint32_t max_payload_ = 0;
  uint64_t execution_id_ = 0;
  uint32_t producer_pid_ = 0;
  uint64_t producer_start_time_ = 0;
  uint32_t guardian_pid_ = 0;
  uint64_t guardian_start_time_ = 0;
  bool sleep_fence_ = false;  // the header's sleep_fence: fence the producer before sleeping

  uint64_t read_pos_ = 0;  // our copy of slot_->read_pos
  uint64_t cursor_ = 0;    // the next frame to hand out
  uint64_t last_start_ = 0;  // where the frame handed out last starts
  uint64_t seen_write_ = 0;  // cached write_pos
  // End positions of the frames handed out and not released: a circular buffer.
  std::vector<uint64_t> ends_;
  std::size_t held_head_ = 0;
  std::size_t held_count_ = 0;
};

}  // namespace shmrepl::shm
