package shmrepl

/*
#include <stdlib.h>
#include <shmrepl/shmrepl.h>
*/
import "C"

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"
)

// Autostart says whether Connect starts an engine when none listens.
type Autostart uint32

const (
	AutostartDefault Autostart = 0 // on
	AutostartOn      Autostart = 1
	AutostartOff     Autostart = 2
)

// Options for Connect. The zero value means the library's defaults.
type Options struct {
	// SocketPath of the engine. "": $SHMREPL_SOCKET, else
	// $XDG_RUNTIME_DIR/shmrepl/default.sock, else /tmp/shmrepl-<uid>/default.sock.
	SocketPath string
	// EnginePath of the engine to start. "": $SHMREPL_ENGINE, else
	// <libdir>/../bin/shmrepl-engine next to libshmrepl.
	EnginePath string
	Autostart  Autostart
	// ConnectTimeout for a started engine to listen. 0: 5 s.
	ConnectTimeout time.Duration
	// RequestTimeout for any one request's reply. 0: no limit. When it passes the
	// call returns ErrTimeout and the connection is unusable (later calls return
	// ErrState: connect again).
	RequestTimeout time.Duration
}

// Client is a connection to an engine. It may be used from several goroutines
// (the library serializes requests). Close it when done.
type Client struct {
	mu  sync.RWMutex // Close takes it exclusively: no call is in flight when the handle is freed
	c   *C.shmrepl_client_t
	pid int
}

func cstringOrNil(s string) *C.char {
	if s == "" {
		return nil
	}
	return C.CString(s)
}

// Connect connects to an engine, starting one when none listens and Autostart
// is not off. Errors: ErrConnect, ErrPermission, ErrVersion, ErrInvalid.
func Connect(o Options) (*Client, error) {
	if loadErr != nil {
		return nil, loadErr
	}
	sock, eng := cstringOrNil(o.SocketPath), cstringOrNil(o.EnginePath)
	defer C.free(unsafe.Pointer(sock))
	defer C.free(unsafe.Pointer(eng))
	opts := C.shmrepl_client_options_t{
		struct_size:        clientOptionsSize,
		autostart:          C.uint32_t(o.Autostart),
		socket_path:        sock,
		engine_path:        eng,
		connect_timeout_ns: C.int64_t(o.ConnectTimeout.Nanoseconds()),
		request_timeout_ns: C.int64_t(o.RequestTimeout.Nanoseconds()),
	}
	var c *C.shmrepl_client_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := C.shmrepl_client_connect(&opts, &c); st != C.SHMREPL_OK {
		return nil, lastError("connect", st)
	}
	return &Client{c: c, pid: int(C.shmrepl_client_engine_pid(c))}, nil
}

// EnginePID is the engine's process id.
func (cl *Client) EnginePID() int { return cl.pid }

// Close closes the connection; the engine closes the client's sessions.
// Calling it again does nothing; later calls return ErrClosed.
func (cl *Client) Close() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.c != nil {
		C.shmrepl_client_close(cl.c)
		cl.c = nil
	}
	return nil
}

