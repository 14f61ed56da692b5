/*
 * shmrepl — run Python code in an engine process and read everything it writes,
 * in order and as it is produced, from a ring in shared memory.
 *
 * The one public header of libshmrepl. C99; every call is extern "C" and no C++
 * type or exception crosses it. Structs that a caller passes in start with
 * `struct_size` and only ever grow at the end.
 *
 * Threads: a handle (reader, client) is used by one thread at a time; distinct
 * handles may be used from distinct threads concurrently. shmrepl_last_error()
 * is per thread.
 */
#ifndef SHMREPL_SHMREPL_H
#define SHMREPL_SHMREPL_H

#include <stddef.h> /* size_t */
#include <stdint.h> /* uint32_t, uint64_t, int64_t */

/* ---- version ---------------------------------------------------------- */
#define SHMREPL_VERSION_MAJOR 0
#define SHMREPL_VERSION_MINOR 1
#define SHMREPL_VERSION_PATCH 0
/* Bumped only on an incompatible change of this header or the ring layout. */
#define SHMREPL_ABI_VERSION 1

/* ---- visibility ------------------------------------------------------- */
#if defined(SHMREPL_BUILDING_LIBRARY)
#define SHMREPL_API __attribute__((visibility("default")))
#else
#define SHMREPL_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status codes ----------------------------------------------------- */
/* 0 is success; errors are negative and their values are never reused.
 * Retryable: SHMREPL_E_AGAIN, SHMREPL_E_TIMEOUT. End of data: SHMREPL_E_EOF. */
typedef int32_t shmrepl_status_t;
#define SHMREPL_OK 0
#define SHMREPL_E_INVALID (-1)        /* a bad argument (NULL, bad size, bad name) */
#define SHMREPL_E_NOT_FOUND (-2)      /* no such ring, session or execution */
#define SHMREPL_E_AGAIN (-3)          /* nothing now; try again (timeout 0) */
#define SHMREPL_E_TIMEOUT (-4)        /* nothing arrived before the timeout */
#define SHMREPL_E_EOF (-5)            /* the ring is finished and fully read */
#define SHMREPL_E_CORRUPT (-6)        /* the shared memory does not hold a valid ring/record */
#define SHMREPL_E_VERSION (-7)        /* the peer speaks another layout or ABI version */
#define SHMREPL_E_PRODUCER_DIED (-8)  /* the ring's writer died before finishing it */
#define SHMREPL_E_NO_SLOT (-9)        /* every reader slot of the ring is taken */
#define SHMREPL_E_NOMEM (-10)         /* out of memory */
#define SHMREPL_E_PERMISSION (-11)    /* not allowed (mode, uid) */
#define SHMREPL_E_SYSTEM (-12)        /* an operating-system call failed; see last_error */
#define SHMREPL_E_ENGINE_DIED (-13)   /* the engine process went away */
#define SHMREPL_E_PROTOCOL (-14)      /* a malformed or unexpected control message */
#define SHMREPL_E_STATE (-15)         /* the call does not fit the handle's state */
#define SHMREPL_E_CONNECT (-16)       /* no engine could be reached or started */
#define SHMREPL_E_TOO_LARGE (-17)     /* a request exceeds a documented limit */
#define SHMREPL_E_SESSION_DIED (-18)  /* the session's worker process died (crash, kill,
                                       * os._exit): open a new session */
#define SHMREPL_E_LIMIT (-19)         /* an engine limit (connections, sessions, ring
                                       * bytes) is reached: retry after closing some
                                       * (since 1.2) */
#define SHMREPL_E_INTERNAL (-99)      /* a bug in shmrepl: please report it */

/* ---- records ---------------------------------------------------------- */
typedef enum shmrepl_record_kind {
  SHMREPL_RECORD_UNKNOWN = 0, /* a kind newer than this library: skip it (raw is valid) */
  SHMREPL_RECORD_STARTED = 1,
  SHMREPL_RECORD_OUTPUT = 2,
  SHMREPL_RECORD_RESULT = 3,
  SHMREPL_RECORD_ERROR = 4,
  SHMREPL_RECORD_INPUT_REQUEST = 5,
  SHMREPL_RECORD_FINISHED = 6
} shmrepl_record_kind_t;

