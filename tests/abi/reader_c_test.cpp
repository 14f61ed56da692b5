// Runs the C client (header_c.c, built as C99 against libshmrepl.so) on a ring this
// test writes, and compares what it read with what was written.
#include <gtest/gtest.h>

#include <cstdio>
#include <string>

#include "records.hpp"
#include "ring_helpers.hpp"
#include "shmrepl/shm/producer.hpp"

#ifndef SHMREPL_C_READER
#error "SHMREPL_C_READER must name the C reader program"
#endif

namespace {

using namespace shmrepl;

TEST(CClient, ReadsEveryRecordOfARing) {
  const std::string name = test::unique_ring_name("c");
  // Big enough for everything: the C program reads after the ring is finished.
  auto p = shm::Producer::create(name, {.capacity = 1 << 20, .execution_id = 8, .max_payload = 0});
  uint64_t hash = test::kFnvOffset, bytes = 0, seq = 0;
  test::Rng rng(3);
  for (int i = 0; i < 500; ++i) {
    std::string text = test::random_utf8(rng, rng.below(300));
    test::write_output(*p, {8, seq++, 0}, i % 3 ? SHMREPL_STREAM_STDOUT : SHMREPL_STREAM_STDERR,
                       test::as_bytes(text), 0);
    hash = test::fnv1a(hash, text.data(), text.size());
    bytes += text.size();
  }
  std::vector<std::byte> fin;
  records::encode_finished(fin, {8, seq++, 0}, SHMREPL_FINISH_OK, 0, 5);
  p->write(fin);
  p->finish();
  FILE* f = ::popen((std::string(SHMREPL_C_READER) + " " + name).c_str(), "r");
  ASSERT_NE(f, nullptr);
  char line[256] = {};
  ASSERT_NE(std::fgets(line, sizeof line, f), nullptr);
  EXPECT_EQ(::pclose(f), 0);
  EXPECT_EQ(std::string(line), std::to_string(seq) + " " + std::to_string(bytes) + " " + std::to_string(hash) + " " +
                                   std::to_string(SHMREPL_RECORD_FINISHED) + "\n");
}

}  // namespace
