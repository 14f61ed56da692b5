package shmrepl

import "errors"

func isEOF(err error) bool { return errors.Is(err, ErrEOF) }
