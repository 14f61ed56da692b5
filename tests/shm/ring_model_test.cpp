// Model-based test: random operation sequences on one ring (writes of any size,
// split like the engine splits them; next; next_batch; partial releases; readers
// attaching and detaching) against a simple model: the log of records written, and
// per reader the next seq it must get and the views it holds. One thread drives
// both sides, the producer without blocking (try_reserve).
#include <gtest/gtest.h>
#include <rapidcheck.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <sstream>
#include <cstdio>
#include <string>
#include <vector>

#include "records.hpp"
#include "ring_helpers.hpp"
#include "shmrepl/shm/layout.hpp"
#include "shmrepl/shm/producer.hpp"
#include "shmrepl/shmrepl.h"

namespace {

using namespace shmrepl;

struct Written {
  shmrepl_stream_t stream;
  uint32_t flags;
  std::vector<std::byte> data;
};

struct ReaderCloser {
  void operator()(shmrepl_reader_t* r) const { shmrepl_reader_close(r); }
};

struct ModelReader {
  std::unique_ptr<shmrepl_reader_t, ReaderCloser> handle;
  std::optional<uint64_t> next_seq;  // unknown for START_OLDEST until it reads
  uint64_t max_first_seq = 0;        // START_OLDEST: where it may start at the latest
  bool starts_at_zero = false;       // START_OLDEST before anyone released
  std::deque<shmrepl_record_t> held;
};

// What the runs covered: checked once the property has run.
struct Coverage {
  uint64_t wraps = 0;       // a pad frame was written
  uint64_t full = 0;        // a reservation failed for want of space
  uint64_t split = 0;       // a write went out as several records
  uint64_t batches = 0;     // next_batch returned more than one record
  uint64_t late_oldest = 0; // a reader attached at the oldest record after others released
};
Coverage g_cov;

class RingModel {
 public:
  RingModel(uint64_t capacity, uint32_t max_payload) {
    name_ = test::unique_ring_name("model");
    p_ = shm::Producer::create(name_, {.capacity = capacity, .execution_id = 5, .max_payload = max_payload});
    max_data_ = test::max_output_data(*p_);
  }
  ~RingModel() {
    readers_.clear();  // close the readers before the ring goes
  }

  // Queues one write (split if needed) and pushes what fits into the ring.
  void write(std::vector<std::byte> bytes, bool text, shmrepl_stream_t stream) {
    auto parts = test::split_write(bytes, max_data_, text);
    if (parts.size() > 1) ++g_cov.split;
    for (const auto& part : parts) {
      RC_ASSERT(part.data.size() <= max_data_);
      pending_.push_back({stream, part.flags, {part.data.begin(), part.data.end()}});
    }
    flush();
  }

  void flush() {
    while (!pending_.empty()) {
      const Written& w = pending_.front();
      const uint64_t seq = log_.size();
      const std::size_t payload = records::output_size(w.data.size());
      // The model's own idea of where the frame goes.
      const uint64_t off = pos_ & (p_->capacity() - 1);
      const bool pad = shm::frame_size(payload) > p_->capacity() - off;
      if (!test::try_write_output(*p_, {5, seq, seq * 10}, w.stream, w.data, w.flags)) {
        ++g_cov.full;
        // Never full while every reader has read and released everything.
        bool all_caught_up = !readers_.empty();
        for (auto& r : readers_) all_caught_up &= r.next_seq == log_.size() && r.held.empty();
        RC_ASSERT(!all_caught_up);
        return;
      }
      if (pad) {
        ++g_cov.wraps;
        pos_ += p_->capacity() - off;
      }
      pos_ += shm::frame_size(payload);
      RC_ASSERT(p_->write_pos() == pos_);
      log_.push_back(std::move(pending_.front()));
      pending_.pop_front();
    }
  }

  void attach(bool newest) {
    if (readers_.size() >= 4) return;
    ModelReader m;
    shmrepl_reader_options_t opts{sizeof opts, newest ? 1u : 0u};
    shmrepl_reader_t* h = nullptr;
    RC_ASSERT(shmrepl_reader_open(name_.c_str(), &opts, &h) == SHMREPL_OK);
    m.handle.reset(h);
    if (newest) {
      m.next_seq = log_.size();
      any_newest_ = true;
    } else {
      // It starts no later than what every other reader still holds.
      m.max_first_seq = log_.size();
      for (auto& r : readers_) {
        if (!r.next_seq) continue;
        uint64_t first = r.held.empty() ? *r.next_seq : r.held.front().seq;
        m.max_first_seq = std::min(m.max_first_seq, first);
      }
      m.starts_at_zero = !any_release_ && !any_newest_;
      if (any_release_) ++g_cov.late_oldest;
    }
    readers_.push_back(std::move(m));
  }

  void detach(std::size_t i) {
    ModelReader& r = readers_[i % readers_.size()];
    check_views(r);
    if (!r.held.empty()) any_release_ = true;
    readers_.erase(readers_.begin() + static_cast<std::ptrdiff_t>(i % readers_.size()));
    flush();
  }

