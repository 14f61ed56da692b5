// The reader side of the C ABI: every status it documents, dead peers on both
// sides, late attach, several readers.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "records.hpp"
#include "ring_helpers.hpp"
#include "shmrepl/shm/layout.hpp"
#include "shmrepl/shm/producer.hpp"
#include "shmrepl/shm/sys.hpp"
#include "shmrepl/shmrepl.h"

namespace {

using namespace shmrepl;
using namespace std::chrono_literals;
using test::unique_ring_name;

struct ReaderCloser {
  void operator()(shmrepl_reader_t* r) const { shmrepl_reader_close(r); }
};
using ReaderPtr = std::unique_ptr<shmrepl_reader_t, ReaderCloser>;

ReaderPtr open_reader(const std::string& name, shmrepl_reader_start_t start = SHMREPL_START_OLDEST) {
  shmrepl_reader_options_t opts{sizeof(shmrepl_reader_options_t), static_cast<uint32_t>(start)};
  shmrepl_reader_t* r = nullptr;
  shmrepl_status_t st = shmrepl_reader_open(name.c_str(), &opts, &r);
  EXPECT_EQ(st, SHMREPL_OK) << shmrepl_last_error();
  return ReaderPtr(r);
}

shmrepl_status_t open_status(const char* name) {
  shmrepl_reader_t* r = reinterpret_cast<shmrepl_reader_t*>(0x1);  // must be reset to NULL
  shmrepl_status_t st = shmrepl_reader_open(name, nullptr, &r);
  EXPECT_EQ(r == nullptr, st != SHMREPL_OK);
  if (st != SHMREPL_OK) {
    EXPECT_STRNE(shmrepl_last_error(), "") << "status " << st;
  }
  shmrepl_reader_close(r);
  return st;
}

std::unique_ptr<shm::Producer> make_ring(const std::string& name, uint64_t capacity = 4096,
                                         uint64_t execution_id = 42) {
  return shm::Producer::create(name, {.capacity = capacity, .execution_id = execution_id, .max_payload = 0});
}

void put(shm::Producer& p, uint64_t seq, std::string_view text, uint32_t flags = 0,
         shmrepl_stream_t stream = SHMREPL_STREAM_STDOUT) {
  test::write_output(p, {p.execution_id(), seq, 1000 + seq}, stream, test::as_bytes(text), flags);
}

// Ends the stream the way every producer does: a FINISHED record, then the state.
void finish_ring(shm::Producer& p, uint64_t seq) {
  std::vector<std::byte> fin;
  records::encode_finished(fin, {p.execution_id(), seq, 0}, SHMREPL_FINISH_OK, 0, 1);
  p.write(fin, 0, true);
  p.finish();
}

std::string data_of(const shmrepl_record_t& rec) {
  return {reinterpret_cast<const char*>(rec.data), rec.data_len};
}

// A hand-made shared-memory object: what a foreign or broken peer leaves behind.
struct RawObject {
  std::string name;
  RawObject(std::string n, std::size_t size) : name(std::move(n)) {
    int fd = ::shm_open(("/" + name).c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::ftruncate(fd, static_cast<off_t>(size)), 0);
    ::close(fd);
  }
  ~RawObject() { ::shm_unlink(("/" + name).c_str()); }
  template <typename F>
  void edit(F f) {
    int fd = ::shm_open(("/" + name).c_str(), O_RDWR, 0);
    struct stat st {};
    ::fstat(fd, &st);
    void* p = ::mmap(nullptr, static_cast<std::size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    f(static_cast<std::byte*>(p));
    ::munmap(p, static_cast<std::size_t>(st.st_size));
  }
};

// ---- diagnostics ----------------------------------------------------------

TEST(ReaderApi, VersionAndStatusTexts) {
  EXPECT_STREQ(shmrepl_version(), "0.1.0");
  EXPECT_EQ(shmrepl_abi_version(), static_cast<uint32_t>(SHMREPL_ABI_VERSION));
  std::set<std::string> texts;
  const shmrepl_status_t all[] = {SHMREPL_OK, SHMREPL_E_INVALID, SHMREPL_E_NOT_FOUND, SHMREPL_E_AGAIN,
                                  SHMREPL_E_TIMEOUT, SHMREPL_E_EOF, SHMREPL_E_CORRUPT, SHMREPL_E_VERSION,
                                  SHMREPL_E_PRODUCER_DIED, SHMREPL_E_NO_SLOT, SHMREPL_E_NOMEM,
                                  SHMREPL_E_PERMISSION, SHMREPL_E_SYSTEM, SHMREPL_E_INTERNAL};
  for (shmrepl_status_t s : all) {
    ASSERT_NE(shmrepl_status_str(s), nullptr);
    texts.insert(shmrepl_status_str(s));
  }
  EXPECT_EQ(texts.size(), std::size(all));  // distinct
  EXPECT_NE(shmrepl_status_str(-12345), nullptr);
}

// ---- open ---------------------------------------------------------------------

TEST(ReaderApi, BadNames) {
  EXPECT_EQ(open_status("a/b"), SHMREPL_E_INVALID);
  EXPECT_EQ(open_status("/shmrepl.1"), SHMREPL_E_INVALID);
  EXPECT_EQ(open_status("../etc/passwd"), SHMREPL_E_INVALID);
  EXPECT_EQ(open_status(""), SHMREPL_E_INVALID);
  EXPECT_EQ(open_status(std::string(201, 'a').c_str()), SHMREPL_E_INVALID);
  EXPECT_EQ(open_status("tab\there"), SHMREPL_E_INVALID);
  EXPECT_EQ(open_status(nullptr), SHMREPL_E_INVALID);
  EXPECT_EQ(shmrepl_reader_open("x", nullptr, nullptr), SHMREPL_E_INVALID);
}

TEST(ReaderApi, NotFound) {
  EXPECT_EQ(open_status(unique_ring_name("missing").c_str()), SHMREPL_E_NOT_FOUND);
  EXPECT_EQ(open_status(std::string(200, 'z').c_str()), SHMREPL_E_NOT_FOUND);
}

TEST(ReaderApi, BadOptions) {
  std::string name = unique_ring_name("opt");
  auto p = make_ring(name);
  shmrepl_reader_t* r = nullptr;
  shmrepl_reader_options_t small{4, 0};
  EXPECT_EQ(shmrepl_reader_open(name.c_str(), &small, &r), SHMREPL_E_INVALID);
  shmrepl_reader_options_t bad_start{sizeof(shmrepl_reader_options_t), 7};
  EXPECT_EQ(shmrepl_reader_open(name.c_str(), &bad_start, &r), SHMREPL_E_INVALID);
  EXPECT_EQ(r, nullptr);
  // A larger struct from a newer caller is fine.
  struct {
    shmrepl_reader_options_t base;
    uint64_t future;
  } bigger{{sizeof bigger, SHMREPL_START_NEWEST}, 0};
  ASSERT_EQ(shmrepl_reader_open(name.c_str(), &bigger.base, &r), SHMREPL_OK);
  shmrepl_reader_close(r);
}

TEST(ReaderApi, ForeignObjects) {
  const std::size_t full = shm::kDataOffset + 4096;
  {  // too small to hold a header
    RawObject o(unique_ring_name("trunc"), 100);
    EXPECT_EQ(open_status(o.name.c_str()), SHMREPL_E_CORRUPT);
  }
  {  // empty (ftruncate never happened)
    RawObject o(unique_ring_name("empty"), 0);
    EXPECT_EQ(open_status(o.name.c_str()), SHMREPL_E_CORRUPT);
  }
  {  // zeros: no magic
    RawObject o(unique_ring_name("zero"), full);
    EXPECT_EQ(open_status(o.name.c_str()), SHMREPL_E_CORRUPT);
  }
  {  // wrong magic
    RawObject o(unique_ring_name("magic"), full);
    o.edit([](std::byte* b) { std::memcpy(b, "NOTARING", 8); });
    EXPECT_EQ(open_status(o.name.c_str()), SHMREPL_E_CORRUPT);
  }
  {  // a newer layout
    RawObject o(unique_ring_name("ver"), full);
    o.edit([](std::byte* b) {
      auto* h = reinterpret_cast<shm::RingHeader*>(b);
      h->magic = shm::kMagic;
      h->layout_version = shm::kLayoutVersion + 1;
    });
    EXPECT_EQ(open_status(o.name.c_str()), SHMREPL_E_VERSION);
  }
  {  // a header that claims more data than the object holds
    std::string name = unique_ring_name("short");
    auto p = make_ring(name, 1 << 16);
    p->release_name();
    int fd = ::shm_open(("/" + name).c_str(), O_RDWR, 0);
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(shm::kDataOffset + 4096)), 0);
    ::close(fd);
    EXPECT_EQ(open_status(name.c_str()), SHMREPL_E_CORRUPT);
    p.reset();
    ::shm_unlink(("/" + name).c_str());
  }
  {  // positions beyond the capacity
    std::string name = unique_ring_name("pos");
    auto p = make_ring(name);
    int fd = ::shm_open(("/" + name).c_str(), O_RDWR, 0);
    void* m = ::mmap(nullptr, full, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ::close(fd);
    auto* block = reinterpret_cast<shm::ProducerBlock*>(static_cast<std::byte*>(m) + shm::kProducerOffset);
    block->write_pos.store(3 * 4096);
    EXPECT_EQ(open_status(name.c_str()), SHMREPL_E_CORRUPT);
    block->write_pos.store(0);
    EXPECT_EQ(open_status(name.c_str()), SHMREPL_OK);
    ::munmap(m, full);
  }
}

TEST(ReaderApi, NoFreeSlot) {
  std::string name = unique_ring_name("slots");
  auto p = make_ring(name);
  std::vector<ReaderPtr> readers;
  for (std::size_t i = 0; i < shm::kReaderSlots; ++i) readers.push_back(open_reader(name));
  EXPECT_EQ(p->attached_readers(), shm::kReaderSlots);
  EXPECT_EQ(open_status(name.c_str()), SHMREPL_E_NO_SLOT);
  readers.pop_back();
  EXPECT_EQ(open_status(name.c_str()), SHMREPL_OK);
}

// ---- null arguments ----------------------------------------------------------

TEST(ReaderApi, NullArguments) {
  std::string name = unique_ring_name("null");
  auto p = make_ring(name);
  auto r = open_reader(name);
  shmrepl_record_t rec{};
  std::size_t n = 99;
  EXPECT_EQ(shmrepl_reader_next(nullptr, 0, &rec), SHMREPL_E_INVALID);
  EXPECT_EQ(shmrepl_reader_next(r.get(), 0, nullptr), SHMREPL_E_INVALID);
  EXPECT_EQ(shmrepl_reader_next_batch(nullptr, &rec, 1, &n, 0), SHMREPL_E_INVALID);
  EXPECT_EQ(n, 0u);
  n = 99;
  EXPECT_EQ(shmrepl_reader_next_batch(r.get(), nullptr, 1, &n, 0), SHMREPL_E_INVALID);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(shmrepl_reader_next_batch(r.get(), &rec, 0, &n, 0), SHMREPL_E_INVALID);
  EXPECT_EQ(shmrepl_reader_next_batch(r.get(), &rec, 1, nullptr, 0), SHMREPL_E_INVALID);
  EXPECT_EQ(shmrepl_reader_release(nullptr, 0), SHMREPL_E_INVALID);
  EXPECT_EQ(shmrepl_reader_held(nullptr), 0u);
  EXPECT_EQ(shmrepl_reader_execution_id(nullptr), 0u);
  shmrepl_reader_close(nullptr);
  shmrepl_bytes_t b{};
  std::size_t lines = 0;
  EXPECT_EQ(shmrepl_record_error(nullptr, &b, &b, &lines), SHMREPL_E_INVALID);
  EXPECT_EQ(shmrepl_record_traceback_line(nullptr, 0, &b), SHMREPL_E_INVALID);
  EXPECT_STRNE(shmrepl_last_error(), "");
}

// ---- reading ---------------------------------------------------------------

TEST(ReaderApi, RecordsAgainTimeoutEof) {
  std::string name = unique_ring_name("read");
  auto p = make_ring(name, 4096, 4242);
  auto r = open_reader(name);
  EXPECT_EQ(shmrepl_reader_execution_id(r.get()), 4242u);
  shmrepl_record_t rec{};
  EXPECT_EQ(shmrepl_reader_next(r.get(), 0, &rec), SHMREPL_E_AGAIN);
  auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(shmrepl_reader_next(r.get(), 20'000'000, &rec), SHMREPL_E_TIMEOUT);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 20ms);

