package shmrepl

import (
	"errors"
	"unsafe"
)

func isEOF(err error) bool { return errors.Is(err, ErrEOF) }

func unsafePointer(b *byte) unsafe.Pointer { return unsafe.Pointer(b) }
