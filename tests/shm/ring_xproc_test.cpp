// Cross-process: a forked producer writes millions of Output records of random
// sizes (some split into several records) through a small ring; two forked readers
// check order, gap-free seq, split flags, and a digest of every byte against the
// producer's. The small ring makes it wrap and fill, so both sides sleep on futexes.
// SHMREPL_TEST_SCALE scales the record count (e.g. 0.05 under sanitizers).
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "records.hpp"
#include "ring_helpers.hpp"
#include "shmrepl/shm/producer.hpp"
#include "shmrepl/shmrepl.h"

namespace {

using namespace shmrepl;

struct Result {
  uint64_t records = 0;
  uint64_t bytes = 0;
  uint64_t digest = 0;
  int32_t ok = 0;
  char message[240] = {};
};

// A word-at-a-time digest (FNV-style multiply, then a final mix per record).
uint64_t digest(uint64_t h, const void* p, std::size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, b + i, 8);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 29;
  }
  for (; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  return (h ^ n) * 0x9E3779B97F4A7C15ull;
}

void send(int fd, const Result& r) {
  if (::write(fd, &r, sizeof r) != static_cast<ssize_t>(sizeof r)) ::_exit(5);
}

Result fail(uint64_t records, const std::string& text) {
  Result r;
  r.records = records;
  std::snprintf(r.message, sizeof r.message, "%s", text.c_str());
  return r;
}

// The producer: waits for `readers` readers, then writes `n` writes (one or more records each).
[[noreturn]] void producer_main(const std::string& name, uint64_t n, int readers, int ready_fd, int result_fd) {
  ::alarm(300);
  auto p = shm::Producer::create(name, {.capacity = 64 * 1024, .execution_id = 99, .max_payload = 0});
  p->release_name();
  char c = 1;
  if (::write(ready_fd, &c, 1) != 1) ::_exit(4);
  while (p->attached_readers() < static_cast<std::size_t>(readers)) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  test::Rng rng(12345);
  const std::size_t max_data = test::max_output_data(*p);
  std::vector<std::byte> buf(3 * max_data + 1);
  Result res;
  res.digest = test::kFnvOffset;
  uint64_t seq = 0;
  for (uint64_t w = 0; w < n; ++w) {
    uint64_t pick = rng.below(1000);
    std::size_t len = pick < 900 ? rng.below(65) : pick < 999 ? 64 + rng.below(1000) : max_data + rng.below(2 * max_data);
    rng.fill(buf.data(), len);
    auto stream = (pick & 1) != 0 ? SHMREPL_STREAM_STDERR : SHMREPL_STREAM_STDOUT;
    for (const auto& part : test::split_write({buf.data(), len}, max_data, false)) {
      test::write_output(*p, {99, seq, seq}, stream, part.data, part.flags);
      res.digest = digest(res.digest, part.data.data(), part.data.size());
      res.bytes += part.data.size();
      ++seq;
    }
  }
  std::vector<std::byte> fin;
  records::encode_finished(fin, {99, seq, seq}, SHMREPL_FINISH_OK, 0, 1);
  p->write(fin);
  p->finish();
  res.records = seq + 1;
  res.ok = 1;
  send(result_fd, res);
  ::_exit(0);
}