typedef enum shmrepl_stream {
  SHMREPL_STREAM_NONE = 0,
  SHMREPL_STREAM_STDOUT = 1,
  SHMREPL_STREAM_STDERR = 2
} shmrepl_stream_t;

typedef enum shmrepl_finish_status {
  SHMREPL_FINISH_OK = 0,
  SHMREPL_FINISH_ERROR = 1,
  SHMREPL_FINISH_CANCELLED = 2,
  SHMREPL_FINISH_EXITED = 3,
  SHMREPL_FINISH_ABORTED = 4, /* the worker died: exit_code, and the signal in reserved[0] */
  SHMREPL_FINISH_TIMEOUT = 5,     /* its timeout_ns passed (since 1.1) */
  SHMREPL_FINISH_MEMORY_LIMIT = 6 /* it ran out of its memory_limit (since 1.1) */
} shmrepl_finish_status_t;

/* Record flags: one write larger than the ring's largest record arrives as several
 * Output records; the first has MORE, the middle ones MORE|CONTINUED, the last
 * CONTINUED. Split points fall on UTF-8 character boundaries of text writes. A repr
 * too large for one Result record is split the same way into Result records. */
#define SHMREPL_FLAG_MORE 0x1u
#define SHMREPL_FLAG_CONTINUED 0x2u
/* INPUT_REQUEST: the program asks for a password (getpass): do not echo the answer.
 * Since 1.2. */
#define SHMREPL_FLAG_PASSWORD 0x4u

/* A view of one record. Filled by the library; every pointer points into the
 * shared mapping (nothing is copied) and stays valid until the record is released
 * with shmrepl_reader_release() or the reader is closed.
 *  - OUTPUT: data = the bytes written, stream = stdout/stderr.
 *  - RESULT: data = the repr text (not NUL-terminated).
 *  - ERROR: data = the exception's message (evalue); see shmrepl_record_error().
 *  - INPUT_REQUEST: data = the prompt; flags has SHMREPL_FLAG_PASSWORD for getpass().
 *    The program waits for shmrepl_execution_send_input().
 *  - FINISHED: finish_status, exit_code, duration_ns; reserved[0] holds the number
 *    of the signal that ended the session's worker process (0: none), since 1.1.
 *    ABORTED: exit_code is the worker's exit status (os._exit(n): n), 0 after a
 *    signal.
 *  - STARTED: data = the client's execution id string, if it gave one.
 * The layout is fixed for ABI version 1 (reserved fields keep room to grow). */
typedef struct shmrepl_record {
  uint32_t kind;          /* shmrepl_record_kind_t */
  uint32_t stream;        /* shmrepl_stream_t */
  uint32_t flags;         /* SHMREPL_FLAG_* */
  uint32_t finish_status; /* shmrepl_finish_status_t, FINISHED only */
  uint64_t execution_id;
  uint64_t seq;           /* gap-free per execution, from 0 */
  uint64_t timestamp_ns;  /* CLOCK_REALTIME when the record was written */
  const uint8_t* data;
  size_t data_len;
  const uint8_t* raw;     /* the whole FlatBuffers Record (abi/shmrepl.fbs), verified */
  size_t raw_len;
  int64_t exit_code;      /* FINISHED only */
  uint64_t duration_ns;   /* FINISHED only */
  uint64_t reserved[2];
} shmrepl_record_t;

/* ---- diagnostics (usable before anything else) ------------------------ */
/* "MAJOR.MINOR.PATCH"; static storage. */
SHMREPL_API const char* shmrepl_version(void);
/* SHMREPL_ABI_VERSION of the loaded library. */
SHMREPL_API uint32_t shmrepl_abi_version(void);
/* A short constant English text for a status; never NULL. */
SHMREPL_API const char* shmrepl_status_str(shmrepl_status_t status);
/* Detail of the last error on this thread: "" after a call that did not fail (OK,
 * E_EOF, E_AGAIN, E_TIMEOUT). Valid until the next shmrepl call on this thread. */
