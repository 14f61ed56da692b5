#include "shmrepl/shm/reader.hpp"

#include <fcntl.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <climits>
#include <cstring>

#include "shmrepl/shm/producer.hpp"  // valid_ring_name
#include "shmrepl/shm/sys.hpp"

namespace shmrepl::shm {

RingMap::~RingMap() {
  if (base_ != nullptr) ::munmap(base_, size_);
}

namespace {
constexpr int64_t kLivenessCheckNs = 100'000'000;  // how often a waiting reader checks the producer
// A reader that catches up spins this long before it sleeps: a record that comes
// meanwhile costs it no wake-up (tens of µs on a loaded or virtual machine) and the
// producer no futex call. Long enough for a warm session's next execution to start
// and end (`pass` round trips, back to back); short against a reader's idle time.
constexpr int64_t kSpinNs = 100'000;
// A sleep whose fence the kernel refused (see Reader::wait) is this short.
constexpr int64_t kUnfencedSleepNs = 1'000'000;

shmrepl_status_t fail(std::string* error, shmrepl_status_t status, std::string text) {
  if (error != nullptr) *error = std::move(text);
  return status;
}
}  // namespace

std::unique_ptr<Reader> Reader::open(const std::string& name, shmrepl_reader_start_t start,
                                     shmrepl_status_t* status, std::string* error) {
  if (!valid_ring_name(name)) {
    *status = fail(error, SHMREPL_E_INVALID, "invalid ring name '" + name + "'");
    return nullptr;
  }
  const int fd = ::shm_open(("/" + name).c_str(), O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0);
  if (fd < 0) {
    const int err = errno;
    *status = fail(error,
                   err == ENOENT                     ? SHMREPL_E_NOT_FOUND
                   : (err == EACCES || err == EPERM) ? SHMREPL_E_PERMISSION
                                                     : SHMREPL_E_SYSTEM,
                   "opening ring '" + name + "': " + std::strerror(err));
    return nullptr;
  }
  // Only a ring of our own user, open to nobody else, is trusted (a name another
  // user created first is refused).
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_uid != ::geteuid() || (st.st_mode & 077) != 0) {
    ::close(fd);
    *status = fail(error, SHMREPL_E_PERMISSION,
                   "ring '" + name + "' is not owned by us or is open to other users");
    return nullptr;
  }
  std::shared_ptr<RingMap> map = RingMap::map(fd, name, false, status, error);
  ::close(fd);
  return map != nullptr ? open_mapped(std::move(map), start, status, error) : nullptr;
}

std::unique_ptr<Reader> Reader::open_fd(int fd, const std::string& name, shmrepl_reader_start_t start,
                                        shmrepl_status_t* status, std::string* error) {
  std::shared_ptr<RingMap> map = RingMap::map(fd, name, true, status, error);
  return map != nullptr ? open_mapped(std::move(map), start, status, error) : nullptr;
}

std::shared_ptr<RingMap> RingMap::map(int fd, const std::string& name, bool require_seals,
                                      shmrepl_status_t* status, std::string* error) {
  if (require_seals) {
    // Only a ring nobody can shrink or grow is mapped: no SIGBUS, whoever holds it.
    const int seals = ::fcntl(fd, F_GET_SEALS);
    if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW)) {
      *status = fail(error, SHMREPL_E_PERMISSION,
                     "ring '" + name + "' is not sealed against resizing (F_SEAL_SHRINK | F_SEAL_GROW)");
      return nullptr;
    }
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid()) {
    *status = fail(error, SHMREPL_E_PERMISSION, "ring '" + name + "' is not a file of our user");
    return nullptr;
  }
  if (st.st_size < static_cast<off_t>(kDataOffset)) {
    *status = fail(error, SHMREPL_E_CORRUPT, "ring '" + name + "' is truncated");
    return nullptr;
  }
  const std::size_t size = static_cast<std::size_t>(st.st_size);
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) {
    *status = fail(error, SHMREPL_E_SYSTEM, "mapping ring '" + name + "': " + std::strerror(errno));
    return nullptr;
  }
  std::shared_ptr<RingMap> m(new RingMap());
  m->base_ = static_cast<std::byte*>(base);
  m->size_ = size;
  // A reader writes only its slot and the futex words (pages 0-2): the data area
  // is read-only here, so no bug of ours can write the producer's frames.
  if (size > kDataOffset) ::mprotect(m->base_ + kDataOffset, size - kDataOffset, PROT_READ);
  *status = SHMREPL_OK;
  return m;
}

