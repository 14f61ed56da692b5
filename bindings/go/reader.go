package shmrepl

/*
#include <stdlib.h>
#include <shmrepl/shmrepl.h>
*/
import "C"

import (
	"errors"
	"io"
	"runtime"
	"sync"
	"time"
	"unsafe"
)

// Start says where a newly attached reader begins.
type Start uint32

const (
	// StartOldest begins at the oldest record the ring still holds (seq 0 when
	// no other reader has released records yet).
	StartOldest Start = 0
	// StartNewest sees only records written after the reader attached.
	StartNewest Start = 1
)

// Reader reads one ring, in order. A Reader is used by one goroutine at a time;
// Close may be called from anywhere (it waits for a call in progress).
//
// Records handed out by Next and NextBatch are held until Release: their Data
// and Raw views point into the ring and end at Release or Close. Release what
// you are done with before waiting for more: the producer waits for the space
// held records occupy.
type Reader struct {
	mu  sync.Mutex
	r   *C.shmrepl_reader_t
	one Record // Next's scratch: passing it to C does not allocate
}

func readerOptions(start Start) C.shmrepl_reader_options_t {
	return C.shmrepl_reader_options_t{struct_size: readerOptionsSize, start: C.uint32_t(start)}
}

// OpenReader attaches to the ring called name (as Execution.RingName or
// Session.BackgroundRing give it, also from another process).
// Errors: ErrInvalid (bad name), ErrNotFound, ErrPermission, ErrCorrupt,
// ErrVersion, ErrNoSlot.
func OpenReader(name string, start Start) (*Reader, error) {
	if loadErr != nil {
		return nil, loadErr
	}
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	opts := readerOptions(start)
	var r *C.shmrepl_reader_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := C.shmrepl_reader_open(cname, &opts, &r); st != C.SHMREPL_OK {
		return nil, lastError("open reader "+name, st)
	}
	return &Reader{r: r}, nil
}

// Next returns the next record. timeout: 0 polls (ErrAgain when nothing is
// ready), Forever waits without limit, else ErrTimeout after that long.
// ErrEOF: the ring is finished and fully read. ErrProducerDied: the writer died
// (after every record it published was delivered).
func (rd *Reader) Next(timeout time.Duration) (Record, error) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.r == nil {
		return Record{}, errClosed("reader next")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := C.shmrepl_reader_next(rd.r, timeoutNs(timeout), rd.one.c()); st != C.SHMREPL_OK {
		return Record{}, lastError("reader next", st)
	}
	return rd.one, nil
}

// NextBatch fills buf[:n] with up to len(buf) records in one call into the
// library: it waits (as Next) only when none is ready, then returns what is
// ready. n is 0 whenever err is not nil. The records' views are valid until
// they are released.
func (rd *Reader) NextBatch(buf []Record, timeout time.Duration) (int, error) {
	if len(buf) == 0 {
		return 0, &Error{Status: StatusInvalid, Op: "reader next batch", Message: "empty buffer"}
	}
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.r == nil {
		return 0, errClosed("reader next batch")
	}
	var n C.size_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	st := C.shmrepl_reader_next_batch(rd.r, buf[0].c(), C.size_t(len(buf)), &n, timeoutNs(timeout))
	if st != C.SHMREPL_OK {
		return 0, lastError("reader next batch", st)
	}
	return int(n), nil
}

// Release gives back the oldest n records handed out and not yet released:
// their views end here. ErrInvalid if n exceeds Held().
func (rd *Reader) Release(n int) error {
	if n < 0 {
		return &Error{Status: StatusInvalid, Op: "reader release", Message: "negative count"}
	}
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.r == nil {
		return errClosed("reader release")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := C.shmrepl_reader_release(rd.r, C.size_t(n)); st != C.SHMREPL_OK {
		return lastError("reader release", st)
	}
	return nil
}

// Held is the number of records handed out and not yet released (0 once closed).
func (rd *Reader) Held() int {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.r == nil {
		return 0
	}
	return int(C.shmrepl_reader_held(rd.r))
}

// ExecutionID is the execution id the ring's header carries.
func (rd *Reader) ExecutionID() (uint64, error) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.r == nil {
		return 0, errClosed("reader execution id")
	}
	return uint64(C.shmrepl_reader_execution_id(rd.r)), nil
}

// Mapping is the reader's whole mapping of the ring: every view it hands out
// lies in [base, base+length). Valid until Close.
func (rd *Reader) Mapping() (base uintptr, length int, err error) {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.r == nil {
		return 0, 0, errClosed("reader mapping")
	}
	var p *C.uint8_t
	var n C.size_t
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if st := C.shmrepl_reader_mapping(rd.r, &p, &n); st != C.SHMREPL_OK {
		return 0, 0, lastError("reader mapping", st)
	}
	return uintptr(unsafe.Pointer(p)), int(n), nil
}

// Close detaches and unmaps: every view of this reader ends here. Calling it
// again does nothing; any other call afterwards returns ErrClosed.
func (rd *Reader) Close() error {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.r != nil {
		C.shmrepl_reader_close(rd.r)
		rd.r = nil
	}
	return nil
}

func errClosed(op string) error { return &closedError{op} }

type closedError struct{ op string }

func (e *closedError) Error() string        { return "shmrepl: " + e.op + ": handle is closed" }
func (e *closedError) Is(target error) bool { return target == ErrClosed }

// Output returns an io.Reader of the bytes of the ring's OUTPUT records of the
// given streams (both when none is given), in order, copied out of the ring. It
// reads in batches, waits without limit and releases each batch once copied.
// Read returns io.EOF at the ring's end, and any other error (ErrProducerDied,
// ErrClosed) as is. Do not mix it with Next/NextBatch on the same Reader.
func (rd *Reader) Output(streams ...Stream) io.Reader {
	o := &outputReader{rd: rd, buf: make([]Record, 256)}
	if len(streams) == 0 {
		streams = []Stream{StreamStdout, StreamStderr}
	}
	for _, s := range streams {
		if s < 32 {
			o.mask |= 1 << s
		}
	}
	return o
}

type outputReader struct {
	rd   *Reader
	mask uint32
	buf  []Record
	n, i int    // records in the held batch, next one to look at
	cur  []byte // unread part of buf[i-1]'s data
	err  error  // sticky: returned once the held batch is used up
}

func (o *outputReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	total := 0
	for {
		if len(o.cur) > 0 {
			c := copy(p[total:], o.cur)
			o.cur = o.cur[c:]
			total += c
			if total == len(p) {
				return total, nil
			}
		}
		if o.i < o.n {
			r := &o.buf[o.i]
			o.i++
			if r.Kind == KindOutput && r.Stream < 32 && o.mask&(1<<r.Stream) != 0 {
				o.cur = r.Data()
			}
			continue
		}
		if o.n > 0 { // batch used up: release before waiting for more
			n := o.n
			o.n, o.i = 0, 0
			if err := o.rd.Release(n); err != nil {
				o.err = err
			}
		}
		if total > 0 {
			return total, nil
		}
		if o.err != nil {
			return 0, o.err
		}
		n, err := o.rd.NextBatch(o.buf, Forever)
		if err != nil {
			if errors.Is(err, ErrEOF) {
				err = io.EOF
			}
			o.err = err
			return 0, err
		}
		o.n = n
	}
}
