package shmrepl

import (
	"errors"
	"testing"
)

// The layout of the ABI structs (1.0, 1.1's session options and execute
// options' limits, 1.2's terminal descriptors), pinned; and
// this package's mirrors equal to what the C compiler sees.
func TestLayout(t *testing.T) {
	pinned := map[string]uintptr{
		"sizeof record": 104, "record.kind": 0, "record.stream": 4, "record.flags": 8,
		"record.finish_status": 12, "record.execution_id": 16, "record.seq": 24,
		"record.timestamp_ns": 32, "record.data": 40, "record.data_len": 48, "record.raw": 56,
		"record.raw_len": 64, "record.exit_code": 72, "record.duration_ns": 80,
		"record.reserved": 88, "sizeof reader_options": 8, "sizeof client_options": 40,
		"sizeof execute_options": 88, "execute_options.timeout_ns": 72,
		"execute_options.memory_limit": 80, "sizeof bytes": 16,
		"sizeof session_options": 48, "session_options.flags": 4, "session_options.working_dir": 8,
		"session_options.env": 16, "session_options.envc": 24,
		"session_options.stdin_fd_plus_one": 32, "session_options.reserved": 36,
		"session_options.stdout_fd_plus_one": 40, "session_options.stderr_fd_plus_one": 44,
	}
	c, g := cLayout(), goLayout()
	if len(c) != len(pinned) || len(g) != len(pinned) {
		t.Fatalf("layout tables differ in size: pinned %d, C %d, Go %d", len(pinned), len(c), len(g))
	}
	for name, want := range pinned {
		if c[name] != want {
			t.Errorf("C %s = %d, the ABI says %d", name, c[name], want)
		}
		if g[name] != want {
			t.Errorf("Go %s = %d, the ABI says %d", name, g[name], want)
		}
	}
}

func TestVersion(t *testing.T) {
	if v := LibraryABIVersion(); v != ABIVersion {
		t.Fatalf("library ABI version %d, want %d", v, ABIVersion)
	}
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	if LibraryVersion() == "" {
		t.Fatal("empty library version")
	}
}

func TestStatusNames(t *testing.T) {
	for s, want := range map[Status]string{StatusNotFound: "E_NOT_FOUND", StatusEOF: "E_EOF",
		StatusInternal: "E_INTERNAL", StatusSessionDied: "E_SESSION_DIED", Status(-42): "-42"} {
		if got := s.String(); got != want {
			t.Errorf("Status(%d) = %q, want %q", int32(s), got, want)
		}
	}
	if StatusSessionDied.Text() == Status(-42).Text() {
		t.Errorf("the library has no text for E_SESSION_DIED: %q", StatusSessionDied.Text())
	}
	if Status(-42).Text() == "" {
		t.Error("no text for an unknown status")
	}
	if Kind(9).String() != "Kind(9)" || KindFinished.String() != "FINISHED" {
		t.Error("kind names")
	}
	if FinishStatus(77).String() != "FinishStatus(77)" || FinishCancelled.String() != "CANCELLED" {
		t.Error("finish status names")
	}
	e := &Error{Status: StatusTimeout, Op: "x", Message: "detail"}
	if !errors.Is(e, ErrTimeout) || errors.Is(e, ErrAgain) || errors.Is(ErrAgain, e) {
		t.Error("errors.Is on *Error")
	}
	if got := e.Error(); got != "shmrepl: x: E_TIMEOUT ("+StatusTimeout.Text()+"): detail" {
		t.Errorf("message %q", got)
	}
	if errors.Is(&Error{Status: -42}, ErrInternal) {
		t.Error("an unknown status matches a sentinel")
	}
}
