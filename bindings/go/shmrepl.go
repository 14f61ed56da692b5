package shmrepl

/*
#cgo CFLAGS: -I${SRCDIR}/../../abi/include
#cgo LDFLAGS: -lshmrepl
#include <shmrepl/shmrepl.h>
*/
import "C"

import (
	"fmt"
	"time"
)

// ABIVersion is the ABI version this package was written against.
const ABIVersion = 1

// Sizes of the option structs this package was written against: the library
// reads only that many bytes of each (option structs grow append-only).
const (
	readerOptionsSize  = 8
	clientOptionsSize  = 40 // 1.2: request_timeout_ns (the library accepts 32 up)
	executeOptionsSize = 88 // 1.1: timeout_ns, memory_limit (the library accepts 72 up)
	sessionOptionsSize = 48 // 1.2: Stdout, Stderr (the library accepts 40 up)
)

// Forever as a timeout waits without limit.
const Forever time.Duration = -1

// loadErr is non-nil when the loaded libshmrepl speaks another ABI version.
// Every constructor returns it.
var loadErr error

func init() {
	if v := uint32(C.shmrepl_abi_version()); v != ABIVersion {
		loadErr = &Error{Status: StatusVersion, Op: "load",
			Message: fmt.Sprintf("libshmrepl has ABI version %d, this package needs %d", v, ABIVersion)}
	}
}

// LibraryVersion is the loaded libshmrepl's "MAJOR.MINOR.PATCH".
func LibraryVersion() string { return C.GoString(C.shmrepl_version()) }

// LibraryABIVersion is the loaded libshmrepl's ABI version.
func LibraryABIVersion() uint32 { return uint32(C.shmrepl_abi_version()) }

// timeoutNs maps a Go timeout to the ABI's: negative waits forever, 0 polls.
func timeoutNs(d time.Duration) C.int64_t {
	if d < 0 {
		return -1
	}
	return C.int64_t(d.Nanoseconds())
}
