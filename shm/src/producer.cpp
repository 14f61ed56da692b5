#include "shmrepl/shm/producer.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cerrno>
#include <climits>
#include <cstring>
#include <new>
#include <stdexcept>
#include <system_error>

#include "shmrepl/shm/sys.hpp"

namespace shmrepl::shm {

namespace {
constexpr uint64_t kFirstAllocation = 64 << 10;  // data bytes reserved at creation

}  // namespace

struct Producer::Mapping {
  void* base = nullptr;
  std::size_t size = 0;
  int fd = -1;  // owned
  ~Mapping() {
    if (base != nullptr) ::munmap(base, size);
    if (fd >= 0) ::close(fd);
  }
};

namespace {
[[noreturn]] void throw_errno(int e, const std::string& what) {
  throw std::system_error(e, std::system_category(), what);
}

// Maps `size` bytes of `fd` read-write, shared.
void* map_shared(int fd, std::size_t size, const std::string& name) {
  void* base = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (base == MAP_FAILED) throw_errno(errno, "mapping ring " + name);
  return base;
}
}  // namespace

bool valid_ring_name(std::string_view name) noexcept {
  if (name.empty() || name.size() > 200 || name.front() == '.') return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

bool claim_reader_slot(ReaderSlot& slot, uint32_t pid, bool take_free) noexcept {
  uint64_t word = slot.owner.load(std::memory_order_acquire);
  if (owner_pid(word) == 0) {
    if (!take_free) return false;
  } else {
    uint64_t start = slot.owner_start_time.load(std::memory_order_acquire);
    // The start time must belong to the owner word we judge.
    if (slot.owner.load(std::memory_order_acquire) != word) return false;
    if (process_alive(static_cast<pid_t>(owner_pid(word)), start)) return false;
    // Cleared before the slot changes hands (see ReaderSlot); fails if someone
    // else reclaimed it meanwhile and published its own.
    if (!slot.owner_start_time.compare_exchange_strong(start, 0, std::memory_order_acq_rel))
      return false;
  }
  return slot.owner.compare_exchange_strong(word, make_owner(pid, owner_generation(word) + 1),
                                            std::memory_order_acq_rel);
}

std::unique_ptr<Producer> Producer::create(std::string name, const ProducerOptions& options) {
  if (!valid_ring_name(name)) throw std::invalid_argument("invalid ring name: " + name);
  if (options.capacity > kMaxCapacity) throw std::invalid_argument("ring capacity too large");
  uint64_t capacity = std::bit_ceil(std::max<uint64_t>(options.capacity, kMinCapacity));
  uint64_t max_payload = capacity / 4 - kFrameHeaderSize;
  if (options.max_payload != 0) max_payload = std::min<uint64_t>(max_payload, options.max_payload);

  std::unique_ptr<Producer> p(new Producer());
  p->map_ = std::make_unique<Mapping>();
  const std::size_t size = kDataOffset + capacity;
  int fd;
  if (options.sealed) {
    // Nobody else can resize it once sealed: no SIGBUS for any process that maps it.
    fd = ::memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) throw_errno(errno, "creating ring " + name);
    p->map_->fd = fd;
    p->unlink_on_close_ = false;
    p->named_ = false;
    ::fchmod(fd, 0600);  // memfds start 0777; reopening through /proc checks this too
  } else {
    fd = ::shm_open(("/" + name).c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) throw_errno(errno, "creating ring " + name);
    p->map_->fd = fd;
    // shm_open applies the umask; the ring must be exactly owner-only.
    ::fchmod(fd, 0600);
  }
  p->name_ = std::move(name);
  // From here the destructor unlinks a named ring if anything below throws.
  if (::ftruncate(fd, static_cast<off_t>(size)) != 0) throw_errno(errno, "sizing ring " + p->name_);
  // Reserve the header and a first part of the data area now: a full /dev/shm is an
  // error here, not a SIGBUS on the first write to a page that cannot be allocated.
  // All of a large ring at once would cost ~0.5 ms per MiB for executions that
  // write a few lines; the rest is reserved ahead of the writer (ensure_allocated:
  // fallocate inside the size, which F_SEAL_GROW allows).
  const uint64_t first = std::min<uint64_t>(capacity, kFirstAllocation);
  if (int rc = ::posix_fallocate(fd, 0, static_cast<off_t>(kDataOffset + first)); rc != 0)
    throw std::system_error(rc, std::system_category(),
                            "reserving " + std::to_string(kDataOffset + first) + " bytes for ring " +
                                p->name_ + " (is /dev/shm full?)");
  if (options.sealed &&
      ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) != 0)
    throw_errno(errno, "sealing ring " + p->name_);
  p->allocated_ = first;
  p->fd_ = fd;
  p->self_pid_ = static_cast<uint32_t>(::getpid());
  p->map_->base = map_shared(fd, size, p->name_);
  p->map_->size = size;
  // A child that user code forks must never write to (or hold) the ring.
  ::madvise(p->map_->base, size, MADV_DONTFORK);