  void next(std::size_t i) {
    ModelReader& r = readers_[i % readers_.size()];
    shmrepl_record_t rec{};
    shmrepl_status_t st = shmrepl_reader_next(r.handle.get(), 0, &rec);
    if (!available(r) || (!r.next_seq && st != SHMREPL_OK)) {
      RC_ASSERT(st == nothing_status());
      if (!r.next_seq) r.next_seq = log_.size();
      return;
    }
    RC_ASSERT(st == SHMREPL_OK);
    accept(r, rec);
  }

  void next_batch(std::size_t i, std::size_t max) {
    ModelReader& r = readers_[i % readers_.size()];
    std::vector<shmrepl_record_t> recs(max);
    std::size_t n = 12345;
    shmrepl_status_t st = shmrepl_reader_next_batch(r.handle.get(), recs.data(), max, &n, 0);
    if (!available(r) || (!r.next_seq && st != SHMREPL_OK)) {
      RC_ASSERT(st == nothing_status());
      RC_ASSERT(n == 0u);
      if (!r.next_seq) r.next_seq = log_.size();
      return;
    }
    RC_ASSERT(st == SHMREPL_OK);
    RC_ASSERT(n >= 1u);
    for (std::size_t k = 0; k < n; ++k) accept(r, recs[k]);
    // Everything committed is ready: a batch takes all of it up to max.
    RC_ASSERT(n == max || *r.next_seq == log_.size());
    if (n > 1) ++g_cov.batches;
  }

  void release(std::size_t i, std::size_t k) {
    ModelReader& r = readers_[i % readers_.size()];
    check_views(r);
    shmrepl_status_t st = shmrepl_reader_release(r.handle.get(), k);
    if (k > r.held.size()) {
      RC_ASSERT(st == SHMREPL_E_INVALID);
    } else {
      RC_ASSERT(st == SHMREPL_OK);
      r.held.erase(r.held.begin(), r.held.begin() + static_cast<std::ptrdiff_t>(k));
      if (k > 0) any_release_ = true;
    }
    RC_ASSERT(shmrepl_reader_held(r.handle.get()) == r.held.size());
    flush();
  }

  // Everything pending goes through; the ring finishes; every reader reads to EOF.
  void drain() {
    if (readers_.empty()) attach(false);
    for (int rounds = 0; !pending_.empty(); ++rounds) {
      RC_ASSERT(rounds < 100000);
      for (std::size_t i = 0; i < readers_.size(); ++i) {
        while (available(readers_[i])) next_batch(i, 16);
        release(i, readers_[i].held.size());
      }
      flush();
    }
    // Every stream ends with a FINISHED record (a ring finished without one is
    // E_CORRUPT); the readers make room for it first.
    for (std::size_t i = 0; i < readers_.size(); ++i) release(i, readers_[i].held.size());
    std::vector<std::byte> fin;
    records::encode_finished(fin, {5, log_.size(), log_.size() * 10}, SHMREPL_FINISH_OK, 0, 1);
    p_->write(fin, 0, true);
    p_->finish();
    finished_ = true;
    for (std::size_t i = 0; i < readers_.size(); ++i) {
      ModelReader& r = readers_[i];
      shmrepl_record_t rec{};
      for (;;) {
        RC_ASSERT(shmrepl_reader_next(r.handle.get(), 0, &rec) == SHMREPL_OK);
        if (rec.kind == static_cast<uint32_t>(SHMREPL_RECORD_FINISHED)) break;
        accept(r, rec);
      }
      RC_ASSERT(rec.seq == log_.size());
      if (!r.next_seq) r.next_seq = log_.size();  // started at the end
      RC_ASSERT(shmrepl_reader_next(r.handle.get(), 0, &rec) == SHMREPL_E_EOF);
      RC_ASSERT(r.next_seq == log_.size());
      check_views(r);
    }
  }

  std::size_t readers() const { return readers_.size(); }
  std::size_t held(std::size_t i) const { return readers_[i % readers_.size()].held.size(); }
  std::size_t max_data() const { return max_data_; }
  uint64_t capacity() const { return p_->capacity(); }

 private:
  // Might the reader have a record? For a START_OLDEST reader that has not read yet
  // only the ring knows; otherwise the model does.
  bool available(const ModelReader& r) const { return !r.next_seq || *r.next_seq < log_.size(); }
  shmrepl_status_t nothing_status() const { return finished_ ? SHMREPL_E_EOF : SHMREPL_E_AGAIN; }

  void accept(ModelReader& r, const shmrepl_record_t& rec) {
    RC_ASSERT(rec.kind == static_cast<uint32_t>(SHMREPL_RECORD_OUTPUT));
    RC_ASSERT(rec.execution_id == 5u);
    if (!r.next_seq) {  // the first record of a START_OLDEST reader
      RC_ASSERT(rec.seq <= r.max_first_seq);
      if (r.starts_at_zero) RC_ASSERT(rec.seq == 0u);
      r.next_seq = rec.seq;
    }
    RC_ASSERT(rec.seq == *r.next_seq);
    RC_ASSERT(rec.seq < log_.size());
    check_record(rec);
    ++*r.next_seq;
    r.held.push_back(rec);
  }