SHMREPL_API const char* shmrepl_last_error(void);

/* ---- reader side ------------------------------------------------------ */
typedef struct shmrepl_reader shmrepl_reader_t;

/* Where a newly attached reader starts. */
typedef enum shmrepl_reader_start {
  /* The oldest record still held by the ring. The producer never discards a
   * record that an attached reader has not released, and keeps every record while
   * no reader is attached; so a reader that attaches before anyone released gets
   * every record from seq 0. A reader that attaches after other readers released
   * records starts at the oldest one they all still hold (its first record's seq
   * says where). */
  SHMREPL_START_OLDEST = 0,
  /* Only records written after the reader attached. */
  SHMREPL_START_NEWEST = 1
} shmrepl_reader_start_t;

typedef struct shmrepl_reader_options {
  uint32_t struct_size; /* sizeof(shmrepl_reader_options_t) */
  uint32_t start;       /* shmrepl_reader_start_t */
} shmrepl_reader_options_t;

/* Attach a reader to the ring `ring_name` (as an engine reply gives it, e.g.
 * "shmrepl.1000.4242.7"). `options` may be NULL for the defaults. A ring this
 * process was handed (an execution's or a session's background ring, while its
 * handle or session is open) is mapped from its descriptor; a named ring in
 * /dev/shm is opened by name; any other is asked of the engine at the default
 * socket ($SHMREPL_SOCKET, else the default path; never started for this), which
 * hands over the descriptor of a live ring of its workers (one round trip).
 * Returns OK and *out, or E_INVALID (bad name), E_NOT_FOUND (also: no engine to
 * ask, or the ring was finished and released), E_PERMISSION (also: a descriptor
 * not sealed against resizing), E_CORRUPT (not a ring, truncated), E_VERSION
 * (other layout), E_NO_SLOT. */
SHMREPL_API shmrepl_status_t shmrepl_reader_open(const char* ring_name,
                                                 const shmrepl_reader_options_t* options,
                                                 shmrepl_reader_t** out);

/* Detach and unmap. Every record view of this reader ends here. Accepts NULL. */
SHMREPL_API void shmrepl_reader_close(shmrepl_reader_t* reader);

/* The next record, in order. timeout_ns: 0 = do not wait, < 0 = wait forever,
 * else wait at most that long. Returns OK and *out; E_AGAIN (timeout 0, nothing
 * yet); E_TIMEOUT; E_EOF (finished and everything read); E_PRODUCER_DIED (the
 * writer died; every record it published was delivered first); E_CORRUPT (also a
 * ring marked finished whose stream does not end with a FINISHED record); E_STATE
 * (the reader is in use by another thread: next, next_batch, release and held
 * refuse a second thread rather than corrupt the reader).
 * The record stays valid until released; records must be released in order.
 * Release what you are done with before waiting for more: the producer waits for
 * space the held records occupy, so a reader that holds most of the ring and then
 * waits forever waits for itself. */
SHMREPL_API shmrepl_status_t shmrepl_reader_next(shmrepl_reader_t* reader, int64_t timeout_ns,
                                                 shmrepl_record_t* out);

/* Up to `max` records into out[0..*n). Waits (as _next) only when none is ready;
 * then returns as many as are ready without waiting again. *n is 0 whenever the
 * status is not OK. */
SHMREPL_API shmrepl_status_t shmrepl_reader_next_batch(shmrepl_reader_t* reader,
                                                       shmrepl_record_t* out, size_t max,
                                                       size_t* n, int64_t timeout_ns);

/* Give back the oldest `n` records handed out and not yet released: their views
 * end and the producer may reuse the space. E_INVALID if n exceeds what is held. */
SHMREPL_API shmrepl_status_t shmrepl_reader_release(shmrepl_reader_t* reader, size_t n);

/* Records handed out and not yet released. */
SHMREPL_API size_t shmrepl_reader_held(const shmrepl_reader_t* reader);

/* The execution id that the ring's header carries. */
SHMREPL_API uint64_t shmrepl_reader_execution_id(const shmrepl_reader_t* reader);