  put(*p, 0, "hello ", SHMREPL_FLAG_MORE);
  put(*p, 1, "world", SHMREPL_FLAG_CONTINUED, SHMREPL_STREAM_STDERR);
  std::vector<std::byte> fin;
  records::encode_finished(fin, {4242, 2, 5000}, SHMREPL_FINISH_EXITED, 3, 777);
  p->write(fin);
  p->finish();

  ASSERT_EQ(shmrepl_reader_next(r.get(), 0, &rec), SHMREPL_OK);
  EXPECT_EQ(rec.kind, SHMREPL_RECORD_OUTPUT);
  EXPECT_EQ(rec.stream, SHMREPL_STREAM_STDOUT);
  EXPECT_EQ(rec.flags, SHMREPL_FLAG_MORE);
  EXPECT_EQ(rec.execution_id, 4242u);
  EXPECT_EQ(rec.seq, 0u);
  EXPECT_EQ(rec.timestamp_ns, 1000u);
  EXPECT_EQ(data_of(rec), "hello ");
  EXPECT_EQ(rec.raw_len, records::output_size(6));
  EXPECT_EQ(shmrepl_reader_held(r.get()), 1u);
  shmrepl_record_t second{};
  ASSERT_EQ(shmrepl_reader_next(r.get(), -1, &second), SHMREPL_OK);
  EXPECT_EQ(second.stream, SHMREPL_STREAM_STDERR);
  EXPECT_EQ(second.flags, SHMREPL_FLAG_CONTINUED);
  EXPECT_EQ(data_of(second), "world");
  EXPECT_EQ(data_of(rec), "hello ");  // the first view is still valid
  EXPECT_EQ(shmrepl_reader_release(r.get(), 3), SHMREPL_E_INVALID);  // more than held
  EXPECT_EQ(shmrepl_reader_held(r.get()), 2u);
  EXPECT_EQ(shmrepl_reader_release(r.get(), 2), SHMREPL_OK);
  EXPECT_EQ(shmrepl_reader_release(r.get(), 1), SHMREPL_E_INVALID);
  ASSERT_EQ(shmrepl_reader_next(r.get(), 0, &rec), SHMREPL_OK);
  EXPECT_EQ(rec.kind, SHMREPL_RECORD_FINISHED);
  EXPECT_EQ(rec.finish_status, SHMREPL_FINISH_EXITED);
  EXPECT_EQ(rec.exit_code, 3);
  EXPECT_EQ(rec.duration_ns, 777u);
  EXPECT_EQ(rec.seq, 2u);
  EXPECT_EQ(shmrepl_reader_next(r.get(), 0, &rec), SHMREPL_E_EOF);
  EXPECT_EQ(shmrepl_reader_next(r.get(), -1, &rec), SHMREPL_E_EOF);  // and stays so
  EXPECT_EQ(shmrepl_reader_next(r.get(), 1000, &rec), SHMREPL_E_EOF);
  std::size_t n = 5;
  EXPECT_EQ(shmrepl_reader_next_batch(r.get(), &rec, 1, &n, -1), SHMREPL_E_EOF);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(shmrepl_reader_held(r.get()), 1u);
}