  auto* base = static_cast<std::byte*>(p->map_->base);
  // ftruncate zero-filled the object; the atomics start at zero.
  p->header_ = new (base) RingHeader{};
  p->block_ = new (base + kProducerOffset) ProducerBlock{};
  p->slots_ = reinterpret_cast<ReaderSlot*>(base + kSlotsOffset);
  for (std::size_t i = 0; i < kReaderSlots; ++i) new (p->slots_ + i) ReaderSlot{};
  p->data_ = base + kDataOffset;
  p->capacity_ = capacity;
  p->mask_ = capacity - 1;
  p->max_payload_ = static_cast<uint32_t>(max_payload);
  p->closing_reserve_ = std::min<uint64_t>(1024, capacity / 8);

  RingHeader& h = *p->header_;
  h.layout_version = kLayoutVersion;
  h.header_size = static_cast<uint32_t>(kDataOffset);
  h.capacity = capacity;
  h.execution_id = options.execution_id;
  h.created_ns = realtime_ns();
  h.producer_pid = static_cast<uint32_t>(::getpid());
  h.producer_start_time = own_start_time();
  h.reader_slots = kReaderSlots;
  h.max_payload = p->max_payload_;
  p->plain_publish_ = register_fenced_publisher(static_cast<pid_t>(p->self_pid_));
  h.sleep_fence = p->plain_publish_ ? 1 : 0;
  h.closing_reserve = static_cast<uint32_t>(p->closing_reserve_);
  if (options.guardian_pid != 0) {
    h.guardian_pid = options.guardian_pid;
    h.guardian_start_time = options.guardian_start_time != 0
                                ? options.guardian_start_time
                                : process_start_time(static_cast<pid_t>(options.guardian_pid));
  }
  // The magic last: a reader that sees it sees every field above.
  std::atomic_ref<uint64_t>(h.magic).store(kMagic, std::memory_order_release);
  return p;
}

std::unique_ptr<Producer> Producer::take_over(const std::string& name) {
  if (!valid_ring_name(name)) throw std::invalid_argument("invalid ring name: " + name);
  const int fd = ::shm_open(("/" + name).c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) throw_errno(errno, "opening ring " + name);
  try {
    auto p = take_over(fd, name);
    ::close(fd);
    return p;
  } catch (...) {
    ::close(fd);
    throw;
  }
}

