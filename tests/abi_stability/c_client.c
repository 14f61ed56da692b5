/* A C99 program linked against libshmrepl.so: the C linkage, the version calls, the
 * status texts and the argument checks work from C, and the record view has the
 * layout that ABI version 1 pins. */
#include <stddef.h> /* offsetof */
#include <stdio.h>  /* fprintf, snprintf */
#include <string.h> /* strcmp */

#include "shmrepl/shmrepl.h"

static int failures = 0;
#define CHECK(cond)                                                            \
  do {                                                                         \
    if (!(cond)) {                                                             \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                              \
    }                                                                          \
  } while (0)

int main(void) {
  static const shmrepl_status_t codes[] = {
      SHMREPL_OK,        SHMREPL_E_INVALID,     SHMREPL_E_NOT_FOUND,
      SHMREPL_E_AGAIN,   SHMREPL_E_TIMEOUT,     SHMREPL_E_EOF,
      SHMREPL_E_CORRUPT, SHMREPL_E_VERSION,     SHMREPL_E_PRODUCER_DIED,
      SHMREPL_E_NO_SLOT, SHMREPL_E_NOMEM,       SHMREPL_E_PERMISSION,
      SHMREPL_E_SYSTEM,  SHMREPL_E_ENGINE_DIED, SHMREPL_E_PROTOCOL,
      SHMREPL_E_STATE,   SHMREPL_E_CONNECT,     SHMREPL_E_TOO_LARGE,
      SHMREPL_E_INTERNAL};
  const char* unknown = shmrepl_status_str(-12345);
  char want[64];
  size_t i;
  shmrepl_reader_t* reader = NULL;
  shmrepl_record_t record;

  snprintf(want, sizeof want, "%d.%d.%d", SHMREPL_VERSION_MAJOR, SHMREPL_VERSION_MINOR,
           SHMREPL_VERSION_PATCH);
  CHECK(strcmp(shmrepl_version(), want) == 0);
  CHECK(shmrepl_abi_version() == SHMREPL_ABI_VERSION);

  CHECK(unknown != NULL && unknown[0] != '\0');
  for (i = 0; i < sizeof codes / sizeof codes[0]; ++i) {
    const char* text = shmrepl_status_str(codes[i]);
    CHECK(text != NULL && text[0] != '\0' && strcmp(text, unknown) != 0);
  }

  CHECK(shmrepl_reader_open(NULL, NULL, &reader) == SHMREPL_E_INVALID);
  CHECK(reader == NULL);
  CHECK(shmrepl_last_error()[0] != '\0');
  CHECK(shmrepl_reader_open("shmrepl.abi-test.no-such-ring", NULL, &reader) == SHMREPL_E_NOT_FOUND);
  CHECK(shmrepl_reader_open("../etc/passwd", NULL, &reader) == SHMREPL_E_INVALID);
  CHECK(shmrepl_reader_next(NULL, 0, &record) == SHMREPL_E_INVALID);
  CHECK(shmrepl_reader_held(NULL) == 0);
  shmrepl_reader_close(NULL);

  /* Values clients compile in; libabigail does not see macros or enumerators that
   * only travel in uint32_t fields, so they are pinned here. Never renumber. */
  CHECK(SHMREPL_OK == 0 && SHMREPL_E_INVALID == -1 && SHMREPL_E_NOT_FOUND == -2);
  CHECK(SHMREPL_E_AGAIN == -3 && SHMREPL_E_TIMEOUT == -4 && SHMREPL_E_EOF == -5);
  CHECK(SHMREPL_E_CORRUPT == -6 && SHMREPL_E_VERSION == -7 && SHMREPL_E_PRODUCER_DIED == -8);
  CHECK(SHMREPL_E_NO_SLOT == -9 && SHMREPL_E_NOMEM == -10 && SHMREPL_E_PERMISSION == -11);
  CHECK(SHMREPL_E_SYSTEM == -12 && SHMREPL_E_ENGINE_DIED == -13 && SHMREPL_E_PROTOCOL == -14);
  CHECK(SHMREPL_E_STATE == -15 && SHMREPL_E_CONNECT == -16 && SHMREPL_E_TOO_LARGE == -17);
  CHECK(SHMREPL_E_INTERNAL == -99);
  CHECK(SHMREPL_RECORD_UNKNOWN == 0 && SHMREPL_RECORD_STARTED == 1 && SHMREPL_RECORD_OUTPUT == 2);
  CHECK(SHMREPL_RECORD_RESULT == 3 && SHMREPL_RECORD_ERROR == 4);
  CHECK(SHMREPL_RECORD_INPUT_REQUEST == 5 && SHMREPL_RECORD_FINISHED == 6);
  CHECK(SHMREPL_STREAM_NONE == 0 && SHMREPL_STREAM_STDOUT == 1 && SHMREPL_STREAM_STDERR == 2);
  CHECK(SHMREPL_FINISH_OK == 0 && SHMREPL_FINISH_ERROR == 1 && SHMREPL_FINISH_CANCELLED == 2);
  CHECK(SHMREPL_FINISH_EXITED == 3 && SHMREPL_FINISH_ABORTED == 4);
  CHECK(SHMREPL_FLAG_MORE == 0x1u && SHMREPL_FLAG_CONTINUED == 0x2u);
  CHECK(SHMREPL_FLAG_PASSWORD == 0x4u);
  CHECK(SHMREPL_START_OLDEST == 0 && SHMREPL_START_NEWEST == 1);
  CHECK(SHMREPL_ABI_VERSION == 1);

  /* Pinned for ABI version 1 (the header says so); C must agree with C++. */
  CHECK(sizeof(shmrepl_record_t) == 104);
  CHECK(offsetof(shmrepl_record_t, execution_id) == 16);
  CHECK(offsetof(shmrepl_record_t, data) == 40);
  CHECK(offsetof(shmrepl_record_t, raw) == 56);
  CHECK(offsetof(shmrepl_record_t, exit_code) == 72);
  CHECK(offsetof(shmrepl_record_t, reserved) == 88);
  CHECK(sizeof(shmrepl_reader_options_t) == 8);
  CHECK(sizeof(shmrepl_bytes_t) == 2 * sizeof(void*));
  /* 1.1 published 40 bytes; 1.2 appended the terminal descriptors. */
  CHECK(offsetof(shmrepl_session_options_t, stdin_fd_plus_one) == 32);
  CHECK(offsetof(shmrepl_session_options_t, stdout_fd_plus_one) == 40);
  CHECK(offsetof(shmrepl_session_options_t, stderr_fd_plus_one) == 44);
  CHECK(sizeof(shmrepl_session_options_t) == 48);

  CHECK(shmrepl_execution_send_input(NULL, "x", 1) == SHMREPL_E_INVALID);

  if (failures != 0) {
    fprintf(stderr, "%d checks failed\n", failures);
    return 1;
  }
  printf("c_client: ok (libshmrepl %s)\n", shmrepl_version());
  return 0;
}