TEST(ReaderApi, BatchReturnsWhatIsReady) {
  std::string name = unique_ring_name("batch");
  auto p = make_ring(name, 1 << 16);
  auto r = open_reader(name);
  shmrepl_record_t recs[8]{};
  std::size_t n = 0;
  EXPECT_EQ(shmrepl_reader_next_batch(r.get(), recs, 8, &n, 0), SHMREPL_E_AGAIN);
  EXPECT_EQ(shmrepl_reader_next_batch(r.get(), recs, 8, &n, 1'000'000), SHMREPL_E_TIMEOUT);
  EXPECT_EQ(n, 0u);
  for (uint64_t i = 0; i < 11; ++i) put(*p, i, std::string(i, 'x'));
  ASSERT_EQ(shmrepl_reader_next_batch(r.get(), recs, 8, &n, 0), SHMREPL_OK);
  ASSERT_EQ(n, 8u);
  for (uint64_t i = 0; i < 8; ++i) EXPECT_EQ(recs[i].seq, i);
  EXPECT_EQ(shmrepl_reader_held(r.get()), 8u);
  ASSERT_EQ(shmrepl_reader_release(r.get(), 5), SHMREPL_OK);
  EXPECT_EQ(data_of(recs[7]), std::string(7, 'x'));
  ASSERT_EQ(shmrepl_reader_next_batch(r.get(), recs, 8, &n, -1), SHMREPL_OK);
  ASSERT_EQ(n, 3u);
  EXPECT_EQ(recs[0].seq, 8u);
  EXPECT_EQ(data_of(recs[2]), std::string(10, 'x'));
  // A sleeping batch wakes for the first record.
  std::thread t([&] {
    std::this_thread::sleep_for(20ms);
    put(*p, 11, "late");
  });
  ASSERT_EQ(shmrepl_reader_next_batch(r.get(), recs, 8, &n, -1), SHMREPL_OK);
  t.join();
  EXPECT_EQ(n, 1u);
  EXPECT_EQ(data_of(recs[0]), "late");
}

TEST(ReaderApi, CorruptRecordIsNotHandedOut) {
  std::string name = unique_ring_name("badrec");
  auto p = make_ring(name, 1 << 16);
  auto r = open_reader(name);
  put(*p, 0, "good");
  p->write(test::as_bytes("this is not a flatbuffer"));
  put(*p, 2, "after");
  shmrepl_record_t recs[4]{};
  std::size_t n = 0;
  ASSERT_EQ(shmrepl_reader_next_batch(r.get(), recs, 4, &n, 0), SHMREPL_OK);
  EXPECT_EQ(n, 1u);  // stops before the bad one
  EXPECT_EQ(shmrepl_reader_held(r.get()), 1u);
  EXPECT_EQ(shmrepl_reader_next(r.get(), 0, &recs[1]), SHMREPL_E_CORRUPT);
  EXPECT_EQ(shmrepl_reader_held(r.get()), 1u);
  EXPECT_EQ(shmrepl_reader_next_batch(r.get(), recs, 4, &n, 0), SHMREPL_E_CORRUPT);
  EXPECT_EQ(n, 0u);
  EXPECT_EQ(shmrepl_reader_release(r.get(), 1), SHMREPL_OK);
  EXPECT_EQ(shmrepl_reader_release(r.get(), 1), SHMREPL_E_INVALID);
}

