/* shmrepl-bench-reader: the C baseline of the bindings benchmark
 * (tools/bench/bindings_bench.sh), written against the public header only.
 *
 *   shmrepl-bench-reader RING
 *     Attaches to RING with START_OLDEST, reads every record to E_EOF in batches of
 *     up to 256 (released after use), sums data_len, and prints one line:
 *     records=<N> bytes=<sum of data_len> seconds=<from attach to EOF>
 *
 *   shmrepl-bench-reader serve --socket PATH [--engine PATH]
 *     Holds a client of a private engine (started if none listens) and one session
 *     for the benchmark script, driven by one command a line on stdin, one reply a
 *     line on stdout ("error ..." on failure):
 *       fill CAPACITY FILE  runs FILE's code in a ring of CAPACITY bytes, keeps a
 *                           reader attached at its first record (so every later
 *                           START_OLDEST reader gets all of it), then runs `pass` in
 *                           the same session and reads it to EOF, so the code has
 *                           finished: the ring is full and stays. Reply: ring NAME
 *       live CAPACITY FILE  runs FILE's code (0: the engine's ring size) and replies
 *                           at once: ring NAME T0 (CLOCK_REALTIME ns just before the
 *                           execute call). Closes the previous live execution first.
 *       run FILE [DUMP]     runs FILE's code and reads it to E_EOF here (a reader in
 *                           another process than the worker), counting per stream.
 *                           Reply: done ns=<execute call to EOF> records=N
 *                           out_bytes= out_lines= err_bytes= err_lines= status= worker=
 *                           (lines: newline bytes; status: FINISHED's status, -1 if
 *                           none; worker: pid from the ring name). With DUMP, writes
 *                           the streams to DUMP.out and DUMP.err (slower: verify only).
 *       rtt N FILE CODE     runs CODE (the rest of the line) N times, each read to
 *                           E_EOF, and writes each round trip in ns to FILE, one a
 *                           line. Reply: done ns=<all N>
 *       close               releases the held executions. Reply: ok
 *       quit (or EOF)       releases everything and shuts the engine down.
 */
#define _POSIX_C_SOURCE 200809L

#include <shmrepl/shmrepl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BATCH 256

static long long mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000000000LL + (long long)ts.tv_nsec;
}

static double mono_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static long long realtime_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (long long)ts.tv_sec * 1000000000LL + (long long)ts.tv_nsec;
}

static void usage(FILE* to) {
  fputs("usage: shmrepl-bench-reader RING\n"
        "       shmrepl-bench-reader serve --socket PATH [--engine PATH]\n"
        "\n"
        "RING: reads every record of the ring (START_OLDEST, batches of 256) and prints\n"
        "  records=<N> bytes=<sum of data_len> seconds=<from attach to EOF>\n"
        "serve: holds a client for tools/bench/bindings_bench.sh; commands on stdin:\n"
        "  fill CAPACITY FILE | live CAPACITY FILE | run FILE [DUMP] | rtt N FILE CODE |\n"
        "  close | quit  (see the source)\n",
        to);
}

/* ---- the reader --------------------------------------------------------------- */

static int read_ring(const char* ring) {
  shmrepl_reader_options_t opts;
  memset(&opts, 0, sizeof opts);
  opts.struct_size = sizeof opts;
  opts.start = SHMREPL_START_OLDEST;
  const double t0 = mono_seconds();
  shmrepl_reader_t* reader = NULL;
  shmrepl_status_t st = shmrepl_reader_open(ring, &opts, &reader);
  if (st != SHMREPL_OK) {
    fprintf(stderr, "shmrepl-bench-reader: cannot attach to %s: %s (%s)\n", ring, shmrepl_status_str(st),
            shmrepl_last_error());
    return 1;
  }
  static shmrepl_record_t recs[BATCH];
  unsigned long long records = 0, bytes = 0;
  for (;;) {
    size_t n = 0;
    st = shmrepl_reader_next_batch(reader, recs, BATCH, &n, -1);
    if (st != SHMREPL_OK) break;
    for (size_t i = 0; i < n; i++) bytes += recs[i].data_len;
    records += n;
    st = shmrepl_reader_release(reader, n);
    if (st != SHMREPL_OK) break;
  }
  const double seconds = mono_seconds() - t0;
  if (st != SHMREPL_E_EOF) {
    fprintf(stderr, "shmrepl-bench-reader: %s after %llu records: %s (%s)\n", ring, records,
            shmrepl_status_str(st), shmrepl_last_error());
    shmrepl_reader_close(reader);
    return 1;
  }
  shmrepl_reader_close(reader);
  printf("records=%llu bytes=%llu seconds=%.6f\n", records, bytes, seconds);
  return fflush(stdout) == 0 ? 0 : 1;
}

