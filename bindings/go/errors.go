package shmrepl

/*
#include <shmrepl/shmrepl.h>
*/
import "C"

import (
	"errors"
	"strconv"
)

// Status is a shmrepl_status_t: 0 is success, errors are negative.
type Status int32

// The status codes of ABI version 1 (StatusSessionDied since 1.1, StatusLimit
// since 1.2). Newer
// libraries may return others: they print as their number and match no
// sentinel below.
const (
	StatusOK           Status = 0
	StatusInvalid      Status = -1
	StatusNotFound     Status = -2
	StatusAgain        Status = -3
	StatusTimeout      Status = -4
	StatusEOF          Status = -5
	StatusCorrupt      Status = -6
	StatusVersion      Status = -7
	StatusProducerDied Status = -8
	StatusNoSlot       Status = -9
	StatusNoMem        Status = -10
	StatusPermission   Status = -11
	StatusSystem       Status = -12
	StatusEngineDied   Status = -13
	StatusProtocol     Status = -14
	StatusState        Status = -15
	StatusConnect      Status = -16
	StatusTooLarge     Status = -17
	StatusSessionDied  Status = -18 // the session's worker process died: open a new session
	StatusLimit        Status = -19 // an engine limit (connections, sessions) is reached
	StatusInternal     Status = -99
)

var statusNames = map[Status]string{
	StatusOK: "OK", StatusInvalid: "E_INVALID", StatusNotFound: "E_NOT_FOUND",
	StatusAgain: "E_AGAIN", StatusTimeout: "E_TIMEOUT", StatusEOF: "E_EOF",
	StatusCorrupt: "E_CORRUPT", StatusVersion: "E_VERSION",
	StatusProducerDied: "E_PRODUCER_DIED", StatusNoSlot: "E_NO_SLOT",
	StatusNoMem: "E_NOMEM", StatusPermission: "E_PERMISSION", StatusSystem: "E_SYSTEM",
	StatusEngineDied: "E_ENGINE_DIED", StatusProtocol: "E_PROTOCOL", StatusState: "E_STATE",
	StatusConnect: "E_CONNECT", StatusTooLarge: "E_TOO_LARGE", StatusSessionDied: "E_SESSION_DIED",
	StatusLimit: "E_LIMIT", StatusInternal: "E_INTERNAL",
}

// String is the code's name (E_NOT_FOUND), or its number when unknown.
func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return strconv.Itoa(int(s))
}

// Text is the library's short English text for the status.
func (s Status) Text() string { return C.GoString(C.shmrepl_status_str(C.shmrepl_status_t(s))) }

// Error is a failed call: the status and shmrepl_last_error() of the same OS thread.
type Error struct {
	Status  Status
	Op      string // the binding's operation, e.g. "open reader"
	Message string // shmrepl_last_error(), may be empty
}

func (e *Error) Error() string {
	s := "shmrepl: "
	if e.Op != "" {
		s += e.Op + ": "
	}
	s += e.Status.String() + " (" + e.Status.Text() + ")"
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is matches a sentinel (an *Error with only Status set) of the same status,
// so errors.Is(err, shmrepl.ErrEOF) works.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Op == "" && t.Message == "" && t.Status == e.Status
}

// Sentinels for errors.Is.
var (
	ErrInvalid      error = &Error{Status: StatusInvalid}
	ErrNotFound     error = &Error{Status: StatusNotFound}
	ErrAgain        error = &Error{Status: StatusAgain}
	ErrTimeout      error = &Error{Status: StatusTimeout}
	ErrEOF          error = &Error{Status: StatusEOF}
	ErrCorrupt      error = &Error{Status: StatusCorrupt}
	ErrVersion      error = &Error{Status: StatusVersion}
	ErrProducerDied error = &Error{Status: StatusProducerDied}
	ErrNoSlot       error = &Error{Status: StatusNoSlot}
	ErrNoMem        error = &Error{Status: StatusNoMem}
	ErrPermission   error = &Error{Status: StatusPermission}
	ErrSystem       error = &Error{Status: StatusSystem}
	ErrEngineDied   error = &Error{Status: StatusEngineDied}
	ErrProtocol     error = &Error{Status: StatusProtocol}
	ErrState        error = &Error{Status: StatusState}
	ErrConnect      error = &Error{Status: StatusConnect}
	ErrTooLarge     error = &Error{Status: StatusTooLarge}
	ErrSessionDied  error = &Error{Status: StatusSessionDied}
	ErrLimit        error = &Error{Status: StatusLimit}
	ErrInternal     error = &Error{Status: StatusInternal}
)

// ErrClosed is the binding's own error for a call on a handle after its Close:
// the C handle is gone, so the call never reaches the library.
var ErrClosed = errors.New("shmrepl: handle is closed")

// lastError builds the error of a failed call. It must run on the OS thread of
// that call, before any other shmrepl call there: callers hold
// runtime.LockOSThread across both.
func lastError(op string, st C.shmrepl_status_t) error {
	return &Error{Status: Status(st), Op: op, Message: C.GoString(C.shmrepl_last_error())}
}
