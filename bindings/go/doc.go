// Package shmrepl runs Python code in a shmrepl engine and reads everything it
// writes, in order and as it is produced, straight out of the shared-memory
// ring of each execution, through libshmrepl's C ABI (cgo).
//
//	client, err := shmrepl.Connect(shmrepl.Options{})
//	sess, err := client.OpenSession()
//	exec, err := sess.Execute(shmrepl.ExecuteOptions{Code: "print('hi')\n"})
//	rd, err := exec.Reader(shmrepl.StartOldest)
//	io.Copy(os.Stdout, rd.Output())
//
// # Record views are ring memory: do not write them, do not keep them
//
// Record.Data and Record.Raw return slices that point INTO THE RING'S SHARED
// MAPPING, not into Go memory. Nothing is copied; that is the point.
//
//   - The memory is mapped writable. Go cannot make a []byte read-only, so
//     writing to a view compiles and silently corrupts the ring for every
//     reader of it. Never write to a view.
//   - A view is valid only until its record is released (Reader.Release) or its
//     reader is closed (Reader.Close). After that the bytes may be overwritten
//     by new records, or unmapped: reading them then returns garbage or crashes
//     the process. Never keep a view (or a slice of it, or a Record) past
//     Release; copy what you need (string(r.Data()), bytes.Clone, append).
//   - The garbage collector does not keep the ring alive: a view does not keep
//     its Reader open.
//
// Reader.Output gives an io.Reader that copies the bytes out and releases for
// you; use it when you do not need zero copy.
//
// # Errors
//
// Failed calls return *Error with the Status code and shmrepl_last_error(),
// read on the same OS thread right after the call. Compare with errors.Is
// against the sentinels (ErrEOF ends a ring, ErrTimeout, ErrAgain, ...). Calls
// on a closed handle return an error matching ErrClosed without calling the
// library.
//
// # Sessions are processes
//
// Every session runs in a worker process of its own (OpenSessionWith sets its
// working folder, environment and stdin). When that process dies (a crash,
// os._exit, a kill) its rings end with a FINISHED record of FinishAborted,
// with ExitCode and Record.Signal, and later calls on the session return
// ErrSessionDied: open a new session.
//
// ExecuteOptions.Timeout and ExecuteOptions.MemoryLimit (ABI 1.1) bound one
// execution: past the timeout it is interrupted (its worker killed 3 s later if
// it goes on) and ends FinishTimeout; an allocation past the memory limit raises
// MemoryError and it ends FinishMemoryLimit.
//
// # Linking
//
// The package links -lshmrepl. For a library that is not installed, give the
// path through the environment:
//
//	CGO_LDFLAGS="-L$BUILD/lib -Wl,-rpath,$BUILD/lib" go build
package shmrepl