std::unique_ptr<Producer> Producer::take_over(int fd, const std::string& name) {
  std::unique_ptr<Producer> p(new Producer());
  p->map_ = std::make_unique<Mapping>();
  struct stat st {};
  if (::fstat(fd, &st) != 0) throw_errno(errno, "opening ring " + name);
  if (st.st_size < static_cast<off_t>(kDataOffset)) throw std::runtime_error("ring " + name + " is truncated");
  p->map_->base = map_shared(fd, static_cast<std::size_t>(st.st_size), name);
  p->map_->size = static_cast<std::size_t>(st.st_size);
  p->name_ = name;
  p->unlink_on_close_ = false;
  p->self_pid_ = static_cast<uint32_t>(::getpid());
  auto* base = static_cast<std::byte*>(p->map_->base);
  const std::size_t size = p->map_->size;
  p->header_ = reinterpret_cast<RingHeader*>(base);
  const RingHeader& h = *p->header_;
  const uint64_t cap = h.capacity;
  if (std::atomic_ref<uint64_t>(p->header_->magic).load(std::memory_order_acquire) != kMagic ||
      h.layout_version != kLayoutVersion || h.header_size != kDataOffset || cap < kMinCapacity ||
      cap > kMaxCapacity || !std::has_single_bit(cap) || size - kDataOffset < cap ||
      h.max_payload == 0 || h.max_payload > cap / 4 || h.closing_reserve > cap / 8)
    throw std::runtime_error("ring " + name + " has a bad header");
  p->block_ = reinterpret_cast<ProducerBlock*>(base + kProducerOffset);
  p->slots_ = reinterpret_cast<ReaderSlot*>(base + kSlotsOffset);
  p->data_ = base + kDataOffset;
  p->capacity_ = cap;
  p->mask_ = cap - 1;
  p->max_payload_ = h.max_payload;
  p->closing_reserve_ = h.closing_reserve;
  p->allocated_ = cap;  // the dead producer kept the closing reserve allocated ahead
  p->pos_ = p->block_->write_pos.load(std::memory_order_acquire);
  p->reserved_at_ = p->block_->last_frame.load(std::memory_order_acquire);
  const uint64_t tail = p->block_->tail.load(std::memory_order_acquire);
  if (p->pos_ % kFrameAlign != 0 || tail > p->pos_ || p->pos_ - tail > cap ||
      (p->pos_ != 0 && (p->reserved_at_ >= p->pos_ || p->pos_ - p->reserved_at_ > cap)))
    throw std::runtime_error("ring " + name + " has positions out of range");
  // Plain publishes only if readers fence this process too (the header says they
  // fence, and this process is registered for it); otherwise each publish fences.
  p->plain_publish_ = h.sleep_fence != 0 && register_fenced_publisher(static_cast<pid_t>(p->self_pid_));
  p->limit_ = p->refresh_limit();
  return p;
}

std::span<const std::byte> Producer::last_payload() const noexcept {
  if (pos_ == 0 || reserved_at_ >= pos_) return {};
  // last_frame may be a frame (and a pad) behind the newest one: walk forward.
  uint64_t at = reserved_at_;
  for (int step = 0; step < 4; ++step) {
    const uint64_t off = at & mask_;
    const uint64_t contig = capacity_ - off;
    if (contig < kFrameHeaderSize) return {};
    FrameHeader h;
    std::memcpy(&h, data_ + off, sizeof h);
    const bool pad = (h.flags & kFlagPad) != 0;
    if (pad ? h.length + kFrameHeaderSize != contig : (h.length > max_payload_ || frame_size(h.length) > contig))
      return {};
    const uint64_t end = at + (pad ? contig : frame_size(h.length));
    if (end >= pos_) {
      if (pad || end != pos_) return {};
      return {data_ + off + kFrameHeaderSize, h.length};
    }
    at = end;
  }
  return {};
}