// call runs one request with the client's read lock held, on a locked OS
// thread, and turns a failure into an *Error with the thread's last error.
func (cl *Client) call(op string, f func(*C.shmrepl_client_t) C.shmrepl_status_t) error {
	cl.mu.RLock()
	defer cl.mu.RUnlock()
	if cl.c == nil {
		return errClosed(op)
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := f(cl.c); st != C.SHMREPL_OK {
		return lastError(op, st)
	}
	return nil
}

// Shutdown asks the engine to stop (it cancels every execution and unlinks its
// rings and socket) and returns once it closed the connection. Close the
// client afterwards.
func (cl *Client) Shutdown() error {
	return cl.call("engine shutdown", func(c *C.shmrepl_client_t) C.shmrepl_status_t {
		return C.shmrepl_engine_shutdown(c)
	})
}

// Session is a Python namespace in the engine; it runs one execution at a time.
type Session struct {
	client *Client
	id     uint64
}

// OpenSession opens a new session with the engine's defaults. Errors:
// ErrEngineDied, ErrState.
func (cl *Client) OpenSession() (*Session, error) {
	var id C.uint64_t
	err := cl.call("open session", func(c *C.shmrepl_client_t) C.shmrepl_status_t {
		return C.shmrepl_session_open(c, &id)
	})
	if err != nil {
		return nil, err
	}
	return &Session{client: cl, id: uint64(id)}, nil
}

// SessionOptions say where and how a session's worker process runs. The zero
// value means the engine's defaults (as OpenSession).
type SessionOptions struct {
	// WorkingDir of the session ("": the engine's). ErrNotFound if it does not exist.
	WorkingDir string
	// Env is the session's whole environment (os.environ), "NAME=value" strings.
	// nil: the engine's environment; an empty non-nil slice: an empty one.
	Env []string
	// Stdin is the session's standard input (nil: /dev/null). The worker gets
	// a duplicate of the descriptor, which shares the file's offset and flags:
	// as os/exec does with an *os.File, the file is put in blocking mode (Fd),
	// since Python reads it with blocking calls. The caller keeps Stdin and may
	// close it once OpenSessionWith returned. Without Stdin, input() asks the
	// client: an INPUT_REQUEST record answered with Execution.SendInput.
	Stdin *os.File
	// Stdout and Stderr are the caller's streams (nil: none), never written: they
	// only answer the program's sys.stdout/sys.stderr.isatty() and the terminal
	// size (os.get_terminal_size(), shutil.get_terminal_size(), live). libshmrepl 1.2.
	Stdout *os.File
	Stderr *os.File
}

// OpenSessionWith opens a new session with o (libshmrepl 1.1). Errors:
// ErrNotFound (no such WorkingDir), ErrInvalid (a NUL byte in a string, a
// closed Stdin), ErrEngineDied.
func (cl *Client) OpenSessionWith(o SessionOptions) (*Session, error) {
	const op = "open session"
	if strings.IndexByte(o.WorkingDir, 0) >= 0 {
		return nil, &Error{Status: StatusInvalid, Op: op, Message: "WorkingDir holds a NUL byte"}
	}
	opts := C.shmrepl_session_options_t{struct_size: sessionOptionsSize}
	if o.WorkingDir != "" {
		opts.working_dir = C.CString(o.WorkingDir)
		defer C.free(unsafe.Pointer(opts.working_dir))
	}
	if o.Env != nil {
		// C memory (never Go pointers inside the options); one slot at least so
		// that an empty environment is a non-NULL env.
		env := (**C.char)(C.calloc(C.size_t(len(o.Env)+1), C.size_t(unsafe.Sizeof(uintptr(0)))))
		defer C.free(unsafe.Pointer(env))
		entries := unsafe.Slice(env, len(o.Env)+1)
		for i, kv := range o.Env {
			if strings.IndexByte(kv, 0) >= 0 {
				return nil, &Error{Status: StatusInvalid, Op: op, Message: "Env[" + strconv.Itoa(i) + "] holds a NUL byte"}
			}
			entries[i] = C.CString(kv)
			defer C.free(unsafe.Pointer(entries[i]))
		}
		opts.env = env
		opts.envc = C.size_t(len(o.Env))
	}
	for _, f := range []struct {
		file *os.File
		name string
		dst  *C.int32_t
	}{{o.Stdin, "Stdin", &opts.stdin_fd_plus_one}, {o.Stdout, "Stdout", &opts.stdout_fd_plus_one},
		{o.Stderr, "Stderr", &opts.stderr_fd_plus_one}} {
		if f.file == nil {
			continue
		}
		fd := f.file.Fd() // blocking mode; ^uintptr(0) once closed
		if fd == ^uintptr(0) {
			return nil, &Error{Status: StatusInvalid, Op: op, Message: f.name + " is closed"}
		}
		*f.dst = C.int32_t(fd + 1)
		defer runtime.KeepAlive(f.file) // no finalizer closes fd during the call
	}
	var id C.uint64_t
	err := cl.call(op, func(c *C.shmrepl_client_t) C.shmrepl_status_t {
		return C.shmrepl_session_open_ex(c, &opts, &id)
	})
	if err != nil {
		return nil, err
	}
	return &Session{client: cl, id: uint64(id)}, nil
}

// ID is the engine's session id (ExecuteOptions.Session).
func (s *Session) ID() uint64 { return s.id }

// BackgroundRing is the name of the ring that gets output of threads started by
// the session's executions after the execution finished; "" if none.
func (s *Session) BackgroundRing() string {
	s.client.mu.RLock()
	defer s.client.mu.RUnlock()
	if s.client.c == nil {
		return ""
	}
	return C.GoString(C.shmrepl_session_background_ring(s.client.c, C.uint64_t(s.id)))
}

// Close cancels what runs in the session and drops it (ErrNotFound the second time).
func (s *Session) Close() error {
	return s.client.call("close session", func(c *C.shmrepl_client_t) C.shmrepl_status_t {
		return C.shmrepl_session_close(c, C.uint64_t(s.id))
	})
}

// Execute runs code in this session (opts.Session is set to it).
func (s *Session) Execute(opts ExecuteOptions) (*Execution, error) {
	opts.Session = s.id
	return s.client.Execute(opts)
}

// ExecuteOptions of one execution. Zero values mean the defaults.
type ExecuteOptions struct {
	Session           uint64   // Session.ID()
	Code              string   // Python source
	ClientExecutionID string   // the STARTED record's data; "": none
	Filename          string   // shown in tracebacks; "": "<shmrepl>"
	Argv              []string // sys.argv during the execution
	Script            bool     // run as a program (python3 FILE): no RESULT records
	RingCapacity      uint64   // data bytes of the ring; 0: the engine's default
	// Timeout > 0 (since 1.1): once the worker has run the execution this long
	// it is interrupted (KeyboardInterrupt) and, if it goes on for 3 s more, its
	// worker is killed (the session then returns ErrSessionDied); FINISHED says
	// FinishTimeout either way. Zero or negative: no limit.
	Timeout time.Duration
	// MemoryLimit > 0 (since 1.1): bytes the worker's heap may grow by while the
	// execution runs; an allocation beyond raises MemoryError and FINISHED says
	// FinishMemoryLimit. 0: no limit.
	MemoryLimit uint64
}

// Execution is a queued or running execution. Close it when done (that lets the
// engine unlink its ring once finished; open readers keep working).
type Execution struct {
	mu     sync.Mutex
	e      *C.shmrepl_execution_t
	client *Client
	id     uint64
	ring   string
}

// Execute queues code in a session. The ring exists, holding the STARTED
// record, when it returns. Errors: ErrNotFound (unknown session), ErrTooLarge,
// ErrInvalid, ErrSessionDied (the session's worker process died: the ring of
// what ran ended FINISHED ABORTED, or CANCELLED after a cancel's kill; open a
// new session), ErrEngineDied.
func (cl *Client) Execute(o ExecuteOptions) (*Execution, error) {
	// The library must not see Go pointers inside the options: copy to C memory.
	code := C.CString(o.Code)
	defer C.free(unsafe.Pointer(code))
	cid, fname := cstringOrNil(o.ClientExecutionID), cstringOrNil(o.Filename)
	defer C.free(unsafe.Pointer(cid))
	defer C.free(unsafe.Pointer(fname))
	var argv **C.char
	if len(o.Argv) > 0 {
		argv = (**C.char)(C.calloc(C.size_t(len(o.Argv)), C.size_t(unsafe.Sizeof(uintptr(0)))))
		defer C.free(unsafe.Pointer(argv))
		args := unsafe.Slice(argv, len(o.Argv))
		for i, a := range o.Argv {
			args[i] = C.CString(a)
			defer C.free(unsafe.Pointer(args[i]))
		}
	}
	script := C.uint32_t(0)
	if o.Script {
		script = 1
	}
	opts := C.shmrepl_execute_options_t{
		struct_size:         executeOptionsSize,
		script:              script,
		session_id:          C.uint64_t(o.Session),
		code:                code,
		code_len:            C.size_t(len(o.Code)),
		client_execution_id: cid,
		filename:            fname,
		argv:                argv,
		argc:                C.size_t(len(o.Argv)),
		ring_capacity:       C.uint64_t(o.RingCapacity),
		memory_limit:        C.uint64_t(o.MemoryLimit),
	}
	if o.Timeout > 0 {
		opts.timeout_ns = C.int64_t(o.Timeout.Nanoseconds())
	}
	var e *C.shmrepl_execution_t
	err := cl.call("execute", func(c *C.shmrepl_client_t) C.shmrepl_status_t {
		return C.shmrepl_execute(c, &opts, &e)
	})
	if err != nil {
		return nil, err
	}
	return &Execution{e: e, client: cl, id: uint64(C.shmrepl_execution_id(e)),
		ring: C.GoString(C.shmrepl_execution_ring_name(e))}, nil
}

// ID is the engine's execution id; every record of the execution carries it.
func (x *Execution) ID() uint64 { return x.id }

// RingName is the execution's ring (for OpenReader, also from other processes).
func (x *Execution) RingName() string { return x.ring }

// Reader opens a reader on the execution's ring. It is independent of the
// Execution and the Client: close it on its own.
func (x *Execution) Reader(start Start) (*Reader, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.e == nil {
		return nil, errClosed("execution reader")
	}
	opts := readerOptions(start)
	var r *C.shmrepl_reader_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := C.shmrepl_execution_reader(x.e, &opts, &r); st != C.SHMREPL_OK {
		return nil, lastError("execution reader", st)
	}
	return &Reader{r: r}, nil
}

// Cancel raises KeyboardInterrupt in the execution (a queued one finishes
// cancelled without running). Nil also when it had already finished. Safe from
// any goroutine, also while another one reads the ring. ErrSessionDied once
// the session's worker process died (also when the engine was killed).
func (x *Execution) Cancel() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.e == nil {
		return errClosed("cancel")
	}
	return x.client.call("cancel", func(*C.shmrepl_client_t) C.shmrepl_status_t {
		return C.shmrepl_execution_cancel(x.e)
	})
}

// SendInput answers the execution's INPUT_REQUEST: the program's input() (or
// getpass()) returns text (UTF-8; one trailing newline is dropped). ErrState if
// it is not waiting for input (none asked, already answered, finished).
// libshmrepl 1.2.
func (x *Execution) SendInput(text string) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.e == nil {
		return errClosed("send input")
	}
	var p *C.char
	if len(text) > 0 {
		p = C.CString(text)
		defer C.free(unsafe.Pointer(p))
	}
	return x.client.call("send input", func(*C.shmrepl_client_t) C.shmrepl_status_t {
		return C.shmrepl_execution_send_input(x.e, p, C.size_t(len(text)))
	})
}

// Close releases the ring and frees the handle. Calling it again does nothing.
func (x *Execution) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.e != nil {
		x.client.mu.RLock() // not while the client is being closed
		C.shmrepl_execution_close(x.e)
		x.client.mu.RUnlock()
		x.e = nil
	}
	return nil
}
