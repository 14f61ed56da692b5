/* The public header as a strict C99 client sees it. Compiled (not run) by the
 * abi_header_c99_* tests with -std=c99 -pedantic-errors and every warning an error. */
#include "shmrepl/shmrepl.h"

/* Every declaration is a prototype of exactly this type (C has no overloading, so a
 * mismatch is a compile error). */
static shmrepl_status_t (*const open_fn)(const char*, const shmrepl_reader_options_t*,
                                         shmrepl_reader_t**) = shmrepl_reader_open;
static shmrepl_status_t (*const next_fn)(shmrepl_reader_t*, int64_t,
                                         shmrepl_record_t*) = shmrepl_reader_next;
static shmrepl_status_t (*const batch_fn)(shmrepl_reader_t*, shmrepl_record_t*, size_t, size_t*,
                                          int64_t) = shmrepl_reader_next_batch;
static shmrepl_status_t (*const release_fn)(shmrepl_reader_t*, size_t) = shmrepl_reader_release;
static void (*const close_fn)(shmrepl_reader_t*) = shmrepl_reader_close;

int main(void) {
  shmrepl_record_t record = {0};
  shmrepl_reader_options_t options = {sizeof(shmrepl_reader_options_t), SHMREPL_START_OLDEST};
  shmrepl_bytes_t bytes = {0, 0};
  shmrepl_record_kind_t kind = SHMREPL_RECORD_OUTPUT;
  shmrepl_stream_t stream = SHMREPL_STREAM_STDERR;
  shmrepl_finish_status_t finish = SHMREPL_FINISH_OK;
  int used = open_fn != 0 && next_fn != 0 && batch_fn != 0 && release_fn != 0 && close_fn != 0;
  record.kind = (uint32_t)kind;
  record.stream = (uint32_t)stream;
  record.finish_status = (uint32_t)finish;
  return used && record.kind == SHMREPL_RECORD_OUTPUT && options.start == SHMREPL_START_OLDEST &&
                 bytes.len == 0
             ? 0
             : 1;
}