bool Producer::force_finish(const std::string& name) noexcept {
  const int fd = ::shm_open(("/" + name).c_str(), O_RDWR | O_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool done = force_finish(fd);
  ::close(fd);
  return done;
}

bool Producer::force_finish(int fd) noexcept {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(kDataOffset)) return false;
  void* m = ::mmap(nullptr, kDataOffset, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (m == MAP_FAILED) return false;
  auto* base = static_cast<std::byte*>(m);
  auto* header = reinterpret_cast<RingHeader*>(base);
  const bool ring = std::atomic_ref<uint64_t>(header->magic).load(std::memory_order_acquire) == kMagic;
  if (ring) {
    auto* block = reinterpret_cast<ProducerBlock*>(base + kProducerOffset);
    header->state.store(static_cast<uint32_t>(RingState::kFinished), std::memory_order_seq_cst);
    block->data_seq.fetch_add(1, std::memory_order_release);
    futex_wake(&block->data_seq, INT_MAX);
  }
  ::munmap(m, kDataOffset);
  return ring;
}

bool Producer::finished() const noexcept {
  return header_->state.load(std::memory_order_acquire) == static_cast<uint32_t>(RingState::kFinished);
}
uint32_t Producer::producer_pid() const noexcept { return header_->producer_pid; }
uint64_t Producer::producer_start_time() const noexcept { return header_->producer_start_time; }

Producer::~Producer() {
  if (unlink_on_close_ && !name_.empty()) unlink();
}

void Producer::unlink() noexcept {
  if (named_ && !name_.empty()) ::shm_unlink(("/" + name_).c_str());
  unlink_on_close_ = false;
}

uint64_t Producer::execution_id() const noexcept { return header_->execution_id; }

std::size_t Producer::attached_readers() const noexcept {
  std::size_t n = 0;
  for (std::size_t i = 0; i < kReaderSlots; ++i)
    n += slots_[i].active.load(std::memory_order_acquire) != 0 ? 1 : 0;
  return n;
}

// The position below which no attached reader reads any more. Also advances the
// shared `tail` that attaching readers start from. A reader attaching concurrently
// either is seen by the second scan or reads the new tail after it (both sides use
// seq_cst: reader stores active then loads tail; we store tail then load active).
uint64_t Producer::refresh_limit() noexcept {
  uint64_t tail = block_->tail.load(std::memory_order_relaxed);  // only we store it
  uint64_t slowest = pos_;
  bool any = false;
  for (std::size_t i = 0; i < kReaderSlots; ++i) {
    if (slots_[i].active.load(std::memory_order_seq_cst) != 0) {
      slowest = std::min(slowest, slots_[i].read_pos.load(std::memory_order_seq_cst));
      any = true;
    }
  }
  // With no reader attached everything is kept: a reader may still come for it.
  if (any && slowest > tail) {
    tail = slowest;
    block_->tail.store(tail, std::memory_order_seq_cst);
  }
  uint64_t limit = tail;
  for (std::size_t i = 0; i < kReaderSlots; ++i) {
    if (slots_[i].active.load(std::memory_order_seq_cst) != 0)
      limit = std::min(limit, slots_[i].read_pos.load(std::memory_order_seq_cst));
  }
  return limit;
}

namespace {
// Bytes a frame of `payload` bytes takes at `pos`, with the pad in front of it
// when it does not fit before the end of the data area.
inline uint64_t footprint(uint64_t pos, uint64_t capacity, uint64_t mask, std::size_t payload) {
  uint64_t need = frame_size(payload);
  uint64_t contig = capacity - (pos & mask);
  return need <= contig ? need : contig + need;
}
}  // namespace

// Reserves the object's memory up to data offset `end` (first lap only: after it the
// whole data area is reserved). Grows by doubling, so a ring that fills costs a few
// calls. False if the system has no room.
bool Producer::ensure_allocated(uint64_t end) noexcept {
  if (end <= allocated_) return true;
  const uint64_t want = std::min(capacity_, std::max(end, allocated_ * 2));
  if (fd_ < 0) return false;
  if (::posix_fallocate(fd_, static_cast<off_t>(kDataOffset + allocated_),
                        static_cast<off_t>(want - allocated_)) != 0)
    return false;
  allocated_ = want;
  return true;
}

std::span<std::byte> Producer::try_reserve(std::size_t payload, bool closing) noexcept {
  if (payload > max_payload_) return {};
  const uint64_t room = closing ? capacity_ : capacity_ - closing_reserve_;
  uint64_t total = footprint(pos_, capacity_, mask_, payload);
  if (pos_ + total - limit_ > room) {
    limit_ = refresh_limit();
    if (pos_ + total - limit_ > room) return {};
  }
  // A normal record also keeps the closing reserve reserved beyond its end, so the
  // closing records never need an allocation that could fail.
  if (allocated_ < capacity_ &&
      !ensure_allocated(std::min(capacity_, pos_ + total + (closing ? 0 : closing_reserve_)))) {
    allocation_failed_ = true;
    return {};
  }
  allocation_failed_ = false;
  uint64_t need = frame_size(payload);
  uint64_t off = pos_ & mask_;
  if (need > capacity_ - off) {
    // Unpublished until commit() stores a write_pos past it.
    FrameHeader pad{static_cast<uint32_t>(capacity_ - off - kFrameHeaderSize), kFlagPad};
    std::memcpy(data_ + off, &pad, sizeof pad);
    pos_ += capacity_ - off;
    off = 0;
  }
  reserved_at_ = pos_;
  return {data_ + off + kFrameHeaderSize, payload};
}

void Producer::commit(std::size_t length, uint32_t flags) noexcept {
  FrameHeader h{static_cast<uint32_t>(length), flags & ~kFlagPad};
  std::memcpy(data_ + (reserved_at_ & mask_), &h, sizeof h);
  pos_ = reserved_at_ + frame_size(length);
  // Release: a reader that loads this position sees the frame. The wake-up needs a
  // StoreLoad order (Dekker-style) between this store and the load of
  // readers_sleeping below, against the reader's store of readers_sleeping and its
  // load of write_pos (Reader::wait): either the sleeping reader sees the new
  // position or we see its flag. With plain_publish_ the order comes from the
  // reader's side: it calls fence_publishers() (membarrier) between its store and its
  // load, which runs a full fence on this thread if it is running (else its context
  // switch was one). That fence falls somewhere in this thread's program order:
  // before the store (then our load comes after the reader's store and sees the flag),
  // between the store and the load (a full fence, as seq_cst gives), or after the load
  // (then our store was visible before the reader's load, which sees the position).
  // So a publish costs a plain store, not an xchg; going to sleep costs the reader
  // an IPI. Without plain_publish_ (the kernel refused the registration, or readers
  // do not fence) it is the seq_cst store. Clearing the flag makes this one wake per
  // sleep, not one per record until the reader runs again.
  if (plain_publish_) {
    block_->write_pos.store(pos_, std::memory_order_release);
    // Compiler order only: the CPU's is the reader's membarrier.
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    block_->write_pos.store(pos_, std::memory_order_seq_cst);
  }
  // After write_pos: a producer that dies in between leaves last_frame one frame
  // behind, which the guardian walks forward from (never ahead of write_pos).
  block_->last_frame.store(reserved_at_, std::memory_order_relaxed);
  if (block_->readers_sleeping.load(std::memory_order_seq_cst) != 0 &&
      block_->readers_sleeping.exchange(0, std::memory_order_seq_cst) != 0) {
    block_->data_seq.fetch_add(1, std::memory_order_release);
    futex_wake(&block_->data_seq, INT_MAX);
  }
}

void Producer::detach_dead_readers() noexcept {
  for (std::size_t i = 0; i < kReaderSlots; ++i) {
    ReaderSlot& s = slots_[i];
    // An owner that is active but never published its start time: a reader stores
    // it right after its claim, so the same owner word found so one liveness check
    // later is a forged slot (e.g. pid 1, which always looks alive), not a reader.
    const uint64_t word = s.owner.load(std::memory_order_acquire);
    const bool startless = owner_pid(word) != 0 && s.active.load(std::memory_order_acquire) != 0 &&
                           s.owner_start_time.load(std::memory_order_acquire) == 0;
    bool forged = false;
    if (!startless) startless_[i] = 0;
    else if (startless_[i] != word) startless_[i] = word;
    else {
      uint64_t expected = word;  // one CAS from the word judged, as claim_reader_slot
      forged = s.owner.compare_exchange_strong(expected, make_owner(self_pid_, owner_generation(word) + 1),
                                               std::memory_order_acq_rel);
    }
    // Otherwise the slot becomes ours for a moment if its owner is dead (we are
    // alive: nobody else reclaims it), so `active` is cleared before anyone can
    // claim it again.
    if (!forged && !claim_reader_slot(s, self_pid_, false)) continue;
    startless_[i] = 0;
    s.active.store(0, std::memory_order_seq_cst);
    s.owner.store(make_owner(0, owner_generation(s.owner.load(std::memory_order_relaxed))),
                  std::memory_order_seq_cst);
  }
}

WaitResult Producer::wait_for_space(std::size_t payload, std::chrono::nanoseconds timeout,
                                    bool closing) noexcept {
  if (payload > max_payload_) return WaitResult::kReady;  // try_reserve will refuse it anyway
  const uint64_t room = closing ? capacity_ : capacity_ - closing_reserve_;
  auto fits = [&] {
    limit_ = refresh_limit();
    return pos_ + footprint(pos_, capacity_, mask_, payload) - limit_ <= room;
  };
  for (int i = 0; i < 128; ++i) {
    if (fits()) return WaitResult::kReady;
    cpu_relax();
  }
  const uint64_t start = monotonic_ns();
  const uint64_t budget = static_cast<uint64_t>(std::max<int64_t>(0, timeout.count()));
  constexpr uint64_t kLivenessCheck = 100'000'000;  // look for dead readers this often
  for (;;) {
    block_->producer_sleeping.store(1, std::memory_order_seq_cst);
    uint32_t seq = block_->space_seq.load(std::memory_order_seq_cst);
    if (fits()) {
      block_->producer_sleeping.store(0, std::memory_order_relaxed);
      return WaitResult::kReady;
    }
    uint64_t elapsed = monotonic_ns() - start;
    if (elapsed >= budget) {
      block_->producer_sleeping.store(0, std::memory_order_relaxed);
      return WaitResult::kTimeout;
    }
    futex_wait(&block_->space_seq, seq,
               static_cast<int64_t>(std::min(budget - elapsed, kLivenessCheck)));
    block_->producer_sleeping.store(0, std::memory_order_relaxed);
    // Only now and then: a look at /proc per reader costs far more than the
    // wake-ups that end most waits.
    uint64_t now = monotonic_ns();
    if (now - last_liveness_check_ >= kLivenessCheck) {
      last_liveness_check_ = now;
      detach_dead_readers();
    }
  }
}

void Producer::write(std::span<const std::byte> payload, uint32_t flags, bool closing) {
  if (payload.size() > max_payload_) throw std::length_error("record larger than the ring's max payload");
  std::span<std::byte> room = try_reserve(payload.size(), closing);
  while (room.data() == nullptr) {  // an empty payload gets an empty, non-null span
    wait_for_space(payload.size(), std::chrono::milliseconds(100), closing);
    room = try_reserve(payload.size(), closing);
  }
  if (!payload.empty()) std::memcpy(room.data(), payload.data(), payload.size());
  commit(payload.size(), flags);
}

bool Producer::try_reset(uint64_t execution_id) noexcept {
  if (!finished()) return false;
  std::size_t held = 0;
  while (held < kReaderSlots && claim_reader_slot(slots_[held], self_pid_, true)) ++held;
  const bool ok = held == kReaderSlots;
  if (ok) {
    // Before anything else changes: a reader that read the header before sees it
    // bumped once its claim succeeds (after ours are given back) and starts again.
    header_->generation.fetch_add(1, std::memory_order_seq_cst);
    header_->execution_id = execution_id;
    header_->created_ns = realtime_ns();
    for (std::size_t i = 0; i < kReaderSlots; ++i) {
      slots_[i].active.store(0, std::memory_order_relaxed);
      slots_[i].read_pos.store(0, std::memory_order_relaxed);
      startless_[i] = 0;
    }
    // seq_cst, after the bump: a reader that sees a position of the new generation
    // sees the bump too.
    block_->write_pos.store(0, std::memory_order_seq_cst);
    block_->last_frame.store(0, std::memory_order_seq_cst);
    block_->tail.store(0, std::memory_order_seq_cst);
    pos_ = limit_ = reserved_at_ = 0;
    allocation_failed_ = false;
    header_->state.store(static_cast<uint32_t>(RingState::kOpen), std::memory_order_seq_cst);
  }
  // The slots back (seq_cst: after every store above).
  for (std::size_t i = 0; i < held; ++i) {
    slots_[i].owner_start_time.store(0, std::memory_order_relaxed);
    slots_[i].owner.store(make_owner(0, owner_generation(slots_[i].owner.load(std::memory_order_relaxed))),
                          std::memory_order_seq_cst);
  }
  return ok;
}

void Producer::finish() noexcept {
  header_->state.store(static_cast<uint32_t>(RingState::kFinished), std::memory_order_seq_cst);
  block_->data_seq.fetch_add(1, std::memory_order_release);
  futex_wake(&block_->data_seq, INT_MAX);
}

}  // namespace shmrepl::shm