TEST(ReaderApi, ErrorRecordAccessors) {
  std::string name = unique_ring_name("err");
  auto p = make_ring(name, 1 << 16);
  auto r = open_reader(name);
  std::vector<std::byte> buf;
  std::string_view tb[] = {"Traceback (most recent call last):\n", "  File \"<cell>\", line 1\n",
                           "ZeroDivisionError: division by zero\n"};
  records::encode_error(buf, {42, 0, 1}, "ZeroDivisionError", "division by zero", tb);
  p->write(buf);
  put(*p, 1, "not an error");
  shmrepl_record_t rec{};
  ASSERT_EQ(shmrepl_reader_next(r.get(), 0, &rec), SHMREPL_OK);
  EXPECT_EQ(rec.kind, SHMREPL_RECORD_ERROR);
  EXPECT_EQ(data_of(rec), "division by zero");
  shmrepl_bytes_t ename{}, evalue{};
  std::size_t lines = 0;
  ASSERT_EQ(shmrepl_record_error(&rec, &ename, &evalue, &lines), SHMREPL_OK);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(ename.ptr), ename.len), "ZeroDivisionError");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(evalue.ptr), evalue.len), "division by zero");
  ASSERT_EQ(lines, 3u);
  EXPECT_EQ(shmrepl_record_error(&rec, nullptr, nullptr, nullptr), SHMREPL_OK);
  for (std::size_t i = 0; i < lines; ++i) {
    shmrepl_bytes_t line{};
    ASSERT_EQ(shmrepl_record_traceback_line(&rec, i, &line), SHMREPL_OK);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(line.ptr), line.len), tb[i]);
  }
  shmrepl_bytes_t line{};
  EXPECT_EQ(shmrepl_record_traceback_line(&rec, 3, &line), SHMREPL_E_INVALID);
  EXPECT_EQ(shmrepl_record_traceback_line(&rec, 0, nullptr), SHMREPL_E_INVALID);
  shmrepl_record_t out{};
  ASSERT_EQ(shmrepl_reader_next(r.get(), 0, &out), SHMREPL_OK);
  EXPECT_EQ(shmrepl_record_error(&out, &ename, &evalue, &lines), SHMREPL_E_INVALID);
  // A forged kind over a non-Error record is refused, not misread.
  out.kind = SHMREPL_RECORD_ERROR;
  EXPECT_EQ(shmrepl_record_error(&out, &ename, &evalue, &lines), SHMREPL_E_INVALID);
}

// ---- attach ---------------------------------------------------------------

TEST(ReaderApi, LateAttach) {
  std::string name = unique_ring_name("late");
  auto p = make_ring(name);
  for (uint64_t i = 0; i < 10; ++i) put(*p, i, "early");
  auto oldest = open_reader(name, SHMREPL_START_OLDEST);
  auto newest = open_reader(name, SHMREPL_START_NEWEST);
  for (uint64_t i = 10; i < 13; ++i) put(*p, i, "late");
  shmrepl_record_t rec{};
  for (uint64_t i = 0; i < 13; ++i) {
    ASSERT_EQ(shmrepl_reader_next(oldest.get(), 0, &rec), SHMREPL_OK);
    EXPECT_EQ(rec.seq, i);
    ASSERT_EQ(shmrepl_reader_release(oldest.get(), 1), SHMREPL_OK);
  }
  for (uint64_t i = 10; i < 13; ++i) {
    ASSERT_EQ(shmrepl_reader_next(newest.get(), 0, &rec), SHMREPL_OK);
    EXPECT_EQ(rec.seq, i);
  }
  EXPECT_EQ(shmrepl_reader_next(newest.get(), 0, &rec), SHMREPL_E_AGAIN);
}