std::unique_ptr<Reader> Reader::open_mapped(std::shared_ptr<RingMap> map, shmrepl_reader_start_t start,
                                            shmrepl_status_t* status, std::string* error) {
  std::unique_ptr<Reader> r(new Reader());
  r->base_ = map->base();
  r->size_ = map->size();
  r->map_ = std::move(map);
  *status = r->init(start, error);
  if (*status != SHMREPL_OK) return nullptr;
  return r;
}

std::unique_ptr<Reader> Reader::attach_image(std::byte* base, std::size_t size,
                                             shmrepl_reader_start_t start,
                                             shmrepl_status_t* status, std::string* error) {
  std::unique_ptr<Reader> r(new Reader());
  r->base_ = base;
  r->size_ = size;
  if (base == nullptr || size < kDataOffset) {
    *status = fail(error, SHMREPL_E_CORRUPT, "ring image is truncated");
    return nullptr;
  }
  *status = r->init(start, error);
  if (*status != SHMREPL_OK) return nullptr;
  return r;
}

shmrepl_status_t Reader::init(shmrepl_reader_start_t start, std::string* error) {
  // A ring reset for another execution while we attached (its producer held every
  // slot meanwhile): attach again, to the new one.
  for (int attempt = 0;; ++attempt) {
    const uint32_t generation = reinterpret_cast<const RingHeader*>(base_)->generation.load(std::memory_order_seq_cst);
    shmrepl_status_t st = attach(start, error);
    // What looked inconsistent may be a reset under way (the generation is bumped
    // before the positions go back).
    if (st != SHMREPL_OK && st != SHMREPL_E_AGAIN &&
        reinterpret_cast<const RingHeader*>(base_)->generation.load(std::memory_order_seq_cst) != generation)
      st = SHMREPL_E_AGAIN;
    // Every slot taken may be a reset's producer holding them all for a moment.
    if (st == SHMREPL_E_NO_SLOT && attempt < 100) st = SHMREPL_E_AGAIN;
    if (st != SHMREPL_E_AGAIN) return st;
    if (attempt == 1000) return fail(error, SHMREPL_E_NO_SLOT, "the ring was reset under every attempt to attach");
    ::sched_yield();
  }
}

