/* The public header from C: this file is compiled as C99 with -Wall -Wextra
 * -Wpedantic -Werror and linked against libshmrepl.so. Given a ring name, it reads
 * every record until EOF the way a C client would and prints
 * "<records> <output bytes> <fnv1a of the output bytes> <last kind>";
 * reader_c_test.cpp runs it against a ring it writes. */
#include <inttypes.h> /* PRIu64 */
#include <stdio.h>    /* printf, fprintf */

#include "shmrepl/shmrepl.h"

int main(int argc, char** argv) {
  shmrepl_reader_options_t options;
  shmrepl_reader_t* reader = NULL;
  shmrepl_record_t records[16];
  shmrepl_status_t st;
  uint64_t count = 0, bytes = 0, hash = 0xcbf29ce484222325u;
  uint32_t last_kind = 0;
  size_t n = 0, i, k;

  if (argc != 2) {
    fprintf(stderr, "usage: %s RING\n", argv[0]);
    return 2;
  }
  options.struct_size = (uint32_t)sizeof options;
  options.start = SHMREPL_START_OLDEST;
  st = shmrepl_reader_open(argv[1], &options, &reader);
  if (st != SHMREPL_OK) {
    fprintf(stderr, "open: %s: %s\n", shmrepl_status_str(st), shmrepl_last_error());
    return 1;
  }
  for (;;) {
    st = shmrepl_reader_next_batch(reader, records, sizeof records / sizeof records[0], &n,
                                   (int64_t)5000000000);
    if (st == SHMREPL_E_EOF) break;
    if (st != SHMREPL_OK) {
      fprintf(stderr, "next: %s: %s\n", shmrepl_status_str(st), shmrepl_last_error());
      shmrepl_reader_close(reader);
      return 1;
    }
    for (i = 0; i < n; ++i) {
      if (records[i].seq != count) {
        fprintf(stderr, "seq %" PRIu64 ", expected %" PRIu64 "\n", records[i].seq, count);
        return 1;
      }
      ++count;
      last_kind = records[i].kind;
      if (records[i].kind != SHMREPL_RECORD_OUTPUT) continue;
      bytes += records[i].data_len;
      for (k = 0; k < records[i].data_len; ++k)
        hash = (hash ^ records[i].data[k]) * 0x100000001b3u;
    }
    if (shmrepl_reader_release(reader, n) != SHMREPL_OK) return 1;
  }
  shmrepl_reader_close(reader);
  printf("%" PRIu64 " %" PRIu64 " %" PRIu64 " %u\n", count, bytes, hash, (unsigned)last_kind);
  return 0;
}