/* The reader's whole mapping of the ring: every pointer of a record view lies in
 * [*base, *base + *len). For bindings and tests that check views are zero-copy.
 * Valid until the reader is closed. Since 1.1. E_INVALID for NULL arguments. */
SHMREPL_API shmrepl_status_t shmrepl_reader_mapping(const shmrepl_reader_t* reader,
                                                    const uint8_t** base, size_t* len);

/* The structured part of an ERROR record: type name, message, and traceback line
 * `index` (0-based; *n_lines gets the count). Each pointer points into the mapping,
 * valid as long as the record. Any out pointer may be NULL. */
typedef struct shmrepl_bytes {
  const uint8_t* ptr;
  size_t len;
} shmrepl_bytes_t;
SHMREPL_API shmrepl_status_t shmrepl_record_error(const shmrepl_record_t* record,
                                                  shmrepl_bytes_t* ename,
                                                  shmrepl_bytes_t* evalue, size_t* n_lines);
SHMREPL_API shmrepl_status_t shmrepl_record_traceback_line(const shmrepl_record_t* record,
                                                           size_t index, shmrepl_bytes_t* line);

/* ---- client side ------------------------------------------------------ */
/* A connection to an engine over its Unix domain socket. An engine is started
 * automatically when none listens (see shmrepl_client_options_t). Unlike a reader,
 * a client may be used from several threads: its requests are serialized. An
 * execution may be cancelled from another thread than the one reading its ring. */
typedef struct shmrepl_client shmrepl_client_t;
typedef struct shmrepl_execution shmrepl_execution_t;

typedef enum shmrepl_autostart {
  SHMREPL_AUTOSTART_DEFAULT = 0, /* on */
  SHMREPL_AUTOSTART_ON = 1,
  SHMREPL_AUTOSTART_OFF = 2
} shmrepl_autostart_t;

/* All-zero fields (after struct_size) mean the defaults. */
typedef struct shmrepl_client_options {
  uint32_t struct_size;       /* sizeof(shmrepl_client_options_t) */
  uint32_t autostart;         /* shmrepl_autostart_t */
  /* The engine's socket. NULL: $SHMREPL_SOCKET if set, else
   * $XDG_RUNTIME_DIR/shmrepl/default.sock, else /tmp/shmrepl-<uid>/default.sock
   * (that folder is created mode 0700 and refused if it is not ours or not 0700). */
  const char* socket_path;
  /* The engine to start. NULL: $SHMREPL_ENGINE, else <libdir>/../bin/shmrepl-engine
   * next to libshmrepl, else shmrepl-engine next to the running executable. */
  const char* engine_path;
  /* How long to wait for a started engine to listen. 0: 5 s. */
  int64_t connect_timeout_ns;
  /* Since 1.2 (a struct_size of 32, the 1.0 size, leaves it 0). How long any one
   * request may wait for its reply (to the engine or a session's worker); 0: no limit.
   * A request that times out returns SHMREPL_E_TIMEOUT and leaves that connection
   * unusable: later requests on it return SHMREPL_E_STATE; connect again. */
  int64_t request_timeout_ns;
} shmrepl_client_options_t;

/* Connects (starting an engine if none listens and autostart is on; a started
 * engine runs detached, its stderr goes to "<socket>.log") and says Hello.
 * `options` may be NULL. Returns OK and *out; E_CONNECT (nothing listens and no
 * engine could be started in time), E_PERMISSION (the socket folder is not private,
 * or the engine runs as another user), E_VERSION, E_INVALID (path too long). */
SHMREPL_API shmrepl_status_t shmrepl_client_connect(const shmrepl_client_options_t* options,
                                                    shmrepl_client_t** out);

/* Closes the connection; the engine closes the client's sessions and releases its
 * executions. Execution handles of this client stay valid for
 * shmrepl_execution_close() only. Accepts NULL. */
SHMREPL_API void shmrepl_client_close(shmrepl_client_t* client);

/* The engine's process id (from its Hello reply). */
SHMREPL_API uint32_t shmrepl_client_engine_pid(const shmrepl_client_t* client);