/* ---- serve: the client side of the benchmark ----------------------------------- */

typedef struct server {
  shmrepl_client_t* client;
  uint64_t session;
  shmrepl_execution_t* fill;  /* the full ring's execution, held so the ring stays */
  shmrepl_reader_t* pin;      /* attached at the full ring's first record, never reads */
  shmrepl_execution_t* live;
} server_t;

__attribute__((format(printf, 1, 2))) static void reply(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  fflush(stdout);
}

static void reply_error(const char* what, shmrepl_status_t st) {
  reply("error %s: %s (%s)\n", what, shmrepl_status_str(st), shmrepl_last_error());
}

static char* slurp(const char* path, size_t* len) {
  FILE* f = fopen(path, "rb");
  if (f == NULL) return NULL;
  size_t cap = 1 << 16, n = 0;
  char* buf = malloc(cap);
  while (buf != NULL) {
    n += fread(buf + n, 1, cap - n, f);
    if (n < cap) break;
    char* bigger = realloc(buf, cap * 2);
    if (bigger == NULL) {
      free(buf);
      buf = NULL;
      break;
    }
    buf = bigger;
    cap *= 2;
  }
  if (buf != NULL && ferror(f)) {
    free(buf);
    buf = NULL;
  }
  fclose(f);
  *len = n;
  return buf;
}

static shmrepl_status_t execute(server_t* s, const char* code, size_t len, uint64_t capacity,
                                const char* client_id, shmrepl_execution_t** out) {
  shmrepl_execute_options_t opts;
  memset(&opts, 0, sizeof opts);
  opts.struct_size = sizeof opts;
  opts.script = 1;
  opts.session_id = s->session;
  opts.code = code;
  opts.code_len = len;
  opts.client_execution_id = client_id;
  opts.ring_capacity = capacity;
  return shmrepl_execute(s->client, &opts, out);
}

static void close_fill(server_t* s) {
  shmrepl_reader_close(s->pin);
  s->pin = NULL;
  shmrepl_execution_close(s->fill);
  s->fill = NULL;
}

static void close_live(server_t* s) {
  shmrepl_execution_close(s->live);
  s->live = NULL;
}

/* Reads an execution to E_EOF; a ring that does not finish in time is an error. */
static shmrepl_status_t drain(const shmrepl_execution_t* exec, int64_t timeout_ns) {
  shmrepl_reader_t* reader = NULL;
  shmrepl_status_t st = shmrepl_execution_reader(exec, NULL, &reader);
  if (st != SHMREPL_OK) return st;
  shmrepl_record_t recs[16];
  size_t n = 0;
  while ((st = shmrepl_reader_next_batch(reader, recs, 16, &n, timeout_ns)) == SHMREPL_OK)
    shmrepl_reader_release(reader, n);
  shmrepl_reader_close(reader);
  return st == SHMREPL_E_EOF ? SHMREPL_OK : st;
}

static void cmd_fill(server_t* s, uint64_t capacity, const char* path) {
  size_t len = 0;
  char* code = slurp(path, &len);
  if (code == NULL) {
    reply("error cannot read %s\n", path);
    return;
  }
  close_fill(s);
  shmrepl_status_t st = execute(s, code, len, capacity, "bench-fill", &s->fill);
  free(code);
  if (st != SHMREPL_OK) {
    reply_error("execute", st);
    return;
  }
  shmrepl_reader_options_t opts;
  memset(&opts, 0, sizeof opts);
  opts.struct_size = sizeof opts;
  opts.start = SHMREPL_START_OLDEST;
  st = shmrepl_execution_reader(s->fill, &opts, &s->pin);
  if (st != SHMREPL_OK) {
    reply_error("pin reader", st);
    close_fill(s);
    return;
  }
  shmrepl_execution_t* pass = NULL;
  st = execute(s, "pass\n", 5, 0, "bench-pass", &pass);
  if (st != SHMREPL_OK) {
    reply_error("execute pass", st);
    close_fill(s);
    return;
  }
  /* The session runs one execution at a time: `pass` ends after the filler did. A
   * filler larger than its ring would block forever on the pinned reader. */
  st = drain(pass, 600LL * 1000000000LL);
  shmrepl_execution_close(pass);
  if (st == SHMREPL_E_TIMEOUT) {
    reply("error the filler did not finish within 600 s: is its ring too small for it?\n");
    shmrepl_execution_cancel(s->fill);
    close_fill(s);
    return;
  }
  if (st != SHMREPL_OK) {
    reply_error("reading pass", st);
    close_fill(s);
    return;
  }
  reply("ring %s\n", shmrepl_execution_ring_name(s->fill));
}

