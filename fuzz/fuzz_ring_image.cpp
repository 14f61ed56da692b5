// Fuzzes a ring reader over a hostile ring image: header, positions, reader slots and
// frames all come from the input. The reader reads with timeout 0 until it gets no
// frame, decodes and releases each one. Checks: no crash, no hang, no access outside
// the image (it is allocated at exactly its size), every frame lies in the data area,
// and for an image built the way the producer builds it, exactly the frames written.
//
// Input: byte 0 bit 0 set -> the rest is the raw image. Otherwise a structured image
// (see build_image) that starts from a valid header, so the fuzzer gets deep.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_common.hpp"
#include "records.hpp"
#include "shmrepl/shm/layout.hpp"
#include "shmrepl/shm/reader.hpp"
#include "shmrepl/shmrepl.h"

namespace {

using namespace shmrepl::shm;  // NOLINT(google-build-using-namespace): the layout names
using shmrepl::fuzz::Bytes;
using shmrepl::fuzz::touch;
using shmrepl::fuzz::within;
namespace records = shmrepl::records;

// Header override bits (structured input, second byte after the capacity).
constexpr uint8_t kRawCapacity = 0x01;
constexpr uint8_t kRawMaxPayload = 0x02;
constexpr uint8_t kRawSlots = 0x04;
constexpr uint8_t kRawVersion = 0x08;
constexpr uint8_t kRawMagic = 0x10;
constexpr uint8_t kTruncate = 0x20;
constexpr uint8_t kStartNewest = 0x40;
constexpr uint8_t kRawPositions = 0x80;
// A pid no test process has, for slots the input marks as taken.
constexpr uint32_t kOtherPid = 0x7ffffffe;

// Page-aligned (the layout's alignas(64) structs) and exactly `size` bytes long.
struct Image {
  explicit Image(std::size_t n)
      : base(static_cast<std::byte*>(::operator new[](n, std::align_val_t{kPageSize}))), size(n) {
    std::memset(base, 0, n);
  }
  ~Image() { ::operator delete[](base, std::align_val_t{kPageSize}); }
  Image(const Image&) = delete;
  Image& operator=(const Image&) = delete;
  std::byte* base;
  std::size_t size;
};

struct Expected {
  std::size_t offset;  // of the payload in the data area
  uint32_t length;
  uint32_t flags;
};

struct Built {
  std::unique_ptr<Image> image;
  shmrepl_reader_start_t start = SHMREPL_START_OLDEST;
  uint8_t release_mode = 0;
  uint8_t release_batch = 1;
  // Set when the image is a valid ring written as the producer writes one: then
  // the reader must attach and return exactly `frames`.
  bool consistent = true;
  bool finished = false;
  std::vector<Expected> frames;
};

// Appends frames the way Producer::try_reserve/commit lay them out.
class Writer {
 public:
  Writer(std::byte* data, uint64_t cap, uint64_t tail, uint32_t max_payload)
      : data_(data), cap_(cap), tail_(tail), pos_(tail), max_payload_(max_payload) {}

  // Reserves a frame with `len` payload bytes (padding to the end first if it does
  // not fit before it). Returns the payload, or nullptr when the ring is full.
  std::byte* reserve(uint32_t len, uint32_t flags) {
    uint64_t need = frame_size(len);
    uint64_t contig = cap_ - (pos_ & (cap_ - 1));
    uint64_t pad = need > contig ? contig : 0;
    if (pos_ + pad + need - tail_ > cap_) return nullptr;
    if (pad != 0) put_header(static_cast<uint32_t>(contig - kFrameHeaderSize), kFlagPad);
    pos_ += pad;
    std::size_t off = pos_ & (cap_ - 1);
    put_header(len, flags);
    std::memset(data_ + off + kFrameHeaderSize, 0, need - kFrameHeaderSize);
    last_ = {off + kFrameHeaderSize, len, flags};
    pos_ += need;
    return data_ + off + kFrameHeaderSize;
  }
  // A pad frame up to the end of the data area (the producer writes one when the
  // next frame does not fit; one anywhere else is equally valid to the reader).
  bool pad() {
    uint64_t contig = cap_ - (pos_ & (cap_ - 1));
    if (pos_ + contig - tail_ > cap_) return false;
    put_header(static_cast<uint32_t>(contig - kFrameHeaderSize), kFlagPad);
    pos_ += contig;
    return true;
  }
  // Arbitrary bytes at the write position, advancing it by an aligned amount.
  void garbage(std::span<const uint8_t> bytes) {
    for (std::size_t i = 0; i < bytes.size(); ++i)
      data_[(pos_ + i) & (cap_ - 1)] = static_cast<std::byte>(bytes[i]);
    pos_ += align_frame(bytes.size());
  }
  uint64_t pos() const { return pos_; }
  uint32_t max_payload() const { return max_payload_; }
  const Expected& last() const { return last_; }