shmrepl_status_t Reader::attach(shmrepl_reader_start_t start, std::string* error) {
  header_ = reinterpret_cast<const RingHeader*>(base_);
  const uint32_t generation = header_->generation.load(std::memory_order_seq_cst);
  uint64_t magic = std::atomic_ref<uint64_t>(const_cast<uint64_t&>(header_->magic))
                       .load(std::memory_order_acquire);  // pairs with Producer::create
  if (magic != kMagic) return fail(error, SHMREPL_E_CORRUPT, "not a shmrepl ring (bad magic)");
  if (header_->layout_version != kLayoutVersion)
    return fail(error, SHMREPL_E_VERSION,
                "ring layout version " + std::to_string(header_->layout_version) +
                    ", this library reads version " + std::to_string(kLayoutVersion));
  uint64_t cap = header_->capacity;
  if (header_->header_size != kDataOffset || cap < kMinCapacity || cap > kMaxCapacity ||
      !std::has_single_bit(cap) || size_ < kDataOffset || size_ - kDataOffset < cap ||
      header_->reader_slots == 0 || header_->reader_slots > kReaderSlots ||
      header_->max_payload == 0 || header_->max_payload > cap - kFrameHeaderSize)
    return fail(error, SHMREPL_E_CORRUPT, "ring header is inconsistent or the object is truncated");
  capacity_ = cap;
  mask_ = cap - 1;
  max_payload_ = header_->max_payload;
  execution_id_ = header_->execution_id;
  producer_pid_ = header_->producer_pid;
  producer_start_time_ = header_->producer_start_time;
  guardian_pid_ = header_->guardian_pid;
  guardian_start_time_ = header_->guardian_start_time;
  sleep_fence_ = header_->sleep_fence != 0;
  block_ = reinterpret_cast<ProducerBlock*>(base_ + kProducerOffset);
  data_ = base_ + kDataOffset;

  // tail <= write_pos <= tail + capacity holds at every instant, but both move while
  // other readers release: only a pair read while tail stayed put is consistent.
  uint64_t write = 0;
  uint64_t tail = 0;
  for (int attempt = 0;; ++attempt) {
    tail = block_->tail.load(std::memory_order_acquire);
    write = block_->write_pos.load(std::memory_order_acquire);
    if (block_->tail.load(std::memory_order_acquire) == tail || attempt == 1000) break;
  }
  if (tail > write || write - tail > cap || (tail % kFrameAlign) != 0 || (write % kFrameAlign) != 0)
    return fail(error, SHMREPL_E_CORRUPT, "ring positions are out of range");

  auto* slots = reinterpret_cast<ReaderSlot*>(base_ + kSlotsOffset);
  uint32_t me = static_cast<uint32_t>(::getpid());
  // A free slot first; then one whose owner died without detaching (the producer
  // reclaims those too, but only while it waits for space).
  for (int pass = 0; pass < 2 && slot_ == nullptr; ++pass) {
    for (uint32_t i = 0; i < header_->reader_slots; ++i) {
      bool free = owner_pid(slots[i].owner.load(std::memory_order_relaxed)) == 0;
      if (free != (pass == 0)) continue;
      if (claim_reader_slot(slots[i], me, true)) {
        slot_ = &slots[i];
        break;
      }
    }
  }
  if (slot_ == nullptr) return fail(error, SHMREPL_E_NO_SLOT, "every reader slot of the ring is taken");
  owner_ = slot_->owner.load(std::memory_order_relaxed);
  slot_->owner_start_time.store(own_start_time(), std::memory_order_release);
  // A dead owner's slot is still active at its old position: inactive until our
  // start is published, as for a free slot.
  slot_->active.store(0, std::memory_order_seq_cst);

  // Attach protocol, see Producer::refresh_limit: publish a start, become active,
  // then move up to the tail until it stops moving.
  uint64_t pos = start == SHMREPL_START_NEWEST ? write : tail;
  slot_->read_pos.store(pos, std::memory_order_seq_cst);
  slot_->active.store(1, std::memory_order_seq_cst);
  for (;;) {
    uint64_t t = block_->tail.load(std::memory_order_seq_cst);
    if (t <= pos) break;
    pos = t;
    slot_->read_pos.store(pos, std::memory_order_seq_cst);
  }
  if (header_->generation.load(std::memory_order_seq_cst) != generation) {
    detach();
    return SHMREPL_E_AGAIN;
  }
  read_pos_ = cursor_ = seen_write_ = pos;
  ends_.resize(64);
  return SHMREPL_OK;
}

Reader::~Reader() { detach(); }

void Reader::detach() noexcept {
  if (slot_ != nullptr) {
    slot_->active.store(0, std::memory_order_seq_cst);
    // The next owner publishes its start time only after claiming the slot: until
    // then the producer must not judge it by ours (see detach_dead_readers).
    slot_->owner_start_time.store(0, std::memory_order_relaxed);
    slot_->owner.store(make_owner(0, owner_generation(owner_)), std::memory_order_seq_cst);
    // The producer may be waiting on us alone.
    wake_producer();
    slot_ = nullptr;
  }
}