// Several readers each get every record; the producer waits for the slowest.
TEST(ReaderApi, SeveralReadersThreads) {
  std::string name = unique_ring_name("multi");
  auto p = make_ring(name, 16384);
  const uint64_t n = static_cast<uint64_t>(20'000 * test::test_scale());
  constexpr int kReaders = 3;
  std::vector<ReaderPtr> readers;
  for (int i = 0; i < kReaders; ++i) readers.push_back(open_reader(name));
  std::vector<uint64_t> digests(kReaders, 0), counts(kReaders, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kReaders; ++i) {
    threads.emplace_back([&, i] {
      shmrepl_reader_t* r = readers[static_cast<std::size_t>(i)].get();
      uint64_t h = test::kFnvOffset, expect = 0;
      shmrepl_record_t recs[16];
      for (;;) {
        std::size_t got = 0;
        shmrepl_status_t st = shmrepl_reader_next_batch(r, recs, 1 + static_cast<std::size_t>(i) * 7, &got, -1);
        if (st == SHMREPL_E_EOF) break;
        ASSERT_EQ(st, SHMREPL_OK) << shmrepl_last_error();
        for (std::size_t k = 0; k < got; ++k) {
          if (recs[k].kind == SHMREPL_RECORD_FINISHED) continue;
          ASSERT_EQ(recs[k].seq, expect++);
          h = test::fnv1a(h, recs[k].data, recs[k].data_len);
        }
        if (i == 0) std::this_thread::yield();  // a slow one
        ASSERT_EQ(shmrepl_reader_release(r, got), SHMREPL_OK);
      }
      digests[static_cast<std::size_t>(i)] = h;
      counts[static_cast<std::size_t>(i)] = expect;
    });
  }
  uint64_t h = test::kFnvOffset;
  test::Rng rng(7);
  std::vector<std::byte> data(600);
  for (uint64_t i = 0; i < n; ++i) {
    std::size_t len = rng.below(data.size());
    rng.fill(data.data(), len);
    h = test::fnv1a(h, data.data(), len);
    test::write_output(*p, {42, i, 0}, SHMREPL_STREAM_STDOUT, {data.data(), len}, 0);
  }
  finish_ring(*p, n);
  for (auto& t : threads) t.join();
  for (int i = 0; i < kReaders; ++i) {
    EXPECT_EQ(counts[static_cast<std::size_t>(i)], n) << i;
    EXPECT_EQ(digests[static_cast<std::size_t>(i)], h) << i;
  }
}

// ---- dead peers (fork) -----------------------------------------------------

// The child writes `n` records and _exits without finishing the ring.
TEST(ReaderApi, ProducerDied) {
  std::string name = unique_ring_name("pdied");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    auto p = make_ring(name, 1 << 16);
    p->release_name();  // it dies; the test removes the name
    char c = 1;
    if (::write(ready[1], &c, 1) != 1) ::_exit(2);
    while (p->attached_readers() == 0) std::this_thread::sleep_for(1ms);
    for (uint64_t i = 0; i < 1000; ++i) put(*p, i, "line " + std::to_string(i) + "\n");
    ::_exit(0);  // no finish(), no destructor
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  auto r = open_reader(name);
  ASSERT_NE(r, nullptr);
  shmrepl_record_t rec{};
  uint64_t seq = 0;
  shmrepl_status_t st;
  auto last = std::chrono::steady_clock::now();
  while ((st = shmrepl_reader_next(r.get(), 10'000'000'000, &rec)) == SHMREPL_OK) {
    EXPECT_EQ(rec.seq, seq);
    EXPECT_EQ(data_of(rec), "line " + std::to_string(seq) + "\n");
    ++seq;
    shmrepl_reader_release(r.get(), 1);
    last = std::chrono::steady_clock::now();
  }
  EXPECT_EQ(st, SHMREPL_E_PRODUCER_DIED) << shmrepl_status_str(st);
  EXPECT_EQ(seq, 1000u);  // everything published before it died
  EXPECT_LT(std::chrono::steady_clock::now() - last, 1500ms);
  EXPECT_NE(std::string(shmrepl_last_error()).find("died"), std::string::npos);
  EXPECT_EQ(shmrepl_reader_next(r.get(), 1'000'000, &rec), SHMREPL_E_PRODUCER_DIED);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  ::shm_unlink(("/" + name).c_str());
}

// A reader child attaches and is killed while the producer waits on it; a live
// reader in this process keeps reading throughout.
TEST(ReaderApi, ReaderDied) {
  std::string name = unique_ring_name("rdied");
  auto p = make_ring(name);
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    shmrepl_reader_t* r = nullptr;
    if (shmrepl_reader_open(name.c_str(), nullptr, &r) != SHMREPL_OK) ::_exit(2);
    char c = 1;
    if (::write(ready[1], &c, 1) != 1) ::_exit(3);
    for (;;) ::pause();  // holds everything, releases nothing
  }
  ::close(ready[1]);
  char c = 0;
  ASSERT_EQ(::read(ready[0], &c, 1), 1);
  ::close(ready[0]);
  auto live = open_reader(name);
  EXPECT_EQ(p->attached_readers(), 2u);
  uint64_t live_count = 0;
  bool live_in_order = true;
  std::thread live_thread([&] {
    shmrepl_record_t recs[8];
    std::size_t got = 0;
    while (shmrepl_reader_next_batch(live.get(), recs, 8, &got, -1) == SHMREPL_OK) {
      for (std::size_t k = 0; k < got; ++k) live_in_order &= recs[k].seq == live_count++;
      shmrepl_reader_release(live.get(), got);
    }
  });
  uint64_t seq = 0;
  while (test::try_write_output(*p, {42, seq, 0}, SHMREPL_STREAM_STDOUT, test::as_bytes("x"), 0)) ++seq;
  EXPECT_EQ(p->wait_for_space(records::output_size(1), 20ms), shm::WaitResult::kTimeout);
  std::thread killer([&] {
    std::this_thread::sleep_for(50ms);
    ::kill(child, SIGKILL);
  });
  auto t0 = std::chrono::steady_clock::now();
  // Blocks on the full ring until the dead reader is detached.
  for (uint64_t i = 0; i < 200; ++i, ++seq) put(*p, seq, "after");
  auto dt = std::chrono::steady_clock::now() - t0;
  killer.join();
  EXPECT_GE(dt, 40ms);
  EXPECT_LT(dt, 2s);
  EXPECT_EQ(p->attached_readers(), 1u);
  finish_ring(*p, seq);
  live_thread.join();
  EXPECT_EQ(live_count, seq + 1);  // and FINISHED
  EXPECT_TRUE(live_in_order);
  int status = 0;
  ::waitpid(child, &status, 0);
  EXPECT_TRUE(WIFSIGNALED(status));
  // The freed slot can be taken again.
  auto again = open_reader(name);
  EXPECT_NE(again, nullptr);
}

}  // namespace

namespace {

// shmrepl_reader_mapping (1.1): every view a reader hands out lies inside its mapping,
// and the mapping is the ring's size (header pages + data), not a copy.
// ---- issue 9: dead readers, cut-short rings, shared readers, last_error -------

// Forks a reader process that attaches, takes one record and _exits without
// closing; returns once it has exited (a zombie until reaped).
pid_t dead_reader(const std::string& name) {
  pid_t child = ::fork();
  if (child == 0) {
    shmrepl_reader_t* r = nullptr;
    if (shmrepl_reader_open(name.c_str(), nullptr, &r) != SHMREPL_OK) ::_exit(2);
    shmrepl_record_t rec{};
    ::_exit(shmrepl_reader_next(r, 0, &rec) == SHMREPL_OK ? 0 : 3);  // no close
  }
  siginfo_t info{};
  EXPECT_EQ(::waitid(P_PID, static_cast<id_t>(child), &info, WEXITED | WNOWAIT), 0);
  EXPECT_EQ(info.si_status, 0) << "the reader child failed";
  return child;
}

void reap(std::vector<pid_t>& children) {
  for (pid_t c : children) ::waitpid(c, nullptr, 0);
  children.clear();
}

// Sixteen readers that die attached: a 17th still attaches (their slots are
// reclaimed at attach, zombies included), while the producer never waits for space
// and also after the execution finished.
TEST(ReaderApi, SixteenDeadReadersDoNotLockTheRing) {
  std::string name = unique_ring_name("dead16");
  auto p = make_ring(name, 1 << 16);
  for (uint64_t i = 0; i < 3; ++i) put(*p, i, "line " + std::to_string(i));
  std::vector<pid_t> children;
  for (std::size_t i = 0; i < shm::kReaderSlots; ++i) children.push_back(dead_reader(name));
  {  // zombies, not reaped yet
    auto r = open_reader(name);
    ASSERT_NE(r, nullptr);
    shmrepl_record_t rec{};
    ASSERT_EQ(shmrepl_reader_next(r.get(), 0, &rec), SHMREPL_OK);
    EXPECT_EQ(data_of(rec), "line 0");
  }
  reap(children);
  finish_ring(*p, 3);
  // Sixteen more die after the end; no producer will ever wait for space again.
  for (std::size_t i = 0; i < shm::kReaderSlots; ++i) children.push_back(dead_reader(name));
  reap(children);
  auto r = open_reader(name);
  ASSERT_NE(r, nullptr);
  shmrepl_record_t rec{};
  std::vector<std::string> got;
  shmrepl_status_t st;
  while ((st = shmrepl_reader_next(r.get(), 0, &rec)) == SHMREPL_OK) {
    got.push_back(rec.kind == SHMREPL_RECORD_FINISHED ? "FINISHED" : data_of(rec));
    ASSERT_EQ(shmrepl_reader_release(r.get(), 1), SHMREPL_OK);
  }
  EXPECT_EQ(st, SHMREPL_E_EOF) << shmrepl_last_error();
  EXPECT_EQ(got, (std::vector<std::string>{"line 0", "line 1", "line 2", "FINISHED"}));
  // Every slot is usable again: sixteen live readers at once.
  std::vector<ReaderPtr> live;
  for (std::size_t i = 1; i < shm::kReaderSlots; ++i) live.push_back(open_reader(name));
  EXPECT_EQ(p->attached_readers(), shm::kReaderSlots);
}

// A ring marked finished without a FINISHED record was cut short: E_CORRUPT, not
// E_EOF, after every record it does hold.
TEST(ReaderApi, FinishedStateWithoutFinishedRecordIsCorrupt) {
  std::string name = unique_ring_name("nofin");
  auto p = make_ring(name);
  auto r = open_reader(name);
  put(*p, 0, "cut");
  p->finish();  // the header says finished, but no FINISHED record
  shmrepl_record_t rec{};
  ASSERT_EQ(shmrepl_reader_next(r.get(), 0, &rec), SHMREPL_OK);
  EXPECT_EQ(data_of(rec), "cut");
  EXPECT_EQ(shmrepl_reader_next(r.get(), 0, &rec), SHMREPL_E_CORRUPT);
  EXPECT_NE(std::string(shmrepl_last_error()).find("no FINISHED record"), std::string::npos)
      << shmrepl_last_error();
  EXPECT_EQ(shmrepl_reader_next(r.get(), -1, &rec), SHMREPL_E_CORRUPT);  // and stays so
  std::size_t n = 3;
  EXPECT_EQ(shmrepl_reader_next_batch(r.get(), &rec, 1, &n, -1), SHMREPL_E_CORRUPT);
  EXPECT_EQ(n, 0u);
  // A reader that attaches after the end sees nothing: judged by the ring's last frame.
  EXPECT_EQ(shmrepl_reader_next(open_reader(name, SHMREPL_START_NEWEST).get(), 0, &rec), SHMREPL_E_CORRUPT);
  // An empty ring marked finished.
  std::string empty = unique_ring_name("nofin-empty");
  auto q = make_ring(empty);
  q->finish();
  EXPECT_EQ(shmrepl_reader_next(open_reader(empty).get(), 0, &rec), SHMREPL_E_CORRUPT);
}

// The rule holds for background rings (execution id 0) too, and a reader that attaches
// after a proper end gets E_EOF.
TEST(ReaderApi, FinishedRecordEndsEveryRing) {
  std::string name = unique_ring_name("bgfin");
  auto p = make_ring(name, 4096, 0);
  put(*p, 0, "from a thread");
  auto oldest = open_reader(name);
  finish_ring(*p, 1);
  shmrepl_record_t rec{};
  auto newest = open_reader(name, SHMREPL_START_NEWEST);
  EXPECT_EQ(shmrepl_reader_next(newest.get(), 0, &rec), SHMREPL_E_EOF) << shmrepl_last_error();
  ASSERT_EQ(shmrepl_reader_next(oldest.get(), 0, &rec), SHMREPL_OK);
  EXPECT_EQ(rec.execution_id, 0u);
  ASSERT_EQ(shmrepl_reader_next(oldest.get(), 0, &rec), SHMREPL_OK);
  EXPECT_EQ(rec.kind, SHMREPL_RECORD_FINISHED);
  EXPECT_EQ(shmrepl_reader_next(oldest.get(), 0, &rec), SHMREPL_E_EOF) << shmrepl_last_error();
}

// One reader hammered by two threads: every call either does its job or is refused
// with E_STATE; nothing is lost or handed out twice among the calls that succeed.
TEST(ReaderApi, TwoThreadsOnOneReaderAreRefused) {
  std::string name = unique_ring_name("shared");
  const uint64_t n = static_cast<uint64_t>(20'000 * test::test_scale());
  auto p = make_ring(name, 4096);
  auto r = open_reader(name);
  std::atomic<int> started{0};
  std::atomic<bool> done{false};
  std::atomic<uint64_t> refused{0}, records{0}, bad{0};
  std::atomic<bool> finished_seen{false};
  auto hammer = [&] {
    shmrepl_record_t recs[4];
    ++started;
    while (!done.load()) {
      std::size_t got = 0;
      shmrepl_status_t st = shmrepl_reader_next_batch(r.get(), recs, 4, &got, 1'000'000);
      if (st == SHMREPL_E_STATE) {
        ++refused;
        continue;
      }
      if (st == SHMREPL_E_EOF) {
        done = true;
        break;
      }
      if (st == SHMREPL_E_TIMEOUT || st == SHMREPL_E_AGAIN) continue;
      if (st != SHMREPL_OK) {
        ++bad;
        done = true;
        break;
      }
      for (std::size_t k = 0; k < got; ++k)
        if (recs[k].kind == SHMREPL_RECORD_FINISHED) finished_seen = true;
      records += got;
      // Release what this call took (counts, not views: another thread may release
      // first, records go back oldest first).
      for (;;) {
        st = shmrepl_reader_release(r.get(), got);
        if (st != SHMREPL_E_STATE) break;
        ++refused;
      }
      if (st != SHMREPL_OK) {
        ++bad;
        done = true;
        break;
      }
      (void)shmrepl_reader_held(r.get());
    }
  };
  std::thread a(hammer), b(hammer);
  while (started.load() < 2) std::this_thread::yield();
  for (uint64_t i = 0; i < n; ++i) put(*p, i, "x");
  finish_ring(*p, n);
  a.join();
  b.join();
  EXPECT_EQ(bad.load(), 0u) << shmrepl_last_error();
  EXPECT_EQ(records.load(), n + 1);
  EXPECT_TRUE(finished_seen.load());
  EXPECT_EQ(shmrepl_reader_held(r.get()), 0u);
  std::printf("calls refused with E_STATE: %llu\n", static_cast<unsigned long long>(refused.load()));
}

// The refusal itself, deterministically: a call in progress (a wait in next) holds
// the reader; every other call on it is E_STATE with its text, and works again after.
TEST(ReaderApi, CallWhileAnotherRunsIsEState) {
  std::string name = unique_ring_name("busy");
  auto p = make_ring(name);
  auto r = open_reader(name);
  std::thread waiter([&] {
    shmrepl_record_t rec{};
    shmrepl_status_t st;
    while ((st = shmrepl_reader_next(r.get(), 2'000'000'000, &rec)) == SHMREPL_E_STATE) {
    }
    EXPECT_EQ(st, SHMREPL_OK);
  });
  shmrepl_record_t rec{};
  shmrepl_status_t st = SHMREPL_OK;
  for (int i = 0; i < 2000 && (st = shmrepl_reader_next(r.get(), 0, &rec)) != SHMREPL_E_STATE; ++i)
    std::this_thread::sleep_for(1ms);  // until the waiter is inside
  ASSERT_EQ(st, SHMREPL_E_STATE);
  EXPECT_STREQ(shmrepl_last_error(), "reader used from two threads at once");
  std::size_t n = 0;
  EXPECT_EQ(shmrepl_reader_next_batch(r.get(), &rec, 1, &n, 0), SHMREPL_E_STATE);
  EXPECT_EQ(shmrepl_reader_release(r.get(), 0), SHMREPL_E_STATE);
  EXPECT_EQ(shmrepl_reader_held(r.get()), 0u);
  EXPECT_STREQ(shmrepl_last_error(), "reader used from two threads at once");
  put(*p, 0, "wake");
  waiter.join();
  EXPECT_EQ(shmrepl_reader_held(r.get()), 1u);
  EXPECT_STREQ(shmrepl_last_error(), "");
  EXPECT_EQ(shmrepl_reader_release(r.get(), 1), SHMREPL_OK);
}

// shmrepl_last_error() is "" after every call that did not fail.
TEST(ReaderApi, LastErrorClearedByEveryCall) {
  std::string name = unique_ring_name("lasterr");
  auto p = make_ring(name);
  auto r = open_reader(name);
  shmrepl_record_t rec{};
  auto stale = [] {  // leaves error text behind
    shmrepl_reader_t* none = nullptr;
    EXPECT_EQ(shmrepl_reader_open("no/such", nullptr, &none), SHMREPL_E_INVALID);
    ASSERT_STRNE(shmrepl_last_error(), "");
  };
  stale();
  EXPECT_EQ(shmrepl_reader_next(r.get(), 0, &rec), SHMREPL_E_AGAIN);
  EXPECT_STREQ(shmrepl_last_error(), "");
  stale();
  EXPECT_EQ(shmrepl_reader_next(r.get(), 1'000'000, &rec), SHMREPL_E_TIMEOUT);
  EXPECT_STREQ(shmrepl_last_error(), "");
  stale();
  std::size_t n = 0;
  EXPECT_EQ(shmrepl_reader_next_batch(r.get(), &rec, 1, &n, 0), SHMREPL_E_AGAIN);
  EXPECT_STREQ(shmrepl_last_error(), "");
  put(*p, 0, "one");
  stale();
  ASSERT_EQ(shmrepl_reader_next(r.get(), 0, &rec), SHMREPL_OK);
  EXPECT_STREQ(shmrepl_last_error(), "");
  stale();
  EXPECT_EQ(shmrepl_reader_held(r.get()), 1u);
  EXPECT_STREQ(shmrepl_last_error(), "");
  stale();
  EXPECT_EQ(shmrepl_reader_release(r.get(), 1), SHMREPL_OK);
  EXPECT_STREQ(shmrepl_last_error(), "");
  stale();
  EXPECT_EQ(shmrepl_reader_execution_id(r.get()), 42u);
  EXPECT_STREQ(shmrepl_last_error(), "");
  stale();
  const uint8_t* base = nullptr;
  size_t len = 0;
  EXPECT_EQ(shmrepl_reader_mapping(r.get(), &base, &len), SHMREPL_OK);
  EXPECT_STREQ(shmrepl_last_error(), "");
  stale();
  ReaderPtr second = open_reader(name);
  EXPECT_STREQ(shmrepl_last_error(), "");
  finish_ring(*p, 1);
  ASSERT_EQ(shmrepl_reader_next(r.get(), 0, &rec), SHMREPL_OK);
  stale();
  EXPECT_EQ(shmrepl_reader_next(r.get(), -1, &rec), SHMREPL_E_EOF);
  EXPECT_STREQ(shmrepl_last_error(), "");
  // A failure still says why.
  EXPECT_EQ(shmrepl_reader_release(r.get(), 5), SHMREPL_E_INVALID);
  EXPECT_STRNE(shmrepl_last_error(), "");
  stale();
  shmrepl_reader_close(second.release());
  EXPECT_STREQ(shmrepl_last_error(), "");
}

TEST(ReaderApi, MappingContainsEveryView) {
  const std::string name = unique_ring_name("mapping");
  auto p = make_ring(name, 4096);
  ReaderPtr r = open_reader(name);
  ASSERT_NE(r, nullptr);
  const uint8_t* base = nullptr;
  size_t len = 0;
  ASSERT_EQ(shmrepl_reader_mapping(r.get(), &base, &len), SHMREPL_OK);
  ASSERT_NE(base, nullptr);
  EXPECT_GE(len, 4096u + 3 * 4096u);
  for (uint64_t i = 0; i < 100; ++i) {
    put(*p, i, "line " + std::to_string(i));
    shmrepl_record_t rec{};
    ASSERT_EQ(shmrepl_reader_next(r.get(), 0, &rec), SHMREPL_OK);
    EXPECT_GE(rec.data, base);
    EXPECT_LE(rec.data + rec.data_len, base + len);
    EXPECT_GE(rec.raw, base);
    EXPECT_LE(rec.raw + rec.raw_len, base + len);
    EXPECT_EQ(data_of(rec), "line " + std::to_string(i));
    ASSERT_EQ(shmrepl_reader_release(r.get(), 1), SHMREPL_OK);
  }
  EXPECT_EQ(shmrepl_reader_mapping(nullptr, &base, &len), SHMREPL_E_INVALID);
  EXPECT_EQ(shmrepl_reader_mapping(r.get(), nullptr, &len), SHMREPL_E_INVALID);
  EXPECT_EQ(shmrepl_reader_mapping(r.get(), &base, nullptr), SHMREPL_E_INVALID);
  p->unlink();
}

}  // namespace

// Issue #9 item 10: a header that names another process as the producer (pid 1, start
// time 0: "alive, whatever its start") must not keep a waiting reader for ever. The
// same bounded liveness check that finds a dead producer finds it: E_PRODUCER_DIED
// soon, for next(-1) too. A mismatched start time, and a forged guardian, likewise.
TEST(ReaderApi, ForgedProducerIsNotTakenForALiveOne) {
  struct Forgery {
    uint32_t producer_pid;
    uint64_t producer_start;
    uint32_t guardian_pid;
    uint64_t guardian_start;
  };
  const Forgery cases[] = {
      {1, 0, 0, 0},                                      // pid 1, start time 0
      {1, shm::process_start_time(1) + 12345, 0, 0},     // pid 1, not its start time
      {static_cast<uint32_t>(::getppid()), 0, 1, 0},     // a live pid without start, guardian pid 1
  };
  for (const Forgery& f : cases) {
    std::string name = unique_ring_name("forged");
    auto p = make_ring(name);
    put(*p, 0, "before");
    {
      const int fd = shm_open(("/" + name).c_str(), O_RDWR, 0);
      ASSERT_GE(fd, 0);
      void* m = mmap(nullptr, sizeof(shm::RingHeader), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      ::close(fd);
      ASSERT_NE(m, MAP_FAILED);
      auto* bytes = static_cast<unsigned char*>(m);
      std::memcpy(bytes + offsetof(shm::RingHeader, producer_pid), &f.producer_pid, sizeof f.producer_pid);
      std::memcpy(bytes + offsetof(shm::RingHeader, producer_start_time), &f.producer_start,
                  sizeof f.producer_start);
      std::memcpy(bytes + offsetof(shm::RingHeader, guardian_pid), &f.guardian_pid, sizeof f.guardian_pid);
      std::memcpy(bytes + offsetof(shm::RingHeader, guardian_start_time), &f.guardian_start,
                  sizeof f.guardian_start);
      munmap(m, sizeof(shm::RingHeader));
    }
    // In a child with an alarm: a hang fails the test instead of stalling it.
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::alarm(20);
      shmrepl_reader_options_t opts{sizeof(shmrepl_reader_options_t), SHMREPL_START_OLDEST};
      shmrepl_reader_t* r = nullptr;
      if (shmrepl_reader_open(name.c_str(), &opts, &r) != SHMREPL_OK) ::_exit(10);
      shmrepl_record_t rec{};
      if (shmrepl_reader_next(r, -1, &rec) != SHMREPL_OK) ::_exit(11);  // what came before
      shmrepl_reader_release(r, 1);
      const auto t0 = std::chrono::steady_clock::now();
      const shmrepl_status_t st = shmrepl_reader_next(r, -1, &rec);
      if (st != SHMREPL_E_PRODUCER_DIED) ::_exit(12);
      if (std::chrono::steady_clock::now() - t0 > 5s) ::_exit(13);
      ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "pid " << f.producer_pid << " start " << f.producer_start << ": "
        << (WIFSIGNALED(status) ? "hung (killed by the alarm)" : "exit " + std::to_string(WEXITSTATUS(status)));
  }
}

// Issue #9 item 10: a forged reader slot (pid 1, which is always alive, active, no
// start time, at position 0) must not block the producer for good: the liveness
// checks find it (a reader publishes its start time right after its claim) and
// free it; a real reader then gets every record, in order.
TEST(ReaderApi, ForgedReaderSlotDoesNotBlockTheProducer) {
  std::string name = unique_ring_name("forgedslot");
  auto p = make_ring(name, 4096);
  {
    const int fd = shm_open(("/" + name).c_str(), O_RDWR, 0);
    ASSERT_GE(fd, 0);
    void* m = mmap(nullptr, shm::kPageSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, shm::kSlotsOffset);
    ::close(fd);
    ASSERT_NE(m, MAP_FAILED);
    auto* slot = static_cast<shm::ReaderSlot*>(m);
    slot->read_pos.store(0);
    slot->owner_start_time.store(0);
    slot->owner.store(shm::make_owner(1, 7));
    slot->active.store(1);
    munmap(m, shm::kPageSize);
  }
  auto r = open_reader(name);
  constexpr uint64_t kCount = 2000;  // many rings' worth
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (uint64_t i = 0; i < kCount; ++i) put(*p, i, "line " + std::to_string(i) + "\n");
    finish_ring(*p, kCount);
    done = true;
  });
  shmrepl_record_t rec{};
  uint64_t seq = 0;
  shmrepl_status_t st;
  const auto t0 = std::chrono::steady_clock::now();
  while ((st = shmrepl_reader_next(r.get(), 20'000'000'000, &rec)) == SHMREPL_OK) {
    if (rec.kind == SHMREPL_RECORD_OUTPUT) {
      EXPECT_EQ(data_of(rec), "line " + std::to_string(seq) + "\n");
      ++seq;
    }
    shmrepl_reader_release(r.get(), 1);
  }
  EXPECT_EQ(st, SHMREPL_E_EOF) << shmrepl_status_str(st) << " " << shmrepl_last_error();
  EXPECT_EQ(seq, kCount);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 15s);
  // The reader can see FINISHED before the writer's thread sets `done`: give it time.
  for (auto until = std::chrono::steady_clock::now() + 10s; !done && std::chrono::steady_clock::now() < until;)
    std::this_thread::sleep_for(1ms);
  if (!done) {
    ADD_FAILURE() << "the writer is still blocked by the forged slot";
    writer.detach();  // leave the writer and its ring
    (void)p.release();
    return;
  }
  writer.join();
}