static void cmd_live(server_t* s, uint64_t capacity, const char* path) {
  size_t len = 0;
  char* code = slurp(path, &len);
  if (code == NULL) {
    reply("error cannot read %s\n", path);
    return;
  }
  close_live(s);
  const long long t0 = realtime_ns();
  const shmrepl_status_t st = execute(s, code, len, capacity, "bench-live", &s->live);
  free(code);
  if (st != SHMREPL_OK) {
    reply_error("execute", st);
    return;
  }
  reply("ring %s %lld\n", shmrepl_execution_ring_name(s->live), t0);
}

typedef struct counts {
  unsigned long long records, bytes[3], lines[3];
  int status;
} counts_t;

static void count_record(counts_t* c, const shmrepl_record_t* r, FILE* dump[3]) {
  c->records++;
  if (r->kind == SHMREPL_RECORD_FINISHED) c->status = (int)r->finish_status;
  if (r->kind != SHMREPL_RECORD_OUTPUT || r->stream > SHMREPL_STREAM_STDERR) return;
  c->bytes[r->stream] += r->data_len;
  for (const uint8_t *p = r->data, *end = r->data + r->data_len;
       (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++)
    c->lines[r->stream]++;
  if (dump != NULL && dump[r->stream] != NULL) fwrite(r->data, 1, r->data_len, dump[r->stream]);
}

/* The worker's pid, from the ring name shmrepl.<uid>.<worker pid>.<id>.<random>. */
static long worker_pid(const char* ring) {
  const char* p = strchr(ring, '.');
  if (p != NULL) p = strchr(p + 1, '.');
  return p != NULL ? strtol(p + 1, NULL, 10) : -1;
}

static void cmd_run(server_t* s, const char* args) {
  char path[2048], dump_prefix[2048];
  dump_prefix[0] = '\0';
  if (sscanf(args, "%2047s %2047s", path, dump_prefix) < 1) {
    reply("error run FILE [DUMP]\n");
    return;
  }
  size_t len = 0;
  char* code = slurp(path, &len);
  if (code == NULL) {
    reply("error cannot read %s\n", path);
    return;
  }
  FILE* dump[3] = {NULL, NULL, NULL};
  if (dump_prefix[0] != '\0') {
    char name[2100];
    snprintf(name, sizeof name, "%s.out", dump_prefix);
    dump[SHMREPL_STREAM_STDOUT] = fopen(name, "wb");
    snprintf(name, sizeof name, "%s.err", dump_prefix);
    dump[SHMREPL_STREAM_STDERR] = fopen(name, "wb");
  }
  counts_t c;
  memset(&c, 0, sizeof c);
  c.status = -1;
  const long long t0 = mono_ns();
  shmrepl_execution_t* exec = NULL;
  shmrepl_status_t st = execute(s, code, len, 0, "bench-run", &exec);
  free(code);
  shmrepl_reader_t* reader = NULL;
  if (st == SHMREPL_OK) st = shmrepl_execution_reader(exec, NULL, &reader);
  static shmrepl_record_t recs[BATCH];
  size_t n = 0;
  while (st == SHMREPL_OK && (st = shmrepl_reader_next_batch(reader, recs, BATCH, &n, -1)) == SHMREPL_OK) {
    for (size_t i = 0; i < n; i++) count_record(&c, &recs[i], dump);
    st = shmrepl_reader_release(reader, n);
  }
  const long long t1 = mono_ns();
  for (int i = 1; i < 3; i++)
    if (dump[i] != NULL) fclose(dump[i]);
  shmrepl_reader_close(reader);
  if (st != SHMREPL_E_EOF) {
    reply_error("run", st);
  } else {
    reply("done ns=%lld records=%llu out_bytes=%llu out_lines=%llu err_bytes=%llu err_lines=%llu status=%d "
          "worker=%ld\n",
          t1 - t0, c.records, c.bytes[1], c.lines[1], c.bytes[2], c.lines[2], c.status,
          worker_pid(shmrepl_execution_ring_name(exec)));
  }
  shmrepl_execution_close(exec);
}

static void cmd_rtt(server_t* s, const char* args) {
  long count = 0;
  char path[2048];
  int code_at = 0;
  if (sscanf(args, "%ld %2047s %n", &count, path, &code_at) != 2 || code_at == 0 || count <= 0) {
    reply("error rtt N FILE CODE\n");
    return;
  }
  const char* code = args + code_at;
  const size_t len = strlen(code);
  long long* ns = malloc((size_t)count * sizeof *ns);
  if (ns == NULL) {
    reply("error out of memory\n");
    return;
  }
  shmrepl_status_t st = SHMREPL_OK;
  const long long start = mono_ns();
  for (long i = 0; i < count && st == SHMREPL_OK; i++) {
    const long long t0 = mono_ns();
    shmrepl_execution_t* exec = NULL;
    st = execute(s, code, len, 0, "bench-rtt", &exec);
    if (st == SHMREPL_OK) st = drain(exec, -1);
    shmrepl_execution_close(exec);
    ns[i] = mono_ns() - t0;
  }
  const long long total = mono_ns() - start;
  if (st != SHMREPL_OK) {
    free(ns);
    reply_error("rtt", st);
    return;
  }
  FILE* f = fopen(path, "w");
  if (f == NULL) {
    free(ns);
    reply("error cannot write %s\n", path);
    return;
  }
  for (long i = 0; i < count; i++) fprintf(f, "%lld\n", ns[i]);
  free(ns);
  if (fclose(f) != 0) {
    reply("error cannot write %s\n", path);
    return;
  }
  reply("done ns=%lld\n", total);
}

static int serve(int argc, char** argv) {
  const char* socket = NULL;
  const char* engine = NULL;
  for (int i = 0; i < argc; i++) {
    if (strcmp(argv[i], "--socket") == 0 && i + 1 < argc) {
      socket = argv[++i];
    } else if (strcmp(argv[i], "--engine") == 0 && i + 1 < argc) {
      engine = argv[++i];
    } else {
      usage(stderr);
      return 2;
    }
  }
  if (socket == NULL) {
    fputs("shmrepl-bench-reader serve: --socket PATH is required (a private engine)\n", stderr);
    return 2;
  }
  shmrepl_client_options_t copts;
  memset(&copts, 0, sizeof copts);
  copts.struct_size = sizeof copts;
  copts.autostart = SHMREPL_AUTOSTART_ON;
  copts.socket_path = socket;
  copts.engine_path = engine;
  copts.connect_timeout_ns = 20LL * 1000000000LL;
  server_t s;
  memset(&s, 0, sizeof s);
  shmrepl_status_t st = shmrepl_client_connect(&copts, &s.client);
  if (st != SHMREPL_OK) {
    fprintf(stderr, "shmrepl-bench-reader serve: cannot connect to %s: %s (%s)\n", socket, shmrepl_status_str(st),
            shmrepl_last_error());
    return 1;
  }
  st = shmrepl_session_open(s.client, &s.session);
  if (st != SHMREPL_OK) {
    fprintf(stderr, "shmrepl-bench-reader serve: session_open: %s (%s)\n", shmrepl_status_str(st),
            shmrepl_last_error());
    shmrepl_engine_shutdown(s.client);
    shmrepl_client_close(s.client);
    return 1;
  }
  printf("ready %u\n", shmrepl_client_engine_pid(s.client));
  fflush(stdout);
  char line[4096];
  while (fgets(line, sizeof line, stdin) != NULL) {
    line[strcspn(line, "\r\n")] = '\0';
    char verb[16];
    unsigned long long capacity = 0;
    int path_at = 0;
    if (sscanf(line, "%15s %llu %n", verb, &capacity, &path_at) == 2 && path_at > 0 &&
        (strcmp(verb, "fill") == 0 || strcmp(verb, "live") == 0)) {
      if (verb[0] == 'f')
        cmd_fill(&s, capacity, line + path_at);
      else
        cmd_live(&s, capacity, line + path_at);
    } else if (strncmp(line, "run ", 4) == 0) {
      cmd_run(&s, line + 4);
    } else if (strncmp(line, "rtt ", 4) == 0) {
      cmd_rtt(&s, line + 4);
    } else if (strcmp(line, "close") == 0) {
      close_fill(&s);
      close_live(&s);
      reply("ok\n");
    } else if (strcmp(line, "quit") == 0) {
      break;
    } else {
      reply("error unknown command: %s\n", line);
    }
  }
  close_fill(&s);
  close_live(&s);
  st = shmrepl_engine_shutdown(s.client);
  shmrepl_client_close(s.client);
  if (st != SHMREPL_OK) {
    fprintf(stderr, "shmrepl-bench-reader serve: engine shutdown: %s\n", shmrepl_status_str(st));
    return 1;
  }
  return 0;
}

int main(int argc, char** argv) {
  if (shmrepl_abi_version() != SHMREPL_ABI_VERSION) {
    fprintf(stderr, "shmrepl-bench-reader: libshmrepl has ABI version %u, this program was built for %d\n",
            shmrepl_abi_version(), SHMREPL_ABI_VERSION);
    return 1;
  }
  if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
    usage(stdout);
    return 0;
  }
  if (argc >= 2 && strcmp(argv[1], "serve") == 0) return serve(argc - 2, argv + 2);
  if (argc != 2 || argv[1][0] == '-') {
    usage(stderr);
    return 2;
  }
  return read_ring(argv[1]);
}
