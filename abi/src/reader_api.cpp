// The reader side of the C ABI: a thin, exception-free layer over shm::Reader and
// the record verifier.
#include <flatbuffers/flatbuffers.h>

#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>

#include "client.hpp"
#include "records.hpp"
#include "rings.hpp"
#include "shmrepl/shm/producer.hpp"  // valid_ring_name
#include "shmrepl/shm/reader.hpp"
#include "shmrepl/shmrepl.h"
#include "shmrepl/shmrepl_generated.h"
#include "status.hpp"

// The record view's layout is ABI: bindings mirror it field by field.
static_assert(sizeof(shmrepl_record_t) == 104);
static_assert(offsetof(shmrepl_record_t, data) == 40 && offsetof(shmrepl_record_t, raw) == 56);

struct shmrepl_reader {
  std::unique_ptr<shmrepl::shm::Reader> ring;
  std::string error;
  bool handed_out = false;                           // some record was handed out
  uint32_t last_kind = SHMREPL_RECORD_UNKNOWN;       // the kind of the last one
  // Set while a call runs: a second thread is refused, not let into the reader's
  // unsynchronized state (the acquire/release pair orders successive users).
  mutable std::atomic<bool> in_use{false};
};

namespace {

using shmrepl::abi::fail;
using shmrepl::abi::guarded;

class Exclusive {
 public:
  explicit Exclusive(const shmrepl_reader* r) noexcept
      : r_(r), ok_(!r->in_use.exchange(true, std::memory_order_acquire)) {}
  ~Exclusive() {
    if (ok_) r_->in_use.store(false, std::memory_order_release);
  }
  Exclusive(const Exclusive&) = delete;
  Exclusive& operator=(const Exclusive&) = delete;
  bool ok() const noexcept { return ok_; }

 private:
  const shmrepl_reader* r_;
  bool ok_;
};

shmrepl_status_t busy() { return fail(SHMREPL_E_STATE, "reader used from two threads at once"); }

// Every stream, background rings included, ends with a FINISHED record: a ring marked
// finished without one was cut short (or tampered with).
shmrepl_status_t end_of_stream(shmrepl_reader* r) {
  bool ends_well = false;
  if (r->handed_out) {
    ends_well = r->last_kind == SHMREPL_RECORD_FINISHED;
  } else {
    // Attached after the end (or everything was released by others): judge by the
    // ring's newest frame.
    shmrepl::shm::Frame last{};
    shmrepl_record_t rec{};
    ends_well = r->ring->newest_frame(&last) &&
                shmrepl::records::decode(last.payload, last.flags, &rec) == SHMREPL_OK &&
                rec.kind == SHMREPL_RECORD_FINISHED;
  }
  if (!ends_well)
    return fail(SHMREPL_E_CORRUPT, "the ring is marked finished but holds no FINISHED record "
                                   "(the output was cut short or the ring was tampered with)");
  return SHMREPL_E_EOF;
}

shmrepl_status_t next_one(shmrepl_reader* r, int64_t timeout_ns, shmrepl_record_t* out) {
  shmrepl::shm::Frame frame{};
  shmrepl_status_t st = r->ring->next(timeout_ns, &frame, &r->error);
  if (st == SHMREPL_E_EOF) return end_of_stream(r);
  if (st != SHMREPL_OK) {
    if (st != SHMREPL_E_AGAIN && st != SHMREPL_E_TIMEOUT) shmrepl::abi::set_error(r->error);
    return st;
  }
  st = shmrepl::records::decode(frame.payload, frame.flags, out);
  if (st != SHMREPL_OK) {
    // Not handed out: a caller counting its records (and next_batch, which stops
    // before it) would otherwise release the wrong ones. The error repeats.
    r->ring->unread_last();
    return fail(st, "record failed verification");
  }
  r->handed_out = true;
  r->last_kind = out->kind;
  return SHMREPL_OK;
}

const shmrepl::fb::Error* error_body(const shmrepl_record_t* record) {
  if (record == nullptr || record->kind != SHMREPL_RECORD_ERROR || record->raw == nullptr) return nullptr;
  flatbuffers::Verifier verifier(record->raw, record->raw_len);
  if (!shmrepl::fb::VerifyRecordBuffer(verifier)) return nullptr;
  return shmrepl::fb::GetRecord(record->raw)->body_as_Error();
}

void set_bytes(shmrepl_bytes_t* out, const flatbuffers::String* s) {
  if (out == nullptr) return;
  out->ptr = s != nullptr ? reinterpret_cast<const uint8_t*>(s->data()) : nullptr;
  out->len = s != nullptr ? s->size() : 0;
}

struct Registry {
  std::mutex mu;
  std::map<std::string, std::shared_ptr<shmrepl::abi::RingEntry>> rings;
};
Registry& registry() {
  static auto* r = new Registry();  // never destroyed: handles may outlive static destruction
  return *r;
}

// A ring nobody handed this process: the engine at the default socket (as
// shmrepl_client_connect with NULL options finds it, but never started for this)
// gives its descriptor. -1 with *status set if it cannot.
int ask_engine(const std::string& name, shmrepl_status_t* status) {
  shmrepl_client_options_t o{};
  o.struct_size = sizeof o;
  o.autostart = SHMREPL_AUTOSTART_OFF;
  std::shared_ptr<shmrepl::client::Connection> conn;
  *status = shmrepl::client::connect(&o, &conn);
  if (*status != SHMREPL_OK) return -1;
  int fd = -1;
  namespace ctl = shmrepl::control::ctl;
  *status = conn->request([&](uint64_t id) { return shmrepl::control::open_ring(id, name); }, ctl::Body::Ok,
                          [&](const ctl::Message*) { fd = conn->take_received_fd(); });
  if (*status == SHMREPL_OK && fd < 0)
    *status = fail(SHMREPL_E_PROTOCOL, "the engine sent no descriptor for ring '" + name + "'");
  return *status == SHMREPL_OK ? fd : -1;
}

}  // namespace

