package shmrepl

/*
#include <shmrepl/shmrepl.h>
*/
import "C"

import (
	"runtime"
	"strconv"
	"time"
	"unsafe"
)

// Kind is a record's kind. Kinds newer than this package print as their number;
// skip them (Raw is still valid).
type Kind uint32

const (
	KindUnknown      Kind = 0
	KindStarted      Kind = 1
	KindOutput       Kind = 2
	KindResult       Kind = 3
	KindError        Kind = 4
	KindInputRequest Kind = 5
	KindFinished     Kind = 6
)

var kindNames = [...]string{"UNKNOWN", "STARTED", "OUTPUT", "RESULT", "ERROR", "INPUT_REQUEST", "FINISHED"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "Kind(" + strconv.FormatUint(uint64(k), 10) + ")"
}

// Stream is the stream of an OUTPUT record.
type Stream uint32

const (
	StreamNone   Stream = 0
	StreamStdout Stream = 1
	StreamStderr Stream = 2
)

func (s Stream) String() string {
	switch s {
	case StreamNone:
		return "none"
	case StreamStdout:
		return "stdout"
	case StreamStderr:
		return "stderr"
	}
	return "Stream(" + strconv.FormatUint(uint64(s), 10) + ")"
}

// FinishStatus is how an execution ended (FINISHED records). Unknown values
// print as their number.
type FinishStatus uint32

const (
	FinishOK        FinishStatus = 0
	FinishError     FinishStatus = 1
	FinishCancelled FinishStatus = 2
	FinishExited    FinishStatus = 3
	FinishAborted   FinishStatus = 4 // the worker died: ExitCode, and Signal()
	// Since 1.1: ExecuteOptions.Timeout passed (interrupted, or its worker
	// killed 3 s later).
	FinishTimeout FinishStatus = 5
	// Since 1.1: the execution ran out of ExecuteOptions.MemoryLimit (MemoryError).
	FinishMemoryLimit FinishStatus = 6
)

var finishNames = [...]string{"OK", "ERROR", "CANCELLED", "EXITED", "ABORTED", "TIMEOUT", "MEMORY_LIMIT"}

func (f FinishStatus) String() string {
	if int(f) < len(finishNames) {
		return finishNames[f]
	}
	return "FinishStatus(" + strconv.FormatUint(uint64(f), 10) + ")"
}

// Record flags: one write larger than the ring's largest record arrives as
// several OUTPUT records (first MORE, middle MORE|CONTINUED, last CONTINUED).
// FlagPassword (ABI 1.2) marks an INPUT_REQUEST of getpass(): do not echo the answer.
const (
	FlagMore      uint32 = 0x1
	FlagContinued uint32 = 0x2
	FlagPassword  uint32 = 0x4
)

// Record mirrors shmrepl_record_t byte for byte (104 bytes; a test pins every
// offset against the C header), so NextBatch hands the caller's slice to the
// library as is. The view fields are uintptr on purpose: they point into the
// ring's shared mapping, never into Go memory, so the garbage collector and the
// cgo pointer check need not look at them.
//
// Data and Raw are views into the ring, valid until the record is released
// (Reader.Release) or its reader is closed. See the package documentation.
type Record struct {
	Kind         Kind
	Stream       Stream
	Flags        uint32
	FinishStatus FinishStatus // FINISHED only
	ExecutionID  uint64
	Seq          uint64 // gap-free per execution, from 0
	TimestampNs  uint64 // CLOCK_REALTIME when written
	data         uintptr
	dataLen      uintptr
	raw          uintptr
	rawLen       uintptr
	ExitCode     int64  // FINISHED only
	DurationNs   uint64 // FINISHED only
	reserved     [2]uint64
}

// view makes a slice over ring memory. Reading p's storage as a pointer (rather
// than converting the uintptr) says the same to the compiler and keeps vet quiet.
func view(p *uintptr, n uintptr) []byte {
	return unsafe.Slice(*(**byte)(unsafe.Pointer(p)), n)
}

// Data is the record's payload: OUTPUT bytes, RESULT repr, ERROR message,
// INPUT_REQUEST prompt, STARTED client execution id. A view into the ring:
// do not write to it, do not keep it past Release (copy what you keep).
func (r *Record) Data() []byte { return view(&r.data, r.dataLen) }

// Raw is the whole FlatBuffers record (abi/shmrepl.fbs), a view like Data.
func (r *Record) Raw() []byte { return view(&r.raw, r.rawLen) }

// Time is TimestampNs as a time.Time.
// Password: an INPUT_REQUEST of getpass() (FlagPassword).
func (r *Record) Password() bool { return r.Flags&FlagPassword != 0 }

func (r *Record) Time() time.Time { return time.Unix(0, int64(r.TimestampNs)) }

// Signal is the number of the signal that ended the session's worker process
// (FINISHED ABORTED or CANCELLED after the kill that ends a cancel), 0 when
// none: the record's reserved[0], since ABI 1.1. ExitCode is then 0; after
// os._exit(n) Signal is 0 and ExitCode n.
func (r *Record) Signal() int { return int(r.reserved[0]) }

// Duration is the execution's run time (FINISHED only).
func (r *Record) Duration() time.Duration { return time.Duration(r.DurationNs) }

// ErrorDetails is the structured part of an ERROR record (copied out of the ring).
type ErrorDetails struct {
	Ename     string   // exception type name
	Evalue    string   // exception message
	Traceback []string // traceback lines
}

func (r *Record) c() *C.shmrepl_record_t { return (*C.shmrepl_record_t)(unsafe.Pointer(r)) }

func bytesString(b C.shmrepl_bytes_t) string {
	if b.len == 0 {
		return ""
	}
	return string(unsafe.Slice((*byte)(unsafe.Pointer(b.ptr)), int(b.len)))
}

// ErrorDetails reads the exception of an ERROR record (E_INVALID for another
// kind). The record must not have been released.
func (r *Record) ErrorDetails() (*ErrorDetails, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var ename, evalue C.shmrepl_bytes_t
	var n C.size_t
	if st := C.shmrepl_record_error(r.c(), &ename, &evalue, &n); st != C.SHMREPL_OK {
		return nil, lastError("record error", st)
	}
	d := &ErrorDetails{Ename: bytesString(ename), Evalue: bytesString(evalue),
		Traceback: make([]string, 0, int(n))}
	for i := C.size_t(0); i < n; i++ {
		var line C.shmrepl_bytes_t
		if st := C.shmrepl_record_traceback_line(r.c(), i, &line); st != C.SHMREPL_OK {
			return nil, lastError("record traceback line", st)
		}
		d.Traceback = append(d.Traceback, bytesString(line))
	}
	return d, nil
}