// Wakes a producer sleeping for space, once per sleep: its flag is cleared here.
void Reader::wake_producer() noexcept {
  if (block_->producer_sleeping.load(std::memory_order_seq_cst) != 0 &&
      block_->producer_sleeping.exchange(0, std::memory_order_seq_cst) != 0) {
    block_->space_seq.fetch_add(1, std::memory_order_release);
    futex_wake(&block_->space_seq, 1);
  }
}

// A dead producer with a live guardian is not the end: the guardian is about to
// write the closing records.
// A start time of 0 is never a real producer's or guardian's (each records its own,
// and 0 would make any live process with that pid pass): a forged header.
bool Reader::producer_alive() const noexcept {
  if (producer_start_time_ != 0 && process_alive(static_cast<pid_t>(producer_pid_), producer_start_time_))
    return true;
  return guardian_pid_ != 0 && guardian_start_time_ != 0 &&
         process_alive(static_cast<pid_t>(guardian_pid_), guardian_start_time_);
}

bool Reader::ready() noexcept {
  if (cursor_ != seen_write_) return true;
  seen_write_ = block_->write_pos.load(std::memory_order_acquire);
  return cursor_ != seen_write_;
}

shmrepl_status_t Reader::wait(int64_t timeout_ns, std::string* error) {
  auto is_finished = [&] {
    return header_->state.load(std::memory_order_acquire) ==
           static_cast<uint32_t>(RingState::kFinished);
  };
  // The producer publishes frames before it marks the ring finished, so after
  // seeing `finished` one more look at write_pos tells whether anything is left.
  auto end_of_stream = [&] {
    if (!is_finished()) return false;
    return !ready();
  };
  if (ready()) return SHMREPL_OK;
  if (end_of_stream()) return SHMREPL_E_EOF;
  if (timeout_ns == 0) return SHMREPL_E_AGAIN;
  const uint64_t start = monotonic_ns();
  const uint64_t spin_until = start + static_cast<uint64_t>(timeout_ns > 0 ? std::min(timeout_ns, kSpinNs) : kSpinNs);
  for (int i = 1;; ++i) {
    cpu_relax();
    if (ready()) return SHMREPL_OK;
    if ((i & 63) == 0 && monotonic_ns() >= spin_until) break;
  }
  for (;;) {
    // A flag, not a count: the producer clears it when it wakes the sleepers, so a
    // reader that dies asleep costs the producer one wake-up, not one per record.
    block_->readers_sleeping.store(1, std::memory_order_seq_cst);
    uint32_t seq = block_->data_seq.load(std::memory_order_seq_cst);
    // Pairs with the store of write_pos and load of readers_sleeping in
    // Producer::commit: either we see its new position here or it wakes us. A
    // producer that publishes without a fence (sleep_fence) gets one from us here,
    // on its own CPU (the argument is in Producer::commit). Should the kernel refuse
    // it (a seccomp filter in this process), a wake-up could be missed: sleep briefly.
    const bool fenced = !sleep_fence_ || fence_publishers();
    seen_write_ = block_->write_pos.load(std::memory_order_seq_cst);
    if (cursor_ == seen_write_ && !is_finished()) {
      int64_t slice = fenced ? kLivenessCheckNs : kUnfencedSleepNs;
      if (timeout_ns > 0) {
        int64_t left = timeout_ns - static_cast<int64_t>(monotonic_ns() - start);
        slice = std::max<int64_t>(0, std::min(slice, left));
      }
      if (slice > 0) futex_wait(&block_->data_seq, seq, slice);
    }
    if (ready()) return SHMREPL_OK;
    if (end_of_stream()) return SHMREPL_E_EOF;
    if (!producer_alive()) {
      if (ready()) return SHMREPL_OK;  // it published this before it died
      return fail(error, SHMREPL_E_PRODUCER_DIED,
                  "the ring's producer (pid " + std::to_string(producer_pid_) + ") died");
    }
    if (timeout_ns > 0 && static_cast<int64_t>(monotonic_ns() - start) >= timeout_ns)
      return SHMREPL_E_TIMEOUT;
  }
}