// A reader: batch mode releases everything after each batch; single mode holds a
// few records at a time and releases them before it waits.
[[noreturn]] void reader_main(const std::string& name, bool batch, int result_fd) {
  ::alarm(300);
  shmrepl_reader_t* r = nullptr;
  if (shmrepl_reader_open(name.c_str(), nullptr, &r) != SHMREPL_OK) {
    send(result_fd, fail(0, std::string("open: ") + shmrepl_last_error()));
    ::_exit(1);
  }
  Result res;
  res.digest = test::kFnvOffset;
  uint64_t seq = 0;
  bool in_split = false;
  bool finished = false;
  test::Rng rng(batch ? 1 : 2);
  std::vector<shmrepl_record_t> recs(64);
  auto check = [&](const shmrepl_record_t& rec) -> std::string {
    if (finished) return "a record after FINISHED";
    if (rec.seq != seq) return "seq " + std::to_string(rec.seq) + ", expected " + std::to_string(seq);
    if (rec.execution_id != 99 || rec.timestamp_ns != seq) return "bad meta at seq " + std::to_string(seq);
    ++seq;
    if (rec.kind == SHMREPL_RECORD_FINISHED) {
      finished = true;
      return in_split ? "FINISHED inside a split write" : "";
    }
    if (rec.kind != SHMREPL_RECORD_OUTPUT) return "unexpected kind " + std::to_string(rec.kind);
    bool more = (rec.flags & SHMREPL_FLAG_MORE) != 0, cont = (rec.flags & SHMREPL_FLAG_CONTINUED) != 0;
    if (cont != in_split) return "split flags out of sequence at seq " + std::to_string(rec.seq);
    in_split = more;
    res.digest = digest(res.digest, rec.data, rec.data_len);
    res.bytes += rec.data_len;
    return "";
  };
  for (;;) {
    std::size_t n = 0;
    shmrepl_status_t st;
    if (batch) {
      st = shmrepl_reader_next_batch(r, recs.data(), recs.size(), &n, -1);
    } else {
      st = shmrepl_reader_next(r, 0, &recs[0]);
      if (st == SHMREPL_E_AGAIN) {
        shmrepl_reader_release(r, shmrepl_reader_held(r));
        st = shmrepl_reader_next(r, -1, &recs[0]);
      }
      n = st == SHMREPL_OK ? 1 : 0;
    }
    if (st == SHMREPL_E_EOF) break;
    if (st != SHMREPL_OK) {
      send(result_fd, fail(seq, std::string("next: ") + shmrepl_status_str(st) + ": " + shmrepl_last_error()));
      ::_exit(1);
    }
    for (std::size_t k = 0; k < n; ++k) {
      std::string err = check(recs[k]);
      if (!err.empty()) {
        send(result_fd, fail(seq, err));
        ::_exit(1);
      }
    }
    std::size_t release = batch ? n : (shmrepl_reader_held(r) >= 1 + rng.below(10) ? shmrepl_reader_held(r) : 0);
    if (shmrepl_reader_release(r, release) != SHMREPL_OK) {
      send(result_fd, fail(seq, "release failed"));
      ::_exit(1);
    }
  }
  res.records = seq;
  res.ok = finished ? 1 : 0;
  if (!finished) std::snprintf(res.message, sizeof res.message, "EOF without FINISHED");
  shmrepl_reader_close(r);
  send(result_fd, res);
  ::_exit(0);
}

Result receive(int fd) {
  Result r;
  ssize_t got = ::read(fd, &r, sizeof r);
  if (got != static_cast<ssize_t>(sizeof r)) return fail(0, "the process died without a result");
  return r;
}

TEST(RingCrossProcess, ProducerAndTwoReadersAgreeOnEveryByte) {
  const uint64_t n = static_cast<uint64_t>(2'000'000 * test::test_scale());
  const std::string name = test::unique_ring_name("xproc");
  int ready[2], results[3][2];
  ASSERT_EQ(::pipe(ready), 0);
  for (auto& p : results) ASSERT_EQ(::pipe(p), 0);
  const auto t0 = std::chrono::steady_clock::now();
  pid_t producer = ::fork();
  ASSERT_GE(producer, 0);
  if (producer == 0) producer_main(name, n, 2, ready[1], results[0][1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  pid_t readers[2];
  for (int i = 0; i < 2; ++i) {
    readers[i] = ::fork();
    ASSERT_GE(readers[i], 0);
    if (readers[i] == 0) reader_main(name, i == 0, results[i + 1][1]);
  }
  for (auto& p : results) ::close(p[1]);
  Result prod = receive(results[0][0]);
  Result rd[2] = {receive(results[1][0]), receive(results[2][0])};
  for (pid_t pid : {producer, readers[0], readers[1]}) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "pid " << pid << " status " << status;
  }
  ::shm_unlink(("/" + name).c_str());
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(prod.ok) << prod.message;
  EXPECT_GE(prod.records, n + 1);
  for (const Result& r : rd) {
    ASSERT_TRUE(r.ok) << r.message << " (after " << r.records << " records)";
    EXPECT_EQ(r.records, prod.records);
    EXPECT_EQ(r.bytes, prod.bytes);
    EXPECT_EQ(r.digest, prod.digest);
  }
  std::printf("%llu records (%llu MB of data) through a 64 KiB ring to 2 readers in %.2f s\n",
              static_cast<unsigned long long>(prod.records), static_cast<unsigned long long>(prod.bytes >> 20), secs);
}

}  // namespace