  void check_record(const shmrepl_record_t& rec) const {
    const Written& w = log_[rec.seq];
    RC_ASSERT(rec.stream == static_cast<uint32_t>(w.stream));
    RC_ASSERT(rec.flags == w.flags);
    RC_ASSERT(rec.timestamp_ns == rec.seq * 10);
    RC_ASSERT(rec.data_len == w.data.size());
    const bool same = w.data.empty() || std::memcmp(rec.data, w.data.data(), w.data.size()) == 0;
    RC_ASSERT(same);
  }

  // Held views must still show their records: the producer never overwrote them.
  void check_views(const ModelReader& r) const {
    for (const auto& rec : r.held) check_record(rec);
  }

  std::string name_;
  std::unique_ptr<shm::Producer> p_;
  std::size_t max_data_ = 0;
  uint64_t pos_ = 0;
  std::vector<Written> log_;
  std::deque<Written> pending_;
  std::vector<ModelReader> readers_;
  bool any_release_ = false;
  bool any_newest_ = false;
  bool finished_ = false;
};

std::vector<std::byte> make_bytes(uint64_t seed, std::size_t len, bool text) {
  test::Rng rng(seed);
  std::vector<std::byte> v;
  if (text) {
    std::string s = test::random_utf8(rng, len);
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    v.assign(p, p + s.size());
  } else {
    v.resize(len);
    rng.fill(v.data(), len);
  }
  return v;
}

void run_model() {
  const Coverage before = g_cov;
  const uint64_t capacity = *rc::gen::element<uint64_t>(4096, 8192);
  const uint32_t max_payload = *rc::gen::element<uint32_t>(0, 200, 120);
  RingModel m(capacity, max_payload);
  if (*rc::gen::inRange(0, 4) != 0) m.attach(false);
  const int ops = *rc::gen::inRange(1, 200);
  for (int op = 0; op < ops; ++op) {
    const int kind = *rc::gen::inRange(0, 100);
    if (kind < 35) {
      std::size_t len;
      const int size_class = *rc::gen::inRange(0, 20);
      if (size_class < 12) {
        len = *rc::gen::inRange<std::size_t>(0, 100);
      } else if (size_class < 17) {
        len = *rc::gen::inRange<std::size_t>(0, m.max_data() + 1);
      } else {
        len = *rc::gen::inRange<std::size_t>(m.max_data(), 3 * m.capacity());
      }
      const bool text = *rc::gen::arbitrary<bool>();
      const auto stream = *rc::gen::element(SHMREPL_STREAM_STDOUT, SHMREPL_STREAM_STDERR);
      m.write(make_bytes(*rc::gen::arbitrary<uint64_t>(), len, text), text, stream);
    } else if (m.readers() == 0 || kind < 40) {
      m.attach(*rc::gen::inRange(0, 3) == 0);
    } else if (kind < 55) {
      m.next(*rc::gen::inRange<std::size_t>(0, m.readers()));
    } else if (kind < 70) {
      m.next_batch(*rc::gen::inRange<std::size_t>(0, m.readers()), *rc::gen::inRange<std::size_t>(1, 20));
    } else if (kind < 95) {
      const std::size_t i = *rc::gen::inRange<std::size_t>(0, m.readers());
      const std::size_t k = *rc::gen::inRange<std::size_t>(0, m.held(i) + 2);  // sometimes too many
      m.release(i, k);
    } else {
      m.detach(*rc::gen::inRange<std::size_t>(0, m.readers()));
    }
  }
  m.drain();
  RC_CLASSIFY(g_cov.wraps > before.wraps, "wrapped");
  RC_CLASSIFY(g_cov.full > before.full, "ring full");
  RC_CLASSIFY(g_cov.split > before.split, "split write");
}

TEST(RingModel, MatchesTheModel) {
  g_cov = {};
  rc::detail::TestParams params = rc::detail::configuration().testParams;
  params.maxSuccess = static_cast<int>(std::max(50.0, 300 * test::test_scale()));
  const rc::detail::TestMetadata meta{"RingModel/MatchesTheModel", "ring vs model"};
  auto result = rc::detail::checkTestable([] { run_model(); }, meta, params);
  std::ostringstream ss;
  rc::detail::printResultMessage(result, ss);
  ASSERT_TRUE(result.template is<rc::detail::SuccessResult>()) << ss.str();
  std::printf("%s\n", ss.str().c_str());
  std::printf("coverage: %llu wraps, %llu full, %llu split writes, %llu batches, %llu late oldest attaches\n",
              static_cast<unsigned long long>(g_cov.wraps), static_cast<unsigned long long>(g_cov.full),
              static_cast<unsigned long long>(g_cov.split), static_cast<unsigned long long>(g_cov.batches),
              static_cast<unsigned long long>(g_cov.late_oldest));
  // The interesting cases were reached, not just allowed for.
  EXPECT_GT(g_cov.wraps, 0u);
  EXPECT_GT(g_cov.full, 0u);
  EXPECT_GT(g_cov.split, 0u);
  EXPECT_GT(g_cov.batches, 0u);
  EXPECT_GT(g_cov.late_oldest, 0u);
}

}  // namespace