/* Every request below returns OK or: E_ENGINE_DIED (the connection closed: every
 * later request returns it too), E_PROTOCOL, E_STATE (the client was closed), or
 * the status the engine replied with (detail in shmrepl_last_error()). */

/* A new session (its own Python namespace; runs one execution at a time). */
SHMREPL_API shmrepl_status_t shmrepl_session_open(shmrepl_client_t* client, uint64_t* session_id);
/* The name of the session's background ring: output that threads started by one
 * of its executions write after that execution finished (records carry the id of
 * the execution that started the thread). "" if the engine has none or the
 * session is unknown. Valid until the session or the client is closed. */
SHMREPL_API const char* shmrepl_session_background_ring(shmrepl_client_t* client,
                                                        uint64_t session_id);
/* Where and how a session's worker process runs (since 1.1). All-zero fields
 * (after struct_size) mean the engine's defaults. Accepted at any struct_size from
 * this first published size (40 bytes) up. */
typedef struct shmrepl_session_options {
  uint32_t struct_size;       /* sizeof(shmrepl_session_options_t) */
  uint32_t flags;             /* none defined yet: 0 */
  const char* working_dir;    /* NULL: the engine's working folder */
  /* NULL: the engine's environment. Else the whole environment of the session:
   * envc "NAME=value" strings (os.environ). One that gives a variable CPython reads
   * only at start-up (PYTHONHASHSEED, PYTHONWARNINGS...) another value than the
   * engine's gets a freshly started interpreter; VIRTUAL_ENV applies its venv. */
  const char* const* env;
  size_t envc;
  /* The session's standard input: a descriptor of the caller plus one (0: none,
   * stdin is /dev/null). The descriptor is passed to the worker (SCM_RIGHTS); the
   * caller keeps its own and may close it after this call. The worker shares the
   * open file with the caller (flags included): pass a blocking descriptor, as
   * python3 expects of its stdin. */
  int32_t stdin_fd_plus_one;
  uint32_t reserved;          /* 0 */
  /* Since 1.2 (a struct_size of 40, the 1.1 size, leaves them 0). The caller's
   * standard output and error: a descriptor plus one (0: none). They are never
   * written (output still goes to the ring): they only answer, in the program,
   * sys.stdout.isatty() / sys.stderr.isatty() (and os.isatty(1|2)) and the
   * terminal size of fds 1/2 (os.get_terminal_size(), shutil.get_terminal_size()),
   * asked of the terminal each time, so a resize shows. Passed as stdin is; the
   * caller may close its own after this call. */
  int32_t stdout_fd_plus_one;
  int32_t stderr_fd_plus_one;
} shmrepl_session_options_t;

/* Opens a session as shmrepl_session_open does, with `options` (NULL: defaults).
 * E_NOT_FOUND: working_dir does not exist; E_INVALID: bad options (a NUL-less env
 * entry, a bad descriptor; working_dir, env or a descriptor given to an engine that
 * runs sessions in its own process), or env's VIRTUAL_ENV is a venv of another Python
 * than the engine's (shmrepl_last_error() says so in one line). Since 1.1. */
SHMREPL_API shmrepl_status_t shmrepl_session_open_ex(shmrepl_client_t* client,
                                                     const shmrepl_session_options_t* options,
                                                     uint64_t* session_id);

/* Cancels what runs or waits in the session, drops it and releases its executions.
 * E_NOT_FOUND if the session is not one of this client's. */
SHMREPL_API shmrepl_status_t shmrepl_session_close(shmrepl_client_t* client, uint64_t session_id);