 private:
  void put_header(uint32_t len, uint32_t flags) {
    FrameHeader h{len, flags};
    std::memcpy(data_ + (pos_ & (cap_ - 1)), &h, sizeof h);
  }
  std::byte* data_;
  uint64_t cap_, tail_, pos_;
  uint32_t max_payload_;
  Expected last_{};
};

// One frame op from the input. Returns false when the ring is full.
bool write_op(Bytes& in, Writer& w, Built& b, uint64_t execution_id, uint64_t& seq) {
  uint8_t op = in.take<uint8_t>();
  switch (op % 4) {
    case 0: {  // a frame with payload bytes from the input
      auto len = static_cast<uint32_t>(in.take<uint16_t>());
      uint32_t flags = in.take<uint8_t>() & (kFlagMore | kFlagContinued);
      auto bytes = in.take_bytes(std::min<uint32_t>(len, w.max_payload()));
      std::byte* p = w.reserve(static_cast<uint32_t>(bytes.size()), flags);
      if (p == nullptr) return false;
      if (!bytes.empty()) std::memcpy(p, bytes.data(), bytes.size());
      b.frames.push_back(w.last());
      return true;
    }
    case 1: {  // a well-formed record of each kind
      records::Meta meta{execution_id, seq++, seq * 1000};
      auto text = in.take_bytes(in.take<uint8_t>());
      std::string_view s(reinterpret_cast<const char*>(text.data()), text.size());
      std::vector<std::byte> rec;
      switch ((op >> 2) % 6) {
        case 0: {
          auto stream = (op & 0x40) != 0 ? SHMREPL_STREAM_STDERR : SHMREPL_STREAM_STDOUT;
          rec.resize(records::output_size(text.size()));
          records::encode_output(rec, meta, stream, std::as_bytes(text));
          break;
        }
        case 1: records::encode_started(rec, meta, seq, s); break;
        case 2: records::encode_result(rec, meta, s); break;
        case 3: {
          std::string_view lines[] = {"Traceback (most recent call last):\n", s};
          records::encode_error(rec, meta, "ValueError", s, lines);
          break;
        }
        case 4: records::encode_input_request(rec, meta, s, (op & 0x40) != 0); break;
        default: records::encode_finished(rec, meta, SHMREPL_FINISH_OK, 0, seq); break;
      }
      if (rec.size() > w.max_payload()) return true;  // the producer would split it
      std::byte* p = w.reserve(static_cast<uint32_t>(rec.size()), 0);
      if (p == nullptr) return false;
      std::memcpy(p, rec.data(), rec.size());
      b.frames.push_back(w.last());
      return true;
    }
    case 2:  // garbage where the next frame header goes
      w.garbage(in.take_bytes(in.take<uint8_t>()));
      b.consistent = false;
      return true;
    default: return w.pad();
  }
}

Built build_image(Bytes& in) {
  Built b;
  uint64_t cap = kMinCapacity << (in.take<uint8_t>() % 5);  // 4 KiB .. 64 KiB: fast
  uint8_t over = in.take<uint8_t>();
  uint32_t state = in.take<uint8_t>();
  auto taken_slots = static_cast<uint32_t>(in.take<uint8_t>() % (kReaderSlots + 1));
  uint64_t base_pos = in.take<uint64_t>() & ((1ull << 62) - 1) & ~(kFrameAlign - 1);
  b.release_mode = in.take<uint8_t>();
  b.release_batch = std::max<uint8_t>(1, in.take<uint8_t>());

  std::size_t size = kDataOffset + cap;
  if ((over & kTruncate) != 0) {
    size -= std::min<std::size_t>(size, in.take<uint16_t>());
    b.consistent = false;
  }
  b.image = std::make_unique<Image>(size);
  // The data area is built in a scratch copy (the image may be truncated).
  std::vector<std::byte> data(cap);

  RingHeader h{};
  h.magic = kMagic;
  h.layout_version = kLayoutVersion;
  h.header_size = kDataOffset;
  h.capacity = cap;
  h.execution_id = 7;
  h.producer_pid = kOtherPid;
  h.reader_slots = kReaderSlots;
  h.max_payload = static_cast<uint32_t>(cap / 4 - kFrameHeaderSize);
  if ((over & kRawCapacity) != 0) h.capacity = in.take<uint64_t>();
  if ((over & kRawMaxPayload) != 0) h.max_payload = in.take<uint32_t>();
  if ((over & kRawSlots) != 0) h.reader_slots = in.take<uint8_t>();
  if ((over & kRawVersion) != 0) h.layout_version = in.take<uint32_t>();
  if ((over & kRawMagic) != 0) h.magic = in.take<uint64_t>();
  if ((over & ~(kTruncate | kStartNewest)) != 0) b.consistent = false;
  if (taken_slots >= h.reader_slots) b.consistent = false;
  b.start = (over & kStartNewest) != 0 ? SHMREPL_START_NEWEST : SHMREPL_START_OLDEST;
  b.finished = state == static_cast<uint32_t>(RingState::kFinished);
  h.state.store(state, std::memory_order_relaxed);

  uint64_t write = base_pos, tail = base_pos;
  if ((over & kRawPositions) != 0) {
    write = in.take<uint64_t>();
    tail = in.take<uint64_t>();
  }
  // Frames are laid out from the (aligned) tail, with the header's max_payload capped to what
  // fits (a raw max_payload may be anything).
  uint32_t max_payload =
      static_cast<uint32_t>(std::min<uint64_t>(h.max_payload, cap / 4 - kFrameHeaderSize));
  Writer w(data.data(), cap, tail & ~(kFrameAlign - 1), max_payload);
  uint64_t seq = 0;
  while (!in.empty() && write_op(in, w, b, h.execution_id, seq)) {
  }
  if ((over & kRawPositions) == 0) write = w.pos();

  // Lay the pages out, as far as the image reaches.
  auto put = [&](std::size_t at, const void* src, std::size_t n) {
    if (at < size) std::memcpy(b.image->base + at, src, std::min(n, size - at));
  };
  put(0, &h, sizeof h);
  ProducerBlock block{};
  block.write_pos.store(write, std::memory_order_relaxed);
  block.tail.store(tail, std::memory_order_relaxed);
  put(kProducerOffset, &block, sizeof block);
  for (uint32_t i = 0; i < taken_slots; ++i) {
    ReaderSlot slot{};
    // Owned by a live process (init), so attach cannot reclaim it.
    slot.owner.store(make_owner(1, 1), std::memory_order_relaxed);
    put(kSlotsOffset + i * sizeof slot, &slot, sizeof slot);
  }
  put(kDataOffset, data.data(), data.size());
  return b;
}

std::unique_ptr<Image> raw_image(std::span<const uint8_t> bytes) {
  auto image = std::make_unique<Image>(bytes.size());
  if (!bytes.empty()) std::memcpy(image->base, bytes.data(), bytes.size());
  return image;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Bytes in({data, size});
  Built b;
  if ((in.take<uint8_t>() & 1) != 0) {
    b.image = raw_image(in.rest());
    b.consistent = false;
    b.release_mode = 0;
  } else {
    b = build_image(in);
  }
  Image& img = *b.image;

  // Slots our pid holds before attaching (a raw image may name it already).
  auto ours = [&img] {
    if (img.size < kSlotsOffset + kReaderSlots * sizeof(ReaderSlot)) return std::size_t{0};
    const auto* slots = reinterpret_cast<const ReaderSlot*>(img.base + kSlotsOffset);
    auto me = static_cast<uint32_t>(::getpid());
    std::size_t n = 0;
    for (std::size_t i = 0; i < kReaderSlots; ++i)
      n += owner_pid(slots[i].owner.load(std::memory_order_relaxed)) == me ? 1 : 0;
    return n;
  };
  const std::size_t ours_before = ours();

  shmrepl_status_t st = SHMREPL_OK;
  std::string error;
  auto reader = Reader::attach_image(img.base, img.size, b.start, &st, &error);
  if (reader == nullptr) {
    SHMREPL_FUZZ_CHECK(st == SHMREPL_E_CORRUPT || st == SHMREPL_E_VERSION ||
                       st == SHMREPL_E_NO_SLOT);
    SHMREPL_FUZZ_CHECK(!error.empty());
    SHMREPL_FUZZ_CHECK(!b.consistent);
    SHMREPL_FUZZ_CHECK(ours() == ours_before);
    return 0;
  }
  SHMREPL_FUZZ_CHECK(st == SHMREPL_OK);
  const std::byte* area = img.base + kDataOffset;
  const uint64_t cap = reader->capacity();
  SHMREPL_FUZZ_CHECK(img.size >= kDataOffset + cap);

  // Each frame moves the cursor by >= 8 bytes and the cursor never passes write_pos,
  // which is at most `cap` ahead of where the reader started: more frames is a hang.
  const uint64_t max_frames = cap / kFrameAlign + 1;
  std::size_t count = 0;
  for (;;) {
    Frame f{};
    st = reader->next(0, &f, &error);
    if (st != SHMREPL_OK) break;
    SHMREPL_FUZZ_CHECK(++count <= max_frames);
    SHMREPL_FUZZ_CHECK(within(f.payload.data(), f.payload.size(), area, cap));
    SHMREPL_FUZZ_CHECK(f.payload.size() <= reader->max_payload());
    SHMREPL_FUZZ_CHECK((f.flags & ~(kFlagMore | kFlagContinued)) == 0);
    touch(f.payload.data(), f.payload.size());
    if (b.consistent && b.start == SHMREPL_START_OLDEST) {
      SHMREPL_FUZZ_CHECK(count <= b.frames.size());
      const Expected& e = b.frames[count - 1];
      SHMREPL_FUZZ_CHECK(f.payload.data() == area + e.offset);
      SHMREPL_FUZZ_CHECK(f.payload.size() == e.length && f.flags == e.flags);
    }
    shmrepl_record_t rec{};
    if (records::decode(f.payload, f.flags, &rec) == SHMREPL_OK) {
      SHMREPL_FUZZ_CHECK(within(rec.data, rec.data_len, f.payload.data(), f.payload.size()));
      // The frame's flags; PASSWORD only on an INPUT_REQUEST (from the record itself).
      SHMREPL_FUZZ_CHECK((rec.flags & ~SHMREPL_FLAG_PASSWORD) == f.flags);
      SHMREPL_FUZZ_CHECK((rec.flags & SHMREPL_FLAG_PASSWORD) == 0 ||
                         rec.kind == SHMREPL_RECORD_INPUT_REQUEST);
    }
    // Release patterns: at once, in batches, or all at the end (mode 2).
    switch (b.release_mode % 3) {
      case 0: SHMREPL_FUZZ_CHECK(reader->release(1) == SHMREPL_OK); break;
      case 1:
        if (reader->held() >= b.release_batch)
          SHMREPL_FUZZ_CHECK(reader->release(reader->held()) == SHMREPL_OK);
        break;
      default: break;
    }
  }
  // With timeout 0 the reader never waits, so neither times out nor looks at the
  // producer's liveness.
  SHMREPL_FUZZ_CHECK(st == SHMREPL_E_AGAIN || st == SHMREPL_E_EOF || st == SHMREPL_E_CORRUPT);
  if (st == SHMREPL_E_CORRUPT) SHMREPL_FUZZ_CHECK(!error.empty());
  if (std::getenv("SHMREPL_FUZZ_VERBOSE") != nullptr)
    std::fprintf(stderr, "ring_image: consistent=%d expected=%zu read=%zu status=%d %s\n",
                 b.consistent ? 1 : 0, b.frames.size(), count, st, error.c_str());
  if (b.consistent) {
    std::size_t want = b.start == SHMREPL_START_OLDEST ? b.frames.size() : 0;
    SHMREPL_FUZZ_CHECK(count == want);
    SHMREPL_FUZZ_CHECK(st == (b.finished ? SHMREPL_E_EOF : SHMREPL_E_AGAIN));
  }
  // A second look after the end must not crash either; then give everything back.
  Frame f{};
  (void)reader->next(0, &f, &error);
  std::size_t held = reader->held();
  SHMREPL_FUZZ_CHECK(reader->release(held + 1) == SHMREPL_E_INVALID);
  SHMREPL_FUZZ_CHECK(reader->release(held) == SHMREPL_OK && reader->held() == 0);
  reader.reset();

  SHMREPL_FUZZ_CHECK(ours() == ours_before);  // detaching frees the slot it took
  return 0;
}