void Reader::push_end(uint64_t end) {
  if (held_count_ == ends_.size()) {
    std::vector<uint64_t> bigger(ends_.size() * 2);
    for (std::size_t i = 0; i < held_count_; ++i)
      bigger[i] = ends_[(held_head_ + i) & (ends_.size() - 1)];
    ends_.swap(bigger);
    held_head_ = 0;
  }
  ends_[(held_head_ + held_count_) & (ends_.size() - 1)] = end;  // the size is a power of two
  ++held_count_;
}

shmrepl_status_t Reader::next(int64_t timeout_ns, Frame* out, std::string* error) {
  for (;;) {
    shmrepl_status_t st = wait(timeout_ns, error);
    if (st != SHMREPL_OK) return st;
    uint64_t write = seen_write_;
    if (write < cursor_ || write - read_pos_ > capacity_ || (write % kFrameAlign) != 0)
      return fail(error, SHMREPL_E_CORRUPT, "ring write position is out of range");
    uint64_t off = cursor_ & mask_;
    uint64_t contig = capacity_ - off;
    FrameHeader h;
    std::memcpy(&h, data_ + off, sizeof h);
    if ((h.flags & ~kKnownFlags) != 0)
      return fail(error, SHMREPL_E_CORRUPT, "frame with unknown flags");
    if ((h.flags & kFlagPad) != 0) {
      if (h.length + kFrameHeaderSize != contig || write - cursor_ < contig)
        return fail(error, SHMREPL_E_CORRUPT, "bad padding frame");
      cursor_ += contig;
      if (held_count_ == 0) read_pos_ = cursor_;  // nothing of ours lies before it
      continue;
    }
    uint64_t size = frame_size(h.length);
    if (h.length > max_payload_ || size > contig || size > write - cursor_)
      return fail(error, SHMREPL_E_CORRUPT, "frame length out of range");
    out->payload = {data_ + off + kFrameHeaderSize, h.length};
    out->flags = h.flags;
    last_start_ = cursor_;
    cursor_ += size;
    push_end(cursor_);
    return SHMREPL_OK;
  }
}

bool Reader::newest_frame(Frame* out) noexcept {
  if (header_->state.load(std::memory_order_acquire) != static_cast<uint32_t>(RingState::kFinished))
    return false;
  const uint64_t write = block_->write_pos.load(std::memory_order_acquire);
  const uint64_t at = block_->last_frame.load(std::memory_order_acquire);
  // Nothing is written after `finished`: the last lap before write_pos is intact.
  if (write == 0 || at >= write || write - at > capacity_ || (at % kFrameAlign) != 0) return false;
  const uint64_t off = at & mask_;
  FrameHeader h;
  std::memcpy(&h, data_ + off, sizeof h);
  if ((h.flags & ~kKnownFlags) != 0 || (h.flags & kFlagPad) != 0 || h.length > max_payload_ ||
      frame_size(h.length) > capacity_ - off || at + frame_size(h.length) != write)
    return false;
  out->payload = {data_ + off + kFrameHeaderSize, h.length};
  out->flags = h.flags;
  return true;
}

void Reader::unread_last() noexcept {
  if (held_count_ == 0) return;
  --held_count_;
  cursor_ = last_start_;
}

shmrepl_status_t Reader::release(std::size_t n) noexcept {
  if (n > held_count_) return SHMREPL_E_INVALID;
  if (n == 0) return SHMREPL_OK;
  // Releasing all also gives back any padding skipped after the last frame.
  uint64_t to = n == held_count_ ? cursor_ : ends_[(held_head_ + n - 1) & (ends_.size() - 1)];
  held_head_ = (held_head_ + n) & (ends_.size() - 1);
  held_count_ -= n;
  read_pos_ = to;
  // Pairs with the producer's seq_cst loads in refresh_limit; and, Dekker-style,
  // with Producer::wait_for_space (it stores producer_sleeping, then reads read_pos).
  slot_->read_pos.store(to, std::memory_order_seq_cst);
  wake_producer();
  return SHMREPL_OK;
}

}  // namespace shmrepl::shm