typedef struct shmrepl_execute_options {
  uint32_t struct_size;              /* sizeof(shmrepl_execute_options_t) */
  uint32_t script;                   /* nonzero: run as a program (python3 FILE): no RESULT;
                                      * at its end its non-daemon threads are waited
                                      * for and its atexit handlers run */
  uint64_t session_id;
  const char* code;                  /* Python source, UTF-8; need not be NUL-terminated */
  size_t code_len;
  const char* client_execution_id;   /* NULL or a NUL-terminated id for the STARTED record */
  const char* filename;              /* NULL: "<shmrepl>"; shown in tracebacks */
  const char* const* argv;           /* sys.argv during the execution (argc strings) */
  size_t argc;
  uint64_t ring_capacity;            /* data bytes of the ring; 0: the engine's default */
  /* Since 1.1 (a struct_size of 72, the 1.0 size, leaves them 0). Limits for code
   * that is not trusted to end, e.g. in test harnesses: */
  /* > 0: after this long (from when the worker accepted it) the execution is
   * interrupted (KeyboardInterrupt) and, if it has not ended 3 s later, its worker is
   * killed; FINISHED says TIMEOUT either way. */
  int64_t timeout_ns;
  /* > 0: bytes the worker's heap may grow by while the execution runs (RLIMIT_DATA);
   * an allocation beyond raises MemoryError and FINISHED says MEMORY_LIMIT. */
  uint64_t memory_limit;
} shmrepl_execute_options_t;

/* Queues code in a session. Returns OK and *out (owned by the caller; close it with
 * shmrepl_execution_close()). The ring exists, holding the STARTED record, when
 * this returns. E_NOT_FOUND (unknown session), E_TOO_LARGE (the request exceeds
 * 64 MiB), E_INVALID, E_LIMIT (its ring would pass the engine's ring-byte limit). A client_execution_id longer than one record of the ring
 * holds (capacity / 4 - 264 bytes, the capacity rounded up to a power of two)
 * arrives in STARTED shortened, ending in "[... N bytes omitted ...]". */
SHMREPL_API shmrepl_status_t shmrepl_execute(shmrepl_client_t* client,
                                             const shmrepl_execute_options_t* options,
                                             shmrepl_execution_t** out);

/* The engine's id of the execution (every record of it carries this id). */
SHMREPL_API uint64_t shmrepl_execution_id(const shmrepl_execution_t* execution);
/* The execution's ring name (for shmrepl_reader_open(), also from other processes).
 * Valid as long as the handle. */
SHMREPL_API const char* shmrepl_execution_ring_name(const shmrepl_execution_t* execution);
/* Opens a reader on the execution's ring (as shmrepl_reader_open). The reader is
 * independent of the handle and the client; close it with shmrepl_reader_close(). */
SHMREPL_API shmrepl_status_t shmrepl_execution_reader(const shmrepl_execution_t* execution,
                                                      const shmrepl_reader_options_t* options,
                                                      shmrepl_reader_t** out);
/* Raises KeyboardInterrupt in the execution (a queued one finishes cancelled
 * without running). OK also when it had already finished. May be called from any
 * thread. */
SHMREPL_API shmrepl_status_t shmrepl_execution_cancel(shmrepl_execution_t* execution);
/* Answers the execution's INPUT_REQUEST record: `text` (UTF-8, len bytes, need not
 * be NUL-terminated; NULL with len 0 is "") is what the program's input() or
 * getpass() returns, less one trailing "\n". Sessions opened without a stdin
 * descriptor ask this way; each request takes one answer. May be called from any
 * thread. E_STATE: the execution is not waiting for input (none asked yet, already
 * answered, finished); E_INVALID: NULL; E_TOO_LARGE: over 64 MiB. Since 1.2. */
SHMREPL_API shmrepl_status_t shmrepl_execution_send_input(shmrepl_execution_t* execution,
                                                          const char* text, size_t len);
/* Releases the ring (the engine unlinks its name once the execution has finished;
 * open readers keep working) and frees the handle. Does not wait for the engine's
 * answer: that is read with the next request's reply on the same connection.
 * Accepts NULL. */
SHMREPL_API void shmrepl_execution_close(shmrepl_execution_t* execution);

/* Asks the engine to stop: it cancels every execution, unlinks its rings and its
 * socket, and exits. Returns once the engine has closed the connection (E_TIMEOUT
 * after 30 s). The client can only be closed afterwards. */
SHMREPL_API shmrepl_status_t shmrepl_engine_shutdown(shmrepl_client_t* client);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* SHMREPL_SHMREPL_H */
