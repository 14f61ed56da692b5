/* The smallest program that runs Python code through shmrepl and prints its output.
 * Build: cc hello.c $(pkg-config --cflags --libs shmrepl)
 * An engine is started if none listens at the socket ($SHMREPL_SOCKET, else the
 * default); it keeps running until `shmrepl shutdown`. */
#include <shmrepl/shmrepl.h>
#include <stdio.h>

static int check(shmrepl_status_t st, const char* what) {
  if (st != SHMREPL_OK && st != SHMREPL_E_EOF)
    fprintf(stderr, "hello: %s: %s (%s)\n", what, shmrepl_status_str(st), shmrepl_last_error());
  return st == SHMREPL_OK;
}

int main(void) {
  const char code[] = "import sys\nprint('hello from Python', sys.version_info[:2])\nprint(6 * 7)\n";
  shmrepl_client_t* client;
  if (!check(shmrepl_client_connect(NULL, &client), "connect")) return 1;
  uint64_t session;
  shmrepl_execution_t* exec = NULL;
  shmrepl_reader_t* reader = NULL;
  int status = 1;
  if (check(shmrepl_session_open(client, &session), "session")) {
    shmrepl_execute_options_t opts = {0};
    opts.struct_size = sizeof opts;
    opts.session_id = session;
    opts.code = code;
    opts.code_len = sizeof code - 1;
    if (check(shmrepl_execute(client, &opts, &exec), "execute") &&
        check(shmrepl_execution_reader(exec, NULL, &reader), "reader")) {
      shmrepl_record_t rec;
      shmrepl_status_t st;
      while ((st = shmrepl_reader_next(reader, -1, &rec)) == SHMREPL_OK) {
        if (rec.kind == SHMREPL_RECORD_OUTPUT) /* stdout and stderr, as the code wrote them */
          fwrite(rec.data, 1, rec.data_len, rec.stream == SHMREPL_STREAM_STDERR ? stderr : stdout);
        else if (rec.kind == SHMREPL_RECORD_FINISHED)
          status = rec.finish_status == SHMREPL_FINISH_OK ? 0 : 1;
        shmrepl_reader_release(reader, 1);
      }
      check(st, "read"); /* E_EOF after the FINISHED record */
    }
  }
  shmrepl_reader_close(reader);
  shmrepl_execution_close(exec);
  shmrepl_client_close(client);
  return status;
}
