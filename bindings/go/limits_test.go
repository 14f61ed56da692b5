package shmrepl

import (
	"testing"
	"time"
)

// stillWorks runs a print in s and checks it ends OK.
func stillWorks(t *testing.T, s *Session) {
	t.Helper()
	_, rd := execute(t, s, ExecuteOptions{Code: "print('still here')\n"})
	recs, err := readAll(t, rd, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if f := finished(t, recs); f.FinishStatus != FinishOK || streamText(recs, StreamStdout) != "still here\n" {
		t.Fatalf("the session after: %s, stdout %q", f.FinishStatus, streamText(recs, StreamStdout))
	}
}

// ExecuteOptions.Timeout (1.1): a sleeping execution is interrupted and ends
// TIMEOUT well within 3 s; the session goes on.
func TestExecuteTimeout(t *testing.T) {
	s := newSession(t)
	t0 := time.Now()
	_, rd := execute(t, s, ExecuteOptions{Timeout: 300 * time.Millisecond,
		Code: "import time\nprint('start', flush=True)\ntime.sleep(60)\nprint('not reached')\n"})
	recs, err := readAll(t, rd, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	f := finished(t, recs)
	if f.FinishStatus != FinishTimeout || f.FinishStatus.String() != "TIMEOUT" {
		t.Fatalf("finish %s, want TIMEOUT (%s)", f.FinishStatus, kinds(recs))
	}
	if got := streamText(recs, StreamStdout); got != "start\n" {
		t.Errorf("stdout %q", got)
	}
	if took >= 3*time.Second || took < 300*time.Millisecond {
		t.Errorf("a 300 ms timeout ended after %v", took)
	}
	stillWorks(t, s)
}

// ExecuteOptions.MemoryLimit (1.1): an allocation beyond it raises
// MemoryError and the execution ends MEMORY_LIMIT; the session goes on.
func TestExecuteMemoryLimit(t *testing.T) {
	s := newSession(t)
	_, rd := execute(t, s, ExecuteOptions{MemoryLimit: 64 << 20, Code: "x = bytearray(512 << 20)\n"})
	recs, err := readAll(t, rd, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	f := finished(t, recs)
	if f.FinishStatus != FinishMemoryLimit || f.FinishStatus.String() != "MEMORY_LIMIT" {
		t.Fatalf("finish %s, want MEMORY_LIMIT (%s)", f.FinishStatus, kinds(recs))
	}
	stillWorks(t, s)
}