namespace shmrepl::abi {

void register_ring(const std::string& name, std::shared_ptr<RingEntry> entry) noexcept {
  std::shared_ptr<RingEntry> old;  // closed after the lock
  try {
    std::lock_guard l(registry().mu);
    std::shared_ptr<RingEntry>& at = registry().rings[name];
    old = std::move(at);
    at = std::move(entry);
  } catch (...) {
  }
}

void forget_ring(const std::string& name) noexcept {
  std::shared_ptr<RingEntry> old;
  std::lock_guard l(registry().mu);
  auto it = registry().rings.find(name);
  if (it == registry().rings.end()) return;
  old = std::move(it->second);
  registry().rings.erase(it);
}

}  // namespace shmrepl::abi

extern "C" {

SHMREPL_API shmrepl_status_t shmrepl_reader_open(const char* ring_name,
                                                 const shmrepl_reader_options_t* options,
                                                 shmrepl_reader_t** out) {
  return guarded([&] {
    if (out == nullptr) return fail(SHMREPL_E_INVALID, "out is NULL");
    *out = nullptr;
    if (ring_name == nullptr) return fail(SHMREPL_E_INVALID, "ring_name is NULL");
    shmrepl_reader_start_t start = SHMREPL_START_OLDEST;
    if (options != nullptr) {
      if (options->struct_size < offsetof(shmrepl_reader_options_t, start) + sizeof(uint32_t))
        return fail(SHMREPL_E_INVALID, "options->struct_size is too small");
      if (options->start > SHMREPL_START_NEWEST) return fail(SHMREPL_E_INVALID, "unknown options->start");
      start = static_cast<shmrepl_reader_start_t>(options->start);
    }
    auto r = std::make_unique<shmrepl_reader>();
    shmrepl_status_t st = SHMREPL_OK;
    const std::string name = ring_name;
    std::shared_ptr<shmrepl::abi::RingEntry> handed;
    {
      std::lock_guard l(registry().mu);
      if (auto it = registry().rings.find(name); it != registry().rings.end()) handed = it->second;
    }
    if (handed != nullptr) {
      // A ring this process was handed: its descriptor, no name, no engine; mapped
      // by the first of its readers and kept for the next ones.
      std::shared_ptr<shmrepl::shm::RingMap> map;
      {
        std::lock_guard l(handed->mu);
        if (handed->map == nullptr) handed->map = shmrepl::shm::RingMap::map(handed->fd, name, true, &st, &r->error);
        map = handed->map;
      }
      if (map == nullptr) return fail(st, r->error);
      r->ring = shmrepl::shm::Reader::open_mapped(std::move(map), start, &st, &r->error);
      if (st != SHMREPL_OK) return fail(st, r->error);
      *out = r.release();
      return SHMREPL_OK;
    }
    struct stat named {};
    if (!shmrepl::shm::valid_ring_name(name) || ::stat(("/dev/shm/" + name).c_str(), &named) == 0) {
      // A named ring (tests, engines before sealed rings), or a bad name (refused there).
      r->ring = shmrepl::shm::Reader::open(name, start, &st, &r->error);
    } else {
      // A late reader: the engine holds every live ring and hands it over.
      const int fd = ask_engine(name, &st);
      if (fd < 0) {
        if (st == SHMREPL_E_CONNECT)
          return fail(SHMREPL_E_NOT_FOUND, "no ring named '" + name + "' in /dev/shm, and no engine to ask: " +
                                               shmrepl::abi::t_last_error_cstr());
        return st;  // the last error says why
      }
      r->ring = shmrepl::shm::Reader::open_fd(fd, name, start, &st, &r->error);
      ::close(fd);
    }
    if (st != SHMREPL_OK) return fail(st, r->error);
    *out = r.release();
    return SHMREPL_OK;
  });
}

SHMREPL_API void shmrepl_reader_close(shmrepl_reader_t* reader) {
  shmrepl::abi::clear_error();
  delete reader;
}

SHMREPL_API shmrepl_status_t shmrepl_reader_next(shmrepl_reader_t* reader, int64_t timeout_ns,
                                                 shmrepl_record_t* out) {
  return guarded([&] {
    if (reader == nullptr || out == nullptr) return fail(SHMREPL_E_INVALID, "reader or out is NULL");
    Exclusive only(reader);
    if (!only.ok()) return busy();
    return next_one(reader, timeout_ns, out);
  });
}

SHMREPL_API shmrepl_status_t shmrepl_reader_next_batch(shmrepl_reader_t* reader,
                                                       shmrepl_record_t* out, size_t max,
                                                       size_t* n, int64_t timeout_ns) {
  return guarded([&] {
    if (n != nullptr) *n = 0;
    if (reader == nullptr || out == nullptr || n == nullptr || max == 0)
      return fail(SHMREPL_E_INVALID, "reader, out or n is NULL, or max is 0");
    Exclusive only(reader);
    if (!only.ok()) return busy();
    shmrepl_status_t st = next_one(reader, timeout_ns, &out[0]);
    if (st != SHMREPL_OK) return st;
    size_t got = 1;
    while (got < max && reader->ring->ready()) {
      st = next_one(reader, 0, &out[got]);
      if (st != SHMREPL_OK) break;  // reported by the next call
      ++got;
    }
    *n = got;
    return SHMREPL_OK;
  });
}

SHMREPL_API shmrepl_status_t shmrepl_reader_release(shmrepl_reader_t* reader, size_t n) {
  return guarded([&] {
    if (reader == nullptr) return fail(SHMREPL_E_INVALID, "reader is NULL");
    Exclusive only(reader);
    if (!only.ok()) return busy();
    shmrepl_status_t st = reader->ring->release(n);
    if (st != SHMREPL_OK) return fail(st, "release of more records than are held");
    return SHMREPL_OK;
  });
}

SHMREPL_API size_t shmrepl_reader_held(const shmrepl_reader_t* reader) {
  shmrepl::abi::clear_error();
  if (reader == nullptr) return 0;
  Exclusive only(reader);
  if (!only.ok()) {
    busy();
    return 0;
  }
  return reader->ring->held();
}

SHMREPL_API uint64_t shmrepl_reader_execution_id(const shmrepl_reader_t* reader) {
  shmrepl::abi::clear_error();
  return reader != nullptr ? reader->ring->execution_id() : 0;  // constant after open
}

SHMREPL_API shmrepl_status_t shmrepl_reader_mapping(const shmrepl_reader_t* reader,
                                                    const uint8_t** base, size_t* len) {
  return guarded([&] {
    if (reader == nullptr || base == nullptr || len == nullptr)
      return fail(SHMREPL_E_INVALID, "reader, base and len must not be NULL");
    *base = reinterpret_cast<const uint8_t*>(reader->ring->mapping_base());
    *len = reader->ring->mapping_size();
    return SHMREPL_OK;
  });
}

SHMREPL_API shmrepl_status_t shmrepl_record_error(const shmrepl_record_t* record,
                                                  shmrepl_bytes_t* ename,
                                                  shmrepl_bytes_t* evalue, size_t* n_lines) {
  return guarded([&] {
    const shmrepl::fb::Error* e = error_body(record);
    if (e == nullptr) return fail(SHMREPL_E_INVALID, "not a valid ERROR record");
    set_bytes(ename, e->ename());
    set_bytes(evalue, e->evalue());
    if (n_lines != nullptr) *n_lines = e->traceback() != nullptr ? e->traceback()->size() : 0;
    return SHMREPL_OK;
  });
}

SHMREPL_API shmrepl_status_t shmrepl_record_traceback_line(const shmrepl_record_t* record,
                                                           size_t index, shmrepl_bytes_t* line) {
  return guarded([&] {
    const shmrepl::fb::Error* e = error_body(record);
    if (e == nullptr || line == nullptr) return fail(SHMREPL_E_INVALID, "not a valid ERROR record");
    if (e->traceback() == nullptr || index >= e->traceback()->size())
      return fail(SHMREPL_E_INVALID, "traceback index out of range");
    set_bytes(line, e->traceback()->Get(static_cast<flatbuffers::uoffset_t>(index)));
    return SHMREPL_OK;
  });
}

}  // extern "C"
